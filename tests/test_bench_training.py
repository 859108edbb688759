"""benchmarks/bench_training.py times the earlier engine (ecb91f4) beside the new default in one run and records
what each path computed in; ``--precision fp32`` measures the fp32 improvements alone on any CPU."""

import json
import sys

import pytest

from conftest import load_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_the_record_holds_every_step_side_by_side_and_the_new_paths_precision(tmp_path, monkeypatch, precision):
    bench = load_benchmark("bench_training")
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--scale", "smoke", "--steps", "1", "--rounds", "1",
                                      "--precision", precision, "--out", str(out)])
    bench.main()
    record = json.loads(out.read_text())
    steps = {"finetune_sst2", "finetune_mrpc", "kd_step", "mlm_step", "further_step"}
    assert steps <= set(record["speedup"]) and steps <= set(record["seconds"])
    assert all(s["earlier"] > 0 and s["new"] > 0 for s in record["seconds"].values())
    for name, s in record["seconds"].items():  # one ratio per round, the median ratio within their range
        assert len(s["rounds"]) == 1 and record["speedup_range"][name] == [s["rounds"][0]] * 2
        assert record["speedup"][name] == pytest.approx(s["rounds"][0])
    assert record["commit"] is None or len(record["commit"]) == 40
    assert record["earlier"]["precision"] == "fp32" and record["new"]["precision"] == precision
    expected = "bf16" if precision == "auto" and record["native_bf16"] else "fp32"
    assert record["new"]["computed_in"] == expected
