"""Figures shared by the notebooks (matplotlib + seaborn), so notebooks stay a parameters cell and calls."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless under papermill; inline display still works in JupyterLab
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .space import Arch


def loss_by_size_frame(log: list[dict], bins: int = 3) -> pd.DataFrame:
    """One row per (step, sampled sub-model) with its loss and a size class (quantiles of encoder weights)."""
    rows = [{"step": r["step"], "loss": r["loss"], "params": sum(Arch.parse(a).encoder_parameters()
                                                                for a in r["archs"]) / len(r["archs"])}
            for r in log]
    frame = pd.DataFrame(rows)
    labels = ["small", "medium", "large"][:bins] if bins <= 3 else [f"q{i + 1}" for i in range(bins)]
    frame["sub-model size"] = pd.qcut(frame["params"].rank(method="first"), bins, labels=labels)
    return frame


def plot_loss_curves(logs: dict[str, list[dict]], title: str, window: int = 10):
    """Training loss of each objective against step, one line per sub-model size class (rolling mean)."""
    fig, axes = plt.subplots(1, len(logs), figsize=(6 * len(logs), 4), squeeze=False)
    for ax, (name, log) in zip(axes[0], logs.items()):
        frame = loss_by_size_frame(log)
        frame["loss (rolling mean)"] = frame.groupby("sub-model size", observed=True)["loss"].transform(
            lambda s: s.rolling(window, min_periods=1).mean())
        sns.lineplot(frame, x="step", y="loss (rolling mean)", hue="sub-model size", ax=ax)
        ax.set_title(f"{name.upper()} SuperPLM")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Save a PNG atomically (a killed run never leaves half a figure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    return path
