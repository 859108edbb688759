"""Helpers shared by several test modules (imported as ``from conftest import ...``)."""

import json

import torch
import yaml

from atb import SearchSpace, SuperBert, SuperBertConfig


def save_supernet(path, objective):
    """A random smoke SuperBert saved like a training run (``final/``; for KD a checkpoint with ``W_fit``)."""
    torch.manual_seed(0)
    model = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", objective)))
    model.save_pretrained(path / "final")
    if objective == "kd":
        from atb.checkpoint import save_checkpoint
        from atb.losses import KDLoss

        kd = KDLoss(model.config.hidden_size, 384)
        save_checkpoint(path / "checkpoints", 5, {"model": model.state_dict(), "loss": kd.state_dict()},
                        {"step": 5}, keep=2)
        (path / "config.json").write_text(json.dumps({"steps": 5, "teacher": "minilm-offline"}))
    return path / "final"


def write_scale_config(path, scale="smoke", **sections):
    """A scale config file (``configs/<scale>.yaml`` layout) holding ``sections``; returns its path."""
    path.write_text(yaml.safe_dump({"scale": scale, **sections}))
    return path
