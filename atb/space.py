"""The search space of AutoTinyBERT: architectures and the spaces they are drawn from.

An architecture ``Arch(layers, hidden, ffn, heads, qkv)`` is the paper's five hyper-parameters
(l, d_m, d_f, h, d_qkv).  Layers are homogeneous: one ffn / heads / qkv for all of them (notes §2).

The paper has two spaces, one per SuperPLM objective:

* **MLM**: the head size is fixed (64), so ``qkv = 64 * heads`` and ``heads`` is searched;
* **KD**: the number of heads is fixed (12, the teacher's), so the student always has 12 attention
  maps to match, and ``qkv`` is searched on its own grid (head size ``qkv / 12``).

One frozen, hashable ``Arch`` and one ``SearchSpace`` object serve training, search and latency, so
the grids are never rebuilt in several places with different steps (pitfall 6 of the official code).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Objective = Literal["mlm", "kd"]
FIELDS: tuple[str, ...] = ("layers", "hidden", "ffn", "heads", "qkv")
STEP_FIELDS: tuple[str, ...] = ("layers", "hidden", "ffn", "qkv")  # what SearchSpace.with_steps can coarsen

# The shapes the paper found good (notes §6, claim 3), the rule AutoTinyBERT-Fast searches within, and BERT's own.
EFFICIENT_FFN_RATIO = (1.6, 1.9)  # d_f / d_m
EFFICIENT_QKV_RATIO = (0.7, 1.0)  # d_qkv / d_m
DEFAULT_RULE_FFN_RATIO = 4.0  # BERT: d_f = 4 d_m, d_qkv = d_m


@dataclass(frozen=True, order=True)
class Arch:
    """One sub-architecture: (l, d_m, d_f, h, d_qkv).

    Frozen and ordered, so it can be a dict key, a set member and sorted; two equal architectures
    always compare and hash equal whatever order their fields were given in.
    """

    layers: int
    hidden: int
    ffn: int
    heads: int
    qkv: int

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Arch.{name} must be a positive integer, got {value!r}")
        if self.qkv % self.heads:
            raise ValueError(
                f"Arch.qkv={self.qkv} is not divisible by Arch.heads={self.heads}: "
                "each head must get qkv / heads dimensions"
            )

    @property
    def head_size(self) -> int:
        return self.qkv // self.heads

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Arch:
        missing = [f for f in FIELDS if f not in d]
        if missing:
            raise ValueError(f"architecture dict lacks field(s) {missing}; needs {list(FIELDS)}")
        return cls(**{f: int(d[f]) for f in FIELDS})

    @classmethod
    def parse(cls, text: str) -> Arch:
        """Parse the paper's notation ``"L/d_m/d_f/h/d_qkv"``, e.g. ``"5/564/1054/8/512"``."""
        parts = text.strip().split("/")
        if len(parts) != 5:
            raise ValueError(f"architecture {text!r} must read 'layers/hidden/ffn/heads/qkv'")
        try:
            return cls(*(int(p) for p in parts))
        except ValueError as err:
            raise ValueError(f"architecture {text!r}: {err}") from None

    def __str__(self) -> str:
        return "/".join(str(getattr(self, f)) for f in FIELDS)

    def encoder_parameters(self) -> int:
        """Weights of the transformer layers (embeddings and heads excluded): the size that latency tracks."""
        attention = 3 * (self.hidden * self.qkv + self.qkv) + self.qkv * self.hidden + self.hidden
        ffn = self.hidden * self.ffn + self.ffn + self.ffn * self.hidden + self.hidden
        return self.layers * (attention + ffn + 4 * self.hidden)  # + two LayerNorms

    def follows_default_rule(self) -> bool:
        """BERT's default rule: d_qkv = d_m and d_f = 4 d_m."""
        return self.qkv == self.hidden and self.ffn == 4 * self.hidden

    def is_efficient(self) -> bool:
        """The paper's "efficient" rule used by AutoTinyBERT-Fast (notes §6): d_f/d_m in
        :data:`EFFICIENT_FFN_RATIO` and d_qkv/d_m in :data:`EFFICIENT_QKV_RATIO`."""
        (f_lo, f_hi), (q_lo, q_hi) = EFFICIENT_FFN_RATIO, EFFICIENT_QKV_RATIO
        return f_lo * self.hidden <= self.ffn <= f_hi * self.hidden and q_lo * self.hidden <= self.qkv <= q_hi * self.hidden


@dataclass(frozen=True)
class Range:
    """An inclusive integer grid ``low, low+step, ..., high``."""

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1 or self.low > self.high or (self.high - self.low) % self.step:
            raise ValueError(f"invalid range {self}: need step >= 1, low <= high, (high - low) % step == 0")

    def values(self) -> range:
        return range(self.low, self.high + 1, self.step)

    def __contains__(self, value: int) -> bool:
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def __len__(self) -> int:
        return (self.high - self.low) // self.step + 1

    def describe(self) -> str:
        return f"{self.low}..{self.high} step {self.step}"


