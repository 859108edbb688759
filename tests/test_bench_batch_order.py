"""benchmarks/bench_batch_order.py compares batch orders that differ only in order: the length-grouped batches visited
in a random order pad exactly as little as Hugging Face's sweep, and both far less than uniform batches."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports its sibling bench_precision, as when run as a script
    try:
        spec = importlib.util.spec_from_file_location("bench_batch_order", ROOT / "benchmarks" / "bench_batch_order.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_the_orders_differ_only_in_order(bench):
    assert set(bench.ORDERS) == {"uniform", "sweep", "shuffled"}
    assert {a for pair in bench.DIFFERENCES for a in pair} <= set(bench.ORDERS)
    share = {order: bench.padding_share("stsb", "mini", overrides) for order, overrides in bench.ORDERS.items()}
    assert share["shuffled"] == pytest.approx(share["sweep"])  # the same batches
    assert 0 <= share["shuffled"] < 0.5 * share["uniform"] < 1
