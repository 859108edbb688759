"""One training loop for one-shot SuperPLM training (MLM or KD) and for further training of a sub-model.

    python -m atb.train --config configs/mini.yaml --objective kd --run-dir runs/mini-kd [--max-steps N]
    python -m atb.train --config configs/mini.yaml --objective kd --run-dir runs/kd-s4 \\
        --further-train --arch 4/256/480/12/192 --init runs/extracted/kd-s4
    torchrun --nproc_per_node 2 -m atb.train ...            # data parallel (gloo on CPU, nccl on GPU)

Each step the sampler picks the sub-architecture(s) (the same on every rank: it is a function of the
global step), the global batch is masked once and split across ranks, each rank's loss is its share of the
global batch's mean loss (:mod:`atb.objectives`, ``share_of``), gradients are summed with one all-reduce
(so N ranks compute what one process would on the global batch, up to float summation order), then AdamW
with linear warm-up/decay, weight decay 0.01 and gradient clipping at 1.0 (notes §4).

The objective (:class:`atb.objectives.MLMObjective` or :class:`~atb.objectives.KDObjective`, the very
objects the search's proxy fitness uses) holds everything trained besides the student: for KD the
projection ``W_fit``. It is checkpointed with the student, and ``final/`` holds the SuperBERT's weights and,
beside them, ``objective.json`` (objective, teacher) and ``objective.safetensors`` (``W_fit``).

Further training is the same loop over a one-point search space: the extracted sub-model is loaded
into a SuperBERT whose maximum *is* that architecture, so there is exactly one code path.

Everything that varies between steps (batch order, masking, architectures) is derived from
``(seed, step)``, and checkpoints hold the weights, optimizer, scheduler and RNG (dropout) states, so a
killed run resumed from its latest checkpoint ends bitwise equal to an uninterrupted one (on CPU, one
process). Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoModelForMaskedLM, BertForMaskedLM, get_linear_schedule_with_warmup

from . import config, engine
from .checkpoint import load_latest, save_checkpoint
from .extract import export, extract, from_bert
from .objectives import KDObjective, MLMObjective
from .progress import bar as progress_bar, libraries_quiet
from .records import write_dir_atomic, write_json_atomic, write_text_atomic
from .sampler import FixedSampler, make_sampler
from .space import Arch, Range, SearchSpace
from .superbert import SuperBert, SuperBertConfig


WARM_START_DIR = "warm_start"  # beside final/: the warm-started SuperBERT before one-shot training


# ------------------------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Everything a run depends on. Scales live in ``configs/<scale>.yaml``; nothing scale-specific in code."""

    scale: str = "smoke"
    objective: str = "mlm"  # "mlm" | "kd"
    space: str = "smoke"  # SearchSpace.preset(space, objective)
    corpus: str = "pretrain"
    # fraction of tokens corrupted BERT-style; None: the objective's own (MLM 0.15; KD 0, the official code's
    # `masked_lm_prob 0`: student and teacher distil on the real text they will see when fine-tuned)
    mask_probability: float | None = None
    max_documents: int | None = None  # first N documents of the corpus (None: all)
    max_seq_len: int = 128
    batch_size: int = 32  # global, across all ranks
    steps: int = 100
    lr: float = 1e-4
    warmup_steps: int = 10
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    # atb.engine (defaults from the scale's `engine` section): "auto" = bf16 autocast where the GPU or CPU computes
    # bf16 natively, fp16 on other GPUs, fp32 elsewhere | "fp32" | "bf16" | "fp16"; the fused AdamW
    precision: str = "auto"
    fused_optimizer: bool = True
    teacher: str = "minilm-offline"
    sampler: str = "uniform"  # "uniform" (the paper) | "sandwich" | "progressive" (atb.sampler)
    sampler_k: int | None = None
    inplace_distillation: bool = False
    # KD's hidden term: "none" (the paper's MSE) | "teacher-variance" (divided by the teacher's hidden variance, so
    # that it weighs as much as the attention term; recipe 2b of issue #12, from scratch)
    kd_hidden_norm: str = "none"
    # KD's layers: "last" (the paper) | "uniform" (every layer against the teacher's at the same relative depth)
    kd_layers: str = "last"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0
    # warm start of one-shot training (atb.warmstart): copy this pretrained BERT ("minilm-offline", a folder or a
    # hub name) into the SuperBERT, rewired by importance unless rewire is false; ignored by further training
    init_from: str | None = None
    rewire: bool = True
    # further training (set by --further-train)
    arch: str | None = None
    init: str | None = None
    extra: dict = field(default_factory=dict)  # free-form notes carried into the run record

    def __post_init__(self) -> None:
        if self.objective not in ("mlm", "kd"):
            raise ValueError(f"config field 'objective' must be 'mlm' or 'kd', got {self.objective!r}")
        engine.check_engine(self.precision, self.fused_optimizer, "pretrain")
        if self.inplace_distillation and self.objective != "mlm":
            raise ValueError("config field 'inplace_distillation' is implemented for the MLM objective only")
        if self.kd_hidden_norm != "none" and self.objective != "kd":
            raise ValueError("config field 'kd_hidden_norm' applies to the KD objective only")
        if self.kd_layers != "last" and self.objective != "kd":
            raise ValueError("config field 'kd_layers' applies to the KD objective only")
        if self.mask_probability is None:
            self.mask_probability = 0.15 if self.objective == "mlm" else 0.0
        if not 0.0 <= self.mask_probability < 1.0:
            raise ValueError(f"config field 'mask_probability' must be in [0, 1), got {self.mask_probability}")
        if self.objective == "mlm" and self.mask_probability == 0.0:
            raise ValueError("config field 'mask_probability' must be > 0 for MLM: nothing would be predicted")
        for name in ("steps", "batch_size", "max_seq_len", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"config field {name!r} must be >= 1, got {getattr(self, name)}")

    @property
    def recipe(self) -> str:
        """The one-shot recipe's starting point, for records: ``"scratch"`` (the paper), ``"teacher-rewired"`` /
        ``"teacher"`` (a warm start from the configured teacher, with / without importance rewiring) or
        ``"<source>[-rewired]"`` for another pretrained source; ``+hidden-variance`` when KD's hidden term is
        normalised by the teacher's variance, ``+layerwise`` when KD distils every layer."""
        if not self.init_from:
            start = "scratch"
        else:
            source = "teacher" if self.init_from == self.teacher else str(self.init_from)
            start = f"{source}-rewired" if self.rewire else source
        return (start + ("+hidden-variance" if self.kd_hidden_norm == "teacher-variance" else "")
                + ("+layerwise" if self.kd_layers == "uniform" else ""))

    @classmethod
    def load(cls, scale: str | Path, objective: str | None = None, **overrides) -> TrainConfig:
        """The ``pretrain`` section of a scale's config (``configs/<scale>.yaml`` or a YAML path): shared keys at
        its top, per-objective keys under ``mlm:`` / ``kd:``; ``overrides`` (``None`` values ignored) last.

        Further training reuses this with the ``develop.train`` / ``ranking.train`` overrides of the same file.
        """
        settings, file = config.section(scale, "pretrain")
        objective = objective or settings.get("objective", "mlm")
        merged = {k: v for k, v in settings.items() if k not in ("mlm", "kd")}
        merged.update(settings.get(objective) or {})
        config.check_keys(merged, config.fields_of(cls, exclude=("scale", "objective")) | {"objective"},
                          file.where(f"pretrain ({objective})"))
        merged.update({k: v for k, v in overrides.items() if v is not None})
        merged["objective"] = objective
        return config.build(cls, merged, f"{file.where('pretrain')} overrides", exclude=("scale",), scale=file.scale)


