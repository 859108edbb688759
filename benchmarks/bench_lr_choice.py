"""One learning rate per group, or one per model? Notebook 04's developed models (10 at mini, 15x to 40x) fine-tuned on
a task (default SST-2) at the scale's budget at every candidate rate of ``develop.lr_candidates``, several seeds, and
scored on dev under two ways of choosing the rate, both on examples held out of the train split (never dev):

* ``group``: the rate the first developed model chose, for every model (the design of the mini study before
  per-model rates);
* ``per_model``: the rate each model chose for itself (the study's design, :func:`atb.develop.finetune_with_controls`).

It counts the runs that ended at the constant prediction (every dev example given one class: the model learned
nothing) under each policy, and gives the difference per_model − group (points) as the paired bootstrap of
:mod:`atb.stats` over models, seeds and dev examples. Runs are cached under ``runs/<scale>/bench_lr_choice/`` (an
interrupted benchmark resumes). Usage: ``python benchmarks/bench_lr_choice.py [--scale mini] [--task sst2]
[--out results/mini/bench_lr_choice.json]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from atb import engine
from atb.develop import DevelopConfig, column_runs
from atb.finetune import choose_lr, lr_jobs, run_jobs, seed_jobs
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.stats import paired_bootstrap

POLICIES = ("group", "per_model")
# the batch order the next mini study runs with (FinetuneConfig.shuffle_batches; results/mini/bench_batch_order.json)
OVERRIDES = {"shuffle_batches": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--seeds", type=int, default=None, help="dev seeds per model and rate (default: develop.seeds)")
    parser.add_argument("--candidates", type=float, nargs="+", help="rates to try (default: develop.lr_candidates)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    layout, cfg = Layout(args.scale), DevelopConfig.load(args.scale)
    seeds, task, candidates = args.seeds or cfg.seeds, args.task, list(args.candidates or cfg.lr_candidates or [])
    if len(candidates) < 2:
        raise SystemExit(f"develop.lr_candidates of {args.scale} names {candidates}: nothing to choose between")
    models = layout.read_record("04_further_training.json")["models"]
    root = layout.runs / "bench_lr_choice"
    start = time.perf_counter()

    def dev_jobs(name: str, lr: float) -> list:
        return seed_jobs(models[name]["model_dir"], [task], args.scale, root / name / f"dev-lr{lr:g}", seeds,
                         {task: {**OVERRIDES, "lr": lr}})

    jobs = [job for name, m in models.items() for job in lr_jobs(m["model_dir"], [task], args.scale, candidates,
                                                                  root / name / "lr_selection", OVERRIDES)]
    jobs += [job for name in models for lr in candidates for job in dev_jobs(name, lr)]
    run_jobs(jobs, cfg.workers)  # one pool; each run cached, read back below
    chosen = {name: choose_lr(m["model_dir"], [task], args.scale, candidates, root / name / "lr_selection",
                              overrides=OVERRIDES)[task] for name, m in models.items()}
    dev = {name: {lr: column_runs({task: run_jobs(dev_jobs(name, lr), 1)})[task] for lr in candidates}
           for name in models}
    reference = next(iter(models))
    rate = {"group": {name: chosen[reference]["lr"] for name in models},
            "per_model": {name: chosen[name]["lr"] for name in models}}

    def collapsed(runs) -> int:
        return sum(len(np.unique(runs.runs[s])) == 1 for s in runs.seeds)

    rows = {name: {"arch": models[name]["arch"], "held_out": chosen[name]["scores"],
                   "dev": {f"{lr:g}": float(np.mean([dev[name][lr].metric(dev[name][lr].runs[s], dev[name][lr].labels)
                                                     for s in dev[name][lr].seeds])) for lr in candidates},
                   "constant_seeds": {f"{lr:g}": collapsed(dev[name][lr]) for lr in candidates},
                   **{f"{p}_lr": rate[p][name] for p in POLICIES}} for name in models}
    policy = {p: {"mean_dev": float(np.mean([rows[n]["dev"][f"{rate[p][n]:g}"] for n in models])),
                  "constant_runs": int(sum(rows[n]["constant_seeds"][f"{rate[p][n]:g}"] for n in models)),
                  "runs": len(models) * seeds} for p in POLICIES}
    pooled = paired_bootstrap([dev[n][rate["per_model"][n]].against(dev[n][rate["group"][n]], key=n) for n in models])
    record = {"scale": args.scale, "task": task, "seeds": seeds, "candidates": candidates, "reference": reference,
              "budget_overrides": OVERRIDES,
              "machine": machine_info(), "computed_in": engine.describe("auto")["computed_in"],
              "policies": policy, "per_model_minus_group": {"difference": pooled.difference,
                                                           "ci95": list(pooled.ci95), "n": pooled.n},
              "models": rows, "seconds": round(time.perf_counter() - start, 1)}
    print(f"{args.scale}, {task}, {len(models)} models x {seeds} seeds, {record['machine']['cpu']}, "
          f"{record['computed_in']}; reference {reference}")
    for name, r in rows.items():
        print(f"  {name:22s} {r['arch']:18s} dev " + "  ".join(f"lr {k}: {v:5.1f} ({r['constant_seeds'][k]} const)"
                                                         for k, v in r["dev"].items())
              + f"   group {r['group_lr']:g}, own {r['per_model_lr']:g}")
    for p, v in policy.items():
        print(f"  {p:9s}: mean dev {v['mean_dev']:.2f}, {v['constant_runs']} of {v['runs']} runs at the constant")
    lo, hi = pooled.ci95
    print(f"  per_model - group: {pooled.difference:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
