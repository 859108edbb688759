"""The notebook runner (:mod:`atb.reproduce`) on tiny notebooks: per-scale results, failed runs that lose
nothing, the cache key, executed copies without machine paths."""

import base64
import hashlib
import json
import os
from pathlib import Path

import nbformat
import pytest

from atb.layout import Layout
from atb.reproduce import ROOT, SNAPSHOT, restore_results, run, scrub_paths, snapshot_results, step_key

pytestmark = pytest.mark.timeout(600)
kernels = pytest.mark.slow  # runs tiny notebooks through papermill kernels (seconds each)


def _tiny_notebooks(nb_dir, sources, only=None):
    """Notebooks ``00_step.ipynb``, ``01_step.ipynb``, ... whose only parameter is ``scale``, then ``source``."""
    nb_dir.mkdir(parents=True, exist_ok=True)
    for i, source in enumerate(sources):
        if only is not None and i not in only:
            continue
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('scale = "mini"')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nb_dir / f"0{i}_step.ipynb")


def _record(results, scale="smoke"):
    return json.loads((results / scale / "reproduce.json").read_text())


def _tree(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path``."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- basics
def test_unknown_scale_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="--scale"):
        run("huge", ROOT / "notebooks", tmp_path)


@kernels
def test_a_failing_notebook_stops_the_run_and_keeps_earlier_results(tmp_path):
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    _tiny_notebooks(nb_dir, ["x = 1", "raise RuntimeError('boom')", "y = 2"])
    with pytest.raises(SystemExit, match="01_step.ipynb.*RuntimeError: boom"):
        run("smoke", nb_dir, results, runs_root=runs)
    record = _record(results)
    assert record["scale"] == "smoke"
    assert record["notebooks"]["00_step.ipynb"]["status"] == "ok"
    failed = record["notebooks"]["01_step.ipynb"]
    assert failed["status"].startswith("failed") and "last_ok" not in failed  # it never succeeded
    assert "02_step.ipynb" not in record["notebooks"]
    assert (results / "smoke" / "notebooks" / "00_step.ipynb").exists()
    assert not (results / "smoke" / "notebooks" / "01_step.ipynb").exists()
    assert "boom" in (runs / "smoke" / "failed" / "01_step.ipynb").read_text()
    assert not (results / "smoke" / "REPORT.md").exists()  # the report waits for a run that succeeded


@kernels
def test_unchanged_notebooks_are_skipped_and_force_reruns(tmp_path):
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    _tiny_notebooks(nb_dir, ["x = 1", "y = 2"])
    first = run("smoke", nb_dir, results, runs_root=runs)
    assert not any(v["cached"] for v in first["notebooks"].values())
    assert (results / "smoke" / "REPORT.md").exists() and _record(results) == first
    second = run("smoke", nb_dir, results, runs_root=runs)
    assert all(v["cached"] for v in second["notebooks"].values())
    _tiny_notebooks(nb_dir, ["x = 3", "y = 2"], only={0})  # the first notebook changed: it reruns, the second does not
    third = run("smoke", nb_dir, results, runs_root=runs)
    assert [v["cached"] for v in third["notebooks"].values()] == [False, True]
    assert not any(v["cached"] for v in run("smoke", nb_dir, results, runs_root=runs, force=True)["notebooks"].values())
    assert not any(v["cached"] for v in run("mini", nb_dir, results, runs_root=runs)["notebooks"].values())


