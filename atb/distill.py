"""Layer-wise distillation of a weight-sharing supernet: warm-up, further distillation, and the KD proxy fitness.

EfficientBERT (:mod:`atb.efficientbert`) and AutoBERT-Zero (:mod:`atb.autobert_zero`) both search candidates that
start from the weights of one supernet (:class:`atb.supernet.WeightSharingSupernet`), so both distil it from the
teacher first, score candidates by their distillation loss with inherited weights, and further distil the
developed candidates. This module is that shared machinery; each system says *which* candidate a step trains
(``sample(step)``): EfficientBERT's warm-up trains its fixed supernet (every layer four stacked gelu blocks at
full width, as the official ``ffn_search.py`` warm-up), AutoBERT-Zero's a random mix of branches.

The loss is the official ``calc_distil_losses`` (pre-training part): layer-wise, student layer ``l`` against teacher
layer ``(l + 1) * L_t / L_s``:

* **attention**: the MSE of the pre-softmax attention scores of every layer (pairs of real tokens);
* **hidden** ("ffn loss"): the MSE of the embeddings' output and of every layer's output.

The student and the teacher see unmasked text (``mask 0``, as AutoTinyBERT's KD). Hidden states are compared
directly: at mini the supernet has the teacher's width (a warm start from it); a narrower student needs
``fit`` projections, which :class:`LayerwiseKD` holds and trains with it.

:func:`warmup_distill` is resumable: checkpoints (atomic, verified: :mod:`atb.checkpoint`) hold the weights,
the optimizer, the schedule and the RNG, and a rerun continues from the latest; batches and candidates are
functions of the step alone.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from . import engine
from .checkpoint import load_latest, save_checkpoint
from .objectives import masked_mse, real_pairs
from .progress import bar as progress_bar
from .records import write_dir_atomic, write_json_atomic
from .teacher import Teacher, TeacherOutput
from .train import batch_indices, truncate_log
from .supernet import Candidate, SuperNetOutput, WeightSharingSupernet

Batch = dict[str, torch.Tensor]


@dataclass
class KDTerms:
    """``loss = attention + hidden`` (sums over layers of per-layer means)."""

    loss: torch.Tensor
    attention: torch.Tensor
    hidden: torch.Tensor


class LayerwiseKD(nn.Module):
    """The layer-wise distillation loss; holds ``fit`` projections (student hidden -> teacher hidden) only when the
    widths differ. The teacher is held, not registered: the state is the projections alone. A student without BERT's
    attention scores (``attention_scores`` None: AutoBERT-Zero's graphs and convolutions, :mod:`atb.autobert_zero`)
    is distilled on the hidden term alone."""

    def __init__(self, teacher: Teacher, student_layers: int, student_hidden: int):
        super().__init__()
        object.__setattr__(self, "teacher", teacher)
        if teacher.num_layers % student_layers:
            raise ValueError(f"layer-wise KD maps every student layer to a teacher layer: the teacher's "
                             f"{teacher.num_layers} layers are not a multiple of the student's {student_layers}")
        self.interval = teacher.num_layers // student_layers
        self.fit = (nn.Identity() if student_hidden == teacher.hidden_size
                    else nn.Linear(student_hidden, teacher.hidden_size))

    def targets(self, batch: Batch) -> TeacherOutput:
        return self.teacher(batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"], all_layers=True)

    def forward(self, student: SuperNetOutput, teacher: TeacherOutput, attention_mask: torch.Tensor) -> KDTerms:
        real, pairs = attention_mask.bool()[..., None], real_pairs(attention_mask)
        hidden = masked_mse(self.fit(student.hidden_states[0]).float(), teacher.hidden_states[0].float(), real)
        attention = hidden.new_zeros(())
        scores = student.attention_scores or (None,) * (len(student.hidden_states) - 1)
        for layer, (state, score) in enumerate(zip(student.hidden_states[1:], scores)):
            t = (layer + 1) * self.interval  # the teacher layer this student layer learns from
            hidden = hidden + masked_mse(self.fit(state).float(), teacher.hidden_states[t].float(), real)
            if score is not None:
                attention = attention + masked_mse(score.float(), teacher.all_attention_scores[t - 1].float(), pairs)
        return KDTerms(loss=attention + hidden, attention=attention, hidden=hidden)


def candidate_loss(supernet: WeightSharingSupernet, kd: LayerwiseKD, batch: Batch, candidate: Candidate,
                   targets: TeacherOutput | None = None) -> KDTerms:
    """The layer-wise KD loss of ``candidate`` run with the supernet's weights on ``batch``."""
    targets = kd.targets(batch) if targets is None else targets
    out = supernet(batch["input_ids"], candidate, attention_mask=batch["attention_mask"],
                   token_type_ids=batch["token_type_ids"], output_all=True)
    return kd(out, targets, batch["attention_mask"])


# ------------------------------------------------------------------------------------------------ warm-up
@dataclass
class WarmupConfig:
    """A distillation run's budget (sections ``efficientbert.warmup`` / ``autobert_zero.warmup`` of a scale's config;
    further distillation takes the same settings with its own ``steps``)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    corpus: str = "pretrain"
    max_documents: int | None = 2000
    max_seq_len: int = 128
    checkpoint_every: int = 50
    seed: int = 0
    precision: str = "auto"  # atb.engine; defaults from the scale's `engine` section
    fused_optimizer: bool = True

    section: ClassVar[str] = "warmup"  # how errors name the config section

    def __post_init__(self) -> None:
        where = f"{self.section} field"
        for name, least in (("steps", 1), ("batch_size", 1), ("max_seq_len", 1), ("checkpoint_every", 1),
                            ("warmup_steps", 0), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{where} {name!r} must be an integer >= {least}, got {value!r}")
        if self.max_documents is not None and (not isinstance(self.max_documents, int) or self.max_documents < 1):
            raise ValueError(f"{where} 'max_documents' must be None or an integer >= 1, got {self.max_documents!r}")
        if not self.lr > 0:
            raise ValueError(f"{where} 'lr' must be > 0, got {self.lr!r}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"{where} 'max_grad_norm' must be > 0, got {self.max_grad_norm!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"{where} 'weight_decay' must be >= 0, got {self.weight_decay!r}")
        engine.check_engine(self.precision, self.fused_optimizer, self.section)


def pretraining_batches(cfg: WarmupConfig):
    """``batch(step)``: the step's batch of unmasked packed pre-training text, a function of ``(seed, step)``."""
    from .data import MLMCollator, build_pretraining_examples, load_corpus, load_tokenizer

    tokenizer = load_tokenizer()
    examples = build_pretraining_examples(load_corpus(cfg.corpus, max_documents=cfg.max_documents), tokenizer,
                                          max_seq_len=cfg.max_seq_len)
    collate = MLMCollator(tokenizer, mlm_probability=0.0)
    return lambda step: collate([examples[i] for i in batch_indices(step, cfg.batch_size, len(examples), cfg.seed)])


def warmup_distill(supernet: WeightSharingSupernet, teacher: Teacher, sample: Callable[[int], Candidate],
                   cfg: WarmupConfig, run_dir: str | Path, *, batch: Callable[[int], Batch] | None = None,
                   max_steps: int | None = None) -> dict:
    """Distil ``supernet`` (in place) from ``teacher`` for ``cfg.steps`` steps, candidate ``sample(step)`` at each;
    resumes from ``run_dir/checkpoints`` and writes ``run_dir/final`` (the supernet, ``save_pretrained``) and
    ``log.jsonl`` (step, candidate, loss terms, wall and process CPU seconds). ``max_steps``: stop after that many steps in this call
    (a test of resuming). Returns ``{"steps", "loss_first", "loss_last", "seconds"}``."""
    run_dir = Path(run_dir)
    batch = batch or pretraining_batches(cfg)
    kd = LayerwiseKD(teacher, supernet.config.num_hidden_layers, supernet.config.hidden_size)
    params = [*supernet.parameters(), *kd.parameters()]
    optimizer = engine.adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_optimizer)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    step = 0
    ckpt = load_latest(run_dir / "checkpoints")
    if ckpt is not None:
        supernet.load_state_dict(ckpt.tensors["model"])
        kd.load_state_dict(ckpt.tensors.get("fit", {}))
        optimizer.load_state_dict(ckpt.trainer["optimizer"])
        scheduler.load_state_dict(ckpt.trainer["scheduler"])
        torch.set_rng_state(ckpt.trainer["rng"])
        step = ckpt.trainer["step"]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", asdict(cfg))
    device = next(supernet.parameters()).device
    engine.record_run(run_dir, cfg.precision, device, fused_optimizer=cfg.fused_optimizer)
    log = run_dir / "log.jsonl"
    truncate_log(log, step)  # a resumed run re-logs the steps after its checkpoint
    stop = cfg.steps if max_steps is None else min(cfg.steps, step + max_steps)
    supernet.train()
    start = time.perf_counter()
    name = f"{Path(run_dir).parent.name}/{Path(run_dir).name}"
    with progress_bar(total=cfg.steps, initial=step, desc=f"layer-wise KD ({name})") as bar, open(log, "a") as f:
        while step < stop:
            t0, c0 = time.perf_counter(), time.process_time()
            candidate = sample(step)
            with engine.autocast(cfg.precision, device):
                terms = candidate_loss(supernet, kd, batch(step), candidate)
            terms.loss.backward()
            engine.clip_and_step(optimizer, scheduler, params, cfg.max_grad_norm, foreach=cfg.fused_optimizer)
            step += 1
            f.write(json.dumps({"step": step, "candidate": [str(c) for c in candidate],
                                "loss": terms.loss.item(), "attention": terms.attention.item(),
                                "hidden": terms.hidden.item(), "seconds": time.perf_counter() - t0,
                                "cpu_seconds": time.process_time() - c0}) + "\n")
            f.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{terms.loss.item():.3f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                tensors = {"model": supernet.state_dict()}
                if list(kd.state_dict()):
                    tensors["fit"] = kd.state_dict()
                save_checkpoint(run_dir / "checkpoints", step, tensors,
                                {"step": step, "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}, keep=1)
    supernet.eval()
    if step == cfg.steps and not (run_dir / "final").exists():
        write_dir_atomic(run_dir / "final", supernet.save_pretrained)
    losses = [json.loads(line)["loss"] for line in log.read_text().splitlines() if line.strip()]
    head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10):]
    return {"steps": step, "loss_first": sum(head) / len(head) if head else None,
            "loss_last": sum(tail) / len(tail) if tail else None, "seconds": time.perf_counter() - start}


def log_cpu_seconds(run_dir: str | Path) -> float | None:
    """A distillation run's process CPU seconds, summed over its log's steps (so a cached or resumed run still
    reports its whole cost); None for a log written before CPU seconds were logged, or no log."""
    log = Path(run_dir) / "log.jsonl"
    steps = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    if not steps or any("cpu_seconds" not in r for r in steps):
        return None
    return sum(r["cpu_seconds"] for r in steps)


# ------------------------------------------------------------------------------------------------ fitness
@dataclass
class KDProxyFitness:
    """Fitness = -(layer-wise KD loss) of a candidate with the supernet's inherited weights on held-out text: the
    AutoTinyBERT-style proxy, cheap and deterministic (the paper's fitness, a short distillation and fine-tuning per
    candidate, costs minutes each). Teacher targets are computed once."""

    supernet: WeightSharingSupernet
    teacher: Teacher
    batches: Sequence[Batch]
    name: str = "supernet"  # which supernet (its folder): search logs of another supernet are not resumed
    settings: dict | None = None  # how the held-out batches were drawn, for the same reason

    def describe(self) -> dict:
        return {"name": "kd-proxy", "supernet": self.name, "teacher": self.teacher.name, "settings": self.settings,
                "batches": len(self.batches)}

    def __post_init__(self) -> None:
        self.supernet.eval()
        self.kd = LayerwiseKD(self.teacher, self.supernet.config.num_hidden_layers, self.supernet.config.hidden_size)
        self.targets = [self.kd.targets(b) for b in self.batches]

    @torch.no_grad()
    def __call__(self, candidate: Candidate) -> float:
        total = sum(candidate_loss(self.supernet, self.kd, b, candidate, t).loss.item()
                    for b, t in zip(self.batches, self.targets))
        return -total / len(self.batches)


def random_sampler(draw: Callable[[random.Random], Candidate], seed: int) -> Callable[[int], Candidate]:
    """``sample(step)`` from ``draw(rng)``, with the rng seeded from ``(seed, step)``: resumable."""
    return lambda step: draw(random.Random(seed * 1_000_003 + step))
