"""Notebook 10: AutoTinyBERT, EfficientBERT and AutoBERT-Zero in one table, under one protocol.

Each paper reports its models under its own protocol: its own pre-training corpus and budget, its own fine-tuning
recipe, its own latency measurement (or none), and no untrained baseline. Side by side, their published numbers
say little about the search methods. Here every developed model, whichever system found it, is

* **timed** with the same latency protocol (notebook 02's: batch 1, 128 tokens, one thread, beside BERT-base);
* **fine-tuned** with the same GLUE and SQuAD budgets, seeds and learning rates (notebooks 05–06);
* **paired with an untrained control**: its architecture at random initialisation, fine-tuned alike, which shows
  how much of a score the development (pre-training, search, distillation) earned at all.

This module only reads the records those notebooks wrote (``results/<scale>/``) and puts them in one table:
one row per developed model (system ``autotinybert``, ``default-rule``, ``efficientbert``, ``autobert-zero``)
followed by the row of its control (system ``control``). A system whose records are absent contributes no rows
and is listed in ``missing``.

**Development cost** (``development_cpu_seconds``) is the process CPU time of what was done *for that model*:
its search (none for a baseline) and its further training. The one-shot stage that several models share (the
SuperPLM of notebook 01; EfficientBERT's warmed-up supernet) is listed separately (``shared_cpu_seconds``, with
``shared_by`` models), and ``amortised_cpu_seconds`` adds the model's equal share of it when both are recorded.
Where a part was not recorded as CPU time the cost is ``None``, never an estimate; ``cpu_seconds_lower_bound``
then sums the parts that were, and ``cost_note`` says what is missing. Fine-tuning is counted for no row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from .latency_predictor import parameters
from .layout import Layout
from .plots import plot_with_controls
from .records import write_json_atomic
from .space import Arch

SYSTEMS = ("autotinybert", "default-rule", "efficientbert", "autobert-zero", "control")
ROW_KEYS = ("system", "model", "speedup", "params", "glue_avg", "squad_v1_f1", "development_cpu_seconds")
RECORD_KEYS = ("scale", "rows", "missing", "protocol", "note")
RECORD_NAME = "10_comparison.json"
# The records each system needs (rows come only when all of ``required`` exist; ``optional`` add scores).
SOURCES = {
    "autotinybert": {"required": ("04_further_training.json", "05_glue.json"),
                     "optional": ("06_squad.json", "01_superpretraining.json")},
    "efficientbert": {"required": ("08_efficientbert.json",), "optional": ()},
    "autobert-zero": {"required": ("09_autobert_zero.json",), "optional": ()},
}
LABELS = {"autotinybert": "AutoTinyBERT", "default-rule": "BERT", "efficientbert": "EfficientBERT",
          "autobert-zero": "AutoBERT-Zero"}
CONTROL_NOTE = "random initialisation of the model's architecture: no pre-training, search or further training"
NOTE = ("One row per developed model and one per its untrained control (same architecture, random initialisation, "
        "fine-tuned alike). Speedup: latency of BERT-base over the model's, both timed in the same notebook under "
        "the latency protocol below. params: all weights of the standalone encoder, embeddings and pooler "
        "included. glue_avg: mean over fine-tuning seeds of the average of the scored GLUE dev tasks; "
        "squad_v1_f1: SQuAD v1.1 dev F1. development_cpu_seconds: process CPU time of the model's own search "
        "and further training (shared one-shot stages separately, fine-tuning not counted); None where a part was "
        "not recorded as CPU time (see cost_note).")


# ----------------------------------------------------------------------------------------------- loading
def load_records(results_dir: str | Path) -> dict[str, dict]:
    """The JSON records of ``results_dir`` that notebook 10 reads, by file name (absent files left out)."""
    names = {name for source in SOURCES.values() for group in source.values() for name in group}
    names.add("02_latency.json")
    folder = Path(results_dir)
    return {name: json.loads((folder / name).read_text()) for name in sorted(names) if (folder / name).is_file()}


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` (JSON has no NaN)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _f1(entry: Mapping | None) -> float | None:
    """SQuAD v1.1 F1 of a notebook-06-shaped row (``{"squad_v1": {"f1": ...}}``)."""
    return _number(((entry or {}).get("squad_v1") or {}).get("f1"))


def _sum_known(parts: Mapping[str, float | None]) -> tuple[float | None, float]:
    """(the sum when every part is known else ``None``, the sum of the known parts)."""
    known = [v for v in parts.values() if v is not None]
    return (sum(known) if len(known) == len(parts) else None), float(sum(known))


def _cost(parts: Mapping[str, float | None], shared: float | None, shared_by: int, note: str) -> dict:
    total, lower = _sum_known(parts)
    missing = [k.replace("_", " ") for k, v in parts.items() if v is None]
    if missing:
        note += f"; not recorded as CPU time: {', '.join(missing)} (cpu_seconds_lower_bound sums the rest)"
    amortised = total + shared / shared_by if total is not None and shared is not None and shared_by else None
    return {"development_cpu_seconds": total, "cpu_seconds_lower_bound": lower,
            "cost_parts": {k: _number(v) for k, v in parts.items()}, "shared_cpu_seconds": _number(shared),
            "shared_by": shared_by, "amortised_cpu_seconds": amortised, "cost_note": note}


def _row(system: str, model: str, entry: Mapping, **extra: Any) -> dict:
    """A developed model's row: the contract keys first, then what helps to read them."""
    return {"system": system, "model": model, "speedup": _number(entry.get("speedup")),
            "params": None if entry.get("params") is None else int(entry["params"]),
            "glue_avg": _number(entry.get("avg")), "squad_v1_f1": extra.pop("squad_v1_f1", None),
            "development_cpu_seconds": None, "glue_ci95": entry.get("avg_ci95"),
            "latency_ms": _number(entry.get("latency_ms")), "glue_tasks": _tasks(entry), **extra}


