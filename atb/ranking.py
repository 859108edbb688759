"""Ranking studies: does the cheap score a search ranks sub-models by agree with the score that matters?

One-shot NAS rests on an assumption the paper leaves implicit (notes §9, claim 6): the SuperPLM's
*inherited-weight* ranking of sub-models agrees with their ranking after standalone training. If it did
not, the search would optimise the wrong thing. Two studies measure the agreement with Kendall's τ
(``scipy.stats.kendalltau``; 1 = same order, 0 = unrelated, -1 = reversed) on the same architectures:

* :func:`kendall_inherited_vs_trained`: a fitness of each sub-model with inherited weights, against the
  same fitness after the sub-model was extracted, exported and **further trained** (notes §7) with the
  SuperPLM's own objective by the ordinary :class:`atb.train.Trainer`;
* :func:`kendall_proxy_vs_paper`: the cheap held-out-loss proxy against the paper's fitness (fine-tuning
  on MNLI and SQuAD; offline a substitute task stands in and every result records which task was used).

:func:`pick_archs` chooses the architectures from a search's evaluated candidates, spread over their
fitness range: τ on architectures that all score alike would only measure noise.

**Resume.** Both studies can take hours at the real scales, so every unit of work is cached on disk and
a rerun of the same call skips what is done: per architecture, each fitness value is a JSON file written
atomically (:func:`atb.records.write_json_atomic`), the extraction is renamed into place once complete,
and further training resumes from its latest checkpoint. A study directory records the settings it was
started with (``study.json``); rerunning it with different settings raises rather than mixing results of
two studies. Adding architectures to a finished study only computes the new ones.

**Scoring a further-trained model.** The fitness functions of :mod:`atb.fitness` score sub-models of a
SuperPLM's ``final/`` folder: its weights and, beside them, its objective (``objective.json``; for KD the
trained ``W_fit``). Further training is the one-shot loop over a one-point space, so its ``final/`` has the
objective too, but holds the *exported* standalone model instead of a SuperPLM. :func:`trained_supernet`
writes the same weights as a one-point SuperPLM into ``<train run>/superbert/``, and every fitness then
scores the further-trained model exactly as it scores an inherited one: same code path, same held-out
sample, and for ``kd_loss`` the ``W_fit`` trained with *that* run (note: further training starts ``W_fit``
afresh, so with very few steps its hidden-state term is still large; ``hidden_term=False`` avoids it).

Settings per scale: the ``ranking`` section of ``configs/<scale>.yaml`` (:class:`RankingConfig`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import kendalltau

from . import config
from .finetune import column_runs
from .fitness import Fitness, PaperFitness, make_fitness, supernet_objective
from .objectives import copy_objective
from .progress import bar as progress_bar, libraries_quiet
from .records import machine_info, write_dir_atomic, write_json_atomic
from .search import SearchConfig, describe_fitness, evaluate, header_differences
from .space import Arch
from .stats import paired_bootstrap
from .train import TrainConfig, build_student, further_train, summarize_log

ArchLike = Arch | str  # an Arch or its "L/d_m/d_f/h/d_qkv" notation


# ------------------------------------------------------------------------------------------- config
@dataclass
class RankingConfig:
    """Settings of both ranking studies for one scale: the ``ranking`` section of ``configs/<scale>.yaml``.

    Fitness settings default to the search's own (``SearchConfig.load(scale)``), so a study scores
    sub-models exactly as the search it checks; ``proxy`` / ``paper`` here override them key by key.
    """

    archs: int = 10  # architectures per study (pick_archs)
    seed: int = 0  # of pick_archs
    steps: int = 100  # further-training steps per architecture
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the scale's `pretrain` for further training
    fitness: str = "proxy"  # the fitness of the inherited-vs-trained study
    proxy: dict[str, Any] = field(default_factory=dict)  # over the search's proxy settings
    paper: dict[str, Any] = field(default_factory=dict)  # over the search's paper settings
    # Proxy vs paper: fine-tune each architecture's untrained control beside it under the same budget; tau then counts
    # only the architectures that beat their control (at a budget too small to teach them, every score is the
    # constant prediction, and tau would rank ties)
    controls: bool = True
    scale: str | None = None

    def __post_init__(self) -> None:
        if self.archs < 2 or self.steps < 1:
            raise ValueError(f"RankingConfig needs archs >= 2 (a ranking) and steps >= 1, "
                             f"got archs={self.archs}, steps={self.steps}")

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> RankingConfig:
        return config.load_section(cls, scale, "ranking", overrides, nested=True)

    def search_config(self) -> SearchConfig:
        if self.scale is None:
            raise ValueError("RankingConfig without a scale: build it with RankingConfig.load(scale)")
        return SearchConfig.load(self.scale)

    def proxy_settings(self) -> dict[str, Any]:
        return config.merge(self.search_config().fitness_settings("proxy"), self.proxy)

    def paper_settings(self) -> dict[str, Any]:
        return config.merge(self.search_config().fitness_settings("paper"), self.paper)

    def fitness_settings(self) -> dict[str, Any]:
        """Settings of ``fitness`` (the inherited-vs-trained study's): the paper's or the proxies'."""
        return self.paper_settings() if self.fitness == "paper" else self.proxy_settings()


# -------------------------------------------------------------------------------------- helpers
def as_arch(arch: ArchLike) -> Arch:
    return arch if isinstance(arch, Arch) else Arch.parse(arch)


def arch_slug(arch: Arch) -> str:
    """A directory name for ``arch``: its notation with ``-`` for ``/``."""
    return str(arch).replace("/", "-")


def kendall(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's τ-b and its two-sided p-value; NaN for fewer than two points or a constant side."""
    if len(x) != len(y):
        raise ValueError(f"kendall: {len(x)} values against {len(y)}")
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan"), float("nan")
    result = kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def _jsonable(data: Any) -> Any:
    """``data`` as a reread JSON file would give it back (tuples become lists, paths strings)."""
    return json.loads(json.dumps(data, default=str))


def field_defaults(cls: type) -> dict[str, Any]:
    """Every field of dataclass ``cls`` that has a default, with it."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}


def claim_study(directory: Path, settings: dict, defaults: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Record a study's settings in ``directory/study.json``, or check that they match the recorded ones.

    ``defaults[section]``: the defaults of the settings in ``settings[section]``. A setting the stored record lacks
    counts as its default there: a study recorded before the setting existed ran as its default does (a new option
    of further training, say), so it resumes, while one that sets it otherwise is refused."""
    path = directory / "study.json"
    settings = _jsonable(settings)
    if path.exists():
        stored = json.loads(path.read_text())
        for section, fields in (defaults or {}).items():
            if isinstance(stored.get(section), dict):
                stored[section] = {**_jsonable({k: v for k, v in fields.items() if k in settings.get(section, {})}),
                                   **stored[section]}
        if stored != settings:
            raise ValueError(f"{directory} holds a ranking study with other settings (differs in "
                             f"{header_differences(stored, settings)}): "
                             "resuming it would mix two studies; delete it or choose another directory")
        return
    write_json_atomic(path, settings)


def evaluation_record(fitness: Fitness | Callable[[Arch], float], arch: Arch) -> dict:
    """``{"arch", "fitness", "details", "seconds", "cpu_seconds"}``: :func:`atb.search.evaluate`, JSON-ready."""
    result = evaluate(fitness, arch)
    return {"arch": str(arch), "fitness": result.fitness, "details": _jsonable(result.details),
            "seconds": result.seconds, "cpu_seconds": result.cpu_seconds}


def cached_evaluation(path: Path, fitness: Fitness | Callable[[Arch], float], arch: Arch) -> dict:
    """The :func:`evaluation_record` of ``arch``, read from ``path`` if there, else computed and written atomically."""
    if not path.exists():
        write_json_atomic(path, evaluation_record(fitness, arch))
    return json.loads(path.read_text())


def trained_supernet(train_run_dir: str | Path) -> Path:
    """``<train_run_dir>/superbert/``: the further-trained model of ``final/`` as a one-point SuperPLM.

    Built by the code that started further training (:func:`atb.train.build_student` with ``init`` =
    ``final/``), so it is exactly the exported model; the run's objective (KD: its ``W_fit``) is copied beside
    it, where :mod:`atb.fitness` reads it.
    """
    run_dir = Path(train_run_dir)
    cfg = TrainConfig(**{**json.loads((run_dir / "config.json").read_text()), "init": str(run_dir / "final")})
    if cfg.arch is None:
        raise ValueError(f"{run_dir} is a one-shot SuperPLM run, not further training: "
                         f"score {run_dir / 'final'} directly")
    model, _ = build_student(cfg)

    def write(tmp: Path) -> None:
        with libraries_quiet():  # transformers' "Writing model shards" bar
            model.save_pretrained(tmp)
        copy_objective(run_dir / "final", tmp)  # what the fitness reads beside the weights (KD: W_fit)

    return write_dir_atomic(run_dir / "superbert", write)


def _study_result(archs: list[Arch], x_name: str, x: list[dict], y_name: str, y: list[dict], **extra) -> dict:
    tau, p = kendall([r["fitness"] for r in x], [r["fitness"] for r in y])
    return {"archs": [str(a) for a in archs], x_name: [r["fitness"] for r in x], y_name: [r["fitness"] for r in y],
            "kendall_tau": tau, "p_value": p, "n": len(archs), **extra,
            "details": [{"arch": str(a), x_name: rx["details"], y_name: ry["details"]}
                        for a, rx, ry in zip(archs, x, y)]}


# ------------------------------------------------------------------------- inherited vs trained
def kendall_inherited_vs_trained(
    supernet_dir: str | Path,
    archs: Iterable[ArchLike],
    objective: str | None,
    scale: str | Path,
    steps: int,
    run_dir: str | Path,
    fitness_name: str = "proxy",
    fitness_settings: Mapping[str, Any] | None = None,
    *,
    train_overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """τ between each sub-model's fitness with inherited weights and after ``steps`` steps of further training.

    ``supernet_dir``: the SuperPLM (``<run>/final``); ``objective``: its objective (``None``: read from it;
    further training must use the SuperPLM's own); ``scale`` (a name or a config path), ``steps`` and
    ``train_overrides``: the further-training :class:`atb.train.TrainConfig`; ``fitness_name`` / ``fitness_settings``: as for
    :func:`atb.fitness.make_fitness`, used for both sides. Per architecture, ``run_dir/<arch>/`` holds
    ``inherited.json``, ``extracted/`` (the export further training starts from), ``train/`` (its run, with
    ``final/`` and ``superbert/``) and ``trained.json``. Returns ``{"archs", "inherited", "trained",
    "kendall_tau", "p_value", "n", ...}`` and writes it to ``run_dir/result.json``.
    """
    supernet_dir, run_dir = Path(supernet_dir), Path(run_dir)
    archs = [as_arch(a) for a in archs]
    own = supernet_objective(supernet_dir)
    if objective is not None and objective != own:
        raise ValueError(f"{supernet_dir} is a {own.upper()} SuperPLM: further training uses its own objective, "
                         f"not {objective!r}")
    settings = dict(fitness_settings or {})
    base = TrainConfig.load(scale, own, steps=steps, **dict(train_overrides or {}))
    inherited_fitness = make_fitness(fitness_name, supernet_dir, **settings)
    claim_study(run_dir, {
        "study": "inherited_vs_trained", "supernet_dir": str(supernet_dir.resolve()), "objective": own,
        "fitness": describe_fitness(inherited_fitness),
        "further_training": {k: v for k, v in dataclasses.asdict(base).items() if k not in ("arch", "init")},
    }, defaults={"further_training": field_defaults(TrainConfig)})
    inherited, trained = [], []
    for arch in progress_bar(archs, desc="inherited vs trained", disable=not progress):
        arch_dir = run_dir / arch_slug(arch)
        inherited.append(cached_evaluation(arch_dir / "inherited.json", inherited_fitness, arch))
        trained_path = arch_dir / "trained.json"
        if not trained_path.exists():
            further_train(supernet_dir, arch, base, arch_dir, device=device)  # arch_dir/{extracted,train}/
            train_dir = arch_dir / "train"
            record = evaluation_record(make_fitness(fitness_name, trained_supernet(train_dir), **settings), arch)
            write_json_atomic(trained_path, {**record, "further_training": summarize_log(train_dir)})
        trained.append(json.loads(trained_path.read_text()))
    result = _study_result(archs, "inherited", inherited, "trained", trained, objective=own, steps=steps,
                           fitness=describe_fitness(inherited_fitness),
                           further_training=[r["further_training"] for r in trained], machine=machine_info())
    write_json_atomic(run_dir / "result.json", result)
    return result


# ------------------------------------------------------------------------------- proxy vs paper
def kendall_proxy_vs_paper(
    supernet_dir: str | Path,
    archs: Iterable[ArchLike],
    proxy: Fitness | Mapping[str, Any],
    paper: Fitness | Mapping[str, Any],
    cache_dir: str | Path,
    *,
    controls: bool = False,
    progress: bool = True,
) -> dict:
    """τ between a cheap proxy and the paper's fine-tuning fitness of the inherited sub-models.

    ``proxy`` / ``paper``: fitness objects, or settings for ``make_fitness("proxy" / "paper", supernet_dir)``
    (e.g. :meth:`RankingConfig.proxy_settings`). Values are cached in ``cache_dir/{proxy,paper}/<arch>.json``.
    The result lists, per original task, the task actually fine-tuned on (``tasks_used``: offline, MNLI's
    substitute). Returns ``{"archs", "proxy", "paper", "kendall_tau", "p_value", "n", ...}`` and writes it
    to ``cache_dir/result.json``.

    ``controls``: also fine-tune each architecture's untrained control under the paper fitness' budget
    (``cache_dir/control/<arch>.json``) and decide per architecture whether it **learned**, i.e. beat its control
    with a 95 % interval above 0 (:func:`vs_control`). The result then adds ``control``, ``vs_control``,
    ``learned`` and τ over the architectures that learned (``learned_kendall_tau``, ``learned_p_value``,
    ``n_learned``): the ranking the paper fitness can vouch for.
    """
    supernet_dir, cache_dir = Path(supernet_dir), Path(cache_dir)
    archs = [as_arch(a) for a in archs]
    proxy = proxy if not isinstance(proxy, Mapping) else make_fitness("proxy", supernet_dir, **proxy)
    paper = paper if not isinstance(paper, Mapping) else make_fitness("paper", supernet_dir, **paper)
    control = None
    if controls:
        if not isinstance(paper, PaperFitness):
            raise ValueError(f"controls need the paper fitness (fine-tuning), got {describe_fitness(paper)['name']!r}")
        paper = dataclasses.replace(paper, keep_predictions=True)  # a paired bootstrap needs every dev prediction
        control = dataclasses.replace(paper, untrained=True)
    claim_study(cache_dir, {"study": "proxy_vs_paper", "proxy": describe_fitness(proxy),
                            "paper": describe_fitness(paper),
                            **({"control": describe_fitness(control)} if control is not None else {})})
    proxy_records, paper_records, control_records = [], [], []
    for arch in progress_bar(archs, desc="proxy vs paper", disable=not progress):
        proxy_records.append(cached_evaluation(cache_dir / "proxy" / f"{arch_slug(arch)}.json", proxy, arch))
        paper_records.append(cached_evaluation(cache_dir / "paper" / f"{arch_slug(arch)}.json", paper, arch))
        if control is not None:
            control_records.append(cached_evaluation(cache_dir / "control" / f"{arch_slug(arch)}.json", control, arch))
    tasks_used: dict[str, set[str]] = {}  # e.g. {"mnli": {"sst2"}} offline
    for record in paper_records:
        for task, scored in (record["details"].get("tasks") or {}).items():
            tasks_used.setdefault(task, set()).add(scored["task_used"])
    result = _study_result(archs, "proxy", proxy_records, "paper", paper_records,
                           tasks_used={t: sorted(u) for t, u in tasks_used.items()},
                           proxy_fitness=describe_fitness(proxy), paper_fitness=describe_fitness(paper),
                           seconds={"proxy": sum(r["seconds"] for r in proxy_records),
                                    "paper": sum(r["seconds"] for r in paper_records),
                                    **({"control": sum(r["seconds"] for r in control_records)} if controls else {})},
                           machine=machine_info())
    if control is not None:
        result.update(learned_ranking(result, paper_records, control_records, describe_fitness(control)))
    write_json_atomic(cache_dir / "result.json", result)
    return result


def vs_control(paper_record: Mapping[str, Any], control_record: Mapping[str, Any], *, n_boot: int = 1000) -> dict:
    """How far a sub-model's paper fitness lies above its untrained control's: the mean over its tasks of
    (sub-model − control), with a 95 % interval from resampling the dev examples (paired: both were scored on the
    same ones; one fine-tuning seed each). ``{"difference", "ci95", "learned"}``: learned when the interval lies
    above 0."""
    tasks = []
    for task, mine in paper_record["details"]["tasks"].items():
        theirs = control_record["details"]["tasks"][task]
        if mine["task_used"] != theirs["task_used"] or not mine.get("dev") or not theirs.get("dev"):
            raise ValueError(f"{paper_record['arch']}: task {task!r} has no paired dev predictions of the sub-model "
                             "and its control (the paper fitness needs keep_predictions=True)")
        used = mine["task_used"]
        a = column_runs({used: [{"score": mine["score"], "dev": mine["dev"], "config": {"seed": 0}}]})
        b = column_runs({used: [{"score": theirs["score"], "dev": theirs["dev"], "config": {"seed": 0}}]})
        tasks += [a[column].against(b[column], key=f"{used}:{column}") for column in a
                  if not column.endswith(".em")]  # SQuAD counts once, by F1, as the paper fitness does
    interval = paired_bootstrap(tasks, n_boot=n_boot)
    return {"difference": interval.difference, "ci95": list(interval.ci95), "learned": interval.ci95[0] > 0}


def learned_ranking(result: Mapping[str, Any], paper_records: Sequence[Mapping[str, Any]],
                    control_records: Sequence[Mapping[str, Any]], control_fitness: Mapping[str, Any]) -> dict:
    """The fields :func:`kendall_proxy_vs_paper` adds with controls: each architecture against its control and τ
    over those that learned (NaN below two)."""
    against = [vs_control(p, c) for p, c in zip(paper_records, control_records)]
    learned = [i for i, v in enumerate(against) if v["learned"]]
    tau, p = kendall([result["proxy"][i] for i in learned], [result["paper"][i] for i in learned])
    return {"control": [r["fitness"] for r in control_records], "vs_control": against,
            "learned": [v["learned"] for v in against], "n_learned": len(learned),
            "learned_kendall_tau": tau, "learned_p_value": p, "control_fitness": control_fitness}


# ------------------------------------------------------------------------------- choosing archs
def _scored(candidates: Any) -> dict[Arch, float]:
    """``{arch: fitness}`` from search candidates (``.arch``/``.fitness``), log records or table rows
    (``"arch"``/``"fitness"``), ``(arch, fitness)`` pairs or a mapping; the first value of an arch wins."""
    if hasattr(candidates, "to_dict") and not isinstance(candidates, Mapping):  # a DataFrame (SearchResult.table())
        candidates = candidates.to_dict("records")
    items = candidates.items() if isinstance(candidates, Mapping) else candidates
    scored: dict[Arch, float] = {}
    for c in items:
        if isinstance(c, Mapping):
            arch, fitness = c["arch"], c["fitness"]
        elif hasattr(c, "arch"):
            arch, fitness = c.arch, c.fitness
        else:
            arch, fitness = c
        scored.setdefault(as_arch(arch), float(fitness))
    return scored


def pick_archs(candidates: Any, n: int, seed: int = 0) -> list[Arch]:
    """``n`` distinct architectures spread over the fitness range of ``candidates``, lowest fitness first.

    The candidates, ranked by fitness, are cut into ``n`` consecutive strata of (nearly) equal size and
    one architecture is drawn from each with ``random.Random(seed)``: a stratified sample over fitness
    quantiles, so the study covers poor, middling and good sub-models (an evolved search crowds the top,
    and τ among near-equal candidates measures noise). Deterministic for a given ``seed``.
    """
    scored = _scored(candidates)
    if not 1 <= n <= len(scored):
        raise ValueError(f"pick_archs: cannot pick {n} of {len(scored)} distinct architectures")
    ranked = sorted(scored, key=lambda a: (scored[a], a))
    rng = random.Random(seed)
    edges = [i * len(ranked) // n for i in range(n + 1)]  # floor: every stratum holds at least one
    return [ranked[rng.randrange(edges[i], edges[i + 1])] for i in range(n)]


# --------------------------------------------------------------------------------- both studies
def run_ranking_studies(scale: str, supernet_dir: str | Path, candidates: Any, run_dir: str | Path, *,
                        studies: Sequence[str] = ("inherited_vs_trained", "proxy_vs_paper"),
                        config: RankingConfig | None = None, progress: bool = True, **overrides) -> dict:
    """Both studies of ``scale`` on ``pick_archs(candidates)``, under ``run_dir/<study>/``; resumable.

    ``overrides`` replace ranking settings (e.g. ``archs=4``). Returns ``{study: result}`` plus the
    settings, the picked architectures and the wall time of this call.
    """
    cfg = config or RankingConfig.load(scale, **overrides)
    run_dir = Path(run_dir)
    archs = pick_archs(candidates, cfg.archs, cfg.seed)
    start = time.perf_counter()
    out: dict[str, Any] = {"scale": scale, "config": dataclasses.asdict(cfg), "archs": [str(a) for a in archs]}
    if "inherited_vs_trained" in studies:
        out["inherited_vs_trained"] = kendall_inherited_vs_trained(
            supernet_dir, archs, None, cfg.scale, cfg.steps, run_dir / "inherited_vs_trained",
            cfg.fitness, cfg.fitness_settings(), train_overrides=cfg.train, progress=progress)
    if "proxy_vs_paper" in studies:
        out["proxy_vs_paper"] = kendall_proxy_vs_paper(
            supernet_dir, archs, cfg.proxy_settings(), cfg.paper_settings(), run_dir / "proxy_vs_paper",
            controls=cfg.controls, progress=progress)
    out["wall_seconds"] = time.perf_counter() - start
    return out
