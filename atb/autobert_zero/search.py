"""OP-NAS: AutoBERT-Zero's evolution of backbones, biased by operation priority (Gao et al., AAAI 2022).

The space of attention graphs is huge and mostly useless (a random graph rarely learns), so AutoBERT-Zero does not
mutate blindly: **OP-NAS** keeps, for every primitive operation (:data:`~atb.autobert_zero.graph.OPS`), a
**priority** — the mean **reward** of the mutations that introduced it plus a UCB exploration term,
``priority(op) = mean_reward(op) + ucb_c * sqrt(2 ln N / n_op)`` (``n_op``: mutations credited to ``op``; ``N``:
all credited mutations) — and a mutation picks the operation it inserts or substitutes with probability
``∝ exp(priority / temperature)`` among those that fit there. An operation never tried has infinite priority, so
each is tried once before the bias takes over (the UCB convention). The baseline, ``mutation="random"``, is the
same evolution with uniform operation choice; both evaluate exactly ``evaluations`` candidates (equal search cost),
and the random rule still tracks and reports the priorities (what OP-NAS *would* have learnt).

**Reward** (:func:`reward`). A credited child's reward is its **gain** over its parent, ``fitness(child) -
fitness(parent)``, divided by the spread (population std) of the gains of every credited mutation so far, its own
included (``1`` instead of the spread when fewer than two, or all equal). Dividing by a spread makes rewards
scale-free: ``ucb_c`` and ``temperature`` mean the same for a fitness in accuracy points or in negative losses, and
the rewards stay of the exploration term's order (1). It is the spread of *gains*, not of fitnesses: the random
start-up backbones have no parent (they enter no spread), and they differ from the start far more than a mutation
changes its parent, so dividing by the spread of all fitnesses (the earlier rule) shrank every reward: in the mini
study's searches run with it, 10 of 12 operations' mean rewards were within ±0.33 against an exploration term of
0.9-2.6, and the priorities tracked how often an operation had been tried, not its merit.

**Credit.** Only the operation a mutation **introduced** (inserted or substituted,
:func:`~atb.autobert_zero.graph.mutate`) is credited. A mutation that introduces none — a leaf swap, a deletion, a
type switch between attention and convolution, a kernel change — credits none (its record's ``op`` is ``None``) and
its gain enters no spread; its child is a candidate like any other.

**Unstable candidates are discarded**, as the paper discards candidates whose training is unstable: a fitness that
is NaN or infinite, or that raises ``FloatingPointError``, does not abort the search. The candidate's record is
logged with ``fitness: null`` and ``discarded: "<reason>"`` (the logs hold no NaN); it counts toward
``evaluations`` (both rules pay for what they evaluate), its key stays taken (never proposed again), and it is never
a parent, never the best and never credited. While no candidate is kept (the start discarded, say), children have no
parent to come from and proposals are random candidates. A search whose every evaluation was discarded raises
``RuntimeError`` (there is no best).

**Evolution.** The start (usually BERT: :func:`~atb.autobert_zero.space.standard_candidate`) is evaluated first,
then ``init_random`` random candidates, then children: a parent is drawn by roulette (:func:`atb.search.roulette`)
among the ``population`` fittest kept candidates so far that meet the latency constraint, and one of its layers is
mutated (:func:`~atb.autobert_zero.space.mutate_candidate`); the operation that mutation introduced is credited
with the child's reward once the child is evaluated. A proposal is **rejected without evaluation** when its
predicted latency exceeds ``max_latency_ms`` or when it duplicates an evaluated candidate
(:func:`~atb.autobert_zero.space.candidate_key`: graphs equal up to canonical form are one); after
``max_rejections`` rejections in a row the search stops early (``exhausted``) with a warning. The start is
evaluated even above the latency limit (it is the reference point) but is a parent only when nothing else is
feasible.

**Resume and determinism** follow :mod:`atb.efficientbert.search`: evaluations are appended, one flushed line each,
to a JSONL log whose header (written atomically) holds everything the proposals depend on — configuration (but
``evaluations``: more of them extend a search), start, kernels, ``describe`` (fitness and latency descriptions)
and ``algorithm`` (:data:`ALGORITHM`: the reward, credit and discard rules, so that a log of an earlier rule is
refused at once rather than at its first differing proposal). A log whose header differs raises ``ValueError``
naming the differing keys rather than mixing two searches. The random numbers of proposal ``i`` come from
``(seed, i)`` alone (:func:`atb.sampler.step_rng`), and the priorities are rebuilt from the history, so proposal
``i`` depends only on evaluations ``0..i-1``: rerunning replays the logged evaluations, discarded ones included,
without calling ``fitness`` (checking each is what would be proposed) and continues, and an interrupted run,
resumed, has exactly the uninterrupted run's history.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..records import write_json_atomic
from ..sampler import step_rng
from ..search import SearchLog, describe_fitness, evaluate, roulette
from .graph import MAX_NODES, OPS, ChooseOp, MutationFailed, uniform_op
from .space import (
    SWITCH_PROB, Candidate, LayerSpec, candidate_key, candidate_problems, candidate_strings, mutate_candidate,
    parse_candidate, random_candidate,
)

Fitness = Callable[[Candidate], float]  # higher is better
LatencyFn = Callable[[Candidate], float]  # predicted milliseconds
MUTATION_RULES: tuple[str, ...] = ("op-priority", "random")
_STREAM = "autobert-zero-opnas"
ALGORITHM = ("op-nas/2: reward = gain / std(credited gains); credit to the introduced operation only; "
             "non-finite fitness discarded")
_PREFIX = "autobert_zero.search field"


# ---------------------------------------------------------------------------------------------- config
@dataclass
class OpNasConfig:
    """Everything OP-NAS does; every field is part of the log header but ``evaluations``."""

    evaluations: int = 100  # candidates evaluated, the start included: the search cost, equal for both rules
    population: int = 10  # parents: the top-k feasible candidates so far
    init_random: int = 0  # random candidates evaluated after the start, before evolution (first parents' diversity)
    mutation: str = "op-priority"  # "op-priority" (OP-NAS) or "random" (the baseline: uniform operation choice)
    ucb_c: float = 1.0  # exploration weight of the UCB term (rewards are in units of the credited gains' std)
    temperature: float = 0.5  # operation sampling: probabilities ∝ exp(priority / temperature)
    max_nodes: int = MAX_NODES  # operations per attention graph (>= 3: the smallest valid one, Q · (Kᵀ · V), has 3)
    max_rejections: int = 200  # rejected proposals in a row (latency, duplicate, no valid mutation) before stopping
    switch_prob: float = SWITCH_PROB  # probability that a mutation switches a layer between attention and conv
    seed: int = 0
    max_latency_ms: float | None = None  # the latency constraint (None: unconstrained)

    def __post_init__(self) -> None:
        for name, least in (("evaluations", 1), ("population", 1), ("init_random", 0), ("max_nodes", 3),
                            ("max_rejections", 1)):
            value = getattr(self, name)
            if _not_int(value) or value < least:
                raise ValueError(f"{_PREFIX} {name!r} must be an integer >= {least}, got {value!r}")
        if _not_int(self.seed):
            raise ValueError(f"{_PREFIX} 'seed' must be an integer, got {self.seed!r}")
        if self.mutation not in MUTATION_RULES:
            raise ValueError(f"{_PREFIX} 'mutation' must be one of {MUTATION_RULES}, got {self.mutation!r}")
        if not _number(self.ucb_c) or self.ucb_c < 0:
            raise ValueError(f"{_PREFIX} 'ucb_c' must be a finite number >= 0, got {self.ucb_c!r}")
        if not _number(self.temperature) or self.temperature <= 0:
            raise ValueError(f"{_PREFIX} 'temperature' must be a finite number > 0, got {self.temperature!r}")
        if not _number(self.switch_prob) or not 0 <= self.switch_prob <= 1:
            raise ValueError(f"{_PREFIX} 'switch_prob' must be in [0, 1], got {self.switch_prob!r}")
        if self.max_latency_ms is not None and (not _number(self.max_latency_ms) or self.max_latency_ms <= 0):
            raise ValueError(f"{_PREFIX} 'max_latency_ms' must be None or a number > 0, got {self.max_latency_ms!r}")

    def feasible(self, latency_ms: float) -> bool:
        return self.max_latency_ms is None or latency_ms <= self.max_latency_ms


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


# -------------------------------------------------------------------------------------------- priority
class OpPriority:
    """Per-operation credit: how many mutations introduced it, their mean reward, and its UCB priority."""

    def __init__(self, ops: Iterable[str] = OPS, ucb_c: float = 1.0, temperature: float = 0.5):
        self.ucb_c, self.temperature = ucb_c, temperature
        self.counts: dict[str, int] = dict.fromkeys(ops, 0)
        self.sums: dict[str, float] = dict.fromkeys(self.counts, 0.0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def mean_reward(self, op: str) -> float:
        n = self.counts.get(op, 0)
        return self.sums[op] / n if n else 0.0

    def ucb(self, op: str) -> float:
        """``mean_reward + ucb_c * sqrt(2 ln N / n_op)``; ``inf`` for an operation never credited."""
        n = self.counts.get(op, 0)
        if n == 0:
            return math.inf
        return self.mean_reward(op) + self.ucb_c * math.sqrt(2 * math.log(self.total) / n)

    def choose(self, ops: Sequence[str], rng: random.Random) -> str:
        """OP-NAS's operation choice among ``ops``: an untried one first (uniformly), else ``∝ exp(ucb / T)``."""
        ops = list(ops)
        untried = [op for op in ops if self.counts.get(op, 0) == 0]
        if untried:
            return rng.choice(untried)
        scores = [self.ucb(op) for op in ops]
        top = max(scores)
        return rng.choices(ops, weights=[math.exp((s - top) / self.temperature) for s in scores])[0]

    def update(self, op: str, reward: float) -> None:
        self.counts[op] = self.counts.get(op, 0) + 1
        self.sums[op] = self.sums.get(op, 0.0) + float(reward)

    def to_dict(self) -> dict[str, dict]:
        """``{op: {"priority", "mean_reward", "count"}}`` (``priority`` None for an operation never credited)."""
        return {op: {"priority": None if self.counts[op] == 0 else self.ucb(op), "mean_reward": self.mean_reward(op),
                     "count": self.counts[op]} for op in self.counts}


