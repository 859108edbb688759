"""The training engine, side by side in one run: the earlier study's path (commit ecb91f4: fp32, the unfused AdamW
loop, uniformly shuffled fine-tuning batches, torch's Bernoulli dropout and the word-embedding table's gradient built
through its slice: :func:`atb.dropout.bernoulli_dropout`, :func:`atb.elastic.sliced_table_gradients`) against the new
default (``precision: auto`` — bf16 autocast where the
CPU multiplies bf16 natively, fp32 elsewhere —, fused AdamW and foreach clipping, length-grouped fine-tuning batches,
dropout masks cut from 64-bit random words, the table's gradients at its full size). Where the engine computes the
same numbers as ecb91f4 faster without a setting of its own, :func:`kernels` puts ecb91f4's code back for the
earlier path: the attention logits as new tensors, the mask written with ``masked_fill`` (now added, in place), the
teacher's query and key projections computed again for its scores (now kept from its forward pass), the KD loss's
broadcast mask expanded to be counted.

Timed at a scale's budgets (default mini), alternating the two paths ``--rounds`` times and keeping each one's median:

- ``finetune_sst2`` / ``finetune_mrpc``: the mean fine-tuning step over one epoch of the scale's training subset, on
  the shape of mini's KD evolved model (``--arch``), ``atb.finetune.train_model`` itself (each path with its own
  batches: shuffled vs grouped by length); ``*_same_batches``: both on the shuffled batches, i.e. the numerics
  alone;
- ``kd_step`` / ``mlm_step``: a one-shot training step (``atb.train.Trainer``, the scale's SuperBERT and batch);
- ``further_step``: a further-training step of ``--arch`` (KD);

and the share of a KD step spent in the teacher's forward pass. Prints the ratios (earlier / new: > 1 is faster) and
writes them, the raw seconds, each round's ratio (``speedup_range``: how far the machine's state moved it within
the run), the commit, the CPU, whether it computes bf16 natively and the precision used, to ``--out``.
``--precision fp32`` keeps the new path in fp32: the fp32 improvements alone, measurable on a CPU that computes bf16
natively too. Usage: ``python benchmarks/bench_training.py [--scale mini] [--precision auto|fp32]
[--out results/mini/bench_training.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from unittest import mock

import torch
from transformers import DataCollatorWithPadding

from atb import engine, modeling, objectives
from atb.dropout import bernoulli_dropout
from atb.elastic import sliced_table_gradients
from atb.data import load_glue, load_tokenizer
from atb.finetune import FinetuneConfig, glue_features, train_batches, train_model, train_subset
from atb.modeling import AtbBertConfig, AtbBertForSequenceClassification
from atb.records import machine_info, write_json_atomic
from atb.reproduce import git_commit
from atb.space import Arch
from atb.teacher import Teacher
from atb.train import TrainConfig, Trainer

EARLIER = {"precision": "fp32", "fused_optimizer": False}  # the ecb91f4 path
PATHS = ("earlier", "new")


def masked_fill_logits(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, *,
                       keep_scores: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ecb91f4's attention logits: new tensors, the mask by ``masked_fill`` (:func:`atb.modeling.attention_logits`
    now works in place and adds the mask: the same numbers)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    logits = scores if mask is None else scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return logits, scores if keep_scores else None


def expanded_masked_mse(student: torch.Tensor, teacher: torch.Tensor, keep: torch.Tensor,
                        count: int | None = None) -> torch.Tensor:
    """ecb91f4's :func:`atb.objectives.masked_mse`: the broadcast mask expanded, then counted (the same loss)."""
    keep = keep.expand_as(student)
    diff = torch.where(keep, student - teacher, torch.zeros((), dtype=student.dtype, device=student.device))
    return diff.pow(2).sum() / (keep.sum().clamp(min=1) if count is None else max(count, 1))


@contextlib.contextmanager
def kernels(path: str):
    """The earlier path's dropout and table gradients (the engine's settings are in its config), and ecb91f4's code
    where today's computes the same numbers without a setting (module docstring); the new: as is."""
    with contextlib.ExitStack() as stack:
        if path == "earlier":
            stack.enter_context(bernoulli_dropout())
            stack.enter_context(sliced_table_gradients())
            stack.enter_context(mock.patch.object(modeling, "attention_logits", masked_fill_logits))
            stack.enter_context(mock.patch.object(objectives, "masked_mse", expanded_masked_mse))
            stack.enter_context(mock.patch.object(Teacher, "_projections",
                                                  lambda self, layers: contextlib.nullcontext({})))
        yield


# ------------------------------------------------------------------------------------------ fine-tuning
def finetune_features(task: str, cfg: FinetuneConfig):
    """The scale's training subset of ``task``, tokenised as :func:`atb.finetune.finetune_glue` does."""
    tokenizer = load_tokenizer()
    return (glue_features(train_subset(load_glue(task, "train"), cfg), task, cfg, tokenizer),
            DataCollatorWithPadding(tokenizer))


def finetune_epoch(arch: Arch, features, collate, cfg: FinetuneConfig) -> float:
    """Seconds per step of one epoch of :func:`atb.finetune.train_model` under ``cfg`` (its batches, its engine)."""
    torch.manual_seed(0)
    model = AtbBertForSequenceClassification(AtbBertConfig.from_arch(arch, num_labels=2))
    cfg = dataclasses.replace(cfg, epochs=1)
    start = time.perf_counter()
    train_model(model, features, collate, cfg, desc=f"{cfg.precision}, grouped {cfg.group_by_length}")
    return (time.perf_counter() - start) / len(train_batches(features, collate, cfg))


