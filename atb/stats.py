"""Uncertainty of a paired comparison: fine-tuning seeds × a paired bootstrap of the dev examples.

A claim such as "searched models beat default-rule BERTs at equal latency" compares two models fine-tuned with
the same budget, each with several seeds, on the same dev examples. Two sources of noise move the difference of
their scores: which seed fine-tuning got (large for tiny models and small budgets) and which dev examples happen
to be in the set (large for RTE's 277 examples). :func:`paired_bootstrap` resamples both at once — the seeds
(the same resampled seed indices for both models: seed *k* of A and of B share data order and head init) and
the examples (the same resampled indices for both models) — and recomputes the task metric on every draw, so
metrics that are not per-example means (Matthews correlation, F1, Pearson) are handled exactly.
``scipy.stats.bootstrap`` resamples one axis only, hence this short two-level version; the 95 % interval is the
percentile interval of the draws.

**Pooling model pairs.** A claim usually rests on several model pairs (e.g. searched vs default-rule at each
speedup constraint and objective). Each pair contributes one :class:`TaskRuns` per task; :func:`paired_bootstrap`
averages all of them, so the difference is the mean over pairs of each pair's task-mean difference. Runs that were
scored on the same dev examples (every model on one task) carry the same ``key``: each draw resamples that task's
examples once and applies the same indices to every pair, since the dev set is shared and its sampling noise is
common to all pairs. Seeds are resampled once per draw for everything (seed *k* shares a data order across models).
The model pairs themselves are not resampled: an interval says whether *these* models differ beyond fine-tuning
and dev-set noise, not how the difference would generalise to other architectures (a few pairs are too few to
resample).

One model's score gets the same kind of interval (:func:`score_interval`, a :class:`TaskRuns` without ``b``), and
:class:`ModelRuns` holds one model's per-seed predictions on one task, keyed by the seed, so two models are paired
by seed value (:meth:`ModelRuns.against`).

A claim is then decided from the interval (:func:`verdict`): above zero — reproduced; below zero — refuted;
containing zero — not testable at this budget. :func:`kendall_tau_interval` gives the same kind of interval for a
ranking agreement (architectures resampled).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

REPRODUCED, REFUTED, NOT_TESTABLE = "reproduced", "refuted", "not testable"

Metric = Callable[[np.ndarray, np.ndarray], float]  # (predictions, labels) -> score


@dataclass(frozen=True)
class Interval:
    """A mean difference (or statistic) with its 95 % bootstrap interval and what it was computed over."""

    difference: float
    ci95: tuple[float, float]
    n: int  # pairs (seeds × tasks or models) the difference averages over
    n_boot: int

    def to_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}


@dataclass(frozen=True)
class TaskRuns:
    """One task's dev predictions of two models: ``a[s]`` / ``b[s]`` are the predictions of seed ``s``
    (the same seeds, in the same order, for both), ``labels`` the gold labels, ``metric`` the task's score.

    ``b`` is ``None`` for one model's score (:func:`score_interval`). Runs with the same ``key`` (not ``None``) were
    scored on the same dev examples: a bootstrap draw resamples them with the same indices (module docstring)."""

    metric: Metric
    a: Sequence[np.ndarray]
    b: Sequence[np.ndarray] | None
    labels: np.ndarray
    key: str | None = None

    def __post_init__(self) -> None:
        if not len(self.a) or (self.b is not None and len(self.a) != len(self.b)):
            raise ValueError(f"paired runs need the same number of seeds (>= 1) on both sides, got "
                             f"{len(self.a)} and {None if self.b is None else len(self.b)}")
        n = len(self.labels)
        for side in (*self.a, *(self.b or ())):
            if len(side) != n:
                raise ValueError(f"every seed's predictions must cover the {n} dev examples, got {len(side)}")


@dataclass(frozen=True)
class ModelRuns:
    """One model's dev predictions on one task: ``runs[seed]`` (per-example, aligned with ``labels``) for each
    fine-tuning seed, and the task's ``metric``. Pair two models with :meth:`against` (by seed value)."""

    metric: Metric
    runs: Mapping[int, np.ndarray]
    labels: np.ndarray

    @property
    def seeds(self) -> list[int]:
        return sorted(self.runs)

    def alone(self, key: str | None = None, seeds: Sequence[int] | None = None) -> TaskRuns:
        """This model's runs for :func:`score_interval` (``seeds``: a subset, default all)."""
        seeds = self.seeds if seeds is None else list(seeds)
        return TaskRuns(self.metric, [np.asarray(self.runs[s]) for s in seeds], None, np.asarray(self.labels), key)

    def against(self, other: ModelRuns, key: str | None = None, seeds: Sequence[int] | None = None) -> TaskRuns:
        """Paired runs of this model (``a``) and ``other`` (``b``) on the seeds both have (or ``seeds``); both must
        have been scored on the same dev examples."""
        if not np.array_equal(np.asarray(self.labels), np.asarray(other.labels)):
            raise ValueError(f"paired models must be scored on the same dev examples (key {key!r}): the labels differ")
        seeds = sorted(set(self.runs) & set(other.runs)) if seeds is None else list(seeds)
        if not seeds:
            raise ValueError(f"no common seeds to pair (key {key!r}): {self.seeds} vs {other.seeds}")
        return TaskRuns(self.metric, [np.asarray(self.runs[s]) for s in seeds],
                        [np.asarray(other.runs[s]) for s in seeds], np.asarray(self.labels), key)


