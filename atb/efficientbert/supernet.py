"""EfficientBERT's weight-sharing supernet: one network in which every candidate of the FFN search is a sub-network.

Every layer holds BERT's attention (fixed size: EfficientBERT searches the FFN only) and an *elastic*
:class:`~atb.efficientbert.ffn.ExpressionFFN` of ``max_stacks`` blocks of the full inner width. A **candidate** is
one :class:`~atb.efficientbert.expression.LayerFFN` per layer (expression and size); ``forward(..., ffns=candidate)``
runs it with the shared weights, and :meth:`EfficientBertSuperNet.extract` cuts out the standalone
:class:`~atb.efficientbert.modeling.EfficientBertModel` that computes the same function (one slicing path,
``ExpressionFFN.forward`` / ``extract``, for training, search and extraction).

**Warm start** (:func:`warm_start_from_bert`, the mini recipe; the paper distils its supernet from BERT-base
without it): a pretrained BERT of the supernet's depth, width and heads (the offline MiniLM at mini) is copied in:
embeddings and attention as they are. EfficientBERT's FFN inner width is the hidden width (official
``AutoBertConfig``: 540 and 540; the expression's width rules assume ``d_f / j <= d_m``), a quarter of a BERT's
``4 d_m``, so the source's FFN neurons, first ordered by importance (DynaBERT's Taylor score, :mod:`atb.warmstart`),
are dealt out in groups of ``d_f``: block 1 gets the most important ones, block ``k`` the ``k``-th group. A ratio
``j`` keeps the first ``d_f / j`` of a block's, the most important. The hidden dimensions keep their order, so the
teacher's hidden states need no projection.

:func:`candidate_params` counts a candidate's parameters (the search's constraint, as the official
``get_entire_params``): the fixed part (embeddings, attention, pooler) plus each layer's blocks at their width.

**What the official warm-up trains** (``pretrain_supernet.sh``, ``models/supernet.py``): a *fixed* network, every
layer ``num_stacked_ffn = 4`` gelu FFN blocks at ``ffn_expansion_ratio = 1``, i.e. every weight of the supernet;
here that network is the candidate :func:`fixed_supernet_candidate`. Random candidates are trained only in search
stage 3 (:func:`atb.efficientbert.search.stage3_size_sampler`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from ..modeling import attention_mask_to_bool
from ..supernet import SuperNetOutput
from .expression import BERT_FFN, STACKS, LayerFFN, parse
from .modeling import EfficientBertConfig, EfficientBertEmbeddings, EfficientBertLayer, EfficientBertModel, \
    EfficientBertPreTrainedModel

Candidate = tuple[LayerFFN, ...]  # one FFN (expression and size) per layer


def as_candidate(ffns: Sequence[LayerFFN | str]) -> Candidate:
    """A candidate from layer FFNs or their official strings."""
    return tuple(parse(f) if isinstance(f, str) else f for f in ffns)


class EfficientBertSuperNet(EfficientBertPreTrainedModel):
    """Embeddings, then per layer BERT's attention and an elastic expression FFN of ``config.max_stacks`` blocks of
    ``config.intermediate_size`` inner units. ``config.ffn_expressions`` is not used by the supernet (it is told the
    candidate with each call); ``save_pretrained`` / ``from_pretrained`` round-trip it."""

    def __init__(self, config: EfficientBertConfig):
        super().__init__(config)
        config.max_stacks = int(getattr(config, "max_stacks", max(STACKS)))
        if not 1 <= config.max_stacks <= max(STACKS):
            raise ValueError(f"EfficientBertConfig.max_stacks must be in 1..{max(STACKS)}, got {config.max_stacks}")
        self.embeddings = EfficientBertEmbeddings(config)
        self.layer = nn.ModuleList(EfficientBertLayer(config, None) for _ in range(config.num_hidden_layers))
        self.post_init()

    def check(self, ffns: Sequence[LayerFFN]) -> None:
        if len(ffns) != len(self.layer):
            raise ValueError(f"a candidate names {len(ffns)} layer FFNs; the supernet has {len(self.layer)} layers")

    def forward(self, input_ids: torch.Tensor, ffns: Sequence[LayerFFN], *, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_all: bool = False) -> SuperNetOutput:
        """Run the candidate ``ffns`` with the shared weights."""
        self.check(ffns)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x, mask = self.embeddings(input_ids, token_type_ids), attention_mask_to_bool(attention_mask)
        states, scores = [x], []
        for layer, ffn in zip(self.layer, ffns):
            x, score = layer(x, mask, output_all, layer_ffn=ffn)
            states.append(x)
            scores.append(score)
        return SuperNetOutput(last_hidden_state=x, hidden_states=tuple(states) if output_all else None,
                              attention_scores=tuple(scores) if output_all else None)

    def candidate_config(self, ffns: Sequence[LayerFFN]) -> EfficientBertConfig:
        """The standalone model's config: this one with the candidate's expressions."""
        self.check(ffns)
        settings = {k: v for k, v in self.config.to_dict().items()
                    if k not in ("max_stacks", "model_type", "transformers_version", "architectures")}
        return EfficientBertConfig(**{**settings, "ffn_expressions": [str(f) for f in ffns]})

    @torch.no_grad()
    def extract(self, ffns: Sequence[LayerFFN]) -> EfficientBertModel:
        """The standalone EfficientBERT of candidate ``ffns`` holding copies of the weights it uses here: both
        compute the same function (its pooler, which the supernet does not train, is freshly initialised)."""
        model = EfficientBertModel(self.candidate_config(ffns))
        model.embeddings.load_state_dict(self.embeddings.state_dict())
        for source, target, ffn in zip(self.layer, model.layer, ffns):
            target.attention.load_state_dict(source.attention.state_dict())
            target.ffn.load_state_dict(source.ffn.extract(ffn).state_dict())
        return model.train(self.training)


def supernet_config(bert_config, max_stacks: int = max(STACKS), **overrides) -> EfficientBertConfig:
    """A supernet config of a BERT's shape (layers, hidden, heads, vocabulary, positions) whose FFN inner width is the
    hidden width, as EfficientBERT's (module docstring)."""
    keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id", "initializer_range")
    settings = {k: getattr(bert_config, k) for k in keep if hasattr(bert_config, k)}
    settings["intermediate_size"] = bert_config.hidden_size
    config = EfficientBertConfig(**{**settings, **overrides})
    config.max_stacks = max_stacks
    return config


