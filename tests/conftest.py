"""Helpers shared by several test modules (imported as ``from conftest import ...``), and the
``requires_data`` marker.

``@pytest.mark.requires_data`` marks a test that reads the shared local data (``ATB_DATA_DIR``, the layout of
``shared/data``). Without ``ATB_DATA_DIR`` such a test is skipped on a developer's machine, but it *fails*
when ``CI`` is set (CI must never pass by skipping) or when ``ATB_DATA_DIR`` is set and the folder is missing
or incomplete (the user asked for local data; a typo should not silently skip half the suite).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from atb import SearchSpace, SuperBert, SuperBertConfig

DATA_ENV = "ATB_DATA_DIR"
DATA_LAYOUT = ("corpus", "glue", "squad")  # the top-level folders of shared/data that the tests read


def data_problem(environ=os.environ) -> str | None:
    """Why the shared local data cannot be used (``None``: it can)."""
    value = environ.get(DATA_ENV, "").strip()
    if not value:
        return f"{DATA_ENV} is not set: point it at the shared data folder (e.g. ../shared/data)"
    root = Path(value).expanduser()
    if not root.is_dir():
        return f"{DATA_ENV}={value!r} is not an existing folder"
    missing = [name for name in DATA_LAYOUT if not (root / name).is_dir()]
    if missing:
        return f"{DATA_ENV}={value!r} lacks the folder(s) {missing} of the shared data layout"
    return None


def data_must_be_present(environ=os.environ) -> bool:
    """Missing data is a failure (not a skip) in CI or when ``ATB_DATA_DIR`` is set."""
    ci = environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or bool(environ.get(DATA_ENV, "").strip())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("requires_data") is None:
        return
    problem = data_problem()
    if problem is None:
        return
    if data_must_be_present():
        pytest.fail(f"requires_data: {problem} (with CI or {DATA_ENV} set, missing data is an error, "
                    "not a skip)", pytrace=False)
    pytest.skip(f"requires_data: {problem}")


def save_supernet(path, objective, with_objective=True):
    """A random smoke SuperBert saved like a training run's ``final/``: the weights and, beside them, the
    objective (``objective.json``; for KD also a random ``W_fit`` in ``objective.safetensors``)."""
    torch.manual_seed(0)
    model = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", objective)))
    model.save_pretrained(path / "final")
    if with_objective:
        from atb.objectives import KDObjective, MLMObjective
        from atb.teacher import load_teacher

        if objective == "kd":
            KDObjective(load_teacher("minilm-offline"), model.config.hidden_size).save(path / "final")
        else:
            MLMObjective().save(path / "final")
    return path / "final"


def write_scale_config(path, scale="smoke", **sections):
    """A scale config file (``configs/<scale>.yaml`` layout) holding ``sections``; returns its path."""
    path.write_text(yaml.safe_dump({"scale": scale, **sections}))
    return path


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (the folder is no package), with ``benchmarks/`` importable while it
    loads, as when the script runs (bench_batch_order imports its sibling bench_precision)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module
