"""EfficientBERT's search of the FFN expressions, in three stages (Dong et al., 2021; official ``ffn_search.py`` and
``utils/action_space.py``).

A **candidate** is one :class:`~atb.efficientbert.expression.LayerFFN` per layer (expression and size). The
space is far too large to enumerate (trees of height up to 7 per layer, 16 sizes per layer), so the official code
never walks it freely: every proposal is a *mutation of a starting point*, and three stages move the starting
point and narrow what may change:

1. **expression and size together.** Start: every layer is BERT's FFN (:data:`BERT_FFN`). A proposal gives each
   layer its own mutation of the start's expression, its size possibly redrawn (``mutate(sizes=True)``), and is
   kept only when the whole candidate's parameter count lies in ``[min_params, max_params]``. (The official
   ``sample_entire_individual`` mutates, per layer, BERT's FFN at a uniformly drawn size: its initial expressions
   are BERT's FFN at all 16 sizes. Here each of the ``mutation_steps`` mutations redraws the size with probability
   1/2.)
2. **expressions refined, sizes fixed.** Start: stage 1's best; sizes: the start's. The official stage 2 has two
   starting points, hard-coded in ``ffn_search.py`` (``init_expr`` under ``--stage2``): stage 1's result and a
   second candidate of the same sizes (BERT's FFN in every layer; the code does not say where it comes from, and
   here it is stage 1's runner-up). ``sample_entire_individual(is_stage2=True)`` picks, for each layer of each
   proposal, that layer's expression in one of them at random and mutates it, the sizes always the first's; the
   starting points are evaluated first. So here: each layer of a proposal mutates (``sizes=False``) its
   expression in one of stage 1's top ``stage2_top_k`` candidates, drawn per layer and proposal, and the top-k
   themselves, at the start's sizes, are evaluated first. Every candidate has the start's sizes (and parameter
   count); ``stage2_top_k = 1`` mutates stage 1's best alone.
3. **sizes searched, expressions fixed.** Start: stage 2's best. Each layer keeps its expression and redraws its
   ``(stacks, ratio)`` from ``STACKS x RATIOS`` under the parameter range, as the official
   ``sample_entire_individual2`` picks each layer among its initial expressions, which are stage 2's best at every
   size. With ``top_k > 1`` (not in the official code; its default 1 is the official setting) each layer picks its
   expression among the top-k stage-2 candidates' expressions of that layer. The official code scores these with
   weights inherited from a weight-sharing supernet trained on random stage-3 candidates (its ``train2``; see
   :func:`stage3_size_sampler`); here that is the caller's ``fitness``.

The start of each stage is evaluated first (it is the reference point), even when its parameter count lies
outside the range (BERT's FFN usually does in stage 1); every other candidate lies in the range, and a stage's
``best`` is the fittest candidate in the range (the start only when nothing else is).

**Duplicates** are rejected twice: by the candidate's string, and by :func:`function_hash` (two expressions that
compute the same function, ``mul(a, b)`` and ``mul(b, a)``, are one candidate; sizes are part of the function).
The official stage 2 hashes at a fixed size (``get_hash_key_acc``); here the sizes are fixed during stage 2
anyway, so hashing at them rejects the same duplicates.

**Samplers** pick which proposals are evaluated. The first ``init_samples`` evaluations (the starts included)
are plain unique random proposals; then

* ``"lanas"`` (the official ``SearchPhase`` / ``LearningPhase``, after LaNAS, Wang et al. 2019): every
  ``train_interval`` samples, a tree of binary classifiers is fitted on the evaluated candidates. A node's samples
  are split by their **true label**, as the official ``LearningPhase`` does: those with fitness >= the node's
  median go to the good child, the rest to the bad one, down to the tree's height (one level more at each of
  ``tree_levels`` samples, as the official ``height_level``). The node's classifier, fitted to the same labels
  (scikit-learn's class-balanced ``LogisticRegression`` on a one-hot encoding of each layer's tokens and size,
  where the official code runs LightGBM tuned by hyperopt and refits it until it beats chance on held-out samples),
  only judges new proposals. A node whose labels are all one side, or whose classifier predicts one class for all
  its samples (no constraint; the official code would refit), is a leaf. A path is chosen from the root by **UCB**:
  at each node the child with the larger ``mean z-fitness + ucb_c * sqrt(2 ln n_node / n_child)`` (fitness
  z-scored so that ``ucb_c`` does not depend on its scale). The official ``ucb_select`` compares the children's
  median fitness with no exploration term (``get_ucb``), so it always takes the good child; ``ucb_c = 0`` does the
  same here. New proposals are drawn by rejection, accepted when every classifier on the path sends them the
  chosen way (the official ``constrain``); after ``max_rejections`` draws, a plain unique random proposal is taken
  instead (the official fallback).
* ``"evolution"`` (not in the official code): parents are the top ``population`` candidates so far (in the range),
  a child is, with probability ``explore_rate``, a fresh random proposal, else a mutation of a roulette-chosen
  parent (each layer mutated with probability 1/2 by the stage's rule, at least one layer), resampled until unique
  and in the range.

Every loop is bounded: when not even a random unique candidate in the range is found in ``max_rejections``
draws, the stage stops early (``exhausted``) with a warning, rather than spinning.

**Resume and determinism** follow :mod:`atb.search`: each stage appends its evaluations to a JSONL log whose
header holds everything the candidates depend on (configuration, stage, start, stage 2's other starting points,
the expressions stages 2-3 draw from, fitness and parameter-count descriptions, the start's parameter count). The
search proceeds in **rounds** (``train_interval`` proposals for LaNAS, ``population`` for evolution; the classifier
tree is fitted once per round); a round's random numbers come from ``(seed, stage, round)`` alone
(:func:`atb.sampler.step_rng`) and its proposals depend only on the results of earlier rounds. So rerunning the
same call replays the logged evaluations without calling the fitness and continues where an interrupted run
stopped; rerunning with more ``samples`` extends a stage. ``cpu_seconds`` is the process time of the evaluations,
stored per evaluation in the log, so a resumed search still counts the evaluations of the run it resumes.

**Warm-up**: the official code distils a *fixed* supernet, every layer four stacked gelu blocks at full width
(:func:`atb.efficientbert.supernet.fixed_supernet_candidate`; ``pretrain_supernet.sh``), from which stages 1-2
initialise each candidate before training it briefly, and from which stage 3 starts. Random candidates are
trained only in stage 3 (``train2``: the weight-sharing supernet on random stage-3 candidates around stage 2's
best, :func:`stage3_size_sampler`), so only once stage 2's best is known: ``run_search(..., last_stage=2)``, then
that training, then ``run_search`` again (stages 1-2 replay from their logs).
"""

