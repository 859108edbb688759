"""AutoBERT-Zero's convolution layers, and BIWS kernel sharing by centre-cropping.

A convolution layer mixes each token with its neighbours inside a window of ``kernel`` tokens (odd: the token in
the middle). Two kinds, as in AutoBERT-Zero's space (after Wu et al., 2019, "Pay less attention with lightweight
and dynamic convolutions"):

* ``light``: a **lightweight convolution**: one kernel per head, shared by the head's ``d / H`` channels and by
  every position, normalised by a softmax over its taps (so it is a learned, position-wise weighted average);
* ``dynamic``: a **dynamic convolution**: the kernel is predicted from the token itself (a linear map of the layer
  input to ``H x kernel`` taps, softmax over the taps), so every position has its own.

Both sit between an input projection and the output projection of a BERT attention block (dense, dropout,
residual, LayerNorm): ``conv(W_in x)`` replaces the attention's ``softmax(Q Kᵀ/√d) V``. Padded tokens are zeroed
before the convolution, so they never reach a real token.

**BIWS kernel sharing** (bi-branch weight sharing): the supernet holds one kernel of the largest size per layer,
and a candidate of kernel ``k`` uses its **centre crop** (the ``k`` taps nearest the middle). Here the taps are
stored in *centre-out order* (offsets ``0, -1, +1, -2, +2, ...``), so the centre crop is the first ``k`` taps:
plain top slicing, the same path (:func:`atb.elastic.slice_rows`, grouped by head for the dynamic kernel
generator, an :class:`~atb.elastic.ElasticLinear`) that AutoTinyBERT's SuperPLM slices with. A standalone layer of
kernel ``k`` stores exactly those ``k`` taps (:meth:`ConvMixer.extract`), so the supernet's cropped kernel and the
extracted model's kernel are one tensor (tested).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..elastic import ElasticLinear

CONV_TYPES = ("light", "dynamic")


@lru_cache(maxsize=None)
def centre_out_offsets(kernel: int) -> tuple[int, ...]:
    """The tap offsets in storage order: ``0, -1, +1, -2, +2, ...`` (``kernel`` of them, ``kernel`` odd)."""
    check_kernel(kernel)
    return (0, *(o for r in range(1, kernel // 2 + 1) for o in (-r, r)))


@lru_cache(maxsize=None)
def positional_order(kernel: int) -> tuple[int, ...]:
    """Indices that put the first ``kernel`` centre-out taps in positional order (offset ``-kernel//2`` first)."""
    offsets = centre_out_offsets(kernel)
    return tuple(sorted(range(kernel), key=offsets.__getitem__))


def check_kernel(kernel: int) -> int:
    if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"a convolution kernel size must be a positive odd integer (the token in the middle), "
                         f"got {kernel!r}")
    return kernel


def positional(taps: torch.Tensor) -> torch.Tensor:
    """Centre-out taps ``[..., k]`` in positional order ``[..., k]`` (offsets ``-k//2 .. +k//2``)."""
    order = torch.tensor(positional_order(taps.shape[-1]), device=taps.device)
    return taps.index_select(-1, order)


def unfold_tokens(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """``[B, T, C]`` -> ``[B, T, C, kernel]``: each token's window (zeros past the ends), positional order."""
    pad = kernel // 2
    return F.pad(x, (0, 0, pad, pad)).unfold(1, kernel, 1)


class ConvMixer(nn.Module):
    """The token mixer of a convolution layer: ``W_in``, the convolution (``conv_type``), merged heads, ``[B, T, d]``
    out (the output projection, residual and LayerNorm belong to the layer).

    ``max_kernel`` is the largest kernel the module holds (the supernet's, or the standalone layer's own);
    :meth:`set_active` / the ``kernel`` argument of :meth:`forward` choose the active one (BIWS centre crop)."""

    def __init__(self, hidden: int, heads: int, max_kernel: int, conv_type: str = "light"):
        super().__init__()
        if conv_type not in CONV_TYPES:
            raise ValueError(f"conv_type must be one of {CONV_TYPES}, got {conv_type!r}")
        if hidden % heads:
            raise ValueError(f"a convolution layer splits hidden {hidden} into {heads} heads: not divisible")
        self.hidden, self.heads, self.max_kernel, self.conv_type = hidden, heads, check_kernel(max_kernel), conv_type
        self.input = nn.Linear(hidden, hidden)
        if conv_type == "light":
            # zeros: the softmax makes every window a plain average at first (a neutral start for a warm start)
            self.weight = nn.Parameter(torch.zeros(heads, max_kernel))
            self.kernel_generator = None
        else:
            self.weight = None
            self.kernel_generator = ElasticLinear(hidden, heads * max_kernel, out_groups=heads)

    def taps(self, x: torch.Tensor | None, kernel: int) -> torch.Tensor:
        """The normalised kernel in positional order: ``[H, k]`` (light) or ``[B, T, H, k]`` (dynamic, from ``x``)."""
        if kernel > self.max_kernel:
            raise ValueError(f"kernel {kernel} exceeds this layer's largest, {self.max_kernel}")
        check_kernel(kernel)
        if self.weight is not None:
            return positional(self.weight[:, :kernel]).softmax(-1)
        self.kernel_generator.set_active(self.hidden, self.heads * kernel)
        logits = self.kernel_generator(x).unflatten(-1, (self.heads, kernel))
        return positional(logits).softmax(-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, kernel: int | None = None) -> torch.Tensor:
        """``x`` ``[B, T, d]``; ``mask`` ``[B, T]`` bool (True = real token) or None."""
        kernel = self.max_kernel if kernel is None else kernel
        batch, seq, _ = x.shape
        values = self.input(x)
        if mask is not None:
            values = values.masked_fill(~mask[..., None], 0.0)
        taps = self.taps(x, kernel)
        if self.weight is not None:  # light: a depthwise convolution, each head's kernel shared by its channels
            weight = taps.repeat_interleave(self.hidden // self.heads, dim=0)[:, None, :]
            return F.conv1d(values.transpose(1, 2), weight, padding=kernel // 2, groups=self.hidden).transpose(1, 2)
        windows = unfold_tokens(values, kernel).unflatten(2, (self.heads, self.hidden // self.heads))
        return torch.einsum("bthck,bthk->bthc", windows, taps).reshape(batch, seq, self.hidden)

    @torch.no_grad()
    def extract(self, kernel: int) -> ConvMixer:
        """The standalone mixer of kernel ``kernel``: a copy of the input projection and of the first ``kernel``
        centre-out taps (the centre crop) of the kernel or of the kernel generator's rows."""
        out = ConvMixer(self.hidden, self.heads, kernel, self.conv_type)
        out.input.load_state_dict(self.input.state_dict())
        if self.weight is not None:
            out.weight.copy_(self.weight[:, :kernel])
        else:
            self.kernel_generator.set_active(self.hidden, self.heads * kernel)
            out.kernel_generator.load_state_dict(self.kernel_generator.active_parameters())
        return out.train(self.training)

    def extra_repr(self) -> str:
        return f"{self.conv_type}, hidden={self.hidden}, heads={self.heads}, max_kernel={self.max_kernel}"
