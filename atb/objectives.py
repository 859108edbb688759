"""The two one-shot objectives of the SuperPLM (notes §4), each defined once.

Training (:class:`atb.train.Trainer`) and the search's proxy fitness (:mod:`atb.fitness`) use these same
objects: the fitness of a sub-model *is* its training loss on held-out text.

* :class:`MLMObjective` — **masked language modelling**: cross-entropy of the masked tokens
  (:func:`masked_lm_loss`, which ``SuperBert`` and ``AtbBertForMaskedLM`` also call). With in-place
  distillation (BigNAS; an extension, not the paper) the largest sub-model of a step teaches the others:
  their loss is the cross-entropy against its detached softmax (:func:`soft_cross_entropy`).
* :class:`KDObjective` — **task-agnostic distillation of the last layer**: it runs the frozen teacher and
  returns ``MSE(student attention scores, teacher attention scores)`` (pre-softmax, pairs of real tokens
  only) ``+ MSE(W_fit · h_student, h_teacher)`` (real tokens only). No MLM term. With
  ``hidden_norm="teacher-variance"`` (an option for training from scratch, not the paper) the hidden term is
  divided by the teacher's mean per-dimension variance, i.e. it becomes the fraction of the teacher's hidden
  variance the student leaves unexplained (1 for a student that predicts the mean): the plain MSE of a
  LayerNorm output is ~3 % of the loss beside the attention scores, so from scratch the student hardly learns it.
  With ``layers="uniform"`` (an option for repairing narrow cuts, not the paper) every student layer, and the
  embeddings, learns from the teacher layer at the same relative depth (:func:`teacher_layer`; TinyBERT's mapping),
  through the same ``W_fit``; each term is the mean over the distilled layers, so sub-models of every depth weigh
  alike.

``W_fit`` maps the student's hidden size to the teacher's. It belongs to the *objective*, never to the
model: it is trained with the student, saved beside the SuperPLM (``objective.safetensors``, read back by
the KD fitness) and never reaches an exported model or a fine-tuning head (pitfall 2 of the official code).
Because the student's hidden size changes from step to step in one-shot training, ``W_fit`` is an elastic
linear layer sized for the largest student.

A training step may split its global batch across data-parallel ranks. Then each rank passes its rows as
``batch`` and the whole global batch as ``share_of``: every mean is taken over the *global* batch's masked
tokens / real tokens, so the ranks' losses (and gradients) add up to those of one process on the global
batch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .elastic import ElasticLinear
from .modeling import IGNORE_INDEX
from .records import write_json_atomic
from .teacher import Teacher, TeacherOutput, load_teacher

if TYPE_CHECKING:  # the objectives only call the student; superbert.py imports this module
    from .space import Arch
    from .superbert import SuperBert

OBJECTIVE_JSON = "objective.json"  # beside a SuperPLM's weights: which objective, which teacher
OBJECTIVE_WEIGHTS = "objective.safetensors"  # beside a SuperPLM's weights: the objective's trained state (W_fit)

HIDDEN_NORMS = ("none", "teacher-variance")  # KD hidden term: the paper's plain MSE, or divided by the teacher's variance
# KD's layers: the paper's last layer, or every layer against the teacher layer at the same relative depth
# (TinyBERT's uniform mapping, :func:`teacher_layer`)
KD_LAYERS = ("last", "uniform")

Batch = dict[str, torch.Tensor]  # input_ids, token_type_ids, attention_mask, labels (as MLMCollator makes them)


# ------------------------------------------------------------------------------------------ functions
def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_v targets[v] · log softmax(logits)[v]``: cross-entropy against soft targets."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return -(targets * logits.float().log_softmax(-1)).sum(-1).mean()


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, keep: torch.Tensor,
               count: int | None = None) -> torch.Tensor:
    """Sum of squared differences where ``keep`` is True (broadcast), divided by ``count`` (default: the
    number of kept entries). Averaging over real entries only makes the loss independent of padding."""
    # counted before broadcasting: each entry of ``keep`` stands for numel / keep.numel() entries of ``student``
    count = (keep.sum() * (student.numel() // keep.numel())).clamp(min=1) if count is None else max(count, 1)
    keep = keep.expand_as(student)
    diff = student - teacher
    diff = torch.where(keep, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
    return diff.pow(2).sum() / count


def teacher_variance(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean over dimensions of the per-dimension variance of ``hidden`` ``[B, T, d]`` over the real tokens,
    detached (a normaliser, not a target). With data parallelism it is each rank's shard's: the ranks' losses
    then add up to one process's only up to this estimate."""
    real = hidden.detach()[attention_mask.bool()]
    if real.shape[0] < 2:
        return torch.ones((), dtype=hidden.dtype, device=hidden.device)
    return real.var(dim=0, unbiased=False).mean().clamp(min=1e-12)


