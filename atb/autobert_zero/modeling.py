"""The standalone AutoBERT-Zero: a BERT whose every layer mixes tokens its own way.

Each layer is BERT's (post-LayerNorm) layer with its token mixer replaced by the layer's :mod:`.space` spec:

* ``attn:<graph>``: an **attention computation graph** (:mod:`.graph`) over the per-head projections Q, K, V of the
  layer input (and X, the input itself split into heads), then BERT's output projection, residual and LayerNorm.
  Only the projections the graph reads exist (a published layer such as ``softmax(Q (-logsigmoid(K))ᵀ/√d) Q`` has
  no V);
* ``conv:<kernel>``: a **convolution** of that kernel (:class:`~.conv.ConvMixer`, ``config.conv_type`` light or
  dynamic), then the same output projection, residual and LayerNorm;

followed by BERT's FFN. ``AutoBertZeroConfig`` is ``atb-bert``'s config (:class:`atb.modeling.AtbBertConfig`) plus
``layer_specs`` (one string per layer) and ``conv_type``; the model is registered with the ``transformers`` Auto
classes as ``atb-autobert-zero``, so ``save_pretrained`` / ``AutoModel*.from_pretrained`` round-trip it.

The same layer class serves the BIWS supernet (:mod:`.supernet`): built with ``spec=None`` it holds both
branches (all three projections, and a convolution of the largest kernel) and is told its spec with each call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..elastic import ElasticLinear
from ..modeling import (
    AtbBertConfig,
    AtbBertEmbeddings,
    AtbBertForQuestionAnswering,
    AtbBertForSequenceClassification,
    AtbBertIntermediate,
    AtbBertOutput,
    AtbBertPooler,
    AtbBertPreTrainedModel,
    AtbBertResidualOutput,
    register_family,
)
from .conv import CONV_TYPES, ConvMixer, check_kernel
from .graph import Node, evaluate, inputs_used, problems
from .space import AttentionLayer, ConvLayer, LayerSpec, parse_layer, published_candidate, standard_candidate

PROJECTIONS = {"Q": "query", "K": "key", "V": "value"}  # graph leaf -> projection (X needs none)


class AutoBertZeroConfig(AtbBertConfig):
    """``AtbBertConfig`` + ``layer_specs`` (``attn:<graph>`` / ``conv:<kernel>`` per layer; default BERT's attention
    everywhere) and ``conv_type`` (``light`` | ``dynamic``). ``qkv_size`` must equal ``hidden_size`` (a graph may add
    the layer input X to a projection)."""

    model_type = "atb-autobert-zero"

    def __init__(self, layer_specs: Sequence[str] | None = None, conv_type: str = "light", **kwargs):
        super().__init__(**kwargs)
        if self.qkv_size != self.hidden_size:
            raise ValueError(f"AutoBertZeroConfig.qkv_size {self.qkv_size} must equal hidden_size {self.hidden_size}")
        if conv_type not in CONV_TYPES:
            raise ValueError(f"AutoBertZeroConfig.conv_type must be one of {CONV_TYPES}, got {conv_type!r}")
        self.conv_type = conv_type
        self.layer_specs = [str(s) for s in (layer_specs or standard_candidate(self.num_hidden_layers))]
        if len(self.layer_specs) != self.num_hidden_layers:
            raise ValueError(f"AutoBertZeroConfig.layer_specs: {len(self.layer_specs)} specs for "
                             f"{self.num_hidden_layers} layers")
        for i, text in enumerate(self.layer_specs):
            try:
                spec = parse_layer(text)
            except ValueError as error:
                raise ValueError(f"AutoBertZeroConfig.layer_specs[{i}] {text!r}: {error}") from None
            found = problems(spec.graph, max_nodes=10 ** 6) if isinstance(spec, AttentionLayer) else []
            if found:
                raise ValueError(f"AutoBertZeroConfig.layer_specs[{i}] {text!r}: {'; '.join(found)}")

    @property
    def layers(self) -> list[LayerSpec]:
        return [parse_layer(text) for text in self.layer_specs]


# --------------------------------------------------------------------------------------------- blocks
class GraphAttention(nn.Module):
    """The attention branch: projections of the layer input into heads, the graph, heads merged (``[B, T, d]``).
    ``graph=None`` (supernet): all of Q, K, V, told the graph with each call."""

    def __init__(self, config: AutoBertZeroConfig, graph: Node | None):
        super().__init__()
        h = config.hidden_size
        used = inputs_used(graph) if graph is not None else frozenset(PROJECTIONS)
        for leaf, name in PROJECTIONS.items():
            setattr(self, name, ElasticLinear(h, h) if leaf in used else None)
        self.num_heads, self.head_size = config.num_attention_heads, h // config.num_attention_heads

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, graph: Node) -> torch.Tensor:
        inputs = {"X": self._heads(x)}
        for leaf in inputs_used(graph) - {"X"}:
            projection = getattr(self, PROJECTIONS[leaf])
            if projection is None:
                raise ValueError(f"graph {graph} reads {leaf}, which this layer has no projection for")
            inputs[leaf] = self._heads(projection(x))
        context = evaluate(graph, inputs, mask)
        batch, _, seq, _ = context.shape
        return context.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_size)


class AutoBertZeroLayer(nn.Module):
    """Token mixer (attention graph or convolution), output projection + residual + LayerNorm, BERT's FFN.
    ``spec=None``: the supernet's bi-branch layer (both mixers, the convolution at ``max_kernel``)."""

    def __init__(self, config: AutoBertZeroConfig, spec: LayerSpec | None, max_kernel: int | None = None):
        super().__init__()
        self.spec = spec
        attends = spec is None or isinstance(spec, AttentionLayer)
        convolves = spec is None or isinstance(spec, ConvLayer)
        self.attention = GraphAttention(config, None if spec is None else spec.graph) if attends else None
        kernel = check_kernel(max_kernel if spec is None else spec.kernel) if convolves else None
        self.conv = (ConvMixer(config.hidden_size, config.num_attention_heads, kernel, config.conv_type)
                     if convolves else None)
        self.mixer_output = AtbBertResidualOutput(config, config.hidden_size)
        self.intermediate = AtbBertIntermediate(config)
        self.output = AtbBertResidualOutput(config, config.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, spec: LayerSpec | None = None) -> torch.Tensor:
        """``mask`` ``[B, T]`` bool (True = real token) or None; ``spec`` only in the supernet."""
        spec = spec or self.spec
        if isinstance(spec, AttentionLayer):
            mixed = self.attention(x, mask, spec.graph)
        else:
            mixed = self.conv(x, mask, spec.kernel)
        x = self.mixer_output(mixed, x)
        return self.output(self.intermediate(x), x)


