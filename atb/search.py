"""Latency-constrained search over the sub-architectures of a SuperPLM (notes §6).

For a speedup constraint ``s`` the **candidates** are the grid points of the search space whose predicted
latency lies in the window ``[0.85, 1.1] x latency(BERT-base) / s`` (:func:`atb.latency.latency_window`).
Three methods pick which candidates to evaluate with a fitness function (:mod:`atb.fitness`):

* ``"random"``  every generation is ``population`` random, not yet evaluated candidates (the baseline);
* ``"evolved"`` a random first generation, then the paper's evolution: parents are the top ``population``
  candidates so far, chosen by roulette wheel on ``fitness - min``; each child is, with probability
  ``explore_rate``, a fresh random candidate, else a mutation of a parent (layers +-1 with p 0.25, hidden
  +-1 grid step with p 0.5, FFN +-2 steps with p 0.5, heads (MLM) or qkv (KD) +-2 steps with p 0.25),
  resampled until it is a candidate that was never evaluated. No crossover;
* ``"fast"``    AutoTinyBERT-Fast: the same, restricted to "efficient" candidates
  (1.6 d_m <= d_f <= 1.9 d_m, 0.7 d_m <= d_qkv <= d_m) and run for ``fast_generations`` (default 1: the
  official searcher evaluates one generation of efficient candidates; notes §7 restrict the whole search
  to them, which is what ``fast_generations > 1`` does here).

As in the official code, an offset of ``+-k`` steps is drawn uniformly from ``-k..k`` (0 included) and a
move off the grid leaves the value unchanged. Unlike it, an architecture is never evaluated twice (one
hashable ``Arch``, pitfall 6), and every loop that resamples is bounded: a child whose parents have no
unseen feasible neighbour left becomes a random candidate, and when the window runs out of unseen
candidates the search stops with :class:`SearchExhausted` rather than spinning.

Candidates are enumerated once per search, in chunks, with the latency predictor's batch ``predict``.
That is the whole grid, so large spaces are searched on a coarser grid (``steps`` in the config, like the
paper's search scripts: hidden step 16, FFN step 32, i.e. ~1.5 M KD points instead of ~47 M).

**Resume and determinism.** Every evaluation is appended to a JSONL log (``arch, fitness, generation,
latency_ms, seconds, cpu_seconds``) behind a header line holding everything the candidates depend on.
Each generation's random numbers come from ``(seed, generation)`` alone (:func:`atb.sampler.step_rng`),
and its proposals depend only on the previous generations' results, so rerunning the same call replays
the logged evaluations (no fitness call) and continues exactly where an interrupted run stopped. More
generations can be added later by rerunning with a larger ``generations``.

**Cost.** ``cpu_seconds`` = the process CPU time (``time.process_time``, all threads) of every evaluation,
measured inside the process that ran it (worker or main) and stored in the log, so a resumed search
still counts the evaluations of the run it resumes; plus the search's own overhead in the main process
(candidate enumeration, selection) during this call. Wall time is reported beside it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from .latency import is_feasible, latency_window
from . import config
from .latency_predictor import LatencyFn, predict_latency
from .progress import bar as progress_bar
from .records import machine_info, write_text_atomic
from .sampler import step_rng
from .space import STEP_FIELDS, Arch, Range, SearchSpace

METHODS: tuple[str, ...] = ("random", "fast", "evolved")
GENES: tuple[str, ...] = ("layers", "hidden", "ffn", "attention")  # what a mutation can move
ATTENTION = {"mlm": "heads", "kd": "qkv"}  # the searched attention hyper-parameter of each space


class SearchExhausted(RuntimeError):
    """The latency window holds no architecture that is feasible, unseen and reachable any more."""


# ------------------------------------------------------------------------------------------- config
@dataclass
class SearchConfig:
    """Everything the search does (section ``search`` of ``configs/<scale>.yaml``). Defaults are the paper's numbers."""

    population: int = 25
    generations: int = 10  # not published; "random" and "evolved" run this many
    fast_generations: int = 1  # "fast" runs this many
    explore_rate: float = 0.5
    mutation_prob: dict[str, float] = field(
        default_factory=lambda: {"layers": 0.25, "hidden": 0.5, "ffn": 0.5, "attention": 0.25})
    mutation_offset: dict[str, int] = field(  # in grid steps; the offset is uniform in -k..k
        default_factory=lambda: {"layers": 1, "hidden": 1, "ffn": 2, "attention": 2})
    steps: dict[str, int] = field(default_factory=dict)  # SearchSpace.with_steps: search on a coarser grid
    max_mutation_tries: int = 1000  # mutations of one parent before another is drawn (see Evolution.offspring)
    chunk_size: int = 65536  # grid points per latency-predictor call while enumerating candidates
    workers: int = 1  # fitness worker processes (1: in this process)
    threads_per_worker: int | None = None  # torch threads of each worker process (None: torch's default)
    speedups: dict[str, list[float]] | None = None  # objective -> speedup constraints
    speedup_quantiles: list[float] | None = None  # or: targets at these quantiles of the grid's latencies
    fitness: str = "proxy"  # "proxy" (the SuperPLM's own held-out loss), "mlm_loss", "kd_loss" or "paper"
    proxy: dict[str, Any] = field(default_factory=dict)  # settings of mlm_loss / kd_loss
    paper: dict[str, Any] = field(default_factory=dict)  # settings of the paper fitness (fine-tuning)
    scale: str | None = None

    def __post_init__(self) -> None:
        for name in ("population", "generations", "fast_generations", "max_mutation_tries", "chunk_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"SearchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.explore_rate <= 1.0:
            raise ValueError(f"SearchConfig.explore_rate must be in [0, 1], got {self.explore_rate}")
        for name in ("mutation_prob", "mutation_offset"):
            if set(getattr(self, name)) != set(GENES):
                raise ValueError(f"SearchConfig.{name} needs exactly the keys {list(GENES)}, got {sorted(getattr(self, name))}")
        if any(not 0.0 <= p <= 1.0 for p in self.mutation_prob.values()):
            raise ValueError(f"SearchConfig.mutation_prob values must be in [0, 1], got {self.mutation_prob}")
        if any(not isinstance(k, int) or k < 0 for k in self.mutation_offset.values()):
            raise ValueError(f"SearchConfig.mutation_offset values must be integers >= 0, got {self.mutation_offset}")
        steps = self.steps or {}
        if set(steps) - set(STEP_FIELDS) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                for v in steps.values()):
            raise ValueError(f"SearchConfig.steps must map some of {list(STEP_FIELDS)} to integers >= 1, "
                             f"got {self.steps}")
        from .fitness import FITNESSES  # light: fitness.py loads models only when asked to score

        if self.fitness != "proxy" and self.fitness not in FITNESSES:
            raise ValueError(f"SearchConfig.fitness must be 'proxy' or one of {sorted(FITNESSES)}, got {self.fitness!r}")

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> SearchConfig:
        """The ``search`` section of a scale's config (``configs/<scale>.yaml`` or a YAML path), ``overrides``
        merged over it (nested mappings key by key); unset keys keep the paper's defaults above."""
        return config.load_section(cls, scale, "search", overrides, nested=True)

    def generations_for(self, method: str) -> int:
        return self.fast_generations if method == "fast" else self.generations

    def search_space(self, space: SearchSpace) -> SearchSpace:
        """The grid the search walks on: ``space`` coarsened by ``steps`` (unchanged if none)."""
        return space.with_steps(**self.steps) if self.steps else space

    def constraints(self, objective: str, space: SearchSpace | None = None, latency_fn: LatencyFn | None = None,
                    bert_base_ms: float | None = None) -> list[float]:
        """The speedup constraints of ``objective``: ``speedups[objective]``, or, when the scale gives
        ``speedup_quantiles`` instead (smoke: absolute speedups of toy models mean little and depend on the
        machine), the speedups whose targets sit at those quantiles of the space's predicted latencies."""
        if self.speedups is not None:
            if objective not in self.speedups:
                raise ValueError(f"no speedup constraints for objective {objective!r}: have {sorted(self.speedups)}")
            return [float(s) for s in self.speedups[objective]]
        if self.speedup_quantiles is None or space is None or latency_fn is None or bert_base_ms is None:
            raise ValueError("this scale sets speedup_quantiles: pass space, latency_fn and bert_base_ms")
        return speedups_at_quantiles(self.search_space(space), latency_fn, bert_base_ms, self.speedup_quantiles,
                                     self.chunk_size)

    def make_fitness(self, supernet_dir: str | Path):
        """The configured fitness of the SuperPLM saved in ``supernet_dir`` (``run_dir/"final"``)."""
        from .fitness import make_fitness

        return make_fitness(self.fitness, supernet_dir, **self.fitness_settings(self.fitness))

    def fitness_settings(self, name: str) -> dict[str, Any]:
        """The settings of fitness ``name``: ``paper`` (fine-tuning budgets of this scale's ``finetune``
        section, with ``paper.budgets`` over them) or one of the held-out-loss proxies."""
        if name == "paper":
            return {"finetune_scale": self.scale, **self.paper}
        return dict(self.proxy)


