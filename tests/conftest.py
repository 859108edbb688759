"""Helpers shared by several test modules (imported as ``from conftest import ...``)."""

import torch
import yaml

from atb import SearchSpace, SuperBert, SuperBertConfig


def save_supernet(path, objective, with_objective=True):
    """A random smoke SuperBert saved like a training run's ``final/``: the weights and, beside them, the
    objective (``objective.json``; for KD also a random ``W_fit`` in ``objective.safetensors``)."""
    torch.manual_seed(0)
    model = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", objective)))
    model.save_pretrained(path / "final")
    if with_objective:
        from atb.objectives import KDObjective, MLMObjective
        from atb.teacher import load_teacher

        if objective == "kd":
            KDObjective(load_teacher("minilm-offline"), model.config.hidden_size).save(path / "final")
        else:
            MLMObjective().save(path / "final")
    return path / "final"


def write_scale_config(path, scale="smoke", **sections):
    """A scale config file (``configs/<scale>.yaml`` layout) holding ``sections``; returns its path."""
    path.write_text(yaml.safe_dump({"scale": scale, **sections}))
    return path