def reward(gain: float, gains: Sequence[float]) -> float:
    """``gain / std(gains)``: a mutation's gain (child's fitness - parent's) in units of the spread (population std)
    of the gains of every credited mutation so far, ``gain`` itself included; ``1`` instead of the spread when
    fewer than two gains or all equal.

    Why a spread: rewards become scale-free (``ucb_c`` and ``temperature`` mean the same whatever the fitness's
    units) and stay of the order of UCB's exploration term. Why of *gains*: the candidates without a parent (the
    random start-up backbones) never enter it, so an outlier among them cannot shrink every reward the way the
    spread of all fitnesses did; the unit is what one mutation typically changes."""
    spread = statistics.pstdev(gains) if len(gains) >= 2 else 0.0
    return gain / (spread or 1.0)


# --------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class OpNasRecord:
    """One evaluated candidate, as logged. ``source``: ``start``, ``random`` or ``mutation``; ``parent``: the index
    of the mutated candidate; ``op``: the operation the mutation introduced (credited with its reward; ``None``:
    none); ``rejected``: proposals rejected before this one was accepted; ``discarded``: why the candidate was
    discarded (its fitness was not finite; ``fitness`` is then ``None``), ``None`` for a kept one."""

    index: int
    candidate: Candidate
    fitness: float | None
    latency_ms: float
    feasible: bool
    source: str
    parent: int | None = None
    op: str | None = None
    rejected: int = 0
    discarded: str | None = None
    seconds: float = field(default=0.0, compare=False)  # timings differ between runs; equal records need not
    cpu_seconds: float = field(default=0.0, compare=False)
    details: dict = field(default_factory=dict, compare=False)

    @property
    def layers(self) -> list[str]:
        return candidate_strings(self.candidate)

    @property
    def kept(self) -> bool:
        """Not discarded: its fitness is a finite number."""
        return self.discarded is None

    def record(self) -> dict:
        return {"index": self.index, "layers": self.layers, "key": candidate_key(self.candidate),
                "fitness": self.fitness, "latency_ms": self.latency_ms, "feasible": self.feasible,
                "source": self.source, "parent": self.parent, "op": self.op, "rejected": self.rejected,
                "discarded": self.discarded, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
                "details": self.details}

    @classmethod
    def from_record(cls, r: dict) -> OpNasRecord:
        return cls(r["index"], parse_candidate(r["layers"]), r["fitness"], r["latency_ms"], r["feasible"],
                   r["source"], r["parent"], r["op"], r["rejected"], r.get("discarded"), r["seconds"],
                   r["cpu_seconds"], r.get("details") or {})