def _tasks(entry: Mapping | None) -> dict[str, float]:
    """The scored GLUE tasks of a record's entry (seed means), for the notebook's explorer."""
    return {task: float(v) for task, v in ((entry or {}).get("tasks") or {}).items() if v is not None}


def _control_row(row: dict, control: Mapping | None, squad_control: Mapping | None) -> dict:
    """The untrained control beside ``row``: same shape, speed and size; its own scores; nothing developed."""
    control = control or {}
    return {**{k: row[k] for k in ("speedup", "params", "latency_ms", "bert_base_ms", "method", "objective")
               if k in row},
            "system": "control", "model": f"control of {row['model']}", "control_of": row["model"],
            "control_system": row["system"], "glue_avg": _number(control.get("avg")),
            "glue_ci95": control.get("avg_ci95"), "glue_tasks": _tasks(control), "squad_v1_f1": _f1(squad_control),
            "development_cpu_seconds": 0.0, "cpu_seconds_lower_bound": 0.0, "cost_note": CONTROL_NOTE}


def _with_control(row: dict, control: Mapping | None, squad_control: Mapping | None) -> list[dict]:
    return [row, _control_row(row, control, squad_control)]


# --------------------------------------------------------------------------------------------- per system
def autotinybert_rows(records: Mapping[str, dict]) -> list[dict]:
    """AutoTinyBERT's developed models (notebook 04) with their GLUE (05) and SQuAD (06) scores: searched models
    (``evolved``, ``fast``) as ``autotinybert``, the default-rule BERTs as ``default-rule``."""
    developed = records["04_further_training.json"]["models"]
    glue = records["05_glue.json"]["models"]
    squad = (records.get("06_squad.json") or {}).get("models") or {}
    superplm = records.get("01_superpretraining.json") or {}
    rows = []
    for name, m in developed.items():
        g, s = glue.get(name) or {}, squad.get(name) or {}
        objective = m["objective"]
        shared_by = sum(1 for other in developed.values() if other["objective"] == objective)
        search = 0.0 if m.get("search") is None else _number(m["search"].get("cpu_seconds"))
        further = _number((m.get("further_training") or {}).get("cpu_seconds"))
        one_shot = superplm.get(objective) or {}
        wall = (one_shot["steps"] * one_shot["sec_per_step"]
                if one_shot.get("steps") and one_shot.get("sec_per_step") else None)
        note = (f"{m['method']} search + further training (notebook 04); the {objective.upper()} SuperPLM "
                f"(notebook 01, shared by {shared_by} developed model(s)) is listed separately"
                + ("" if one_shot.get("cpu_seconds") is not None else
                   " and was not recorded as CPU time (shared_wall_seconds: its steps x mean wall seconds per step)"))
        system = "default-rule" if m["method"] == "default-rule" else "autotinybert"
        row = _row(system, name, {**m, "avg": g.get("avg"), "avg_ci95": g.get("avg_ci95"), "tasks": g.get("tasks"),
                                  "params": int(parameters([Arch.parse(m["arch"])])[0])},
                   squad_v1_f1=_f1(s), method=m["method"], objective=objective, arch=m["arch"],
                   speedup_target=m.get("speedup_target"), bert_base_ms=_number(m.get("bert_base_ms")),
                   **_cost({"search": search, "further_training": further}, _number(one_shot.get("cpu_seconds")),
                           shared_by, note), shared_wall_seconds=_number(wall))
        rows += _with_control(row, g.get("control"), s.get("control"))
    return rows


