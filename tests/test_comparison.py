"""Notebook 10's table (atb.comparison): rows from the committed mini records, a synthetic AutoBERT-Zero record,
missing records, and the saved record's contract (``check_comparison_contract``, also run on the smoke study's
record by tests/test_notebooks.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from atb import comparison
from atb.layout import ROOT, Layout

MINI = ROOT / "results" / "mini"
ALLOWED = {"autotinybert", "efficientbert", "autobert-zero", "default-rule", "control"}


def check_comparison_contract(record: dict) -> None:
    """What notebook 10's ``10_comparison.json`` promises: the record keys, and per row at least the contract keys
    with a system among the five; each developed model followed by its control."""
    for key in ("scale", "rows", "missing", "protocol", "note"):
        assert key in record, f"10_comparison.json lacks {key!r}"
    assert isinstance(record["rows"], list) and isinstance(record["missing"], list)
    for row in record["rows"]:
        lacking = {"system", "model", "speedup", "params", "glue_avg", "squad_v1_f1",
                   "development_cpu_seconds"} - set(row)
        assert not lacking, f"row {row.get('model')!r} lacks {sorted(lacking)}"
        assert row["system"] in ALLOWED, f"row {row['model']!r}: unknown system {row['system']!r}"
        for key in ("speedup", "glue_avg", "squad_v1_f1", "development_cpu_seconds"):
            assert row[key] is None or (isinstance(row[key], (int, float)) and math.isfinite(row[key])), (row, key)
        assert row["params"] is None or isinstance(row["params"], int)
    developed = {r["model"] for r in record["rows"] if r["system"] != "control"}
    controls = {r["control_of"] for r in record["rows"] if r["system"] == "control"}
    assert developed == controls, f"models without a control row: {developed ^ controls}"
    for entry in record["missing"]:
        assert entry["system"] in ALLOWED - {"control", "default-rule"} and entry["records"]


def _load(name: str) -> dict:
    return json.loads((MINI / name).read_text())


def _synthetic_09(name: str = "abz-searched") -> dict:
    squad = {"squad_v1": {"em": 5.0, "f1": 9.5}, "control": {"squad_v1": {"em": 1.0, "f1": 6.0}}}
    return {"scale": "mini", "published": {"params": 14_000_000, "speedup": 6.0},
            "search": {"best": {"layers": ["conv", "attn"], "fitness": -1.0}, "history": [], "op_priority": {},
                       "cpu_seconds": 50.0, "random_mutation": {"best_fitness": -2.0, "cpu_seconds": 40.0}},
            "models": {name: {"layers": ["conv", "attn"], "params": 12_345_678, "speedup": 18.5, "latency_ms": 14.0,
                              "tasks": {"sst2": 80.0}, "avg": 41.25, "control": {"avg": 36.5}, "squad": squad,
                              "development_cpu_seconds": 321.0}}}


@pytest.fixture
def mini_copy(tmp_path: Path) -> Path:
    """The committed mini records that notebook 10 reads, in a folder of their own."""
    folder = tmp_path / "mini"
    folder.mkdir()
    for path in MINI.glob("0[0-8]_*.json"):  # not 09: the tests add a synthetic one
        shutil.copy(path, folder / path.name)
    return folder


@pytest.mark.parametrize("with_09", [False, True])
def test_mini_rows_cover_every_developed_model_with_a_control(mini_copy: Path, with_09: bool):
    """The committed mini records 01-08, without notebook 09's record (AutoBERT-Zero listed as missing) and with a
    synthetic one (its rows added): one fixed expectation each, whether or not results/mini/ holds a 09 record."""
    if with_09:
        (mini_copy / "09_autobert_zero.json").write_text(json.dumps(_synthetic_09()))
    rows, missing = comparison.comparison_rows(mini_copy)
    glue = _load("05_glue.json")["models"]
    developed = _load("04_further_training.json")["models"]
    by_model = {r["model"]: r for r in rows}
    for name, entry in glue.items():
        row = by_model[name]
        assert row["glue_avg"] == pytest.approx(entry["avg"])
        assert row["system"] == ("default-rule" if developed[name]["method"] == "default-rule" else "autotinybert")
        control = by_model[f"control of {name}"]
        assert control["system"] == "control" and control["control_of"] == name
        assert control["glue_avg"] == pytest.approx(entry["control"]["avg"])
        assert control["speedup"] == row["speedup"] and control["params"] == row["params"]
    squad = _load("06_squad.json")["models"]  # empty where the teacher does not learn SQuAD at the budget (06)
    for name in glue:
        expected = ((squad.get(name) or {}).get("squad_v1") or {}).get("f1")
        assert by_model[name]["squad_v1_f1"] == (None if expected is None else pytest.approx(expected))
    systems = {"autotinybert", "default-rule", "efficientbert", "control"}
    if with_09:
        assert missing == [] and {r["system"] for r in rows} == systems | {"autobert-zero"}
        assert by_model["control of abz-searched"]["control_of"] == "abz-searched"
    else:
        assert [m["system"] for m in missing] == ["autobert-zero"] and {r["system"] for r in rows} == systems


def test_mini_efficientbert_rows_and_costs():
    rows, _ = comparison.comparison_rows(MINI)
    record = _load("08_efficientbert.json")
    eff = {r["model"]: r for r in rows if r["system"] == "efficientbert"}
    assert set(eff) == set(record["models"])
    for name, row in eff.items():
        assert row["glue_avg"] == pytest.approx(record["models"][name]["avg"])
        assert row["params"] == record["models"][name]["params"]
    # the searched model pays for the search and the rerank that picked it; the plain-gelu start for neither
    searched, gelu = record["models"]["efficientbert-searched"], record["models"]["efficientbert-gelu"]
    assert eff["efficientbert-searched"]["development_cpu_seconds"] == pytest.approx(
        record["search"]["cpu_seconds"] + record["search"]["rerank"]["cost_seconds"]
        + searched["further_training"]["cpu_seconds"])
    assert eff["efficientbert-searched"]["cost_parts"]["rerank"] > 0 and "rerank" in eff["efficientbert-searched"]["cost_note"]
    assert eff["efficientbert-gelu"]["development_cpu_seconds"] == pytest.approx(gelu["further_training"]["cpu_seconds"])
    assert eff["efficientbert-gelu"]["cost_parts"]["rerank"] == 0.0
    kd = {r["model"]: r for r in rows if r["system"] in ("autotinybert", "default-rule")}
    cost = _load("04_further_training.json")["models"]["kd-evolved-25x"]
    assert kd["kd-evolved-25x"]["development_cpu_seconds"] == pytest.approx(
        cost["search"]["cpu_seconds"] + cost["further_training"]["cpu_seconds"])
    assert kd["kd-default-rule-25x"]["cost_parts"]["search"] == 0.0


def test_params_from_the_arch_string():
    rows, _ = comparison.comparison_rows(MINI)
    row = next(r for r in rows if r["model"] == "kd-evolved-25x")
    from atb.latency_predictor import parameters
    from atb.space import Arch
    arch = json.loads((MINI / "04_further_training.json").read_text())["models"]["kd-evolved-25x"]["arch"]
    assert row["params"] == int(parameters([Arch.parse(arch)])[0])  # the committed study's evolved shape


def test_synthetic_autobert_zero_record_adds_rows(mini_copy: Path):
    (mini_copy / "09_autobert_zero.json").write_text(json.dumps(_synthetic_09()))
    rows, missing = comparison.comparison_rows(mini_copy)
    assert missing == []
    abz = [r for r in rows if r["system"] == "autobert-zero"]
    assert [r["model"] for r in abz] == ["abz-searched"]
    row = abz[0]
    assert (row["speedup"], row["params"], row["glue_avg"], row["squad_v1_f1"], row["development_cpu_seconds"]) == \
        (18.5, 12_345_678, 41.25, 9.5, 321.0)
    control = next(r for r in rows if r.get("control_of") == "abz-searched")
    assert (control["glue_avg"], control["squad_v1_f1"]) == (36.5, 6.0)
    assert "AutoBERT-Zero: 1 model(s)" in comparison.summary(rows, missing)


def test_autobert_zero_shared_cost_holds_the_warm_up_and_the_convolutions_training(mini_copy: Path):
    record = _synthetic_09()
    record["warmup"], record["conv_kd"] = {"cpu_seconds": 700.0}, {"cpu_seconds": 250.0}
    record["search"]["developed_pick"] = {"rerank_seconds": 900.0}
    record["models"]["abz-searched"]["method"] = "searched"
    (mini_copy / "09_autobert_zero.json").write_text(json.dumps(record))
    row = next(r for r in comparison.comparison_rows(mini_copy)[0] if r["system"] == "autobert-zero")
    assert row["shared_cpu_seconds"] == 950.0 and row["development_cpu_seconds"] == 321.0
    assert "OP-NAS runs + the rerank + further distillation" in row["cost_note"]
    assert "its trained convolutions" in row["cost_note"]


def test_missing_records_are_reported(mini_copy: Path):
    (mini_copy / "08_efficientbert.json").unlink()
    (mini_copy / "05_glue.json").unlink()
    rows, missing = comparison.comparison_rows(mini_copy)
    assert rows == []
    assert {m["system"]: m["records"] for m in missing} == {
        "autotinybert": ["05_glue.json"], "efficientbert": ["08_efficientbert.json"],
        "autobert-zero": ["09_autobert_zero.json"]}
    assert "not in this comparison" in comparison.summary(rows, missing)
    assert comparison.comparison_table(rows).empty


def test_saved_record_keeps_the_contract(mini_copy: Path, tmp_path: Path):
    (mini_copy / "09_autobert_zero.json").write_text(json.dumps(_synthetic_09()))
    records = comparison.load_records(mini_copy)
    rows, missing = comparison.comparison_rows(records)
    rows[0]["glue_avg"] = None  # a score a small scale could not compute
    layout = Layout("mini", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    path = comparison.save_record(layout, rows, missing, protocol=comparison.latency_protocol(records))
    assert path == layout.record("10_comparison.json")
    record = json.loads(path.read_text())
    check_comparison_contract(record)
    assert record["scale"] == "mini" and record["protocol"]["latency"]["batch_size"] == 1
    assert len(record["rows"]) == len(rows)
    assert comparison.save_record(tmp_path / "elsewhere" / "smoke", rows, missing).name == "10_comparison.json"
    assert json.loads((tmp_path / "elsewhere" / "smoke" / "10_comparison.json").read_text())["scale"] == "smoke"


def test_nan_is_refused_not_written(tmp_path: Path):
    rows, missing = comparison.comparison_rows(MINI)
    rows[0]["latency_ms"] = float("nan")  # save_record writes with allow_nan=False
    with pytest.raises(ValueError):
        comparison.save_record(tmp_path, rows, missing)


def test_figure_has_one_group_per_system_and_method(tmp_path: Path):
    rows, _ = comparison.comparison_rows(MINI)
    frame = comparison.figure_frame(rows)
    assert len(frame) == sum(r["system"] != "control" for r in rows)
    assert frame["control GLUE avg"].notna().all()
    fig = comparison.plot_comparison(rows, "mini: ")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "BERT default-rule" in labels and "EfficientBERT searched" in labels