# ------------------------------------------------------------------------------------ candidates
def _chunks(archs: Iterator[Arch], size: int) -> Iterator[list[Arch]]:
    while chunk := list(itertools.islice(archs, size)):
        yield chunk


@dataclass
class CandidatePool:
    """Every grid point whose predicted latency lies in the window of one speedup constraint (grid order)."""

    archs: list[Arch]
    latency_ms: dict[Arch, float]
    window_ms: tuple[float, float]
    efficient_only: bool = False

    @classmethod
    def build(cls, space: SearchSpace, latency_fn: LatencyFn, bert_base_ms: float, speedup: float, *,
              efficient_only: bool = False, chunk_size: int = 65536, progress: bool = False) -> CandidatePool:
        """Enumerate ``space`` lazily, ``chunk_size`` points per predictor call, keeping the feasible ones."""
        grid = filter(Arch.is_efficient, space.grid()) if efficient_only else space.grid()
        archs: list[Arch] = []
        latency: dict[Arch, float] = {}
        bar = progress_bar(total=len(space), desc=f"candidates {speedup:g}x", disable=not progress, unit="arch")
        for chunk in _chunks(grid, chunk_size):
            ms = predict_latency(latency_fn, chunk)
            for arch, t, ok in zip(chunk, ms, is_feasible(ms, bert_base_ms, speedup)):
                if ok:
                    archs.append(arch)
                    latency[arch] = float(t)
            bar.update(len(chunk))
        bar.close()
        return cls(archs, latency, latency_window(bert_base_ms, speedup), efficient_only)

    def __len__(self) -> int:
        return len(self.archs)

    def __contains__(self, arch: Arch) -> bool:
        return arch in self.latency_ms

    def describe(self) -> str:
        kind = "efficient feasible" if self.efficient_only else "feasible"
        low, high = self.window_ms
        return f"the window [{low:.4g}, {high:.4g}] ms holds {len(self)} {kind} architectures"

    def digest(self) -> str:
        """A fingerprint of the candidate set: a resumed search must see the same one (same predictor)."""
        return hashlib.sha256("\n".join(map(str, self.archs)).encode()).hexdigest()[:16]

    def draw(self, rng: random.Random, exclude: set[Arch]) -> Arch:
        """A uniformly random candidate not in ``exclude`` (rejection first, an explicit list if that fails)."""
        for _ in range(64):
            arch = rng.choice(self.archs)
            if arch not in exclude:
                return arch
        unseen = [a for a in self.archs if a not in exclude]
        if not unseen:
            raise SearchExhausted(f"{self.describe()} and every one of them was already evaluated; "
                                  "lower generations/population, use a finer grid (smaller steps) or choose another speedup")
        return rng.choice(unseen)