# ------------------------------------------------------------------------------------------- pre-training
def trainer_steps(cfg: TrainConfig, steps: int) -> tuple[float, Trainer]:
    """Median seconds of ``steps`` steps of the real ``Trainer`` (after one untimed step)."""
    trainer = Trainer(dataclasses.replace(cfg, steps=steps + 1, checkpoint_every=10**9),
                      tempfile.mkdtemp(prefix="bench-train-"))
    trainer.train_step()
    return statistics.median(trainer.train_step()["seconds"] for _ in range(steps)), trainer


def pretraining_configs(scale: str, arch: Arch, precision: str) -> dict[str, dict[str, TrainConfig]]:
    """``{step: {path: TrainConfig}}`` for the one-shot KD and MLM steps and the further-training step of ``arch``:
    the earlier path's settings and the new one's at ``precision`` (random weights: the same speed)."""
    configs = {}
    for name, objective, extra in (("kd_step", "kd", {}), ("mlm_step", "mlm", {}),
                                   ("further_step", "kd", {"arch": str(arch)})):
        base = TrainConfig.load(scale, objective, init_from=None, **extra)
        configs[name] = {"earlier": dataclasses.replace(base, **EARLIER),
                         "new": dataclasses.replace(base, precision=precision, fused_optimizer=True)}
    return configs


def teacher_seconds(trainer: Trainer, steps: int) -> float:
    """Median seconds of the teacher's forward pass on the trainer's batches, under its precision."""
    times = []
    for step in range(1, steps + 1):
        batch = trainer.share(trainer.batch(step))
        start = time.perf_counter()
        with engine.autocast(trainer.cfg.precision):
            trainer.objective.targets(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -------------------------------------------------------------------------------------------------- main
def side_by_side(measure: Callable[[str], float], rounds: int) -> dict[str, float | list[float]]:
    """``measure(path)`` for both paths, alternated ``rounds`` times (so a load change hits both): each path's median
    and, under ``rounds``, each round's ratio earlier / new (their spread is how far the machine's state moves the
    speed-up)."""
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for _ in range(rounds):
        for path in PATHS:
            with kernels(path):
                times[path].append(measure(path))
    return {**{path: statistics.median(values) for path, values in times.items()},
            "rounds": [earlier / new for earlier, new in zip(times["earlier"], times["new"])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--arch", default="6/288/224/12/252", help="the fine-tuned / further-trained shape")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per pre-training measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32"),
                        help="the new path's precision: fp32 measures the fp32 improvements alone on any CPU")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    arch = Arch.parse(args.arch)
    new = engine.describe(args.precision)
    results: dict = {"scale": args.scale, "arch": str(arch), "commit": git_commit(), "machine": machine_info(),
                     "native_bf16": new["native_bf16"], "new": {**EARLIER, **{k: new[k] for k in (
                         "precision", "computed_in", "optimizer")}, "fused_optimizer": True, "group_by_length": True,
                             "dropout": "cheap masks (atb.dropout)", "table_gradients": "full size (atb.elastic)"},
                     "earlier": {**EARLIER, "group_by_length": False, "dropout": "bernoulli",
                                 "table_gradients": "sliced", "attention_mask": "masked_fill",
                                 "teacher_projections": "recomputed", "commit": "ecb91f4"},
                     "seconds": {}, "speedup": {}}

    for task in ("sst2", "mrpc"):
        base = FinetuneConfig.load(args.scale, task)
        cfgs = {"earlier": dataclasses.replace(base, **EARLIER, group_by_length=False),
                "new": dataclasses.replace(base, precision=args.precision, fused_optimizer=True, group_by_length=True)}
        features, collate = finetune_features(task, base)
        results["seconds"][f"finetune_{task}"] = side_by_side(
            lambda path: finetune_epoch(arch, features, collate, cfgs[path]), args.rounds)
        results["seconds"][f"finetune_{task}_same_batches"] = side_by_side(  # the numerics alone
            lambda path: finetune_epoch(arch, features, collate, dataclasses.replace(cfgs[path], group_by_length=False)),
            args.rounds)

    teacher = {}
    for name, cfgs in pretraining_configs(args.scale, arch, args.precision).items():

        def measure(path: str) -> float:
            seconds, trainer = trainer_steps(cfgs[path], args.steps)
            if name == "kd_step":
                teacher.setdefault(path, []).append(teacher_seconds(trainer, args.steps))
            return seconds

        results["seconds"][name] = side_by_side(measure, args.rounds)
    results["teacher_forward_seconds"] = {path: statistics.median(v) for path, v in teacher.items()}
    results["teacher_share_of_kd_step"] = {path: results["teacher_forward_seconds"][path] /
                                           results["seconds"]["kd_step"][path] for path in PATHS}
    results["speedup"] = {name: s["earlier"] / s["new"] for name, s in results["seconds"].items()}
    results["speedup_range"] = {name: [min(s["rounds"]), max(s["rounds"])] for name, s in results["seconds"].items()}

    print(f"{args.scale}: {results['machine']['cpu']}, {results['machine']['threads']} threads, native bf16: "
          f"{results['native_bf16']}; new default computes in {results['new']['computed_in']}")
    print("| step | earlier (s) | new (s) | speed-up (median; each round's) |\n|---|---|---|---|")
    for name, s in results["seconds"].items():
        low, high = results["speedup_range"][name]
        print(f"| {name} | {s['earlier']:.3f} | {s['new']:.3f} | {results['speedup'][name]:.2f}x "
              f"(rounds {low:.2f}-{high:.2f}) |")
    share = results["teacher_share_of_kd_step"]
    print(f"teacher forward: {100 * share['earlier']:.0f} % of a KD step before, {100 * share['new']:.0f} % now")
    if args.out:
        write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
