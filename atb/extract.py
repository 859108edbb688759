"""Sub-model extraction and export.

``extract(super_model, arch)`` copies the sub-model's weights out of the SuperPLM (``SuperBert``) into a
standalone ``AtbBertForMaskedLM`` of exactly that size: a stock ``transformers`` model with its own config, which
``save_pretrained`` / ``AutoModelForMaskedLM.from_pretrained`` handle after ``import atb``.

``export(model, directory)`` writes what users deploy: when ``qkv == hidden`` the architecture is an
ordinary BERT and is written as a plain ``BertForMaskedLM`` checkpoint that stock ``transformers`` loads
without ``atb``; otherwise as an ``atb-bert`` checkpoint. Both in safetensors, beside the tokenizer and a
model card (``README.md``, :func:`export_card`), so that ``pipeline("fill-mask", model=directory)`` and
``AutoTokenizer.from_pretrained(directory)`` work with nothing passed by hand (after ``import atb`` for an
``atb-bert`` checkpoint). :func:`write_card` is the one writer of model cards; the developed models' richer
cards (:func:`atb.develop.model_card`) extend :func:`export_card`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, BertModel, PreTrainedTokenizerBase

from .modeling import AtbBertConfig, AtbBertForMaskedLM, AtbBertModel
from .progress import libraries_quiet
from .records import write_text_atomic
from .space import Arch
from .superbert import SuperBert

# Config fields an extracted model inherits from its SuperPLM (everything but the five sizes).
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


def export(model: AtbBertForMaskedLM | SuperBert, directory: str | Path, *, arch: Arch | None = None,
           tokenizer: PreTrainedTokenizerBase | None = None, card: str | None = None) -> Path:
    """Write a deployable model (or ``arch`` extracted from a SuperPLM) to ``directory`` and return it.

    The directory holds the weights (safetensors) and config, ``tokenizer`` (``None``: the default
    bert-base-uncased one, :func:`atb.data.load_tokenizer`) and a model card ``README.md``
    (:func:`export_card`), whose "How it was made" section is ``card`` (Markdown) when given. A plain
    BERT checkpoint is written whenever the architecture allows it (``qkv == hidden``).
    """
    if isinstance(model, SuperBert):
        if arch is None:
            raise ValueError("export(SuperBert, ...) needs the arch to extract")
        model = extract(model, arch)
    if tokenizer is None:
        from .data.tokenizer import load_tokenizer  # the data layer is heavy: only imported when needed

        tokenizer = load_tokenizer()
    directory = Path(directory)
    deployable = to_bert(model) if model.config.qkv_size == model.config.hidden_size else model
    with torch.no_grad(), libraries_quiet():  # transformers' "Writing model shards" bar, once per export
        deployable.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    write_card(directory, export_card(model.config.arch, parameters=deployable.num_parameters(), made=card))
    return directory


# -------------------------------------------------------------------------------------- model cards
def export_card(arch: Arch, *, name: str | None = None, parameters: int | None = None, made: str | None = None,
                sections: Sequence[tuple[str, str]] = ()) -> str:
    """The model card (``README.md``, Hugging Face metadata header) of an exported model of shape ``arch``.

    It names the architecture (``bert`` or ``atb-bert``, the five sizes, the encoder's weights and, when
    ``parameters`` is given, the whole model's), shows how to load it, and adds "How it was made" (``made``) and
    further ``(title, Markdown)`` ``sections`` when given.
    """
    plain = arch.qkv == arch.hidden
    family = ("`BertForMaskedLM` (`model_type: bert`): a plain BERT that stock `transformers` loads" if plain else
              "`AtbBertForMaskedLM` (`model_type: atb-bert`): BERT with d_qkv decoupled from d_m, which a "
              "plain `BertConfig` cannot hold; `import atb` first")
    lines = [
        "---", "library_name: transformers", "pipeline_tag: fill-mask", "language: en",
        "tags:", "- atb", "- autotinybert", "---", "",
        f"# {name or f'atb sub-model {arch}'}", "",
        f"A tiny BERT from AutoTinyBERT's search space (Yin et al., ACL 2021), exported by `atb`. "
        f"Architecture: {family}.", "",
        "| layers | d_m | d_f | heads | d_qkv | encoder weights |" + ("" if parameters is None else " all weights |"),
        "|---|---|---|---|---|---|" + ("" if parameters is None else "---|"),
        f"| {arch.layers} | {arch.hidden} | {arch.ffn} | {arch.heads} | {arch.qkv} | {arch.encoder_parameters():,} |"
        + ("" if parameters is None else f" {parameters:,} |"), "",
        "## Use", "", "```python",
        *([] if plain else ["import atb  # registers atb-bert with the transformers Auto classes"]),
        "from transformers import pipeline", "",
        'fill = pipeline("fill-mask", model="path/to/this/folder")',
        'fill("The capital of France is [MASK].")', "```", "",
        "The tokenizer (bert-base-uncased's WordPiece vocabulary) is saved beside the weights: "
        "`AutoTokenizer.from_pretrained(<this folder>)`. For GLUE or SQuAD, load the folder with "
        "`AutoModelForSequenceClassification` / `AutoModelForQuestionAnswering` and fine-tune.",
    ]
    if made:
        lines += ["", "## How it was made", "", made]
    for title, body in sections:
        lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"


def write_card(directory: str | Path, card: str, copy_to: str | Path | None = None) -> Path:
    """Write ``card`` to ``directory/README.md`` atomically (and to ``copy_to``, e.g.
    ``results/model_cards/<name>.md``)."""
    path = write_text_atomic(Path(directory) / "README.md", card)
    if copy_to is not None:
        write_text_atomic(Path(copy_to), card)
    return path
