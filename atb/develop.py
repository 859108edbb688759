"""Development of the deployable models (notes §7–§8): extract, further train, measure, fine-tune, document.

After the search (notebook 03) picks one architecture per objective and speedup constraint, AutoTinyBERT
*develops* it: the sub-model is extracted from the SuperPLM with its inherited weights, **further trained**
with the SuperPLM's own objective, and fine-tuned downstream. The paper compares the result with
**default-rule BERTs** (d_f = 4·d_m, d_qkv = d_m, 4 layers) of similar latency, developed the same way, and
with **AutoTinyBERT-Fast**, whose search only scores "efficient" candidates and whose development is cheaper
(notes §7: search 150 → 12 and further training 870 → 290 GPU-hours, i.e. about 1/3 of the further
training; configured here as ``fast_steps``).

This module holds that pipeline, shared by notebooks 04–07:

* :func:`plan_models`: the models to develop, named ``<objective>-<method>-<speedup>x``: the best
  architecture of each ``evolved`` and ``fast`` search, and a default-rule baseline
  (``method = "default-rule"``, e.g. ``kd-default-rule-25x``) whose predicted latency is the closest to the
  evolved pick's (:func:`default_rule_baseline`).
* further training is :func:`atb.train.further_train` (shared with the ranking studies): extraction +
  further training of one model, resumable and cached, with its cost in CPU-seconds.
* :func:`glue_entry` / :func:`squad_entry`: one model's row of the GLUE / SQuAD tables, unavailable tasks
  as ``None`` with the reason.
* **untrained controls**: :func:`export_control` writes a randomly initialised model of a developed model's shape
  (``Layout.control(arch)``); notebooks 05–06 fine-tune it with the same budgets and seeds, so "did the developed
  model learn anything from pre-training" is a paired comparison like the paper's claims.
* **seeds and intervals**: :func:`glue_row` / :func:`squad_row` turn :func:`atb.finetune.run_seeds` results of a
  model and its control into a table row (seed means, 95 % intervals over seeds and dev examples, the paired
  difference from the control); :func:`comparison_intervals` pools the model pairs of each comparison
  (:data:`COMPARISONS`, and developed vs control) into one paired bootstrap (:mod:`atb.stats`), leaving out the
  pairs that hold a model which did not beat its control.
* :func:`development_costs`: claim 5, the cost of the full method vs the fast one vs training from scratch.
* :func:`model_card` / :func:`write_model_card`: a developed model's card, the exported model's card
  (:func:`atb.extract.export_card`) with its latency, further training and GLUE / SQuAD scores.

Settings per scale: section ``develop`` of ``configs/<scale>.yaml`` (:class:`DevelopConfig`); fine-tuning budgets
are its section ``finetune``.
"""

from __future__ import annotations

import copy
import json
import shutil
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config
from .controls import CONTROL_SEED, export_control
from .distill import WarmupConfig, log_cpu_seconds, warmup_distill
from .extract import export_card, write_card
from .finetune import (SQUAD_KEYS, SQUAD_TASKS, adopt_chosen_runs, choose_lr, chosen_budgets, column_runs, lr_jobs,
                       run_jobs, run_seeds, seed_jobs)
from .latency_predictor import LatencyFn, predict_latency
from .layout import Layout
from .progress import libraries_quiet
from .records import write_dir_atomic, write_json_atomic
from .space import Arch, SearchSpace
from .stats import Interval, ModelRuns, paired_bootstrap, score_interval
from .teacher import first_layers, load_teacher, teacher_dir
from .train import TrainConfig

DEFAULT_RULE = "default-rule"  # the method of the default-rule baselines (d_f = 4 d_m, d_qkv = d_m)
METHOD_ORDER = ("evolved", "fast", DEFAULT_RULE)  # the models developed per objective and speedup, in table order
METHODS = ("evolved", "fast", DEFAULT_RULE)  # the searched model, the fast method's, the default-rule baseline
# The GLUE table's columns (issue contract): MNLI has two dev sets, the others one number each.
GLUE_COLUMNS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli_m", "mnli_mm", "qnli", "rte", "wnli")
# A model comparison means something only when the best model is this many GLUE-average points above always
# predicting the majority class (notebook 05, the report); below it differences are fine-tuning noise.
MIN_ABOVE_CHANCE = 5.0
# The GLUE average leaves WNLI out, as BERT, TinyBERT and the paper's tables do (its dev set is adversarial).
GLUE_AVERAGE = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli_m", "qnli", "rte")
# Draws of every bootstrap of notebooks 05-06 (atb.stats); its generator is seeded (0), so records are repeatable.
N_BOOT = 1000
# The paper's comparisons at equal latency (first side minus second side, pairs at the same speedup constraint;
# a key neither side names, e.g. the objective, must be equal within a pair) and the prerequisite of all three:
COMPARISONS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "searched_vs_default_rule": ({"method": "evolved"}, {"method": DEFAULT_RULE}),  # claim 2
    "kd_vs_mlm": ({"objective": "kd", "method": "evolved"}, {"objective": "mlm", "method": "evolved"}),  # claim 4
    "fast_vs_evolved": ({"method": "fast"}, {"method": "evolved"}),  # claim 5 (fast nearly as good)
}
LEARNED = "developed_vs_control"  # every developed model vs its untrained control: did pre-training teach anything?


# ------------------------------------------------------------------------------------------- config
@dataclass
class DevelopConfig:
    """How one scale develops its models: the ``develop`` section of ``configs/<scale>.yaml``."""

    steps: int = 100  # further-training steps of the searched (evolved) models and the baselines
    fast_steps: int = 33  # of AutoTinyBERT-Fast's models (the notes' 870 -> 290 GPU-hours: about 1/3)
    baseline_layers: int = 4  # the paper's default-rule baselines all have 4 layers ...
    baseline_tolerance: float = 0.1  # ... unless none is within 10 % of the pick's predicted latency: then another depth
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the scale's `pretrain` for further training
    glue_tasks: list[str] = field(default_factory=lambda: ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli",
                                                           "qnli", "rte", "wnli"])
    squad_tasks: list[str] = field(default_factory=lambda: ["squad_v1.1", "squad_v2.0"])
    seeds: int = 3  # fine-tuning seeds per model and task (atb.finetune.run_seeds)
    # fewer seeds for the untrained controls (None: ``seeds``; they are paired with the models' seeds they share) and
    # for SQuAD (None: ``seeds``), where a small scale's budget cannot afford them all
    control_seeds: int | None = None
    squad_seeds: int | None = None
    # learning rates tried per task on a split held out of the train set (atb.finetune.choose_lr), by every model and
    # every control for itself, the field's practice (a rate that suits one size can leave a smaller model at the
    # constant prediction); None: every run at the budget's own rate
    lr_candidates: list[float] | None = None
    workers: int = 1  # fine-tuning processes side by side (atb.finetune.run_jobs); 2 on a 2-core CPU: ~1.6x faster
    # which models to develop per objective, among "evolved", "fast" and "default-rule" (None: all three)
    methods: dict[str, list[str]] | None = None
    # the speedup targets whose "fast" pick is developed (None: every target): claim 5 compares the fast method's
    # cost and quality with the evolved one's, which one target decides, while each model costs fine-tunings
    fast_speedups: list[float] | None = None
    squad_min_f1: float = 40.0  # SQuAD v1.1 decides only where the teacher reaches this F1 (:func:`squad_decision`)
    # The calibration model (:func:`calibration_model`) is the teacher's first ``calibration_layers`` layers (None:
    # the whole teacher). The whole teacher can learn a task at a budget too small for any cut of it to re-learn the
    # task (benchmarks/bench_depth_cut.py); a mild cut of it says at which budgets models cut from it can.
    calibration_layers: int | None = None
    # GLUE tasks left out of the whole study at this scale, neither calibrated nor fine-tuned (notebooks 05-09), each
    # with its measured reason, ``{task: reason}``: where no budget the scale can spend on every developed model and
    # control teaches the developed models the task (mini: MRPC, CoLA and STS-B, which they do not learn even with
    # every train example or nearly, benchmarks/bench_developed_budgets.py). The ladder (``atb.budgets``) still says
    # whether a budget teaches the calibration model; the decision tasks and the report name the task with its reason,
    # so no average drops it silently.
    leave_out: dict[str, str] = field(default_factory=dict)
    scale: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "fast_steps", "baseline_layers", "seeds", "workers", "control_seeds", "squad_seeds",
                     "calibration_layers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"DevelopConfig.{name} must be >= 1, got {getattr(self, name)}")
        unknown = set(self.leave_out) - set(self.glue_tasks)
        if unknown:
            raise ValueError(f"DevelopConfig.leave_out: {sorted(unknown)} are not among glue_tasks "
                             f"({', '.join(self.glue_tasks)})")
        unsaid = [task for task, reason in self.leave_out.items() if not isinstance(reason, str) or not reason.strip()]
        if unsaid:
            raise ValueError(f"DevelopConfig.leave_out: {unsaid} need the measured reason they are left out for")
        for objective, methods in (self.methods or {}).items():
            unknown = set(methods) - set(METHOD_ORDER)
            if objective not in ("mlm", "kd") or unknown:
                raise ValueError(f"DevelopConfig.methods: {objective!r}: {sorted(unknown) or 'not an objective'}; "
                                 f"objectives are 'mlm' / 'kd', methods {', '.join(METHOD_ORDER)}")

    def seed_counts(self, tasks: Sequence[str]) -> tuple[int, int]:
        """(fine-tuning seeds of each developed model, of each untrained control) on ``tasks`` (GLUE or SQuAD):
        the controls run the first of the models' seeds."""
        n = (self.squad_seeds or self.seeds) if any(t in SQUAD_TASKS for t in tasks) else self.seeds
        return n, min(n, self.control_seeds or n)

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> DevelopConfig:
        return config.load_section(cls, scale, "develop", overrides)

    @property
    def glue_tasks_run(self) -> list[str]:
        """The GLUE tasks notebook 05 calibrates on: ``glue_tasks`` but those the scale leaves out (``leave_out``)."""
        return [t for t in self.glue_tasks if t not in self.leave_out]

    def steps_for(self, method: str) -> int:
        return self.fast_steps if method == "fast" else self.steps

    def train_config_for(self, objective: str, method: str) -> TrainConfig:
        """Further training with the SuperPLM's ``objective`` for ``method``'s steps (:func:`further_train`
        sets the architecture and the initial weights)."""
        return TrainConfig.load(self.scale, objective, steps=self.steps_for(method), **self.train)


