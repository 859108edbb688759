"""One search for the whole accuracy–latency front (beyond the paper; notebook 12).

AutoTinyBERT runs one evolutionary search per latency target (:func:`atb.search.run_search`): each sees only the
architectures whose predicted latency lies in its target's window, and the curve of the paper's Figure 1 is drawn
through the winners of separate searches. A multi-objective search asks for the whole curve at once: maximise the
fitness, minimise the predicted latency, and keep every architecture no other one beats on both. Here Optuna's
NSGA-II (:class:`optuna.samplers.NSGAIISampler`: non-dominated sorting, crowding distance, uniform crossover) does
the search; ``atb`` supplies what the evolution uses too: the same grid (``SearchConfig.steps``), the same fitness,
the same latency predictor, and a constraint, the latency span from the fastest target's window to the slowest's.

**Equal budgets.** The front search gets exactly as many fitness evaluations as the evolutionary searches at the
study's targets together (``generations × population`` per target), each one a distinct architecture, as in the
evolution. A proposal outside the span is refused before any fitness call (NSGA-II's constrained domination would
only spend an evaluation to learn what the predictor already says), and a proposal evaluated before is answered from
the log; neither counts as an evaluation.

**Comparing fronts** (:func:`compare`). Both searches' evaluated points, per seed, are scored by the **hypervolume**
(the area a front dominates up to a reference point; :class:`pymoo.indicators.hv.HV`) on one normalisation shared by
every search of the comparison: latency by the span, fitness from the worst point on any search's front (the nadir)
to the best fitness found.
Two hypervolumes, because the two searches were asked different questions: over the whole span (the curve, which
the evolution never covers between its windows: the front search's own question) and inside the targets' windows
only (the points the per-target searches were asked for: theirs). Beside them, per target, the best fitness each
search found inside that target's window. A difference is decided over seeds with a Student-t interval.

**Resume.** Each search logs every evaluation (:class:`atb.search.SearchLog`, behind a header of everything the
proposals depend on). Optuna's sampler is seeded and asked one trial at a time, so a rerun proposes the same
architectures in the same order, replays them from the log without calling the fitness, and continues.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import config
from .latency import latency_window
from .latency_predictor import LatencyFn, predict_latency
from .progress import bar as progress_bar
from .search import (ATTENTION, GENES, Candidate, SearchConfig, SearchExhausted, SearchLog, arch_of_genes,
                     describe_fitness, evaluate, gene_field)
from .space import Arch, SearchSpace
from .stats import NOT_TESTABLE, REFUTED, REPRODUCED, Interval, t_interval, verdict

METHOD = "pareto"


@dataclass
class ParetoConfig:
    """The front search (section ``pareto`` of ``configs/<scale>.yaml``); the grid, the fitness and the evaluations
    per target are the ``search`` section's, so both searches see the same space at the same cost."""

    objective: str = "kd"  # which SuperPLM's space is searched (the comparison costs a search per seed and target)
    seeds: tuple[int, ...] = (0, 1, 2)  # each seed runs both searches; the hypervolume difference is decided over them
    population: int | None = None  # NSGA-II's population; None: the search section's population
    max_proposals: int = 50  # proposals per allowed evaluation before the search gives up (a tiny feasible span)
    speedups: tuple[float, ...] | None = None  # the targets whose windows span the front; None: notebook 03's
    tasks: tuple[str, ...] | None = None  # GLUE tasks the developed front points are fine-tuned on; None: notebook
    # 05's developed models' tasks (atb.develop.study_tasks)
    scale: str | None = None

    def __post_init__(self) -> None:
        if self.objective not in ATTENTION:
            raise ValueError(f"pareto.objective must be one of {sorted(ATTENTION)}, got {self.objective!r}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"pareto.seeds must be at least two distinct seeds (an interval over seeds), "
                             f"got {list(self.seeds)}")
        if self.population is not None and self.population < 2:
            raise ValueError(f"pareto.population must be >= 2, got {self.population}")
        if self.max_proposals < 1:
            raise ValueError(f"pareto.max_proposals must be >= 1, got {self.max_proposals}")
        if self.speedups is not None and (not self.speedups or any(s <= 0 for s in self.speedups)):
            raise ValueError(f"pareto.speedups must be positive speedups (or null: notebook 03's), got {self.speedups}")

    @classmethod
    def load(cls, scale: str | Path) -> ParetoConfig:
        return config.load_section(cls, scale, "pareto", tuples=("seeds", "speedups", "tasks"))

    def targets(self, search: SearchConfig, space: SearchSpace, latency_fn: LatencyFn, bert_base_ms: float
                ) -> list[float]:
        """The speedup targets both searches work to: ``speedups``, or those of notebook 03 (``search.constraints``);
        only targets that notebook 03 also searched have an evolved model (notebook 04) to develop the front beside."""
        if self.speedups is not None:
            return [float(s) for s in self.speedups]
        return search.constraints(self.objective, space, latency_fn, bert_base_ms)


