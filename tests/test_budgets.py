"""The budget ladder (atb.budgets): per task the first rung at which the teacher beats its control by the margin,
judged on examples held out of the train split; the config's budgets are the ones the committed ladder chose."""

import dataclasses
import json

import numpy as np
import pytest
import yaml

from atb import budgets, finetune
from atb.budgets import BudgetConfig
from atb.develop import DevelopConfig, teacher_model
from atb.layout import ROOT, Layout
from atb.space import Arch
from conftest import write_scale_config


def _ladder_scale(tmp_path, rungs):
    """The smoke scale with a ladder of ``rungs`` over SST-2, RTE and QQP (absent offline), SST-2's margin 25."""
    sections = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    sections["budgets"] = {"tasks": ["sst2", "rte", "qqp"], "rungs": rungs, "seeds": 2, "margins": {"sst2": 25.0}}
    sections["finetune"]["all"]["max_eval_examples"] = 400  # 400 held-out examples: intervals of a few points
    return write_scale_config(tmp_path / "smoke.yaml", **sections)


def _fake_run_seeds(accuracy, split_size=10**6):
    """``run_seeds`` that scores each side on the real held-out labels with ``accuracy(side, task, rung examples)``,
    on a train split of ``split_size`` examples."""
    def run_seeds(model_dir, tasks, scale, output_dir, seeds, budgets):
        side = "control" if "control" in str(output_dir) else "teacher"
        out = {}
        for task in tasks:
            cfg = finetune.FinetuneConfig.load(scale, task)
            cfg = type(cfg)(**{**cfg.__dict__, **budgets[task]})
            try:
                _, evals = finetune.glue_splits(task, cfg)
            except finetune.DataUnavailableOffline as err:
                out[task] = [{"task": task, "score": None, "metrics": None, "reason": f"DataUnavailableOffline: {err}",
                              "config": {"seed": s}} for s in range(seeds)]
                continue
            labels = np.asarray(next(iter(evals.values()))["label"])
            p = accuracy(side, task, cfg.max_train_examples)
            runs = []
            for s in range(seeds):
                hit = np.random.default_rng(s + 10 * (side == "control")).random(len(labels)) < p
                pred = np.where(hit, labels, 1 - labels)
                score = 100 * float(np.mean(pred == labels))
                used = min(cfg.max_train_examples or split_size, split_size)
                runs.append({"task": task, "score": score, "metrics": {"accuracy": score}, "seconds": 2.0,
                             "train_examples": used,
                             "config": {"seed": s}, "dev": {"validation": {"predictions": pred.tolist(),
                                                                          "labels": labels.tolist()}}})
            out[task] = runs
        return out
    return run_seeds