@dataclass(frozen=True)
class SearchSpace:
    """A grid of architectures for one SuperPLM objective.

    ``mlm``: ``heads`` is searched and ``qkv = head_size * heads``.
    ``kd``: ``heads`` is fixed to ``heads.low == heads.high`` and ``qkv`` is searched on its grid.
    """

    objective: Objective
    layers: Range
    hidden: Range
    ffn: Range
    heads: Range
    qkv: Range
    head_size: int | None = None  # MLM only: the fixed head size

    def __post_init__(self) -> None:
        if self.objective not in ("mlm", "kd"):
            raise ValueError(f"SearchSpace.objective must be 'mlm' or 'kd', got {self.objective!r}")
        if self.objective == "mlm":
            if self.head_size is None:
                raise ValueError("an MLM space needs head_size (the paper fixes it at 64)")
            expected = Range(self.head_size * self.heads.low, self.head_size * self.heads.high,
                             self.head_size * self.heads.step)
            if self.qkv != expected:
                raise ValueError(f"MLM space: qkv must be head_size * heads, i.e. {expected}, got {self.qkv}")
        else:
            if self.heads.low != self.heads.high:
                raise ValueError("KD space: the number of heads is fixed (to match the teacher)")
            if self.qkv.low % self.heads.low or (len(self.qkv) > 1 and self.qkv.step % self.heads.low):
                raise ValueError(f"KD space: every qkv in {self.qkv} must be divisible by {self.heads.low} heads")

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, objective: Objective) -> SearchSpace:
        """The paper's spaces (``"paper"``) and scaled-down ones for CPU (``"mini"``, ``"smoke"``).

        ``paper`` follows notes §2 (its step sizes are those of the SuperPLM; the paper's search
        scripts used coarser grids, see :meth:`with_steps`). ``mini`` is sized for the offline
        MiniLM teacher (6 layers, hidden 384, FFN 1536, 12 heads of 32 dimensions) so that its largest
        architecture *is* MiniLM and a warm start (:mod:`atb.warmstart`) copies all of it: the MLM space's
        heads are MiniLM's 32-dimensional ones, not the paper's 64; ``smoke`` is for tests.
        """
        presets = {
            # name: layers, hidden, ffn, MLM (heads, head_size), KD (heads, qkv)
            "paper": (Range(1, 8), Range(128, 768, 4), Range(128, 3072, 4),
                      (Range(1, 12), 64), (12, Range(180, 768, 12))),
            "mini": (Range(1, 6), Range(128, 384, 16), Range(128, 1536, 32),
                     (Range(1, 12), 32), (12, Range(96, 384, 12))),
            "smoke": (Range(1, 2), Range(32, 64, 16), Range(32, 128, 16),
                      (Range(1, 3), 16), (12, Range(24, 48, 12))),
        }
        if name not in presets:
            raise ValueError(f"unknown space preset {name!r}; choose one of {sorted(presets)}")
        if objective not in ("mlm", "kd"):
            raise ValueError(f"objective must be 'mlm' or 'kd', got {objective!r}")
        layers, hidden, ffn, (mlm_heads, head_size), (kd_heads, kd_qkv) = presets[name]
        if objective == "mlm":
            qkv = Range(head_size * mlm_heads.low, head_size * mlm_heads.high, head_size * mlm_heads.step)
            return cls("mlm", layers, hidden, ffn, mlm_heads, qkv, head_size)
        return cls("kd", layers, hidden, ffn, Range(kd_heads, kd_heads), kd_qkv)

    def with_steps(self, **steps: int) -> SearchSpace:
        """The same space on a coarser grid, e.g. ``with_steps(hidden=16, ffn=32)`` as in the paper's search.

        Bounds are kept where the new step allows; otherwise the upper bound is lowered to the last
        grid point so every value stays inside the original space.
        """
        changes = {}
        for name, step in steps.items():
            if name not in STEP_FIELDS:
                raise ValueError(f"with_steps: cannot change the step of {name!r}")
            r: Range = getattr(self, name)
            changes[name] = Range(r.low, r.low + (r.high - r.low) // step * step, step)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ queries
    def largest(self) -> Arch:
        return Arch(self.layers.high, self.hidden.high, self.ffn.high, self.heads.high, self.qkv.high)

    def smallest(self) -> Arch:
        return Arch(self.layers.low, self.hidden.low, self.ffn.low, self.heads.low, self.qkv.low)

    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` if it lies in this space, else raise ``ValueError`` naming the field."""
        if not isinstance(arch, Arch):
            raise TypeError(f"expected an Arch, got {type(arch).__name__}")
        for name in FIELDS:
            r: Range = getattr(self, name)
            value = getattr(arch, name)
            if value not in r:
                raise ValueError(
                    f"{name}={value} is outside the {self.objective.upper()} space: allowed {r.describe()}"
                )
        if self.objective == "mlm" and arch.qkv != self.head_size * arch.heads:
            raise ValueError(
                f"qkv={arch.qkv} must equal head_size*heads = {self.head_size}*{arch.heads} in the MLM space"
            )
        return arch

    def contains(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    def sample(self, rng: random.Random) -> Arch:
        """Draw each hyper-parameter independently and uniformly from its grid (the paper's sampler)."""
        layers = rng.choice(self.layers.values())
        hidden = rng.choice(self.hidden.values())
        ffn = rng.choice(self.ffn.values())
        if self.objective == "mlm":
            heads = rng.choice(self.heads.values())
            qkv = heads * self.head_size
        else:
            heads = self.heads.low
            qkv = rng.choice(self.qkv.values())
        return Arch(layers, hidden, ffn, heads, qkv)

    def grid(self) -> Iterator[Arch]:
        """Every architecture of the space, in lexicographic order (lazily: the paper grid is large)."""
        searched = self.heads.values() if self.objective == "mlm" else self.qkv.values()
        for layers, hidden, ffn, x in itertools.product(
            self.layers.values(), self.hidden.values(), self.ffn.values(), searched
        ):
            if self.objective == "mlm":
                yield Arch(layers, hidden, ffn, x, x * self.head_size)
            else:
                yield Arch(layers, hidden, ffn, self.heads.low, x)

    def __len__(self) -> int:
        searched = self.heads if self.objective == "mlm" else self.qkv
        return len(self.layers) * len(self.hidden) * len(self.ffn) * len(searched)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SearchSpace:
        ranges = {k: Range(**d[k]) for k in FIELDS}
        return cls(objective=d["objective"], head_size=d.get("head_size"), **ranges)
