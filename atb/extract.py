"""Sub-model extraction and export.

``extract(super_model, arch)`` copies the sub-model's weights out of the SuperBERT into a standalone
``AtbBertForMaskedLM`` of exactly that size: a stock ``transformers`` model with its own config, which
``save_pretrained`` / ``AutoModelForMaskedLM.from_pretrained`` handle after ``import atb``.

``export(model, directory)`` writes what users deploy: when ``qkv == hidden`` the architecture is an
ordinary BERT and is written as a plain ``BertForMaskedLM`` checkpoint that stock ``transformers`` loads
without ``atb``; otherwise as an ``atb-bert`` checkpoint. Both in safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from .modeling import AtbBertConfig, AtbBertForMaskedLM, AtbBertModel
from .space import Arch
from .superbert import SuperBert

# Config fields an extracted model inherits from its SuperBERT (everything but the five sizes).
_INHERITED = ("vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
              "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range", "pad_token_id")


def extract(model: SuperBert, arch: Arch) -> AtbBertForMaskedLM:
    """A standalone copy of sub-model ``arch``: same outputs as ``model(..., arch=arch)``, own weights."""
    config = AtbBertConfig.from_arch(arch, **{k: getattr(model.config, k) for k in _INHERITED})
    standalone = AtbBertForMaskedLM(config)
    state = model.active_state_dict(arch)
    device = next(model.parameters()).device
    standalone.load_state_dict(state, strict=True)
    return standalone.to(device).train(model.training)


def to_bert(model: AtbBertForMaskedLM) -> BertForMaskedLM:
    """The same network as a plain ``BertForMaskedLM`` (only possible when ``qkv == hidden``)."""
    c = model.config
    if c.qkv_size != c.hidden_size:
        raise ValueError(
            f"qkv_size={c.qkv_size} != hidden_size={c.hidden_size}: a plain BertConfig cannot hold this model; "
            "save it with save_pretrained() as an atb-bert checkpoint instead"
        )
    config = BertConfig(
        hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size, **{k: getattr(c, k) for k in _INHERITED},
    )
    bert = BertForMaskedLM(config)
    state = dict(model.state_dict())
    # BERT stores the tied decoder explicitly; its bias is the head bias.
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    missing, unexpected = bert.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise RuntimeError(f"to_bert: state dict mismatch, missing={missing}, unexpected={unexpected}")
    return bert.to(next(model.parameters()).device).train(model.training)


def from_bert(model: BertModel | BertForMaskedLM) -> AtbBertModel | AtbBertForMaskedLM:
    """The inverse of :func:`to_bert`: any stock BERT as the ``atb`` model of the same shape and weights.

    Used to start from (or compare against) a pretrained BERT, e.g. the offline MiniLM teacher.
    """
    c = model.config
    config = AtbBertConfig(
        hidden_size=c.hidden_size, num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size, **{k: getattr(c, k) for k in _INHERITED},
    )
    if isinstance(model, BertForMaskedLM):
        target = AtbBertForMaskedLM(config)
    else:
        target = AtbBertModel(config, add_pooling_layer=model.pooler is not None)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith("cls.predictions.decoder") and not k.endswith(("position_ids", "token_type_ids"))}
    target.load_state_dict(state, strict=True)
    return target.to(next(model.parameters()).device).train(model.training)


def export(model: AtbBertForMaskedLM | SuperBert, directory: str | Path, arch: Arch | None = None) -> Path:
    """Write a deployable checkpoint (safetensors + config) of ``model`` (or of ``arch`` inside a SuperBERT).

    Returns the directory. A plain BERT checkpoint is written whenever the architecture allows it.
    """
    if isinstance(model, SuperBert):
        if arch is None:
            raise ValueError("export(SuperBert, ...) needs the arch to extract")
        model = extract(model, arch)
    directory = Path(directory)
    deployable = to_bert(model) if model.config.qkv_size == model.config.hidden_size else model
    with torch.no_grad():
        deployable.save_pretrained(directory, safe_serialization=True)
    return directory