def real_pairs(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1, T, T]`` bool: both the query and the key are real tokens (not padding)."""
    real = attention_mask.bool()
    return real[:, None, :, None] & real[:, None, None, :]


# ------------------------------------------------------------------------------------------------ MLM
@dataclass
class MLMOutput:
    """``loss``; ``logits`` ``[N_masked, V]`` at the masked positions (row-major order of ``labels != -100``)."""

    loss: torch.Tensor
    logits: torch.Tensor


class MLMObjective(nn.Module):
    """Masked-token cross-entropy of the sub-model ``arch``; nothing to train besides the student."""

    name = "mlm"

    def __init__(self, inplace_distillation: bool = False):
        super().__init__()
        self.inplace_distillation = inplace_distillation

    def targets(self, batch: Batch) -> None:
        """The targets of a step before any sub-model ran: the labels themselves (nothing to compute)."""
        return None

    @staticmethod
    def soft_targets(logits: torch.Tensor) -> torch.Tensor:
        """In-place distillation: the largest sub-model's predictions, detached, become the others' targets."""
        return logits.detach().float().softmax(-1)

    def forward(self, student: SuperBert, batch: Batch, arch: Arch, targets: torch.Tensor | None = None,
                *, share_of: Batch | None = None) -> MLMOutput:
        """``targets=None``: cross-entropy against the labels; otherwise against these soft targets
        (``[N_masked, V]`` probabilities, see :meth:`soft_targets`)."""
        out = student(batch["input_ids"], arch=arch, attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"], labels=batch["labels"], output_attention_scores=False)
        loss = out.loss if targets is None else soft_cross_entropy(out.logits, targets)  # out.loss: masked_lm_loss
        if share_of is not None:  # mean over the global batch's masked tokens
            loss = loss * (out.logits.shape[0] / max(int((share_of["labels"] != IGNORE_INDEX).sum()), 1))
        return MLMOutput(loss=loss, logits=out.logits)

    def save(self, directory: str | Path) -> None:
        """Name the objective beside a SuperPLM's weights (MLM has no trained state of its own)."""
        write_json_atomic(Path(directory) / OBJECTIVE_JSON,
                          {"objective": self.name, "inplace_distillation": self.inplace_distillation})


