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


METHOD_MARKERS = {"evolved": "o", "fast": "^", "default-rule": "s", "searched": "D", "plain-gelu": "P",
                  "standard-attention": "X", "published-pattern": "*"}


def plot_with_controls(ax, points: pd.DataFrame, y: str, *, control: str | None = None, lo: str | None = None,
                       hi: str | None = None, x: str = "speedup") -> None:
    """Score against speedup: one line per (objective, method) of ``points`` (filled markers: ``METHOD_MARKERS``;
    colour: the objective), the 95 % interval ``lo``-``hi`` as error bars, and each model's untrained control
    (column ``control``) at the same speedup as a hollow marker of the same shape and colour, joined to its model
    by a dotted line. Rows without a score are left out."""
    objectives = sorted(points["objective"].unique())
    colours = dict(zip(objectives, sns.color_palette(n_colors=max(len(objectives), 1))))
    for (objective, method), group in points.dropna(subset=[y]).groupby(["objective", "method"]):
        group = group.sort_values(x)
        colour, marker = colours[objective], METHOD_MARKERS.get(method, "o")
        ax.plot(group[x], group[y], color=colour, marker=marker, markersize=7, label=f"{objective} {method}")
        if lo and hi and group[[lo, hi]].notna().all(axis=None):
            ax.errorbar(group[x], group[y], yerr=[group[y] - group[lo], group[hi] - group[y]], fmt="none",
                        ecolor=colour, elinewidth=1, capsize=3)
        if control and control in group and group[control].notna().any():
            ax.scatter(group[x], group[control], marker=marker, s=49, facecolors="none", edgecolors=colour,
                       linewidths=1.3)
            for _, row in group.dropna(subset=[control]).iterrows():
                ax.plot([row[x], row[x]], [row[y], row[control]], color=colour, linestyle=":", linewidth=0.8)
    if control and control in points and points[control].notna().any():
        ax.scatter([], [], marker="o", facecolors="none", edgecolors="grey", label="untrained control (same shape)")
    ax.set(xscale="log", xlabel=f"{x} over BERT-base (CPU latency)", ylabel=y)
    ax.legend(fontsize=8)