# ------------------------------------------------------------------------------------------ warm start
@torch.no_grad()
def warm_start_from_bert(supernet: EfficientBertSuperNet, source="minilm-offline", *, importance: str = "taylor",
                         importance_batches=None) -> EfficientBertSuperNet:
    """Copy a pretrained BERT of the supernet's shape into it (in place; returned): embeddings and attention as they
    are, the FFN neurons (ordered by ``importance``, ``"taylor"`` | ``"magnitude"`` | ``"none"``) dealt out to the
    stacked blocks in groups of the supernet's inner width (cycling when the source has fewer groups than blocks).
    The hidden order is kept (module docstring). Errors name the field that does not fit."""
    from ..warmstart import load_source, magnitude_importance, source_supernet, taylor_importance, warm_start

    if supernet.config.embedding_size:
        raise ValueError("warm_start_from_bert: the supernet has a factorised embedding (embedding_size); the source "
                         "BERT's embeddings do not fit it")
    model, _ = load_source(source)
    c, t = model.config, supernet.config
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads"):
        if getattr(c, field) != getattr(t, field):
            raise ValueError(f"warm_start_from_bert: the source's {field} {getattr(c, field)} differs from the "
                             f"supernet's {getattr(t, field)}")
    if c.intermediate_size < t.intermediate_size:
        raise ValueError(f"warm_start_from_bert: the source's intermediate_size {c.intermediate_size} is smaller than "
                         f"the supernet's {t.intermediate_size}")
    big = source_supernet(model, "headwise")
    if importance != "none":
        if importance == "taylor":
            from ..warmstart import importance_sample

            scores = taylor_importance(big, importance_sample() if importance_batches is None else importance_batches,
                                       depths=[c.num_hidden_layers])
        elif importance == "magnitude":
            scores = magnitude_importance(big)
        else:
            raise ValueError(f"warm_start_from_bert: importance must be taylor, magnitude or none, got {importance!r}")
        # only the FFN neurons move: hidden dimensions (the teacher's hidden states need no projection) and the
        # dimensions within heads keep their order (decreasing "scores" = the identity permutation)
        def keep(t: torch.Tensor) -> torch.Tensor:
            return torch.arange(t.shape[-1], 0, -1, dtype=t.dtype).expand_as(t).clone()

        scores = dataclasses.replace(scores, hidden=keep(scores.hidden), qk=keep(scores.qk), v=keep(scores.v))
        big = warm_start(source_supernet(model, "headwise"), model, importance=scores)
    bert = big.bert
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        getattr(supernet.embeddings, name).load_state_dict(
            {k: v[: getattr(supernet.embeddings, name).weight.shape[0]] if name.endswith("s") else v
             for k, v in getattr(bert.embeddings, name).state_dict().items()})
    width, groups = t.intermediate_size, c.intermediate_size // t.intermediate_size
    for source_layer, target in zip(bert.encoder.layer, supernet.layer):
        target.attention.load_state_dict(source_layer.attention.state_dict())
        up, down = source_layer.intermediate.dense, source_layer.output.dense
        for k, block in enumerate(target.ffn.blocks):
            neurons = slice((k % groups) * width, (k % groups + 1) * width)
            block.dense1.weight.copy_(up.weight[neurons])
            block.dense1.bias.copy_(up.bias[neurons])
            block.dense2.weight.copy_(down.weight[:, neurons])
            block.dense2.bias.copy_(down.bias)
            block.norm.load_state_dict(source_layer.output.LayerNorm.state_dict())
    supernet.config.warm_start = {"source": source if isinstance(source, str) else type(source).__name__,
                                  "ffn_importance": importance}
    return supernet


