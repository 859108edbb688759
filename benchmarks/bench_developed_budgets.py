"""Do the developed models themselves learn a task at a rung of the budget ladder? A check on the calibration model.

The budget ladder (:mod:`atb.budgets`) and notebook 05's calibration row judge a budget on the calibration model (the
teacher, or its first ``develop.calibration_layers`` layers): a necessary condition, since every developed model is
cut from the teacher, but not a sufficient one, since the developed models are cut in width too, from a SuperPLM
trained for a few hundred steps. This benchmark fine-tunes some of the models notebook 04 developed (its record
``04_further_training.json``; their checkpoints in ``runs/<scale>/develop/``) on one task with rung ``K`` of the
scale's ladder, each beside its untrained control, exactly as notebook 05 fine-tunes them
(:func:`atb.develop.finetune_with_controls`: the scale's seeds, each side at the learning rate it chose among
``develop.lr_candidates`` on examples held out of the train split), and records per model its dev score, its
control's and their paired difference with its 95 % interval (seeds and dev examples resampled). A budget at which the
calibration model learns a task but the developed models stay at their controls' level decides nothing about them.

Runs are cached under ``--runs-root`` (default ``runs/<scale>/bench_developed_budgets/<task>-rung<K>/``), so an
interrupted benchmark resumes. Needs notebook 04's models. Usage: ``python benchmarks/bench_developed_budgets.py
[--scale mini] [--task stsb] [--rung 1] [--models kd-evolved-15x ...] [--out results/mini/<record>.json]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_depth_cut import measure, row_text  # the sibling benchmark (its folder is on the path when run)

from atb.develop import DevelopConfig
from atb.layout import Layout
from atb.records import write_json_atomic
from atb.space import Arch

# By default the deepest and shallowest shapes of one target and the MLM model of the largest target. The committed
# records measured the study of 33fac2b, whose largest target was 40x (they name mlm-evolved-40x, its shallowest model).
DEFAULT_MODELS = ("kd-evolved-15x", "kd-default-rule-15x", "mlm-evolved-25x")


def chosen_models(developed: dict, names: list[str]) -> dict[str, dict]:
    """``{name: {"arch", "model_dir"}}`` of notebook 04's ``developed`` models named in ``names``, or an error naming
    the ones it does not hold."""
    missing = [n for n in names if n not in developed]
    if missing:
        raise SystemExit(f"04_further_training.json holds no model {', '.join(missing)} "
                         f"(it holds {', '.join(developed)})")
    return {n: {"arch": developed[n]["arch"], "model_dir": developed[n]["model_dir"]} for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--task", default="stsb")
    parser.add_argument("--rung", type=int, default=1, help="the rung of the scale's budget ladder (default 1)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="names in 04_further_training.json")
    parser.add_argument("--runs-root", type=Path, help="where the runs are cached (default: under runs/<scale>/)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    cfg, home = DevelopConfig.load(args.scale), Layout(args.scale)
    models = chosen_models(home.read_record("04_further_training.json")["models"], args.models)
    layout = Layout(args.scale, runs_root=args.runs_root or home.runs / "bench_developed_budgets"
                    / f"{args.task}-rung{args.rung}")
    rows, measured = measure(layout, models, {n: Arch.parse(m["arch"]).layers for n, m in models.items()},
                             [args.task], args.scale, args.rung, cfg)
    for row in rows:
        row["arch"] = models[row["model"]]["arch"]
    record = {"scale": args.scale, "task": args.task, "models": args.models, **measured,
              "budget": "the scale's finetune budget of the task with the rung's fields; scored on the dev split",
              "rows": rows}
    print(f"{args.scale}, {args.task}, rung {args.rung} {record['rung_budget']}: developed models beside their "
          f"untrained controls, {record['machine']['cpu']}, {record['computed_in']}")
    for r in rows:
        print(f"  {r['model']:22s} {r['arch']:20s} {row_text(r)}")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
