"""benchmarks/bench_cls_spread.py's statistic: how much a set of vectors varies, by direction and by distance."""

import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_cls_spread")


def test_spread_is_one_and_zero_for_a_collapsed_set_and_lower_for_varied_vectors(bench):
    same = np.tile([3.0, 4.0], (5, 1))
    assert bench.spread(same) == pytest.approx({"cosine": 1.0, "spread": 0.0})
    varied = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.5]])
    out = bench.spread(varied)
    assert out["cosine"] < 0.9 and out["spread"] > 0.3
    nearly = same + np.random.default_rng(0).normal(0, 0.01, same.shape)  # a nearly collapsed [CLS]
    assert bench.spread(nearly)["cosine"] > 0.999 and bench.spread(nearly)["spread"] < 0.01
    with pytest.raises(ValueError, match="two vectors"):
        bench.spread(same[:1])
