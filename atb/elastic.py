"""Elastic layers: modules that know their maximum size and are told their active size.

This is the weight-sharing mechanism of the SuperPLM (notes §3), in the style of once-for-all:
every Linear, Embedding and LayerNorm is allocated at its largest size, and a sub-model uses the
top-left part of each weight. ``set_active(...)`` chooses the part; ``forward`` and
``active_parameters()`` read it through the same slicing function, so what the SuperPLM trains and
what ``extract`` copies out can never disagree.

*Grouped* slicing is the one twist. In the KD space every sub-model keeps all 12 heads and each head
keeps its first ``d_qkv / 12`` dimensions (head-wise sub-matrix extraction). Viewing the rows of Q/K/V
(and the columns of the attention output projection) as ``groups`` blocks and taking the top of each
block expresses exactly that; with ``groups == 1`` it is plain top-left slicing (the MLM space, whose
first ``h`` heads of 64 dimensions are the first ``64 h`` rows).

At full size the slices are the parameters themselves (no copy), so a standalone model built from
these layers at its own size costs nothing extra. In inference (no autograd) a sliced Linear keeps a
contiguous copy of its active weight, keyed on the active size and the parameter's version counter,
so evaluating one sub-model many times (search, latency) does not re-slice at every call.

The word-embedding table is the one weight where slicing costs time in training: at 30,522 × 384 its sliced gradient
is built, zero-filled into a full-size tensor and copied (~40 ms a step at mini, twice in MLM, whose decoder reads the
same table). So the lookup gathers whole rows and cuts them, and the tied decoder (:func:`linear_first_columns`)
computes its weight gradient at the table's size: the same numbers, tested against slicing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


_full_table_gradients = True  # False within sliced_table_gradients()


@contextlib.contextmanager
def sliced_table_gradients() -> Iterator[None]:
    """Within: the word-embedding table is looked up and decoded through its slice, as the earlier engine did (autograd
    then builds each gradient at the slice's size and copies it into the table's); benchmarks/bench_training.py."""
    global _full_table_gradients
    before, _full_table_gradients = _full_table_gradients, False
    try:
        yield
    finally:
        _full_table_gradients = before


def slice_rows(weight: torch.Tensor, rows: int, groups: int = 1) -> torch.Tensor:
    """The first ``rows`` rows of ``weight``; with ``groups > 1``, the first ``rows / groups`` of each block."""
    total = weight.shape[0]
    if rows == total:
        return weight
    if groups == 1:
        return weight[:rows]
    if rows % groups or total % groups:
        raise ValueError(f"cannot slice {rows} of {total} rows in {groups} equal groups")
    blocks = weight.reshape(groups, total // groups, *weight.shape[1:])
    return blocks[:, : rows // groups].reshape(rows, *weight.shape[1:])


def slice_cols(weight: torch.Tensor, cols: int, groups: int = 1) -> torch.Tensor:
    """Column counterpart of :func:`slice_rows` for 2-D weights."""
    if cols == weight.shape[1]:
        return weight
    return slice_rows(weight.t(), cols, groups).t()


class ElasticLinear(nn.Linear):
    """A Linear layer whose active part is the top-left ``out × in`` sub-matrix (grouped if asked)."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True, in_groups: int = 1, out_groups: int = 1):
        super().__init__(max_in, max_out, bias=bias)
        self.in_groups, self.out_groups = in_groups, out_groups
        self.active_in, self.active_out = max_in, max_out
        self._inference_cache: tuple[tuple, torch.Tensor, torch.Tensor | None] | None = None

    def set_active(self, in_features: int, out_features: int) -> None:
        if not (0 < in_features <= self.in_features and 0 < out_features <= self.out_features):
            raise ValueError(
                f"active size {in_features}->{out_features} exceeds the maximum {self.in_features}->{self.out_features}"
            )
        self.active_in, self.active_out = in_features, out_features

    def active_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The active ``out × in`` part of the weight (:func:`slice_rows` then :func:`slice_cols`), in ``dtype`` if
        given. The rows and columns are cut as one view, ``[groups, rows / groups, groups, cols / groups]``, so a
        grouped cut costs a single copy, which is also the cast to ``dtype`` (autocast's); cut in turn, the grouped
        Q/K/V rows or output columns would be copied once to be merged and again to be cast."""
        out_features, in_features = self.weight.shape
        if (self.active_out, self.active_in) == (out_features, in_features):
            return self.weight if dtype is None else self.weight.to(dtype)
        for active, total, groups in ((self.active_out, out_features, self.out_groups),
                                      (self.active_in, in_features, self.in_groups)):
            if groups > 1 and active != total and (active % groups or total % groups):
                raise ValueError(f"cannot slice {active} of {total} rows in {groups} equal groups")
        row_groups = self.out_groups if self.active_out != out_features else 1
        col_groups = self.in_groups if self.active_in != in_features else 1
        cut = self.weight.view(row_groups, out_features // row_groups, col_groups, in_features // col_groups)[
            :, : self.active_out // row_groups, :, : self.active_in // col_groups]
        return (cut if dtype is None else cut.to(dtype)).reshape(self.active_out, self.active_in)

    def active_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else slice_rows(self.bias, self.active_out, self.out_groups)

    def active_parameters(self) -> dict[str, torch.Tensor]:
        params = {"weight": self.active_weight()}
        if self.bias is not None:
            params["bias"] = self.active_bias()
        return params

    def _inference_parameters(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Contiguous active weight/bias, recomputed only when the size or the parameters change."""
        key = (self.active_in, self.active_out, self.weight._version, self.weight.data_ptr(),
               None if self.bias is None else self.bias._version)
        if self._inference_cache is None or self._inference_cache[0] != key:
            bias = self.active_bias()
            self._inference_cache = (key, self.active_weight().contiguous(),
                                     None if bias is None else bias.contiguous())
        return self._inference_cache[1], self._inference_cache[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sliced = (self.active_in, self.active_out) != (self.in_features, self.out_features)
        if sliced and not torch.is_grad_enabled():
            return F.linear(x, *self._inference_parameters())
        if sliced and torch.is_autocast_enabled(x.device.type):  # cut and cast in one copy (autocast: the same values)
            return F.linear(x, self.active_weight(torch.get_autocast_dtype(x.device.type)), self.active_bias())
        return F.linear(x, self.active_weight(), self.active_bias())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, active={self.active_in}->{self.active_out}"


class _FirstColumnsLinear(torch.autograd.Function):
    """``x @ weight[:, :d]^T + bias`` (``d`` = x's width) whose weight gradient is computed at the full table's size:
    autograd would build the slice's gradient, zero-fill a full-size tensor and copy it in."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.linear(x, weight[:, : x.shape[-1]], bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        d = x.shape[-1]
        grad, flat_x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, d)
        # (never under autocast: linear_first_columns). Only the columns beyond d are zero-filled; the product is
        # written over the first d (beta=0 ignores what they held), not added to zeros: one pass less of the table.
        grad_weight = torch.empty_like(weight)
        grad_weight[:, d:].zero_()
        grad_weight[:, :d].addmm_(grad.t(), flat_x, beta=0)
        grad_x = (grad @ weight[:, :d]).view_as(x) if ctx.needs_input_grad[0] else None
        return grad_x, grad_weight, grad.sum(0) if ctx.has_bias else None


def linear_first_columns(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight[:, :x.shape[-1]], bias)``: a tied output layer (BERT's MLM decoder reads the word-embedding
    table) of a sub-model whose hidden size is the table's first ``d`` columns. Same values and gradients as slicing;
    cheaper where the table is large (30,522 words) and wider than ``d``."""
    if (x.shape[-1] == weight.shape[1] or not _full_table_gradients or not torch.is_grad_enabled()
            or torch.is_autocast_enabled(x.device.type)):
        return F.linear(x, weight[:, : x.shape[-1]], bias)
    return _FirstColumnsLinear.apply(x, weight, bias)


class ElasticEmbedding(nn.Embedding):
    """An embedding table whose vectors are cut to their first ``active_dim`` components."""

    def __init__(self, num_embeddings: int, max_dim: int, padding_idx: int | None = None):
        super().__init__(num_embeddings, max_dim, padding_idx=padding_idx)
        self.active_dim = max_dim

    def set_active(self, dim: int) -> None:
        if not 0 < dim <= self.embedding_dim:
            raise ValueError(f"active size {dim} exceeds the maximum {self.embedding_dim}")
        self.active_dim = dim

    def active_weight(self) -> torch.Tensor:
        return slice_cols(self.weight, self.active_dim)

    def active_parameters(self) -> dict[str, torch.Tensor]:
        return {"weight": self.active_weight()}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # Gather whole rows, then cut them: the same numbers as embedding the sliced table, but the gradient lands in
        # the full table directly (the sliced table's gradient would be zero-filled and copied into it: ~40 ms a step
        # for the 30,522-word table at mini).
        if not _full_table_gradients:
            return F.embedding(ids, self.active_weight(), self.padding_idx)
        return F.embedding(ids, self.weight, self.padding_idx)[..., : self.active_dim]


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first ``active_dim`` features, with the matching slice of its affine weights."""

    def __init__(self, max_dim: int, eps: float = 1e-12):
        super().__init__(max_dim, eps=eps)
        self.active_dim = max_dim

    def set_active(self, dim: int) -> None:
        if not 0 < dim <= self.normalized_shape[0]:
            raise ValueError(f"active size {dim} exceeds the maximum {self.normalized_shape[0]}")
        self.active_dim = dim

    def active_parameters(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[: self.active_dim], "bias": self.bias[: self.active_dim]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.active_parameters()
        return F.layer_norm(x, (self.active_dim,), p["weight"], p["bias"], self.eps)


ELASTIC_TYPES = (ElasticLinear, ElasticEmbedding, ElasticLayerNorm)
