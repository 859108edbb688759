"""AtbBert: a BERT whose Q/K/V size is decoupled from its hidden size, as a stock `transformers` model.

AutoTinyBERT's architectures have ``d_qkv != d_m`` (e.g. S1 = 5/564/1054/8/512), which a plain
``BertConfig`` cannot express. ``AtbBertConfig`` adds one field, ``qkv_size``; the attention output
projection maps ``qkv_size -> hidden_size``. Everything else (module names included) mirrors Hugging
Face's ``modeling_bert.py``, so that

* a model with ``qkv_size == hidden_size`` has exactly the state dict of a ``BertForMaskedLM`` and is
  exported as a plain BERT checkpoint (``atb.extract.to_bert``);
* the SuperPLM (``atb.superbert.SuperBert``) is this very model built at its maximum size and told which
  sub-model to run: the blocks are made of elastic layers (``atb.elastic``), which at their own size
  are ordinary layers.

After ``import atb`` the family is registered with ``AutoConfig`` / ``AutoModel`` / ``AutoModelForMaskedLM``
/ ``AutoModelForSequenceClassification`` / ``AutoModelForQuestionAnswering``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.modeling_outputs import MaskedLMOutput, QuestionAnsweringModelOutput, SequenceClassifierOutput
from transformers.utils import ModelOutput

from .dropout import Dropout, cheap_masks, dropout_matmul
from .elastic import ElasticEmbedding, ElasticLayerNorm, ElasticLinear, linear_first_columns
from .space import Arch

IGNORE_INDEX = -100  # the label of positions that are not predicted (as in torch and the MLM collator)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the masked tokens.

    ``logits`` ``[..., V]``, ``labels`` ``[...]``: the original id where a token was masked, -100 elsewhere
    (``SuperBert`` passes only the masked rows). No rows at all give 0 (with a graph).
    """
    logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


class AtbBertConfig(PreTrainedConfig):
    """``BertConfig`` plus ``qkv_size`` (d_qkv). Only the absolute-position, GELU, encoder-only BERT."""

    model_type = "atb-bert"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        qkv_size: int | None = None,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int = 0,
        classifier_dropout: float | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.qkv_size = hidden_size if qkv_size is None else qkv_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.classifier_dropout = classifier_dropout
        if hidden_act != "gelu":
            raise ValueError(f"AtbBertConfig.hidden_act: only 'gelu' is implemented, got {hidden_act!r}")
        if self.qkv_size % num_attention_heads:
            raise ValueError(
                f"AtbBertConfig.qkv_size={self.qkv_size} is not divisible by num_attention_heads={num_attention_heads}"
            )
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def qkv_groups(self) -> int:
        """How the rows of Q/K/V are sliced into sub-models: 1 = contiguous (see ``atb.elastic``)."""
        return 1

    @property
    def arch(self) -> Arch:
        return Arch(self.num_hidden_layers, self.hidden_size, self.intermediate_size,
                    self.num_attention_heads, self.qkv_size)

    @classmethod
    def from_arch(cls, arch: Arch, **kwargs) -> AtbBertConfig:
        return cls(num_hidden_layers=arch.layers, hidden_size=arch.hidden, intermediate_size=arch.ffn,
                   num_attention_heads=arch.heads, qkv_size=arch.qkv, **kwargs)


