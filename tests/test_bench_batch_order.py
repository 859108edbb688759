"""benchmarks/bench_batch_order.py compares batch orders that differ only in order: the length-grouped batches visited
in a random order pad exactly as little as Hugging Face's sweep, and both far less than uniform batches."""

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_batch_order")  # it imports its sibling bench_precision, as when run as a script


def test_the_orders_differ_only_in_order(bench):
    assert set(bench.ORDERS) == {"uniform", "sweep", "shuffled"}
    assert {a for pair in bench.DIFFERENCES for a in pair} <= set(bench.ORDERS)
    share = {order: bench.padding_share("stsb", "mini", overrides) for order, overrides in bench.ORDERS.items()}
    assert share["shuffled"] == pytest.approx(share["sweep"])  # the same batches
    assert 0 <= share["shuffled"] < 0.5 * share["uniform"] < 1
