"""Screen, then rerank: the fitness both NAS papers rank candidates on, at a price a CPU can pay.

EfficientBERT and AutoBERT-Zero rank candidates by what they do downstream: each candidate is (briefly) distilled or
pre-trained, then fine-tuned, and scored. That costs minutes per candidate, so the searches here evaluate thousands
of candidates with a cheap **screen** instead: the layer-wise KD loss with weights inherited from the supernet
(:class:`atb.distill.KDProxyFitness`). At small scales the screen has a flaw by construction: the teacher is the
warm start's source (the packaged MiniLM), so the search's start *is* (close to) the teacher and the screen measures
the **distance to the start**; a new operator can at best tie on it.

The **rerank** scores what the papers score, for a few candidates: the screen's ``top`` best candidates that test
the claim (``eligible``: for EfficientBERT, a changed FFN expression; for AutoBERT-Zero, a convolution) and the
start, each

1. **adapted**: cut out of a copy of the supernet and distilled on that candidate alone for ``adapt_steps`` steps
   (:func:`atb.develop.develop_candidate`, the same further distillation the developed models get, shorter), so a
   new operator gets to fit the weights it inherited, as the start's operators already do;
2. **fine-tuned** on ``task`` (a GLUE task that learns at this scale) with the scale's budget, and scored on
   examples **held out of the train split** (``evaluate_on="heldout"``, :func:`atb.finetune.heldout_split`): the
   dev split, which reports the developed models, is never looked at; ``seeds`` fine-tuning seeds, averaged.

Both rankings are recorded with Kendall's τ between them and its interval (resampling the candidates,
:func:`atb.stats.kendall_tau_interval`), and the cost. Every step is cached under ``root`` (one folder per candidate),
so a rerun resumes.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import stats
from .develop import DevelopConfig, develop_candidate
from .distill import WarmupConfig
from .finetune import FinetuneConfig, GLUE_TASKS, run_jobs, seed_jobs
from .progress import bar as progress_bar
from .supernet import Candidate, WeightSharingSupernet

_PREFIX = "rerank field"


@dataclass
class RerankConfig:
    """How many candidates are reranked and what each costs (section ``<system>.rerank`` of a scale's config)."""

    top: int = 5  # the screen's best eligible new candidates reranked beside the start
    adapt_steps: int = 30  # distillation of each candidate alone before fine-tuning
    task: str = "sst2"  # a GLUE task that learns at this scale (mini: only SST-2 separates models from controls)
    seeds: int = 2  # fine-tuning seeds per candidate
    budget: dict[str, Any] = field(default_factory=dict)  # FinetuneConfig fields replacing the scale's task budget

    def __post_init__(self) -> None:
        for name in ("top", "adapt_steps", "seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_PREFIX} {name!r} must be an integer >= 1, got {value!r}")
        if self.task not in GLUE_TASKS:
            raise ValueError(f"{_PREFIX} 'task' must be a GLUE task ({', '.join(GLUE_TASKS)}), got {self.task!r}")
        if "evaluate_on" in self.budget:
            raise ValueError(f"{_PREFIX} 'budget' may not set evaluate_on: the rerank always scores on examples held "
                             "out of the train split")
        FinetuneConfig(**self.budget)  # unknown or bad fields raise, naming them

    def budgets(self) -> dict[str, dict[str, Any]]:
        return {self.task: {**self.budget, "evaluate_on": "heldout"}}


def candidate_names(candidate: Sequence[Any]) -> list[str]:
    return [str(c) for c in candidate]


def candidate_slug(candidate: Sequence[Any]) -> str:
    """A short stable folder name for a candidate (a hash of its layers' strings)."""
    return hashlib.sha1("; ".join(candidate_names(candidate)).encode()).hexdigest()[:12]


def screen(evaluated: Iterable[tuple[Candidate, float]], start: Candidate, top: int,
           eligible: Callable[[Candidate], bool]) -> list[tuple[Candidate, float]]:
    """The candidates to rerank: the start first, then the ``top`` fittest distinct eligible candidates other than the
    start (by the screen's fitness; ties keep the order given). Non-finite fitnesses are left out."""
    start_key, seen, pool = candidate_names(start), set(), []
    start_fitness = None
    for candidate, fitness in evaluated:
        key = tuple(candidate_names(candidate))
        if list(key) == start_key:
            start_fitness = fitness if start_fitness is None else start_fitness
            continue
        if key in seen or fitness is None or fitness != fitness or abs(fitness) == float("inf"):
            continue
        seen.add(key)
        if eligible(candidate):
            pool.append((candidate, fitness))
    pool.sort(key=lambda pair: -pair[1])
    if start_fitness is None:
        raise ValueError("screen: the start is not among the evaluated candidates (its screen fitness is the reference)")
    return [(tuple(start), start_fitness), *pool[:top]]


@dataclass
class Reranked:
    """One reranked candidate: its screen fitness, its held-out fine-tuning score per seed, and the cost."""

    candidate: Candidate
    screen: float
    is_start: bool
    scores: list[float]
    adapt_cpu_seconds: float | None
    finetune_seconds: float
    model_dir: str

    @property
    def score(self) -> float:
        return statistics.fmean(self.scores)

    def record(self) -> dict:
        return {"layers": candidate_names(self.candidate), "screen": self.screen, "score": self.score,
                "scores": self.scores, "is_start": self.is_start, "adapt_cpu_seconds": self.adapt_cpu_seconds,
                "finetune_seconds": self.finetune_seconds, "model_dir": self.model_dir}


@dataclass
class RerankResult:
    """The reranked candidates (the start first, then by screen fitness), τ between the rankings, the settings."""

    entries: list[Reranked]
    config: RerankConfig
    tau: stats.Interval | None
    tau_reason: str | None

    def best(self, *, new_only: bool = False) -> Reranked:
        """The highest rerank score (ties: the better screen fitness); ``new_only``: the start left out."""
        pool = [e for e in self.entries if not (new_only and e.is_start)]
        if not pool:
            raise ValueError("no reranked candidate other than the start")
        return max(pool, key=lambda e: (e.score, e.screen))

    @property
    def cpu_seconds(self) -> float | None:
        """Adaptation CPU seconds plus fine-tuning wall seconds (fine-tuning runs one thread per job)."""
        adapt = [e.adapt_cpu_seconds for e in self.entries]
        return None if None in adapt else sum(adapt) + sum(e.finetune_seconds for e in self.entries)

    def to_dict(self) -> dict:
        screen_order = sorted(range(len(self.entries)), key=lambda i: -self.entries[i].screen)
        rerank_order = sorted(range(len(self.entries)), key=lambda i: -self.entries[i].score)
        return {"config": asdict(self.config), "task": self.config.task, "measure": f"{self.config.task} score on "
                "examples held out of its train split (mean over fine-tuning seeds), after adaptation",
                "candidates": [e.record() for e in self.entries], "screen_ranking": screen_order,
                "rerank_ranking": rerank_order,
                "kendall_tau": None if self.tau is None else self.tau.to_dict(), "kendall_tau_reason": self.tau_reason,
                "cost_seconds": self.cpu_seconds}


def rerank(supernet: WeightSharingSupernet, screened: Sequence[tuple[Candidate, float]], *, start: Candidate,
           scale: str | Path, root: str | Path, teacher: str, warm: WarmupConfig, cfg: RerankConfig, what: str,
           layers: Callable[[Candidate], str] = lambda c: "\n".join(f"{i + 1}. `{x}`" for i, x in enumerate(c))
           ) -> RerankResult:
    """Adapt, fine-tune and score every candidate of ``screened`` (``[(candidate, screen fitness), ...]``, e.g. as
    :func:`screen` returns it, the start first), cached in ``root/<slug>`` (a candidate reranked twice is scored once).
    ``start``: the search's start, marked ``is_start``. ``what``: the system, for the model cards."""
    root = Path(root)
    adapted = []
    for candidate, _ in progress_bar(screened, desc=f"rerank: adapt {len(screened)} candidates"):
        adapted.append(develop_candidate(
            supernet, candidate, root / candidate_slug(candidate), teacher=teacher, warm=warm,
            further_steps=cfg.adapt_steps, control=False,
            card=f"{what} rerank candidate: cut out of the supernet and distilled on this candidate alone for "
                 f"{cfg.adapt_steps} steps before its held-out {cfg.task} fine-tuning (atb.rerank). Not a model to use.",
            layers=layers(candidate)))
    # Every candidate's seeds in one pool: the scale's fine-tuning processes side by side (DevelopConfig.workers).
    jobs = [seed_jobs(a["model_dir"], [cfg.task], scale, a["finetune_dir"], seeds=cfg.seeds, budgets=cfg.budgets())
            for a in adapted]
    results = iter(run_jobs([job for seeds in jobs for job in seeds], DevelopConfig.load(scale).workers))
    entries = []
    for (candidate, fitness), a, seeds in zip(screened, adapted, jobs):
        scored = [next(results) for _ in seeds]
        missing = [r.get("reason") for r in scored if r.get("score") is None]
        if missing:
            raise RuntimeError(f"rerank: no {cfg.task} score for {root / candidate_slug(candidate)} ({missing[0]}); "
                               "choose an available task")
        entries.append(Reranked(tuple(candidate), float(fitness), candidate_names(candidate) == candidate_names(start),
                                [float(r["score"]) for r in scored], a["further_training"].get("cpu_seconds"),
                                float(sum(r.get("seconds") or 0.0 for r in scored)), a["model_dir"]))
    tau, reason = None, None
    if len(entries) < 3:
        reason = f"{len(entries)} reranked candidates: Kendall's tau needs at least 3"
    elif len({e.screen for e in entries}) < 2 or len({e.score for e in entries}) < 2:
        reason = "every reranked candidate has the same screen fitness or the same score: no ranking to compare"
    else:
        tau = stats.kendall_tau_interval([e.screen for e in entries], [e.score for e in entries])
    return RerankResult(entries, cfg, tau, reason)
