"""AutoBERT-Zero's bi-branch weight-sharing (BIWS) supernet: every candidate backbone is a sub-network.

Every layer holds both branches of :class:`~.modeling.AutoBertZeroLayer`: an **attention branch** (the Q, K, V
projections every attention graph shares; a graph uses the ones it reads) and a **convolution branch** (one kernel of
the largest size, which every kernel size shares by centre-cropping, :mod:`.conv`), plus one output projection and
one FFN shared by both. A **candidate** is one :mod:`.space` spec per layer; ``forward(ids, candidate)`` runs it with
the shared weights, and :meth:`AutoBertZeroSuperNet.extract` cuts out the standalone
:class:`~.modeling.AutoBertZeroModel` that computes the same function (tested). Candidates are scored with these
inherited weights (:mod:`.study`), which is what makes a search over thousands of graphs affordable.

**Warm start** (:func:`warm_start_from_bert`, the mini recipe; the paper pre-trains its supernet from scratch): a
pretrained BERT of the supernet's shape (the offline MiniLM) is copied in: embeddings, Q/K/V, the output projection
with its LayerNorm, the FFN. The convolution branch has no counterpart in BERT; its input projection starts as V
(a convolution then averages the values of a window, as an attention head that looks at its neighbours would), its
kernel at zero (every window a plain average until trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..supernet import SuperNetOutput
from ..modeling import AtbBertEmbeddings
from .conv import check_kernel
from .modeling import AutoBertZeroConfig, AutoBertZeroLayer, AutoBertZeroModel, AutoBertZeroPreTrainedModel, \
    bool_mask, count_parameters
from .space import DEFAULT_KERNELS, AttentionLayer, Candidate, ConvLayer, LayerSpec, parse_layer



def as_candidate(specs: Sequence[LayerSpec | str]) -> Candidate:
    """A candidate from layer specs or their strings (``attn:...`` / ``conv:k``)."""
    return tuple(parse_layer(s) if isinstance(s, str) else s for s in specs)


class AutoBertZeroSuperNet(AutoBertZeroPreTrainedModel):
    """Embeddings, then per layer both branches (``config.kernels``: the convolution kernels candidates may use; the
    branch holds the largest). ``config.layer_specs`` is not used (the candidate comes with each call)."""

    def __init__(self, config: AutoBertZeroConfig):
        super().__init__(config)
        config.kernels = sorted({check_kernel(int(k)) for k in getattr(config, "kernels", DEFAULT_KERNELS)})
        self.embeddings = AtbBertEmbeddings(config)
        self.layer = nn.ModuleList(AutoBertZeroLayer(config, None, max(config.kernels))
                                   for _ in range(config.num_hidden_layers))
        self.post_init()

    def check(self, candidate: Sequence[LayerSpec]) -> None:
        if len(candidate) != len(self.layer):
            raise ValueError(f"a candidate names {len(candidate)} layers; the supernet has {len(self.layer)}")
        for i, spec in enumerate(candidate):
            if isinstance(spec, ConvLayer) and spec.kernel not in self.config.kernels:
                raise ValueError(f"candidate layer {i}: kernel {spec.kernel} is not one of the supernet's "
                                 f"{self.config.kernels}")
            if not isinstance(spec, (AttentionLayer, ConvLayer)):
                raise ValueError(f"candidate layer {i}: {spec!r} is neither an attention graph nor a convolution")

    def forward(self, input_ids: torch.Tensor, candidate: Sequence[LayerSpec], *,
                attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                output_all: bool = False) -> SuperNetOutput:
        """Run ``candidate`` with the shared weights. With ``output_all``, ``hidden_states`` holds the embeddings'
        output and every layer's (no attention scores: a graph's or a convolution's are not BERT's)."""
        self.check(candidate)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x, mask = self.embeddings(input_ids, token_type_ids), bool_mask(attention_mask)
        states = [x]
        for layer, spec in zip(self.layer, candidate):
            x = layer(x, mask, spec)
            states.append(x)
        return SuperNetOutput(last_hidden_state=x, hidden_states=tuple(states) if output_all else None)

    def candidate_config(self, candidate: Sequence[LayerSpec]) -> AutoBertZeroConfig:
        """The standalone model's config: this one with the candidate's specs."""
        self.check(candidate)
        settings = {k: v for k, v in self.config.to_dict().items()
                    if k not in ("kernels", "warm_start", "model_type", "transformers_version", "architectures")}
        return AutoBertZeroConfig(**{**settings, "layer_specs": [str(s) for s in candidate]})

    @torch.no_grad()
    def extract(self, candidate: Sequence[LayerSpec]) -> AutoBertZeroModel:
        """The standalone model of ``candidate`` holding copies of the weights it uses here (its pooler, which the
        supernet does not train, freshly initialised): both compute the same function."""
        model = AutoBertZeroModel(self.candidate_config(candidate))
        model.embeddings.load_state_dict(self.embeddings.state_dict())
        for source, target, spec in zip(self.layer, model.layer, candidate):
            for name in ("mixer_output", "intermediate", "output"):
                getattr(target, name).load_state_dict(getattr(source, name).state_dict())
            if isinstance(spec, AttentionLayer):
                for name in ("query", "key", "value"):
                    if getattr(target.attention, name) is not None:
                        getattr(target.attention, name).load_state_dict(getattr(source.attention, name).state_dict())
            else:
                target.conv.load_state_dict(source.conv.extract(spec.kernel).state_dict())
        return model.train(self.training)

    def candidate_params(self, candidate: Sequence[LayerSpec]) -> int:
        """Parameters of the standalone model of ``candidate`` (pooler included)."""
        return count_parameters(self.candidate_config(candidate))

    def conv_parameters(self) -> dict[str, nn.Parameter]:
        """The convolution branch's own parameters, every layer's, by their ``state_dict`` names (its input
        projection and its kernel or kernel generator): those only convolution candidates use. The output
        projection, LayerNorms and FFN are shared with the attention branch and are not among them, so training
        these alone leaves every attention candidate as it was (:mod:`.local_kd`)."""
        return {f"layer.{i}.conv.{name}": p for i, layer in enumerate(self.layer)
                for name, p in layer.conv.named_parameters()}


def supernet_config(bert_config, kernels: Sequence[int] = DEFAULT_KERNELS, conv_type: str = "light",
                    **overrides) -> AutoBertZeroConfig:
    """A supernet config of a BERT's shape (layers, hidden, heads, FFN, vocabulary, positions)."""
    keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id", "initializer_range")
    settings = {k: getattr(bert_config, k) for k in keep if hasattr(bert_config, k)}
    config = AutoBertZeroConfig(**{**settings, "conv_type": conv_type, **overrides})
    config.kernels = sorted(int(k) for k in kernels)
    return config