def speedups_at_quantiles(space: SearchSpace, latency_fn: LatencyFn, bert_base_ms: float,
                          quantiles: Sequence[float], chunk_size: int = 65536, spread: float = 0.1) -> list[float]:
    """Speedup constraints near the given quantiles of the grid's predicted latencies.

    Small grids have clustered latencies (1 layer vs 2 layers), and the exact quantile can fall in a gap
    with an empty window. So, for each quantile ``q``, the target is the predicted latency of a grid point
    between quantiles ``q - spread`` and ``q + spread`` whose window holds the most grid points.
    """
    ms = np.concatenate([predict_latency(latency_fn, c) for c in _chunks(space.grid(), chunk_size)])
    speedups = []
    for q in quantiles:
        low, high = np.quantile(ms, [max(q - spread, 0.0), min(q + spread, 1.0)])
        targets = np.unique(ms[(ms >= low) & (ms <= high)])
        counts = [int(is_feasible(ms, bert_base_ms, bert_base_ms / t).sum()) for t in targets]
        speedups.append(float(bert_base_ms / targets[int(np.argmax(counts))]))
    return speedups


# ------------------------------------------------------------------------------------- evolution
def arch_of_genes(space: SearchSpace, layers: int, hidden: int, ffn: int, attention: int) -> Arch:
    """Build an Arch from the searched values (heads in the MLM space, qkv in the KD space)."""
    if space.objective == "mlm":
        return Arch(layers, hidden, ffn, attention, attention * space.head_size)
    return Arch(layers, hidden, ffn, space.heads.low, attention)