# --------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the process group torchrun set up (gloo on CPU, nccl on GPU); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Dist(dist.get_rank(), dist.get_world_size())


def sum_gradients(params: list[torch.nn.Parameter], ctx: Dist) -> None:
    """One all-reduce (sum) over the flattened gradients of the parameters the step touched.

    Each rank's loss is its share of the global batch's mean (see ``share_of`` in :mod:`atb.objectives`),
    so the sum of the ranks' gradients is the gradient of the global batch's loss. All ranks train the same
    sub-model at a step, so they hold gradients for the same parameters.
    """
    if ctx.world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def global_sum(value: float, ctx: Dist) -> float:
    """``value`` summed over the ranks (e.g. the ranks' shares of the step's loss, for the log)."""
    if ctx.world == 1:
        return value
    total = torch.tensor(value, dtype=torch.float64)
    dist.all_reduce(total)
    return total.item()


# ----------------------------------------------------------------------------------------------- data
def load_examples(cfg: TrainConfig, tokenizer):
    """Packed pre-training examples (``input_ids``/``token_type_ids``/``attention_mask``) of the corpus."""
    from .data import build_pretraining_examples, load_corpus

    documents = load_corpus(cfg.corpus, max_documents=cfg.max_documents)
    return build_pretraining_examples(documents, tokenizer, max_seq_len=cfg.max_seq_len)


