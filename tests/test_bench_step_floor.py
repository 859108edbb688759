"""benchmarks/bench_step_floor.py bounds what the engine can give a pre-training step: the earlier path's seconds over
the seconds the new path spends in its matrix products, measured in one run."""

import json
import sys

import pytest

from conftest import load_benchmark


@pytest.mark.slow
def test_the_bound_is_the_earlier_step_over_the_new_paths_matrix_products(tmp_path, monkeypatch):
    bench = load_benchmark("bench_step_floor")
    out = tmp_path / "floor.json"
    monkeypatch.setattr(sys, "argv", ["bench_step_floor.py", "--scale", "smoke", "--steps", "1", "--rounds", "1",
                                      "--precision", "fp32", "--out", str(out)])
    bench.main()
    record = json.loads(out.read_text())
    assert set(record["steps"]) == {"kd_step", "mlm_step", "further_step"}
    assert record["new"] == {"precision": "fp32", "computed_in": "fp32"} and record["earlier"]["precision"] == "fp32"
    for step in record["steps"].values():
        assert step["earlier"] > 0 and step["new"] > 0 and 0 < step["matmul"]
        assert 0 < step["matmul_share_of_profiled"] < 1  # the products are part of the step, not all of it
        assert step["bound"] == pytest.approx(step["earlier"] / step["matmul"])
        assert step["speedup"] == pytest.approx(step["earlier"] / step["new"])


def test_the_profile_counts_only_matrix_product_kernels():
    """The kernels summed as "products" are matrix products (and the fused attention that is one), not the
    elementwise work the engine's levers act on."""
    bench = load_benchmark("bench_step_floor")
    assert {"aten::mm", "aten::addmm", "aten::bmm"} <= bench.MATMUL_KERNELS
    assert not {"aten::mul", "aten::add", "aten::copy_", "aten::_fused_adamw_", "aten::random_"} & bench.MATMUL_KERNELS