def gene_field(space: SearchSpace, gene: str) -> str:
    """The architecture field a gene moves: itself, or for ``attention`` the searched one (heads in the MLM space,
    d_qkv in the KD space)."""
    return ATTENTION[space.objective] if gene == "attention" else gene


def mutate(arch: Arch, space: SearchSpace, rng: random.Random, cfg: SearchConfig) -> Arch:
    """One mutation of ``arch``: each gene moves, with its probability, by ``-k..k`` grid steps (notes §6)."""
    values = {}
    for gene in GENES:
        name = gene_field(space, gene)
        grid: Range = getattr(space, name)
        index = (getattr(arch, name) - grid.low) // grid.step
        if rng.random() < cfg.mutation_prob[gene]:
            k = cfg.mutation_offset[gene]
            moved = index + rng.randint(-k, k)
            if 0 <= moved < len(grid):  # off the grid: unchanged, as in the official code
                index = moved
        values[gene] = grid.low + index * grid.step
    return arch_of_genes(space, **values)


def roulette(parents: Sequence[Candidate], rng: random.Random) -> Candidate:
    """Roulette-wheel selection on ``fitness - min``: the worst parent is never picked (uniform if all tie)."""
    low = min(p.fitness for p in parents)
    weights = [p.fitness - low for p in parents]
    if sum(weights) <= 0:
        return rng.choice(parents)
    return rng.choices(parents, weights=weights)[0]


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture, as logged."""

    arch: Arch
    fitness: float
    generation: int
    index: int  # position in its generation
    latency_ms: float  # predicted
    seconds: float = field(compare=False)  # timings differ between runs; equal candidates need not share them
    cpu_seconds: float = field(compare=False)
    details: dict = field(default_factory=dict, compare=False)  # what the fitness reported besides its value

    def record(self) -> dict:
        return {"generation": self.generation, "index": self.index, "arch": str(self.arch), "fitness": self.fitness,
                "latency_ms": self.latency_ms, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
                "details": self.details}

    @classmethod
    def from_record(cls, r: dict) -> Candidate:
        return cls(Arch.parse(r["arch"]), r["fitness"], r["generation"], r["index"], r["latency_ms"], r["seconds"],
                   r["cpu_seconds"], r.get("details") or {})


class Evolution:
    """Proposes the architectures of each generation from the results of the previous ones."""

    def __init__(self, space: SearchSpace, pool: CandidatePool, cfg: SearchConfig, method: str, seed: int):
        self.space, self.pool, self.cfg, self.method, self.seed = space, pool, cfg, method, seed
        self.evaluated: list[Candidate] = []  # in generation order
        self.seen: set[Arch] = set()

    def add(self, candidates: Sequence[Candidate]) -> None:
        self.evaluated.extend(candidates)
        self.seen.update(c.arch for c in candidates)

    def parents(self) -> list[Candidate]:
        """The top ``population`` candidates so far (ties: the earlier evaluated first)."""
        return sorted(self.evaluated, key=lambda c: -c.fitness)[: self.cfg.population]

    def propose(self, generation: int) -> list[Arch]:
        """``population`` distinct, feasible, never evaluated architectures for ``generation``."""
        rng = step_rng(self.seed, generation, "search")
        taken = set(self.seen)
        evolve = generation > 0 and self.method != "random"
        parents = self.parents() if evolve else []
        children: list[Arch] = []
        while len(children) < self.cfg.population:
            explore = not evolve or rng.random() < self.cfg.explore_rate
            child = None if explore else self.offspring(parents, rng, taken)
            child = child or self.pool.draw(rng, taken)  # raises SearchExhausted when the window is used up
            children.append(child)
            taken.add(child)
        return children

    def offspring(self, parents: Sequence[Candidate], rng: random.Random, taken: set[Arch]) -> Arch | None:
        """Mutate a roulette-chosen parent until the child is a candidate not in ``taken``.

        A parent whose neighbourhood in the window is used up (``max_mutation_tries`` failed mutations)
        is replaced by another roulette draw; after ``population`` such parents, ``None``: the caller
        explores instead. That only happens in small, nearly exhausted windows, where the official code
        would loop forever.
        """
        for _ in range(self.cfg.population):
            parent = roulette(parents, rng).arch
            for _ in range(self.cfg.max_mutation_tries):
                child = mutate(parent, self.space, rng, self.cfg)
                if child in self.pool and child not in taken:
                    return child
        return None


# ------------------------------------------------------------------------------------ evaluation
class Evaluation(NamedTuple):
    fitness: float
    details: dict
    seconds: float
    cpu_seconds: float  # time.process_time of the process that ran it


def evaluate(fitness, arch: Any, label: str | None = None) -> Evaluation:
    """Score ``arch`` (an ``Arch``, or any candidate: EfficientBERT's search uses this too; ``label`` names it in
    errors, default ``str(arch)``); fitness objects of :mod:`atb.fitness` also report details through ``evaluate``."""
    wall, cpu = time.perf_counter(), time.process_time()
    if hasattr(fitness, "evaluate"):
        details = dict(fitness.evaluate(arch))
        value = details.pop("fitness")
    else:
        value, details = fitness(arch), {}
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"fitness of {label or arch} is {value}: a search needs finite fitness values")
    return Evaluation(value, details, time.perf_counter() - wall, time.process_time() - cpu)


_WORKER_FITNESS = None  # each worker process's own copy of the fitness (its SuperPLM loaded once)


def _init_worker(fitness, threads: int | None) -> None:
    global _WORKER_FITNESS
    _WORKER_FITNESS = fitness
    if threads:
        torch.set_num_threads(threads)


def _evaluate_in_worker(arch: Arch) -> Evaluation:
    return evaluate(_WORKER_FITNESS, arch)


class Evaluator:
    """Runs the fitness here (``workers == 1``) or in worker processes, started on first need.

    Workers are *spawned* (not forked: a forked copy of a process that already ran torch's thread pools can
    hang), so the fitness must be picklable: a top-level class or function. It is sent once per worker.
    """

    def __init__(self, fitness, workers: int = 1, threads: int | None = None):
        self.fitness, self.workers, self.threads = fitness, workers, threads
        self._executor: ProcessPoolExecutor | None = None
        self.in_process_cpu = 0.0

    def run(self, archs: Sequence[Arch]) -> Iterator[tuple[int, Evaluation]]:
        """``(position in archs, evaluation)`` pairs, as they complete."""
        if self.workers == 1:
            for i, arch in enumerate(archs):
                result = evaluate(self.fitness, arch)
                self.in_process_cpu += result.cpu_seconds
                yield i, result
            return
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker, initargs=(self.fitness, self.threads))
        futures = {self._executor.submit(_evaluate_in_worker, arch): i for i, arch in enumerate(archs)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------- log
def header_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The keys whose values differ between two log headers, nested ones dotted (``config.seed``): what a refused
    resume names (EfficientBERT's and AutoBERT-Zero's searches)."""
    found = []
    for k in sorted(a.keys() | b.keys()):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            found += header_differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            found.append(f"{prefix}{k}")
    return found


