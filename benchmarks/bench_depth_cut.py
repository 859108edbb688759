"""Does a sub-model lose STS-B because it drops the teacher's last layers? A diagnostic for issue #23, item 5.

The developed sub-models learn SST-2 at the mini budget but not STS-B, on which the teacher they were cut from
reaches 70-80 Spearman; one-shot training recipes and budgets did not repair it (bench_repair), and their final
[CLS] vectors barely vary between inputs (bench_cls_spread). A sub-model differs from the teacher in depth and in
widths at once. This benchmark takes away everything but depth: the teacher's first ``L`` layers exactly, widths
untouched, nothing rewired and nothing trained, cut by ``transformers`` itself (``BertModel`` with
``num_hidden_layers = L``; atb's slicing is not involved), for each depth of the scale's KD space. Each is
fine-tuned on STS-B and SST-2 exactly as notebook 05 fine-tunes the developed models
(:func:`atb.develop.finetune_with_controls`: the scale's budgets and seeds, each model and its untrained control at
the learning rate it chose among ``develop.lr_candidates`` on examples held out of the train split), and the record
gives per depth and task the model, its control and their paired difference with its 95 % interval (seeds and dev
examples resampled, :mod:`atb.stats`).

``--rung K`` fine-tunes with rung ``K`` of the scale's budget ladder instead (``budgets.rungs``, :mod:`atb.budgets`;
the last rung of mini takes every train example for three epochs): whether a depth cut loses a task at the study's
budget only, or at any budget this CPU affords. Runs are cached under ``runs/<scale>/bench_depth_cut/rung<K>/`` (an
interrupted benchmark resumes). Usage: ``python benchmarks/bench_depth_cut.py [--scale mini] [--depths 6 5 4 3]
[--tasks stsb sst2] [--rung 0] [--out results/mini/bench_depth_cut.json]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from atb import config, engine
from atb.budgets import BudgetConfig
from atb.develop import DevelopConfig, finetune_with_controls, pooled_difference, teacher_model
from atb.finetune import column_runs
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.space import Arch, SearchSpace
from atb.teacher import first_layers


def rung_config(scale: str, rung: int, tasks: Sequence[str], out: Path) -> str:
    """A scale for the fine-tuning runs: ``scale`` itself for rung 0 (its budgets as they are), else a copy of its
    config file, written to ``out``, whose ``finetune`` budgets of ``tasks`` take the fields of that rung of the
    scale's ladder (:class:`atb.budgets.BudgetConfig`)."""
    rungs = BudgetConfig.load(scale).rungs
    if not 0 <= rung < len(rungs):
        raise ValueError(f"budgets.rungs of {scale} has rungs 0..{len(rungs) - 1}, not {rung}")
    if rung == 0 and not rungs[0]:
        return scale
    raw = yaml.safe_load(config.config_path(scale).read_text())
    finetune = raw.setdefault("finetune", {})
    for task in tasks:
        finetune[task] = {**(finetune.get(task) or {}), **rungs[rung]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(out)


def depth_rows(tuned: Mapping[str, Mapping[str, Any]], depths: Mapping[str, int], tasks: Sequence[str]) -> list[dict]:
    """Per model of ``tuned`` (:func:`atb.develop.finetune_with_controls`; ``depths``: its number of layers) and task:
    the model's and its control's mean dev score over seeds, and their paired difference with its interval."""
    rows = []
    for name, result in tuned.items():
        mine, theirs = column_runs(result["scores"]), column_runs(result["control"])
        for task in tasks:
            scores = [r["score"] for r in result["scores"].get(task, []) if r.get("score") is not None]
            control = [r["score"] for r in result["control"].get(task, []) if r.get("score") is not None]
            versus = pooled_difference([(name, "control")], {name: mine}, {"control": theirs}, task)
            rates = result.get("learning_rates") or {}
            rows.append({"model": name, "layers": depths[name], "task": task,
                         "score": sum(scores) / len(scores) if scores else None,
                         "control": sum(control) / len(control) if control else None,
                         "difference": versus["difference"], "ci95": versus["ci95"], "n": versus["n"],
                         "lr": ((rates.get("developed") or {}).get(task) or {}).get("lr"),
                         "control_lr": ((rates.get("control") or {}).get(task) or {}).get("lr")})
    return rows


def measure(layout: Layout, models: Mapping[str, Mapping[str, str]], layers_of: Mapping[str, int],
            tasks: Sequence[str], scale: str, rung: int, cfg: DevelopConfig) -> tuple[list[dict], dict]:
    """Fine-tune ``models`` (``{name: {"arch", "model_dir"}}``, ``layers_of`` their depths) on ``tasks`` with rung
    ``rung`` of the scale's ladder beside their untrained controls, as notebook 05 does (runs cached in ``layout``):
    their rows (:func:`depth_rows`) and the fields of the record that say how they were measured."""
    budgets = rung_config(scale, rung, tasks, layout.runs / f"{scale}.yaml")
    start = time.perf_counter()
    rows = depth_rows(finetune_with_controls(layout, models, tasks, budgets, cfg), layers_of, tasks)
    return rows, {"seeds": cfg.seed_counts(tasks)[0], "lr_candidates": cfg.lr_candidates, "rung": rung,
                  "rung_budget": BudgetConfig.load(scale).rungs[rung],
                  "seconds_this_call": round(time.perf_counter() - start, 1), "machine": machine_info(),
                  "computed_in": engine.describe("auto")["computed_in"]}


def row_text(row: Mapping[str, Any]) -> str:
    """A row of :func:`depth_rows` as printed: the model, its control and their difference with its interval."""
    ci = f"[{row['ci95'][0]:+.1f}, {row['ci95'][1]:+.1f}]" if row["ci95"] else "n/a"
    return f"model {row['score']:6.1f}  control {row['control']:6.1f}  difference {row['difference']:+6.1f} {ci}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--depths", type=int, nargs="+", help="layers kept (default: every depth of the KD space)")
    parser.add_argument("--tasks", nargs="+", default=["stsb", "sst2"])
    parser.add_argument("--rung", type=int, default=0, help="the rung of the scale's budget ladder (default 0)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    cfg, teacher = DevelopConfig.load(args.scale), teacher_model(args.scale)
    full = Arch.parse(teacher["arch"])
    space = SearchSpace.preset(args.scale, "kd")
    depths = sorted(args.depths or range(space.layers.low, full.layers + 1), reverse=True)
    root = Layout(args.scale).runs / "bench_depth_cut"
    layout = Layout(args.scale, runs_root=root / f"rung{args.rung}")
    models, layers_of = {}, {}
    for n in depths:
        name = f"teacher-first-{n}"
        model_dir = first_layers(teacher["model_dir"], n, root / "models" / name)
        models[name] = {"arch": str(Arch(n, full.hidden, full.ffn, full.heads, full.qkv)), "model_dir": str(model_dir)}
        layers_of[name] = n
    rows, measured = measure(layout, models, layers_of, args.tasks, args.scale, args.rung, cfg)
    record = {"scale": args.scale, "teacher": teacher["teacher"], "teacher_arch": str(full), "depths": depths,
              "tasks": args.tasks, **measured,
              "budget": "the scale's finetune budgets with the rung's fields; scored on the dev split", "rows": rows}
    print(f"{args.scale}, rung {args.rung}: the first L layers of {teacher['teacher']} ({full}), "
          f"{record['machine']['cpu']}, {record['computed_in']}")
    for r in rows:
        print(f"  L={r['layers']}  {r['task']:5s}  {row_text(r)}")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
