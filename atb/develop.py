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
* :func:`development_costs`: claim 5, the cost of the full method vs the fast one vs training from scratch.
* :func:`model_card` / :func:`write_model_card`: a developed model's card, the exported model's card
  (:func:`atb.extract.export_card`) with its latency, further training and GLUE / SQuAD scores.

Settings per scale: section ``develop`` of ``configs/<scale>.yaml`` (:class:`DevelopConfig`); fine-tuning budgets
are its section ``finetune``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .extract import export_card, write_card
from .latency_predictor import LatencyFn, predict_latency
from .space import Arch, SearchSpace
from .train import TrainConfig

DEFAULT_RULE = "default-rule"  # the method of the default-rule baselines (d_f = 4 d_m, d_qkv = d_m)
METHODS = ("evolved", "fast", DEFAULT_RULE)  # the searched model, the fast method's, the default-rule baseline
# The GLUE table's columns (issue contract): MNLI has two dev sets, the others one number each.
GLUE_COLUMNS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli_m", "mnli_mm", "qnli", "rte", "wnli")
# A model comparison means something only when the best model is this many GLUE-average points above always
# predicting the majority class (notebook 05, the report); below it differences are fine-tuning noise.
MIN_ABOVE_CHANCE = 5.0
# The GLUE average leaves WNLI out, as BERT, TinyBERT and the paper's tables do (its dev set is adversarial).
GLUE_AVERAGE = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli_m", "qnli", "rte")


# ------------------------------------------------------------------------------------------- config
@dataclass
class DevelopConfig:
    """How one scale develops its models: the ``develop`` section of ``configs/<scale>.yaml``."""

    steps: int = 100  # further-training steps of the searched (evolved) models and the baselines
    fast_steps: int = 33  # of AutoTinyBERT-Fast's models (the notes' 870 -> 290 GPU-hours: about 1/3)
    baseline_layers: int = 4  # the paper's default-rule baselines all have 4 layers
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the scale's `pretrain` for further training
    glue_tasks: list[str] = field(default_factory=lambda: ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli",
                                                           "qnli", "rte", "wnli"])
    squad_tasks: list[str] = field(default_factory=lambda: ["squad_v1.1", "squad_v2.0"])
    scale: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "fast_steps", "baseline_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"DevelopConfig.{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> DevelopConfig:
        settings, file = config.section(scale, "develop")
        config.check_keys(settings, config.fields_of(cls, exclude=("scale",)), file.where("develop"))
        return config.build(cls, {**settings, **overrides}, f"{file.where('develop')} overrides",
                            exclude=("scale",), scale=file.scale)

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
                          layers: int) -> tuple[Arch, float]:
    """The default-rule architecture whose predicted latency is closest (in ratio) to ``target_ms``.

    ``latency_fn``: a latency predictor (``.predict(archs)``) or a function of a list of archs, in ms."""
    archs = default_rule_archs(space, layers)
    if not archs:
        raise ValueError(f"the space holds no default-rule architecture with {layers} layers")
    latencies = [float(x) for x in predict_latency(latency_fn, archs)]
    best = min(range(len(archs)), key=lambda i: abs(latencies[i] / target_ms - 1))
    return archs[best], latencies[best]


def plan_models(searches: Iterable[Mapping[str, Any]], spaces: Mapping[str, SearchSpace],
                latency_fn: LatencyFn, cfg: DevelopConfig) -> list[DevModel]:
    """The models of notebooks 04–07 from notebook 03's search records (``results/<scale>/03_search.json``).

    Per objective and speedup: the ``evolved`` and ``fast`` searches' best architectures, and a default-rule
    baseline at the evolved pick's predicted latency (at the fast pick's if no evolved search ran).
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
                                              cfg.baseline_layers)
        baseline = DevModel(model_name(objective, DEFAULT_RULE, speedup), arch, objective, DEFAULT_RULE, speedup,
                            latency)
        models += [*(by_method[m] for m in ("evolved", "fast") if m in by_method), baseline]
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
    full method, ``fast``): search + further training, summed over the speedup constraints. ``scratch``: an
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
        for method in ("evolved", "fast"):
            picked = [m for m in mine if m["method"] == method]
            if not picked:
                continue
            search = sum(m["search"]["cpu_seconds"] for m in picked)
            further = sum(m["further_training"]["cpu_seconds"] for m in picked)
            rows.append({"objective": objective, "method": method, "models": len(picked),
                         "search_cpu_seconds": search, "further_training_cpu_seconds": further,
                         "total_cpu_seconds": search + further, "estimated": False})
        full = [m for m in mine if m["method"] == "evolved"]
        if full:
            scratch = sum((superplm_steps[objective] + m["further_training"]["steps"])
                          * m["further_training"]["cpu_seconds"] / m["further_training"]["steps"] for m in full)
            rows.append({"objective": objective, "method": "scratch", "models": len(full),
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
                "(reasons in results/<scale>/05_glue.json)."])))
    if squad:
        sections.append(("SQuAD dev", "\n".join(
            f"- {key}: " + (f"EM {s['em']:.1f}, F1 {s['f1']:.1f}" if (s := squad.get(key)) else
                            "n/a (see results/<scale>/06_squad.json)") for key in ("squad_v1", "squad_v2"))))
    card = export_card(arch, name=entry["name"], made=made, sections=sections)
    return card + ("\nScores at the smoke / mini scales come from small training and fine-tuning budgets on a CPU: "
                   "they compare models developed with the same budgets, not the paper's numbers.\n")


def write_model_card(model_dir: str | Path, entry: Mapping[str, Any], copy_to: str | Path | None = None) -> Path:
    """Write :func:`model_card` to ``model_dir/README.md`` (and ``copy_to``, e.g. ``results/model_cards/<name>.md``),
    replacing the export's card (:func:`atb.extract.write_card`)."""
    return write_card(model_dir, model_card(entry), copy_to)
