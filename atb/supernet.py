"""What every weight-sharing supernet of the study offers its searches: the interface of EfficientBERT's expression
supernet (:mod:`atb.efficientbert.supernet`) and AutoBERT-Zero's BIWS supernet (:mod:`atb.autobert_zero.supernet`).

A **candidate** is one layer choice per layer (an FFN expression and size, or an attention graph / convolution).
The supernet holds every choice's weights at their largest size and runs any candidate with them (``forward``); the
standalone model of a candidate is cut out of it (``extract``) and computes the same function. The shared pipeline
(:mod:`atb.distill`, :mod:`atb.develop`, :mod:`atb.rerank`) needs nothing else, so no system's package imports
another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

Candidate = tuple[Any, ...]  # one layer choice per layer; each system has its own layer type


@dataclass
class SuperNetOutput(ModelOutput):
    """``last_hidden_state`` ``[B, T, d]``; with ``output_all``: ``hidden_states`` (the embeddings' output and every
    layer's, ``L + 1`` tensors) and ``attention_scores`` (every layer's pre-softmax scores ``[B, H, T, T]``, or
    ``None`` for a supernet whose layers need not have them: graphs and convolutions)."""

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attention_scores: tuple[torch.FloatTensor, ...] | None = None


@runtime_checkable
class WeightSharingSupernet(Protocol):
    """A supernet the shared pipeline can distil, score, adapt and cut candidates from."""

    config: PretrainedConfig

    def __call__(self, input_ids: torch.Tensor, candidate: Sequence[Any], *, attention_mask: torch.Tensor | None = ...,
                 token_type_ids: torch.Tensor | None = ..., output_all: bool = ...) -> SuperNetOutput: ...

    def extract(self, candidate: Sequence[Any]) -> PreTrainedModel:
        """The standalone model of ``candidate`` (its weights copied out of the supernet's)."""

    def candidate_config(self, candidate: Sequence[Any]) -> PretrainedConfig:
        """The standalone model's configuration (an untrained control is built from it)."""
