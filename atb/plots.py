"""Figures shared by the notebooks (matplotlib + seaborn), so notebooks stay a parameters cell and calls.

One look across notebooks 01–10: a colour per system (AutoTinyBERT's KD and MLM SuperPLMs, the default-rule BERTs,
EfficientBERT, AutoBERT-Zero, the paper's released models: :func:`colour_of`), a marker per method
(:data:`METHOD_MARKERS`), speedup axes that label a few round values on a log scale (:func:`speedup_axis`), and
legends beside the axes rather than over the points."""

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
                  "standard-attention": "X", "published-pattern": "*", "pareto": "v"}
_PALETTE = sns.color_palette("colorblind", 8)
# Matched by the first key the label contains (case-insensitive), so "AutoTinyBERT KD", "KD" and "kd" share a colour.
SYSTEM_COLOURS = {"efficientbert": _PALETTE[2], "autobert-zero": _PALETTE[3], "default": _PALETTE[7],
                  "kd": _PALETTE[0], "mlm": _PALETTE[1], "paper": (0.2, 0.2, 0.2)}
# Round speedups to label, finest first: an axis takes the finest set that labels at most seven values of its range.
NICE_SPEEDUPS = ((1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 40, 50, 70, 100),
                 (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100), (1, 2, 5, 10, 20, 50, 100), (1, 10, 100))


def colour_of(label: str):
    """The colour of a system or objective, the same in every notebook (grey for one not in :data:`SYSTEM_COLOURS`)."""
    key = label.lower().replace("autobert zero", "autobert-zero").replace("default rule", "default")
    return next((colour for name, colour in SYSTEM_COLOURS.items() if name in key), _PALETTE[7])


def speedup_axis(ax, values, label: str = "speedup over BERT-base (CPU latency)", axis: str = "x") -> None:
    """A log-scaled speedup axis (``axis`` "x" or "y") labelled at a few round values (``7×``, ``10×``, ``20×``)
    spanning ``values``: the default log locator labels every minor tick of a range shorter than a decade, and the
    labels overlap."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    values = [float(v) for v in values if v is not None and v == v and v > 0]
    lo, hi = (min(values), max(values)) if values else (1.0, 10.0)
    in_range = [[t for t in nice if lo / 1.25 <= t <= hi * 1.25] for nice in NICE_SPEEDUPS]
    ticks = next((t for t in in_range if 2 <= len(t) <= 7), in_range[-1]) or [round(lo, 1), round(hi, 1)]
    scale, limits, target = ((ax.set_xscale, ax.set_xlim, ax.xaxis) if axis == "x" else
                             (ax.set_yscale, ax.set_ylim, ax.yaxis))
    scale("log")
    limits(lo / 1.15, hi * 1.15)
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    target.set_minor_formatter(NullFormatter())
    target.set_label_text(label)


def legend_beside(ax, **kwargs) -> None:
    """The legend to the right of the axes, where it hides no point."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kwargs)


def plot_with_controls(ax, points: pd.DataFrame, y: str, *, control: str | None = None, lo: str | None = None,
                       hi: str | None = None, x: str = "speedup") -> None:
    """Score against speedup: one line per (objective, method) of ``points`` (filled markers: ``METHOD_MARKERS``;
    colour: the system, :func:`colour_of`), the 95 % interval ``lo``-``hi`` as error bars, and each model's
    untrained control (column ``control``) at the same speedup as a hollow marker of the same shape and colour,
    joined to its model by a dotted line. Rows without a score are left out."""
    for (objective, method), group in points.dropna(subset=[y]).groupby(["objective", "method"]):
        group = group.sort_values(x)
        colour = colour_of("default" if method == "default-rule" else objective)
        marker = METHOD_MARKERS.get(method, "o")
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
    speedup_axis(ax, points[x], f"{x} over BERT-base (CPU latency)")
    ax.set_ylabel(y)
    legend_beside(ax)


def picked(table: pd.DataFrame, value, key: str = "model") -> pd.DataFrame:
    """Every column of the row of ``table`` whose ``key`` is ``value``, as one column (what :func:`explorer` shows)."""
    return table.set_index(key).loc[[value]].T.round(2)


def explorer(table: pd.DataFrame, key: str = "model"):
    """An interactive view to keep beside a static figure: pick a row of ``table`` by its ``key`` (a model) and read
    every column of it. A widget (ipywidgets) in Jupyter; the saved figure does not depend on it."""
    import ipywidgets as widgets
    from IPython.display import display

    pick = widgets.Dropdown(options=list(table[key]), description=key)
    shown = widgets.Output()

    def show(_=None) -> None:
        shown.clear_output()
        with shown:
            display(picked(table, pick.value, key))

    pick.observe(show, names="value")
    show()
    return widgets.VBox([pick, shown])
