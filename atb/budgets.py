"""Budgets with power: per GLUE task, the smallest fine-tuning budget at which the calibration model can show learning.

A comparison of fine-tuned models can only show what pre-training taught them where the fine-tuning budget lets
pre-training show at all. The calibration model (:func:`atb.develop.calibration_model`) is the teacher (at mini the
packaged MiniLM, the space's largest architecture and the source every sub-model is cut from) or, with
``develop.calibration_layers``, its first layers only: the whole teacher can learn a task at a budget too small for
any cut of it to re-learn the task (benchmarks/bench_depth_cut.py), and every developed model is a cut. Where even
the calibration model does not beat an untrained model of its shape, no model cut like it can be expected to. So the
budget of each task is chosen by climbing a ladder (section ``budgets`` of ``configs/<scale>.yaml``,
:class:`BudgetConfig`), cheapest rung first:

1. fine-tune the calibration model and its untrained control (:func:`atb.develop.control_model`) with the rung's budget
   (fields of the task's ``finetune`` budget, e.g. ``max_train_examples`` and ``epochs``), ``seeds`` seeds each;
2. score both on examples **held out of the train split** (``evaluate_on: heldout``; the dev split, which reports
   the study's results, is never looked at), with the majority class of the training subset beside them;
3. the task's budget is the first rung at which the task passes :func:`atb.develop.decision_tasks` with the ladder's
   ``margins`` (the paired interval of calibration model minus control above 0, and ``margins[task]`` points over the
   better of the control and the majority class: a budget whose power is clear, not merely above 0). A task that passes
   at no rung gets no budget from the ladder (the config keeps its own), with the measured reason.

The margins choose budgets; they do not choose the tasks that decide the claims. Notebook 05 keeps a task in the
decision average wherever its calibration row shows learning at the budget at all (interval above 0, above the
majority class): the margins are set for the whole teacher (issue #23's; ``budgets.margins`` of the config), and
a cut of it that learns SST-2 clearly (the developed models too) need not reach the whole teacher's gap.

::

    python -m atb.budgets --scale mini     # -> results/mini/budgets.json (runs cached in runs/mini/budgets/)

The chosen budgets are then written into the scale's ``finetune`` section by hand (a test holds the two equal), so
that the config stays the one place a scale's settings live.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, engine
from .develop import (GLUE_AVERAGE, DevelopConfig, calibration_entry, calibration_model, control_model,
                      decision_tasks, glue_entry)
from .finetune import FinetuneConfig, majority_baseline, run_jobs, run_seeds, seed_jobs
from .layout import Layout
from .records import machine_info

# Fields of a rung: what a budget is (the rest of the task's budget, the seed and where it is scored stay).
RUNG_FIELDS = ("max_train_examples", "epochs", "batch_size", "lr", "max_seq_len", "warmup_ratio")
RECORD = "budgets.json"


@dataclass
class BudgetConfig:
    """The ladder of one scale: section ``budgets`` of ``configs/<scale>.yaml``."""

    tasks: list[str] = field(default_factory=lambda: ["cola", "sst2", "mrpc", "stsb", "rte"])
    # cheapest first; each rung replaces these fields of every task's budget (an empty ladder: the budget as it is)
    rungs: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    seeds: int = 2  # fine-tuning seeds of the teacher and of its control per rung and task
    # A rung passes a task when the calibration model beats its control with an interval above 0 and by at least this
    # many points over the better of its control and the majority class (a task not named: any margin above 0).
    margins: dict[str, float] = field(default_factory=dict)
    scale: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.margins) - set(GLUE_AVERAGE)
        if unknown:
            raise ValueError(f"BudgetConfig.margins: {sorted(unknown)} are not columns of the GLUE average "
                             f"({', '.join(GLUE_AVERAGE)})")
        if self.seeds < 1:
            raise ValueError(f"BudgetConfig.seeds must be >= 1, got {self.seeds}")
        if not self.rungs:
            raise ValueError("BudgetConfig.rungs needs at least one rung ({} is the scale's budget as it is)")
        for k, rung in enumerate(self.rungs):
            unknown = set(rung) - set(RUNG_FIELDS)
            if unknown:
                raise ValueError(f"BudgetConfig.rungs[{k}]: {sorted(unknown)} are not budget fields "
                                 f"({', '.join(RUNG_FIELDS)})")

    @classmethod
    def load(cls, scale: str | Path) -> BudgetConfig:
        return config.load_section(cls, scale, "budgets")


def rung_budget(rung: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``budgets`` for :func:`atb.finetune.run_seeds`: the rung's fields for every task, scored held out."""
    return {task: {**rung, "evaluate_on": "heldout"} for task in tasks}


def effective_budget(scale: str | Path, task: str, rung: Mapping[str, Any], available: int | None) -> dict[str, Any]:
    """The budget fields (:data:`RUNG_FIELDS`) ``rung`` gives ``task``, with the train split's size as the cap once
    known (``available``): two rungs that differ only in asking for more examples than the split holds give the
    same budget, and the ladder does not fine-tune the same budget twice."""
    cfg = dataclasses.replace(FinetuneConfig.load(scale, task), **rung)
    budget = {name: getattr(cfg, name) for name in RUNG_FIELDS}
    if available is not None and (budget["max_train_examples"] is None or budget["max_train_examples"] >= available):
        budget["max_train_examples"] = available
    return budget