# ------------------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class DevModel:
    """One model to develop: a search's pick (``evolved`` / ``fast``) or a default-rule baseline (``default-rule``)."""

    name: str
    arch: Arch
    objective: str  # of the SuperPLM it is extracted from and further trained with
    method: str  # evolved | fast | default-rule
    speedup: float  # the speedup constraint it was chosen for (measured speedups come later)
    predicted_latency_ms: float
    search: Mapping[str, Any] | None = None  # the search's summary (cost, fitness), None for a baseline

    @property
    def kind(self) -> str:
        return "baseline" if self.method == DEFAULT_RULE else "searched"

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": str(self.arch), "objective": self.objective, "method": self.method,
                "kind": self.kind, "speedup_target": self.speedup,
                "predicted_latency_ms": self.predicted_latency_ms}


def model_name(objective: str, method: str, speedup: float) -> str:
    return f"{objective}-{method}-{speedup:.3g}x"  # 25x, 4.6x, 401x: constraints from quantiles are not round


def default_rule_archs(space: SearchSpace, layers: int, tolerance: float = 0.05) -> list[Arch]:
    """Every BERT-shaped architecture of ``space`` with ``layers`` layers: d_f = 4·d_m and d_qkv = d_m.

    Where the grid holds no exact d_qkv = d_m or d_f = 4·d_m (e.g. 12 heads need d_qkv divisible by 12), the
    nearest grid values are taken if within ``tolerance``, as the paper's own baselines do (4/512/2048/12/516).
    A toy grid with no such point at all (the smoke space) gets the points nearest to the rule.
    """
    if layers not in space.layers:
        raise ValueError(f"baseline_layers={layers} is outside the space's layers {space.layers.describe()}")
    deviation: dict[Arch, float] = {}
    for hidden in space.hidden.values():
        ffn = min(space.ffn.values(), key=lambda f: abs(f - 4 * hidden))
        for heads in space.heads.values():
            fits = [q for q in space.qkv.values() if q % heads == 0 and space.contains(Arch(layers, hidden, ffn, heads, q))]
            if fits:
                qkv = min(fits, key=lambda q: (abs(q - hidden), q))
                deviation[Arch(layers, hidden, ffn, heads, qkv)] = max(abs(ffn - 4 * hidden) / (4 * hidden),
                                                                      abs(qkv - hidden) / hidden)
    if not deviation:
        return []
    limit = tolerance if min(deviation.values()) <= tolerance else min(deviation.values())
    return sorted((a for a, d in deviation.items() if d <= limit), key=lambda a: (a.hidden, a.heads))


def default_rule_baseline(space: SearchSpace, latency_fn: LatencyFn, target_ms: float,
                          layers: int, tolerance: float | None = None) -> tuple[Arch, float]:
    """The default-rule architecture whose predicted latency is closest (in ratio) to ``target_ms``.

    ``latency_fn``: a latency predictor (``.predict(archs)``) or a function of a list of archs, in ms. With
    ``tolerance``, a baseline must lie within that fraction of ``target_ms``: when no ``layers``-layer one does
    (e.g. at high speedups, where even the narrowest 4-layer BERT is too slow), the nearest depth that has one is
    taken, so that a baseline is never compared with a pick at another latency (mlm-bert-50x once measured 40x
    beside its pick's 50x)."""
    depths = sorted(space.layers.values(), key=lambda d: (abs(d - layers), d)) if tolerance is not None else [layers]
    if layers not in space.layers:
        raise ValueError(f"baseline_layers={layers} is outside the space's layers {space.layers.describe()}")
    closest: tuple[Arch, float] | None = None
    for depth in depths:
        archs = default_rule_archs(space, depth)
        if not archs:
            continue
        latencies = [float(x) for x in predict_latency(latency_fn, archs)]
        best = min(range(len(archs)), key=lambda i: abs(latencies[i] / target_ms - 1))
        if closest is None:
            closest = archs[best], latencies[best]
        if tolerance is None or abs(latencies[best] / target_ms - 1) <= tolerance:
            return archs[best], latencies[best]
    if closest is None:
        raise ValueError(f"the space holds no default-rule architecture with {layers} layers")
    return closest  # none within the tolerance at any depth: the closest one at ``layers``


def plan_models(searches: Iterable[Mapping[str, Any]], spaces: Mapping[str, SearchSpace],
                latency_fn: LatencyFn, cfg: DevelopConfig) -> list[DevModel]:
    """The models of notebooks 04–07 from notebook 03's search records (``results/<scale>/03_search.json``).

    Per objective and speedup: the ``evolved`` and ``fast`` searches' best architectures, and a default-rule
    baseline at the evolved pick's predicted latency (at the fast pick's if no evolved search ran); ``cfg.methods``
    keeps only the listed ones per objective (an objective it does not name gets none), ``cfg.fast_speedups`` the
    fast picks of the listed targets only.
    """
    picked: dict[tuple[str, float], dict[str, DevModel]] = {}
    for s in searches:
        if s["method"] not in ("evolved", "fast"):
            continue
        key = (s["objective"], float(s["speedup"]))
        picked.setdefault(key, {})[s["method"]] = DevModel(
            model_name(s["objective"], s["method"], s["speedup"]), Arch.parse(s["best_arch"]), s["objective"],
            s["method"], float(s["speedup"]), float(s["predicted_latency_ms"]),
            {k: s[k] for k in ("best_fitness", "cpu_seconds", "wall_seconds", "evaluated") if k in s})
    models = []
    for (objective, speedup), by_method in sorted(picked.items()):
        reference = by_method.get("evolved") or by_method["fast"]
        arch, latency = default_rule_baseline(spaces[objective], latency_fn, reference.predicted_latency_ms,
                                              cfg.baseline_layers, cfg.baseline_tolerance)
        baseline = DevModel(model_name(objective, DEFAULT_RULE, speedup), arch, objective, DEFAULT_RULE, speedup,
                            latency)
        wanted = METHOD_ORDER if cfg.methods is None else cfg.methods.get(objective, [])
        if cfg.fast_speedups is not None and not any(abs(speedup - s) < 1e-9 for s in cfg.fast_speedups):
            wanted = [m for m in wanted if m != "fast"]
        models += [m for m in (*(by_method[k] for k in METHOD_ORDER if k in by_method), baseline)
                   if m.method in wanted]
    return models


