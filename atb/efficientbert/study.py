"""EfficientBERT on the study's pipeline (notebook 08): warm start, warm-up distillation, the three-stage search,
and the development of the found model beside the plain-gelu baseline, each with its untrained control.

The steps, each cached under ``runs/<scale>/efficientbert/`` so that a rerun resumes:

1. :func:`warm_started_supernet`: the supernet (:mod:`.supernet`), warm-started from the teacher at small scales
   (the paper distils its supernet from BERT-base from scratch; at mini nothing transfers without the warm start,
   README "Which one-shot recipe transfers at mini").
2. :func:`warm_up`: warm-up distillation (:mod:`.distill`) on random stage-1 candidates of the parameter range.
3. :func:`search`: stages 1 -> 2 -> 3 (:mod:`.search`) under the **parameter range** ``budget`` x the parameters
   of the **plain-gelu model** (BERT's FFN at ratio 1 in every layer, the search's start), embeddings left out
   (they cost no time per token). Fitness: the KD proxy with inherited weights (:class:`.distill.KDProxyFitness`),
   at every scale here; the paper's per-candidate distillation + fine-tuning is far beyond a CPU budget.
4. :func:`develop`: the searched model and the plain-gelu baseline are cut out of the warmed-up supernet, further
   distilled for the same ``further_steps`` (their only difference is the FFN), exported as ``atb-efficientbert``
   models, and each gets an **untrained control**: the same config at random initialisation.

Fine-tuning, seeds, intervals and the learning rates are those of notebooks 05-06 (:mod:`atb.develop`).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import config
from ..fitness import heldout_batches
from ..layout import Layout
from ..records import write_dir_atomic, write_json_atomic
from ..teacher import load_teacher
from .distill import KDProxyFitness, WarmupConfig, log_cpu_seconds, warmup_distill
from .expression import BERT_FFN
from .search import ExpressionSearchConfig, SearchResult, random_proposal, run_search
from .supernet import Candidate, EfficientBertSuperNet, candidate_params, supernet_config, uniform_candidate, \
    warm_start_from_bert

SECTION = "efficientbert"
CONTROL_SEED = 1234  # as atb.develop's controls: one random initialisation per model, never pre-trained
SEARCHED, GELU = "efficientbert-searched", "efficientbert-gelu"  # the developed models
METHODS = {SEARCHED: "searched", GELU: "plain-gelu"}


@dataclass
class EfficientBertStudyConfig:
    """Section ``efficientbert`` of ``configs/<scale>.yaml``."""

    teacher: str = "minilm-offline"  # the warm-up teacher, and the warm start's source when ``warm_start``
    warm_start: bool = True
    importance: str = "taylor"  # FFN neuron order of the warm start: taylor | magnitude | none
    max_stacks: int = 4
    shape: dict[str, Any] = field(default_factory=dict)  # supernet config overrides (default: the teacher's shape)
    budget: list[float] = field(default_factory=lambda: [0.8, 1.0])  # x the plain-gelu model's parameters
    warmup: dict[str, Any] = field(default_factory=dict)  # WarmupConfig
    search: dict[str, Any] = field(default_factory=dict)  # ExpressionSearchConfig (not the parameter range)
    proxy: dict[str, Any] = field(default_factory=lambda: {"corpus": "wikitext-2-valid", "max_examples": 32,
                                                           "batch_size": 16, "max_seq_len": 128, "seed": 0})
    further_steps: int = 100  # further distillation of each developed model
    squad: bool = True  # also SQuAD v1.1 (notebook 06's budget and seeds)
    scale: str | None = None

    def __post_init__(self) -> None:
        if len(self.budget) != 2 or not 0 < self.budget[0] <= self.budget[1]:
            raise ValueError(f"efficientbert.budget must be [low, high] with 0 < low <= high, got {self.budget}")
        if self.further_steps < 1:
            raise ValueError(f"efficientbert.further_steps must be >= 1, got {self.further_steps}")
        WarmupConfig(**self.warmup)  # errors name the field
        ExpressionSearchConfig(**self.search)

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> EfficientBertStudyConfig:
        settings, file = config.section(scale, SECTION)
        config.check_keys(settings, config.fields_of(cls, exclude=("scale",)), file.where(SECTION))
        return config.build(cls, {**settings, **overrides}, f"{file.where(SECTION)} overrides", exclude=("scale",),
                            scale=file.scale)

    def warmup_config(self) -> WarmupConfig:
        return WarmupConfig(**self.warmup)

    def search_config(self, reference_params: int) -> ExpressionSearchConfig:
        low, high = self.budget
        return ExpressionSearchConfig(**{**self.search, "min_params": int(low * reference_params),
                                         "max_params": int(high * reference_params)})


# ------------------------------------------------------------------------------------------------ supernet
def warm_started_supernet(cfg: EfficientBertStudyConfig, run_dir: Path) -> EfficientBertSuperNet:
    """The supernet before warm-up (``run_dir/warm_start``, made once): the teacher's shape, warm-started from it."""
    directory = run_dir / "warm_start"
    if not (directory / "config.json").exists():
        teacher = load_teacher(cfg.teacher)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            supernet = EfficientBertSuperNet(supernet_config(teacher.model.config, cfg.max_stacks, **cfg.shape))
        if cfg.warm_start:
            warm_start_from_bert(supernet, teacher.model, importance=cfg.importance)
        write_dir_atomic(directory, supernet.save_pretrained)
    return EfficientBertSuperNet.from_pretrained(directory).eval()