def latency_span(bert_base_ms: float, speedups: Sequence[float]) -> tuple[float, float]:
    """The latencies the front search may propose: from the fastest target's window to the slowest's (ms)."""
    windows = [latency_window(bert_base_ms, s) for s in speedups]
    return min(w[0] for w in windows), max(w[1] for w in windows)


def evaluations_of(cfg: SearchConfig, speedups: Sequence[float]) -> int:
    """What the evolutionary searches at ``speedups`` evaluate together: the front search's budget."""
    return cfg.generations_for("evolved") * cfg.population * len(speedups)


@dataclass
class FrontResult:
    """One front search: every architecture it evaluated (``candidates``, in order), and what it cost."""

    seed: int
    span_ms: tuple[float, float]
    evaluations: int
    proposals: int  # trials Optuna proposed (refused and repeated ones included)
    candidates: list[Candidate]
    replayed: int
    wall_seconds: float
    cpu_seconds: float  # of the fitness evaluations (as logged, so a resumed search counts them all)
    log_path: Path

    def to_dict(self) -> dict:
        return {"method": METHOD, "seed": self.seed, "span_ms": list(self.span_ms), "evaluations": self.evaluations,
                "proposals": self.proposals, "replayed": self.replayed, "wall_seconds": self.wall_seconds,
                "cpu_seconds": self.cpu_seconds, "log": str(self.log_path), "front": front_points(self.candidates)}


def front_points(candidates: Sequence[Candidate]) -> list[dict]:
    """The Pareto front of ``candidates`` as a record's rows: ``{"arch", "fitness", "latency_ms"}``, fastest first."""
    return [{"arch": str(c.arch), "fitness": c.fitness, "latency_ms": c.latency_ms} for c in pareto_front(candidates)]


def run_front_search(space: SearchSpace, fitness, latency_fn: LatencyFn, bert_base_ms: float,
                     speedups: Sequence[float], search_cfg: SearchConfig, cfg: ParetoConfig, log_path: str | Path, *,
                     seed: int, progress: bool = True) -> FrontResult:
    """NSGA-II over ``space`` (on ``search_cfg.steps``' grid) maximising ``fitness`` and minimising the predicted
    latency within :func:`latency_span` of ``speedups``, for :func:`evaluations_of` distinct evaluations.
    Rerunning with the same ``log_path`` resumes (module docstring). Raises :class:`atb.search.SearchExhausted`
    when ``cfg.max_proposals`` proposals per evaluation bring no new feasible architecture."""
    import optuna

    wall = time.perf_counter()
    space = search_cfg.search_space(space)
    grids = {gene: getattr(space, gene_field(space, gene)) for gene in GENES}  # the evolution's genes
    span = latency_span(bert_base_ms, speedups)
    budget = evaluations_of(search_cfg, speedups)
    population = cfg.population or search_cfg.population
    log = SearchLog(log_path, {"method": METHOD, "seed": seed, "speedups": [float(s) for s in speedups],
                               "bert_base_ms": float(bert_base_ms), "span_ms": list(span), "evaluations": budget,
                               "population": population, "space": space.as_dict(),
                               "fitness": describe_fitness(fitness), "optuna": optuna.__version__})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(population_size=population, seed=seed))
    found: dict[Arch, Candidate] = {}
    proposals = replayed = 0
    with progress_bar(total=budget, desc=f"{METHOD} seed {seed}", unit="arch", disable=not progress) as bar:
        while len(found) < budget:
            if proposals >= cfg.max_proposals * budget:
                raise SearchExhausted(f"{proposals} proposals brought only {len(found)} of {budget} distinct "
                                      f"architectures within {span[0]:.4g}-{span[1]:.4g} ms: widen the targets, use a "
                                      "finer grid (search.steps) or fewer generations")
            trial = study.ask()
            proposals += 1
            arch = arch_of_genes(space, **{g: grid.low + grid.step * trial.suggest_int(g, 0, len(grid) - 1)
                                   for g, grid in grids.items()})
            latency = float(predict_latency(latency_fn, [arch])[0])
            if not span[0] <= latency <= span[1]:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # infeasible: never evaluated
                continue
            if arch not in found:
                found[arch], cached = _candidate(arch, latency, len(found), population, log, fitness)
                replayed += cached
                bar.update(1)
            study.tell(trial, [found[arch].fitness, latency])
    candidates = list(found.values())
    return FrontResult(seed, span, budget, proposals, candidates, replayed, time.perf_counter() - wall,
                       sum(c.cpu_seconds for c in candidates), Path(log_path))