# ---------------------------------------------------------------------------------------------- search
@dataclass
class _Proposal:
    candidate: Candidate
    source: str
    parent: int | None = None
    op: str | None = None
    rejected: int = 0


class _OpNas:
    """The search's state: the evaluated history, the keys taken, the operation priorities rebuilt from it (and the
    credited gains, whose spread is the rewards' unit)."""

    def __init__(self, start: Candidate, latency_fn: LatencyFn, cfg: OpNasConfig, kernels: tuple[int, ...]):
        self.start, self.latency_fn, self.cfg, self.kernels = start, latency_fn, cfg, kernels
        self.history: list[OpNasRecord] = []
        self.taken: set[str] = set()  # discarded candidates' keys too: an unstable candidate is not proposed again
        self.gains: list[float] = []
        self.priority = OpPriority(OPS, cfg.ucb_c, cfg.temperature)

    def add(self, record: OpNasRecord) -> None:
        self.history.append(record)
        self.taken.add(candidate_key(record.candidate))
        if record.kept and record.op is not None and record.parent is not None:
            self.gains.append(record.fitness - self.history[record.parent].fitness)
            self.priority.update(record.op, reward(self.gains[-1], self.gains))

    def _choose_op(self) -> ChooseOp:
        return self.priority.choose if self.cfg.mutation == "op-priority" else uniform_op

    def ranked(self) -> list[OpNasRecord]:
        """The ``population`` fittest kept candidates, feasible ones only when there are any."""
        kept = [r for r in self.history if r.kept]
        pool = [r for r in kept if r.feasible] or kept
        return sorted(pool, key=lambda r: -r.fitness)[: self.cfg.population]  # stable: ties keep their order

    def _draw(self, i: int, rng: random.Random, parents: list[OpNasRecord]) -> _Proposal:
        if i <= self.cfg.init_random or not parents:  # no parents: every candidate so far was discarded
            return _Proposal(random_candidate(len(self.start), rng, self.kernels, max_nodes=self.cfg.max_nodes),
                             "random")
        parent = roulette(parents, rng)
        child, op = mutate_candidate(parent.candidate, rng, kernels=self.kernels, choose_op=self._choose_op(),
                                     max_nodes=self.cfg.max_nodes, switch_prob=self.cfg.switch_prob)
        return _Proposal(child, "mutation", parent.index, op)

    def propose(self, i: int) -> _Proposal | None:
        """Proposal ``i``, from ``(seed, i)`` and evaluations ``0..i-1`` alone; ``None`` when ``max_rejections``
        proposals in a row were rejected."""
        if i == 0:
            return _Proposal(self.start, "start")
        rng, parents = step_rng(self.cfg.seed, i, _STREAM), self.ranked()
        for rejected in range(self.cfg.max_rejections):
            try:
                proposal = self._draw(i, rng, parents)
            except MutationFailed:
                continue
            if (candidate_key(proposal.candidate) not in self.taken
                    and self.cfg.feasible(float(self.latency_fn(proposal.candidate)))):
                proposal.rejected = rejected
                return proposal
        return None


