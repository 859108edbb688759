"""benchmarks/bench_repair.py adds points to its record without dropping the earlier ones (a new recipe or step count
need not retrain the others), and refuses a record that measured something else."""

import json

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_repair")


def _record(points: list[tuple[str, int]], difference: float, machine: str) -> dict:
    pooled = [{"recipe": r, "steps": s, "task": "stsb", "difference": difference, "ci95": [-1.0, 1.0], "n": 4,
               "archs": 1} for r, s in points]
    rows = [{**p, "arch": "4/256/1024/12/252", "model": 1.0, "control": 1.0} for p in pooled]
    return {"scale": "mini", "recipes": {r: {} for r, _ in points if r != "warm start"}, "archs": ["4/256/1024/12/252"],
            "tasks": ["stsb"], "seeds": 2, "scored_on": "held out", "budget": "the scale's",
            "runs": {f"{r} {s}": {"steps": s} for r, s in points}, "rows": rows, "pooled": pooled, "seconds": 1.0,
            "machine": {"cpu": machine},
            "calls": [{"points": [f"{r} {s}" for r, s in points], "seconds": 1.0, "machine": {"cpu": machine}}]}


def test_a_new_point_joins_the_earlier_ones_and_a_remeasured_point_replaces_its_old_rows(bench, tmp_path):
    path = tmp_path / "bench_repair.json"
    earlier = _record([("warm start", 0), ("uniform", 1000)], difference=-7.0, machine="old")
    del earlier["calls"]  # a record written before calls were listed
    path.write_text(json.dumps(earlier))
    merged = bench.merge_record(path, _record([("warm start", 0), ("large-lr", 1000)], difference=+2.0, machine="new"))
    assert [(p["recipe"], p["steps"], p["difference"]) for p in merged["pooled"]] == [
        ("uniform", 1000, -7.0), ("warm start", 0, 2.0), ("large-lr", 1000, 2.0)]
    assert len(merged["rows"]) == 3 and set(merged["runs"]) == {"warm start 0", "uniform 1000", "large-lr 1000"}
    assert set(merged["recipes"]) == {"uniform", "large-lr"}
    assert [c["machine"]["cpu"] for c in merged["calls"]] == ["old", "new"]
    assert merged["calls"][0]["points"] == ["uniform 1000", "warm start 0"]


def test_no_earlier_record_leaves_the_call_as_it_is_and_another_measurement_is_refused(bench, tmp_path):
    path = tmp_path / "bench_repair.json"
    record = _record([("warm start", 0)], difference=0.0, machine="m")
    assert bench.merge_record(path, record) is record
    path.write_text(json.dumps({**record, "seeds": 3}))
    with pytest.raises(ValueError, match="'seeds' is 3"):
        bench.merge_record(path, record)


def test_further_training_is_the_scales_development_run_for_longer(bench):
    """The ``further`` points train each sub-model alone with notebook 04's KD settings, only longer, and on the
    one-shot recipes' schedule (a tenth warm-up), so their curve reads beside theirs."""
    from atb.develop import DevelopConfig

    study = DevelopConfig.load("mini").train_config_for("kd", "evolved")
    cfg = bench.further_config("mini", 2000)
    assert (cfg.steps, cfg.warmup_steps, cfg.checkpoint_every) == (2000, 200, 250)
    assert cfg.objective == "kd" and cfg.lr == study.lr and cfg.max_documents == study.max_documents
    assert cfg.teacher == study.teacher and cfg.precision == study.precision
    assert bench.further_config("mini", 100).checkpoint_every == 100


def test_further_training_starts_from_the_warm_start_or_the_studys_own_superplm(bench):
    from atb.train import TrainConfig

    assert bench.further_start("mini", "further") == ("uniform", 0)
    assert bench.further_start("mini", "further-oneshot") == ("uniform", TrainConfig.load("mini", "kd").steps)
    with pytest.raises(SystemExit):
        bench.main(["--recipes", "no-such-recipe"])