def test_the_record_tells_a_run_from_scratch_from_a_re_execution(tmp_path):
    """A study's cost is its run from an empty ``runs/``; re-executions that reuse cached steps are far shorter, and
    the record (and REPORT.md) must not pass them off as the cost."""
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    cache = 'import os, pathlib; pathlib.Path(os.environ["ATB_RUNS_DIR"], "smoke", "step.txt").write_text("cached")'
    _tiny_notebooks(nb_dir, [cache, "y = 2"])
    first = run("smoke", nb_dir, results, runs_root=runs)
    assert first["runs_empty_at_start"] and all(v["runs_empty_at_start"] for v in first["notebooks"].values())
    assert first["machine"]["cpu"] and first["machine"]["computed_in"] in ("fp32", "bf16")
    assert "the study's cost from scratch" in (results / "smoke" / "REPORT.md").read_text()
    skipped = run("smoke", nb_dir, results, runs_root=runs)  # nothing executed: the copies are still the study's
    assert all(v["cached"] for v in skipped["notebooks"].values())
    assert skipped["runs_empty_at_start"] and skipped["from_scratch"] == first["from_scratch"]
    again = run("smoke", nb_dir, results, runs_root=runs, force=True)  # executed, but runs/ held cached work
    assert not again["runs_empty_at_start"] and not any(v["runs_empty_at_start"] for v in again["notebooks"].values())
    assert "Not the cost from scratch" in (results / "smoke" / "REPORT.md").read_text()
    assert again["from_scratch"]["total_seconds"] == first["total_seconds"]  # the cost from scratch stays on record
    kept = again["from_scratch"]["seconds"]  # and each notebook's part of it, which the re-execution replaced
    assert kept == {name: entry["seconds"] for name, entry in first["notebooks"].items()}
    assert again["from_scratch"]["split"]["papers"] == pytest.approx(sum(kept.values()), abs=0.11)
    assert "The last study from scratch took" in (results / "smoke" / "REPORT.md").read_text()


@kernels
def test_a_study_from_scratch_may_span_calls_that_resume_at_notebook_boundaries(tmp_path):
    """A study too long for one sitting: the first call starts it from an empty ``runs/``, a later call executes the
    remaining notebooks on top of its work. Every notebook executed once, so the sum is still the cost from scratch."""
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    cache = 'import os, pathlib; pathlib.Path(os.environ["ATB_RUNS_DIR"], "smoke", "step.txt").write_text("cached")'
    _tiny_notebooks(nb_dir, [cache, "y = 2"])
    first = run("smoke", nb_dir, results, runs_root=runs, only=["00_"])
    assert first["runs_empty_at_start"]
    second = run("smoke", nb_dir, results, runs_root=runs, only=["01_"])
    entries = second["notebooks"]
    assert entries["00_step.ipynb"]["call"] != entries["01_step.ipynb"]["call"]
    assert entries["00_step.ipynb"]["study"] == entries["01_step.ipynb"]["study"] is not None
    assert second["runs_empty_at_start"] and second["from_scratch"]["calls"] == 2
    assert "2 calls, each resuming at a notebook boundary" in (results / "smoke" / "REPORT.md").read_text()


@kernels
def test_a_resuming_call_that_skips_the_notebooks_already_done_keeps_the_study_from_scratch(tmp_path):
    """The usual way to resume: the same command again, without ``--only``; the notebooks done in the first call are
    skipped as unchanged (``cached``) and the study's cost is still the sum of each notebook's one execution."""
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    cache = 'import os, pathlib; pathlib.Path(os.environ["ATB_RUNS_DIR"], "smoke", "step.txt").write_text("cached")'
    _tiny_notebooks(nb_dir, [cache, "y = 2"], only=[0])
    first = run("smoke", nb_dir, results, runs_root=runs)
    _tiny_notebooks(nb_dir, [cache, "y = 2"], only=[1])  # the second notebook appears: the study goes on
    second = run("smoke", nb_dir, results, runs_root=runs)
    entries = second["notebooks"]
    assert entries["00_step.ipynb"]["cached"] and not entries["01_step.ipynb"]["cached"]
    assert second["runs_empty_at_start"] and second["from_scratch"]["calls"] == 2
    assert second["from_scratch"]["total_seconds"] == pytest.approx(
        first["total_seconds"] + entries["01_step.ipynb"]["seconds"], abs=0.11)


