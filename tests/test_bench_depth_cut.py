"""benchmarks/bench_depth_cut.py: the rows that compare each depth with its control (the cut itself: test_teacher.py)."""

import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_depth_cut")


def _result(task: str, seed: int, predictions, labels) -> dict:
    from atb.metrics import glue_metrics, glue_score

    metrics = glue_metrics(task, np.asarray(predictions), np.asarray(labels), "validation")
    return {"task": task, "score": glue_score(task, metrics), "config": {"seed": seed},
            "dev": {"validation": {"predictions": list(predictions), "labels": list(labels)}}}


def test_depth_rows_compare_each_depth_with_its_control(bench):
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 200).round(2).tolist()
    learned = {"stsb": [_result("stsb", s, np.asarray(labels) + rng.normal(0, 0.5, 200), labels) for s in (0, 1)]}
    chance = {"stsb": [_result("stsb", s, rng.uniform(0, 5, 200), labels) for s in (0, 1)]}
    tuned = {"teacher-first-6": {"scores": learned, "control": chance,
                                 "learning_rates": {"developed": {"stsb": {"lr": 1e-4}},
                                                    "control": {"stsb": {"lr": 3e-4}}}},
             "teacher-first-5": {"scores": chance, "control": chance, "learning_rates": None}}
    rows = {r["model"]: r for r in bench.depth_rows(tuned, {"teacher-first-6": 6, "teacher-first-5": 5}, ["stsb"])}
    top = rows["teacher-first-6"]
    assert top["layers"] == 6 and top["score"] > 80 and abs(top["control"]) < 20
    assert top["ci95"][0] > 0 and top["difference"] == pytest.approx(top["score"] - top["control"], abs=1e-6)
    assert (top["lr"], top["control_lr"]) == (1e-4, 3e-4)
    same = rows["teacher-first-5"]
    assert same["difference"] == pytest.approx(0.0) and same["lr"] is None


def test_a_rung_of_the_ladder_replaces_the_tasks_budgets_in_a_copy_of_the_config(bench, tmp_path):
    from atb.budgets import BudgetConfig
    from atb.finetune import FinetuneConfig

    assert bench.rung_config("mini", 0, ["stsb"], tmp_path / "mini.yaml") == "mini"  # rung 0: the budgets as they are
    last = len(BudgetConfig.load("mini").rungs) - 1
    path = bench.rung_config("mini", last, ["stsb"], tmp_path / "mini.yaml")
    rung = BudgetConfig.load("mini").rungs[last]
    stsb, sst2 = FinetuneConfig.load(path, "stsb"), FinetuneConfig.load(path, "sst2")
    assert (stsb.max_train_examples, stsb.epochs) == (rung["max_train_examples"], rung["epochs"])
    assert sst2 == FinetuneConfig.load("mini", "sst2")  # a task not named keeps its budget
    assert stsb.lr == FinetuneConfig.load("mini", "stsb").lr and stsb.scale == "mini"
    with pytest.raises(ValueError, match="rungs 0"):
        bench.rung_config("mini", last + 1, ["stsb"], tmp_path / "x.yaml")