def params_fn(supernet: EfficientBertSuperNet):
    """The search's parameter count of a candidate: the standalone model's without the embedding tables."""
    config = supernet.config
    return lambda candidate: candidate_params(config, candidate, embeddings=False)


def gelu_candidate(supernet: EfficientBertSuperNet) -> Candidate:
    """The plain-gelu model: BERT's FFN at ratio 1 in every layer (the search's start and its baseline)."""
    return uniform_candidate(supernet.config, BERT_FFN)


def search_config(cfg: EfficientBertStudyConfig, supernet: EfficientBertSuperNet) -> ExpressionSearchConfig:
    return cfg.search_config(params_fn(supernet)(gelu_candidate(supernet)))


def warm_up(cfg: EfficientBertStudyConfig, layout: Layout) -> tuple[EfficientBertSuperNet, dict]:
    """Warm-up distillation of the warm-started supernet on random stage-1 candidates of the parameter range
    (resumable; ``runs/<scale>/efficientbert/warmup``). Returns the trained supernet and the run's record."""
    root = layout.efficientbert
    supernet = warm_started_supernet(cfg, root)
    search_cfg, count = search_config(cfg, supernet), params_fn(supernet)
    start, seed = gelu_candidate(supernet), cfg.warmup_config().seed

    def sample(step: int) -> Candidate:
        return random_proposal(1, start, count, search_cfg, random.Random(seed * 1_000_003 + step))

    teacher = load_teacher(cfg.teacher)
    record = warmup_distill(supernet, teacher, sample, cfg.warmup_config(), root / "warmup")
    trained = EfficientBertSuperNet.from_pretrained(root / "warmup" / "final").eval()
    return trained, {**record, "teacher": cfg.teacher, "warm_start": getattr(trained.config, "warm_start", None),
                     "cpu_seconds": log_cpu_seconds(root / "warmup")}


def proxy_fitness(cfg: EfficientBertStudyConfig, supernet: EfficientBertSuperNet, name: str) -> KDProxyFitness:
    """The KD proxy on held-out text; ``name`` identifies the supernet in the search logs' headers."""
    p = cfg.proxy
    batches = heldout_batches(p["corpus"], p["max_examples"], p["max_seq_len"], p["batch_size"], p.get("seed", 0),
                              mlm_probability=0.0)
    return KDProxyFitness(supernet, load_teacher(cfg.teacher), batches, name=name, settings=dict(p))


def search(cfg: EfficientBertStudyConfig, layout: Layout, supernet: EfficientBertSuperNet) -> SearchResult:
    """The three stages from the plain-gelu model under the parameter range (resumable)."""
    fitness = proxy_fitness(cfg, supernet, name=str(layout.efficientbert / "warmup" / "final"))
    return run_search(gelu_candidate(supernet), fitness, params_fn(supernet), search_config(cfg, supernet),
                      layout.efficientbert / "search")


def developed_pick(result: SearchResult, start: Candidate) -> dict:
    """Which candidate notebook 08 develops as "searched": the search's best, unless that is its start (the plain-gelu
    model, which is developed anyway as the baseline). Then the best *new* candidate of any stage, so that the
    searched-vs-gelu comparison tests whether the search's best expression also wins downstream; the record says
    so (``best_is_start``)."""
    best = result.best
    if best.candidate != tuple(start):
        return {"candidate": best.candidate, "stage": result.stages[-1].stage, "fitness": best.fitness,
                "best_is_start": False}
    stage, pick = max(((s.stage, e) for s in result.stages for e in s.history
                       if e.in_range and e.candidate != tuple(start)),
                      key=lambda pair: pair[1].fitness, default=(None, None))
    if pick is None:
        return {"candidate": best.candidate, "stage": None, "fitness": best.fitness, "best_is_start": True}
    return {"candidate": pick.candidate, "stage": stage, "fitness": pick.fitness, "best_is_start": True,
            "start_fitness": best.fitness}


