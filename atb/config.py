"""One configuration file per scale: ``configs/<scale>.yaml`` holds every setting that scale needs.

A scale file has one section per step of the pipeline, and each section is read by exactly one settings
class, whose dataclass defaults are the paper's values (a section lists only what the scale changes):

==============  ==============================================  ==========================================
section         read by                                         what it sets
==============  ==============================================  ==========================================
``pretrain``    :class:`atb.train.TrainConfig`                  one-shot SuperPLM training (``mlm:``/``kd:``
                                                                sub-sections override per objective)
``latency``     :class:`atb.latency.LatencySettings`            the timing protocol, the sweep, the predictor
``deployment``  :class:`atb.deployment.DeploymentSettings`      runtimes and rounds of the deployment table
``search``      :class:`atb.search.SearchConfig`                the evolution, the constraints, the fitness
``pareto``      :class:`atb.pareto.ParetoConfig`                the front search (NSGA-II) and its seeds
``ranking``     :class:`atb.ranking.RankingConfig`              the Kendall-τ ranking studies
``develop``     :class:`atb.develop.DevelopConfig`              further training, baselines, downstream tasks
``finetune``    :class:`atb.finetune.FinetuneConfig`            fine-tuning budgets (``all``, ``glue``,
                                                                ``squad``, then per task)
``budgets``     :class:`atb.budgets.BudgetConfig`               the ladder that chooses those budgets
``engine``      :class:`atb.engine.EngineConfig`                precision and optimizer of every training
                                                                loop (the defaults of their own fields)
==============  ==============================================  ==========================================

The ``engine`` section is the one exception to "one section, one class": its settings are the defaults of the
``precision`` / ``fused_optimizer`` fields of every training loop's settings (:data:`ENGINE_LOOPS`), which
:meth:`ScaleConfig.section` hands down, so that ``engine: {precision: fp32}`` runs the whole study in fp32.

Every loader goes through :func:`section` and :func:`build`, so a section that nothing reads, or a key
that a class does not have, is an error naming the file and the key: a misspelled setting never silently
falls back to a default. ``atb.reproduce.check_config(scale)`` loads every section at once (the runner
does so before executing any notebook).

A ``scale`` argument is a scale name (``"mini"`` → ``configs/mini.yaml``) or the path of a YAML file of
the same layout, so users can keep their own configurations outside the repository.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .layout import ROOT

CONFIG_DIR = ROOT / "configs"
SECTIONS = ("pretrain", "latency", "deployment", "search", "pareto", "ranking", "develop", "finetune", "budgets",
            "efficientbert", "autobert_zero", "engine")
# Where the ``engine`` section's settings become defaults: the (nested) mappings of each section that configure a
# training loop (TrainConfig; FinetuneConfig's ``all`` group; the studies' WarmupConfig / LocalKDConfig, which also
# drive the reranks' adaptation and the developed candidates' further distillation).
ENGINE_LOOPS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "pretrain": ((),),
    "finetune": (("all",),),
    "efficientbert": (("warmup",),),
    "autobert_zero": (("warmup",), ("conv_kd",)),
}

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file that cannot be used as written; the message names the file and the key."""


@dataclass(frozen=True)
class ScaleConfig:
    """The parsed file of one scale: its name, its path and its sections (plain dicts)."""

    scale: str
    path: Path
    sections: Mapping[str, dict]

    def section(self, name: str) -> dict:
        """The settings of section ``name``, with the ``engine`` section's values as defaults of its training loops'
        (:data:`ENGINE_LOOPS`)."""
        if name not in SECTIONS:
            raise ConfigError(f"no config section {name!r}; sections are {list(SECTIONS)}")
        settings = dict(self.sections.get(name) or {})
        engine = self.sections.get("engine") or {}
        for path in ENGINE_LOOPS.get(name, ()) if engine else ():
            settings = _with_defaults(settings, path, engine)
        return settings

    def where(self, name: str) -> str:
        """How error messages name a section: ``configs/mini.yaml: search``."""
        return f"{_show(self.path)}: {name}"