# ------------------------------------------------------------------------------------------ tables
def glue_entry(results: Mapping[str, Mapping[str, Any]]) -> dict:
    """One model's GLUE row from :func:`atb.finetune.run` results: ``{"tasks": {column: score | None},
    "avg", "avg_over", "unavailable": {column: reason}}``.

    ``avg`` is the mean over the columns of :data:`GLUE_AVERAGE` that have a score (``avg_over`` lists
    them); offline it is an average over fewer tasks than the paper's and is labelled so wherever shown.
    """
    tasks: dict[str, float | None] = {c: None for c in GLUE_COLUMNS}
    unavailable: dict[str, str] = {}
    for task, result in results.items():
        columns = ("mnli_m", "mnli_mm") if task == "mnli" else (task,)
        for column in columns:
            if result.get("score") is None:
                unavailable[column] = result.get("reason") or "not scored"
            elif task == "mnli":
                tasks[column] = result["metrics"]["accuracy" + column.removeprefix("mnli")]
            else:
                tasks[column] = result["score"]
    for column in GLUE_COLUMNS:
        if column not in unavailable and tasks[column] is None:
            unavailable[column] = "not run at this scale (develop.glue_tasks of configs/<scale>.yaml)"
    scored = [c for c in GLUE_AVERAGE if tasks[c] is not None]
    return {"tasks": tasks, "avg": statistics.fmean(tasks[c] for c in scored) if scored else None,
            "avg_over": scored, "unavailable": unavailable}


def squad_entry(results: Mapping[str, Mapping[str, Any]]) -> dict:
    """One model's SQuAD row: ``{"squad_v1": {"em", "f1"} | None, "squad_v2": … , "unavailable": {…}}``."""
    entry: dict[str, Any] = {"unavailable": {}}
    for task, key in (("squad_v1.1", "squad_v1"), ("squad_v2.0", "squad_v2")):
        result = results.get(task)
        if result is None or result.get("score") is None:
            entry[key] = None
            entry["unavailable"][key] = (result or {}).get("reason") or "not run at this scale"
        else:
            entry[key] = {"em": result["metrics"]["em"], "f1": result["metrics"]["f1"]}
    return entry


# ------------------------------------------------------------------------------------ untrained controls
def control_model(layout: Layout, arch: Arch | str, like: str | Path | None = None) -> Path:
    """The untrained control of ``arch`` in its folder of ``layout`` (``Layout.control``), exported if needed."""
    return export_control(arch, layout.control(str(arch), CONTROL_SEED), seed=CONTROL_SEED, like=like)


def model_rates(row: Mapping[str, Any] | None) -> dict[str, dict[str, float]] | None:
    """``budgets`` (:func:`atb.finetune.run_seeds`) that fine-tune a model as its notebook did: the rates it chose for
    itself, kept in its row (:func:`with_rates`); ``None`` (the budget's own rate) for a row without them."""
    own = ((row or {}).get("learning_rates") or {}).get("developed")
    return chosen_budgets(own) if own else None