def read_search_log(path: str | Path) -> tuple[dict | None, list[dict]]:
    """``(header, evaluation records)`` of a search log; a line cut off by a kill is dropped from the file."""
    path = Path(path)
    if not path.exists():
        return None, []
    lines = path.read_text().splitlines(keepends=True)
    rows = []
    for n, line in enumerate(lines):
        try:
            if not line.endswith("\n"):
                raise ValueError("no newline")
            rows.append(json.loads(line))
        except ValueError:
            if n != len(lines) - 1:
                raise ValueError(f"{path}: line {n + 1} is malformed (not the last line, so not an interrupted write)")
            warnings.warn(f"{path}: dropping a cut-off last line (interrupted search); that candidate is re-evaluated",
                          stacklevel=2)
            path.write_text("".join(lines[:-1]))
    if not rows:
        return None, []
    if "header" not in rows[0]:
        raise ValueError(f"{path} is not a search log: its first line has no 'header'")
    return rows[0]["header"], rows[1:]


class SearchLog:
    """The append-only JSONL record of one search: a header line (written atomically), then one flushed line per
    evaluated candidate, its record kept under ``key(record)`` (default: the architecture; EfficientBERT's and
    AutoBERT-Zero's searches key theirs by candidate string or evaluation index). A log whose header differs is
    refused, naming the differing keys."""

    def __init__(self, path: str | Path, header: dict, key: Callable[[dict], Any] = lambda r: Arch.parse(r["arch"])):
        self.path, self.key = Path(path), key
        header = json.loads(json.dumps(header, default=str))  # compare what a reread would see
        stored, rows = read_search_log(self.path)
        if stored is None:
            write_text_atomic(self.path, json.dumps({"header": header}) + "\n")
        elif stored != header:
            raise ValueError(f"{self.path} logs a different search (differs in {header_differences(stored, header)}): "
                             "resuming it would mix candidates of two searches; delete the file or choose another "
                             "log path")
        self.records: dict[Any, dict] = {key(r): r for r in rows}

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
        self.records[self.key(record)] = record


