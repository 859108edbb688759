"""Untrained controls: what a score means without pre-training.

A fine-tuned sub-model's GLUE score mixes what pre-training taught it with what the fine-tuning budget alone can
teach any network of its shape. The **untrained control** separates the two: the same architecture and settings
at random initialisation (BERT's: normal(0, ``initializer_range``) weights, LayerNorm 1/0), never pre-trained,
fine-tuned with the same budget and seeds. Every comparison of the study stands beside one: the developed models of
notebooks 05-06 (:func:`atb.develop.control_model`) and the sub-models a ranking study fine-tunes
(:class:`atb.fitness.PaperFitness` with ``untrained=True``), where a sub-model that does not beat its control
carries no ranking information: its score measures the budget, not the sub-model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .extract import export
from .modeling import AtbBertConfig, AtbBertForMaskedLM
from .records import write_json_atomic
from .space import Arch

# The random initialisation of every untrained control (one per architecture; fine-tuning seeds vary as for the
# developed models, so a control differs from its model only in never having been pre-trained).
CONTROL_SEED = 0

# The settings a control takes from the model it stands beside (everything but the five sizes).
CONTROL_SETTINGS = ("vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
                    "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range", "pad_token_id")


def settings_like(model_dir: str | Path, arch: Arch) -> dict:
    """The :data:`CONTROL_SETTINGS` of the model exported in ``model_dir``, whose shape must be ``arch``."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    shape = Arch(cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"],
                 cfg.get("qkv_size") or cfg["hidden_size"])
    if shape != arch:
        raise ValueError(f"the control's architecture {arch} differs from {shape} of {model_dir}")
    return {k: cfg[k] for k in CONTROL_SETTINGS if k in cfg}


def export_control(arch: Arch | str, directory: str | Path, *, seed: int = CONTROL_SEED,
                   like: str | Path | None = None) -> Path:
    """Export an **untrained control** of ``arch`` to ``directory``: ``AtbBertForMaskedLM`` initialised at random
    under ``seed``, never pre-trained, written by :func:`atb.extract.export` (plain BERT when d_qkv = d_m) with a
    card that says what it is.

    ``like``: a model's folder whose config gives every setting besides the five sizes (vocabulary, positions,
    dropout, init range; the SuperPLM's), so the control differs from it only in its weights; its shape must be
    ``arch``. A folder already holding this control (``control.json``: same arch, seed, settings) is left as it is;
    one holding another control is overwritten, and its fine-tuning results (``directory/finetune``,
    ``Layout.control_finetune``) are deleted with it, since they were made from the old weights. Returns
    ``directory``.
    """
    arch = Arch.parse(arch) if isinstance(arch, str) else arch
    directory = Path(directory)
    settings = settings_like(like, arch) if like is not None else {}
    spec = {"arch": str(arch), "seed": seed, "settings": settings, "like": None if like is None else str(like)}
    marker = directory / "control.json"
    if marker.exists() and (directory / "config.json").exists():
        old = json.loads(marker.read_text())
        if {k: old.get(k) for k in ("arch", "seed", "settings")} == {k: spec[k] for k in ("arch", "seed", "settings")}:
            return directory
    shutil.rmtree(directory / "finetune", ignore_errors=True)  # results of other weights than these
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was (export draws too)
        torch.manual_seed(seed)
        model = AtbBertForMaskedLM(AtbBertConfig.from_arch(arch, **settings))
        export(model, directory, card=(
            f"**Untrained control** — never pre-trained: the architecture {arch} initialised at random (seed {seed}, "
            "BERT's initialisation). `atb` fine-tunes it with the same budgets and seeds as the pre-trained models of "
            "this shape, so that the difference between them measures what pre-training (one-shot training of the "
            "SuperPLM and further training) taught those models. Not a model to use."))
    write_json_atomic(marker, spec)
    return directory
