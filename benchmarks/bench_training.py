"""Throughput of one-shot SuperPLM training at a scale (default mini) on this machine, and the share of a
KD step spent in the teacher's forward pass.

Both objectives run the real ``Trainer`` for the same steps (same sampled architectures, same batches);
the teacher's forward is then timed alone on those batches. Usage:
``python benchmarks/bench_training.py [--config configs/mini.yaml] [--steps 20] [--out results/mini/bench_training.json]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from atb.records import write_json_atomic
from atb.train import TrainConfig, Trainer


def measure(config: Path, objective: str, steps: int) -> tuple[Trainer, list[dict]]:
    cfg = TrainConfig.load(config, objective, steps=steps + 1, checkpoint_every=10**9)
    trainer = Trainer(cfg, tempfile.mkdtemp(prefix=f"bench-{objective}-"))
    trainer.train_step()  # warm-up
    return trainer, [trainer.train_step() for _ in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/mini.yaml"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    results = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "config": str(args.config)}
    for objective in ("mlm", "kd"):
        trainer, records = measure(args.config, objective, args.steps)
        step_s = statistics.median(r["seconds"] for r in records)
        tokens = statistics.median(r["tokens"] for r in records)
        entry = {"sec_per_step": step_s, "tokens_per_s": tokens / step_s, "batch": trainer.cfg.batch_size,
                 "seq_len": trainer.cfg.max_seq_len}
        if objective == "kd":
            times = []
            for step in range(1, args.steps + 1):
                batch = trainer.share(trainer.batch(step))
                t = time.perf_counter()
                trainer.objective.targets(batch)  # the teacher's forward pass
                times.append(time.perf_counter() - t)
            entry["teacher"] = trainer.cfg.teacher
            entry["teacher_forward_s"] = statistics.median(times)
            entry["teacher_share"] = entry["teacher_forward_s"] / step_s
        results[objective] = entry

    print(f"one-shot training, {args.config}, {results['threads']} threads, {results['machine']}")
    print("| objective | s/step | tokens/s |\n|---|---|---|")
    for objective in ("mlm", "kd"):
        r = results[objective]
        print(f"| {objective} | {r['sec_per_step']:.3f} | {r['tokens_per_s']:.0f} |")
    kd = results["kd"]
    print(f"KD teacher ({kd['teacher']}) forward: {kd['teacher_forward_s']:.3f} s = {100 * kd['teacher_share']:.0f} % of a step")
    if args.out:
        write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