# ------------------------------------------------------------------------------------------- parameters
def ffn_params(ffn: LayerFFN, hidden: int, inner: int) -> int:
    """Parameters of one layer's FFN at its size: per block ``wb1`` and ``wb2`` at width ``inner // ratio`` (with
    biases) and a LayerNorm."""
    width = max(1, inner // ffn.ratio)
    return ffn.stacks * (hidden * width + width + width * hidden + hidden + 2 * hidden)


def candidate_params(config: EfficientBertConfig, ffns: Sequence[LayerFFN], *, embeddings: bool = True) -> int:
    """All parameters of the standalone model of ``ffns`` (pooler included; ``embeddings=False`` leaves out the
    embedding tables, which do not cost time per token)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    if len(ffns) != layers:
        raise ValueError(f"candidate_params: {len(ffns)} layer FFNs for {layers} layers")
    attention = layers * (4 * (h * h + h) + 2 * h)
    pooler = h * h + h
    e = config.embedding_size
    tables = ((config.vocab_size * (e or h)) + (3 * e * h + h if e else 0)
              + (config.max_position_embeddings + config.type_vocab_size) * h + 2 * h)
    return (tables if embeddings else 0) + attention + pooler + sum(
        ffn_params(f, h, config.intermediate_size) for f in ffns)


def fixed_supernet_candidate(config: EfficientBertConfig) -> Candidate:
    """Every layer BERT's gelu FFN in ``config.max_stacks`` stacked blocks at full width (ratio 1), e.g.
    ``linear4_1(gelu(linear4_1(x,wb1)),wb2)``: the whole supernet, every weight used once. This is what the official
    warm-up distils (its ``Supernet``: ``num_stacked_ffn = 4`` blocks of dense1 -> gelu -> dense2 with residual and
    LayerNorm at ``ffn_expansion_ratio = 1``, trained as a plain network before any search), because stages 1-2
    initialise every candidate from it (each candidate's blocks and widths are slices of these weights) and stage 3
    starts its weight-sharing training from it."""
    stacks = int(getattr(config, "max_stacks", max(STACKS)))
    ffn = LayerFFN(parse(BERT_FFN).expr, stacks, 1)
    return tuple(ffn for _ in range(config.num_hidden_layers))


def uniform_candidate(config: EfficientBertConfig, text: str = BERT_FFN) -> Candidate:
    """Every layer the same FFN (default BERT's: the search's start, and the plain-gelu baseline)."""
    return tuple(parse(text) for _ in range(config.num_hidden_layers))
