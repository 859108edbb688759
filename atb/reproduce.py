"""Run the numbered notebooks in order with papermill: ``python -m atb.reproduce --scale mini``.

Each notebook receives the parameters ``scale``, ``results_dir`` and ``runs_dir`` (checkpoints, sweeps: git-ignored); its executed copy (with outputs)
goes to ``results/notebooks/``. The wall time and status of every notebook are written to
``results/reproduce.json`` (atomically, after each notebook, so a failure keeps what ran before). When every
selected notebook succeeded, the claims report ``results/REPORT.md`` is regenerated from the records
(:mod:`atb.report`).
A failing notebook stops the run and is named together with papermill's error.

A notebook whose inputs did not change since its last successful run at the same scale is skipped: the
cache key hashes the notebook, the scale, the data source (``ATB_DATA_DIR``), every config file, the
``atb`` sources and the result records of the notebooks before it. ``--force`` reruns everything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .records import write_json_atomic
from .report import write_report

SCALES = ("smoke", "mini", "base", "paper")
ROOT = Path(__file__).resolve().parents[1]


def check_config(scale: str | Path) -> dict:
    """Load every section of a scale's config through the class that reads it, nested settings included
    (fitness settings, fine-tuning budgets, further-training overrides), so a misspelled key anywhere fails
    here, naming the file and the key, before any notebook runs. Returns the loaded settings."""
    from . import config
    from .develop import DevelopConfig
    from .finetune import SQUAD_TASKS, FinetuneConfig
    from .fitness import FITNESSES
    from .latency import LatencySettings
    from .ranking import RankingConfig
    from .search import SearchConfig
    from .train import TrainConfig
    from .data import GLUE_TASKS

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
        "search": search,
        "ranking": ranking,
        "ranking_train": {obj: TrainConfig.load(scale, obj, steps=ranking.steps, **ranking.train) for obj in objectives},
        "develop": develop,
        "develop_train": {(obj, m): develop.train_config_for(obj, m) for obj in objectives for m in ("evolved", "fast")},
        "finetune": {task: FinetuneConfig.load(scale, task) for task in (*GLUE_TASKS, *SQUAD_TASKS)},
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


def step_key(notebook: Path, scale: str, results_dir: Path) -> str:
    """Hash of everything a notebook's outputs depend on (see the module docstring)."""
    number = notebook.name[:2]
    inputs = [notebook, *sorted((ROOT / "configs").glob("*.yaml")), *sorted((ROOT / "atb").rglob("*.py")),
              *sorted(p for p in results_dir.glob("[0-9][0-9]_*.json") if p.name[:2] < number)]
    h = hashlib.sha256(f"{scale}|{os.environ.get('ATB_DATA_DIR', 'hub')}".encode())
    for path in inputs:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def previous_record(results_dir: Path, scale: str) -> dict:
    """The notebooks' entries of the last run at this scale (empty for another scale or none)."""
    try:
        record = json.loads((results_dir / "reproduce.json").read_text())
    except (OSError, ValueError):
        return {}
    return record.get("notebooks", {}) if record.get("scale") == scale else {}


def run(scale: str, notebook_dir: Path, results_dir: Path, only: list[str] | None = None,
        runs_dir: Path | None = None, force: bool = False) -> dict:
    """Execute the selected notebooks in order, skipping unchanged ones unless ``force``;
    ``runs_dir`` holds checkpoints and other large run outputs."""
    import papermill as pm

    if scale not in SCALES:
        raise ValueError(f"--scale must be one of {SCALES}, got {scale!r}")
    selected = [nb for nb in notebooks(notebook_dir) if not only or any(o in nb.name for o in only)]
    if not selected:
        raise FileNotFoundError(f"no numbered notebooks (NN_*.ipynb) matched in {notebook_dir}")
    out_dir = results_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = previous_record(results_dir, scale)
    record = {"scale": scale, "commit": git_commit(), "notebooks": dict(previous), "total_seconds": 0.0}
    call_start = time.perf_counter()
    for nb in selected:
        key = step_key(nb, scale, results_dir)
        last = previous.get(nb.name, {})
        if not force and last.get("key") == key and last.get("status") == "ok" and (out_dir / nb.name).exists():
            record["notebooks"][nb.name] = {**last, "cached": True}
            print(f"{nb.name}: unchanged, skipped (--force reruns it)", flush=True)
            continue
        start = time.perf_counter()
        status = "ok"
        try:
            pm.execute_notebook(
                str(nb), str(out_dir / nb.name), cwd=str(nb.parent), kernel_name="python3", progress_bar=False,
                parameters={"scale": scale, "results_dir": str(results_dir.resolve()),
                            "runs_dir": str((runs_dir or ROOT / "runs").resolve())},
            )
        except pm.PapermillExecutionError as err:
            status = f"failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        seconds = time.perf_counter() - start
        record["notebooks"][nb.name] = {"seconds": round(seconds, 1), "status": status, "key": key, "cached": False}
        record["total_seconds"] = round(sum(v["seconds"] for v in record["notebooks"].values()), 1)
        record["this_call_seconds"] = round(time.perf_counter() - call_start, 1)
        write_json_atomic(results_dir / "reproduce.json", record)
        print(f"{nb.name}: {status} ({seconds:.1f} s)", flush=True)
        if status != "ok":
            raise SystemExit(f"notebook {nb.name} {status}; executed copy with the error: {out_dir / nb.name}")
    print(f"claims report: {write_report(results_dir)}", flush=True)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini", choices=SCALES)
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="checkpoints and other large outputs")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--force", action="store_true", help="rerun notebooks even if their inputs did not change")
    args = parser.parse_args(argv)
    record = run(args.scale, args.notebooks, args.results, args.only, args.runs, args.force)
    print(f"done: {len(record['notebooks'])} notebooks in {record['total_seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