@kernels
def test_a_notebook_executed_twice_in_one_study_is_no_longer_its_cost_from_scratch(tmp_path):
    """An attempt that was stopped (or failed, or is forced again) may leave cached work that the next one reuses."""
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    cache = 'import os, pathlib; pathlib.Path(os.environ["ATB_RUNS_DIR"], "smoke", "step.txt").write_text("cached")'
    _tiny_notebooks(nb_dir, [cache, "y = 2"])
    assert run("smoke", nb_dir, results, runs_root=runs)["runs_empty_at_start"]
    again = run("smoke", nb_dir, results, runs_root=runs, only=["01_"], force=True)
    assert again["notebooks"]["01_step.ipynb"]["retried"] and not again["runs_empty_at_start"]
    assert "but 01_step.ipynb executed more than once in it" in (results / "smoke" / "REPORT.md").read_text()
    assert json.loads((runs / "smoke" / "study.json").read_text())["executed"] == ["00_step.ipynb", "01_step.ipynb"]


@kernels
def test_a_run_of_the_committed_study_regenerates_the_readme_table_and_no_other_run_does(tmp_path, monkeypatch):
    import atb.reproduce as reproduce
    from atb.report import README_END, README_START

    nb_dir, runs = tmp_path / "nbs", tmp_path / "runs"
    _tiny_notebooks(nb_dir, ["y = 1"])
    (tmp_path / "README.md").write_text(f"# x\n{README_START}\nstale\n{README_END}\n")
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "README_SCALE", "smoke")
    run("smoke", nb_dir, tmp_path / "elsewhere", runs_root=runs)  # not the committed results folder: untouched
    assert "stale" in (tmp_path / "README.md").read_text()
    run("smoke", nb_dir, tmp_path / "results", runs_root=runs)
    text = (tmp_path / "README.md").read_text()
    assert "stale" not in text and "| 11 |" in text and "**not testable**" in text


# ------------------------------------------------------------------------------ failed runs lose nothing
@kernels
def test_a_failed_notebook_leaves_the_figures_and_records_of_the_last_good_run(tmp_path):
    """A notebook writes its figures and records as it goes; when it then fails, what it wrote is undone."""
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    write = ('import os, pathlib; r = pathlib.Path(os.environ["ATB_RESULTS_DIR"], "smoke"); '
             '(r / "fig.png").write_text(VERSION); (r / "new.json").write_text(VERSION) if VERSION == "bad" else None')
    _tiny_notebooks(nb_dir, [f'VERSION = "good"; {write}'])
    run("smoke", nb_dir, results, runs_root=runs)
    _tiny_notebooks(nb_dir, [f'VERSION = "bad"; {write}; raise RuntimeError("boom")'])
    with pytest.raises(SystemExit):
        run("smoke", nb_dir, results, runs_root=runs)
    assert (results / "smoke" / "fig.png").read_text() == "good" and not (results / "smoke" / "new.json").exists()
    assert _record(results)["notebooks"]["00_step.ipynb"]["restored"] == ["fig.png", "new.json"]
    assert not any((runs / "smoke" / "executing").iterdir())


def test_a_run_killed_mid_notebook_is_undone_by_the_next_call(tmp_path):
    """SIGKILL leaves no chance to restore; the snapshot left behind tells the next call what to undo."""
    layout = Layout("smoke", tmp_path / "results", tmp_path / "runs")
    layout.results.mkdir(parents=True)
    (layout.results / "fig.png").write_text("good")
    snapshot_results(layout)
    (layout.results / "fig.png").write_text("half")  # the killed notebook's work
    (layout.results / "model_cards").mkdir()
    (layout.results / "model_cards" / "x.md").write_text("half")
    assert restore_results(layout, layout.runs / "executing" / SNAPSHOT) == ["fig.png", "model_cards/x.md"]
    assert (layout.results / "fig.png").read_text() == "good" and not (layout.results / "model_cards" / "x.md").exists()


