"""atb.layout: one object owns the runs/<scale> and results/<scale> paths; scales never share a folder."""

import pytest

from atb.layout import Layout


def test_paths_of_a_scale_sit_under_its_own_folders(tmp_path):
    mini = Layout("mini", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    assert mini.results == tmp_path / "results" / "mini" and mini.runs == tmp_path / "runs" / "mini"
    assert mini.record("02_latency.json") == mini.results / "02_latency.json"
    assert mini.notebooks == mini.results / "notebooks" and mini.model_cards == mini.results / "model_cards"
    assert mini.superplm_final("kd") == mini.runs / "superplm-kd" / "final"
    assert mini.search_log("kd", "evolved", 25.0) == mini.runs / "search" / "kd-evolved-25x.jsonl"
    assert mini.search_log("kd", "evolved", 25.0, seed=2) == mini.runs / "search" / "kd-evolved-25x-seed2.jsonl"
    assert mini.search_log("kd", "pareto", seed=1) == mini.runs / "search" / "kd-pareto-seed1.jsonl"
    assert mini.finetune("kd-evolved-25x") == mini.runs / "develop" / "kd-evolved-25x" / "finetune"
    assert mini.failed == mini.runs / "failed" and mini.latency == mini.runs / "latency"
    assert mini.control("4/256/480/12/192") == mini.runs / "develop" / "controls" / "4-256-480-12-192-init0"
    assert mini.control_finetune("4/256/480/12/192", 1) == mini.develop / "controls" / "4-256-480-12-192-init1" / "finetune"
    with pytest.raises(ValueError, match="layers/hidden"):
        mini.control("kd-evolved-25x")
    smoke = Layout("smoke", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    mini_paths = {mini.results, mini.runs, mini.notebooks, mini.latency, mini.develop, mini.ranking("kd")}
    smoke_paths = [smoke.results, smoke.runs, smoke.notebooks, smoke.latency, smoke.develop, smoke.ranking("kd")]
    assert not any(p == m or m in p.parents for p in smoke_paths for m in mini_paths)


def test_roots_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ATB_RESULTS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("ATB_RUNS_DIR", str(tmp_path / "w"))
    layout = Layout("smoke")
    assert layout.results == (tmp_path / "r" / "smoke").resolve() and layout.runs == (tmp_path / "w" / "smoke").resolve()
    monkeypatch.delenv("ATB_RESULTS_DIR")
    assert Layout("smoke").results.parent.name == "results"


@pytest.mark.parametrize("bad", ["", "../mini", "mini/x", "."])
def test_a_scale_is_a_plain_name(bad):
    with pytest.raises(ValueError, match="plain name"):
        Layout(bad)