def batch_indices(step: int, batch_size: int, n_examples: int, seed: int) -> list[int]:
    """Example indices of global batch ``step``: epochs of seeded permutations, a pure function of step."""
    start = step * batch_size
    out: list[int] = []
    for pos in range(start, start + batch_size):
        epoch, offset = divmod(pos, n_examples)
        out.append(_permutation(seed, epoch, n_examples)[offset])
    return out


_PERMS: dict[tuple[int, int, int], list[int]] = {}


def _permutation(seed: int, epoch: int, n: int) -> list[int]:
    key = (seed, epoch, n)
    if key not in _PERMS:
        _PERMS.clear()
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        _PERMS[key] = torch.randperm(n, generator=g).tolist()
    return _PERMS[key]


# ---------------------------------------------------------------------------------------------- model
def point_space(arch: Arch, objective: str) -> SearchSpace:
    """A search space holding only ``arch``: further training reuses the one-shot loop unchanged."""
    r = {f: Range(getattr(arch, f), getattr(arch, f)) for f in ("layers", "hidden", "ffn", "heads", "qkv")}
    if objective == "mlm":  # an MLM space ties qkv to heads with step head_size
        return SearchSpace("mlm", head_size=arch.head_size, **{**r, "qkv": Range(arch.qkv, arch.qkv, arch.head_size)})
    return SearchSpace("kd", **r)