def config_path(scale: str | Path) -> Path:
    """``configs/<scale>.yaml`` for a scale name; a path (anything with a suffix or a separator) as given."""
    text = str(scale)
    if isinstance(scale, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        return Path(scale)
    return CONFIG_DIR / f"{text}.yaml"


def available_scales() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load(scale: str | Path) -> ScaleConfig:
    """Read and check the top level of a scale's file (the sections' keys are checked by their classes)."""
    path = config_path(scale)
    if not path.exists():
        raise ConfigError(f"{_show(path)}: no such config file; scales here: {available_scales()}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{_show(path)}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{_show(path)}: expected a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"scale", *SECTIONS})
    if unknown:
        raise ConfigError(f"{_show(path)}: unknown section(s) {unknown}; known: ['scale', {', '.join(map(repr, SECTIONS))}]")
    name = raw.get("scale")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{_show(path)}: key 'scale' (the scale's name) is missing")
    for key in SECTIONS:
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise ConfigError(f"{_show(path)}: section {key!r} must be a mapping, got {type(raw[key]).__name__}")
    if raw.get("engine"):
        from .engine import EngineConfig

        try:
            build(EngineConfig, raw["engine"], f"{_show(path)}: engine")
        except ConfigError:
            raise
        except ValueError as err:  # a bad value, named by EngineConfig
            raise ConfigError(f"{_show(path)}: {err}") from None
    return ScaleConfig(name, path, {k: raw.get(k) or {} for k in SECTIONS})


def section(scale: str | Path, name: str) -> tuple[dict, ScaleConfig]:
    """The raw settings of section ``name`` of ``scale``'s file, and the parsed file (for messages)."""
    cfg = load(scale)
    return cfg.section(name), cfg


def check_keys(settings: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """Raise naming ``where`` and every key of ``settings`` outside ``known``."""
    known = set(known)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def fields_of(cls: type, exclude: Iterable[str] = ()) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - set(exclude)


def build(cls: type[T], settings: Mapping[str, Any], where: str, exclude: Iterable[str] = (), **fixed) -> T:
    """``cls(**settings, **fixed)`` after checking that every key of ``settings`` is a field of ``cls``
    (minus ``exclude``: fields the loader sets itself, such as the scale)."""
    check_keys(settings, fields_of(cls, exclude), where)
    return cls(**settings, **fixed)


def load_section(cls: type[T], scale: str | Path, name: str, overrides: Mapping[str, Any] | None = None, *,
                 nested: bool = False, tuples: Iterable[str] = ()) -> T:
    """``cls`` built from section ``name`` of ``scale`` with the scale's name set (its ``scale`` field): the lists
    under ``tuples`` made tuples (YAML has no tuples; frozen settings want them), then ``overrides`` (a loader's
    keyword arguments) over the file's settings, each key replacing the file's (``nested``: nested mappings merged key
    by key, :func:`merge`). The file's keys are checked first, so an error names the file's key or the override."""
    settings, file = section(scale, name)
    settings = {k: tuple(v) if k in set(tuples) and v is not None else v for k, v in settings.items()}
    where = file.where(name)
    if overrides:  # the file's keys checked on their own: an unknown one is named as the file's, not an override
        check_keys(settings, fields_of(cls, exclude=("scale",)), where)
        settings, where = (merge(settings, overrides) if nested else {**settings, **overrides}), f"{where} overrides"
    return build(cls, settings, where, exclude=("scale",), scale=file.scale)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """``override`` over ``base``, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merge(out[key], value) if nested else value
    return out


def _with_defaults(settings: dict, path: tuple[str, ...], defaults: Mapping[str, Any]) -> dict:
    """``settings`` with ``defaults`` under the mapping at ``path`` (keys already there win)."""
    if not path:
        return {**defaults, **settings}
    inner = settings.get(path[0]) or {}
    if not isinstance(inner, Mapping):  # a bad value: its own loader names it
        return settings
    return {**settings, path[0]: _with_defaults(dict(inner), path[1:], defaults)}


def _show(path: Path) -> str:
    """A path as short as it can be said: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