@dataclass
class OpNasResult:
    """The search: every evaluation in order (discarded ones included), the fittest feasible kept one, the operation
    priorities at the end (``{op: {"priority", "mean_reward", "count"}}``, :meth:`OpPriority.to_dict`; the same
    fields for both mutation rules: under ``"random"`` they are what OP-NAS would have learnt from the same
    credit)."""

    history: list[OpNasRecord]
    best: OpNasRecord
    op_priority: dict[str, dict]
    cpu_seconds: float  # process time of the fitness calls, from the log (replayed evaluations included)
    replayed: int  # evaluations read back from the log instead of run
    exhausted: bool  # stopped early: max_rejections proposals in a row were rejected
    config: OpNasConfig
    log_path: Path

    @property
    def kept(self) -> list[OpNasRecord]:
        """The evaluations with a finite fitness, in order."""
        return [r for r in self.history if r.kept]

    @property
    def discarded(self) -> int:
        """How many evaluations were discarded (a non-finite fitness)."""
        return sum(not r.kept for r in self.history)

    def to_dict(self) -> dict:
        return {"best": {"layers": self.best.layers, "fitness": self.best.fitness, "latency_ms": self.best.latency_ms,
                         "index": self.best.index},
                "history": [r.record() for r in self.history], "op_priority": self.op_priority,
                "cpu_seconds": self.cpu_seconds, "evaluated": len(self.history), "discarded": self.discarded,
                "replayed": self.replayed, "exhausted": self.exhausted, "config": asdict(self.config),
                "algorithm": ALGORITHM, "log": str(self.log_path)}

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict(), allow_nan=False)