from __future__ import annotations

import bisect
import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ..records import write_json_atomic
from ..sampler import step_rng
from ..search import SearchLog, describe_fitness, evaluate, roulette
from .expression import (
    ACTIVATIONS, BINARY, INPUT, LINEAR, MAX_HEIGHT, MIN_HEIGHT, RATIOS, STACKS, Expr, LayerFFN, function_hash,
    mutate, parse, problems,
)

Candidate = tuple[LayerFFN, ...]  # one FFN per layer
Fitness = Callable[[Candidate], float]  # higher is better
ParamsFn = Callable[[Candidate], float]  # the whole candidate's parameter count
SAMPLERS: tuple[str, ...] = ("lanas", "evolution")
STAGES: tuple[int, ...] = (1, 2, 3)


# ------------------------------------------------------------------------------------------ candidates
def candidate_strings(candidate: Sequence[LayerFFN]) -> list[str]:
    """The layers' expressions in the official string form, e.g. ``["linear1_1(gelu(linear1_1(x,wb1)),wb2)", ...]``."""
    return [str(ffn) for ffn in candidate]


def format_candidate(candidate: Sequence[LayerFFN]) -> str:
    """One line, the layers joined by ``", "`` as the official logs write an individual."""
    return ", ".join(candidate_strings(candidate))


def parse_candidate(text: str | Sequence[str]) -> Candidate:
    """A candidate from its layers' strings (a list, or one ``", "``-joined line as :func:`format_candidate` writes)."""
    if isinstance(text, str):
        parts, depth, current = [], 0, []
        for char in text:  # split on the commas between layers, not those inside an expression
            depth += (char == "(") - (char == ")")
            if char == "," and depth == 0:
                parts.append("".join(current))
                current = []
            else:
                current.append(char)
        parts.append("".join(current))
        text = [p.strip() for p in parts]
    return tuple(parse(t) for t in text)