def _difference(task: TaskRuns, seeds: np.ndarray, examples: np.ndarray) -> float:
    labels = np.asarray(task.labels)[examples]
    a = np.mean([task.metric(np.asarray(task.a[s])[examples], labels) for s in seeds])
    b = np.mean([task.metric(np.asarray(task.b[s])[examples], labels) for s in seeds])
    return float(a - b)


def _score(task: TaskRuns, seeds: np.ndarray, examples: np.ndarray) -> float:
    labels = np.asarray(task.labels)[examples]
    return float(np.mean([task.metric(np.asarray(task.a[s])[examples], labels) for s in seeds]))


def _bootstrap(tasks: Sequence[TaskRuns], statistic: Callable[[TaskRuns, np.ndarray, np.ndarray], float],
               n_boot: int, seed: int) -> Interval:
    """The mean of ``statistic`` over ``tasks`` and its 95 % percentile interval: each draw resamples the seeds
    (jointly for all tasks) and each task's dev examples (once per ``key``; every keyless task on its own)."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("a bootstrap needs at least one task")
    n_seeds = len(tasks[0].a)
    if any(len(t.a) != n_seeds for t in tasks):
        raise ValueError("every task needs the same number of seeds")
    sizes: dict[str, int] = {}
    for t in tasks:
        if t.key is not None and sizes.setdefault(t.key, len(t.labels)) != len(t.labels):
            raise ValueError(f"runs with key {t.key!r} share their dev examples, but have {sizes[t.key]} and "
                             f"{len(t.labels)}")
    rng = np.random.default_rng(seed)
    observed = float(np.mean([statistic(t, np.arange(n_seeds), np.arange(len(t.labels))) for t in tasks]))
    draws = np.empty(n_boot)
    for i in range(n_boot):
        seeds = rng.integers(0, n_seeds, n_seeds)
        shared: dict[str, np.ndarray] = {}
        values = []
        for t in tasks:
            n = len(t.labels)
            if t.key is None:
                examples = rng.integers(0, n, n)
            elif (examples := shared.get(t.key)) is None:
                examples = shared[t.key] = rng.integers(0, n, n)
            values.append(statistic(t, seeds, examples))
        draws[i] = np.mean(values)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(observed, (float(lo), float(hi)), n_seeds * len(tasks), n_boot)


def paired_bootstrap(tasks: Sequence[TaskRuns], *, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Mean over ``tasks`` of (seed-mean score of A − seed-mean score of B), with a 95 % interval from resampling
    seeds (jointly for all tasks) and each task's dev examples (paired between A and B, and shared by the tasks
    of one ``key``). ``n`` = seeds × tasks."""
    tasks = list(tasks)
    if any(t.b is None for t in tasks):
        raise ValueError("paired_bootstrap needs both models' runs (b) for every task")
    return _bootstrap(tasks, _difference, n_boot, seed)


