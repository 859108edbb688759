"""Which one-shot recipe transfers? The same sub-models cut from several SuperPLMs, fine-tuned on SST-2 beside
untrained controls of the same shapes, with paired intervals.

    python benchmarks/warmstart_transfer.py --scale mini [--seeds 2] [--train 2000] [--plain]
        [--scratch STEPS [--scratch-lr LR]] [--out results/mini/bench_warmstart_transfer.json]

Per objective (KD, MLM) of the scale's study (``runs/<scale>/superplm-<objective>``, notebook 01), every
architecture of ``--archs`` (defaults: two of each space) is cut from

* ``warm start``: the SuperPLM as it stood before one-shot training (``warm_start/``, saved by the trainer when
  ``pretrain.init_from`` is set: MiniLM copied in, rewired by importance);
* ``one-shot``: the SuperPLM after one-shot training (``final/``), i.e. what the study searches and develops;
* ``plain`` (``--plain``, KD space only): MiniLM copied in *without* rewiring, no one-shot training;
* ``scratch 2b`` (``--scratch STEPS``, KD only): recipe 2b of issue #12, the paper's from-scratch start with the
  official unmasked KD inputs and the hidden term normalised by the teacher's variance
  (``kd_hidden_norm: teacher-variance``), trained for ``STEPS`` steps of the scale's KD settings into
  ``runs/<scale>/recipe-scratch-kd`` (resumed if there);

and fine-tuned with the same budget and seeds as an untrained ``control`` (random initialisation of the same
shape). Reported per architecture and recipe: SST-2 accuracy (full dev set) minus the control's, and the one-shot
step's own contribution (``one-shot`` minus ``warm start``), each with a 95 % interval over seeds and dev examples
(:func:`atb.stats.paired_bootstrap`). A scale that trained from scratch has no ``warm_start/`` and compares
``one-shot`` with the control only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dataclasses

from atb import Arch, SuperBert, SuperBertConfig, export, extract
from atb.controls import export_control
from atb.finetune import FinetuneConfig, finetune_glue
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.stats import TaskRuns, paired_bootstrap
from atb.train import WARM_START_DIR, TrainConfig, read_log, train
from atb.warmstart import warm_start

ARCHS = {"kd": ("4/256/1024/12/252", "3/272/1440/12/288"), "mlm": ("4/256/1024/8/256", "3/272/1440/9/288")}
BUDGET = {"lr": 1e-4, "epochs": 2, "batch_size": 16, "max_seq_len": 64}


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(100.0 * (predictions == labels).mean())


SCRATCH_RUN = "recipe-scratch-kd"  # under runs/<scale>/: recipe 2b's SuperPLM


def train_scratch(layout: Layout, steps: int, lr: float) -> dict:
    """Recipe 2b: the scale's KD one-shot settings from a random initialisation (no warm start), the hidden term
    normalised by the teacher's variance, ``steps`` steps at ``lr`` (10 % warm-up). Resumes; returns its record."""
    cfg = dataclasses.replace(TrainConfig.load(layout.scale, "kd"), init_from=None, kd_hidden_norm="teacher-variance",
                              steps=steps, lr=lr, warmup_steps=max(1, steps // 10), checkpoint_every=100)
    run = layout.runs / SCRATCH_RUN
    start = time.perf_counter()
    result = train(cfg, run, device="cpu")
    log = read_log(run)
    first, last = [r for r in log if "loss" in r][:20], [r for r in log if "loss" in r][-20:]
    return {"recipe": cfg.recipe, "steps": result.steps, "lr": lr, "batch_size": cfg.batch_size,
            "space": cfg.space, "seconds_this_call": time.perf_counter() - start,
            "loss_first_20": float(np.mean([r["loss"] for r in first])),
            "loss_last_20": float(np.mean([r["loss"] for r in last]))}


def supernets(layout: Layout, objective: str, plain: bool, scratch: bool = False) -> dict[str, SuperBert]:
    """The SuperPLMs of one objective to cut sub-models from: ``warm start`` (if saved), ``one-shot``, ``plain``,
    ``scratch 2b``."""
    run = layout.superplm(objective)
    nets = {}
    if (run / WARM_START_DIR).exists():
        nets["warm start"] = SuperBert.from_pretrained(run / WARM_START_DIR).eval()
    nets["one-shot"] = SuperBert.from_pretrained(run / "final").eval()
    if plain and objective == "kd":
        torch.manual_seed(0)
        nets["plain"] = warm_start(SuperBert(SuperBertConfig(**nets["one-shot"].config.to_dict())), rewire=False)
    if scratch and objective == "kd":
        nets["scratch 2b"] = SuperBert.from_pretrained(layout.runs / SCRATCH_RUN / "final").eval()
    return nets


def interval(runs: dict, arch: str, first: str, second: str, seeds: int) -> dict:
    labels = runs[(arch, first, 0)][1]
    task = TaskRuns(accuracy, [runs[(arch, first, s)][0] for s in range(seeds)],
                    [runs[(arch, second, s)][0] for s in range(seeds)], labels)
    return paired_bootstrap([task]).to_dict()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--objectives", nargs="*", default=["kd", "mlm"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train", type=int, default=2000, help="SST-2 training examples")
    parser.add_argument("--archs", nargs="*", help="architectures (default: two per objective, ARCHS)")
    parser.add_argument("--plain", action="store_true", help="also MiniLM copied without rewiring (KD)")
    parser.add_argument("--scratch", type=int, metavar="STEPS", help="also recipe 2b (KD from scratch), STEPS steps")
    parser.add_argument("--scratch-lr", type=float, default=5e-4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    layout = Layout(args.scale)
    rows, runs = [], {}
    start = time.perf_counter()
    scratch = train_scratch(layout, args.scratch, args.scratch_lr) if args.scratch else None
    if scratch:
        print(f"recipe 2b: {scratch}", flush=True)
    with tempfile.TemporaryDirectory(prefix="atb-transfer-") as tmp:
        for objective in args.objectives:
            nets = supernets(layout, objective, args.plain, scratch=bool(args.scratch))
            for arch_text in args.archs or ARCHS[objective]:
                arch, key = Arch.parse(arch_text), f"{objective} {arch_text}"
                stem = f"{objective}-{arch_text.replace('/', '-')}"
                dirs = {name: export(extract(net, arch), Path(tmp) / f"{name.replace(' ', '_')}-{stem}")
                        for name, net in nets.items()}
                dirs["control"] = export_control(arch, Path(tmp) / f"control-{stem}", like=dirs["one-shot"])
                for name, model_dir in dirs.items():
                    for seed in range(args.seeds):
                        cfg = FinetuneConfig(**BUDGET, max_train_examples=args.train, seed=seed, scale="bench")
                        result = finetune_glue(model_dir, "sst2", cfg)
                        dev = next(iter(result["dev"].values()))  # SST-2 has one dev split
                        runs[(key, name, seed)] = (np.asarray(dev["predictions"]), np.asarray(dev["labels"]))
                        print(f"{key} {name:10s} seed {seed}: SST-2 {result['score']:.1f}", flush=True)
                for name in nets:
                    labels = runs[(key, name, 0)][1]
                    rows.append({"objective": objective, "arch": arch_text, "init": name,
                                 "sst2": [accuracy(runs[(key, name, s)][0], labels) for s in range(args.seeds)],
                                 "control": [accuracy(runs[(key, "control", s)][0], labels) for s in range(args.seeds)],
                                 "vs_control": interval(runs, key, name, "control", args.seeds),
                                 "vs_warm_start": (interval(runs, key, name, "warm start", args.seeds)
                                                   if "warm start" in nets and name != "warm start" else None)})
    record = {"scale": args.scale, "budget": {**BUDGET, "train_examples": args.train, "seeds": args.seeds,
                                              "dev": "full"},
              "scratch_recipe": scratch, "rows": rows, "seconds": time.perf_counter() - start, "machine": machine_info()}
    for r in rows:
        iv, ws = r["vs_control"], r["vs_warm_start"]
        print(f"{r['objective']} {r['arch']} {r['init']:11s} SST-2 {np.mean(r['sst2']):.1f} vs control "
              f"{np.mean(r['control']):.1f}: {iv['difference']:+.1f} [{iv['ci95'][0]:+.1f}, {iv['ci95'][1]:+.1f}]"
              + (f"; vs warm start {ws['difference']:+.1f} [{ws['ci95'][0]:+.1f}, {ws['ci95'][1]:+.1f}]" if ws else ""))
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