@kernels
def test_a_failed_rerun_keeps_the_last_good_copy_and_its_record(tmp_path):
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    executed, failed = results / "smoke" / "notebooks" / "01_step.ipynb", runs / "smoke" / "failed" / "01_step.ipynb"
    _tiny_notebooks(nb_dir, ["x = 1", "print('good')"])
    run("smoke", nb_dir, results, runs_root=runs)
    good_copy, good_entry = executed.read_bytes(), _record(results)["notebooks"]["01_step.ipynb"]
    good_report = (results / "smoke" / "REPORT.md").read_bytes()

    _tiny_notebooks(nb_dir, ["", "print('partial output')\nraise RuntimeError('boom')"], only={1})
    for attempt in range(2):  # a second failure still remembers the last good run, not the first failure
        with pytest.raises(SystemExit, match="01_step.ipynb.*RuntimeError: boom"):
            run("smoke", nb_dir, results, runs_root=runs)
        assert executed.read_bytes() == good_copy
        record = _record(results)
        entry = record["notebooks"]["01_step.ipynb"]
        assert entry["status"] == "failed in cell 3: RuntimeError: boom" and not entry["cached"]
        assert entry["last_ok"] == good_entry and entry["key"] != good_entry["key"]
        assert entry["failed_copy"] == "$ATB_RUNS_DIR/smoke/failed/01_step.ipynb"
        assert record["notebooks"]["00_step.ipynb"]["status"] == "ok"  # other notebooks' entries stay
        assert record["total_seconds"] == pytest.approx(sum(
            e["seconds"] for e in (record["notebooks"]["00_step.ipynb"], good_entry)))
        assert "partial output" in failed.read_text() and "boom" in failed.read_text()
        assert not any((runs / "smoke" / "executing").iterdir())
        assert (results / "smoke" / "REPORT.md").read_bytes() == good_report

    _tiny_notebooks(nb_dir, ["", "print('fixed')"], only={1})
    entry = run("smoke", nb_dir, results, runs_root=runs)["notebooks"]["01_step.ipynb"]
    assert entry["status"] == "ok" and "last_ok" not in entry and "failed_copy" not in entry
    assert "fixed" in executed.read_text() and not failed.exists()


# ---------------------------------------------------------------------------------- per-scale results
@kernels
def test_a_run_at_one_scale_leaves_other_scales_alone(tmp_path, monkeypatch):
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    monkeypatch.delenv("ATB_RESULTS_DIR", raising=False)
    monkeypatch.delenv("ATB_RUNS_DIR", raising=False)
    _tiny_notebooks(nb_dir, [
        "import json\nfrom atb.layout import Layout\n"
        "Layout(scale).record('00_step.json').write_text(json.dumps({'scale': scale}))",
        "from atb.layout import Layout\nLayout(scale).runs.mkdir(parents=True, exist_ok=True)\n"
        "(Layout(scale).runs / 'cache.txt').write_text(scale)",
    ])
    run("mini", nb_dir, results, runs_root=runs)
    mini = {"results": _tree(results / "mini"), "runs": _tree(runs / "mini")}
    assert {"00_step.json", "reproduce.json", "REPORT.md", "notebooks/00_step.ipynb"} <= set(mini["results"])

    run("smoke", nb_dir, results, runs_root=runs)
    run("smoke", nb_dir, results, runs_root=runs, force=True)
    _tiny_notebooks(nb_dir, ["raise RuntimeError('boom')"], only={0})
    with pytest.raises(SystemExit):
        run("smoke", nb_dir, results, runs_root=runs)

    assert {"results": _tree(results / "mini"), "runs": _tree(runs / "mini")} == mini
    assert sorted(p.name for p in results.iterdir()) == ["mini", "smoke"]
    assert json.loads((results / "smoke" / "00_step.json").read_text()) == {"scale": "smoke"}  # kernel inherited roots
    assert (runs / "smoke" / "cache.txt").read_text() == "smoke"
    assert "ATB_RESULTS_DIR" not in os.environ and "ATB_RUNS_DIR" not in os.environ  # restored after the run


