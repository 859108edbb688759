"""atb.layout: one object owns the runs/<scale> and results/<scale> paths; scales never share a folder."""

import json

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


def test_records_name_run_folders_from_runs_not_by_the_machines_path(tmp_path):
    """A record written on one machine names its run folders ``runs/<scale>/…``; read where the runs root lies
    elsewhere (a clone, ``ATB_RUNS_DIR``), they are paths inside that root."""
    writer = Layout("mini", results_root=tmp_path / "results", runs_root=tmp_path / "machine-a" / "runs")
    model = writer.developed("kd-evolved-15x")
    record = {"models": {"kd-evolved-15x": {"arch": "6/288/224/12/252", "model_dir": str(model), "latency_ms": 1.5,
                                            "log": writer.search_log("kd", "evolved", 15.0)}},
              "dirs": [str(writer.control("4/256/480/12/192")), "runs are cached"],
              "teacher": "/opt/site-packages/minilm", "note": "runs/mini is where runs go"}
    path = writer.write_record("04_further_training.json", record)
    text = path.read_text()
    assert "machine-a" not in text and '"runs/mini/develop/kd-evolved-15x"' in text
    assert '"runs/mini/search/kd-evolved-15x.jsonl"' in text and '"/opt/site-packages/minilm"' in text
    reader = Layout("mini", results_root=tmp_path / "results", runs_root=tmp_path / "machine-b" / "runs")
    back = reader.read_record("04_further_training.json")
    m = back["models"]["kd-evolved-15x"]
    assert m["model_dir"] == str(reader.developed("kd-evolved-15x")) and m["arch"] == "6/288/224/12/252"
    assert m["log"] == str(reader.search_log("kd", "evolved", 15.0)) and m["latency_ms"] == 1.5
    assert back["dirs"] == [str(reader.control("4/256/480/12/192")), "runs are cached"]
    assert back["teacher"] == "/opt/site-packages/minilm" and back["note"] == "runs/mini is where runs go"
    assert writer.read_record("04_further_training.json")["models"]["kd-evolved-15x"]["model_dir"] == str(model)


def test_records_written_before_they_were_portable_read_as_they_are(tmp_path):
    layout = Layout("mini", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    legacy = {"model_dir": "/work/scratch/study7/runs/mini/develop/kd-evolved-15x", "speedup": 15.0}
    layout.record("05_glue.json").parent.mkdir(parents=True)
    layout.record("05_glue.json").write_text(json.dumps(legacy))
    assert layout.read_record("05_glue.json") == legacy
    assert layout.portable(layout.runs) == "runs/mini" and layout.portable(layout.runs_root) == "runs"
    assert layout.local(["runs/", "runs", 3, None]) == ["runs/", "runs", 3, None]


def test_a_missing_record_names_its_file(tmp_path):
    layout = Layout("mini", results_root=tmp_path / "results", runs_root=tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="04_further_training.json.*scale 'mini'"):
        layout.read_record("04_further_training.json")