def teacher_layer(layer: int, student_layers: int, teacher_layers: int) -> int:
    """The teacher layer that student layer ``layer`` (1-based; 0 = the embeddings) learns from in layer-wise KD:
    the one at the same relative depth, rounded up (TinyBERT's uniform mapping ``g(m) = m * N / M`` for any depths),
    so the student's last layer always learns from the teacher's last."""
    if not 0 <= layer <= student_layers:
        raise ValueError(f"student layer {layer} outside 0..{student_layers}")
    return -(-layer * teacher_layers // student_layers)


# ------------------------------------------------------------------------------------------------- KD
@dataclass
class KDOutput:
    """``loss = attention + hidden``: the two mean squared errors of the last layer (``layers="uniform"``: each the
    mean over the distilled layers)."""

    loss: torch.Tensor
    attention: torch.Tensor
    hidden: torch.Tensor


class KDObjective(nn.Module):
    """Last-layer distillation from a frozen teacher: attention-score MSE + hidden MSE through ``W_fit``.

    ``fit_dense`` is ``W_fit`` (``d_m -> teacher hidden``, with bias), allocated for ``max_student_hidden``
    and sliced to the active student's width. The teacher is held but not registered as a submodule:
    ``parameters()`` and ``state_dict()`` are ``W_fit`` alone, the objective's trained state.
    """

    name = "kd"

    def __init__(self, teacher: Teacher, max_student_hidden: int, hidden_norm: str = "none", layers: str = "last"):
        super().__init__()
        if hidden_norm not in HIDDEN_NORMS:
            raise ValueError(f"KD hidden_norm must be one of {HIDDEN_NORMS}, got {hidden_norm!r}")
        if layers not in KD_LAYERS:
            raise ValueError(f"KD layers must be one of {KD_LAYERS}, got {layers!r}")
        object.__setattr__(self, "teacher", teacher)  # frozen, on its own device; not part of the state
        self.fit_dense = ElasticLinear(max_student_hidden, teacher.hidden_size)
        self.hidden_norm = hidden_norm
        self.layers = layers

    def targets(self, batch: Batch) -> TeacherOutput:
        """The teacher's last hidden state and pre-softmax attention scores (no grad, eval mode); with
        ``layers="uniform"`` every layer's."""
        return self.teacher(batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"], all_layers=self.layers == "uniform")

    def forward(self, student: SuperBert, batch: Batch, arch: Arch, targets: TeacherOutput | None = None,
                *, share_of: Batch | None = None) -> KDOutput:
        """Run the sub-model ``arch`` and score it against ``targets`` (default: the teacher on ``batch``)."""
        targets = self.targets(batch) if targets is None else targets
        everything = self.layers == "uniform"
        out = student(batch["input_ids"], arch=arch, attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"], output_attention_scores=True,
                      output_all_layers=everything)
        # The student's scores stay in autocast's dtype: the loss's subtraction from the teacher's fp32 scores promotes
        # them (the same numbers, without an fp32 copy of [B, heads, T, T] and its gradient's).
        if not everything:
            return self.loss(out.last_hidden_state.float(), out.attention_scores,
                             targets.last_hidden_state.float(), targets.attention_scores.float(),
                             batch["attention_mask"], share_of=share_of)
        # every student layer l (0: the embeddings) against the teacher layer at the same relative depth; the
        # attention term over the layers 1..L, the hidden term over 0..L, each a mean so depths weigh alike
        n_student, n_teacher = len(out.all_attention_scores), len(targets.all_attention_scores)
        terms = [self.loss(out.hidden_states[l].float(), out.all_attention_scores[l - 1],
                           targets.hidden_states[t].float(), targets.all_attention_scores[t - 1].float(),
                           batch["attention_mask"], share_of=share_of)
                 for l, t in ((l, teacher_layer(l, n_student, n_teacher)) for l in range(1, n_student + 1))]
        embeddings = self.hidden_loss(out.hidden_states[0].float(), targets.hidden_states[0].float(),
                                      batch["attention_mask"], share_of=share_of)
        attention = torch.stack([t.attention for t in terms]).mean()
        hidden = torch.stack([embeddings, *(t.hidden for t in terms)]).mean()
        return KDOutput(loss=attention + hidden, attention=attention, hidden=hidden)

    def loss(self, student_hidden: torch.Tensor, student_scores: torch.Tensor, teacher_hidden: torch.Tensor,
             teacher_scores: torch.Tensor, attention_mask: torch.Tensor | None = None,
             *, share_of: Batch | None = None) -> KDOutput:
        """The loss of last-layer tensors: hidden ``[B, T, d]``, scores ``[B, heads, T, T]`` (pre-softmax)."""
        if student_scores.shape != teacher_scores.shape:
            raise ValueError(
                f"student attention scores {tuple(student_scores.shape)} do not match the teacher's "
                f"{tuple(teacher_scores.shape)}: the KD space must keep the teacher's number of heads"
            )
        if attention_mask is None:
            attention_mask = torch.ones(student_hidden.shape[:2], dtype=torch.bool, device=student_hidden.device)
        pairs = None  # the entries the mean divides by (default: this batch's)
        if share_of is not None:
            pairs = int(real_pairs(share_of["attention_mask"]).sum()) * teacher_scores.shape[1]
        attention = masked_mse(student_scores, teacher_scores, real_pairs(attention_mask), pairs)
        hidden = self.hidden_loss(student_hidden, teacher_hidden, attention_mask, share_of=share_of)
        return KDOutput(loss=attention + hidden, attention=attention, hidden=hidden)

    def hidden_loss(self, student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor,
                    *, share_of: Batch | None = None) -> torch.Tensor:
        """``MSE(W_fit · h_student, h_teacher)`` over real tokens (``hidden_norm``: divided by the teacher's
        variance)."""
        tokens = None
        if share_of is not None:
            tokens = int(share_of["attention_mask"].bool().sum()) * teacher_hidden.shape[-1]
        self.fit_dense.set_active(student_hidden.shape[-1], teacher_hidden.shape[-1])
        hidden = masked_mse(self.fit_dense(student_hidden), teacher_hidden, attention_mask.bool()[..., None], tokens)
        if self.hidden_norm == "teacher-variance":
            hidden = hidden / teacher_variance(teacher_hidden, attention_mask)
        return hidden

    # -- beside the SuperPLM
    def save(self, directory: str | Path) -> None:
        """``objective.safetensors`` (``W_fit``) and ``objective.json`` (the objective, the teacher, the sizes)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                  directory / OBJECTIVE_WEIGHTS)
        write_json_atomic(directory / OBJECTIVE_JSON, {
            "objective": self.name, "teacher": self.teacher.name, "teacher_hidden": self.fit_dense.out_features,
            "max_student_hidden": self.fit_dense.in_features, "weights": OBJECTIVE_WEIGHTS,
            "hidden_norm": self.hidden_norm, "layers": self.layers,
        })

    @classmethod
    def load(cls, directory: str | Path, *, device: torch.device | str | None = None, teacher: str | None = None,
             trained_fit: bool = True) -> KDObjective:
        """The objective saved beside a KD SuperPLM (:meth:`save`): its teacher, loaded, and its trained ``W_fit``.

        ``teacher`` names the teacher instead of ``objective.json`` (which is then not needed when
        ``trained_fit`` is False); ``trained_fit=False`` leaves ``W_fit`` at its random initialisation.
        """
        directory = Path(directory)
        record = read_objective(directory) if trained_fit or teacher is None else {}
        if record and record.get("objective") != cls.name:
            raise ValueError(f"{directory / OBJECTIVE_JSON}: the objective is {record.get('objective')!r}, not 'kd'")
        if teacher is not None and record and teacher != record["teacher"]:
            raise ValueError(f"{directory / OBJECTIVE_JSON}: W_fit was trained against the teacher "
                             f"{record['teacher']!r}, not {teacher!r}")
        weights = directory / OBJECTIVE_WEIGHTS
        if trained_fit and not weights.is_file():
            raise FileNotFoundError(f"{weights}: the trained W_fit of this KD SuperPLM is missing (written by "
                                    "Trainer.save_final beside the weights)")
        state = load_file(weights) if trained_fit else None
        loaded_teacher = load_teacher(teacher or record["teacher"], device=device)
        if state is not None:
            max_student_hidden = state["fit_dense.weight"].shape[1]
        else:
            from .superbert import SuperBertConfig  # the widest student of the SuperPLM in ``directory``

            max_student_hidden = SuperBertConfig.from_pretrained(directory).hidden_size
        objective = cls(loaded_teacher, max_student_hidden, hidden_norm=record.get("hidden_norm", "none"),
                        layers=record.get("layers", "last")).to(loaded_teacher.device)
        if state is not None:
            objective.load_state_dict(state)
        return objective


# --------------------------------------------------------------------------------------------- files
def read_objective(directory: str | Path) -> dict:
    """``objective.json`` of a SuperPLM directory, or a ``FileNotFoundError`` naming it."""
    path = Path(directory) / OBJECTIVE_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; it names the objective and teacher a SuperPLM was trained with "
                                "(written by Trainer.save_final beside the weights)")
    return json.loads(path.read_text())


def copy_objective(source: str | Path, target: str | Path) -> None:
    """Copy the objective files of the SuperPLM in ``source`` (``objective.json``, and ``objective.safetensors``
    where there is one) to ``target``, e.g. beside the same weights saved as a one-point SuperBERT."""
    source, target = Path(source), Path(target)
    read_objective(source)  # a clear error if there is none
    target.mkdir(parents=True, exist_ok=True)
    for name in (OBJECTIVE_JSON, OBJECTIVE_WEIGHTS):
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