def efficientbert_rows(record: Mapping[str, Any]) -> list[dict]:
    """EfficientBERT's developed models (notebook 08): the searched model, whose cost includes the three-stage
    search and, where the record has one, the rerank that picked it, and the plain-gelu baseline (the search's start,
    developed without a search)."""
    from .efficientbert.study import SEARCHED

    warmup = record.get("warmup") or {}
    search_cpu = _number((record.get("search") or {}).get("cpu_seconds"))
    rerank = (record.get("search") or {}).get("rerank")
    rows = []
    for name, m in record["models"].items():
        squad = m.get("squad") or {}
        method = m.get("method") or squad.get("method") or ("searched" if name == SEARCHED else "plain-gelu")
        parts = {"search": search_cpu if name == SEARCHED else 0.0,
                 **({"rerank": _number(rerank.get("cost_seconds")) if name == SEARCHED else 0.0} if rerank else {}),
                 "further_training": _number((m.get("further_training") or {}).get("cpu_seconds"))}
        note = (("three-stage search" + (" + rerank" if rerank else "") + " (notebook 08) + further distillation"
                 if name == SEARCHED else
                 "further distillation only (the search's start, no search)")
                + f"; the warmed-up supernet (shared by {len(record['models'])} models) is listed separately"
                + ("" if warmup.get("cpu_seconds") is not None else
                   " and was not recorded as CPU time (the record's warm-up 'seconds' time only the last,"
                   " possibly resumed, call)"))
        row = _row("efficientbert", name, m, squad_v1_f1=_f1(squad), method=method, objective="kd",
                   arch="; ".join(m.get("expressions") or []), bert_base_ms=_number(record.get("bert_base_ms")),
                   **_cost(parts, _number(warmup.get("cpu_seconds")), len(record["models"]), note))
        rows += _with_control(row, m.get("control"), squad.get("control"))
    return rows


def autobert_zero_rows(record: Mapping[str, Any]) -> list[dict]:
    """AutoBERT-Zero's developed models (notebook 09), whose record gives each model's own development cost (for the
    searched model the OP-NAS runs and the rerank that picked it, and every model's further distillation); the BIWS
    supernet's warm-up and its convolutions' layer-local distillation, shared by every model, are listed separately."""
    shared = [_number((record.get(step) or {}).get("cpu_seconds")) for step in ("warmup", "conv_kd")]
    warmup = None if shared[0] is None else shared[0] + (shared[1] or 0.0)
    rerank = ((record.get("search") or {}).get("developed_pick") or {}).get("rerank_seconds")
    rows = []
    for name, m in record["models"].items():
        squad = m.get("squad") or {}
        cost = _number(m.get("development_cpu_seconds"))
        note = (("its OP-NAS runs" + (" + the rerank" if rerank else "") + " + further distillation"
                 if m.get("method") == "searched" else "further distillation only (no search)") if cost is not None else
                "notebook 09 recorded no development_cpu_seconds for this model")
        note += (f"; the warmed-up BIWS supernet{' and its trained convolutions' if shared[1] else ''} (shared by "
                 f"{len(record['models'])} models) listed separately")
        row = _row("autobert-zero", name, m, squad_v1_f1=_f1(squad), method=m.get("method") or "searched",
                   arch="; ".join(str(layer) for layer in m.get("layers") or []),
                   bert_base_ms=_number(m.get("bert_base_ms") or record.get("bert_base_ms")),
                   **_cost({"development": cost}, warmup, len(record["models"]), note))
        rows += _with_control(row, m.get("control"), squad.get("control"))
    return rows