# --------------------------------------------------------------------------------------------- blocks
class AtbBertEmbeddings(nn.Module):
    """Word + position + segment embeddings, LayerNorm, dropout (as in BERT), all of width ``hidden``."""

    def __init__(self, config: AtbBertConfig):
        super().__init__()
        h = config.hidden_size
        self.word_embeddings = ElasticEmbedding(config.vocab_size, h, padding_idx=config.pad_token_id)
        self.position_embeddings = ElasticEmbedding(config.max_position_embeddings, h)
        self.token_type_embeddings = ElasticEmbedding(config.type_vocab_size, h)
        self.LayerNorm = ElasticLayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def set_active(self, arch: Arch) -> None:
        for m in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings, self.LayerNorm):
            m.set_active(arch.hidden)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool key mask (True: attend) as a bias added to the attention logits: 0 where True, ``finfo(dtype).min``
    elsewhere. The probabilities are those of setting the masked logits to ``finfo.min`` (``torch.where``), bit for
    bit: a masked logit becomes ``finfo.min`` plus a score, whose exponential is 0 either way. But an addition hands
    its gradient back untouched, where ``where`` writes a masked copy of it: one pass over ``[B, h, T, T]`` fewer
    (tests/test_superbert.py: the same numbers in fp32 and bf16)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def attention_logits(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, *,
                     keep_scores: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logits, scores)`` of queries and keys ``[B, h, T, d_head]``: the pre-softmax scores ``Q K^T / sqrt(d_head)``
    and the logits, the scores plus :func:`additive_mask` of the bool key ``mask`` (``[B, 1, 1, T]``, True: attend;
    None: every key). ``scores`` is None unless ``keep_scores`` (distillation reads them unmasked).

    Computed where the numbers lie: the product is divided in place, and unless the scores are kept the mask is added
    to them in place too. The same numbers as new tensors (no operation here needs its input for its gradient), with
    one or two fewer ``[B, h, T, T]`` tensors allocated per layer and step."""
    scores = (q @ k.transpose(-1, -2)).div_(math.sqrt(q.shape[-1]))
    if mask is None:
        return scores, scores if keep_scores else None
    bias = additive_mask(mask, scores.dtype)
    return (scores + bias, scores) if keep_scores else (scores.add_(bias), None)


class AtbBertSelfAttention(nn.Module):
    """Multi-head attention with ``qkv`` = heads x head_size, independent of the hidden size."""

    def __init__(self, config: AtbBertConfig):
        super().__init__()
        h, qkv, groups = config.hidden_size, config.qkv_size, config.qkv_groups
        self.query = ElasticLinear(h, qkv, out_groups=groups)
        self.key = ElasticLinear(h, qkv, out_groups=groups)
        self.value = ElasticLinear(h, qkv, out_groups=groups)
        self.dropout_prob = config.attention_probs_dropout_prob
        self.num_heads = config.num_attention_heads
        self.head_size = qkv // self.num_heads

    def set_active(self, arch: Arch) -> None:
        for m in (self.query, self.key, self.value):
            m.set_active(arch.hidden, arch.qkv)
        self.num_heads, self.head_size = arch.heads, arch.head_size

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, output_scores: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``mask``: bool ``[B, 1, 1, T]``, True where a key may be attended to.

        With ``output_scores`` the attention is computed explicitly so the pre-softmax scores
        ``Q K^T / sqrt(d_head)`` (no mask added) can be returned for distillation; so it is when training on a CPU,
        where the probabilities' dropout is cheaper in :mod:`atb.dropout` than in the fused kernel; otherwise the fused
        ``scaled_dot_product_attention`` kernel is used.
        """
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        p = self.dropout_prob if self.training else 0.0
        scores = None
        if output_scores or (p and cheap_masks(q.device)):  # a CPU's fused kernel would draw Bernoulli variables
            logits, scores = attention_logits(q, k, mask, keep_scores=output_scores)
            context = dropout_matmul(logits.softmax(-1), p, v)
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        batch, _, seq, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_size)
        return context, scores if output_scores else None


class AtbBertResidualOutput(nn.Module):
    """Dense projection back to ``hidden``, dropout, residual, LayerNorm (BERT's SelfOutput / Output)."""

    def __init__(self, config: AtbBertConfig, in_size: int, in_groups: int = 1):
        super().__init__()
        self.dense = ElasticLinear(in_size, config.hidden_size, in_groups=in_groups)
        self.LayerNorm = ElasticLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def set_active(self, in_size: int, hidden: int) -> None:
        self.dense.set_active(in_size, hidden)
        self.LayerNorm.set_active(hidden)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class AtbBertAttention(nn.Module):
    def __init__(self, config: AtbBertConfig):
        super().__init__()
        self.self = AtbBertSelfAttention(config)
        # The attention output projection maps d_qkv -> d_m; its input columns are sliced like Q/K/V rows.
        self.output = AtbBertResidualOutput(config, config.qkv_size, in_groups=config.qkv_groups)

    def set_active(self, arch: Arch) -> None:
        self.self.set_active(arch)
        self.output.set_active(arch.qkv, arch.hidden)

    def forward(self, x, mask, output_scores):
        context, scores = self.self(x, mask, output_scores)
        return self.output(context, x), scores


