"""Every numbered notebook runs end to end at smoke scale under papermill (no error cell), and the runner
stops at a failing notebook, names it, and keeps the record of the notebooks that ran before."""

import json
import shutil

import nbformat
import pytest

from atb.develop import GLUE_COLUMNS
from atb.reproduce import ROOT, notebooks, run


@pytest.mark.slow
def test_all_notebooks_run_at_smoke_scale(tmp_path):
    record = run("smoke", ROOT / "notebooks", tmp_path, runs_dir=tmp_path / "runs")
    assert set(record["notebooks"]) == {nb.name for nb in notebooks(ROOT / "notebooks")}
    assert all(v["status"] == "ok" for v in record["notebooks"].values())
    for nb in notebooks(ROOT / "notebooks"):
        executed = nbformat.read(tmp_path / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{nb.name}: {errors[0]['ename']}"
    check_result_contracts(tmp_path)


def check_result_contracts(results):
    """The records other tools read (issue contracts): keys present, unavailable tasks null with a reason."""
    search = json.loads((results / "03_search.json").read_text())
    assert {"objective", "speedup", "method", "best_arch", "best_fitness", "predicted_latency_ms", "cpu_seconds",
            "history"} <= set(search["searches"][0]) and "inherited_vs_trained" in search["kendall"]
    develop = json.loads((results / "04_further_training.json").read_text())
    assert develop["costs"] and all({"latency_ms", "speedup", "further_training"} <= set(m)
                                    for m in develop["models"].values())
    glue = json.loads((results / "05_glue.json").read_text())["models"]
    assert glue.keys() == develop["models"].keys()
    for entry in glue.values():
        assert set(entry["tasks"]) == set(GLUE_COLUMNS) and entry["kind"] in ("searched", "baseline")
        assert all(entry["tasks"][c] is None and entry["unavailable"][c] for c in entry["unavailable"])
        assert entry["avg"] is not None
    squad = json.loads((results / "06_squad.json").read_text())["models"]
    assert all({"em", "f1"} <= set(s["squad_v1"]) and ("squad_v2" in s) for s in squad.values())
    assert (results / "07_accuracy_latency.png").exists() and (results / "model_cards").is_dir()
    assert "| 6 |" in (results / "REPORT.md").read_text()


def test_a_failing_notebook_stops_the_run_and_keeps_earlier_results(tmp_path):
    nb_dir = tmp_path / "nbs"
    _tiny_notebooks(nb_dir, ["x = 1", "raise RuntimeError('boom')", "y = 2"])
    with pytest.raises(SystemExit, match="01_step.ipynb.*RuntimeError: boom"):
        run("smoke", nb_dir, tmp_path / "results")
    record = json.loads((tmp_path / "results" / "reproduce.json").read_text())
    assert record["notebooks"]["00_step.ipynb"]["status"] == "ok"
    assert record["notebooks"]["01_step.ipynb"]["status"].startswith("failed")
    assert "02_step.ipynb" not in record["notebooks"]


def test_unknown_scale_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--scale"):
        run("huge", ROOT / "notebooks", tmp_path)


def _tiny_notebooks(nb_dir, sources, only=None):
    nb_dir.mkdir(exist_ok=True)
    for i, source in enumerate(sources):
        if only is not None and i not in only:
            continue
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('scale = "mini"\nresults_dir = "."\nruns_dir = "."')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nb_dir / f"0{i}_step.ipynb")


def test_unchanged_notebooks_are_skipped_and_force_reruns(tmp_path):
    nb_dir, results = tmp_path / "nbs", tmp_path / "results"
    _tiny_notebooks(nb_dir, ["x = 1", "y = 2"])
    first = run("smoke", nb_dir, results)
    assert not any(v["cached"] for v in first["notebooks"].values())
    second = run("smoke", nb_dir, results)
    assert all(v["cached"] for v in second["notebooks"].values())
    _tiny_notebooks(nb_dir, ["x = 3", "y = 2"], only={0})  # the first notebook changed: it reruns, the second does not
    third = run("smoke", nb_dir, results)
    assert [v["cached"] for v in third["notebooks"].values()] == [False, True]
    assert not any(v["cached"] for v in run("smoke", nb_dir, results, force=True)["notebooks"].values())
    assert not any(v["cached"] for v in run("mini", nb_dir, results)["notebooks"].values())  # another scale
