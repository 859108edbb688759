"""Result records: atomic JSON writes and a description of the machine that produced a number."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch
import yaml


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


def merge_settings(base: dict, override: dict) -> dict:
    """``override`` over ``base``, nested mappings merged key by key (a scale's section over ``defaults``)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_settings(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def scale_settings(path: str | Path, scale: str, what: str, known: set[str], block: str | None = None,
                   overrides: dict | None = None) -> dict:
    """A config file's ``defaults`` with ``scales.<scale>`` and then ``overrides`` merged over them (under the
    top-level key ``block`` if given), as every ``configs/*.yaml`` with per-scale sections is read.

    Raises ``ValueError`` naming the file for an unknown scale or a key outside ``known`` (``what`` names
    the kind of settings in the message, e.g. "search").
    """
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if block is not None:
        raw = raw.get(block) or {}
    scales = raw.get("scales") or {}
    if scale not in scales:
        raise ValueError(f"{path}: no {what} settings for scale {scale!r}; have {sorted(scales)}")
    merged = merge_settings(merge_settings(raw.get("defaults") or {}, scales[scale] or {}), overrides or {})
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown {what} setting(s) {unknown}; known: {sorted(known)}")
    return merged