@torch.no_grad()
def warm_start_from_bert(supernet: AutoBertZeroSuperNet, source="minilm-offline") -> AutoBertZeroSuperNet:
    """Copy a pretrained BERT of the supernet's shape into it (in place; returned; module docstring). Errors name the
    field that does not fit."""
    from ..warmstart import load_source

    bert = load_source(source)[0].bert
    c, t = bert.config, supernet.config
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if getattr(c, field) != getattr(t, field):
            raise ValueError(f"warm_start_from_bert: the source's {field} {getattr(c, field)} differs from the "
                             f"supernet's {getattr(t, field)}")
    supernet.embeddings.load_state_dict(bert.embeddings.state_dict())
    for bert_layer, layer in zip(bert.encoder.layer, supernet.layer):
        attention = bert_layer.attention
        for name in ("query", "key", "value"):
            getattr(layer.attention, name).load_state_dict(getattr(attention.self, name).state_dict())
        layer.conv.input.load_state_dict(attention.self.value.state_dict())
        layer.mixer_output.load_state_dict(attention.output.state_dict())  # the same blocks as atb-bert's
        layer.intermediate.load_state_dict(bert_layer.intermediate.state_dict())
        layer.output.load_state_dict(bert_layer.output.state_dict())
    supernet.config.warm_start = {"source": source if isinstance(source, str) else type(source).__name__}
    return supernet
