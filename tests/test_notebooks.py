"""Every numbered notebook runs end to end at smoke scale under papermill (no error cell), and the runner
stops at a failing notebook, names it, and keeps the record of the notebooks that ran before."""

import json
import shutil

import nbformat
import pytest

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


def test_a_failing_notebook_stops_the_run_and_keeps_earlier_results(tmp_path):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    for i, source in enumerate(["x = 1", "raise RuntimeError('boom')", "y = 2"]):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('scale = "mini"\nresults_dir = "."')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nb_dir / f"0{i}_step.ipynb")
    with pytest.raises(SystemExit, match="01_step.ipynb.*RuntimeError: boom"):
        run("smoke", nb_dir, tmp_path / "results")
    record = json.loads((tmp_path / "results" / "reproduce.json").read_text())
    assert record["notebooks"]["00_step.ipynb"]["status"] == "ok"
    assert record["notebooks"]["01_step.ipynb"]["status"].startswith("failed")
    assert "02_step.ipynb" not in record["notebooks"]


def test_unknown_scale_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--scale"):
        run("huge", ROOT / "notebooks", tmp_path)