def _candidate(arch: Arch, latency: float, index: int, population: int, log: SearchLog, fitness
               ) -> tuple[Candidate, int]:
    """The ``index``-th distinct architecture of a front search: replayed from the log (1) or evaluated and logged
    (0). ``generation`` counts populations of evaluations, as the evolution's does."""
    if arch in log.records:
        record = log.records[arch]
        if record["index"] != index:
            raise ValueError(f"{log.path}: {arch} is logged as evaluation {record['index']} but proposed as {index}: "
                             "the log does not belong to this search")
        return Candidate.from_record(record), 1
    result = evaluate(fitness, arch)
    candidate = Candidate(arch, result.fitness, index // population, index, latency, result.seconds,
                          result.cpu_seconds, result.details)
    log.append(candidate.record())
    return candidate, 0


# ------------------------------------------------------------------------------------------- fronts
def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no other one beats on both fitness (higher) and predicted latency (lower), fastest first."""
    from pymoo.util.nds.non_dominated_sorting import find_non_dominated

    if not candidates:
        return []
    points = np.array([[c.latency_ms, -c.fitness] for c in candidates])
    front = [candidates[i] for i in find_non_dominated(points)]
    return sorted(front, key=lambda c: (c.latency_ms, -c.fitness))


@dataclass(frozen=True)
class Normaliser:
    """One scale for every front of a comparison: latency 0 at the span's low end, 1 at its high end; fitness 0 at the
    best fitness any search found, 1 at the worst point of any search's front, its nadir (both then minimised, with
    the reference point at 1). The nadir, not the worst point evaluated: a few wrecked architectures far below every
    front would otherwise squeeze all the areas that differ into a sliver of the scale."""

    span_ms: tuple[float, float]
    fitness_range: tuple[float, float]

    @classmethod
    def of(cls, span_ms: tuple[float, float], searches: Sequence[Sequence[Candidate]]) -> Normaliser:
        fronts = [c.fitness for s in searches for c in pareto_front(s)]
        if not fronts:
            raise ValueError("no evaluated candidates to normalise")
        return cls(tuple(span_ms), (min(fronts), max(fronts)))

    def latency(self, ms: float) -> float:
        low, high = self.span_ms
        return (ms - low) / (high - low)

    def points(self, candidates: Sequence[Candidate]) -> np.ndarray:
        worst, best = self.fitness_range
        width = best - worst or 1.0
        return np.array([[self.latency(c.latency_ms), (best - c.fitness) / width] for c in candidates]).reshape(-1, 2)


def hypervolume(candidates: Sequence[Candidate], norm: Normaliser, window_ms: tuple[float, float] | None = None
                ) -> float:
    """The normalised area that ``candidates`` dominate (fitness up, latency down) up to the reference point at the
    worst fitness and the span's slowest latency; with ``window_ms``, only candidates inside that window count and the
    reference latency is its slow end (the part of the front a per-target search was asked for)."""
    from pymoo.indicators.hv import HV

    high = norm.span_ms[1]
    if window_ms is not None:
        candidates = [c for c in candidates if window_ms[0] <= c.latency_ms <= window_ms[1]]
        high = window_ms[1]
    points = norm.points(candidates)
    reference = np.array([norm.latency(high), 1.0])
    points = points[(points < reference).all(axis=1)]
    return float(HV(ref_point=reference)(points)) if len(points) else 0.0


FAVOURS = {REPRODUCED: "NSGA-II higher", REFUTED: "evolution higher", NOT_TESTABLE: "undecided"}


def favours(interval: Mapping[str, Any] | None) -> str:
    """Which search a difference (NSGA-II minus evolution, from :func:`compare`) favours: the interval's verdict."""
    if interval is None:
        return "no interval"
    return FAVOURS[verdict(Interval(interval["difference"], tuple(interval["ci95"]), interval["n"], 0))]


