"""Which sub-architectures a one-shot training step trains (notes §4).

The paper samples **one** architecture per step, each hyper-parameter independently and uniformly
(``UniformSampler``). Once-for-all / BigNAS report that the *sandwich rule* (largest + smallest + k
random, gradients accumulated) and *in-place distillation* (the largest sub-model teaches the others)
help, and once-for-all trains by *progressive shrinking* (the largest network first, smaller ones admitted
step by step: ``ProgressiveSampler``); they are offered as options and reported separately.

A sampler is a pure function of ``(seed, step)``: every data-parallel rank draws the same architectures
at a step without communicating, and a resumed run continues the exact same sequence, with no sampler
state to checkpoint.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from .space import Arch, Range, SearchSpace

# The progressive sampler admits the whole space after this share of the run (the rest trains on all of it).
PROGRESSIVE_RAMP = 0.5


def step_rng(seed: int, step: int, stream: str = "arch") -> random.Random:
    """A generator determined by ``(seed, step, stream)`` alone (string seeds hash the same in every process)."""
    return random.Random(f"{stream}:{seed}:{step}")


@dataclass(frozen=True)
class UniformSampler:
    """The paper's sampler: ``k`` architectures per step, each drawn uniformly per hyper-parameter."""

    space: SearchSpace
    seed: int = 0
    k: int = 1

    def archs(self, step: int) -> list[Arch]:
        rng = step_rng(self.seed, step)
        return [self.space.sample(rng) for _ in range(self.k)]


@dataclass(frozen=True)
class SandwichSampler:
    """Largest + smallest + ``k`` random architectures per step (gradients accumulated over them).

    With ``inplace_distillation`` the trainer uses the largest sub-model's (detached) outputs as the
    targets of the others, as in BigNAS; the largest is always first in the list for that reason.
    """

    space: SearchSpace
    seed: int = 0
    k: int = 2
    inplace_distillation: bool = False

    def archs(self, step: int) -> list[Arch]:
        rng = step_rng(self.seed, step)
        return [self.space.largest(), self.space.smallest()] + [self.space.sample(rng) for _ in range(self.k)]


def shrunk(space: SearchSpace, fraction: float) -> SearchSpace:
    """The top of ``space``: every size within ``fraction`` of the way from its largest value down to its smallest
    (0: the largest architecture alone; 1: the whole space), on the space's own grid."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")

    def top(r: Range) -> Range:
        return Range(r.high - round((len(r) - 1) * fraction) * r.step, r.high, r.step)

    sizes = {name: top(getattr(space, name)) for name in ("layers", "hidden", "ffn", "heads")}
    if space.objective == "mlm":  # qkv follows the heads
        heads = sizes["heads"]
        qkv = Range(space.head_size * heads.low, space.head_size * heads.high, space.head_size * heads.step)
    else:
        qkv = top(space.qkv)
    return dataclasses.replace(space, **sizes, qkv=qkv)


@dataclass(frozen=True)
class ProgressiveSampler:
    """Once-for-all's progressive shrinking, for one-shot training from a warm start: ``k`` architectures per
    step drawn uniformly from :func:`shrunk` ``(space, step / (ramp * steps))``, so the run starts on the largest
    (warm-started) network and admits smaller sizes evenly until, after ``ramp`` of the run, it samples the
    whole space like the paper's sampler."""

    space: SearchSpace
    steps: int
    seed: int = 0
    k: int = 1
    ramp: float = PROGRESSIVE_RAMP

    def archs(self, step: int) -> list[Arch]:
        rng = step_rng(self.seed, step)
        part = shrunk(self.space, min(1.0, step / max(1.0, self.ramp * self.steps)))
        return [part.sample(rng) for _ in range(self.k)]


@dataclass(frozen=True)
class FixedSampler:
    """One fixed architecture every step: further training of an extracted sub-model."""

    arch: Arch

    def archs(self, step: int) -> list[Arch]:
        return [self.arch]


def make_sampler(name: str, space: SearchSpace, seed: int = 0, k: int | None = None,
                 inplace_distillation: bool = False, steps: int | None = None
                 ) -> UniformSampler | SandwichSampler | ProgressiveSampler:
    """Build a sampler from its config name: ``"uniform"`` (the paper), ``"sandwich"`` or ``"progressive"`` (which
    needs the run's ``steps``)."""
    if inplace_distillation and name != "sandwich":
        raise ValueError("sampler.inplace_distillation needs sampler.name = 'sandwich' (a largest sub-model)")
    if name == "uniform":
        return UniformSampler(space, seed, k or 1)
    if name == "sandwich":
        return SandwichSampler(space, seed, 2 if k is None else k, inplace_distillation)
    if name == "progressive":
        if not steps:
            raise ValueError("the progressive sampler needs the run's number of steps")
        return ProgressiveSampler(space, steps, seed, k or 1)
    raise ValueError(f"sampler.name must be 'uniform', 'sandwich' or 'progressive', got {name!r}")