BUILDERS = {"autotinybert": lambda r: autotinybert_rows(r),
            "efficientbert": lambda r: efficientbert_rows(r["08_efficientbert.json"]),
            "autobert-zero": lambda r: autobert_zero_rows(r["09_autobert_zero.json"])}


# ------------------------------------------------------------------------------------------------ the table
def comparison_rows(results: str | Path | Mapping[str, dict]) -> tuple[list[dict], list[dict]]:
    """``(rows, missing)`` from a results folder (or its records loaded by :func:`load_records`): the rows of
    every system whose records are present (see the module docstring), and per absent system
    ``{"system", "records": [absent files]}``."""
    records = results if isinstance(results, Mapping) else load_records(results)
    rows, missing = [], []
    for system, source in SOURCES.items():
        absent = [name for name in source["required"] if name not in records]
        if absent:
            missing.append({"system": system, "records": absent})
        else:
            rows += BUILDERS[system](records)
    return rows, missing


def latency_protocol(records: Mapping[str, dict]) -> dict:
    """The latency protocol and machine of the records (notebook 02's, and notebook 08's if it differs)."""
    sources = {"02_latency.json": records.get("02_latency.json") or {},
               "08_efficientbert.json": (records.get("08_efficientbert.json") or {}).get("published") or {},
               "09_autobert_zero.json": records.get("09_autobert_zero.json") or {}}
    found = {name: {"latency": r["protocol"], "machine": r.get("machine")}
             for name, r in sources.items() if r.get("protocol")}
    first = next(iter(found.values()), {"latency": None, "machine": None})
    return {**first, "same_in_all": all(f["latency"] == first["latency"] for f in found.values()),
            "sources": sorted(found)}


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as a readable frame (parameters in millions, intervals as 'lo–hi'), indexed by model."""
    ci = lambda v: f"{v[0]:.1f}–{v[1]:.1f}" if v and None not in v else None  # noqa: E731
    frame = pd.DataFrame([{"system": r["system"], "model": r["model"], "speedup": r["speedup"],
                           "params (M)": None if r["params"] is None else r["params"] / 1e6,
                           "GLUE avg": r["glue_avg"], "GLUE 95% CI": ci(r.get("glue_ci95")),
                           "SQuAD v1.1 F1": r["squad_v1_f1"], "dev CPU-s": r["development_cpu_seconds"],
                           "dev CPU-s (lower bound)": r.get("cpu_seconds_lower_bound")} for r in rows])
    return frame.set_index("model") if len(frame) else frame


def summary(rows: list[dict], missing: list[dict]) -> str:
    """One sentence per system: its models' speedups, best GLUE average and mean margin over their controls."""
    controls = {r["control_of"]: r for r in rows if r["system"] == "control"}
    lines = []
    for system in SYSTEMS[:-1]:
        own = [r for r in rows if r["system"] == system]
        if not own:
            continue
        scored = [r for r in own if r["glue_avg"] is not None]
        margins = [r["glue_avg"] - controls[r["model"]]["glue_avg"] for r in scored
                   if controls.get(r["model"], {}).get("glue_avg") is not None]
        speedups = [r["speedup"] for r in own if r["speedup"] is not None]
        text = f"{'Default-rule BERT' if system == 'default-rule' else LABELS[system]}: {len(own)} model(s)"
        if speedups:
            low, high = f"{min(speedups):.1f}", f"{max(speedups):.1f}"
            text += f", {low if low == high else f'{low}–{high}'}× faster than BERT-base"
        if scored:
            best = max(scored, key=lambda r: r["glue_avg"])
            text += f"; best GLUE avg {best['glue_avg']:.1f} ({best['model']})"
        if margins:
            text += f"; {sum(margins) / len(margins):+.1f} GLUE points over the untrained controls on average"
        lines.append(text + ".")
    lines += [f"{LABELS[m['system']]}: not in this comparison ({', '.join(m['records'])} absent)." for m in missing]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the figure
