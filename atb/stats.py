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

A claim is then decided from the interval (:func:`verdict`): above zero — reproduced; below zero — refuted;
containing zero — not testable at this budget. :func:`kendall_tau_interval` gives the same kind of interval for a
ranking agreement (architectures resampled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau

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
    (the same seeds, in the same order, for both), ``labels`` the gold labels, ``metric`` the task's score."""

    metric: Metric
    a: Sequence[np.ndarray]
    b: Sequence[np.ndarray]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.a) != len(self.b) or not len(self.a):
            raise ValueError(f"paired runs need the same number of seeds (>= 1) on both sides, got "
                             f"{len(self.a)} and {len(self.b)}")
        n = len(self.labels)
        for side in (*self.a, *self.b):
            if len(side) != n:
                raise ValueError(f"every seed's predictions must cover the {n} dev examples, got {len(side)}")


def _difference(task: TaskRuns, seeds: np.ndarray, examples: np.ndarray) -> float:
    labels = np.asarray(task.labels)[examples]
    a = np.mean([task.metric(np.asarray(task.a[s])[examples], labels) for s in seeds])
    b = np.mean([task.metric(np.asarray(task.b[s])[examples], labels) for s in seeds])
    return float(a - b)


def paired_bootstrap(tasks: Sequence[TaskRuns], *, n_boot: int = 1000, seed: int = 0) -> Interval:
    """Mean over ``tasks`` of (seed-mean score of A − seed-mean score of B), with a 95 % interval from resampling
    seeds (jointly for all tasks) and each task's dev examples (paired between A and B)."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("paired_bootstrap needs at least one task")
    n_seeds = len(tasks[0].a)
    if any(len(t.a) != n_seeds for t in tasks):
        raise ValueError("every task needs the same number of seeds")
    rng = np.random.default_rng(seed)
    observed = float(np.mean([_difference(t, np.arange(n_seeds), np.arange(len(t.labels))) for t in tasks]))
    draws = np.empty(n_boot)
    for i in range(n_boot):
        seeds = rng.integers(0, n_seeds, n_seeds)
        draws[i] = np.mean([_difference(t, seeds, rng.integers(0, len(t.labels), len(t.labels))) for t in tasks])
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(observed, (float(lo), float(hi)), n_seeds * len(tasks), n_boot)


def mean_interval(differences: Sequence[float], *, n_boot: int = 10000, seed: int = 0) -> Interval:
    """The mean of independent paired differences (e.g. one per model pair) with a 95 % bootstrap interval."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("mean_interval needs at least one difference")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(float(values.mean()), (float(lo), float(hi)), int(values.size), n_boot)


def kendall_tau_interval(x: Sequence[float], y: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Kendall's τ of ``x`` and ``y`` with a 95 % interval from resampling the architectures (pairs)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"kendall_tau_interval needs two equally long rankings of >= 3 items, got {x.size}, {y.size}")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        tau = kendalltau(x[idx], y[idx]).statistic
        if np.isfinite(tau):  # a draw of one repeated item has no ranking
            draws.append(tau)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Interval(float(kendalltau(x, y).statistic), (float(lo), float(hi)), int(x.size), n_boot)


def verdict(interval: Interval, *, margin: float = 0.0) -> str:
    """``reproduced`` when the whole interval lies above ``margin``, ``refuted`` when it lies below ``-margin``
    (the claim's direction is the sign of the difference), ``not testable`` when it cannot decide."""
    lo, hi = interval.ci95
    if lo > margin:
        return REPRODUCED
    if hi < -margin:
        return REFUTED
    return NOT_TESTABLE