# ---------------------------------------------------------------------------------------- result
@dataclass
class SearchResult:
    """The outcome of one search. ``history[g]`` is the best fitness found up to generation ``g``."""

    method: str
    speedup: float
    seed: int
    window_ms: tuple[float, float]
    pool_size: int
    best_arch: Arch
    best_fitness: float
    predicted_latency_ms: float
    history: list[float]
    candidates: list[Candidate]
    cpu_seconds: float  # evaluation_cpu_seconds + overhead_cpu_seconds
    evaluation_cpu_seconds: float
    overhead_cpu_seconds: float
    wall_seconds: float  # of this call
    replayed: int  # evaluations read back from the log instead of run
    fitness: dict  # the fitness's own description (name, settings, substitute tasks...)
    log_path: Path

    def table(self) -> pd.DataFrame:
        """One row per evaluated candidate: generation, arch, its five fields, fitness, latency, cost."""
        return pd.DataFrame([{**c.record(), **c.arch.as_dict()} for c in self.candidates]).drop(columns="details")

    def to_dict(self) -> dict:
        """A JSON-ready summary (candidates are in the log), with the machine the CPU time was measured on."""
        return {"method": self.method, "speedup": self.speedup, "seed": self.seed, "window_ms": list(self.window_ms),
                "pool_size": self.pool_size, "best_arch": str(self.best_arch), "best_fitness": self.best_fitness,
                "predicted_latency_ms": self.predicted_latency_ms, "history": self.history,
                "evaluated": len(self.candidates), "cpu_seconds": self.cpu_seconds,
                "evaluation_cpu_seconds": self.evaluation_cpu_seconds,
                "overhead_cpu_seconds": self.overhead_cpu_seconds, "wall_seconds": self.wall_seconds,
                "fitness": self.fitness, "log": str(self.log_path), "machine": machine_info()}


def describe_fitness(fitness) -> dict:
    """What a log header records about the fitness: its ``describe()``, or its name."""
    if hasattr(fitness, "describe"):
        return fitness.describe()
    return {"name": getattr(fitness, "__qualname__", type(fitness).__qualname__)}


