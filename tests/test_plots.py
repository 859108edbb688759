"""Figures (:mod:`atb.plots`): one colour per system in every notebook, speedup axes that read at a glance."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from atb.plots import colour_of, plot_with_controls, speedup_axis


def test_a_system_has_one_colour_whatever_the_notebook_calls_it():
    assert colour_of("AutoTinyBERT KD") == colour_of("KD") == colour_of("kd")
    assert colour_of("AutoTinyBERT MLM") == colour_of("MLM")
    assert colour_of("AutoBERT-Zero") == colour_of("autobert zero") != colour_of("EfficientBERT")
    assert len({colour_of(s) for s in ("KD", "MLM", "EfficientBERT", "AutoBERT-Zero", "default rule")}) == 5


@pytest.mark.parametrize("values", [[21.5, 22.1, 23.4, 27.9], [4.6, 33.1], [6.3, 6.7, 11.8, 27.9]])
def test_a_speedup_axis_labels_a_few_round_values_and_no_minor_tick(values):
    """The paper's Figure 1 spans less than a decade at mini: matplotlib's default then labels every minor tick
    ("2.2x10^1 2.3x10^1 ...", overlapping). Here: at most eight labels, round values, each ending in x."""
    fig, ax = plt.subplots()
    ax.plot(values, values)
    speedup_axis(ax, values)
    fig.canvas.draw()
    major = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    assert 2 <= len(major) <= 8 and not minor
    assert all(label.endswith("×") and "10^" not in label and "$" not in label for label in major)
    lo, hi = ax.get_xlim()
    assert lo < min(values) and hi > max(values) and ax.get_xscale() == "log"
    plt.close(fig)


def test_the_legend_sits_beside_the_axes_not_over_the_points():
    points = pd.DataFrame({"objective": ["KD", "KD", "MLM"], "method": ["evolved", "default-rule", "evolved"],
                           "speedup": [21.5, 23.4, 27.9], "GLUE avg": [39.4, 37.4, 39.6],
                           "control GLUE avg": [36.9, 35.2, 35.2]})
    fig, ax = plt.subplots()
    plot_with_controls(ax, points, "GLUE avg", control="control GLUE avg")
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "KD default-rule" in labels and "untrained control (same shape)" in labels
    plt.close(fig)


def test_the_explorer_offers_every_model_and_shows_all_of_the_picked_ones_columns():
    from atb.plots import explorer, picked

    table = pd.DataFrame({"model": ["a", "b"], "GLUE avg": [40.0, 50.0], "sst2": [80.0, 85.0]})
    pick, _ = explorer(table).children
    assert list(pick.options) == ["a", "b"] and pick.value == "a"
    assert picked(table, "b").to_dict() == {"b": {"GLUE avg": 50.0, "sst2": 85.0}}


def test_the_comparison_explorer_has_every_model_with_its_task_scores():
    from atb import comparison
    from atb.layout import ROOT

    rows, _ = comparison.comparison_rows(ROOT / "results" / "mini")
    frame = comparison.explorer_frame(rows)
    assert list(frame["model"]) == [r["model"] for r in rows]
    tasks = json.loads((ROOT / "results" / "mini" / "05_glue.json").read_text())["developed_tasks"]
    assert {"architecture", "speedup", "GLUE avg", "SQuAD v1.1 F1", *tasks} <= set(frame.columns)  # 05's tasks
    developed = frame[~frame["model"].str.startswith("control of")]
    assert developed["sst2"].notna().all()