class AtbBertIntermediate(nn.Module):
    def __init__(self, config: AtbBertConfig):
        super().__init__()
        self.dense = ElasticLinear(config.hidden_size, config.intermediate_size)

    def set_active(self, arch: Arch) -> None:
        self.dense.set_active(arch.hidden, arch.ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class AtbBertLayer(nn.Module):
    def __init__(self, config: AtbBertConfig):
        super().__init__()
        self.attention = AtbBertAttention(config)
        self.intermediate = AtbBertIntermediate(config)
        self.output = AtbBertResidualOutput(config, config.intermediate_size)

    def set_active(self, arch: Arch) -> None:
        self.attention.set_active(arch)
        self.intermediate.set_active(arch)
        self.output.set_active(arch.ffn, arch.hidden)

    def forward(self, x, mask, output_scores):
        x, scores = self.attention(x, mask, output_scores)
        return self.output(self.intermediate(x), x), scores


class AtbBertEncoder(nn.Module):
    """A stack of layers of which the first ``num_active`` run (the SuperPLM's elastic depth)."""

    def __init__(self, config: AtbBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(AtbBertLayer(config) for _ in range(config.num_hidden_layers))
        self.num_active = config.num_hidden_layers

    def set_active(self, arch: Arch) -> None:
        if arch.layers > len(self.layer):
            raise ValueError(f"active depth {arch.layers} exceeds the maximum {len(self.layer)}")
        self.num_active = arch.layers
        for layer in self.layer[: arch.layers]:
            layer.set_active(arch)

    def forward(self, x, mask, output_last_scores: bool, output_all: bool = False):
        """``(last hidden state, last layer's scores or None)``; with ``output_all`` also ``(hidden states,
        scores)`` of every active layer (the input first: ``num_active + 1`` states, ``num_active`` scores)."""
        scores, states, all_scores = None, [x], []
        for i, layer in enumerate(self.layer[: self.num_active]):
            x, scores = layer(x, mask, output_all or (output_last_scores and i == self.num_active - 1))
            if output_all:
                states.append(x)
                all_scores.append(scores)
        if output_all:
            return x, (scores if output_last_scores else None), (tuple(states), tuple(all_scores))
        return x, scores


class AtbBertPooler(nn.Module):
    def __init__(self, config: AtbBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))


class AtbBertLMHead(nn.Module):
    """BERT's MLM head: dense + GELU + LayerNorm, then the (tied) word-embedding matrix and a bias."""

    def __init__(self, config: AtbBertConfig):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = ElasticLinear(config.hidden_size, config.hidden_size)
        self.transform.LayerNorm = ElasticLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def set_active(self, arch: Arch) -> None:
        self.transform.dense.set_active(arch.hidden, arch.hidden)
        self.transform.LayerNorm.set_active(arch.hidden)

    def forward(self, x: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        """``word_embeddings``: the whole tied table ``[V, max hidden]``; the active sub-model reads its first
        ``hidden`` columns (:func:`atb.elastic.linear_first_columns`)."""
        x = self.transform.LayerNorm(F.gelu(self.transform.dense(x)))
        return linear_first_columns(x, word_embeddings, self.bias)


# --------------------------------------------------------------------------------------------- models
@dataclass
class AtbBertOutput(ModelOutput):
    """``last_hidden_state`` [B, T, d_m]; ``pooler_output`` [B, d_m] if the model has a pooler;
    ``attention_scores`` [B, h, T, T]: the LAST layer's pre-softmax scores, when asked for; with
    ``output_all_layers``, ``hidden_states`` (the embeddings' output and every layer's) and ``all_attention_scores``
    (every layer's pre-softmax scores), for layer-wise distillation."""

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    attention_scores: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    all_attention_scores: tuple[torch.FloatTensor, ...] | None = None


def attention_mask_to_bool(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """[B, T] 1/0 padding mask -> [B, 1, 1, T] bool mask over keys (None stays None)."""
    return None if attention_mask is None else attention_mask.bool()[:, None, None, :]


class AtbBertPreTrainedModel(PreTrainedModel):
    config_class = AtbBertConfig
    base_model_prefix = "bert"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # normal(0, initializer_range) Linear/Embedding, LayerNorm 1/0
        if isinstance(module, AtbBertLMHead):
            init.zeros_(module.bias)


class AtbBertModel(AtbBertPreTrainedModel):
    """The encoder. ``set_active(arch)`` makes it run a sub-model (used by the SuperPLM)."""

    def __init__(self, config: AtbBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AtbBertEmbeddings(config)
        self.encoder = AtbBertEncoder(config)
        self.pooler = AtbBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def set_active(self, arch: Arch) -> None:
        if self.pooler is not None and arch.hidden != self.config.hidden_size:
            raise ValueError("a model with a pooler cannot run a narrower sub-model")
        self.embeddings.set_active(arch)
        self.encoder.set_active(arch)

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_attention_scores: bool = False,
        output_all_layers: bool = False,
        **unused,
    ) -> AtbBertOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        mask = attention_mask_to_bool(attention_mask)
        states = all_scores = None
        if output_all_layers:
            x, scores, (states, all_scores) = self.encoder(x, mask, output_attention_scores, output_all=True)
        else:
            x, scores = self.encoder(x, mask, output_attention_scores)
        pooled = self.pooler(x) if self.pooler is not None else None
        return AtbBertOutput(last_hidden_state=x, pooler_output=pooled, attention_scores=scores, hidden_states=states,
                             all_attention_scores=all_scores)


class AtbBertForMaskedLM(AtbBertPreTrainedModel):
    """Encoder + tied MLM head; returns logits at every position, like ``BertForMaskedLM``."""

    def __init__(self, config: AtbBertConfig):
        super().__init__(config)
        self.bert = AtbBertModel(config, add_pooling_layer=False)
        self.cls = nn.Module()
        self.cls.predictions = AtbBertLMHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **unused,
    ) -> MaskedLMOutput:
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = self.cls.predictions(out.last_hidden_state, self.bert.embeddings.word_embeddings.weight)
        loss = None if labels is None else masked_lm_loss(logits, labels)
        return MaskedLMOutput(loss=loss, logits=logits)


class AtbBertForSequenceClassification(AtbBertPreTrainedModel):
    """Pooler + dropout + linear classifier (regression when ``num_labels == 1``), as in BERT."""

    bert_class: type[PreTrainedModel] = AtbBertModel  # the encoder under the head (a subclass may swap it)

    def __init__(self, config: AtbBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = self.bert_class(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **unused,
    ) -> SequenceClassifierOutput:
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = F.cross_entropy(logits, labels.long())
        return SequenceClassifierOutput(loss=loss, logits=logits)


class AtbBertForQuestionAnswering(AtbBertPreTrainedModel):
    """Extractive QA: a start and an end logit per token, taken from the last layer's states."""

    bert_class: type[PreTrainedModel] = AtbBertModel  # the encoder under the head (a subclass may swap it)

    def __init__(self, config: AtbBertConfig):
        super().__init__(config)
        self.bert = self.bert_class(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        **unused,
    ) -> QuestionAnsweringModelOutput:
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).unbind(-1)  # each [B, T]
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]  # positions outside the window are ignored, as in BERT
            loss = (
                F.cross_entropy(start_logits, start_positions.clamp(0, ignored), ignore_index=ignored)
                + F.cross_entropy(end_logits, end_positions.clamp(0, ignored), ignore_index=ignored)
            ) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


def register_family(config_class: type[PreTrainedConfig], *, model: type, sequence_classification: type,
                    question_answering: type, masked_lm: type | None = None) -> None:
    """Make ``AutoConfig`` and ``AutoModel*.from_pretrained`` load the checkpoints of one model family (its
    ``model_type``), each head with its class (idempotent): ``atb-bert`` here, EfficientBERT's and AutoBERT-Zero's
    encoders in their packages."""
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto, cls in ((AutoModel, model), (AutoModelForMaskedLM, masked_lm),
                      (AutoModelForSequenceClassification, sequence_classification),
                      (AutoModelForQuestionAnswering, question_answering)):
        if cls is not None:
            auto.register(config_class, cls, exist_ok=True)


def register_auto_classes() -> None:
    """Make ``AutoModel*.from_pretrained`` load ``atb-bert`` checkpoints (idempotent)."""
    register_family(AtbBertConfig, model=AtbBertModel, masked_lm=AtbBertForMaskedLM,
                    sequence_classification=AtbBertForSequenceClassification,
                    question_answering=AtbBertForQuestionAnswering)