# ------------------------------------------------------------------------------------------ search
def run_search(space: SearchSpace, fitness, latency_fn: LatencyFn, speedup: float, bert_base_ms: float,
               cfg: SearchConfig, log_path: str | Path, *, method: str = "evolved", seed: int = 0,
               progress: bool = True) -> SearchResult:
    """Search ``space`` (on ``cfg.steps``' grid) for the fittest architecture within the window of ``speedup``.

    ``fitness(arch) -> float`` (higher is better; picklable when ``cfg.workers > 1``); ``latency_fn``: a
    fitted latency predictor (``.predict(archs) -> ms``) or such a function; ``bert_base_ms``: BERT-base's
    latency on the same machine. Rerunning with the same ``log_path`` resumes (see the module docstring).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    wall, cpu = time.perf_counter(), time.process_time()
    space = cfg.search_space(space)
    pool = CandidatePool.build(space, latency_fn, bert_base_ms, speedup, efficient_only=method == "fast",
                               chunk_size=cfg.chunk_size, progress=progress)
    if len(pool) < cfg.population:
        raise SearchExhausted(f"{pool.describe()}, fewer than one population of {cfg.population}: "
                              "choose another speedup, a finer grid (steps) or a smaller population")
    log = SearchLog(log_path, {
        "method": method, "seed": seed, "speedup": float(speedup), "bert_base_ms": float(bert_base_ms),
        "space": space.as_dict(), "pool": {"size": len(pool), "sha256": pool.digest()},
        "fitness": describe_fitness(fitness),
        **{k: getattr(cfg, k) for k in ("population", "explore_rate", "mutation_prob", "mutation_offset",
                                        "max_mutation_tries")},
    })
    evolution = Evolution(space, pool, cfg, method, seed)
    history: list[float] = []
    replayed = 0
    generations = cfg.generations_for(method)
    with Evaluator(fitness, cfg.workers, cfg.threads_per_worker) as evaluator, \
            progress_bar(total=generations * cfg.population, desc=f"{method} {speedup:g}x", unit="arch",
                         disable=not progress) as bar:  # one bar per search, not one per generation
        for generation in range(generations):
            archs = evolution.propose(generation)
            bar.set_description(f"{method} {speedup:g}x gen {generation + 1}/{generations}", refresh=False)
            candidates, cached = _evaluate_generation(generation, archs, pool, log, evaluator, bar)
            replayed += cached
            evolution.add(candidates)
            history.append(max(max(c.fitness for c in candidates), history[-1] if history else -math.inf))
    best = evolution.parents()[0]
    evaluation_cpu = sum(c.cpu_seconds for c in evolution.evaluated)
    overhead_cpu = max(time.process_time() - cpu - evaluator.in_process_cpu, 0.0)
    return SearchResult(
        method=method, speedup=float(speedup), seed=seed, window_ms=pool.window_ms, pool_size=len(pool),
        best_arch=best.arch, best_fitness=best.fitness, predicted_latency_ms=best.latency_ms, history=history,
        candidates=evolution.evaluated, cpu_seconds=evaluation_cpu + overhead_cpu,
        evaluation_cpu_seconds=evaluation_cpu, overhead_cpu_seconds=overhead_cpu,
        wall_seconds=time.perf_counter() - wall, replayed=replayed, fitness=describe_fitness(fitness),
        log_path=Path(log_path))


def _evaluate_generation(generation: int, archs: Sequence[Arch], pool: CandidatePool, log: SearchLog,
                         evaluator: Evaluator, bar) -> tuple[list[Candidate], int]:
    """The candidates of one generation, in proposal order: replayed from the log or evaluated (and logged)."""
    done: dict[int, Candidate] = {}
    for i, arch in enumerate(archs):
        if arch in log.records:
            record = log.records[arch]
            if record["generation"] != generation:
                raise ValueError(f"{log.path}: {arch} is logged in generation {record['generation']} but proposed "
                                 f"in generation {generation}: the log does not belong to this search")
            done[i] = Candidate.from_record({**record, "index": i})
    cached = len(done)
    bar.update(cached)
    todo = [i for i in range(len(archs)) if i not in done]
    for j, result in evaluator.run([archs[i] for i in todo]):
        i = todo[j]
        candidate = Candidate(archs[i], result.fitness, generation, i, pool.latency_ms[archs[i]], result.seconds,
                              result.cpu_seconds, result.details)
        log.append(candidate.record())
        done[i] = candidate
        bar.update(1)
        bar.set_postfix(best=f"{max(c.fitness for c in done.values()):.4g}")
    return [done[i] for i in range(len(archs))], cached


# ---------------------------------------------------------------------------------------- results
def shape_summary(archs: Sequence[Arch]) -> dict[str, Any]:
    """Claim 3 on a set of found architectures: how many satisfy the efficient rule (:meth:`Arch.is_efficient`),
    and the ranges of d_f/d_m, d_qkv/d_m and depth (what notebook 03 shows and the report judges)."""
    archs = list(archs)
    if not archs:
        return {"n": 0, "efficient": 0, "efficient_share": None, "ffn_ratio": None, "qkv_ratio": None, "layers": None}

    def spread(values: list[float]) -> dict[str, float]:
        return {"min": min(values), "max": max(values), "mean": sum(values) / len(values)}

    efficient = sum(a.is_efficient() for a in archs)
    return {"n": len(archs), "efficient": efficient, "efficient_share": efficient / len(archs),
            "ffn_ratio": spread([a.ffn / a.hidden for a in archs]),
            "qkv_ratio": spread([a.qkv / a.hidden for a in archs]),
            "layers": [min(a.layers for a in archs), max(a.layers for a in archs)]}
