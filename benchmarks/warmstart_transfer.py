"""Does a warm-started SuperPLM transfer? Sub-models cut from MiniLM copied into a 6-layer KD SuperPLM, fine-tuned
on SST-2 beside untrained controls of the same shapes (no one-shot training: the warm start alone).

    python benchmarks/warmstart_transfer.py [--seeds 2] [--train 2000] [--out results/mini/bench_warmstart_transfer.json]

Three initialisations per architecture, each fine-tuned with the same budget and seeds: ``rewired`` (importance
rewiring, atb.warmstart), ``plain`` (top-left slices of MiniLM as stored) and ``control`` (random init). The space
fits the teacher (layers 1-6, hidden 128-384, FFN 128-1536, 12 heads, qkv 96-384): groundwork for issue #12, whose
feasibility run reported +17 to +25 SST-2 points of plain slices over controls. Accuracy on the full SST-2 dev set
with a 95 % interval of the difference from the control (seeds and dev examples resampled, atb.stats).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from atb import Arch, SuperBert, SuperBertConfig, export, extract
from atb.develop import export_control
from atb.finetune import FinetuneConfig, finetune_glue
from atb.records import machine_info, write_json_atomic
from atb.space import Range, SearchSpace
from atb.stats import TaskRuns, paired_bootstrap
from atb.warmstart import warm_start

SPACE = SearchSpace("kd", layers=Range(1, 6), hidden=Range(128, 384, 16), ffn=Range(128, 1536, 32),
                    heads=Range(12, 12), qkv=Range(96, 384, 12))
ARCHS = ("4/256/1024/12/252", "3/272/1440/12/288", "6/320/768/12/192")


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(100.0 * (predictions == labels).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--train", type=int, default=2000, help="SST-2 training examples")
    parser.add_argument("--archs", nargs="*", default=list(ARCHS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    supernets = {"rewired": warm_start(SuperBert(SuperBertConfig.from_space(SPACE)), rewire=True),
                 "plain": warm_start(SuperBert(SuperBertConfig.from_space(SPACE)), rewire=False)}
    rows, runs = [], {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="atb-warmstart-") as tmp:
        for arch_text in args.archs:
            arch = Arch.parse(arch_text)
            dirs = {name: export(extract(net, arch), Path(tmp) / f"{name}-{arch_text.replace('/', '-')}")
                    for name, net in supernets.items()}
            dirs["control"] = export_control(arch, Path(tmp) / f"control-{arch_text.replace('/', '-')}",
                                             like=dirs["plain"])
            for name, model_dir in dirs.items():
                for seed in range(args.seeds):
                    cfg = FinetuneConfig(lr=1e-4, epochs=2, batch_size=16, max_seq_len=64,
                                         max_train_examples=args.train, seed=seed, scale="bench")
                    result = finetune_glue(model_dir, "sst2", cfg)
                    dev = next(iter(result["dev"].values()))  # SST-2 has one dev split
                    runs[(arch_text, name, seed)] = (np.asarray(dev["predictions"]), np.asarray(dev["labels"]))
                    print(f"{arch_text} {name:8s} seed {seed}: SST-2 {result['score']:.1f}", flush=True)
            for name in ("rewired", "plain"):
                labels = runs[(arch_text, name, 0)][1]
                task = TaskRuns(accuracy, [runs[(arch_text, name, s)][0] for s in range(args.seeds)],
                                [runs[(arch_text, "control", s)][0] for s in range(args.seeds)], labels)
                interval = paired_bootstrap([task])
                rows.append({"arch": arch_text, "init": name,
                             "sst2": [accuracy(runs[(arch_text, name, s)][0], labels) for s in range(args.seeds)],
                             "control": [accuracy(runs[(arch_text, "control", s)][0], labels) for s in range(args.seeds)],
                             "vs_control": interval.to_dict()})
    record = {"space": str(SPACE), "budget": {"lr": 1e-4, "epochs": 2, "batch_size": 16, "max_seq_len": 64,
                                              "train_examples": args.train, "seeds": args.seeds, "dev": "full"},
              "rows": rows, "seconds": time.perf_counter() - start, "machine": machine_info()}
    for r in rows:
        iv = r["vs_control"]
        print(f"{r['arch']} {r['init']:8s} SST-2 {np.mean(r['sst2']):.1f} vs control {np.mean(r['control']):.1f}: "
              f"{iv['difference']:+.1f} [{iv['ci95'][0]:+.1f}, {iv['ci95'][1]:+.1f}]")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
