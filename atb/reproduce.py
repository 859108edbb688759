"""Run the numbered notebooks in order with papermill: ``python -m atb.reproduce --scale mini``.

Each notebook receives the parameters ``scale``, ``results_dir`` and ``runs_dir`` (checkpoints, sweeps: git-ignored); its executed copy (with outputs)
goes to ``results/notebooks/``. The wall time and status of every notebook are written to
``results/reproduce.json`` (atomically, after each notebook, so a failure keeps what ran before).
A failing notebook stops the run and is named together with papermill's error.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .records import write_json_atomic

SCALES = ("smoke", "mini", "base", "paper")
ROOT = Path(__file__).resolve().parents[1]


def notebooks(directory: Path) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run(scale: str, notebook_dir: Path, results_dir: Path, only: list[str] | None = None,
        runs_dir: Path | None = None) -> dict:
    """Execute the selected notebooks in order; ``runs_dir`` holds checkpoints and other large run outputs."""
    import papermill as pm

    if scale not in SCALES:
        raise ValueError(f"--scale must be one of {SCALES}, got {scale!r}")
    selected = [nb for nb in notebooks(notebook_dir) if not only or any(o in nb.name for o in only)]
    if not selected:
        raise FileNotFoundError(f"no numbered notebooks (NN_*.ipynb) matched in {notebook_dir}")
    out_dir = results_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"scale": scale, "commit": git_commit(), "notebooks": {}, "total_seconds": 0.0}
    for nb in selected:
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
        record["notebooks"][nb.name] = {"seconds": round(seconds, 1), "status": status}
        record["total_seconds"] = round(sum(v["seconds"] for v in record["notebooks"].values()), 1)
        write_json_atomic(results_dir / "reproduce.json", record)
        print(f"{nb.name}: {status} ({seconds:.1f} s)", flush=True)
        if status != "ok":
            raise SystemExit(f"notebook {nb.name} {status}; executed copy with the error: {out_dir / nb.name}")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini", choices=SCALES)
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="checkpoints and other large outputs")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    args = parser.parse_args(argv)
    record = run(args.scale, args.notebooks, args.results, args.only, args.runs)
    print(f"done: {len(record['notebooks'])} notebooks in {record['total_seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
