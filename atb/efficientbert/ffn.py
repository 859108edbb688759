"""The expression FFN: one layer's feed-forward network computing a searched expression (:mod:`.expression`).

Elastic in the once-for-all sense: an :class:`ExpressionFFN` knows its maximum size (``max_stacks`` blocks, inner
width ``ffn``) and is told the active one with each call (a :class:`LayerFFN`: the expression, ``stacks`` blocks,
inner width ``ffn // ratio``). Block ``k`` holds ``wb1`` (``dense1``: hidden -> ffn) and ``wb2`` (``dense2``:
ffn -> hidden) and its own LayerNorm; a smaller size uses the first blocks and the first ``ffn // ratio`` inner
units of each, as the official ``AutoBertFeedForwardNetwork`` slices ``dense1.weight.t()[:, :width]``. So every
candidate of a search shares one set of weights (the warm-up-distilled supernet), and :meth:`extract` cuts out a
standalone FFN of exactly the active size that computes the same function.

Each block: ``LayerNorm(x + dropout(expression(x)))``, the expression computed with the block's own ``wb1``/``wb2``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..dropout import Dropout
from .expression import STACKS, LayerFFN, evaluate


class ExpressionBlock(nn.Module):
    """One stacked FFN block: ``wb1``, ``wb2`` and a LayerNorm; evaluates an expression at inner width ``width``."""

    def __init__(self, hidden: int, ffn: int, dropout: float = 0.1, eps: float = 1e-12):
        super().__init__()
        self.dense1 = nn.Linear(hidden, ffn)  # wb1
        self.dense2 = nn.Linear(ffn, hidden)  # wb2
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, ffn: LayerFFN, width: int) -> torch.Tensor:
        w1, b1 = self.dense1.weight[:width], self.dense1.bias[:width]
        w2 = self.dense2.weight[:, :width]
        out = evaluate(ffn.expr, x, lambda t: nn.functional.linear(t, w1, b1),
                       lambda t: nn.functional.linear(t, w2, self.dense2.bias))
        return self.norm(x + self.dropout(out))


class ExpressionFFN(nn.Module):
    """A layer's FFN of at most ``max_stacks`` blocks of inner width ``ffn``; ``forward(x, layer_ffn)`` runs the
    expression and size ``layer_ffn`` names. With ``fixed`` (a standalone model's layer) it holds exactly that size,
    ``ffn // fixed.ratio`` inner units, and runs it when called without ``layer_ffn``."""

    def __init__(self, hidden: int, ffn: int, max_stacks: int = max(STACKS), dropout: float = 0.1,
                 eps: float = 1e-12, fixed: LayerFFN | None = None):
        super().__init__()
        if max_stacks < 1 or ffn < 1:
            raise ValueError(f"ExpressionFFN needs max_stacks >= 1 and ffn >= 1, got {max_stacks} and {ffn}")
        self.ffn, self.fixed = ffn, fixed
        # a fixed FFN (a standalone model's) holds exactly its size: ffn // ratio inner units
        self.inner = ffn if fixed is None else self.width(fixed)
        self.blocks = nn.ModuleList(ExpressionBlock(hidden, self.inner, dropout, eps) for _ in range(max_stacks))

    def width(self, layer_ffn: LayerFFN) -> int:
        """The active inner width: ``ffn // ratio`` (the official ``int(expansion_ratio * ffn_hidden_size)``)."""
        return max(1, self.ffn // layer_ffn.ratio)

    def forward(self, x: torch.Tensor, layer_ffn: LayerFFN | None = None) -> torch.Tensor:
        layer_ffn = layer_ffn or self.fixed
        if layer_ffn is None:
            raise ValueError("ExpressionFFN.forward needs the layer's FFN (expression and size): none given or fixed")
        if layer_ffn.stacks > len(self.blocks):
            raise ValueError(f"{layer_ffn} stacks {layer_ffn.stacks} blocks; this FFN holds {len(self.blocks)}")
        width = self.width(layer_ffn)
        if width > self.inner:
            raise ValueError(f"{layer_ffn} needs {width} inner units; this FFN holds {self.inner}")
        for block in self.blocks[: layer_ffn.stacks]:
            x = block(x, layer_ffn, width)
        return x

    @torch.no_grad()
    def extract(self, layer_ffn: LayerFFN) -> ExpressionFFN:
        """A standalone FFN of exactly ``layer_ffn``'s size (``stacks`` blocks, inner width ``ffn // ratio``, fixed
        to it), holding copies of the weights this one uses for it: the two compute the same function."""
        width, first = self.width(layer_ffn), self.blocks[0]
        out = ExpressionFFN(first.dense1.in_features, self.ffn, layer_ffn.stacks, first.dropout.p, first.norm.eps,
                            fixed=layer_ffn)
        for source, target in zip(self.blocks, out.blocks):
            target.dense1.weight.copy_(source.dense1.weight[:width])
            target.dense1.bias.copy_(source.dense1.bias[:width])
            target.dense2.weight.copy_(source.dense2.weight[:, :width])
            target.dense2.bias.copy_(source.dense2.bias)
            target.norm.load_state_dict(source.norm.state_dict())
        return out.train(self.training)
