"""Which sub-architectures a one-shot training step trains (notes §4).

The paper samples **one** architecture per step, each hyper-parameter independently and uniformly
(``UniformSampler``). Once-for-all / BigNAS report that the *sandwich rule* (largest + smallest + k
random, gradients accumulated) and *in-place distillation* (the largest sub-model teaches the others)
help; they are offered as options and reported separately.

A sampler is a pure function of ``(seed, step)``: every data-parallel rank draws the same architectures
at a step without communicating, and a resumed run continues the exact same sequence, with no sampler
state to checkpoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .space import Arch, SearchSpace


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


@dataclass(frozen=True)
class FixedSampler:
    """One fixed architecture every step: further training of an extracted sub-model."""

    arch: Arch

    def archs(self, step: int) -> list[Arch]:
        return [self.arch]


def make_sampler(name: str, space: SearchSpace, seed: int = 0, k: int | None = None,
                 inplace_distillation: bool = False) -> UniformSampler | SandwichSampler:
    """Build a sampler from its config name: ``"uniform"`` (the paper) or ``"sandwich"``."""
    if name == "uniform":
        if inplace_distillation:
            raise ValueError("sampler.inplace_distillation needs sampler.name = 'sandwich' (a largest sub-model)")
        return UniformSampler(space, seed, k or 1)
    if name == "sandwich":
        return SandwichSampler(space, seed, 2 if k is None else k, inplace_distillation)
    raise ValueError(f"sampler.name must be 'uniform' or 'sandwich', got {name!r}")
