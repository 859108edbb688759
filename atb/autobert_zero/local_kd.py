"""Layer-local distillation of the BIWS supernet's convolution branches (issue #21).

**Why.** The supernet is warm-started from MiniLM (:func:`.supernet.warm_start_from_bert`): its attention branch,
output projections and FFNs are MiniLM's, but the convolution branch has no counterpart in BERT (its input
projection starts as V, its kernel at zero: a plain window average). Left so, a convolution is random at search
time, and every candidate with one loses on the KD proxy by construction, whatever it could have learned. The
warm-up (:func:`.study.warm_up`) trains it only on the steps whose random candidates draw a convolution, through
layers whose inputs are the other, also drifting, layers' outputs.

**What.** :func:`train_convolutions` trains every layer's convolution branch alone, layer-locally: layer ``l``,
run as a convolution (``ConvLayer(k)``, ``k`` drawn per layer and step among ``config.kernels``, so the one
centre-cropped kernel serves every size: BIWS), reads the teacher's hidden state entering layer ``l``
(``hidden_states[l]``) and learns the teacher's hidden state leaving it (``hidden_states[l + 1]``); the loss is the
sum over layers of the masked MSE over real tokens (:func:`atb.objectives.masked_mse`). One teacher pass gives
every layer's input and target, so each step trains all layers at once, and no layer waits for the ones below it.

**Which parameters.** Only those a convolution layer alone owns (:meth:`.supernet.AutoBertZeroSuperNet.
conv_parameters`: the branch's input projection and its kernel, or kernel generator). The output projection,
LayerNorms and FFN a convolution layer runs through are shared with the attention branch; they are frozen, so the
warm-started attention (the search's start, the standard-attention backbone) is left bit for bit as it was (tested).

**The paper** does none of this: AutoBERT-Zero pre-trains its supernet from scratch by MLM, and scores each
candidate after a short pre-training and fine-tuning of its own, so a convolution is never judged untrained. Here
the KD proxy scores candidates with inherited weights, so the weights a convolution inherits must be trained.

The run is resumable like :func:`atb.distill.warmup_distill`: atomic, verified checkpoints (:mod:`atb.checkpoint`)
hold the convolution parameters (nothing else changes), the optimizer, the schedule and the RNG; batches and kernels
are functions of the step alone; ``log.jsonl`` holds each step's loss, per-layer losses, kernels, wall and process
CPU seconds; ``final/`` is the whole supernet (``save_pretrained``, written atomically).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
from transformers import get_linear_schedule_with_warmup

from .. import engine
from ..checkpoint import CheckpointError, load_latest, save_checkpoint
from ..distill import WarmupConfig, pretraining_batches
from ..objectives import masked_mse
from ..progress import bar as progress_bar
from ..records import write_dir_atomic, write_json_atomic
from ..teacher import Teacher
from ..train import truncate_log
from .modeling import bool_mask
from .space import ConvLayer
from .supernet import AutoBertZeroSuperNet

Batch = dict[str, torch.Tensor]

__all__ = ["LocalKDConfig", "draw_kernels", "layer_local_losses", "train_convolutions"]


@dataclass
class LocalKDConfig(WarmupConfig):
    """A layer-local distillation run's budget: the warm-up's fields (batches as the warm-up's,
    :func:`atb.distill.pretraining_batches`), a larger default rate: only the convolution branch trains, from a
    neutral start."""

    lr: float = 1e-3
    section: ClassVar[str] = "local_kd"

    def batch_config(self) -> WarmupConfig:
        """The settings :func:`atb.distill.pretraining_batches` reads (this config is one)."""
        return self


def draw_kernels(kernels: list[int], layers: int, seed: int, step: int) -> list[int]:
    """Step ``step``'s kernel of every layer, drawn uniformly among ``kernels``: a function of ``(seed, step)``."""
    rng = random.Random(seed * 1_000_003 + step)
    return [rng.choice(kernels) for _ in range(layers)]


def check_shapes(supernet: AutoBertZeroSuperNet, teacher: Teacher) -> None:
    """Layer-local KD feeds the teacher's states to the supernet's layers: depth and width must be the teacher's."""
    c = supernet.config
    if teacher.num_layers != c.num_hidden_layers:
        raise ValueError(f"layer-local KD feeds teacher layer l's input to supernet layer l: the teacher has "
                         f"{teacher.num_layers} layers, the supernet {c.num_hidden_layers}")
    if teacher.hidden_size != c.hidden_size:
        raise ValueError(f"layer-local KD feeds the teacher's hidden states to the supernet's layers: the teacher's "
                         f"hidden size is {teacher.hidden_size}, the supernet's {c.hidden_size}")


