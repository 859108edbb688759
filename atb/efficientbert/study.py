"""EfficientBERT on the study's pipeline (notebook 08): warm start, warm-up distillation, the three-stage search,
and the development of the found model beside the plain-gelu baseline, each with its untrained control.

The steps, each cached under ``runs/<scale>/efficientbert/`` so that a rerun resumes:

1. :func:`warm_started_supernet`: the supernet (:mod:`.supernet`), warm-started from the teacher at small scales
   (the paper distils its supernet from BERT-base from scratch; at mini nothing transfers without the warm start,
   README "Which one-shot recipe transfers at mini").
2. :func:`warm_up`: warm-up distillation (:mod:`atb.distill`) of the **fixed supernet**, every layer four stacked
   gelu blocks at full width, as the official ``ffn_search.py`` warm-up trains it (random candidates come only in
   its stage 3, which here scores sizes with these weights).
3. :func:`search`: stages 1 -> 2 -> 3 (:mod:`.search`) under the **parameter range** ``budget`` x the parameters
   of the **plain-gelu model** (BERT's FFN at ratio 1 in every layer, the search's start), embeddings left out
   (they cost no time per token). The default range [0.95, 1.05] holds the start strictly inside and admits the
   published model's sizes (1.037x the start at MiniLM's shape), as the official [15 M, 16 M] does. Fitness: the KD
   proxy with inherited weights (:class:`atb.distill.KDProxyFitness`), a **screen**.
4. :func:`rerank`: the screen's best candidates that change an FFN expression, and the start, are adapted and
   fine-tuned on held-out train examples (:mod:`atb.rerank`): at small scales the teacher is the warm start's
   source, so the screen is the distance to the start by construction (:func:`proxy_is_distance_to_start`), and
   only a downstream score can prefer a new expression. :func:`developed_pick` takes the rerank's best.
5. :func:`develop`: the searched model and the plain-gelu baseline are cut out of the warmed-up supernet, further
   distilled for the same ``further_steps`` (their only difference is the FFN), exported as ``atb-efficientbert``
   models, and each gets an **untrained control**: the same config at random initialisation.

Fine-tuning, seeds, intervals and the learning rates are those of notebooks 05-06 (:mod:`atb.develop`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import config
from ..develop import develop_candidate
from ..distill import KDProxyFitness, WarmupConfig, log_cpu_seconds, warmup_distill
from ..fitness import heldout_batches
from ..layout import Layout
from ..records import write_dir_atomic
from ..rerank import RerankConfig, RerankResult, screen
from ..rerank import rerank as rerank_candidates
from ..teacher import load_teacher
from .expression import BERT_FFN
from .search import ExpressionSearchConfig, SearchResult, run_search
from .supernet import Candidate, EfficientBertSuperNet, candidate_params, fixed_supernet_candidate, supernet_config, \
    uniform_candidate, warm_start_from_bert

SECTION = "efficientbert"
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
    budget: list[float] = field(default_factory=lambda: [0.95, 1.05])  # x the plain-gelu model's parameters
    warmup: dict[str, Any] = field(default_factory=dict)  # WarmupConfig
    search: dict[str, Any] = field(default_factory=dict)  # ExpressionSearchConfig (not the parameter range)
    proxy: dict[str, Any] = field(default_factory=lambda: {"corpus": "wikitext-2-valid", "max_examples": 32,
                                                           "batch_size": 16, "max_seq_len": 128, "seed": 0})
    rerank: dict[str, Any] = field(default_factory=dict)  # atb.rerank.RerankConfig
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
        RerankConfig(**self.rerank)

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> EfficientBertStudyConfig:
        return config.load_section(cls, scale, SECTION, overrides)

    def warmup_config(self) -> WarmupConfig:
        return WarmupConfig(**self.warmup)

    def rerank_config(self) -> RerankConfig:
        return RerankConfig(**self.rerank)

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
    """Warm-up distillation of the warm-started **fixed supernet** (:func:`.supernet.fixed_supernet_candidate`: every
    layer's blocks at full width with gelu, as the official warm-up; resumable, ``runs/<scale>/efficientbert/warmup``).
    Every expression of the search then inherits linear weights trained to work together. Returns the trained
    supernet and the run's record."""
    root = layout.efficientbert
    supernet = warm_started_supernet(cfg, root)
    fixed = fixed_supernet_candidate(supernet.config)
    record = warmup_distill(supernet, load_teacher(cfg.teacher), lambda step: fixed, cfg.warmup_config(),
                            root / "warmup")
    trained = EfficientBertSuperNet.from_pretrained(root / "warmup" / "final").eval()
    return trained, {**record, "teacher": cfg.teacher, "warm_start": getattr(trained.config, "warm_start", None),
                     "trained_candidate": [str(f) for f in fixed], "cpu_seconds": log_cpu_seconds(root / "warmup")}


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


def proxy_is_distance_to_start(cfg: EfficientBertStudyConfig) -> bool:
    """Whether the screen measures the distance to the search's start by construction: with a warm start, the supernet
    *is* the teacher (its source) at the plain-gelu start, whose KD loss is near 0 before any training, so no new
    expression can do better than tie on it. The report then refuses a verdict decided by the screen alone."""
    return bool(cfg.warm_start)


def changes(candidate: Candidate, start: Candidate) -> dict[str, list[int]]:
    """What ``candidate`` changes against ``start``, per layer (0-based): ``expressions`` (the FFN computes another
    function shape, sizes aside) and ``sizes`` (stacks or ratio). Claim 9 needs a changed expression."""
    return {"expressions": [i for i, (a, b) in enumerate(zip(candidate, start)) if str(a.expr) != str(b.expr)],
            "sizes": [i for i, (a, b) in enumerate(zip(candidate, start))
                      if (a.stacks, a.ratio) != (b.stacks, b.ratio)]}


def rerank(cfg: EfficientBertStudyConfig, layout: Layout, supernet: EfficientBertSuperNet,
           result: SearchResult) -> RerankResult:
    """Screen, then rerank (:mod:`atb.rerank`): the start and the screen's ``rerank.top`` fittest in-range candidates
    of any stage that change at least one FFN expression, adapted and fine-tuned on held-out train examples
    (resumable; ``runs/<scale>/efficientbert/rerank``)."""
    start = gelu_candidate(supernet)
    evaluated = [(e.candidate, e.fitness) for s in result.stages for e in s.history if e.in_range or
                 e.candidate == tuple(start)]
    screened = screen(evaluated, start, cfg.rerank_config().top, lambda c: bool(changes(c, start)["expressions"]))
    return rerank_candidates(supernet, screened, start=start, scale=layout.scale,
                             root=layout.efficientbert / "rerank",
                             teacher=cfg.teacher, warm=cfg.warmup_config(), cfg=cfg.rerank_config(),
                             what="EfficientBERT")


def developed_pick(reranked: RerankResult, start: Candidate) -> dict:
    """The candidate notebook 08 develops as "searched": the rerank's best candidate that changes an expression (the
    start, plain gelu, is developed anyway as the baseline). ``best_is_start`` says whether the start scored best of
    all in the rerank; ``reason`` is set, and ``candidate`` None, when the screen found no candidate to rerank."""
    new = [e for e in reranked.entries if not e.is_start]
    overall = reranked.best()
    if not new:
        return {"candidate": None, "picked_by": "rerank", "is_start": False, "best_is_start": overall.is_start,
                "reason": "the search evaluated no in-range candidate that changes an FFN expression"}
    pick = reranked.best(new_only=True)
    return {"candidate": pick.candidate, "screen_fitness": pick.screen, "rerank_score": pick.score,
            "picked_by": "rerank", "is_start": pick.candidate == tuple(start), "best_is_start": overall.is_start,
            "changes": changes(pick.candidate, start), "reason": None}


def proxy_gap(cfg: EfficientBertStudyConfig, layout: Layout, supernet: EfficientBertSuperNet,
              candidate: Candidate) -> dict:
    """The screen's gap between the start and ``candidate`` (start minus candidate, in KD-loss units: > 0 means the
    start looks better), with the warm-started supernet (before warm-up) and the warmed-up one (after): what the
    warm-up gave a new expression to inherit."""
    start = gelu_candidate(supernet)
    gaps = {}
    for when, net in (("before", warm_started_supernet(cfg, layout.efficientbert)), ("after", supernet)):
        fitness = proxy_fitness(cfg, net, name=when)
        gaps[when] = fitness(start) - fitness(candidate)
    return {**gaps, "candidate": [str(f) for f in candidate], "what": "screen fitness of the start minus the "
            "candidate's (negated KD loss), before and after the warm-up"}


# ------------------------------------------------------------------------------------------------ develop
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
            "changes": changes(candidate, gelu_candidate(supernet)),
            "objective": "kd", "method": METHODS[name], "kind": "efficientbert",
            "params": candidate_params(supernet.config, candidate), **developed}


def save_record(layout: Layout, record: dict) -> Path:
    return layout.write_record("08_efficientbert.json", record, allow_nan=False)
