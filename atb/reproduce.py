"""Run the numbered notebooks in order with papermill: ``python -m atb.reproduce --scale mini``.

Everything a run at one scale writes lies in that scale's folders (:class:`atb.layout.Layout`), so a run at
one scale never writes into another's:

* ``results/<scale>/notebooks/NN_name.ipynb``: the executed copy (with outputs) of each notebook's last
  *successful* run;
* ``results/<scale>/reproduce.json``: per notebook, the status, wall time, commit and cache key of its last
  run, updated atomically after each notebook and merged into the existing record (other notebooks' entries
  stay). A notebook whose last run failed keeps the fields of its last successful run under ``last_ok``;
* ``results/<scale>/REPORT.md``: the claims report (:mod:`atb.report`), regenerated from the records when
  every selected notebook succeeded;
* ``runs/<scale>/failed/NN_name.ipynb``: the executed copy of a notebook whose last run failed, with the error
  (git-ignored; removed when the notebook next succeeds).

papermill writes to a temporary copy (``runs/<scale>/executing/``), never to the committed one: a failed or
killed run loses nothing. What a notebook writes to ``results/<scale>/`` while it runs (figures, records) is undone
when it fails, from a snapshot taken before it (:func:`snapshot_results`); a killed run leaves the snapshot behind
and the next call undoes it first. A succeeded copy replaces the committed one with ``os.replace``. Every executed copy
is cleaned of this machine's absolute paths first (:func:`scrub_paths`).

Each notebook gets a single parameter, ``scale``, and asks ``Layout(scale)`` for its paths. ``--results`` and
``--runs`` move the two roots: the runner exports them as ``ATB_RESULTS_DIR`` / ``ATB_RUNS_DIR`` while it runs,
and the kernels inherit them, with the two variables that turn off the Hugging Face libraries' own progress bars
(:data:`QUIET_LIBRARIES`; ``atb``'s one bar per step stays, :mod:`atb.progress`). Each executed copy's size and lines
of text output are recorded (:func:`output_lines`): a reading group reads these copies.

A study from scratch may take longer than one sitting: the call that finds ``runs/<scale>/`` empty starts a study
(``runs/<scale>/study.json``), and later calls that execute the remaining notebooks (``--only``) belong to it. The
record says whether every current copy was executed exactly once within one such study (``runs_empty_at_start``)
and keeps that study's cost (``from_scratch``) after later re-executions.

A notebook whose inputs did not change since its last successful run at the same scale is skipped: the
cache key hashes the notebook, the scale, the data source (``ATB_DATA_DIR``), every config file, the
``atb`` sources and the result records (``results/<scale>/NN_*.json``) of the notebooks before it.
``--force`` reruns everything. A notebook whose last run failed always reruns.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from .layout import SCALES, Layout
from .records import write_json_atomic
from .report import README_START, notebook_seconds, split_seconds, sync_readme, write_report

ROOT = Path(__file__).resolve().parents[1]


def check_config(scale: str | Path) -> dict:
    """Load every section of a scale's config through the class that reads it, nested settings included
    (fitness settings, fine-tuning budgets, further-training overrides), so a misspelled key anywhere fails
    here, naming the file and the key, before any notebook runs. Returns the loaded settings."""
    from . import config
    from .develop import DevelopConfig
    from .finetune import SQUAD_TASKS, FinetuneConfig
    from .fitness import FITNESSES
    from .deployment import DeploymentSettings
    from .latency import LatencySettings
    from .pareto import ParetoConfig
    from .ranking import RankingConfig
    from .search import SearchConfig
    from .train import TrainConfig
    from .data import GLUE_TASKS
    from .autobert_zero.study import AutoBertZeroStudyConfig
    from .budgets import BudgetConfig
    from .efficientbert.study import EfficientBertStudyConfig

    file = config.load(scale)
    search, ranking, develop = SearchConfig.load(scale), RankingConfig.load(scale), DevelopConfig.load(scale)
    proxy_keys = set().union(*(config.fields_of(FITNESSES[n]) for n in ("mlm_loss", "kd_loss"))) - {"supernet_dir"}
    budget_keys = config.fields_of(FinetuneConfig, exclude=("scale",))
    for where, proxy, paper in [("search", search.proxy, search.paper), ("ranking", ranking.proxy_settings(),
                                                                          ranking.paper_settings())]:
        config.check_keys(proxy, proxy_keys, f"{file.where(where)}.proxy")
        config.check_keys(paper, config.fields_of(FITNESSES["paper"]) - {"supernet_dir"}, f"{file.where(where)}.paper")
        for task, budget in (paper.get("budgets") or {}).items():
            config.check_keys(budget, budget_keys, f"{file.where(where)}.paper.budgets.{task}")
    objectives = ("mlm", "kd")
    return {
        "pretrain": {obj: TrainConfig.load(scale, obj) for obj in objectives},
        "latency": LatencySettings.load(scale),
        "deployment": DeploymentSettings.load(scale),
        "search": search,
        "pareto": ParetoConfig.load(scale),
        "ranking": ranking,
        "ranking_train": {obj: TrainConfig.load(scale, obj, steps=ranking.steps, **ranking.train) for obj in objectives},
        "develop": develop,
        "develop_train": {(obj, m): develop.train_config_for(obj, m) for obj in objectives for m in ("evolved", "fast")},
        "finetune": {task: FinetuneConfig.load(scale, task) for task in (*GLUE_TASKS, *SQUAD_TASKS)},
        "budgets": BudgetConfig.load(scale),
        "efficientbert": EfficientBertStudyConfig.load(scale),
        "autobert_zero": AutoBertZeroStudyConfig.load(scale),
    }


def notebooks(directory: Path) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ------------------------------------------------------------------------------------------ cache key
def step_key(notebook: Path, layout: Layout, root: Path = ROOT) -> str:
    """Hash of everything a notebook's outputs depend on: the notebook, ``layout.scale``, ``ATB_DATA_DIR``,
    the scale's config ``root/configs/<scale>.yaml`` (another scale's file does not count), every
    ``root/atb/**/*.py`` and the records ``layout.results/NN_*.json`` of the notebooks numbered before this one
    (a later notebook's record does not count)."""
    number = notebook.name[:2]
    config = root / "configs" / f"{layout.scale}.yaml"
    sources = [*([config] if config.exists() else []), *sorted((root / "atb").rglob("*.py"))]
    records = sorted(p for p in layout.results.glob("[0-9][0-9]_*.json") if p.name[:2] < number)
    h = hashlib.sha256(f"{layout.scale}|{os.environ.get('ATB_DATA_DIR') or 'hub'}".encode())
    named = [("notebook", notebook), *((p.relative_to(root).as_posix(), p) for p in sources),
             *((f"record/{p.name}", p) for p in records)]
    for name, path in named:
        h.update(f"\0{name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------- scrubbing
_BINARY_MIME = re.compile(r"^(image/(?!svg)|application/(pdf|octet-stream))")


def _path_pattern(roots: Mapping[str | Path, str]):
    """A function replacing the paths of ``roots`` in a string: ``text -> (new text, replacements)``."""
    table = {}
    for path, stand_in in roots.items():
        text = str(path).rstrip("/")
        if len(text) > 1:  # never "/" or ""
            table[text] = stand_in
    if not table:
        return lambda text: (text, 0)
    # longest first, and only whole names: /work/main matches in /work/main/x, not in /work/main2 or /work/main.git
    pattern = re.compile("|".join(re.escape(p) + r"(?![\w-]|\.\w)" for p in sorted(table, key=len, reverse=True)))
    return lambda text: pattern.subn(lambda m: table[m.group(0)], text)


def scrub_text(text: str, roots: Mapping[str | Path, str]) -> str:
    """``text`` with the paths of ``roots`` replaced by their stand-ins (see :func:`scrub_paths`)."""
    return _path_pattern(roots)(text)[0]


# The kernels draw atb's bars (one per step of the study, atb.progress) but not the libraries' own: a bar for every
# weight loading and dataset `map` would fill the executed copy (hundreds per notebook) and its widget state.
QUIET_LIBRARIES = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
# What an executed notebook may save, so that it reads on GitHub and in JupyterLab (tests hold the smoke run to it).
MAX_OUTPUT_LINES, MAX_NOTEBOOK_BYTES = 300, 1_000_000
RICH_OUTPUTS = ("text/html", "text/markdown", "image/png", "image/svg+xml")  # rendered, not read as lines of text


def output_lines(nb_path: str | Path) -> int:
    """Lines of text a reader scrolls past in an executed notebook: printed and logged lines (a carriage return,
    as a text progress bar writes, starts a line too), plain-text results, tracebacks, and one per progress widget.
    Rendered tables, Markdown and figures are not counted."""
    import nbformat

    def lines(text: str | list[str]) -> int:
        return sum(1 for line in re.split(r"[\r\n]", "".join(text)) if line.strip())

    total = 0
    for cell in nbformat.read(str(nb_path), as_version=4).cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if out["output_type"] == "stream":
                total += lines(out["text"])
            elif out["output_type"] == "error":
                total += lines("\n".join(out["traceback"]))
            elif "application/vnd.jupyter.widget-view+json" in data:
                total += 1
            elif not any(kind in data for kind in RICH_OUTPUTS):
                total += lines(data.get("text/plain", ""))
    return total


def scrub_paths(nb_path: str | Path, roots: Mapping[str | Path, str]) -> int:
    """Replace each absolute path of ``roots`` by its stand-in (e.g. ``{ROOT: ".", Path.home(): "~"}``) in every
    text of the notebook ``nb_path`` (cell sources, outputs, metadata; not base64 images), in place.

    The longest path wins (``/a/b/results`` before ``/a/b``) and a path matches only as a whole name:
    ``/work/main`` is replaced in ``/work/main/x`` but not in ``/work/main2``. Returns the number of
    replacements (the file is rewritten only when there were some).
    """
    import nbformat

    substitute = _path_pattern(roots)
    count = 0

    def scrub(value):
        nonlocal count
        if isinstance(value, str):
            value, n = substitute(value)
            count += n
        elif isinstance(value, list):
            value[:] = [scrub(v) for v in value]
        elif isinstance(value, dict):
            for k, v in value.items():
                if not _BINARY_MIME.match(k):
                    value[k] = scrub(v)
        return value

    nb = nbformat.read(str(nb_path), as_version=nbformat.NO_CONVERT)
    scrub(nb)
    if count:
        tmp = Path(str(nb_path) + ".tmp")
        nbformat.write(nb, str(tmp))
        os.replace(tmp, nb_path)
    return count


def machine_paths(layout: Layout, notebook_dir: Path | None = None) -> dict[str, str]:
    """This machine's paths and their stand-ins in executed copies: the repository ``.`` and the home ``~``;
    where they lie outside the repository, also the results and runs roots, the notebooks and Python's prefix."""
    candidates = [(ROOT, ".", True), (Path.home(), "~", True), (sys.prefix, "<sys.prefix>", False),
                  (notebook_dir, "<notebooks>", False), (layout.runs_root, "$ATB_RUNS_DIR", False),
                  (layout.results_root, "$ATB_RESULTS_DIR", False)]
    paths: dict[str, str] = {}
    for path, stand_in, always in candidates:
        if path is None:
            continue
        for form in {str(Path(path)), str(Path(path).resolve())}:
            if len(form) > 1 and (always or not Path(form).is_relative_to(ROOT)):
                paths.setdefault(form, stand_in)
    return paths


# ------------------------------------------------------------------------------------------ running
def _move(src: Path, dst: Path) -> None:
    """``os.replace`` ``src`` onto ``dst``; across file systems through a copy beside ``dst``, still atomic."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        src.unlink()


SNAPSHOT = "results-before"  # in runs/<scale>/executing/: results/<scale>/ as it was before the running notebook


def _results_files(results: Path) -> dict[str, Path]:
    """The files a notebook may write under ``results/<scale>/`` (records, figures, model cards, REPORT.md), keyed
    by relative path; executed copies (``notebooks/``) are the runner's and are replaced only on success anyway."""
    return {p.relative_to(results).as_posix(): p for p in results.rglob("*")
            if p.is_file() and p.relative_to(results).parts[0] != "notebooks"}


def snapshot_results(layout: Layout) -> Path:
    """Copy ``results/<scale>/`` aside before a notebook runs, so that a failed or killed run (which has written
    half of its figures and records) can be undone: a failed run never overwrites a good one."""
    snapshot = layout.runs / "executing" / SNAPSHOT
    shutil.rmtree(snapshot, ignore_errors=True)
    for name, path in _results_files(layout.results).items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, snapshot / name)
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def restore_results(layout: Layout, snapshot: Path) -> list[str]:
    """Put ``results/<scale>/`` back as :func:`snapshot_results` found it (files the run changed restored, files it
    created removed); returns the paths restored or removed."""
    before, now = _results_files(snapshot), _results_files(layout.results)
    undone = []
    for name, path in now.items():
        if name not in before:
            path.unlink()
            undone.append(name)
    for name, path in before.items():
        target = layout.results / name
        if not target.exists() or target.read_bytes() != path.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target.with_name(target.name + ".tmp"))
            os.replace(target.with_name(target.name + ".tmp"), target)
            undone.append(name)
    shutil.rmtree(snapshot)
    return sorted(undone)


