"""Result records: atomic JSON writes and a description of the machine that produced a number."""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write through a temporary file and ``os.replace``: readers (and a killed run) never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json_atomic(path: str | Path, data, **dumps) -> Path:
    """``data`` as indented JSON, atomically (extra ``json.dumps`` options, e.g. ``allow_nan=False``)."""
    return write_text_atomic(path, json.dumps(data, indent=2, **({"default": str} | dumps)) + "\n")


def write_dir_atomic(directory: Path, write: Callable[[Path], Any]) -> Path:
    """Let ``write`` fill ``<directory>.tmp``, then rename it into place: a kill leaves all or nothing."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """What a timing depends on: CPU model, core count, torch version and thread count."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version()}