def figure_frame(rows: list[dict]) -> pd.DataFrame:
    """Developed models with their controls' scores beside them, in :func:`atb.plots.plot_with_controls`' columns.
    The colour key ("objective") is the system, split by SuperPLM objective for AutoTinyBERT so that one line
    never joins models of two SuperPLMs; the marker is the method."""
    controls = {r["control_of"]: r for r in rows if r["system"] == "control"}
    points = []
    for r in rows:
        if r["system"] == "control":
            continue
        label = LABELS[r["system"]] + (f" {r['objective'].upper()}" if r["system"] == "autotinybert" else "")
        c = controls.get(r["model"]) or {}
        lo, hi = r.get("glue_ci95") or (None, None)
        points.append({"model": r["model"], "objective": label, "method": r.get("method") or "searched",
                       "speedup": r["speedup"], "GLUE avg": r["glue_avg"], "GLUE lo": lo, "GLUE hi": hi,
                       "control GLUE avg": c.get("glue_avg"), "SQuAD v1.1 F1": r["squad_v1_f1"],
                       "control SQuAD v1.1 F1": c.get("squad_v1_f1")})
    return pd.DataFrame(points, columns=["model", "objective", "method", "speedup", "GLUE avg", "GLUE lo", "GLUE hi",
                                         "control GLUE avg", "SQuAD v1.1 F1", "control SQuAD v1.1 F1"])


def explorer_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per model and control, every column a reader asks for when pointing at a dot of the figure: what it
    is, its shape, speed, size, per-task GLUE scores, SQuAD v1.1 F1 and cost (the notebook's interactive view)."""
    tasks = sorted({t for r in rows for t in r.get("glue_tasks") or {}})
    return pd.DataFrame([{"model": r["model"], "system": LABELS.get(r["system"], r["system"]),
                          "method": r.get("method"), "architecture": r.get("arch"), "speedup": r.get("speedup"),
                          "params (M)": None if r.get("params") is None else r["params"] / 1e6,
                          "GLUE avg": r.get("glue_avg"), **{t: (r.get("glue_tasks") or {}).get(t) for t in tasks},
                          "SQuAD v1.1 F1": r.get("squad_v1_f1"), "own CPU-s": r.get("development_cpu_seconds")}
                         for r in rows])


def plot_comparison(rows: list[dict], title: str = ""):
    """GLUE average (and SQuAD v1.1 F1 when any model has one) against speedup, log x: one colour per system,
    one marker per method, 95 % intervals, hollow markers for the untrained controls."""
    points = figure_frame(rows).dropna(subset=["speedup"])
    panels = [("GLUE avg", "control GLUE avg", "GLUE lo", "GLUE hi")]
    if points["SQuAD v1.1 F1"].notna().any():
        panels.append(("SQuAD v1.1 F1", "control SQuAD v1.1 F1", None, None))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, (y, control, lo, hi) in zip(axes[0], panels):
        if points[y].notna().any():
            plot_with_controls(ax, points, y, control=control, lo=lo, hi=hi)
        ax.set_title(f"{title}{y} against speedup (hollow: untrained controls)")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ the record
def save_record(target: Layout | str | Path, rows: list[dict], missing: list[dict], *, protocol: dict | None = None,
                scale: str | None = None) -> Path:
    """Write ``10_comparison.json`` (``{"scale", "rows", "missing", "protocol", "note"}``) atomically, without
    NaN. ``target``: a :class:`Layout`, a results folder or the file's path."""
    if isinstance(target, Layout):
        path, scale = target.record(RECORD_NAME), scale or target.scale
    else:
        path = Path(target)
        path = path if path.suffix == ".json" else path / RECORD_NAME
        scale = scale or path.parent.name
    record = {"scale": scale, "rows": rows, "missing": missing, "protocol": protocol, "note": NOTE}
    return write_json_atomic(path, record, allow_nan=False)