def score_interval(tasks: Sequence[TaskRuns], *, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Mean over ``tasks`` of model A's seed-mean score (``b`` is ignored), with the same two-level 95 % interval as
    :func:`paired_bootstrap`: how far the score could move with other seeds and other dev examples."""
    return _bootstrap(tasks, _score, n_boot, seed)


def mean_interval(differences: Sequence[float], *, n_boot: int = 10000, seed: int = 0) -> Interval:
    """The mean of independent paired differences (e.g. one per model pair) with a 95 % bootstrap interval."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("mean_interval needs at least one difference")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(float(values.mean()), (float(lo), float(hi)), int(values.size), n_boot)


def t_interval(differences: Sequence[float]) -> Interval:
    """The mean of a few independent paired differences with a Student-t 95 % interval (``n_boot`` 0). For a
    handful of values (search seeds) a bootstrap's percentile interval is too narrow; the t interval is not."""
    from scipy import stats as scipy_stats

    values = np.asarray(differences, dtype=float)
    if values.size < 2:
        raise ValueError("t_interval needs at least two differences")
    mean, sem = float(values.mean()), float(scipy_stats.sem(values))
    if sem == 0.0:
        return Interval(mean, (mean, mean), int(values.size), 0)
    lo, hi = scipy_stats.t.interval(0.95, values.size - 1, loc=mean, scale=sem)
    return Interval(mean, (float(lo), float(hi)), int(values.size), 0)


def _rank_interval(correlation: Callable, name: str, x: Sequence[float], y: Sequence[float], n_boot: int,
                   seed: int) -> Interval:
    """A rank correlation of ``x`` and ``y`` with a 95 % interval from resampling the items (pairs)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"{name} needs two equally long rankings of >= 3 items, got {x.size}, {y.size}")
    rng = np.random.default_rng(seed)
    draws = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a draw of one repeated item has no ranking (nan): left out below
        for _ in range(n_boot):
            idx = rng.integers(0, x.size, x.size)
            value = correlation(x[idx], y[idx]).statistic
            if np.isfinite(value):
                draws.append(value)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(float(correlation(x, y).statistic), (float(lo), float(hi)), int(x.size), n_boot)


def kendall_tau_interval(x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Kendall's τ of ``x`` and ``y`` with a 95 % interval from resampling the architectures (pairs)."""
    return _rank_interval(kendalltau, "kendall_tau_interval", x, y, n_boot, seed)


def spearman_interval(x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Spearman's ρ of ``x`` and ``y`` with a 95 % interval from resampling the items (pairs)."""
    return _rank_interval(spearmanr, "spearman_interval", x, y, n_boot, seed)


def detectable_tau(n: int) -> float:
    """The smallest Kendall τ whose 95 % interval can exclude 0 with ``n`` ranked items: 1.96 standard deviations
    of τ when the rankings are unrelated, ``sqrt(2 (2n + 5) / (9 n (n - 1)))`` (Kendall 1938's normal
    approximation). A bootstrap interval over few items is wider still, so this is a lower bound: a ranking study
    of ``n`` architectures cannot decide a weaker agreement, whatever it measures."""
    if n < 2:
        raise ValueError(f"a ranking needs at least 2 items, got {n}")
    return float(1.96 * np.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))))


def items_to_detect(tau: float, *, limit: int = 1000) -> int:
    """The fewest ranked items at which a Kendall τ of ``tau`` can have a 95 % interval above 0
    (:func:`detectable_tau`): how many architectures a ranking study needs for the agreement it expects."""
    if not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    for n in range(3, limit + 1):
        if detectable_tau(n) < tau:
            return n
    raise ValueError(f"no study of up to {limit} items can detect tau = {tau}")


def shifted(interval: Interval, by: float) -> Interval:
    """``interval`` with ``by`` added to the difference and both bounds: a claim "A is at most ``t`` worse than B"
    (non-inferiority) is ``verdict(shifted(interval, t))``."""
    lo, hi = interval.ci95
    return Interval(interval.difference + by, (lo + by, hi + by), interval.n, interval.n_boot)


def verdict(interval: Interval, *, margin: float = 0.0) -> str:
    """``reproduced`` when the whole interval lies above ``margin``, ``refuted`` when it lies below ``-margin``
    (the claim's direction is the sign of the difference), ``not testable`` when it cannot decide."""
    lo, hi = interval.ci95
    if lo > margin:
        return REPRODUCED
    if hi < -margin:
        return REFUTED
    return NOT_TESTABLE