def best_in_window(candidates: Sequence[Candidate], window_ms: tuple[float, float]) -> Candidate | None:
    """The fittest candidate whose predicted latency lies in ``window_ms`` (what a per-target search returns)."""
    inside = [c for c in candidates if window_ms[0] <= c.latency_ms <= window_ms[1]]
    return max(inside, key=lambda c: c.fitness, default=None)


def compare(front: Mapping[int, Sequence[Candidate]], evolved: Mapping[int, Sequence[Candidate]],
            bert_base_ms: float, speedups: Sequence[float]) -> dict[str, Any]:
    """The front search against the evolutionary searches, seed by seed (``{seed: evaluated candidates}``; the
    evolved ones pooled over the targets' searches of that seed).

    Returns ``{"normaliser", "per_seed": [{seed, hypervolume: {pareto, evolved}, hypervolume_windows: {...},
    targets: {speedup: {pareto, evolved}}}], "hypervolume", "hypervolume_windows": pareto − evolved with its
    t-interval over seeds, "targets": {speedup: best fitness in the window, pareto − evolved over seeds}}``."""
    seeds = sorted(front)
    if sorted(evolved) != seeds:
        raise ValueError(f"both searches need the same seeds: pareto {seeds}, evolved {sorted(evolved)}")
    span = latency_span(bert_base_ms, speedups)
    norm = Normaliser.of(span, [*front.values(), *evolved.values()])
    windows = {float(s): latency_window(bert_base_ms, s) for s in speedups}
    per_seed = []
    for seed in seeds:
        sides = {METHOD: front[seed], "evolved": evolved[seed]}
        best = {s: {m: best_in_window(c, w) for m, c in sides.items()} for s, w in windows.items()}
        per_seed.append({
            "seed": seed,
            "hypervolume": {m: hypervolume(c, norm) for m, c in sides.items()},
            "hypervolume_windows": {m: sum(hypervolume(c, norm, w) for w in windows.values())
                                    for m, c in sides.items()},
            "targets": {f"{s:g}": {m: (None if b is None else {"arch": str(b.arch), "fitness": b.fitness,
                                                               "latency_ms": b.latency_ms}) for m, b in by.items()}
                        for s, by in best.items()}})

    def difference(values: list[float]) -> dict | None:
        values = [v for v in values if v is not None and math.isfinite(v)]
        return t_interval(values).to_dict() if len(values) >= 2 else None

    def gap(row: Mapping[str, Any], key: str) -> float:
        return row[key][METHOD] - row[key]["evolved"]

    def target_gap(row: Mapping[str, Any], s: str) -> float | None:
        pair = row["targets"][s]
        return None if None in pair.values() else pair[METHOD]["fitness"] - pair["evolved"]["fitness"]

    return {"normaliser": {"span_ms": list(norm.span_ms), "fitness_range": list(norm.fitness_range)},
            "per_seed": per_seed,
            "hypervolume": difference([gap(r, "hypervolume") for r in per_seed]),
            "hypervolume_windows": difference([gap(r, "hypervolume_windows") for r in per_seed]),
            "targets": {f"{s:g}": difference([target_gap(r, f"{s:g}") for r in per_seed]) for s in windows}}