# ------------------------------------------------------------------------------------------------ develop
def export_with_tokenizer(model, directory: Path, readme: str) -> Path:
    """``save_pretrained`` + the tokenizer + ``README.md`` (``readme``), atomically."""
    from ..data import load_tokenizer

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer().save_pretrained(tmp)
        (tmp / "README.md").write_text(readme)

    return write_dir_atomic(directory, write)


def develop_candidate(supernet, candidate, root: Path, *, teacher: str, warm: WarmupConfig, further_steps: int,
                      card: str, layers: str) -> dict:
    """Develop one candidate of a weight-sharing supernet (EfficientBERT's here, AutoBERT-Zero's in
    :mod:`atb.autobert_zero.study`; each has ``extract`` and ``candidate_config``): further distillation of a copy of
    the supernet on this candidate alone (``further_steps``, the warm-up's settings otherwise; resumable in
    ``root/train``), the standalone model cut out of it (``root/final``), and its **untrained control**: the same
    config at random initialisation (``root/control``, seed :data:`CONTROL_SEED`). ``card`` / ``layers``: the model
    card's text and its list of layers (markdown). A folder holding another candidate's work is cleared first.
    Returns ``{"model_dir", "control_dir", "finetune_dir", "further_training"}``."""
    names = [str(c) for c in candidate]
    marker = root / "candidate.json"
    written = json.loads(marker.read_text()) if marker.exists() else None
    if written is not None and written.get("layers", written.get("expressions")) != names:  # (08's older key)
        shutil.rmtree(root)  # another candidate's training, export and fine-tuning: not this model's
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"layers": names})
    point = copy.deepcopy(supernet)
    further = WarmupConfig(**{**asdict(warm), "steps": further_steps, "warmup_steps": max(1, further_steps // 10),
                              "checkpoint_every": max(1, further_steps // 2)})
    record = warmup_distill(point, load_teacher(teacher), lambda step: candidate, further, root / "train")
    model_dir, control_dir = root / "final", root / "control"
    title = f"# {root.name}\n\n"
    model = point.extract(candidate).eval()
    if not (model_dir / "config.json").exists():
        export_with_tokenizer(model, model_dir, f"{title}{card}\n\n{layers}\n")
    if not (control_dir / "config.json").exists():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(CONTROL_SEED)
            control = type(model)(point.candidate_config(candidate)).eval()
        export_with_tokenizer(control, control_dir, f"{title}**Untrained control**: this configuration at random "
                              "initialisation, never pre-trained; fine-tuned like the developed model. Not a model to "
                              f"use.\n\n{layers}\n")
    return {"model_dir": str(model_dir), "control_dir": str(control_dir), "finetune_dir": str(root / "finetune"),
            "further_training": {**record, "steps": further_steps, "cpu_seconds": log_cpu_seconds(root / "train")}}


def develop(cfg: EfficientBertStudyConfig, layout: Layout, supernet: EfficientBertSuperNet, name: str,
            candidate: Candidate) -> dict:
    """Further distillation of ``candidate`` from the warmed-up supernet, its export and its untrained control
    (:func:`develop_candidate`). Returns the model's record (notebook 05's fields)."""
    expressions = [str(f) for f in candidate]
    developed = develop_candidate(
        supernet, candidate, layout.efficientbert / "models" / name, teacher=cfg.teacher,
        warm=cfg.warmup_config(), further_steps=cfg.further_steps,
        card=f"EfficientBERT {name}: cut out of the warmed-up supernet and further distilled for {cfg.further_steps} "
             "steps (atb notebook 08).",
        layers="FFN per layer:\n\n" + "\n".join(f"{i + 1}. `{e}`" for i, e in enumerate(expressions)))
    return {"name": name, "arch": "; ".join(expressions), "expressions": expressions,
            "objective": "kd", "method": METHODS[name], "kind": "efficientbert",
            "params": candidate_params(supernet.config, candidate), **developed}


def save_record(layout: Layout, record: dict) -> Path:
    return write_json_atomic(layout.record("08_efficientbert.json"), record, allow_nan=False)
