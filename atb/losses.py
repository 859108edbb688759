"""The two one-shot objectives of the SuperPLM (notes §4).

* **MLM**: cross-entropy of the masked tokens (computed by ``SuperBert`` at the masked positions only).
* **KD** (task-agnostic distillation, last layer only): MSE between the student's and the teacher's
  pre-softmax attention scores, plus MSE between ``W_fit · h_student`` and ``h_teacher``.

``W_fit`` maps the student's hidden size to the teacher's. It is part of the *loss*, not of the model:
it is trained with the student and dropped afterwards, so it can never leak into a fine-tuning head
(pitfall 2 of the official code). Because the student's hidden size changes from step to step in
one-shot training, ``W_fit`` is an elastic layer sized for the largest student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .elastic import ElasticLinear


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked tokens; ``labels`` is -100 elsewhere."""
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """MSE over the entries where ``keep`` is True (broadcast); the others are zeroed and not counted.

    Averaging over real entries only keeps the loss independent of how much padding a batch has.
    """
    keep = keep.expand_as(student)
    diff = torch.where(keep, student - teacher, torch.zeros((), dtype=student.dtype, device=student.device))
    return diff.pow(2).sum() / keep.sum().clamp(min=1)


class KDLoss(nn.Module):
    """Last-layer attention-score MSE + hidden-state MSE through the learned projection ``fit_dense``."""

    def __init__(self, max_student_hidden: int, teacher_hidden: int):
        super().__init__()
        self.fit_dense = ElasticLinear(max_student_hidden, teacher_hidden)

    def forward(
        self,
        student_hidden: torch.Tensor,
        student_scores: torch.Tensor,
        teacher_hidden: torch.Tensor,
        teacher_scores: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """All tensors of the last layer: hidden ``[B, T, d]``, scores ``[B, heads, T, T]`` (pre-softmax)."""
        if student_scores.shape != teacher_scores.shape:
            raise ValueError(
                f"student attention scores {tuple(student_scores.shape)} do not match the teacher's "
                f"{tuple(teacher_scores.shape)}: the KD space must keep the teacher's number of heads"
            )
        batch, seq = student_hidden.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq, dtype=torch.bool, device=student_hidden.device)
        real = attention_mask.bool()
        pair = real[:, None, :, None] & real[:, None, None, :]  # both query and key are real tokens
        self.fit_dense.set_active(student_hidden.shape[-1], teacher_hidden.shape[-1])
        attention = masked_mse(student_scores, teacher_scores, pair)
        hidden = masked_mse(self.fit_dense(student_hidden), teacher_hidden, real[..., None])
        return {"loss": attention + hidden, "attention": attention, "hidden": hidden}