def build_student(cfg: TrainConfig) -> tuple[SuperBert, SearchSpace]:
    """The SuperBERT of a run and its space. One-shot training starts from random weights or, with
    ``init_from``, from a pretrained BERT (:func:`atb.warmstart.warm_start`, importance scores from the first
    documents of ``cfg.corpus``); further training (``arch``) loads the extracted sub-model ``init``."""
    dropout = {"hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout}
    if cfg.arch is None:
        space = SearchSpace.preset(cfg.space, cfg.objective)
        model = SuperBert(SuperBertConfig.from_space(space, **dropout))
        if cfg.init_from:
            from .warmstart import importance_sample, warm_start

            batches = importance_sample(cfg.corpus, max_seq_len=cfg.max_seq_len) if cfg.rewire else None
            warm_start(model, cfg.init_from, rewire=cfg.rewire, importance_batches=batches, seed=cfg.seed)
        return model, space
    arch = Arch.parse(cfg.arch)
    space = point_space(arch, cfg.objective)
    model = SuperBert(SuperBertConfig.from_space(space, **dropout))
    if cfg.init:
        init = AutoModelForMaskedLM.from_pretrained(cfg.init)
        if isinstance(init, BertForMaskedLM):
            init = from_bert(init)
        if init.config.arch != arch:
            raise ValueError(f"--init {cfg.init} holds {init.config.arch}, not --arch {arch}")
        model.load_state_dict(init.state_dict(), strict=True)
    return model, space


def build_objective(cfg: TrainConfig, student: SuperBert, device: torch.device) -> MLMObjective | KDObjective:
    """The run's objective; for KD it loads the teacher ``cfg.teacher`` and sizes ``W_fit`` for the widest student
    (a student warm-started from that very teacher gets ``W_fit`` = the permutation back to the teacher's
    dimensions, :func:`atb.warmstart.init_fit_from_warm_start`)."""
    if cfg.objective == "kd":
        from .teacher import load_teacher
        from .warmstart import init_fit_from_warm_start

        objective = KDObjective(load_teacher(cfg.teacher, device=device), student.config.hidden_size,
                                hidden_norm=cfg.kd_hidden_norm, layers=cfg.kd_layers)
        record = getattr(student.config, "warm_start", None)
        if record and record["source"] == cfg.teacher:  # a student copied from its teacher: W_fit undoes the rewiring
            init_fit_from_warm_start(objective.fit_dense, student)
        return objective.to(device)
    return MLMObjective(inplace_distillation=cfg.inplace_distillation)


# ----------------------------------------------------------------------------------------------- loop
@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    model: SuperBert
    archs: list[list[str]]  # the architectures trained at each step of this process's run
    final_loss: float | None
    tokens: int
    sec_per_step: float | None


class Trainer:
    """Holds the student, the objective, the optimizer and the data; ``run()`` trains to ``cfg.steps``."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, ctx: Dist | None = None, device: str | None = None):
        from .data import MLMCollator, load_tokenizer

        self.cfg, self.run_dir, self.ctx = cfg, Path(run_dir), ctx or Dist()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model, self.space = build_student(cfg)
        self.model.to(self.device).train()
        self.sampler = (FixedSampler(Arch.parse(cfg.arch)) if cfg.arch else
                        make_sampler(cfg.sampler, self.space, cfg.seed, cfg.sampler_k, cfg.inplace_distillation,
                                     cfg.steps))
        self.objective = build_objective(cfg, self.model, self.device)
        trainable = [self.model, self.objective]  # KD: W_fit is trained with the student
        self.params = [p for m in trainable for p in m.parameters()]
        self.optimizer = engine.adamw(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                      fused=cfg.fused_optimizer)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, cfg.warmup_steps, cfg.steps)
        self.tokenizer = load_tokenizer()
        self.examples = load_examples(cfg, self.tokenizer)
        if len(self.examples) == 0:
            raise ValueError(f"corpus {cfg.corpus!r} produced no training examples")
        self.collator = MLMCollator(self.tokenizer, mlm_probability=cfg.mask_probability)
        self.step = 0

    # -- state
    def state_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        tensors = {"model": self.model.state_dict()}
        objective = self.objective.state_dict()  # KD: W_fit; MLM: nothing
        if objective:
            tensors["objective"] = objective
        return tensors

    def trainer_state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"step": self.step, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng}

    def resume(self) -> bool:
        ckpt = load_latest(self.run_dir / "checkpoints")
        if ckpt is None:
            return False
        self.model.load_state_dict(ckpt.tensors["model"])
        # ("loss": the name of the objective's file in checkpoints written before atb.objectives)
        self.objective.load_state_dict(ckpt.tensors.get("objective", ckpt.tensors.get("loss", {})))
        self.optimizer.load_state_dict(ckpt.trainer["optimizer"])
        self.scheduler.load_state_dict(ckpt.trainer["scheduler"])
        torch.set_rng_state(ckpt.trainer["rng"]["torch"])
        random.setstate(ckpt.trainer["rng"]["python"])
        if "cuda" in ckpt.trainer["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt.trainer["rng"]["cuda"])
        self.step = ckpt.trainer["step"]
        return True

    # -- one step
    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """Global batch ``step`` (every rank's rows, on the CPU), masked by a generator seeded from
        ``(seed, step)``: the same tokens and masks whatever the number of ranks."""
        indices = batch_indices(step, self.cfg.batch_size, len(self.examples), self.cfg.seed)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step * 101)
        return dataclasses.replace(self.collator, generator=g)([self.examples[i] for i in indices])

    def share(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's rows of the global ``batch`` (every ``world``-th), without the columns that are
        padding in all of them, on the device."""
        rows = slice(self.ctx.rank, None, self.ctx.world)
        width = int(batch["attention_mask"][rows].sum(1).max())
        return {k: v[rows, :width].contiguous().to(self.device) for k, v in batch.items()}

    def losses(self, batch: dict[str, torch.Tensor], archs: list[Arch]) -> Iterator[torch.Tensor]:
        """Yield the loss of each sub-model of this step on this rank's share of the global ``batch``; the
        caller takes its backward before the next one is built, so only one sub-model's activations are
        alive at a time. With in-place distillation the first (largest) sub-model's detached predictions
        are the targets of the others."""
        mine = self.share(batch)
        share_of = batch if self.ctx.world > 1 else None
        with engine.autocast(self.cfg.precision, self.device):
            targets = self.objective.targets(mine)  # KD: the teacher's outputs, once per step; MLM: the labels
        for i, arch in enumerate(archs):
            with engine.autocast(self.cfg.precision, self.device):  # the forward pass, not the caller's backward
                out = self.objective(self.model, mine, arch, targets, share_of=share_of)
            if self.cfg.inplace_distillation and i == 0:
                targets = MLMObjective.soft_targets(out.logits)
            yield out.loss

    def train_step(self) -> dict:
        start = time.perf_counter()
        archs = self.sampler.archs(self.step)
        batch = self.batch(self.step)
        total = 0.0
        for loss in self.losses(batch, archs):
            (loss / len(archs)).backward()
            total += loss.item() / len(archs)
        sum_gradients(self.params, self.ctx)
        lr = self.scheduler.get_last_lr()[0]
        engine.clip_and_step(self.optimizer, self.scheduler, self.params, self.cfg.max_grad_norm,
                             foreach=self.cfg.fused_optimizer)
        self.step += 1
        tokens = int(batch["attention_mask"].sum())
        return {"step": self.step, "loss": global_sum(total, self.ctx), "archs": [str(a) for a in archs], "lr": lr,
                "tokens": tokens, "seconds": time.perf_counter() - start}

    # -- the run
    def run(self, max_steps: int | None = None) -> TrainResult:
        """Train until ``cfg.steps`` (or ``max_steps`` more steps in this call), checkpointing as configured."""
        resumed = self.resume()
        log_path = self.run_dir / "log.jsonl"
        if self.ctx.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.run_dir / "config.json", dataclasses.asdict(self.cfg))
            engine.record_run(self.run_dir, self.cfg.precision, self.device, fused_optimizer=self.cfg.fused_optimizer)
            truncate_log(log_path, self.step if resumed else 0)
        if (self.ctx.main and self.cfg.init_from and self.cfg.arch is None and self.step == 0
                and not (self.run_dir / WARM_START_DIR).exists()):
            self.save_warm_start()
        stop = self.cfg.steps if max_steps is None else min(self.cfg.steps, self.step + max_steps)
        archs, last, seconds, tokens = [], None, [], 0
        bar = progress_bar(total=self.cfg.steps, initial=self.step, desc=f"{self.cfg.objective} {self.cfg.scale}",
                   disable=not self.ctx.main)
        while self.step < stop:
            record = self.train_step()
            archs.append(record["archs"])
            last, tokens = record["loss"], tokens + record["tokens"]
            seconds.append(record["seconds"])
            bar.update(1)
            bar.set_postfix(loss=f"{last:.3f}")
            if self.ctx.main:
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps:
                if self.ctx.main:
                    save_checkpoint(self.run_dir / "checkpoints", self.step, self.state_tensors(),
                                    self.trainer_state(), keep=self.cfg.keep_checkpoints)
                if self.ctx.world > 1:
                    dist.barrier()
        bar.close()
        if self.step == self.cfg.steps and self.ctx.main:
            self.save_final()
        return TrainResult(self.run_dir, self.step, self.model, archs, last, tokens,
                           sum(seconds) / len(seconds) if seconds else None)

    def save_warm_start(self) -> None:
        """A one-shot run that starts from a pretrained BERT keeps its SuperBERT *before* the first step under
        ``warm_start/`` (laid out like ``final/``), so that what one-shot training adds to the warm start, or
        takes from it, can be measured on the same sub-models (notebook 01, ``benchmarks/warmstart_transfer.py``)."""
        write_dir_atomic(self.run_dir / WARM_START_DIR, self._save_supernet)

    def _save_supernet(self, directory: Path) -> None:
        with libraries_quiet():  # transformers' "Writing model shards" bar
            self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.objective.save(directory)

    def save_final(self) -> None:
        """The trained SuperBERT (or, for further training, the exported sub-model) under ``final/``, and
        beside it the objective (``objective.json``; KD: the teacher's name and ``W_fit`` in
        ``objective.safetensors``), which is all the search's proxy fitness reads besides the weights."""
        final = self.run_dir / "final"
        if self.cfg.arch:
            export(extract(self.model, Arch.parse(self.cfg.arch)), final, tokenizer=self.tokenizer,
                   card=f"Further trained from `{self.cfg.init}` for {self.cfg.steps} steps with the "
                        f"{self.cfg.objective.upper()} objective (`atb.train`).")
            self.objective.save(final)
        else:
            self._save_supernet(final)


# ------------------------------------------------------------------------------- further training
def extract_sub_model(supernet: SuperBert | str | Path, arch: Arch, directory: str | Path) -> Path:
    """Export ``arch`` with its inherited weights to ``directory`` (atomically; skipped if already there)."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        model = supernet if isinstance(supernet, SuperBert) else SuperBert.from_pretrained(supernet).eval()
        source = "" if isinstance(supernet, SuperBert) else f" `{supernet}`"
        made = f"Extracted from the SuperPLM{source} with its inherited weights, not further trained."
        write_dir_atomic(directory, lambda tmp: export(model, tmp, arch=arch, card=made))
    return directory


def further_train(supernet_dir: str | Path, arch: Arch, cfg: TrainConfig, run_dir: str | Path,
                  device: str | None = None) -> dict:
    """Extract ``arch`` from the SuperPLM and further train it (``cfg``: arch, init unset or ignored).

    ``run_dir/extracted/`` is the inherited model, ``run_dir/train/`` the further-training run (its
    ``final/`` is the exported, deployable model). Resumes from checkpoints; a finished run is only re-read
    from ``run_dir/further_training.json``. Returns ``{"model_dir", "steps", "final_loss", "sec_per_step",
    "cpu_seconds", "wall_seconds"}``: the cost of this run's steps in CPU-seconds (process time, all threads)
    and wall seconds; of a run resumed after a kill, only the steps done in the last call are timed.
    """
    run_dir = Path(run_dir)
    record_path = run_dir / "further_training.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    extracted = extract_sub_model(supernet_dir, arch, run_dir / "extracted")
    cfg = dataclasses.replace(cfg, arch=str(arch), init=str(extracted))
    cpu, wall = time.process_time(), time.perf_counter()
    Trainer(cfg, run_dir / "train", device=device).run()
    record = {"model_dir": str(run_dir / "train" / "final"), "arch": str(arch), "objective": cfg.objective,
              **summarize_log(run_dir / "train"),
              "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall}
    write_json_atomic(record_path, record)
    return record


def truncate_log(path: Path, step: int) -> None:
    """Keep the log lines of steps ``<= step`` (a resumed run re-logs the steps after its checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError):
            break  # a line cut by a kill: everything after it is dropped too
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def read_log(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def summarize_log(run_dir: str | Path, tail: int = 20) -> dict:
    """Steps, tokens seen, mean seconds per step and the final loss (mean of the last ``tail`` steps:
    single-step losses jump with the sampled sub-model) of a run, from its log."""
    log = read_log(run_dir)
    if not log:
        raise FileNotFoundError(f"{Path(run_dir) / 'log.jsonl'}: no training log")
    last = log[-min(tail, len(log)):]
    return {"steps": log[-1]["step"], "tokens": sum(r["tokens"] for r in log),
            "final_loss": sum(r["loss"] for r in last) / len(last),
            "sec_per_step": sum(r["seconds"] for r in log) / len(log)}


def train(cfg: TrainConfig, run_dir: str | Path, max_steps: int | None = None, device: str | None = None) -> TrainResult:
    """Train (or resume) a run in this process; under torchrun, in every process of the group."""
    return Trainer(cfg, run_dir, init_distributed(), device).run(max_steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One-shot SuperPLM training and further training (atb).")
    parser.add_argument("--config", required=True, help="a scale (configs/<scale>.yaml) or a config file's path")
    parser.add_argument("--objective", choices=["mlm", "kd"], help="overrides the config's objective")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps (resumable)")
    parser.add_argument("--steps", type=int, help="override the config's total steps")
    parser.add_argument("--further-train", action="store_true", help="train one fixed sub-model (--arch, --init)")
    parser.add_argument("--arch", help="L/d_m/d_f/h/d_qkv of the sub-model to further train")
    parser.add_argument("--init", help="directory of the extracted sub-model to start from")
    parser.add_argument("--device", help="cpu | cuda (default: cuda if available)")
    args = parser.parse_args(argv)
    if args.further_train and not args.arch:
        parser.error("--further-train needs --arch")
    if (args.arch or args.init) and not args.further_train:
        parser.error("--arch/--init only apply with --further-train")
    cfg = TrainConfig.load(args.config, args.objective, steps=args.steps, arch=args.arch, init=args.init)
    result = train(cfg, args.run_dir, args.max_steps, args.device)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"run_dir": str(result.run_dir), "step": result.steps, "final_loss": result.final_loss}))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
