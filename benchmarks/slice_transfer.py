"""Which tasks survive slicing? The offline MiniLM, its rewired copy in the KD SuperPLM's warm start, and smaller
sub-models cut from that warm start, fine-tuned on GLUE tasks beside untrained controls of the same shapes.

    python benchmarks/slice_transfer.py --scale mini [--tasks stsb sst2] [--archs 4/384/1536/12/384 ...]
        [--seeds 1] [--workers 2] [--out results/mini/bench_slice_transfer.json]

Why: at mini the study's sub-models learn SST-2 from the warm start (+20 points over their controls) but STS-B,
CoLA, MRPC and RTE not at all. This measures where that transfer is lost: in the teacher itself, in rewiring it
into the SuperPLM (the space's largest sub-model, which equals MiniLM), or in cutting smaller sub-models out of it
(fewer layers, a narrower FFN, a narrower hidden size) before any one-shot training.

Every model is fine-tuned with the scale's budget for the task (``finetune`` section of ``configs/<scale>.yaml``)
at ``--lr``, and scored on examples **held out of the train split** (``evaluate_on="heldout"``), never the dev split
the study reports. Per task and model: the score, the control's, and the difference with a 95 % interval over seeds
and held-out examples (:func:`atb.stats.paired_bootstrap`). The teacher is a plain BERT with its pre-trained
pooler; the cut models get a fresh pooler, as every model of the study does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from atb import Arch, SuperBert, export, extract
from atb.controls import export_control
from atb.finetune import Job, run_jobs
from atb.layout import Layout
from atb.metrics import glue_score_fn
from atb.records import machine_info, write_json_atomic
from atb.stats import TaskRuns, paired_bootstrap
from atb.teacher import offline_teacher_path
from atb.train import WARM_START_DIR

# The largest sub-model (MiniLM itself), two layers fewer, half the FFN, three quarters of the hidden size, and the
# KD pick at 25x of the mini run committed before this benchmark (commit efdd8b8).
ARCHS = ("6/384/1536/12/384", "4/384/1536/12/384", "6/384/768/12/384", "6/288/1152/12/288", "6/176/736/12/192")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--tasks", nargs="+", default=["stsb"])
    parser.add_argument("--archs", nargs="*", default=list(ARCHS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4, help="the rate a pre-trained encoder wants at mini")
    parser.add_argument("--control-lr", type=float, default=3e-4, help="the controls' rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    warm = Layout(args.scale).superplm("kd") / WARM_START_DIR
    if not warm.exists():
        raise SystemExit(f"{warm} does not exist: run notebook 01 at scale {args.scale} with a warm start first")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="atb-slice-") as tmp:
        supernet = SuperBert.from_pretrained(warm).eval()
        models = {"teacher": (offline_teacher_path(), None)}
        for text in args.archs:
            arch = Arch.parse(text)
            cut = export(extract(supernet, arch), Path(tmp) / text.replace("/", "-"))
            models[text] = (str(cut), str(export_control(arch, Path(tmp) / f"control-{text.replace('/', '-')}",
                                                         like=cut)))
        jobs = {}
        for task in args.tasks:
            for name, (model_dir, control_dir) in models.items():
                for side, directory, lr in (("model", model_dir, args.lr), ("control", control_dir, args.control_lr)):
                    for seed in range(args.seeds) if directory else ():
                        jobs[(task, name, side, seed)] = Job(directory, task, args.scale, None, seed,
                                                             {task: {"lr": lr, "evaluate_on": "heldout"}})
        results = dict(zip(jobs, run_jobs(list(jobs.values()), args.workers)))
    rows = []
    for task in args.tasks:
        metric = glue_score_fn(task)

        def predictions(name: str, side: str) -> tuple[list[np.ndarray], np.ndarray]:
            evaluated = [next(iter(results[(task, name, side, s)]["dev"].values())) for s in range(args.seeds)]
            return [np.asarray(e["predictions"]) for e in evaluated], np.asarray(evaluated[0]["labels"])

        for name, (_, control_dir) in models.items():
            runs, labels = predictions(name, "model")
            row = {"task": task, "model": name, "score": [metric(r, labels) for r in runs]}
            if control_dir:
                control, _ = predictions(name, "control")
                row["control"] = [metric(r, labels) for r in control]
                row["vs_control"] = paired_bootstrap([TaskRuns(metric, runs, control, labels)]).to_dict()
            rows.append(row)
    record = {"scale": args.scale, "warm_start": str(warm), "lr": args.lr, "control_lr": args.control_lr,
              "seeds": args.seeds, "evaluated_on": "examples held out of the train split", "rows": rows,
              "seconds": round(time.perf_counter() - start, 1), "machine": machine_info()}
    for r in rows:
        line = f"{r['task']:5s} {r['model']:18s} {np.mean(r['score']):6.1f}"
        if "vs_control" in r:
            iv = r["vs_control"]
            line += (f"  control {np.mean(r['control']):6.1f}  difference {iv['difference']:+.1f} "
                     f"[{iv['ci95'][0]:+.1f}, {iv['ci95'][1]:+.1f}]")
        print(line)
    if args.out:
        write_json_atomic(args.out, Layout(args.scale).portable(record))


if __name__ == "__main__":
    main()
