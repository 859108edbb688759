"""How far can the engine speed up a pre-training step at all? The matrix products' floor, side by side in one run.

``benchmarks/bench_training.py`` asks the new engine for a speed-up over the earlier path (commit ecb91f4): 2.0x where
the CPU computes bf16 natively, 1.4x from the fp32 improvements alone. The engine's levers (fused AdamW, cheap dropout
masks, fewer casts and copies) act on everything *but* the matrix products: in fp32 the products' arithmetic is the
same on both paths, so they bound what those levers can give. For the one-shot KD and MLM steps and the
further-training step this times, alternating the paths ``--rounds`` times as bench_training does:

- ``earlier`` and ``new``: the median seconds of a step of each path (``atb.train.Trainer``);
- ``matmul``: the seconds per step the new path spends inside its matrix-product kernels (``aten::mm``, ``addmm``,
  ``bmm``, the fused attention kernels, forward and backward), from ``torch.profiler``'s self times;
- ``bound``: ``earlier / matmul``, the speed-up the new path would reach if every other operation took no time.

A ``bound`` below a target says the target cannot be met by removing overheads: only fewer or cheaper products
(lower precision, smaller shapes) could. Usage: ``python benchmarks/bench_step_floor.py [--scale mini]
[--precision auto|fp32] [--out results/mini/bench_step_floor.json]``
"""

from __future__ import annotations

import argparse
import statistics

from torch.profiler import ProfilerActivity, profile

from atb import engine
from atb.records import machine_info, write_json_atomic
from atb.reproduce import git_commit
from atb.space import Arch
from bench_training import EARLIER, pretraining_configs, side_by_side, trainer_steps

MATMUL_KERNELS = frozenset({
    "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
})


def matmul_seconds(trainer, steps: int) -> tuple[float, float]:
    """Seconds per step inside :data:`MATMUL_KERNELS` and in every operator (self times), over ``steps`` profiled
    steps of ``trainer``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            trainer.train_step()
    events = prof.key_averages()
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_KERNELS)
    every = sum(e.self_cpu_time_total for e in events)
    return matmul / 1e6 / steps, every / 1e6 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--arch", default="6/288/224/12/252", help="the further-trained shape")
    parser.add_argument("--steps", type=int, default=8, help="timed (and profiled) steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32"), help="the new path's precision")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    new = engine.describe(args.precision)
    record: dict = {"scale": args.scale, "commit": git_commit(), "machine": machine_info(),
                    "native_bf16": new["native_bf16"], "new": {"precision": args.precision,
                                                               "computed_in": new["computed_in"]},
                    "earlier": {**EARLIER, "commit": "ecb91f4"}, "matmul_kernels": sorted(MATMUL_KERNELS), "steps": {}}
    for name, cfgs in pretraining_configs(args.scale, Arch.parse(args.arch), args.precision).items():
        profiled: list[tuple[float, float]] = []

        def measure(path: str) -> float:
            seconds, trainer = trainer_steps(cfgs[path], args.steps)
            if path == "new":
                profiled.append(matmul_seconds(trainer, args.steps))
            return seconds

        times = side_by_side(measure, args.rounds)
        earlier, now = times["earlier"], times["new"]
        matmul = statistics.median(m for m, _ in profiled)
        record["steps"][name] = {"earlier": earlier, "new": now, "matmul": matmul,
                                 "matmul_share_of_profiled": statistics.median(m / every for m, every in profiled),
                                 "speedup": earlier / now, "bound": earlier / matmul}
    print(f"{args.scale}: {record['machine']['cpu']}, native bf16 {record['native_bf16']}, new path in "
          f"{new['computed_in']}")
    print("| step | earlier (s) | new (s) | new's products (s) | speed-up | bound |\n|---|---|---|---|---|---|")
    for name, s in record["steps"].items():
        print(f"| {name} | {s['earlier']:.3f} | {s['new']:.3f} | {s['matmul']:.3f} | {s['speedup']:.2f}x | "
              f"{s['bound']:.2f}x |")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