def own_rates_table(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per model of ``rows`` (:func:`with_rates`), the learning rate it and its control chose per task: ``{name:
    {task: lr, "control " + task: lr}}``, for a notebook's table (rows without their own rates are left out)."""
    table = {}
    for name, row in rows.items():
        own = row.get("learning_rates")
        if own:
            table[name] = {**{t: c.get("lr") for t, c in (own.get("developed") or {}).items()},
                           **{f"control {t}": c.get("lr") for t, c in (own.get("control") or {}).items()}}
    return table


_GROUP_OF_SIDE = {"scores": "developed", "control": "control"}  # finetune_with_controls' sides -> learning_rates keys


def finetune_with_controls(layout: Layout, developed: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                           scale: str | Path, cfg: DevelopConfig) -> dict[str, dict[str, Any]]:
    """Fine-tune every developed model and its untrained control (:func:`control_model`) on ``tasks`` with the seeds
    of :meth:`DevelopConfig.seed_counts` and the same budgets, each at the learning rate it chose for itself among
    ``cfg.lr_candidates`` on examples held out of the train split (:func:`atb.finetune.choose_lr`, cached in
    ``<its fine-tuning folder>/lr_selection``; without candidates, at the budget's own rate). A model whose record
    names ``control_dir`` (and ``finetune_dir``) brings its own untrained control (fine-tuned into
    ``control_dir/finetune``) and output folder.

    All runs go to one pool of ``cfg.workers`` processes (:func:`atb.finetune.run_jobs`; a control shared by two
    models of one shape runs once); each is cached, so an interrupted notebook resumes. Returns per model name
    ``{"scores": {task: [result per seed]}, "control": {...}, "control_dir": path, "learning_rates": {"developed",
    "control"} | None}`` (what :func:`atb.finetune.run_seeds` returns, read back from the cache; the choices per
    task with their held-out scores).
    """
    n_seeds, n_control = cfg.seed_counts(tasks)
    sides_of = {}
    for name, m in developed.items():
        if "control_dir" in m:  # a model that brings its own control (EfficientBERT: not an atb-bert shape)
            control_dir, control_out = Path(m["control_dir"]), Path(m["control_dir"]) / "finetune"
        else:
            control_dir = control_model(layout, m["arch"], like=m["model_dir"])
            control_out = layout.control_finetune(m["arch"], CONTROL_SEED)
        sides_of[name] = {"scores": (m["model_dir"], Path(m.get("finetune_dir") or layout.finetune(name)), n_seeds),
                          "control": (control_dir, control_out, n_control)}
    own = _own_rates(sides_of, tasks, scale, cfg) if cfg.lr_candidates else None
    plan, jobs = {}, {}
    for name, sides in sides_of.items():
        for side, (model_dir, out, n) in sides.items():
            budgets = None if own is None else chosen_budgets(own[name][_GROUP_OF_SIDE[side]])
            for job in seed_jobs(model_dir, tasks, scale, out, n, budgets):
                jobs[(job.model_dir, job.task, job.seed, job.output_dir)] = job
            plan.setdefault(name, {})[side] = (model_dir, out, budgets, n)
    run_jobs(list(jobs.values()), cfg.workers)
    return {name: {"control_dir": sides["control"][0],
                   **{side: run_seeds(d, tasks, scale, out, seeds=n, budgets=budgets)
                      for side, (d, out, budgets, n) in sides.items()},
                   "learning_rates": None if own is None else own[name]}
            for name, sides in plan.items()}


def _own_rates(sides_of: Mapping[str, Mapping[str, tuple]], tasks: Sequence[str], scale: str | Path,
               cfg: DevelopConfig) -> dict[str, dict[str, dict]]:
    """Every model's and every control's own learning rate per task (:func:`atb.finetune.choose_lr`), their held-out
    runs in one pool of ``cfg.workers`` processes: ``{name: {"developed": choice, "control": choice}}``."""
    folders = {d: Path(out) / "lr_selection" for sides in sides_of.values() for d, out, _ in sides.values()}
    jobs = {(job.model_dir, job.task, job.output_dir): job
            for d, folder in folders.items() for job in lr_jobs(d, tasks, scale, cfg.lr_candidates, folder)}
    run_jobs(list(jobs.values()), cfg.workers)
    chosen = {d: choose_lr(d, tasks, scale, cfg.lr_candidates, folder) for d, folder in folders.items()}  # read back
    for d, folder in folders.items():  # the chosen rate's run is the first seed's run: not fine-tuned twice
        adopt_chosen_runs(chosen[d], folder, folder.parent)
    return {name: {group: chosen[sides[side][0]] for side, group in _GROUP_OF_SIDE.items()}
            for name, sides in sides_of.items()}


def finetune_and_compare(layout: Layout, models: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                         scale: str | Path, cfg: DevelopConfig, row: Callable, measure: str,
                         comparisons: Mapping[str, Sequence[tuple[str, str]]]
                         ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Fine-tune ``models`` and their controls (:func:`finetune_with_controls`), make each model's row with ``row``
    (:func:`glue_row` or :func:`squad_row`), and compare models on ``measure``: per name of ``comparisons``, one
    :func:`pooled_difference` over its pairs ``(a, b)`` of model names (pairs naming a model not developed are
    left out). Notebooks 08 and 09 compare their developed models this way. Returns ``(rows, {name: interval})``."""
    tuned = finetune_with_controls(layout, models, tasks, scale, cfg)
    rows = {n: with_rates(row(m, tuned[n]["scores"], tuned[n]["control"], tuned[n]["control_dir"]), tuned[n])
            for n, m in models.items()}
    runs = {n: column_runs(tuned[n]["scores"]) for n in models}
    return rows, {name: pooled_difference([(a, b) for a, b in pairs if a in models and b in models], runs, runs,
                                          measure)
                  for name, pairs in comparisons.items()}


def with_rates(row: dict, tuned: Mapping[str, Any]) -> dict:
    """``row`` (:func:`glue_row` / :func:`squad_row`) with the learning rates its model and its control chose for
    themselves (``learning_rates``: ``{"developed", "control"}``, each :func:`atb.finetune.choose_lr`'s result);
    unchanged where nothing was chosen (no ``develop.lr_candidates``: every run at the budget's own rate)."""
    return row if not tuned.get("learning_rates") else {**row, "learning_rates": tuned["learning_rates"]}


# ---------------------------------------------------------------------------- seeds and intervals
def _ci(interval: Interval | None) -> list[float] | None:
    return None if interval is None else list(interval.ci95)


def _seed_count(results: Mapping[str, Sequence[Any]]) -> int:
    counts = {len(v) for v in results.values()}
    if len(counts) > 1:
        raise ValueError(f"every task needs the same number of seeds, got {sorted(counts)}")
    return counts.pop() if counts else 0


def _seed_values(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[int]:
    per_seed = next(iter(results.values()), [])
    return [(r.get("config") or {}).get("seed", k) for k, r in enumerate(per_seed)]


def _mean_metrics(per_seed: Sequence[Mapping[str, Any]]) -> dict | None:
    if any(r.get("metrics") is None for r in per_seed):
        return None
    return {k: statistics.fmean(r["metrics"][k] for r in per_seed) for k in per_seed[0]["metrics"]}


def glue_seed_entry(results: Mapping[str, Sequence[Mapping[str, Any]]], *, n_boot: int = N_BOOT) -> dict:
    """One model's GLUE row over seeds, from :func:`atb.finetune.run_seeds` results: :func:`glue_entry`'s keys with
    ``tasks`` and ``avg`` the **means over seeds**, plus ``seeds`` (how many), ``seed_values``, ``per_seed``
    (``{column: [score of each seed]}``), ``tasks_ci95`` (``{column: [lo, hi] | None}``: 95 % interval of the
    seed-mean score from resampling seeds and dev examples), ``avg_ci95`` (the same for the average) and
    ``metrics`` (every metric's mean over seeds). An interval is ``None`` where a column has no score or no
    per-example predictions."""
    n = _seed_count(results)
    entries = [glue_entry({t: rs[k] for t, rs in results.items()}) for k in range(n)] or [glue_entry({})]
    first = entries[0]
    tasks = {c: statistics.fmean(e["tasks"][c] for e in entries)
             if all(e["tasks"][c] is not None for e in entries) else None for c in GLUE_COLUMNS}
    unavailable = {**first["unavailable"], **{c: f"scored by only some of the {n} seeds" for c in GLUE_COLUMNS
                                              if tasks[c] is None and c not in first["unavailable"]}}
    avg_over = [c for c in GLUE_AVERAGE if tasks[c] is not None]
    runs = column_runs(results)
    avg_runs = [runs[c].alone(c) for c in avg_over if c in runs]
    return {"tasks": tasks, "avg": statistics.fmean(tasks[c] for c in avg_over) if avg_over else None,
            "avg_over": avg_over, "unavailable": unavailable, "seeds": n, "seed_values": _seed_values(results),
            "per_seed": {c: [e["tasks"][c] for e in entries] for c in GLUE_COLUMNS if tasks[c] is not None},
            "tasks_ci95": {c: _ci(score_interval([runs[c].alone(c)], n_boot=n_boot)) if c in runs and
                           tasks[c] is not None else None for c in GLUE_COLUMNS},
            "avg_ci95": _ci(score_interval(avg_runs, n_boot=n_boot))
            if avg_over and len(avg_runs) == len(avg_over) else None,
            "metrics": {t: _mean_metrics(rs) for t, rs in results.items()}}


def squad_seed_entry(results: Mapping[str, Sequence[Mapping[str, Any]]], *, n_boot: int = N_BOOT) -> dict:
    """One model's SQuAD row over seeds: :func:`squad_entry`'s keys with EM / F1 the means over seeds, plus
    ``seeds``, ``seed_values``, ``per_seed`` (``{"squad_v1": [{"em", "f1"} of each seed]}``) and ``tasks_ci95``
    (``{"squad_v1": {"em": [lo, hi], "f1": [lo, hi]} | None, "squad_v2": ...}``, questions and seeds resampled)."""
    n = _seed_count(results)
    entries = [squad_entry({t: rs[k] for t, rs in results.items()}) for k in range(n)] or [squad_entry({})]
    runs = column_runs(results)
    entry: dict[str, Any] = {"unavailable": dict(entries[0]["unavailable"]), "seeds": n,
                             "seed_values": _seed_values(results), "per_seed": {}, "tasks_ci95": {}}
    for key in SQUAD_KEYS.values():
        scored = all(e[key] is not None for e in entries)
        entry[key] = {m: statistics.fmean(e[key][m] for e in entries) for m in ("em", "f1")} if scored else None
        if scored:
            entry["per_seed"][key] = [e[key] for e in entries]
        elif key not in entry["unavailable"]:
            entry["unavailable"][key] = f"scored by only some of the {n} seeds"
        entry["tasks_ci95"][key] = ({m: _ci(score_interval([runs[f"{key}.{m}"].alone(f"{key}.{m}")], n_boot=n_boot))
                                     for m in ("em", "f1")} if scored and f"{key}.f1" in runs else None)
    return entry


GLUE_MEASURE = "GLUE avg"  # comparisons on the GLUE average (its columns scored on both sides) ...
SQUAD_MEASURE = "SQuAD v1.1 F1"  # ... or on SQuAD v1.1 F1
DECISION_MEASURE = "decision avg"  # ... or the GLUE average over the decision tasks (:func:`decision_tasks`)
_MEASURE_COLUMNS = {GLUE_MEASURE: GLUE_AVERAGE, SQUAD_MEASURE: ("squad_v1.f1",)}  # any other measure: one column


def pooled_difference(pairs: Sequence[tuple[str, str]], a_runs: Mapping[str, Mapping[str, ModelRuns]],
                      b_runs: Mapping[str, Mapping[str, ModelRuns]], measure: str = GLUE_MEASURE, *,
                      columns: Sequence[str] | None = None, n_boot: int = N_BOOT) -> dict:
    """One paired bootstrap over every pair ``(a, b)`` of ``pairs`` (``a_runs[a]`` against ``b_runs[b]``, from
    :func:`column_runs`) on ``measure``'s columns that both have: ``{"difference", "ci95", "n", "n_boot", "pairs",
    "columns", "seeds", "measure", "reason"}``. ``columns``: the measure's columns when its name does not say them
    (:data:`DECISION_MEASURE`: the decision tasks).

    The difference is the mean over pairs of each pair's mean difference over the columns (its GLUE-average or
    SQuAD-F1 difference when every pair has the same columns). Seeds common to all runs are resampled jointly; the
    dev examples of a column are resampled once per draw for all pairs (key = the column); the pairs are fixed
    (:mod:`atb.stats`). ``n`` = seeds × pairs × columns. Without any scored pair, ``difference``, ``ci95`` and
    ``n`` are ``None`` and ``reason`` says why."""
    columns = tuple(columns) if columns is not None else _MEASURE_COLUMNS.get(measure, (measure,))
    usable = [(a, b) for a, b in pairs if any(c in a_runs.get(a, {}) and c in b_runs.get(b, {}) for c in columns)]
    empty = {"difference": None, "ci95": None, "n": None, "n_boot": n_boot, "pairs": [list(p) for p in usable],
             "columns": [], "seeds": [], "measure": measure}
    if not columns:
        return {**empty, "reason": f"{measure} has no column"}
    if not usable:
        return {**empty, "reason": f"no pair of models with {measure} scored on both sides" if pairs else
                "no pairs at this scale (no two such models were developed for the same speedup constraint)"}
    cells = [(a, b, c) for a, b in usable for c in columns if c in a_runs[a] and c in b_runs[b]]
    seeds = sorted(set.intersection(*(set(a_runs[a][c].seeds) & set(b_runs[b][c].seeds) for a, b, c in cells)))
    if not seeds:
        return {**empty, "reason": "the paired models share no fine-tuning seed"}
    interval = paired_bootstrap([a_runs[a][c].against(b_runs[b][c], key=c, seeds=seeds) for a, b, c in cells],
                                n_boot=n_boot)
    return {**interval.to_dict(), "pairs": [list(p) for p in usable],
            "columns": sorted({c for _, _, c in cells}, key=list(columns).index), "seeds": seeds, "measure": measure,
            "reason": None}


Results = Mapping[str, Sequence[Mapping[str, Any]]]  # atb.finetune.run_seeds: {task: [result of each seed]}


def glue_row(model: Mapping[str, Any], results: Results, control: Results, control_dir: str | Path, *,
             n_boot: int = N_BOOT) -> dict:
    """A developed model's row of notebook 05's record: its identity (from its notebook-04 record ``model``),
    :func:`glue_seed_entry` of its ``results`` (:func:`atb.finetune.run_seeds`), ``control`` (the same for its
    untrained control: ``{"arch", "model_dir", "tasks", "avg", "tasks_ci95", ...}``) and ``vs_control``
    (:func:`pooled_difference` of the model against its control on the GLUE average)."""
    vs = pooled_difference([("model", "control")], {"model": column_runs(results)},
                           {"control": column_runs(control)}, GLUE_MEASURE, n_boot=n_boot)
    return {**_identity(model), **glue_seed_entry(results, n_boot=n_boot),
            "control": {"arch": model["arch"], "model_dir": str(control_dir),
                        **glue_seed_entry(control, n_boot=n_boot)},
            "vs_control": _bare(vs)}


def squad_row(model: Mapping[str, Any], results: Results, control: Results, control_dir: str | Path, *,
              n_boot: int = N_BOOT) -> dict:
    """Notebook 06's row, as :func:`glue_row` (``vs_control`` on SQuAD v1.1 F1)."""
    vs = pooled_difference([("model", "control")], {"model": column_runs(results)},
                           {"control": column_runs(control)}, SQUAD_MEASURE, n_boot=n_boot)
    return {**_identity(model), **squad_seed_entry(results, n_boot=n_boot),
            "control": {"arch": model["arch"], "model_dir": str(control_dir),
                        **squad_seed_entry(control, n_boot=n_boot)},
            "vs_control": _bare(vs)}


# ------------------------------------------------------------------------------------ the calibration row
CALIBRATION = "teacher"  # notebooks 05-06: the teacher (or its mildest cut) beside its untrained control


def teacher_model(scale: str | Path) -> dict[str, Any]:
    """The KD SuperPLM's teacher as a model of notebooks 05–06 (at mini the packaged MiniLM, the warm start's source
    and the space's largest architecture): ``{"teacher", "model_dir", "arch", "kind"}``."""
    from transformers import AutoConfig

    teacher = TrainConfig.load(scale, "kd").teacher
    directory = teacher_dir(teacher)
    c = AutoConfig.from_pretrained(directory)
    arch = Arch(c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
                getattr(c, "qkv_size", None) or c.hidden_size)
    return {"teacher": teacher, "model_dir": str(directory), "arch": str(arch), "kind": "calibration"}


def calibration_model(scale: str | Path, layout: Layout | None = None) -> dict[str, Any]:
    """The model that says what a scale's budgets allow (notebooks 05–06, :mod:`atb.budgets`), fine-tuned like the
    developed models: the teacher (:func:`teacher_model`), or with ``develop.calibration_layers`` its first that many
    layers (cut into ``layout``'s runs, :func:`atb.teacher.first_layers`; ``layers`` and ``teacher_layers`` say so). A
    task on which it does not beat its untrained control cannot show what pre-training taught the developed models:
    the teacher is the ceiling, and a mild cut of it says whether a budget lets a cut model re-learn the task."""
    model = teacher_model(scale)
    cfg = DevelopConfig.load(scale)
    layers = cfg.calibration_layers
    full = Arch.parse(model["arch"])
    if layers is None or layers == full.layers:
        return model
    if layers > full.layers:
        raise ValueError(f"develop.calibration_layers of {scale} is {layers}; the teacher {model['teacher']} has "
                         f"{full.layers} layers")
    layout = layout or Layout(cfg.scale)
    directory = first_layers(model["model_dir"], layers, layout.runs / "calibration" / f"first-{layers}-layers")
    return {**model, "model_dir": str(directory), "arch": str(replace(full, layers=layers)),
            "layers": layers, "teacher_layers": full.layers}


def rates_text(choice: Mapping[str, Mapping[str, Any]] | None) -> str:
    """One line naming the learning rate chosen per task (``choice``: :func:`atb.finetune.choose_lr`'s result),
    or saying that every run used the budget's own rate."""
    chosen = [f"{task} {c['lr']:g}" for task, c in (choice or {}).items() if c.get("lr") is not None]
    return "; ".join(chosen) if chosen else "the budget's own rate for every task"


def calibrate(layout: Layout, tasks: Sequence[str], scale: str | Path, cfg: DevelopConfig, *, squad: bool = False,
              n_boot: int = N_BOOT) -> dict:
    """Fine-tune the teacher (:func:`calibration_model`) and its untrained control on ``tasks`` with exactly the
    developed models' budgets and seeds, each at the learning rate it chooses for itself (:func:`finetune_with_controls`:
    a ceiling is the teacher at *its* best rate, which can be far from the small models'): the row of :func:`glue_row`
    (``squad``: :func:`squad_row`) plus ``vs_control_by_task``, the teacher minus its control per column with its
    paired interval, which says per task whether the budget can show learning at all, ``learning_rates`` (the
    teacher's choice per task, with its held-out scores) and ``control_learning_rates`` (its control's)."""
    model = calibration_model(scale, layout)
    tuned = finetune_with_controls(layout, {CALIBRATION: model}, tasks, scale, cfg)[CALIBRATION]
    chosen = tuned["learning_rates"] or {}
    return {**calibration_entry(model, tuned["scores"], tuned["control"], tuned["control_dir"], squad=squad,
                                n_boot=n_boot),
            "learning_rates": chosen.get("developed"), "control_learning_rates": chosen.get("control")}


def calibration_entry(model: Mapping[str, Any], results: Results, control: Results, control_dir: str | Path, *,
                      squad: bool = False, n_boot: int = N_BOOT) -> dict:
    """The calibration row of ``model`` (:func:`calibration_model`) from its fine-tuning ``results`` and its
    ``control``'s (:func:`atb.finetune.run_seeds`): :func:`glue_row` (``squad``: :func:`squad_row`) plus
    ``vs_control_by_task``, per column the teacher minus its control with its paired interval."""
    row = (squad_row if squad else glue_row)(model, results, control, control_dir, n_boot=n_boot)
    mine, theirs = column_runs(results), column_runs(control)
    by_task = {c: _bare(pooled_difference([(CALIBRATION, "control")], {CALIBRATION: mine}, {"control": theirs}, c,
                                          n_boot=n_boot))
               for c in mine if c in theirs and not c.endswith(".em")}
    cut = {k: model[k] for k in ("layers", "teacher_layers") if k in model}
    return {"teacher": model["teacher"], "model_dir": model["model_dir"], **cut, **row, "vs_control_by_task": by_task}


def calibration_label(model: Mapping[str, Any], *, arch: bool = True) -> str:
    """What a calibration model (:func:`calibration_model`, or a record's ``calibration`` / ``teacher`` entry) is,
    in words: "the teacher (6/384/1536/12/384)" or "the teacher's first 5 of 6 layers (5/384/1536/12/384)" (without
    the architecture unless ``arch``)."""
    name = "the teacher"
    if model.get("layers") is not None:  # calibration_model marks a cut only
        name = f"the teacher's first {model['layers']} of {model['teacher_layers']} layers"
    return f"{name} ({model['arch']})" if arch and model.get("arch") else name


def calibration_table(entry: Mapping[str, Any]) -> list[dict]:
    """Rows of a calibration entry (:func:`calibrate`) for a notebook's table: per column the teacher, its control,
    their difference and its interval."""
    scores = entry.get("tasks") or {key: (entry.get(key) or {}).get("f1") for key in SQUAD_KEYS.values()}
    control = entry["control"]
    control_scores = control.get("tasks") or {key: (control.get(key) or {}).get("f1") for key in SQUAD_KEYS.values()}
    rows = []
    for column, iv in entry["vs_control_by_task"].items():
        key = column.split(".")[0]
        lo, hi = iv.get("ci95") or (None, None)
        rows.append({"task": column, "teacher": scores.get(key), "control": control_scores.get(key),
                     "difference": iv.get("difference"), "lo": lo, "hi": hi,
                     "learns": None if lo is None else bool(lo > 0)})
    return rows


def decision_tasks(calibration: Mapping[str, Any], chance: Mapping[str, Any],
                   margins: Mapping[str, float] | None = None,
                   leave_out: Mapping[str, str] | None = None) -> dict:
    """The GLUE columns that decide the claims at this scale, from notebook 05's calibration row (:func:`calibrate`)
    and the majority-class row (``chance``: :func:`glue_entry` of :func:`atb.finetune.majority_baseline`).

    A column of the GLUE average is kept when the calibration model (:func:`calibration_model`: the teacher or a mild
    cut of it), fine-tuned with the study's budget, beats its untrained control with a 95 % interval above 0 **and** by
    at least ``margins[column]`` points (0 when not named) over the better of its control and the majority class. A
    column it cannot learn at this budget cannot show what pre-training taught the developed models (they are cut
    from the teacher); averaging it in only adds noise to
    every comparison, so it is left out, with the reason; so is a task the scale leaves out (``leave_out``,
    :attr:`DevelopConfig.leave_out`: ``{task: measured reason}``). ``{"tasks": [...], "left_out": {column: reason},
    "margins": {...}, "leave_out": {...}}`` in the order of :data:`GLUE_AVERAGE`."""
    margins, who = dict(margins or {}), calibration_label(calibration, arch=False)
    leave_out = dict(leave_out or {})
    teacher, control = calibration.get("tasks") or {}, (calibration.get("control") or {}).get("tasks") or {}
    majority = chance.get("tasks") or {}
    by_task = calibration.get("vs_control_by_task") or {}
    kept, left_out = [], {}
    for column in GLUE_AVERAGE:
        interval, margin = by_task.get(column) or {}, float(margins.get(column, 0.0))
        if column_task(column) in leave_out:
            left_out[column] = f"left out at this scale (develop.leave_out): {leave_out[column_task(column)]}"
            continue
        if teacher.get(column) is None or not interval.get("ci95"):
            left_out[column] = (calibration.get("unavailable") or {}).get(column, "").split(":")[0] or "not scored"
            continue
        lo, hi = interval["ci95"]
        over = teacher[column] - max(v for v in (control.get(column), majority.get(column), -np.inf) if v is not None)
        if lo <= 0:
            left_out[column] = (f"{who} does not beat its control ({interval['difference']:+.1f} points, 95 % "
                                f"interval [{lo:+.1f}, {hi:+.1f}])")
        elif over < margin:
            left_out[column] = (f"{who} is only {over:+.1f} points over the better of its control and the "
                                f"majority class (margin {margin:g})")
        else:
            kept.append(column)
    return {"tasks": kept, "left_out": left_out, "margins": margins, "leave_out": leave_out}


def column_task(column: str) -> str:
    """The GLUE task (:data:`atb.finetune.GLUE_TASKS` name) a table column is scored on (``mnli_m`` -> ``mnli``)."""
    return "mnli" if column.startswith("mnli") else column


def developed_tasks(decision: Mapping[str, Any], cfg: DevelopConfig) -> list[str]:
    """The GLUE tasks notebook 05 fine-tunes the developed models and their controls on: the decision tasks
    (:func:`decision_tasks`). A task outside the decision average tells nothing about the claims at this budget, so
    its fine-tunings are not spent. Where no task passes, every task calibrated (``cfg.glue_tasks_run``), so the
    tables still show what was measured. Notebooks 08, 09 and 12 use the same tasks (:func:`study_tasks`)."""
    return list(dict.fromkeys(column_task(c) for c in decision["tasks"])) or cfg.glue_tasks_run


def study_tasks(glue_record: Mapping[str, Any], cfg: DevelopConfig) -> list[str]:
    """The GLUE tasks a later notebook fine-tunes its models on: those of notebook 05's developed models
    (:func:`developed_tasks`, in ``05_glue.json``), so every system is compared on one set of tasks; every GLUE task
    of the scale where 05 recorded none (a record that fine-tuned on all of them, or no task passed)."""
    return list(glue_record.get("developed_tasks") or cfg.glue_tasks)


def decision_average(runs: Mapping[str, ModelRuns], columns: Sequence[str], *, n_boot: int = N_BOOT) -> dict:
    """One model's GLUE average over the decision tasks ``columns`` (:func:`decision_tasks`) from its
    :func:`column_runs`: ``{"tasks", "avg", "ci95"}``, the mean of the columns' seed-mean scores with its 95 % interval
    (seeds and dev examples resampled, as ``avg_ci95`` of :func:`glue_seed_entry`); ``avg`` None without columns."""
    scored = [c for c in columns if c in runs]
    if not scored:
        return {"tasks": list(columns), "avg": None, "ci95": None}
    means = [statistics.fmean(runs[c].metric(runs[c].runs[s], runs[c].labels) for s in runs[c].seeds) for c in scored]
    return {"tasks": scored, "avg": statistics.fmean(means),
            "ci95": _ci(score_interval([runs[c].alone(c) for c in scored], n_boot=n_boot))}


def headline(row: Mapping[str, Any], record: Mapping[str, Any]) -> dict:
    """The GLUE score a model of notebook 05's ``record`` is judged by (Figure 1, the model cards): its average over
    the decision tasks where the record has them (:func:`decision_average` under ``row["decision"]``), else over
    every scored task (also where no task passed, so that the figure still shows what was measured).
    ``{"measure", "avg", "lo", "hi", "control"}`` (``control``: its untrained control's)."""
    tasks = (record.get("decision_tasks") or {}).get("tasks")
    if tasks and row.get("decision") is not None:
        mine, theirs = row["decision"], (row.get("control") or {}).get("decision") or {}
        measure = f"{DECISION_MEASURE} ({', '.join(tasks)})"
        avg, ci, control = mine["avg"], mine["ci95"], theirs.get("avg")
    else:
        measure, avg, ci = GLUE_MEASURE, row.get("avg"), row.get("avg_ci95")
        control = (row.get("control") or {}).get("avg")
    lo, hi = ci or (None, None)
    return {"measure": measure, "avg": avg, "lo": lo, "hi": hi, "control": control}


def squad_decision(calibration: Mapping[str, Any], min_f1: float) -> dict:
    """Whether SQuAD v1.1 can decide anything at this scale (notebook 06): the teacher, fine-tuned with the study's
    budget (:func:`calibrate`), must beat its untrained control with an interval above 0 and reach ``min_f1``.
    ``{"decides": bool, "teacher_f1", "min_f1", "reason"}`` (``reason`` None when it decides)."""
    f1, who = (calibration.get("squad_v1") or {}).get("f1"), calibration_label(calibration, arch=False)
    interval = (calibration.get("vs_control_by_task") or {}).get("squad_v1.f1") or {}
    if f1 is None or not interval.get("ci95"):
        reason = f"{who} was not scored on SQuAD v1.1"
    elif interval["ci95"][0] <= 0:
        reason = (f"{who} does not beat its untrained control ({interval['difference']:+.1f} F1, 95 % interval "
                  f"[{interval['ci95'][0]:+.1f}, {interval['ci95'][1]:+.1f}])")
    elif f1 < min_f1:
        reason = f"{who} reaches F1 {f1:.1f} at this budget, below {min_f1:g}"
    else:
        reason = None
    return {"decides": reason is None, "teacher_f1": f1, "min_f1": min_f1, "reason": reason}


def _identity(model: Mapping[str, Any]) -> dict:
    return {k: model[k] for k in ("arch", "objective", "speedup", "speedup_target", "kind", "method") if k in model}


def _bare(pooled: Mapping[str, Any]) -> dict:
    """A one-pair :func:`pooled_difference` without the pair's bookkeeping."""
    return {k: pooled[k] for k in ("difference", "ci95", "n", "n_boot", "columns", "seeds", "reason")}


def comparison_intervals(rows: Mapping[str, Mapping[str, Any]], runs: Mapping[str, Mapping[str, ModelRuns]],
                         control_runs: Mapping[str, Mapping[str, ModelRuns]], measure: str = GLUE_MEASURE, *,
                         columns: Sequence[str] | None = None, n_boot: int = N_BOOT) -> dict[str, dict]:
    """Every comparison of :data:`COMPARISONS`, and :data:`LEARNED` (each model against its own control), as one
    :func:`pooled_difference` each (on ``measure``, with ``columns`` as there): ``{name: {"difference", "ci95", "n",
    "pairs", ...}}``; each comparison's ``pairs_left_out``: ``{"a vs b": why}``.

    A pair enters a comparison only if neither of its models is :func:`below_control` on ``measure``: a model that
    did not beat its untrained control holds nothing of what the claims compare (what pre-training taught it), and a
    pair holding one measures which small shape the fine-tuning budget failed to teach. Claims 9 and 10 gate their
    pairs alike (``atb.report.searched_verdict``).

    ``rows``: ``{model: row}`` with ``objective``, ``method``, ``speedup_target`` (notebooks 05/06); pairs are
    matched as in :func:`paired_differences`. ``runs`` / ``control_runs``: ``{model: column_runs(...)}`` of the
    models and of their controls."""
    flat = {name for name in rows if below_control(pooled_difference(
        [(name, name)], runs, control_runs, measure, columns=columns, n_boot=n_boot))}
    out = {}
    for name, (first, second) in COMPARISONS.items():
        pairs = [(p["model"], p["other"]) for p in paired_differences(rows, lambda row: 0.0, first, second)]
        kept = [(a, b) for a, b in pairs if a not in flat and b not in flat]
        left_out = {f"{a} vs {b}": _not_above([m for m in (a, b) if m in flat]) for a, b in pairs if (a, b) not in kept}
        interval = pooled_difference(kept, runs, runs, measure, columns=columns, n_boot=n_boot)
        if pairs and not kept:
            interval["reason"] = "no pair in which both models beat their untrained controls"
        out[name] = {**interval, "pairs_left_out": left_out}
    out[LEARNED] = pooled_difference([(name, name) for name in rows], runs, control_runs, measure, columns=columns,
                                     n_boot=n_boot)
    return out


def _not_above(models: Sequence[str]) -> str:
    return (f"{models[0]} not above its untrained control" if len(models) == 1 else
            f"{' and '.join(models)} not above their untrained controls")


def below_control(vs_control: Mapping[str, Any] | None) -> bool:
    """Whether a model's interval over its untrained control (:func:`pooled_difference` of the one pair) does not lie
    above 0. A model with no such interval (nothing scored) is not below: there is nothing to gate on."""
    ci = (vs_control or {}).get("ci95")
    return ci is not None and ci[0] <= 0


def interval_rows(intervals: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict]:
    """Recorded intervals (``vs_control`` of each model, or :func:`comparison_intervals`) as table rows:
    ``{name: {"difference", "lo", "hi", "n", "pairs"}}`` (``None`` where there is no interval)."""
    rows = {}
    for name, iv in intervals.items():
        iv = iv or {}
        lo, hi = iv.get("ci95") or (None, None)
        rows[name] = {"difference": iv.get("difference"), "lo": lo, "hi": hi, "n": iv.get("n"),
                      "pairs": len(iv["pairs"]) if iv.get("pairs") is not None else None}
    return rows


# ------------------------------------------------------------------------------------ comparisons
def paired_differences(entries: Mapping[str, Mapping[str, Any]], score: Callable[[Mapping[str, Any]], float | None],
                       first: Mapping[str, str], second: Mapping[str, str]) -> list[dict]:
    """The paper's comparisons at equal latency: each entry matching ``first`` against the one matching ``second``
    developed for the same speedup constraint.

    ``entries``: ``{name: row}`` with ``objective``, ``method`` and ``speedup_target`` (notebooks 05/06 rows).
    ``first`` / ``second`` select rows by those keys, e.g. ``{"method": "evolved"}`` vs ``{"method": "default-rule"}``
    (claim 2); a key neither selects (here ``objective``) must be equal in a pair. Pairs where ``score`` is
    ``None`` on either side are left out. Rows: ``{"speedup", "model", "other", "score", "other_score",
    "difference"}``.
    """
    free = [k for k in ("objective", "method") if k not in first and k not in second]

    def matches(row: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
        return all(row[k] == v for k, v in selector.items())

    pairs = []
    for name, row in entries.items():
        if not matches(row, first):
            continue
        for other, match in entries.items():
            if (matches(match, second) and match["speedup_target"] == row["speedup_target"]
                    and all(match[k] == row[k] for k in free)):
                a, b = score(row), score(match)
                if a is not None and b is not None:
                    pairs.append({"speedup": row["speedup_target"], "model": name, "other": other, "score": a,
                                  "other_score": b, "difference": a - b})
    return pairs


def summarize_pairs(pairs: Sequence[Mapping[str, Any]]) -> dict:
    """``{"wins", "pairs", "mean_difference"}``: how often, and by how much on average, the first side scored higher."""
    return {"wins": sum(p["difference"] > 0 for p in pairs), "pairs": len(pairs),
            "mean_difference": statistics.fmean(p["difference"] for p in pairs) if pairs else None}


# --------------------------------------------------------------------------------- development cost
def development_costs(models: Iterable[Mapping[str, Any]], superplm_steps: Mapping[str, int]) -> list[dict]:
    """Claim 5: CPU-seconds to develop each objective's models with the full method, the fast one, or from scratch.

    ``models``: records of notebook 04 (``objective``, ``method``, ``search`` with ``cpu_seconds``,
    ``further_training`` with ``cpu_seconds`` and ``steps``). Per objective and method (``evolved`` = the
    full method, ``fast``): search + further training, summed over the speedup constraints at which both were
    developed (a scale may develop the fast method at fewer targets, ``DevelopConfig.fast_speedups``: the ratio of
    sums over different targets would credit the fast method with the targets it skipped). ``scratch``: an
    *estimate* of pre-training each full-method model alone instead of sharing a SuperPLM, for as many steps
    as the SuperPLM + further training gave it (``superplm_steps[objective]`` + its further-training steps),
    at the CPU cost per step its further training measured; it needs no search but one pre-training per
    model. The SuperPLM's own training, shared by both one-shot methods, is not in either sum (the paper
    does not report it either).
    """
    rows = []
    models = list(models)
    for objective in sorted({m["objective"] for m in models}):
        mine = [m for m in models if m["objective"] == objective]
        targets = [{m.get("speedup_target") for m in mine if m["method"] == method} for method in ("evolved", "fast")]
        shared = targets[0] & targets[1]  # empty where a method was not developed: then every model of the other
        for method in ("evolved", "fast"):
            picked = [m for m in mine if m["method"] == method and (not shared or m.get("speedup_target") in shared)]
            if not picked:
                continue
            search = sum(m["search"]["cpu_seconds"] for m in picked)
            further = sum(m["further_training"]["cpu_seconds"] for m in picked)
            rows.append({"objective": objective, "method": method, "models": len(picked),
                         "speedups": sorted(t for t in {m.get("speedup_target") for m in picked} if t is not None),
                         "search_cpu_seconds": search, "further_training_cpu_seconds": further,
                         "total_cpu_seconds": search + further, "estimated": False})
        full = [m for m in mine if m["method"] == "evolved"]
        if full:
            scratch = sum((superplm_steps[objective] + m["further_training"]["steps"])
                          * m["further_training"]["cpu_seconds"] / m["further_training"]["steps"] for m in full)
            rows.append({"objective": objective, "method": "scratch", "models": len(full),
                         "speedups": sorted(t for t in {m.get("speedup_target") for m in full} if t is not None),
                         "search_cpu_seconds": 0.0, "further_training_cpu_seconds": scratch,
                         "total_cpu_seconds": scratch, "estimated": True})
    return rows


def fast_over_full(costs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Claim 5's ratios per objective, from :func:`development_costs` rows: the fast method's search, further
    training and total CPU-seconds over the full (evolved) method's. Objectives missing either method are left out."""
    by = {(r["objective"], r["method"]): r for r in costs}
    ratios = {}
    for objective in sorted({o for o, _ in by}):
        fast, full = by.get((objective, "fast")), by.get((objective, "evolved"))
        if fast and full:
            ratios[objective] = {part: fast[f"{part}_cpu_seconds"] / full[f"{part}_cpu_seconds"]
                                 for part in ("search", "further_training", "total")}
    return ratios


# -------------------------------------------------------------------------------------- model card
def _fmt(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def model_card(entry: Mapping[str, Any]) -> str:
    """The README.md of one developed model, from its notebook-04 record plus any GLUE / SQuAD rows: the
    exported model's card (:func:`atb.extract.export_card`) with how it was made, its latency and scores."""
    arch = Arch.parse(entry["arch"])
    ft = entry.get("further_training") or {}
    objective = entry["objective"].upper()
    what = (f"searched, {entry['method']} search" if entry["method"] != DEFAULT_RULE
            else "default-rule BERT baseline")
    made = (f"Developed by `atb` at the **{entry.get('scale', '?')}** scale ({what}, {objective} SuperPLM): extracted "
            f"from the {objective} SuperPLM (notebook 01) with its inherited weights, then further trained for "
            f"{ft.get('steps', '?')} steps with the same objective (final loss {_fmt(ft.get('final_loss'), 3)}; "
            f"{_fmt(ft.get('cpu_seconds'), 0)} CPU-seconds).")
    sections = [("Latency",
                 f"Speedup constraint {entry['speedup_target']:.3g}x. Measured here: {_fmt(entry.get('latency_ms'), 2)} "
                 f"ms, {_fmt(entry.get('speedup'))}x faster than BERT-base ({_fmt(entry.get('bert_base_ms'))} ms) on "
                 f"{entry.get('machine', {}).get('cpu', 'this CPU')} (batch 1, 128 tokens, 1 thread; "
                 "`latency` in `configs/<scale>.yaml`).")]
    glue, squad = entry.get("glue"), entry.get("squad")
    if glue:
        sections.append(("GLUE dev (fine-tuned at this scale's budgets, `finetune` in `configs/<scale>.yaml`)", "\n".join([
            "| " + " | ".join(GLUE_COLUMNS) + " | avg |", "|" + "---|" * (len(GLUE_COLUMNS) + 1),
            "| " + " | ".join(_fmt(glue["tasks"][c]) for c in GLUE_COLUMNS) + f" | {_fmt(glue['avg'])} |",
            "", f"avg over {', '.join(glue['avg_over']) or 'nothing'}; n/a = not available here "
                "(reasons in results/<scale>/05_glue.json)." + _seeds_note(glue, "avg")])))
    if squad:
        sections.append(("SQuAD dev", "\n".join(
            f"- {key}: " + (f"EM {s['em']:.1f}, F1 {s['f1']:.1f}" if (s := squad.get(key)) else
                            "n/a (see results/<scale>/06_squad.json)") for key in ("squad_v1", "squad_v2"))))
    card = export_card(arch, name=entry["name"], made=made, sections=sections)
    return card + ("\nScores at the smoke / mini scales come from small training and fine-tuning budgets on a CPU: "
                   "they compare models developed with the same budgets, not the paper's numbers.\n")


def _seeds_note(row: Mapping[str, Any], score: str) -> str:
    """" Mean of n fine-tuning seeds; ... untrained control ..." for a row of notebooks 05-06 that has them."""
    if not row.get("seeds"):
        return ""
    control = (row.get("control") or {}).get(score)
    return (f" Mean of {row['seeds']} fine-tuning seeds" + (f"; an untrained model of the same shape, fine-tuned "
            f"alike, averages {_fmt(control)}." if control is not None else "."))


def write_model_card(model_dir: str | Path, entry: Mapping[str, Any], copy_to: str | Path | None = None) -> Path:
    """Write :func:`model_card` to ``model_dir/README.md`` (and ``copy_to``, e.g. ``results/model_cards/<name>.md``),
    replacing the export's card (:func:`atb.extract.write_card`)."""
    return write_card(model_dir, model_card(entry), copy_to)


# ------------------------------------------------------------------------ candidates of weight-sharing supernets
# One random initialisation per candidate's control (notebooks 08-09; its own seed, so their cached controls stay).
CANDIDATE_CONTROL_SEED = 1234


def export_with_tokenizer(model, directory: Path, readme: str) -> Path:
    """``save_pretrained`` + the tokenizer + ``README.md`` (``readme``), atomically."""
    from .data import load_tokenizer

    def write(tmp: Path) -> None:
        with libraries_quiet():  # transformers' "Writing model shards" bar, once per saved model
            model.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer().save_pretrained(tmp)
        (tmp / "README.md").write_text(readme)

    return write_dir_atomic(directory, write)


def develop_candidate(supernet, candidate, root: Path, *, teacher: str, warm: WarmupConfig, further_steps: int,
                      card: str, layers: str, control: bool = True) -> dict:
    """Develop one candidate of a weight-sharing supernet (:class:`atb.supernet.WeightSharingSupernet`: EfficientBERT's
    in notebook 08, AutoBERT-Zero's in notebook 09): further distillation of a copy of the supernet on this candidate
    alone (``further_steps``, the warm-up's settings otherwise; resumable in ``root/train``), the standalone model cut
    out of it (``root/final``), and, with ``control``, its **untrained control**: the same config at random
    initialisation (``root/control``, seed :data:`CANDIDATE_CONTROL_SEED`). The reranking fitness
    (:mod:`atb.rerank`) adapts candidates the same way, without controls. ``card`` / ``layers``: the model card's text
    and its list of layers (markdown). A folder holding another candidate's work is cleared first.
    Returns ``{"model_dir", "control_dir", "finetune_dir", "further_training"}`` (``control_dir`` None without one)."""
    names = [str(c) for c in candidate]
    marker = root / "candidate.json"
    written = json.loads(marker.read_text()) if marker.exists() else None
    if written is not None and written.get("layers", written.get("expressions")) != names:  # (08's older key)
        shutil.rmtree(root)  # another candidate's training, export and fine-tuning: not this model's
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"layers": names})
    point = copy.deepcopy(supernet)
    further = WarmupConfig(**{**asdict(warm), "steps": further_steps, "warmup_steps": max(1, further_steps // 10),
                              "checkpoint_every": max(1, further_steps // 2)})
    record = warmup_distill(point, load_teacher(teacher), lambda step: candidate, further, root / "train")
    model_dir, control_dir = root / "final", root / "control"
    title = f"# {root.name}\n\n"
    model = point.extract(candidate).eval()
    if not (model_dir / "config.json").exists():
        export_with_tokenizer(model, model_dir, f"{title}{card}\n\n{layers}\n")
    if control and not (control_dir / "config.json").exists():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(CANDIDATE_CONTROL_SEED)
            untrained = type(model)(point.candidate_config(candidate)).eval()
        export_with_tokenizer(untrained, control_dir, f"{title}**Untrained control**: this configuration at random "
                              "initialisation, never pre-trained; fine-tuned like the developed model. Not a model to "
                              f"use.\n\n{layers}\n")
    return {"model_dir": str(model_dir), "control_dir": str(control_dir) if control else None,
            "finetune_dir": str(root / "finetune"),
            "further_training": {**record, "steps": further_steps, "cpu_seconds": log_cpu_seconds(root / "train")}}