def layer_local_losses(supernet: AutoBertZeroSuperNet, teacher: Teacher, batch: Batch,
                       kernels: list[int]) -> list[torch.Tensor]:
    """Per layer ``l``: the masked MSE between supernet layer ``l`` run as ``ConvLayer(kernels[l])`` on the teacher's
    ``hidden_states[l]`` and the teacher's ``hidden_states[l + 1]`` (real tokens only)."""
    device = next(supernet.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    supernet.check(tuple(ConvLayer(k) for k in kernels))
    states = teacher(batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch.get("token_type_ids"), all_layers=True).hidden_states
    mask = bool_mask(batch["attention_mask"])
    real = mask[..., None]
    losses = []
    for i, (layer, kernel) in enumerate(zip(supernet.layer, kernels)):
        x, target = states[i].to(device), states[i + 1].to(device)
        out = layer(x, mask, ConvLayer(kernel))
        losses.append(masked_mse(out.float(), target.float(), real))
    return losses


def _load_conv_state(supernet: AutoBertZeroSuperNet, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = set(supernet.conv_parameters())
    if set(state) != expected:
        raise CheckpointError(f"{path}: its convolution parameters {sorted(set(state) ^ expected)[:4]}... do not "
                              f"match this supernet's (another supernet's run directory?)")
    supernet.load_state_dict(state, strict=False)


def train_convolutions(supernet: AutoBertZeroSuperNet, teacher: Teacher, cfg: LocalKDConfig, run_dir: str | Path,
                       *, batch: Callable[[int], Batch] | None = None, max_steps: int | None = None) -> dict:
    """Layer-local distillation of every layer's convolution branch (module docstring), the rest of ``supernet``
    frozen; ``supernet`` is modified in place (and left in eval mode). Resumes from ``run_dir/checkpoints``; writes
    ``run_dir/config.json``, ``run_dir/log.jsonl`` and, once ``cfg.steps`` are done, ``run_dir/final`` (the whole
    supernet, ``save_pretrained``). ``batch(step)``: the step's batch (default: pre-training text,
    :func:`atb.distill.pretraining_batches`); ``max_steps``: stop after that many steps in this call (a test of
    resuming). Returns ``{"steps", "loss_first", "loss_last", "seconds", "cpu_seconds"}``: the mean loss of the first
    and last tenth of the steps, and the wall and process CPU seconds summed over the log (a resumed run reports its
    whole cost)."""
    check_shapes(supernet, teacher)
    run_dir = Path(run_dir)
    batch = batch or pretraining_batches(cfg.batch_config())
    named = supernet.conv_parameters()
    params = list(named.values())
    layers, kernels = supernet.config.num_hidden_layers, list(supernet.config.kernels)
    convs = [layer.conv for layer in supernet.layer]
    optimizer = engine.adamw([p for conv in convs for p in conv.parameters()], lr=cfg.lr,
                             weight_decay=cfg.weight_decay, fused=cfg.fused_optimizer)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    step = 0
    ckpt = load_latest(run_dir / "checkpoints")
    if ckpt is not None:
        _load_conv_state(supernet, ckpt.tensors["conv"], ckpt.path)
        optimizer.load_state_dict(ckpt.trainer["optimizer"])
        scheduler.load_state_dict(ckpt.trainer["scheduler"])
        torch.set_rng_state(ckpt.trainer["rng"])
        step = ckpt.trainer["step"]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", {**asdict(cfg), "kernels": kernels, "teacher": teacher.name,
                                                "trained": sorted(named)})
    device = params[0].device
    engine.record_run(run_dir, cfg.precision, device, fused_optimizer=cfg.fused_optimizer)
    log = run_dir / "log.jsonl"
    truncate_log(log, step)  # a resumed run re-logs the steps after its checkpoint
    stop = cfg.steps if max_steps is None else min(cfg.steps, step + max_steps)
    supernet.train()
    try:
        name = f"{run_dir.parent.name}/{run_dir.name}"
        with progress_bar(total=cfg.steps, initial=step, desc=f"conv layer-local KD ({name})") as bar, \
                open(log, "a") as f:
            while step < stop:
                t0, c0 = time.perf_counter(), time.process_time()
                drawn = draw_kernels(kernels, layers, cfg.seed, step)
                with engine.autocast(cfg.precision, device):
                    losses = layer_local_losses(supernet, teacher, batch(step), drawn)
                    loss = torch.stack(losses).sum()
                loss.backward(inputs=params)  # gradients reach the convolution branch only
                engine.clip_and_step(optimizer, scheduler, params, cfg.max_grad_norm, foreach=cfg.fused_optimizer)
                step += 1
                f.write(json.dumps({"step": step, "kernels": drawn, "loss": loss.item(),
                                    "layers": [v.item() for v in losses], "seconds": time.perf_counter() - t0,
                                    "cpu_seconds": time.process_time() - c0}) + "\n")
                f.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save_checkpoint(run_dir / "checkpoints", step,
                                    {"conv": {k: p.detach() for k, p in supernet.conv_parameters().items()}},
                                    {"step": step, "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}, keep=1)
    finally:
        supernet.eval()
    if step == cfg.steps and not (run_dir / "final").exists():
        write_dir_atomic(run_dir / "final", supernet.save_pretrained)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    losses_logged = [r["loss"] for r in records]
    tenth = max(1, len(losses_logged) // 10)
    head, tail = losses_logged[:tenth], losses_logged[-tenth:]
    return {"steps": step, "loss_first": sum(head) / len(head) if head else None,
            "loss_last": sum(tail) / len(tail) if tail else None,
            "seconds": sum(r["seconds"] for r in records), "cpu_seconds": sum(r["cpu_seconds"] for r in records)}