# ---------------------------------------------------------------------------------------------- config
@dataclass
class ExpressionSearchConfig:
    """Everything the three-stage search does. Defaults follow the official ``ffn_search.py`` where it has one."""

    samples: tuple[int, ...] = (200, 200, 200)  # evaluations per stage (its start included); official: unbounded
    init_samples: int = 80  # random evaluations before the sampler takes over (official n_init_samples)
    sampler: str = "lanas"  # "lanas" (official) or "evolution"
    train_interval: int = 10  # LaNAS: samples per classifier tree (official train_interval)
    tree_levels: tuple[int, ...] = (400, 800, 1600, 3200)  # LaNAS: the tree grows a level past each (height_level)
    min_leaf: int = 5  # LaNAS: a node with fewer than 2 * min_leaf samples is not split
    ucb_c: float = 0.5  # LaNAS: exploration weight of the UCB path selection (in units of fitness std)
    population: int = 20  # evolution: parents and candidates per round
    explore_rate: float = 0.2  # evolution: probability that a child is a fresh random proposal
    mutation_steps: int = 3  # mutations chained per layer in a random proposal (official: mutUniform, ...Replacement,
    #                          ...Insert in turn)
    stage2_top_k: int = 2  # stage 2: each layer mutates its expression in one of stage 1's top-k (official: 2 starts)
    top_k: int = 1  # stage 3: each layer picks its expression among the top-k stage-2 candidates' (official: 1)
    min_params: float | None = None  # the parameter range of stages 1 and 3 (None: unbounded)
    max_params: float | None = None
    min_height: int = MIN_HEIGHT  # expression heights allowed (official --min_height / --max_height)
    max_height: int = MAX_HEIGHT
    max_rejections: int = 2000  # draws before a sampler falls back (and a random proposal gives up)
    seed: int = 0

    def __post_init__(self) -> None:
        self.samples = tuple(self.samples)
        self.tree_levels = tuple(self.tree_levels)
        if len(self.samples) != len(STAGES) or any(_not_int(n) or n < 1 for n in self.samples):
            raise ValueError(f"ExpressionSearchConfig.samples must be {len(STAGES)} integers >= 1 (one per stage), "
                             f"got {self.samples}")
        for name in ("init_samples", "train_interval", "min_leaf", "population", "mutation_steps", "stage2_top_k",
                     "top_k", "max_rejections"):
            if _not_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"ExpressionSearchConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"ExpressionSearchConfig.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        levels = self.tree_levels
        if any(_not_int(n) or n < 1 for n in levels) or list(levels) != sorted(set(levels)):
            raise ValueError("ExpressionSearchConfig.tree_levels must be increasing integers >= 1, "
                             f"got {self.tree_levels}")
        if not (isinstance(self.ucb_c, (int, float)) and math.isfinite(self.ucb_c) and self.ucb_c >= 0):
            raise ValueError(f"ExpressionSearchConfig.ucb_c must be a finite number >= 0, got {self.ucb_c!r}")
        if not (isinstance(self.explore_rate, (int, float)) and 0.0 <= self.explore_rate <= 1.0):
            raise ValueError(f"ExpressionSearchConfig.explore_rate must be in [0, 1], got {self.explore_rate!r}")
        for name in ("min_params", "max_params"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"ExpressionSearchConfig.{name} must be None or a number >= 0, got {value!r}")
        if self.min_params is not None and self.max_params is not None and self.min_params > self.max_params:
            raise ValueError(f"ExpressionSearchConfig.min_params ({self.min_params}) exceeds max_params "
                             f"({self.max_params})")
        for name in ("min_height", "max_height"):
            if _not_int(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"ExpressionSearchConfig.{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.min_height > self.max_height:
            raise ValueError(f"ExpressionSearchConfig.min_height ({self.min_height}) exceeds max_height "
                             f"({self.max_height})")
        if _not_int(self.seed):
            raise ValueError(f"ExpressionSearchConfig.seed must be an integer, got {self.seed!r}")

    def in_range(self, params: float) -> bool:
        return ((self.min_params is None or params >= self.min_params)
                and (self.max_params is None or params <= self.max_params))

    def round_size(self) -> int:
        """Proposals per round: one classifier tree (LaNAS) or one generation (evolution)."""
        return self.train_interval if self.sampler == "lanas" else self.population


def _count(params: Any) -> int | float:
    """A parameter count as a plain JSON number (``params_fn`` may return numpy or torch scalars)."""
    value = float(params)
    if not math.isfinite(value):
        raise ValueError(f"params_fn returned {params!r}: a parameter count must be finite")
    return int(value) if value.is_integer() else value


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


# --------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Evaluated:
    """One evaluated candidate, as logged. ``source`` says how it was proposed: ``start``, ``top-k`` (stage 2: one of
    stage 1's other top candidates, at the start's sizes), ``random``, ``lanas``, ``evolution``, or ``fallback`` (a
    sampler's bounded rejection gave up: a random proposal instead)."""

    candidate: Candidate
    fitness: float
    params: float
    hash: str
    round: int
    index: int  # position in the stage's history
    source: str
    in_range: bool
    seconds: float = field(compare=False)  # timings differ between runs; equal records need not share them
    cpu_seconds: float = field(compare=False)
    details: dict = field(default_factory=dict, compare=False)

    @property
    def expressions(self) -> list[str]:
        return candidate_strings(self.candidate)

    def record(self) -> dict:
        return {"index": self.index, "round": self.round, "source": self.source, "expressions": self.expressions,
                "hash": self.hash, "fitness": self.fitness, "params": self.params, "in_range": self.in_range,
                "seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "details": self.details}

    @classmethod
    def from_record(cls, r: dict) -> Evaluated:
        return cls(parse_candidate(r["expressions"]), r["fitness"], r["params"], r["hash"], r["round"], r["index"],
                   r["source"], r["in_range"], r["seconds"], r["cpu_seconds"], r.get("details") or {})


# -------------------------------------------------------------------------------------- what a stage moves
class _Moves:
    """What a stage may propose: random proposals around its start, and neighbours of a parent. ``choices``: per
    layer, the expressions a random proposal starts from (stage 2: its mutations' bases; stage 3: taken as they
    are); stage 1 starts from the start's."""

    def __init__(self, stage: int, start: Candidate, cfg: ExpressionSearchConfig, choices: list[list[Expr]]):
        self.stage, self.start, self.cfg, self.choices = stage, start, cfg, choices

    def _mutate(self, ffn: LayerFFN, rng: random.Random) -> LayerFFN:
        return mutate(ffn, rng, sizes=self.stage == 1, min_height=self.cfg.min_height, max_height=self.cfg.max_height)

    def _redraw(self, layer: int, rng: random.Random) -> LayerFFN:
        return LayerFFN(rng.choice(self.choices[layer]), rng.choice(STACKS), rng.choice(RATIOS))

    def random(self, rng: random.Random) -> Candidate:
        """Stages 1-2: each layer its own chain of ``mutation_steps`` mutations of the start's layer (stage 2: of an
        expression drawn among the layer's choices, at the start's size; the official ``sample_individual`` applies
        mutUniform, mutNodeReplacement and mutInsert in turn). Stage 3: each layer an expression among its choices
        at a uniformly drawn size."""
        if self.stage == 3:
            return tuple(self._redraw(i, rng) for i in range(len(self.start)))
        layers = []
        for i, ffn in enumerate(self.start):
            if self.stage == 2 and len(self.choices[i]) > 1:
                ffn = LayerFFN(rng.choice(self.choices[i]), ffn.stacks, ffn.ratio)
            for _ in range(self.cfg.mutation_steps):
                ffn = self._mutate(ffn, rng)
            layers.append(ffn)
        return tuple(layers)

    def neighbour(self, parent: Candidate, rng: random.Random) -> Candidate:
        """Each layer, with probability 1/2 (at least one), mutated once (stages 1-2) or redrawn (stage 3)."""
        forced = rng.randrange(len(parent))
        return tuple((self._redraw(i, rng) if self.stage == 3 else self._mutate(ffn, rng))
                     if i == forced or rng.random() < 0.5 else ffn for i, ffn in enumerate(parent))


# ------------------------------------------------------------------------------------------ LaNAS's tree
_TOKENS: tuple[str, ...] = (INPUT, *ACTIVATIONS, *BINARY, "wb1", "wb2")
_TOKEN_ID = {t: i for i, t in enumerate(_TOKENS)}
_MAX_TOKENS = 32  # per layer; the official encoding pads to 20 deap tokens


def encode(candidate: Sequence[LayerFFN]) -> np.ndarray:
    """The classifiers' features: per layer, a one-hot of the pre-order token at each of ``_MAX_TOKENS`` positions
    (the official code feeds the padded token ids themselves to LightGBM; a linear model needs them one-hot) and
    one-hots of ``stacks`` and ``ratio`` (the official stage 3 encodes just the size)."""
    width = _MAX_TOKENS * len(_TOKENS) + len(STACKS) + len(RATIOS)
    x = np.zeros(len(candidate) * width, dtype=np.float32)
    for layer, ffn in enumerate(candidate):
        base = layer * width
        for pos, node in enumerate(list(ffn.expr.nodes())[:_MAX_TOKENS]):
            token = f"wb{node.weight}" if node.op == LINEAR else node.op
            x[base + pos * len(_TOKENS) + _TOKEN_ID[token]] = 1.0
        x[base + _MAX_TOKENS * len(_TOKENS) + STACKS.index(ffn.stacks)] = 1.0
        x[base + _MAX_TOKENS * len(_TOKENS) + len(STACKS) + RATIOS.index(ffn.ratio)] = 1.0
    return x


class _Node:
    """A node of LaNAS's tree: its samples, and (inner nodes) the classifier of their labels (fitness >= the node's
    median) and two children: the good one holds exactly the samples labelled good, the bad one the rest (the true
    label splits, as the official ``LearningPhase``; the classifier only judges new proposals, :func:`_accepts`)."""

    def __init__(self, x: np.ndarray, z: np.ndarray, height: int, min_leaf: int):
        self.n, self.mean = len(z), float(z.mean())
        self.z = z  # the node's samples' z-fitness (which samples went where)
        self.model: LogisticRegression | None = None
        self.good: _Node | None = None
        self.bad: _Node | None = None
        if height <= 0 or self.n < 2 * min_leaf:
            return
        labels = z >= np.median(z)
        if labels.all() or not labels.any():  # all tie: nothing to learn
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x, labels)
        predicted = model.predict(x).astype(bool)
        if predicted.all() or not predicted.any():  # one class for every sample: no constraint, a leaf
            return
        self.model = model
        self.good = _Node(x[labels], z[labels], height - 1, min_leaf)
        self.bad = _Node(x[~labels], z[~labels], height - 1, min_leaf)

    def select(self, c: float) -> list[tuple[LogisticRegression, bool]]:
        """The UCB path from this node to a leaf: ``(classifier, side)`` pairs, side True for the good child."""
        path, node = [], self
        while node.model is not None:
            ucb = {side: child.mean + c * math.sqrt(2 * math.log(node.n) / child.n)
                   for side, child in ((True, node.good), (False, node.bad))}
            side = ucb[True] >= ucb[False]
            path.append((node.model, side))
            node = node.good if side else node.bad
        return path


def _accepts(path: list[tuple[LogisticRegression, bool]], x: np.ndarray) -> bool:
    return all(bool(model.predict(x[None])[0]) == side for model, side in path)


# -------------------------------------------------------------------------------------------------- stage
@dataclass
class StageResult:
    """One stage: its start, every evaluation in order, the best candidate in the parameter range."""

    stage: int
    start: Candidate
    history: list[Evaluated]
    best: Evaluated
    cpu_seconds: float  # process time of the evaluations, from the log (resumed evaluations included)
    replayed: int  # evaluations read back from the log instead of run
    exhausted: bool  # stopped early: no unique candidate in the range could be found
    log_path: Path
    # run_search: ``{"stage", "top_k", "rank", "ranks"}``: the start is the previous stage's ``rank`` (1, its best) of
    # its top ``top_k``; the stage draws expressions from those of ``ranks`` (fewer than top_k when fewer were found)
    start_from: dict | None = None

    def top(self, k: int) -> list[Evaluated]:
        """The ``k`` fittest evaluated candidates in the range (ties: the earlier first)."""
        return _ranked(self.history)[:k]

    def to_dict(self) -> dict:
        return {"stage": self.stage,
                "best": {"expressions": self.best.expressions, "fitness": self.best.fitness,
                         "params": self.best.params},
                "history": [e.record() for e in self.history], "cpu_seconds": self.cpu_seconds,
                "start": candidate_strings(self.start), "start_from": self.start_from,
                "evaluated": len(self.history), "replayed": self.replayed, "exhausted": self.exhausted,
                "log": str(self.log_path)}


def _ranked(history: Sequence[Evaluated]) -> list[Evaluated]:
    """In-range candidates by fitness (stable: ties keep evaluation order); all of them if none is in range."""
    pool = [e for e in history if e.in_range] or list(history)
    return sorted(pool, key=lambda e: -e.fitness)


class _Stage:
    """The state of one stage's search: what was evaluated, and the proposals of each round."""

    def __init__(self, stage: int, start: Candidate, params_fn: ParamsFn, cfg: ExpressionSearchConfig,
                 choices: list[list[Expr]], more_starts: Sequence[Candidate] = ()):
        self.stage, self.start, self.params_fn, self.cfg = stage, start, params_fn, cfg
        self.more_starts = list(more_starts)  # evaluated right after the start (stage 2: stage 1's other top-k)
        self.moves = _Moves(stage, start, cfg, choices)
        self.history: list[Evaluated] = []
        self.taken: set[str] = set()  # candidate strings evaluated or proposed
        self.taken_hashes: set[str] = set()
        self._hashes: dict[str, str] = {}
        self.exhausted = False

    def hash(self, candidate: Candidate) -> str:
        key = format_candidate(candidate)
        if key not in self._hashes:
            self._hashes[key] = function_hash(candidate)
        return self._hashes[key]

    def _fresh(self, candidate: Candidate) -> bool:
        """Not a string seen before, and in the parameter range (the cheap checks first)."""
        return format_candidate(candidate) not in self.taken and self.cfg.in_range(_count(self.params_fn(candidate)))

    def _take(self, candidate: Candidate) -> bool:
        """Claim ``candidate`` if its function is new (the costly check, after the sampler's own)."""
        h = self.hash(candidate)
        if h in self.taken_hashes:
            self.taken.add(format_candidate(candidate))  # never hash it again
            return False
        self.taken.add(format_candidate(candidate))
        self.taken_hashes.add(h)
        return True

    def _random(self, rng: random.Random) -> Candidate | None:
        for _ in range(self.cfg.max_rejections):
            candidate = self.moves.random(rng)
            if self._fresh(candidate) and self._take(candidate):
                return candidate
        return None

    def propose(self, round_: int) -> list[tuple[Candidate, str]]:
        """The proposals of ``round_``, from ``(seed, stage, round)`` and the earlier rounds' results alone."""
        cfg, n = self.cfg, len(self.history)
        rng = step_rng(cfg.seed, round_, f"efficientbert-stage{self.stage}")
        remaining = cfg.samples[self.stage - 1] - n
        proposals: list[tuple[Candidate, str]] = []
        warm = n < cfg.init_samples
        size = min(cfg.round_size(), remaining, cfg.init_samples - n if warm else remaining)
        if round_ == 0:
            self._take(self.start)
            proposals.append((self.start, "start"))
            for other in self.more_starts:  # like the start: evaluated whatever their parameter count
                if len(proposals) < size and format_candidate(other) not in self.taken and self._take(other):
                    proposals.append((other, "top-k"))
        path = parents = None
        if not warm and cfg.sampler == "lanas":
            x = np.stack([encode(e.candidate) for e in self.history])
            y = np.array([e.fitness for e in self.history])
            z = (y - y.mean()) / (y.std() or 1.0)
            height = 1 + bisect.bisect_left(cfg.tree_levels, n)  # the official np.searchsorted(height_level, n) + 1
            path = _Node(x, z, height, cfg.min_leaf).select(cfg.ucb_c)
        if not warm and cfg.sampler == "evolution":
            parents = _ranked(self.history)[: cfg.population]
        while len(proposals) < size:
            if warm:
                candidate, source = self._random(rng), "random"
            elif path is not None:
                candidate, source = self._lanas(path, rng), "lanas"
            else:
                candidate, source = self._evolve(parents, rng)
            if candidate is None:
                candidate, source = self._random(rng), "fallback"
            if candidate is None:
                self.exhausted = True
                warnings.warn(f"stage {self.stage}: no unique candidate in the parameter range after "
                              f"{cfg.max_rejections} draws; the stage stops after {n + len(proposals)} evaluations",
                              stacklevel=3)
                break
            proposals.append((candidate, source))
        return proposals

    def _lanas(self, path: list[tuple[LogisticRegression, bool]], rng: random.Random) -> Candidate | None:
        """Rejection sampling into the UCB-chosen leaf (``None`` after ``max_rejections`` draws)."""
        for _ in range(self.cfg.max_rejections):
            candidate = self.moves.random(rng)
            if self._fresh(candidate) and _accepts(path, encode(candidate)) and self._take(candidate):
                return candidate
        return None

    def _evolve(self, parents: list[Evaluated], rng: random.Random) -> tuple[Candidate | None, str]:
        if rng.random() < self.cfg.explore_rate:
            return self._random(rng), "random"
        for _ in range(self.cfg.max_rejections):
            child = self.moves.neighbour(roulette(parents, rng).candidate, rng)
            if self._fresh(child) and self._take(child):
                return child, "evolution"
        return None, "evolution"


def _check_start(start: Sequence[LayerFFN], cfg: ExpressionSearchConfig, what: str) -> Candidate:
    start = tuple(start)
    if not start or not all(isinstance(f, LayerFFN) for f in start):
        raise ValueError(f"{what} must be a non-empty sequence of LayerFFN (one per layer), got {start!r}")
    for layer, ffn in enumerate(start):
        found = problems(ffn, cfg.min_height, cfg.max_height)
        if found:
            raise ValueError(f"{what}: layer {layer}'s {ffn} is not a valid candidate: {'; '.join(found)}")
    return start


def run_stage(stage: int, start: Sequence[LayerFFN], fitness: Fitness, params_fn: ParamsFn,
              cfg: ExpressionSearchConfig, log_path: str | Path, *,
              choices: Sequence[Sequence[Expr | LayerFFN | str]] | None = None,
              more_starts: Sequence[Sequence[LayerFFN]] = ()) -> StageResult:
    """Run (or resume, or replay) one stage from ``start`` for ``cfg.samples[stage - 1]`` evaluations.

    ``fitness(candidate) -> float`` (higher is better) and ``params_fn(candidate) -> number`` are the caller's.
    ``choices`` (stage 3 only): per layer, the expressions it may take (default: the start's own); sizes are
    ignored. ``more_starts`` (stage 2 only; :func:`run_search` passes stage 1's ranks 2..``stage2_top_k``): other
    starting points; each is evaluated right after the start at the start's sizes, and each layer of a random
    proposal mutates that layer's expression in the start or one of them, drawn per layer and proposal (module
    docstring). Rerunning with the same arguments replays ``log_path`` (see the module docstring).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    start = _check_start(start, cfg, f"stage {stage}'s start")
    if choices is not None and stage != 3:
        raise ValueError("choices are stage 3's (expressions to pick per layer); stages 1-2 mutate their start")
    more_starts = [_check_start(other, cfg, f"stage {stage}'s more_starts[{i}]") for i, other in enumerate(more_starts)]
    if more_starts and stage != 2:
        raise ValueError("more_starts are stage 2's (stage 1's other top candidates); stages 1 and 3 have one start")
    if any(len(other) != len(start) for other in more_starts):
        raise ValueError(f"more_starts need {len(start)} layers each, as the start")
    # the other starting points at the start's sizes (stage 2 fixes the sizes to the start's)
    more_starts = [tuple(LayerFFN(f.expr, s.stacks, s.ratio) for f, s in zip(other, start)) for other in more_starts]
    if choices is None:
        exprs = [list(dict.fromkeys(c[i].expr for c in (start, *more_starts))) for i in range(len(start))]
    else:
        exprs = [list(dict.fromkeys(parse(c).expr if isinstance(c, str) else getattr(c, "expr", c) for c in layer))
                 for layer in choices]
    if len(exprs) != len(start) or not all(exprs):
        raise ValueError(f"choices need a non-empty list of expressions for each of the {len(start)} layers")
    log = SearchLog(log_path, {
        "stage": stage, "start": candidate_strings(start), "start_params": _count(params_fn(start)),
        "choices": [[str(e) for e in layer] for layer in exprs] if stage == 3 else None,
        "more_starts": [candidate_strings(other) for other in more_starts] if stage == 2 else None,
        "fitness": describe_fitness(fitness), "params_fn": describe_fitness(params_fn),
        "config": {k: v for k, v in asdict(cfg).items() if k != "samples"},  # more samples extend a stage
    }, key=lambda r: ", ".join(r["expressions"]))
    state = _Stage(stage, start, params_fn, cfg, exprs, more_starts)
    replayed, round_ = 0, 0
    while len(state.history) < cfg.samples[stage - 1] and not state.exhausted:
        for candidate, source in state.propose(round_):
            key, index = format_candidate(candidate), len(state.history)
            if key in log.records:
                record = log.records[key]
                if record["round"] != round_ or record["index"] != index:
                    raise ValueError(f"{log.path}: [{key}] is logged as evaluation {record['index']} of round "
                                     f"{record['round']} but proposed as {index} of round {round_}: the log does "
                                     "not belong to this search")
                state.history.append(Evaluated.from_record(record))
                replayed += 1
                continue
            value, details, seconds, cpu = evaluate(fitness, candidate, label=f"[{format_candidate(candidate)}]")
            params = _count(params_fn(candidate))
            evaluated = Evaluated(candidate, value, params, state.hash(candidate), round_, index, source,
                                  cfg.in_range(params), seconds, cpu, details)
            log.append(evaluated.record())
            state.history.append(evaluated)
        round_ += 1
    ranked = _ranked(state.history)
    if not ranked[0].in_range:
        warnings.warn(f"stage {stage}: no evaluated candidate lies in the parameter range "
                      f"[{cfg.min_params}, {cfg.max_params}]; its best is out of range", stacklevel=2)
    return StageResult(stage, start, state.history, ranked[0], sum(e.cpu_seconds for e in state.history), replayed,
                       state.exhausted, Path(log_path))


def random_proposal(stage: int, start: Sequence[LayerFFN], params_fn: ParamsFn, cfg: ExpressionSearchConfig,
                    rng: random.Random, *, choices: Sequence[Sequence[Expr | LayerFFN | str]] | None = None
                    ) -> Candidate:
    """One random proposal of ``stage`` around ``start`` (as the stage's first samples are drawn) whose parameter
    count lies in the range; ``start`` itself when none is found in ``cfg.max_rejections`` draws. ``choices``
    (stages 2-3): per layer, the expressions to start from (stage 2) or pick (stage 3); default the start's."""
    start = tuple(start)
    exprs = [[f.expr] for f in start] if choices is None else [
        [parse(c).expr if isinstance(c, str) else getattr(c, "expr", c) for c in layer] for layer in choices]
    moves = _Moves(stage, start, cfg, exprs)
    for _ in range(cfg.max_rejections):
        candidate = moves.random(rng)
        if cfg.in_range(_count(params_fn(candidate))):
            return candidate
    return start


def stage3_size_sampler(start: Sequence[LayerFFN], params_fn: ParamsFn, cfg: ExpressionSearchConfig, seed: int, *,
                        choices: Sequence[Sequence[Expr | LayerFFN | str]] | None = None
                        ) -> Callable[[int], Candidate]:
    """``sample(step)``: a random stage-3 candidate around ``start`` (usually stage 2's best): every layer keeps its
    expression (or picks among ``choices``, as stage 3 with ``top_k > 1``) at a uniformly drawn ``(stacks, ratio)``,
    redrawn until the parameter count lies in ``cfg``'s range (``start`` itself after ``cfg.max_rejections``
    draws). What the official ``train_epoch`` trains the weight-sharing supernet on in stage 3 (a new candidate at
    every step, each layer's expression at one of the 16 sizes, until in the parameter range). A function of
    ``step`` alone (the generator is seeded from ``(seed, step)``), so a resumed distillation draws the same."""
    start = tuple(start)

    def sample(step: int) -> Candidate:
        return random_proposal(3, start, params_fn, cfg, step_rng(seed, step, "efficientbert-stage3-sizes"),
                               choices=choices)

    return sample


# ------------------------------------------------------------------------------------------------- search
@dataclass
class SearchResult:
    """The stages run, in order; ``best`` is the last one's best (stage 3's: the searched architecture)."""

    stages: list[StageResult]
    config: ExpressionSearchConfig

    @property
    def best(self) -> Evaluated:
        return self.stages[-1].best

    @property
    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds for s in self.stages)

    def to_dict(self) -> dict:
        """``{"stages": [{"stage", "best": {"expressions", "fitness", ...}, "history", "cpu_seconds", ...}], ...}``."""
        return {"stages": [s.to_dict() for s in self.stages], "cpu_seconds": self.cpu_seconds,
                "config": asdict(self.config)}

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict(), allow_nan=False)


