"""Dropout whose random numbers are cheap on a CPU (the models' dropout layers and attention dropout).

BERT drops 10 % of the hidden units after every projection and of the attention probabilities. On a CPU,
``torch.nn.functional.dropout`` draws one Bernoulli variable per element (``bernoulli_``), which the profile of a
mini one-shot KD step put at ~15 % of the step (benchmarks/bench_training.py): more than the optimizer. Here the keep
mask is cut from 64-bit random words, four 16-bit uniform integers per word, and compared with a threshold; the
dropped units are zeroed and the kept ones scaled by ``1 / (1 - p)`` exactly as ``F.dropout`` does. The only
difference is that the drop probability is rounded to a multiple of ``2^-16`` (0.1 becomes 6554/65536 = 0.100006).
Attention's dropout (:func:`dropout_matmul`) scales the product ``probabilities @ values`` instead of the
probabilities: the same numbers up to rounding, on a tensor ``T / d_head`` times smaller.

The words come from torch's default generator, so ``torch.manual_seed`` makes a run repeatable and a checkpoint that
saves the generator's state (atb.train, atb.finetune) resumes bit for bit. On other devices (GPUs draw Bernoulli
variables fast) and outside training this is ``F.dropout`` itself; so it is everywhere within :func:`bernoulli_dropout`
(the earlier engine, which benchmarks/bench_training.py times beside this one).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

BITS = 16  # bits of each uniform integer cut from a random word (its int16 lanes)
_LANES = 4  # int16 lanes in one int64 word
_WORDS_FROM = -(2**63)  # random_(from, None) on int64 fills all 64 bits: every lane uniform over [-2^15, 2^15)
_cheap_masks = True  # False within bernoulli_dropout()


def cheap_masks(device: torch.device | str) -> bool:
    """Whether dropout on ``device`` draws :func:`keep_mask` (a CPU, outside :func:`bernoulli_dropout`)."""
    return _cheap_masks and torch.device(device).type == "cpu"


@contextlib.contextmanager
def bernoulli_dropout() -> Iterator[None]:
    """Within: torch's own dropout everywhere, attention's inside the fused kernel (how the earlier engine computed)."""
    global _cheap_masks
    before, _cheap_masks = _cheap_masks, False
    try:
        yield
    finally:
        _cheap_masks = before


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, *, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """A tensor of ``shape``, 1 (True) with probability ``1 - p`` and 0 elsewhere (``p`` rounded to a multiple of
    ``2^-16``), drawn from torch's default generator: four 16-bit integers per 64-bit word, each kept when at least
    ``-2^15 + p · 2^16`` (one comparison per element; no bits to clear). ``dtype``: the mask's; the comparison
    writes it directly (``out=``), where comparing into bools and converting them would pass over the mask twice."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    n = math.prod(shape)
    words = torch.empty(-(-n // _LANES), dtype=torch.int64, device=device).random_(_WORDS_FROM, None)
    lanes = words.view(torch.int16)[:n].view(shape)
    return torch.ge(lanes, -(2 ** (BITS - 1)) + round(p * 2**BITS), out=torch.empty(shape, dtype=dtype, device=device))


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``, with the keep mask of :func:`keep_mask` on a CPU (module docstring)."""
    if not training or p == 0.0:
        return x
    if not cheap_masks(x.device) or not x.is_floating_point():
        return F.dropout(x, p, training)
    # the multiplier in x's dtype: a product of two tensors of one dtype is several times faster than with a bool
    return x * keep_mask(x.shape, p, device=x.device, dtype=x.dtype).mul_(1.0 / (1.0 - p))


def dropout_matmul(x: torch.Tensor, p: float, other: torch.Tensor, training: bool = True) -> torch.Tensor:
    """``dropout(x, p, training) @ other`` (attention: the probabilities times the values). On a CPU the kept entries
    are not scaled; the product is, by ``1 / (1 - p)``: one pass over ``[B, heads, T, d_head]`` instead of two over
    ``[B, heads, T, T]`` (the scale and the multiplier the mask would be made into)."""
    if not training or p == 0.0 or not cheap_masks(x.device) or not x.is_floating_point():
        return dropout(x, p, training) @ other
    return ((x * keep_mask(x.shape, p, device=x.device, dtype=x.dtype)) @ other) * (1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` computed by :func:`dropout` (same ``p``, same train/eval behaviour, same state dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
