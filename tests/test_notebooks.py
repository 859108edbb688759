"""Every numbered notebook runs end to end at smoke scale under papermill (no error cell), writes only into
the smoke folders of the roots it is given, and leaves the committed study (``results/mini/``) byte for byte
as it was. The runner itself is tested on tiny notebooks in ``test_reproduce.py``."""

import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from atb.develop import GLUE_COLUMNS
from atb.reproduce import ROOT, notebooks, run


def tree_hashes(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path`` (empty when it does not exist)."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_all_notebooks_run_at_smoke_scale(tmp_path):
    committed = tree_hashes(ROOT / "results")  # results/mini/ and every other scale's committed folder
    assert any(name.startswith("mini/") for name in committed), "the committed mini study is missing"
    record = run("smoke", ROOT / "notebooks", tmp_path / "results", runs_root=tmp_path / "runs")
    assert set(record["notebooks"]) == {nb.name for nb in notebooks(ROOT / "notebooks")}
    assert all(v["status"] == "ok" for v in record["notebooks"].values())
    results = tmp_path / "results" / "smoke"
    for nb in notebooks(ROOT / "notebooks"):
        executed = nbformat.read(results / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{nb.name}: {errors[0]['ename']}"
        assert executed.metadata.papermill.parameters == {"scale": "smoke"}
    check_result_contracts(results)
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["smoke"]
    after = tree_hashes(ROOT / "results")
    changed = sorted(name for name in committed.keys() | after.keys() if committed.get(name) != after.get(name))
    assert not changed, f"a smoke run changed the repository's results/: {changed}"


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