# ------------------------------------------------------------------------------------------ cache key
class _KeyWorld:
    """A fake repository (configs/, atb/), tiny notebooks and records at two scales, for :func:`step_key`."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp, self.monkeypatch = tmp_path, monkeypatch
        self.root, self.nb_dir = tmp_path / "repo", tmp_path / "nbs"
        for name, text in {"configs/smoke.yaml": "steps: 1\n", "configs/mini.yaml": "steps: 9\n",
                           "atb/__init__.py": "", "atb/train.py": "STEPS = 1\n", "README.md": "# repo\n"}.items():
            self.write(self.root / name, text)
        _tiny_notebooks(self.nb_dir, ["a = 0", "b = 1", "c = 2"])
        for scale in ("smoke", "mini"):
            for name in ("00_step.json", "01_step.json", "02_step.json"):
                self.write(Layout(scale, tmp_path / "results", tmp_path / "runs").record(name), '{"v": 1}')
        self.layout = Layout("smoke", tmp_path / "results", tmp_path / "runs")
        monkeypatch.setenv("ATB_DATA_DIR", "/data/a")

    @staticmethod
    def write(path, text):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def key(self):
        return step_key(self.nb_dir / "01_step.ipynb", self.layout, root=self.root)

    def other_scale(self):
        self.layout = Layout("mini", self.tmp / "results", self.tmp / "runs")


KEY_CASES = [  # (what changes, does notebook 01's key change, the change)
    ("the notebook", True, lambda w: _tiny_notebooks(w.nb_dir, ["", "b = 2"], only={1})),
    ("the scale", True, lambda w: w.other_scale()),
    ("ATB_DATA_DIR", True, lambda w: w.monkeypatch.setenv("ATB_DATA_DIR", "/data/b")),
    ("ATB_DATA_DIR unset (the hub)", True, lambda w: w.monkeypatch.delenv("ATB_DATA_DIR")),
    ("the scale's config file", True, lambda w: w.write(w.root / "configs/smoke.yaml", "steps: 2\n")),
    ("another scale's config file", False, lambda w: w.write(w.root / "configs/mini.yaml", "steps: 3\n")),
    ("a new config file of another scale", False, lambda w: w.write(w.root / "configs/base.yaml", "steps: 3\n")),
    ("an atb source", True, lambda w: w.write(w.root / "atb/train.py", "STEPS = 2\n")),
    ("a new atb source", True, lambda w: w.write(w.root / "atb/data/glue.py", "")),
    ("an earlier notebook's record", True, lambda w: w.write(w.layout.record("00_step.json"), '{"v": 2}')),
    ("a new earlier record", True, lambda w: w.write(w.layout.record("00_more.json"), "{}")),
    ("a later notebook's record", False, lambda w: w.write(w.layout.record("02_step.json"), '{"v": 2}')),
    ("a new later record", False, lambda w: w.write(w.layout.record("03_step.json"), "{}")),
    ("the notebook's own record", False, lambda w: w.write(w.layout.record("01_step.json"), '{"v": 2}')),
    ("another scale's records", False,
     lambda w: w.write(Layout("mini", w.tmp / "results").record("00_step.json"), '{"v": 2}')),
    ("a later notebook", False, lambda w: _tiny_notebooks(w.nb_dir, ["", "", "c = 3"], only={2})),
    ("REPORT.md, reproduce.json, executed copies", False, lambda w: [
        w.write(w.layout.results / name, "x") for name in ("REPORT.md", "reproduce.json", "notebooks/00_step.ipynb")]),
    ("runs/", False, lambda w: w.write(w.layout.runs / "superplm-kd" / "log.jsonl", "{}")),
    ("a file outside configs/ and atb/", False, lambda w: w.write(w.root / "README.md", "# changed\n")),
]


@pytest.mark.parametrize("what, changes, change", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_the_cache_key_changes_exactly_with_the_notebooks_inputs(tmp_path, monkeypatch, what, changes, change):
    world = _KeyWorld(tmp_path, monkeypatch)
    before = world.key()
    assert world.key() == before  # deterministic
    change(world)
    assert (world.key() != before) == changes, f"{what} should {'' if changes else 'not '}change the key"


# ----------------------------------------------------------------------------------- machine paths
def test_scrub_paths_replaces_whole_paths_in_sources_outputs_and_metadata(tmp_path):
    png = "iVBORw0KGgo/work/main/AAAA" + base64.b64encode(b"\x89PNG").decode()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('results_dir = "/work/main/results"\nother = "/work/main2/x"  # /work/main.')
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="wrote /work/main/results/02.json\n/home/u/.cache/x\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "PosixPath('/work/main/runs')", "image/png": png}),
        nbformat.v4.new_output("error", ename="E", evalue="in /work/main", traceback=['File "/work/main/atb/x.py"']),
    ]
    nb.cells = [cell, nbformat.v4.new_markdown_cell("see /work/main-old and /work/main.git/")]
    nb.metadata["papermill"] = {"input_path": "/work/main/notebooks/00.ipynb", "parameters": {"d": "/home/u"}}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)

    roots = {"/work/main": ".", "/home/u/": "~", "/work/main/results": "$R", "/": "never the file system root"}
    assert scrub_paths(path, roots) == 9
    out = nbformat.read(path, as_version=4)
    code, markdown = out.cells
    assert code.source == 'results_dir = "$R"\nother = "/work/main2/x"  # ..'
    assert code.outputs[0].text == "wrote $R/02.json\n~/.cache/x\n"
    assert code.outputs[1].data == {"text/plain": "PosixPath('./runs')", "image/png": png}  # base64 untouched
    assert (code.outputs[2].evalue, code.outputs[2].traceback) == ("in .", ['File "./atb/x.py"'])
    assert markdown.source == "see /work/main-old and /work/main.git/"  # other names that start alike
    assert out.metadata.papermill == {"input_path": "./notebooks/00.ipynb", "parameters": {"d": "~"}}
    unchanged = path.read_bytes()
    assert scrub_paths(path, roots) == 0 and path.read_bytes() == unchanged


@kernels
def test_executed_copies_carry_no_machine_path_and_receive_only_the_scale(tmp_path):
    nb_dir, results, runs = tmp_path / "nbs", tmp_path / "results", tmp_path / "runs"
    _tiny_notebooks(nb_dir, [
        "import os, atb\nfrom atb.layout import Layout\nfrom tqdm.auto import tqdm\n"
        "print(Layout(scale).results, Layout(scale).runs, os.getcwd(), os.path.dirname(atb.__file__))\n"
        "print(os.path.expanduser('~/x'))\nfor _ in tqdm(range(2)):\n    pass",
        "import os\nraise RuntimeError(os.getcwd())",
    ])
    with pytest.raises(SystemExit):
        run("smoke", nb_dir, results, runs_root=runs)
    for copy in (results / "smoke" / "notebooks" / "00_step.ipynb", runs / "smoke" / "failed" / "01_step.ipynb"):
        text = copy.read_text()
        assert str(tmp_path) not in text and str(ROOT) not in text and str(Path.home()) + "/" not in text
        assert "IProgress not found" not in text  # ipywidgets is installed: tqdm draws notebook bars
        assert nbformat.read(copy, as_version=4).metadata.papermill.parameters == {"scale": "smoke"}
    printed = nbformat.read(results / "smoke" / "notebooks" / "00_step.ipynb", as_version=4).cells[2].outputs[0].text
    assert printed == "$ATB_RESULTS_DIR/smoke $ATB_RUNS_DIR/smoke <notebooks> ./atb\n~/x\n"
    assert _record(results)["notebooks"]["01_step.ipynb"]["status"] == "failed in cell 3: RuntimeError: <notebooks>"