@contextlib.contextmanager
def _exported(variables: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block, and restore them afterwards."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def read_record(layout: Layout) -> dict:
    """``results/<scale>/reproduce.json`` (a fresh record when absent, unreadable or of another scale)."""
    try:
        record = json.loads((layout.results / "reproduce.json").read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("scale") != layout.scale or not isinstance(record.get("notebooks"), dict):
        record = {"scale": layout.scale, "notebooks": {}}
    return record


def runs_empty(layout: Layout) -> bool:
    """Whether ``runs/<scale>/`` holds no cached work (checkpoints, search logs, fine-tuning results...): a run that
    starts there pays for every step, so its seconds are the study's cost from scratch."""
    return not layout.runs.exists() or not any(p.name != "executing" for p in layout.runs.iterdir())


def machine_record(scale: str) -> dict:
    """The machine a call ran on and how it computed: CPU, cores, torch, threads, native bf16, the precision."""
    from . import config
    from .engine import EngineConfig, describe
    from .records import machine_info

    engine = EngineConfig(**config.load(scale).section("engine"))
    described = describe(engine.precision, fused_optimizer=engine.fused_optimizer)
    return {**machine_info(), **{k: described[k] for k in ("native_bf16", "precision", "computed_in", "optimizer")}}


README_SCALE = "mini"  # the committed study whose verdicts the README's table shows
STUDY_FILE = "study.json"  # in runs/<scale>/: the study a call started there from empty, and what it executed


def start_study(layout: Layout, call: str, commit: str | None) -> dict:
    """The study whose work ``runs/<scale>/`` holds: a new one when ``runs/`` is empty (the call that starts it pays
    for every step), else the one recorded there (``{}`` when its work predates such records)."""
    path = layout.runs / STUDY_FILE
    if runs_empty(layout):
        write_json_atomic(path, {"id": call, "commit": commit, "executed": []})
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def note_executing(layout: Layout, study: dict, notebook: str) -> bool:
    """Record that ``notebook`` starts executing in ``study``; returns whether it already had (a retry: that earlier
    attempt may have left cached work under ``runs/``, so this one is no longer its cost from scratch)."""
    if not study:
        return False
    retried = notebook in study["executed"]
    study["executed"] = sorted({*study["executed"], notebook})
    write_json_atomic(layout.runs / STUDY_FILE, study)
    return retried


def from_scratch(record: dict) -> bool:
    """Whether every notebook's current copy was executed exactly once within one study that started from an empty
    ``runs/`` (its cost from scratch), over one call or several (a study too long for one sitting resumes at a
    notebook boundary), rather than by re-executions that reused cached steps. A copy skipped as unchanged
    (``cached``: this call did not execute it) keeps its call, its study and its seconds, so a resuming call that
    skips the notebooks already done, or a later call that skips them all, leaves the study's cost intact."""
    entries = list(record.get("notebooks", {}).values())
    if not entries or not all(e.get("status") == "ok" and not e.get("retried") for e in entries):
        return False
    studies = {e.get("study") for e in entries}
    calls = {e.get("call") for e in entries}
    one_call = len(calls) == 1 and None not in calls and all(e.get("runs_empty_at_start") for e in entries)
    return one_call or (len(studies) == 1 and None not in studies)


def study_cost(record: dict) -> dict:
    """What the study from scratch cost (for :func:`from_scratch` records): its seconds in all, per notebook and split
    into the papers' study (00-10) and what goes beyond it (11+), kept so that later re-executions, which replace the
    notebooks' own seconds, leave the cost of each part on record; its calls, commits, CPUs."""
    entries = list(record["notebooks"].values())
    seconds = notebook_seconds(record)
    return {"total_seconds": round(sum(seconds.values()), 1),
            "split": split_seconds(seconds),
            "seconds": seconds,
            "study": entries[0].get("study") or entries[0].get("call"),
            "calls": len({e.get("call") for e in entries}),
            "commits": sorted({e.get("commit") for e in entries if e.get("commit")}),
            "cpus": sorted({e.get("cpu") for e in entries if e.get("cpu")}),
            "computed_in": sorted({e.get("computed_in") for e in entries if e.get("computed_in")}),
            "finished": max(e.get("finished", "") for e in entries)}


def _save(layout: Layout, record: dict, call_start: float) -> None:
    """Write the record atomically; ``total_seconds`` is the wall time of the runs that produced the current
    executed copies (for a failed notebook, its last good run)."""
    good = [e if e.get("status") == "ok" else e.get("last_ok") or {} for e in record["notebooks"].values()]
    record["total_seconds"] = round(sum(e.get("seconds", 0.0) for e in good), 1)
    record["this_call_seconds"] = round(time.perf_counter() - call_start, 1)
    record["runs_empty_at_start"] = from_scratch(record)
    if record["runs_empty_at_start"]:  # kept by later re-executions: what the study costs from scratch
        record["from_scratch"] = study_cost(record)
    write_json_atomic(layout.results / "reproduce.json", record)


def run(scale: str, notebook_dir: Path = ROOT / "notebooks", results_root: Path | None = None,
        only: list[str] | None = None, runs_root: Path | None = None, force: bool = False) -> dict:
    """Execute the selected notebooks of ``notebook_dir`` in order at ``scale``, skipping unchanged ones unless
    ``force``; returns the scale's ``reproduce.json`` record. ``results_root`` / ``runs_root`` replace the
    roots ``results/`` and ``runs/`` (the scale's folders are below them)."""
    import papermill as pm

    if scale not in SCALES:
        raise ValueError(f"--scale must be one of {SCALES}, got {scale!r}")
    selected = [nb for nb in notebooks(notebook_dir) if not only or any(o in nb.name for o in only)]
    if not selected:
        raise FileNotFoundError(f"no numbered notebooks (NN_*.ipynb) matched in {notebook_dir}")
    roots = {"results_root": results_root, "runs_root": runs_root}
    layout = Layout(scale, **{k: Path(v).resolve() for k, v in roots.items() if v is not None})
    check_config(scale)  # a misspelled setting fails here, before hours of notebooks
    for folder in (layout.results, layout.runs):
        folder.mkdir(parents=True, exist_ok=True)
    scrub_table = machine_paths(layout, notebook_dir)
    leftover = layout.runs / "executing" / SNAPSHOT
    if leftover.is_dir():  # a run killed mid-notebook: undo what that notebook had written to results/
        undone = restore_results(layout, leftover)
        print(f"a killed run left results/{scale}/ half written; restored {len(undone)} files: {undone}", flush=True)
    record = read_record(layout)
    record["commit"] = git_commit()
    # the call's id (and a study's: its first call's) to the microsecond: two short calls may start within one second
    call = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    empty = runs_empty(layout)
    study = start_study(layout, call, record["commit"])
    record["machine"] = machine_record(scale)
    call_start = time.perf_counter()
    with _exported({"ATB_RESULTS_DIR": str(layout.results_root), "ATB_RUNS_DIR": str(layout.runs_root),
                    **QUIET_LIBRARIES}):
        for nb in selected:
            key = step_key(nb, layout)
            last = record["notebooks"].get(nb.name, {})
            executed, failed = layout.notebooks / nb.name, layout.failed / nb.name
            if not force and last.get("status") == "ok" and last.get("key") == key and executed.exists():
                record["notebooks"][nb.name] = {**last, "cached": True}
                _save(layout, record, call_start)
                print(f"{nb.name}: unchanged, skipped (--force reruns it)", flush=True)
                continue
            temporary = layout.runs / "executing" / nb.name
            temporary.parent.mkdir(parents=True, exist_ok=True)
            temporary.unlink(missing_ok=True)
            retried = note_executing(layout, study, nb.name)
            snapshot = snapshot_results(layout)
            start = time.perf_counter()
            status = "ok"
            try:
                pm.execute_notebook(str(nb), str(temporary), cwd=str(nb.parent), kernel_name="python3",
                                    progress_bar=False, parameters={"scale": scale})
            except pm.PapermillExecutionError as err:
                status = f"failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
            except Exception as err:  # the kernel died, the notebook is unreadable, ...
                status = f"failed: {type(err).__name__}: {err}"
            seconds = time.perf_counter() - start
            if temporary.exists():
                scrub_paths(temporary, scrub_table)
            entry = {"status": scrub_text(status, scrub_table), "seconds": round(seconds, 1), "key": key,
                     "cached": False, "commit": record["commit"], "call": call, "runs_empty_at_start": empty,
                     "study": study.get("id"), "retried": retried,
                     "cpu": record["machine"]["cpu"], "computed_in": record["machine"]["computed_in"],
                     "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
            if temporary.exists():
                entry.update(output_lines=output_lines(temporary), output_bytes=temporary.stat().st_size)
            if status == "ok":
                _move(temporary, executed)
                failed.unlink(missing_ok=True)
                shutil.rmtree(snapshot)
            else:
                entry["restored"] = restore_results(layout, snapshot)  # its half-written figures and records
                if temporary.exists():
                    _move(temporary, failed)
                    entry["failed_copy"] = scrub_text(str(failed), scrub_table)
                last_ok = last if last.get("status") == "ok" else last.get("last_ok")
                if last_ok:
                    entry["last_ok"] = {k: v for k, v in last_ok.items() if k != "last_ok"}
            record["notebooks"][nb.name] = entry
            _save(layout, record, call_start)
            print(f"{nb.name}: {status} ({seconds:.1f} s)", flush=True)
            if status != "ok":
                kept = f"; the last good copy stays in {executed}" if executed.exists() else ""
                raise SystemExit(f"notebook {nb.name} {status}; executed copy with the error: {failed}{kept}")
    print(f"claims report: {write_report(layout.results)}", flush=True)
    readme = ROOT / "README.md"
    if layout.results == (ROOT / "results" / README_SCALE).resolve() and README_START in readme.read_text():
        print(f"README results table: {sync_readme(readme, layout.results)}", flush=True)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini", choices=SCALES)
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--results", type=Path, default=None,
                        help="root of the committed results (default: $ATB_RESULTS_DIR or results/); "
                             "the scale's folder is <root>/<scale>")
    parser.add_argument("--runs", type=Path, default=None,
                        help="root of checkpoints and other large outputs (default: $ATB_RUNS_DIR or runs/)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--force", action="store_true", help="rerun notebooks even if their inputs did not change")
    args = parser.parse_args(argv)
    record = run(args.scale, args.notebooks, args.results, args.only, args.runs, args.force)
    print(f"done: {len(record['notebooks'])} notebooks, {record['total_seconds']:.0f} s of execution",
          file=sys.stderr)


if __name__ == "__main__":
    main()