def _check_start(start: Sequence[LayerSpec], cfg: OpNasConfig) -> Candidate:
    start = tuple(start)
    found = candidate_problems(start, cfg.max_nodes)
    if found:
        raise ValueError(f"run_opnas: the start is not a valid candidate: {'; '.join(found)}")
    return start


class _Unstable(Exception):
    """The fitness was not a finite number: the candidate is discarded (``reason``; ``details``: what the fitness
    reported beside it)."""

    def __init__(self, reason: str, details: dict):
        super().__init__(reason)
        self.reason, self.details = reason, details


class _Guarded:
    """``fitness`` as :func:`atb.search.evaluate` calls it, with a non-finite value or a ``FloatingPointError``
    raised as :class:`_Unstable` (``evaluate`` itself raises a ``ValueError`` that a bug could raise too)."""

    def __init__(self, fitness):
        self.fitness = fitness

    def evaluate(self, candidate: Candidate) -> dict:
        try:
            if hasattr(self.fitness, "evaluate"):
                details = dict(self.fitness.evaluate(candidate))
                value = details.pop("fitness")
            else:
                value, details = self.fitness(candidate), {}
            value = float(value)
        except FloatingPointError as error:
            raise _Unstable(f"FloatingPointError: {error}", {}) from error
        if not math.isfinite(value):
            raise _Unstable(f"non-finite fitness ({value})", details)
        return {**details, "fitness": value}


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (also inside dicts and lists) replaced by ``None``: the log holds no
    NaN (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def evaluate_or_discard(fitness, candidate: Candidate, label: str) -> tuple[float | None, dict, float, float,
                                                                             str | None]:
    """:func:`atb.search.evaluate` of ``candidate``, or, when its fitness is NaN, infinite or raises
    ``FloatingPointError``, ``None`` and the reason to discard it: ``(fitness, details, seconds, cpu_seconds,
    discarded)``. Non-finite numbers among the details become ``None``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        value, details, seconds, cpu_seconds = evaluate(_Guarded(fitness), candidate, label=label)
    except _Unstable as unstable:
        return (None, _json_safe(unstable.details), time.perf_counter() - wall, time.process_time() - cpu,
                unstable.reason)
    return value, _json_safe(details), seconds, cpu_seconds, None


def _replay(record: dict, proposal: _Proposal, path: Path) -> OpNasRecord:
    """The logged evaluation, after checking it is what this search proposes at its index."""
    logged = (record["layers"], record["source"], record["parent"], record["op"])
    proposed = (candidate_strings(proposal.candidate), proposal.source, proposal.parent, proposal.op)
    if logged != proposed:
        raise ValueError(f"{path}: evaluation {record['index']} is logged as {logged} but this search proposes "
                         f"{proposed}: the log does not belong to this search")
    return OpNasRecord.from_record(record)


def run_opnas(start: Sequence[LayerSpec], fitness: Fitness, latency_fn: LatencyFn, cfg: OpNasConfig,
              log_path: str | Path, *, kernels: Sequence[int], describe: dict | None = None) -> OpNasResult:
    """Run (or resume, or replay) OP-NAS from ``start`` for ``cfg.evaluations`` evaluations.

    ``fitness(candidate) -> float`` (higher is better; objects with ``evaluate``/``describe`` as in
    :mod:`atb.fitness` also work); ``latency_fn(candidate) -> ms``; ``kernels``: the convolution kernel sizes a
    mutation may choose; ``describe``: what the log header records about fitness and latency (default: their
    ``describe()`` or names). A fitness that is NaN or infinite, or raises ``FloatingPointError``, discards the
    candidate (:func:`evaluate_or_discard`, with a warning; the module docstring says what follows). Rerunning with
    the same arguments replays ``log_path`` (see the module docstring).
    """
    start, kernels = _check_start(start, cfg), tuple(kernels)
    if not kernels:
        raise ValueError("run_opnas: kernels must list at least one convolution kernel size")
    if describe is None:
        describe = {"fitness": describe_fitness(fitness), "latency": describe_fitness(latency_fn)}
    config = {k: v for k, v in asdict(cfg).items() if k != "evaluations"}  # more evaluations extend a search
    log = SearchLog(log_path, {"config": config, "start": candidate_strings(start), "kernels": list(kernels),
                               "describe": describe, "algorithm": ALGORITHM}, key=lambda r: r["index"])
    state = _OpNas(start, latency_fn, cfg, kernels)
    replayed, exhausted = 0, False
    for i in range(cfg.evaluations):
        proposal = state.propose(i)
        if proposal is None:
            exhausted = True
            warnings.warn(f"OP-NAS: {cfg.max_rejections} proposals in a row rejected (latency, duplicate or no valid "
                          f"mutation); the search stops after {i} evaluations", stacklevel=2)
            break
        if i in log.records:
            state.add(_replay(log.records[i], proposal, log.path))
            replayed += 1
            continue
        latency = float(latency_fn(proposal.candidate))
        if i == 0 and not cfg.feasible(latency):
            warnings.warn(f"OP-NAS: the start's latency {latency:.3g} ms exceeds max_latency_ms="
                          f"{cfg.max_latency_ms}; it is evaluated as the reference point only", stacklevel=2)
        label = f"[{', '.join(candidate_strings(proposal.candidate))}]"
        value, details, seconds, cpu, discarded = evaluate_or_discard(fitness, proposal.candidate, label)
        if discarded is not None:
            warnings.warn(f"OP-NAS: evaluation {i} {label} discarded: {discarded}", stacklevel=2)
        record = OpNasRecord(i, proposal.candidate, value, latency, cfg.feasible(latency), proposal.source,
                             proposal.parent, proposal.op, proposal.rejected, discarded, seconds, cpu, details)
        log.append(record.record())
        state.add(record)
    ranked = state.ranked()
    if not ranked:
        raise RuntimeError(f"OP-NAS: all {len(state.history)} evaluations were discarded (non-finite fitness); "
                           f"there is no best candidate (see {log.path})")
    return OpNasResult(state.history, ranked[0], state.priority.to_dict(), sum(r.cpu_seconds for r in state.history),
                       replayed, exhausted, cfg, Path(log_path))