def test_the_ladder_stops_at_the_first_rung_that_passes_and_says_why_the_rest_did_not(tmp_path, monkeypatch):
    scale = _ladder_scale(tmp_path, [{}, {"max_train_examples": 64}, {"max_train_examples": 128}])
    # the teacher beats its control on SST-2 from the first rung, but by the margin (25) only from 64 examples on;
    # on RTE never
    accuracy = lambda side, task, n: 0.5 if side == "control" or task == "rte" else (0.7 if n < 64 else 0.95)
    jobs = []
    monkeypatch.setattr(budgets, "run_jobs", lambda js, workers: jobs.extend(js) or [])
    monkeypatch.setattr(budgets, "run_seeds", _fake_run_seeds(accuracy))
    layout = Layout("smoke", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    record = budgets.climb(scale, layout)

    sst2, rte, qqp = (record["tasks"][t] for t in ("sst2", "rte", "qqp"))
    assert sst2["chosen"] == 1 and [r["passes"] for r in sst2["rungs"]] == [False, True]
    assert "(margin 25)" in sst2["rungs"][0]["reason"] and sst2["rungs"][1]["reason"] is None
    assert sst2["rungs"][1]["ci95"][0] > 0 and sst2["rungs"][1]["teacher"] > 90
    assert rte["chosen"] is None and len(rte["rungs"]) == 3
    assert "does not beat its control" in rte["rungs"][-1]["reason"]
    assert qqp["chosen"] is None and len(qqp["rungs"]) == 1  # absent offline: not climbed further
    assert record["budgets"] == {"sst2": {"max_train_examples": 64}}
    # every job is scored held out of the train split, never on dev; the rung after SST-2 passed runs only RTE
    assert {j.budgets[j.task]["evaluate_on"] for j in jobs} == {"heldout"}
    assert {j.task for j in jobs if "rung2" in j.output_dir} == {"rte"}
    assert record["scored_on"] == "examples held out of the train split"
    assert record["machine"]["cpu"] and record["machine"]["cores"] >= 1  # the seconds name their machine
    assert record["engine"]["computed_in"] in ("fp32", "bf16")  # and the precision the scores were computed in


def test_a_rung_that_only_asks_for_more_examples_than_the_split_holds_is_not_fine_tuned_again(tmp_path, monkeypatch):
    rungs = [{"max_train_examples": 64}, {"max_train_examples": 5000}, {"max_train_examples": 9000},
             {"max_train_examples": 9000, "epochs": 3}]
    scale = _ladder_scale(tmp_path, rungs)
    jobs = []
    monkeypatch.setattr(budgets, "run_jobs", lambda js, workers: jobs.extend(js) or [])
    monkeypatch.setattr(budgets, "run_seeds", _fake_run_seeds(lambda side, task, n: 0.5, split_size=1000))
    layout = Layout("smoke", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    record = budgets.climb(scale, layout)

    rte = record["tasks"]["rte"]
    assert [r["rung"] for r in rte["rungs"]] == [0, 1, 2, 3] and rte["chosen"] is None
    assert rte["rungs"][2]["same_as"] == 1 and "holds 1000 examples" in rte["rungs"][2]["reason"]
    assert "same_as" not in rte["rungs"][3]  # more epochs: another budget, fine-tuned
    assert not any("rung2" in j.output_dir for j in jobs) and any("rung3" in j.output_dir for j in jobs)


def test_a_rung_the_tasks_budget_already_has_is_not_fine_tuned_again(tmp_path, monkeypatch):
    """A scale whose budget already holds a later rung's fields (a ladder climbed again after its choices were
    written into the config) records that rung as the same budget, whatever the split's size."""
    scale = _ladder_scale(tmp_path, [{}, {"max_train_examples": 64}, {"max_train_examples": 128}])
    settings = yaml.safe_load(scale.read_text())
    settings.setdefault("finetune", {})["rte"] = {**settings["finetune"].get("rte", {}), "max_train_examples": 64}
    scale.write_text(yaml.safe_dump(settings))
    monkeypatch.setattr(budgets, "run_jobs", lambda js, workers: [])
    monkeypatch.setattr(budgets, "run_seeds", _fake_run_seeds(lambda side, task, n: 0.5))
    record = budgets.climb(scale, Layout("smoke", results_root=tmp_path / "results", runs_root=tmp_path / "runs"))

    rte = record["tasks"]["rte"]["rungs"]
    assert [r.get("same_as") for r in rte] == [None, 0, None]
    assert "already has {'max_train_examples': 64}" in rte[1]["reason"]


def test_a_rung_names_only_budget_fields():
    with pytest.raises(ValueError, match=r"rungs\[1\]: \['seed'\]"):
        BudgetConfig(rungs=[{}, {"seed": 3}])
    with pytest.raises(ValueError, match="at least one rung"):
        BudgetConfig(rungs=[])


def test_the_mini_budgets_are_the_ones_the_committed_ladder_chose():
    path = ROOT / "results" / "mini" / budgets.RECORD
    if not path.exists():
        pytest.skip("results/mini/budgets.json has not been committed yet (python -m atb.budgets --scale mini)")
    record = json.loads(path.read_text())
    assert record["rungs"] == BudgetConfig.load("mini").rungs, "the ladder changed since the record: climb it again"
    teacher, cut = Arch.parse(teacher_model("mini")["arch"]), DevelopConfig.load("mini").calibration_layers
    assert record["teacher"]["arch"] == str(dataclasses.replace(teacher, layers=cut or teacher.layers)), (
        "the ladder was climbed on another calibration model than develop.calibration_layers names: climb it again")
    for task, chosen in record["budgets"].items():
        cfg = finetune.FinetuneConfig.load("mini", task)
        assert all(getattr(cfg, k) == v for k, v in chosen.items()), f"mini.yaml's {task} budget is not {chosen}"
