"""The standalone EfficientBERT: a BERT whose every layer has its own searched FFN expression.

``EfficientBertConfig`` is ``atb-bert``'s config (:class:`atb.modeling.AtbBertConfig`) plus one FFN expression per
layer (``ffn_expressions``, the official string form, sizes in the linear names) and, optionally, MobileBERT's
factorised embedding (``embedding_size``): tokens embedded in ``embedding_size`` dimensions, each concatenated with
its neighbours' (a 3-gram) and projected to the hidden size, as the published EfficientBERT does (hidden 540,
embedding 128). Attention is ``atb``'s (BERT's, post-LayerNorm); each layer's FFN is an
:class:`~atb.efficientbert.ffn.ExpressionFFN` fixed to its expression and size.

Registered with the ``transformers`` Auto classes as ``atb-efficientbert``, so ``save_pretrained`` /
``AutoModel*.from_pretrained`` round-trip it like any BERT. :func:`published_config` is the published model's shape
(official ``AutoBertConfig`` and ``nas_finetune.sh``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..dropout import Dropout
from ..modeling import (
    AtbBertAttention,
    AtbBertConfig,
    AtbBertForQuestionAnswering,
    AtbBertForSequenceClassification,
    AtbBertOutput,
    AtbBertPooler,
    AtbBertPreTrainedModel,
    attention_mask_to_bool,
    register_family,
)
from .expression import BERT_FFN, PUBLISHED, LayerFFN, parse, problems
from .ffn import ExpressionFFN


class EfficientBertConfig(AtbBertConfig):
    """``AtbBertConfig`` + ``ffn_expressions`` (one per layer; default BERT's FFN everywhere), ``embedding_size``
    (``None``: BERT's embeddings of the hidden width) and ``intermediate_size`` read as the FFN's full inner width,
    of which ``linear{i}_{j}`` uses ``1/j``."""

    model_type = "atb-efficientbert"

    def __init__(self, ffn_expressions: Sequence[str] | None = None, embedding_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ffn_expressions = list(ffn_expressions or [BERT_FFN] * self.num_hidden_layers)
        self.embedding_size = embedding_size
        if len(self.ffn_expressions) != self.num_hidden_layers:
            raise ValueError(f"EfficientBertConfig.ffn_expressions: {len(self.ffn_expressions)} expressions for "
                             f"{self.num_hidden_layers} layers")
        for i, text in enumerate(self.ffn_expressions):
            found = problems(parse(text), min_height=0, max_height=10 ** 6)
            if found:
                raise ValueError(f"EfficientBertConfig.ffn_expressions[{i}] {text!r}: {'; '.join(found)}")

    @property
    def layer_ffns(self) -> list[LayerFFN]:
        return [parse(text) for text in self.ffn_expressions]


def published_config(**overrides) -> EfficientBertConfig:
    """The published EfficientBERT: 6 layers, hidden 540, 12 heads, FFN inner width 540 (x 1/j), embedding 128,
    the six expressions of :data:`~atb.efficientbert.expression.PUBLISHED`."""
    return EfficientBertConfig(**{"num_hidden_layers": 6, "hidden_size": 540, "num_attention_heads": 12,
                                  "intermediate_size": 540, "embedding_size": 128,
                                  "ffn_expressions": list(PUBLISHED), **overrides})


class EfficientBertEmbeddings(nn.Module):
    """BERT's embeddings, or with ``embedding_size`` MobileBERT's: a 3-gram of narrow token embeddings projected to the
    hidden width (``[e(t+1), e(t), e(t-1)]``, zeros past the ends), plus position and segment embeddings."""

    def __init__(self, config: EfficientBertConfig):
        super().__init__()
        h, e = config.hidden_size, config.embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, e or h, padding_idx=config.pad_token_id)
        self.trigram = nn.Linear(3 * e, h) if e else None
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, h)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, h)
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids)
        if self.trigram is not None:
            after = F.pad(x[:, 1:], (0, 0, 0, 1))
            before = F.pad(x[:, :-1], (0, 0, 1, 0))
            x = self.trigram(torch.cat([after, x, before], dim=-1))
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = x + self.token_type_embeddings(token_type_ids) + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class EfficientBertLayer(nn.Module):
    """BERT's attention block, then the layer's expression FFN (its stacked blocks carry their own residual and
    LayerNorm): fixed to ``ffn`` in a standalone model, elastic (``config.max_stacks`` blocks, told the FFN with each
    call) in the supernet when ``ffn`` is None."""

    def __init__(self, config: EfficientBertConfig, ffn: LayerFFN | None):
        super().__init__()
        self.attention = AtbBertAttention(config)
        stacks = ffn.stacks if ffn is not None else config.max_stacks
        self.ffn = ExpressionFFN(config.hidden_size, config.intermediate_size, stacks,
                                 config.hidden_dropout_prob, config.layer_norm_eps, fixed=ffn)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, output_scores: bool,
                layer_ffn: LayerFFN | None = None):
        x, scores = self.attention(x, mask, output_scores)
        return self.ffn(x, layer_ffn), scores


class EfficientBertPreTrainedModel(AtbBertPreTrainedModel):
    config_class = EfficientBertConfig


class EfficientBertModel(EfficientBertPreTrainedModel):
    def __init__(self, config: EfficientBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = EfficientBertEmbeddings(config)
        self.layer = nn.ModuleList(EfficientBertLayer(config, ffn) for ffn in config.layer_ffns)
        self.pooler = AtbBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_attention_scores: bool = False,
                **unused) -> AtbBertOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x, mask, scores = self.embeddings(input_ids, token_type_ids), attention_mask_to_bool(attention_mask), None
        for i, layer in enumerate(self.layer):
            x, scores = layer(x, mask, output_attention_scores and i == len(self.layer) - 1)
        pooled = self.pooler(x) if self.pooler is not None else None
        return AtbBertOutput(last_hidden_state=x, pooler_output=pooled, attention_scores=scores)


class EfficientBertForSequenceClassification(AtbBertForSequenceClassification):
    """``atb-bert``'s classification head (pooler, dropout, linear; regression when ``num_labels == 1``) on an
    EfficientBERT encoder."""

    config_class = EfficientBertConfig
    bert_class = EfficientBertModel


class EfficientBertForQuestionAnswering(AtbBertForQuestionAnswering):
    """``atb-bert``'s extractive QA head (a start and an end logit per token) on an EfficientBERT encoder."""

    config_class = EfficientBertConfig
    bert_class = EfficientBertModel


def register_auto_classes() -> None:
    """Make ``AutoModel*.from_pretrained`` load ``atb-efficientbert`` checkpoints (idempotent)."""
    register_family(EfficientBertConfig, model=EfficientBertModel,
                    sequence_classification=EfficientBertForSequenceClassification,
                    question_answering=EfficientBertForQuestionAnswering)