def _judged_column(task: str) -> str:
    """The score column a rung is judged on: the task's own, MNLI's matched dev set (the column the GLUE tables
    and the decision average use; the mismatched one is only reported)."""
    return "mnli_m" if task == "mnli" else task


def climb(scale: str | Path, layout: Layout | None = None) -> dict:
    """Climb the ladder of ``scale`` for every task (:class:`BudgetConfig`): per rung, every task not yet decided is
    fine-tuned (teacher and control, ``seeds`` each, all jobs in one pool of ``develop.workers`` processes) and
    judged by :func:`atb.develop.decision_tasks` on its held-out scores. A rung whose budget a task already had (it
    asks for more examples than the task's train split holds: :func:`effective_budget`) is recorded with
    ``same_as`` that rung, not fine-tuned again. Returns the record: per task ``rungs`` (each with the teacher's and
    the control's held-out scores, the majority class, the paired difference and interval, ``passes`` and
    ``reason``) and ``chosen`` (the first rung that passed, or ``None``), and the machine that climbed it (each
    step's ``seconds`` are its fine-tunings' own)."""
    cfg, develop = BudgetConfig.load(scale), DevelopConfig.load(scale)
    layout = layout or Layout(str(scale))
    teacher = calibration_model(scale, layout)
    control_dir = control_model(layout, teacher["arch"], like=teacher["model_dir"])
    climbing = {task: {"rungs": [], "chosen": None} for task in cfg.tasks}
    available: dict[str, int] = {}  # a task's train-split size, once a run used every example it had
    last_run: dict[str, int] = {}  # the last rung each task was fine-tuned at
    for k, rung in enumerate(cfg.rungs):
        tasks = []
        for t, c in climbing.items():
            if c["chosen"] is not None or c.get("unavailable"):
                continue
            if t in last_run and (effective_budget(scale, t, rung, available.get(t))
                                  == effective_budget(scale, t, cfg.rungs[last_run[t]], available.get(t))):
                why = (f"the train split holds {available[t]} examples" if t in available
                       else f"the task's budget already has {dict(rung)}")
                c["rungs"].append({"rung": k, "budget": dict(rung), "same_as": last_run[t], "passes": False,
                                   "reason": f"the same budget as rung {last_run[t]}: {why} (not fine-tuned again)"})
                continue
            tasks.append(t)
            last_run[t] = k
        if not tasks:
            continue
        budget, out = rung_budget(rung, tasks), layout.runs / "budgets" / f"rung{k}"
        sides = {"teacher": (teacher["model_dir"], out / "teacher"), "control": (control_dir, out / "control")}
        run_jobs([job for d, o in sides.values() for job in seed_jobs(d, tasks, scale, o, cfg.seeds, budget)],
                 develop.workers)
        tuned = {side: run_seeds(d, tasks, scale, o, seeds=cfg.seeds, budgets=budget) for side, (d, o) in sides.items()}
        entry = calibration_entry(teacher, tuned["teacher"], tuned["control"], control_dir)
        chance = glue_entry({t: majority_baseline(t, dataclasses.replace(FinetuneConfig.load(scale, t), **budget[t]))
                             for t in tasks})
        judged = decision_tasks(entry, chance, cfg.margins)
        for task in tasks:
            column = _judged_column(task)
            interval = entry["vs_control_by_task"].get(column) or {}
            step = {"rung": k, "budget": dict(rung), "teacher": entry["tasks"][column],
                    "control": entry["control"]["tasks"][column], "majority": chance["tasks"][column],
                    "difference": interval.get("difference"), "ci95": interval.get("ci95"),
                    "passes": column in judged["tasks"], "reason": judged["left_out"].get(column),
                    "seconds": sum(r.get("seconds") or 0 for side in tuned.values() for r in side[task])}
            climbing[task]["rungs"].append(step)
            used = [r.get("train_examples") for r in tuned["teacher"][task] if r.get("train_examples") is not None]
            asked = effective_budget(scale, task, rung, None)["max_train_examples"]
            if used and (asked is None or min(used) < asked):
                available[task] = min(used)
            if step["passes"]:
                climbing[task]["chosen"] = k
            elif step["teacher"] is None:
                climbing[task]["unavailable"] = step["reason"]
    first = FinetuneConfig.load(scale, cfg.tasks[0])
    return {"scale": cfg.scale, "machine": machine_info(), "engine": engine.describe(first.precision),
            "teacher": teacher, "control_dir": str(control_dir),
            "seeds": cfg.seeds,
            "rungs": cfg.rungs, "margins": cfg.margins,
            "scored_on": "examples held out of the train split",
            "tasks": climbing,
            "budgets": {t: cfg.rungs[c["chosen"]] for t, c in climbing.items() if c["chosen"] is not None}}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="mini", help="a scale (configs/<scale>.yaml) or a config file's path")
    args = parser.parse_args(argv)
    layout = Layout(args.scale)
    record = climb(args.scale, layout)
    layout.write_record(RECORD, record, allow_nan=False)
    for task, c in record["tasks"].items():
        last = c["rungs"][-1] if c["rungs"] else {}
        shown = "none" if c["chosen"] is None else f"rung {c['chosen']} {record['rungs'][c['chosen']]}"
        print(f"{task:6s} {shown}  ({last.get('reason') or 'passes'})")


if __name__ == "__main__":
    main()