# --------------------------------------------------------------------------------------------- models
class AutoBertZeroPreTrainedModel(AtbBertPreTrainedModel):
    config_class = AutoBertZeroConfig


def bool_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, T]`` 1/0 -> ``[B, T]`` bool (True = real token), the form graphs and convolutions take."""
    return None if attention_mask is None else attention_mask.bool()


class AutoBertZeroModel(AutoBertZeroPreTrainedModel):
    def __init__(self, config: AutoBertZeroConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AtbBertEmbeddings(config)
        self.layer = nn.ModuleList(AutoBertZeroLayer(config, spec) for spec in config.layers)
        self.pooler = AtbBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **unused) -> AtbBertOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x, mask = self.embeddings(input_ids, token_type_ids), bool_mask(attention_mask)
        for layer in self.layer:
            x = layer(x, mask)
        pooled = self.pooler(x) if self.pooler is not None else None
        return AtbBertOutput(last_hidden_state=x, pooler_output=pooled)


class AutoBertZeroForSequenceClassification(AtbBertForSequenceClassification):
    """``atb-bert``'s classification head (pooler, dropout, linear; regression when ``num_labels == 1``)."""

    config_class = AutoBertZeroConfig
    bert_class = AutoBertZeroModel


class AutoBertZeroForQuestionAnswering(AtbBertForQuestionAnswering):
    """``atb-bert``'s extractive QA head (a start and an end logit per token)."""

    config_class = AutoBertZeroConfig
    bert_class = AutoBertZeroModel


def register_auto_classes() -> None:
    """Make ``AutoModel*.from_pretrained`` load ``atb-autobert-zero`` checkpoints (idempotent)."""
    register_family(AutoBertZeroConfig, model=AutoBertZeroModel,
                    sequence_classification=AutoBertZeroForSequenceClassification,
                    question_answering=AutoBertZeroForQuestionAnswering)


def count_parameters(config: AutoBertZeroConfig) -> int:
    """The standalone model's parameters (pooler included), counted on a model built on the meta device (no memory,
    no formula to keep in step with the code)."""
    with torch.device("meta"):
        return sum(p.numel() for p in AutoBertZeroModel(config).parameters())


def published_config(**overrides) -> AutoBertZeroConfig:
    """The published AutoBERT-Zero (the zoo entry): its layer pattern (:func:`.space.published_candidate`: convolutions
    of kernels 65, 9, 3, 7, 7, 3 alternating with its searched attention graphs) at BERT-base's size by default (12
    layers, hidden 768, 12 heads, FFN 3072), the size the paper reports; ``overrides`` give the size that fits a
    scale (``num_hidden_layers`` <= 12 keeps the pattern's first layers)."""
    settings = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
                **overrides}
    return AutoBertZeroConfig(**settings, layer_specs=[str(s) for s in
                                                       published_candidate(settings["num_hidden_layers"])])
