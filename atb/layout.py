"""Where a study's files live: one object owns the ``runs/<scale>/…`` and ``results/<scale>/…`` paths.

Notebooks and modules ask a :class:`Layout` for a path instead of joining strings, so the layout is written
down once and two scales can never write into each other's folders:

* ``results/<scale>/`` — what is committed: JSON/CSV records, figures, ``REPORT.md``, ``report.json``, the
  executed notebooks (``notebooks/``), model cards (``model_cards/``), the runner's ``reproduce.json``;
* ``runs/<scale>/`` — what is not (git-ignored): SuperPLM training runs, the latency sweep and predictors,
  search logs, ranking studies, further training and fine-tuning, and the executed copies of notebooks that
  failed (``failed/``).

The roots default to ``results/`` and ``runs/`` of the repository; the environment variables
``ATB_RESULTS_DIR`` and ``ATB_RUNS_DIR`` move them (the runner's tests do, and a notebook started by the
runner inherits them), so a notebook's only parameter is its ``scale``.

Records name run folders from ``runs/`` (``"runs/mini/develop/kd-evolved-15x"``), never by the absolute path of the
machine that wrote them: :meth:`Layout.write_record` writes them so and :meth:`Layout.read_record` reads them back as
paths inside the reader's own runs root, so a cloned study's records point into the clone's ``runs/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .records import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
SCALES = ("smoke", "mini", "base", "paper")
RUNS = "runs"  # how a record names the runs root, wherever it lies


def _root(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or ROOT / default).resolve()


@dataclass(frozen=True)
class Layout:
    """The folders of one scale's study. ``Layout("mini").superplm("kd")`` → ``runs/mini/superplm-kd``."""

    scale: str
    results_root: Path = field(default_factory=lambda: _root("ATB_RESULTS_DIR", "results"))
    runs_root: Path = field(default_factory=lambda: _root("ATB_RUNS_DIR", "runs"))

    def __post_init__(self) -> None:
        if not self.scale or any(c in self.scale for c in "/\\."):
            raise ValueError(f"scale must be a plain name such as {SCALES}, got {self.scale!r}")
        object.__setattr__(self, "results_root", Path(self.results_root))
        object.__setattr__(self, "runs_root", Path(self.runs_root))

    # ---------------------------------------------------------------------------- committed results
    @property
    def results(self) -> Path:
        """``results/<scale>/``: records, figures, REPORT.md."""
        return self.results_root / self.scale

    def record(self, name: str) -> Path:
        """A result file of this scale, e.g. ``record("02_latency.json")``."""
        return self.results / name

    def write_record(self, name: str, data: Any, **dumps: Any) -> Path:
        """Write the record ``name`` of this scale atomically, its run folders named from ``runs/``
        (:meth:`portable`); ``dumps`` go to ``json.dumps`` (e.g. ``allow_nan=False``)."""
        return write_json_atomic(self.record(name), self.portable(data), **dumps)

    def read_record(self, name: str) -> Any:
        """The record ``name`` of this scale, its ``runs/…`` folders as paths inside this layout's runs root
        (:meth:`local`)."""
        path = self.record(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run the notebook that writes it at scale "
                                    f"{self.scale!r} first")
        return self.local(json.loads(path.read_text()))

    def portable(self, value: Any) -> Any:
        """``value`` with every absolute path inside the runs root written from ``runs/``
        (``/home/me/atb/runs/mini/develop/x`` → ``"runs/mini/develop/x"``), through dicts, lists and tuples; every
        other value as it is (a ``Path`` outside the runs root as its string).

        A committed record is read on other machines, where the folder of the machine that ran the study means
        nothing (and tells more than a record should); ``runs/…`` reads the same everywhere."""
        if isinstance(value, Mapping):
            return {k: self.portable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.portable(v) for v in value]
        if isinstance(value, (str, PurePath)):
            path = Path(value)
            if path.is_absolute():
                for root in dict.fromkeys((self.runs_root, self.runs_root.resolve())):
                    if path.is_relative_to(root):
                        return "/".join((RUNS, *path.relative_to(root).parts))
            return str(value)
        return value

    def local(self, value: Any) -> Any:
        """The inverse of :meth:`portable`: every string ``runs/…`` (without whitespace: a path, not a sentence) as
        the path string inside this layout's runs root; absolute paths, which records written before they were
        portable hold, and every other value as they are."""
        if isinstance(value, Mapping):
            return {k: self.local(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.local(v) for v in value]
        if (isinstance(value, str) and value.startswith(RUNS + "/") and len(value) > len(RUNS) + 1
                and not any(c.isspace() for c in value)):
            return str(self.runs_root.joinpath(*value.split("/")[1:]))
        return value

    @property
    def notebooks(self) -> Path:
        """Executed copies of the notebooks that succeeded."""
        return self.results / "notebooks"

    @property
    def model_cards(self) -> Path:
        return self.results / "model_cards"

    # ------------------------------------------------------------------------------ run outputs
    @property
    def runs(self) -> Path:
        """``runs/<scale>/``: everything large or transient (git-ignored)."""
        return self.runs_root / self.scale

    @property
    def failed(self) -> Path:
        """Executed copies of notebooks that failed (the last good copy in ``notebooks`` stays)."""
        return self.runs / "failed"

    def superplm(self, objective: str) -> Path:
        """The one-shot training run of the ``objective`` SuperPLM (``final/`` holds the trained SuperBert)."""
        return self.runs / f"superplm-{objective}"

    def superplm_final(self, objective: str) -> Path:
        return self.superplm(objective) / "final"

    @property
    def latency(self) -> Path:
        """The latency sweep (``sweep.csv``) and the fitted predictors."""
        return self.runs / "latency"

    @property
    def deployment(self) -> Path:
        """The deployment table's exported ONNX files (notebook 11)."""
        return self.runs / "deployment"

    def search_log(self, objective: str, method: str, speedup: float | None = None, seed: int = 0) -> Path:
        """One search's evaluation log: notebook 03's (seed 0), notebook 12's other seeds, and its front searches
        (``speedup`` None: one search over every target)."""
        target = "" if speedup is None else f"-{speedup:g}x"
        return self.runs / "search" / f"{objective}-{method}{target}{f'-seed{seed}' if seed else ''}.jsonl"

    def ranking(self, objective: str) -> Path:
        """The ranking studies of the ``objective`` SuperPLM (one folder per study inside)."""
        return self.runs / "ranking" / objective

    @property
    def develop(self) -> Path:
        """Further training of the developed models, one folder per model."""
        return self.runs / "develop"

    def developed(self, name: str) -> Path:
        return self.develop / name

    def finetune(self, name: str) -> Path:
        """Fine-tuning results of the developed model ``name``."""
        return self.developed(name) / "finetune"

    def control(self, arch: str, seed: int = 0) -> Path:
        """The untrained control of architecture ``arch`` ("4/256/480/12/192"): a random initialisation under
        ``seed`` (:func:`atb.controls.export_control`), shared by every developed model of that shape."""
        parts = str(arch).split("/")
        if len(parts) != 5 or not all(p.isdigit() for p in parts):
            raise ValueError(f"an architecture is layers/hidden/ffn/heads/qkv, got {arch!r}")
        return self.develop / "controls" / f"{'-'.join(parts)}-init{seed}"

    def control_finetune(self, arch: str, seed: int = 0) -> Path:
        """Fine-tuning results of the untrained control of ``arch``."""
        return self.control(arch, seed) / "finetune"

    @property
    def efficientbert(self) -> Path:
        """Notebook 08's runs: the supernet's warm start and warm-up, the search logs, the developed models."""
        return self.runs / "efficientbert"