def stage2_starts(stage1: StageResult, k: int) -> list[Candidate]:
    """Stage 1's top-k candidates, the fittest first: stage 2's start and its other starting points."""
    return [e.candidate for e in stage1.top(k)]


def stage3_choices(stage2: StageResult, k: int) -> list[list[Expr]]:
    """Per layer, the distinct expressions of stage 2's top-k candidates, the fittest first."""
    top = stage2.top(k)
    return [list(dict.fromkeys(e.candidate[i].expr for e in top)) for i in range(len(stage2.start))]


def run_search(layers_start: Sequence[LayerFFN], fitness: Fitness | Sequence[Fitness], params_fn: ParamsFn,
               cfg: ExpressionSearchConfig, log_dir: str | Path, *, last_stage: int = STAGES[-1]) -> SearchResult:
    """EfficientBERT's stages 1 -> 2 -> 3, logged to ``log_dir/stage{1,2,3}.jsonl``; rerunning resumes. Stage 2
    starts from stage 1's best and mutates the expressions of stage 1's top ``cfg.stage2_top_k`` (all evaluated
    first, at the best's sizes); stage 3 starts from stage 2's best, its expressions from stage 2's top
    ``cfg.top_k``. Each later stage's ``start_from`` records which of the previous stage's ranks it draws on.

    ``layers_start``: usually ``[parse(BERT_FFN)] * layers``. ``fitness``: one callable for all stages, or one per
    stage (the paper scores stage 3 with a supernet's inherited weights, stages 1-2 by short training); with
    ``last_stage`` < 3 the search stops after that stage (the official stage 3 first trains a weight-sharing
    supernet around stage 2's best: run to stage 2, train, rerun to stage 3, and stages 1-2 replay), and a
    sequence of fitnesses may stop there too.
    """
    if last_stage not in STAGES:
        raise ValueError(f"last_stage must be one of {STAGES}, got {last_stage!r}")
    fitnesses = [fitness] * len(STAGES) if callable(fitness) or hasattr(fitness, "evaluate") else list(fitness)
    if len(fitnesses) not in (len(STAGES), last_stage):
        raise ValueError(f"fitness must be one callable or one per stage ({len(STAGES)}, or {last_stage} with "
                         f"last_stage={last_stage}), got {len(fitnesses)}")
    log_dir = Path(log_dir)
    start = _check_start(layers_start, cfg, "layers_start")
    stages: list[StageResult] = []
    for stage in STAGES[:last_stage]:
        choices, more_starts, start_from = None, (), None
        if stage == 2:
            top = stage2_starts(stages[-1], cfg.stage2_top_k)
            start, more_starts = top[0], top[1:]
            start_from = {"stage": 1, "top_k": cfg.stage2_top_k, "rank": 1, "ranks": list(range(1, len(top) + 1))}
        if stage == 3:
            choices = stage3_choices(stages[-1], cfg.top_k)
            ranks = list(range(1, len(stages[-1].top(cfg.top_k)) + 1))
            start_from = {"stage": 2, "top_k": cfg.top_k, "rank": 1, "ranks": ranks}
        result = run_stage(stage, start, fitnesses[stage - 1], params_fn, cfg, log_dir / f"stage{stage}.jsonl",
                           choices=choices, more_starts=more_starts)
        result.start_from = start_from
        stages.append(result)
        start = result.best.candidate
    return SearchResult(stages, cfg)
