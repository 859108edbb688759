"""The SuperPLM: one weight-sharing BERT that contains every architecture of a search space.

``SuperBert`` is ``AtbBertForMaskedLM`` built at the space's largest size (notes §3). A forward pass
is told which sub-model to run, ``model(input_ids, attention_mask=..., arch=Arch(...))``, and uses the
first ``l`` layers and the top-left sub-matrix of every weight; in the KD space Q/K/V are sliced
head-wise so the sub-model keeps all 12 heads (``qkv_slicing="headwise"``).

Two outputs serve the two one-shot objectives: MLM logits at the masked positions only (the vocabulary
projection is the costliest matrix of a tiny model and only masked positions are scored), and the last
layer's hidden states and pre-softmax attention scores for task-agnostic distillation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from .elastic import ELASTIC_TYPES
from .modeling import AtbBertConfig, AtbBertForMaskedLM, masked_lm_loss
from .space import Arch, SearchSpace


class SuperBertConfig(AtbBertConfig):
    """An ``AtbBertConfig`` at the maximum sizes, plus how Q/K/V are sliced and the space it serves."""

    model_type = "atb-superbert"

    def __init__(self, qkv_slicing: str = "contiguous", space: dict | None = None, **kwargs):
        if qkv_slicing not in ("contiguous", "headwise"):
            raise ValueError(f"SuperBertConfig.qkv_slicing must be 'contiguous' or 'headwise', got {qkv_slicing!r}")
        self.qkv_slicing = qkv_slicing
        self.space = space
        super().__init__(**kwargs)

    @property
    def qkv_groups(self) -> int:
        return self.num_attention_heads if self.qkv_slicing == "headwise" else 1

    @classmethod
    def from_space(cls, space: SearchSpace, vocab_size: int = 30522, **kwargs) -> SuperBertConfig:
        """Size every weight for ``space.largest()``; MLM spaces slice contiguously, KD spaces head-wise."""
        largest = space.largest()
        return cls(
            vocab_size=vocab_size,
            num_hidden_layers=largest.layers,
            hidden_size=largest.hidden,
            intermediate_size=largest.ffn,
            num_attention_heads=largest.heads,
            qkv_size=largest.qkv,
            qkv_slicing="headwise" if space.objective == "kd" else "contiguous",
            space=space.as_dict(),
            **kwargs,
        )

    def search_space(self) -> SearchSpace | None:
        return None if self.space is None else SearchSpace.from_dict(self.space)


@dataclass
class SuperBertOutput(ModelOutput):
    """``loss``: MLM loss if labels were given; ``logits``: [N_masked, V] at the masked positions
    (row order = ``labels != -100`` in row-major order); ``last_hidden_state`` [B, T, d_m];
    ``attention_scores`` [B, h, T, T] of the last layer, pre-softmax, no mask added; with ``output_all_layers``
    ``hidden_states`` (embeddings' output, then every active layer's) and ``all_attention_scores`` (every layer's)."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    attention_scores: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    all_attention_scores: tuple[torch.FloatTensor, ...] | None = None


class SuperBert(AtbBertForMaskedLM):
    """``AtbBertForMaskedLM`` at the space's largest size whose forward runs the sub-model it is given."""

    config_class = SuperBertConfig

    def check_arch(self, arch: Arch) -> Arch:
        """Validate against the space (a clear ``ValueError`` naming the field) or, without one, the maxima."""
        space = self.config.search_space()
        if space is not None:
            return space.validate(arch)
        c = self.config
        for name, value, limit in (("layers", arch.layers, c.num_hidden_layers), ("hidden", arch.hidden, c.hidden_size),
                                   ("ffn", arch.ffn, c.intermediate_size), ("qkv", arch.qkv, c.qkv_size)):
            if value > limit:
                raise ValueError(f"{name}={value} exceeds the SuperPLM maximum {limit}")
        if c.qkv_slicing == "headwise" and arch.heads != c.num_attention_heads:
            raise ValueError(f"heads={arch.heads}: head-wise slicing keeps all {c.num_attention_heads} heads")
        if c.qkv_slicing == "contiguous" and arch.head_size != c.qkv_size // c.num_attention_heads:
            raise ValueError(f"qkv/heads={arch.head_size}: contiguous slicing keeps the head size "
                             f"{c.qkv_size // c.num_attention_heads}")
        return arch

    def set_active(self, arch: Arch) -> None:
        self.check_arch(arch)
        self.bert.set_active(arch)
        self.cls.predictions.set_active(arch)

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        arch: Arch,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attention_scores: bool = True,
        output_all_layers: bool = False,
    ) -> SuperBertOutput:
        """Run the sub-model ``arch``. MLM logits (and loss) are computed only where ``labels != -100``."""
        self.set_active(arch)
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        output_attention_scores=output_attention_scores, output_all_layers=output_all_layers)
        loss = logits = None
        if labels is not None:
            masked = labels != -100
            logits = self.cls.predictions(out.last_hidden_state[masked], self.bert.embeddings.word_embeddings.weight)
            loss = masked_lm_loss(logits, labels[masked])
        return SuperBertOutput(loss=loss, logits=logits, last_hidden_state=out.last_hidden_state,
                               attention_scores=out.attention_scores, hidden_states=out.hidden_states,
                               all_attention_scores=out.all_attention_scores)

    def active_state_dict(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The sub-model's weights, named as in ``AtbBertForMaskedLM`` (copies, detached).

        Read through the same ``active_parameters()`` the forward pass uses, so the extracted model is
        exactly what was trained — including head-wise Q/K/V (pitfall 3 of the official code).
        """
        self.set_active(arch)
        state: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, module in self.named_modules():
                if not isinstance(module, ELASTIC_TYPES) or _in_inactive_layer(name, arch.layers):
                    continue
                for pname, tensor in module.active_parameters().items():
                    state[f"{name}.{pname}"] = tensor.detach().clone().contiguous()
            state["cls.predictions.bias"] = self.cls.predictions.bias.detach().clone()
        return state


def _in_inactive_layer(module_name: str, active_layers: int) -> bool:
    parts = module_name.split(".")
    if "layer" in parts:
        index = parts[parts.index("layer") + 1]
        return int(index) >= active_layers
    return False
