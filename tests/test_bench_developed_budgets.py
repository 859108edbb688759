"""benchmarks/bench_developed_budgets.py: the models it fine-tunes are notebook 04's, named or refused by name."""

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_developed_budgets")


def test_the_models_are_notebook_04s_by_name(bench):
    developed = {"kd-evolved-15x": {"arch": "6/352/672/12/192", "model_dir": "/m/a", "speedup": 15.0},
                 "mlm-evolved-40x": {"arch": "3/224/1024/4/128", "model_dir": "/m/b"}}
    assert bench.chosen_models(developed, ["mlm-evolved-40x"]) == {
        "mlm-evolved-40x": {"arch": "3/224/1024/4/128", "model_dir": "/m/b"}}
    with pytest.raises(SystemExit, match="no model kd-fast-25x .*holds kd-evolved-15x, mlm-evolved-40x"):
        bench.chosen_models(developed, ["kd-fast-25x", "kd-evolved-15x"])
    assert set(bench.DEFAULT_MODELS) <= {"kd-evolved-15x", "kd-default-rule-15x", "mlm-evolved-25x"}
