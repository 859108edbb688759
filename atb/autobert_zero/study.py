"""AutoBERT-Zero on the study's pipeline (notebook 09): BIWS supernet, warm-up, OP-NAS against random mutation, and
the development of the searched hybrid beside the standard-attention backbone, each with its untrained control.

The steps, each cached under ``runs/<scale>/autobert_zero/`` so that a rerun resumes:

1. :func:`warm_started_supernet`: the BIWS supernet (:mod:`.supernet`) of the teacher's shape, warm-started from
   it at small scales (the paper pre-trains from scratch; at mini nothing transfers without the warm start, README
   "Which one-shot recipe transfers at mini").
2. :func:`warm_up`: the supernet distilled from the teacher on random candidates (each layer a convolution of a
   random kernel, BERT's attention, or a random graph: :func:`sample_layer`), with EfficientBERT's resumable warm-up
   (:func:`atb.efficientbert.distill.warmup_distill`; hidden states only, since graphs and convolutions have no
   BERT attention scores). The paper trains its supernet by MLM pre-training.
3. :func:`search`: OP-NAS and plain random mutation (:mod:`.search`), the same number of evaluations each, from
   the standard-attention backbone, under the latency constraint (:mod:`.latency`: no slower than that backbone
   x ``latency_budget``), for each of ``search_seeds``. Fitness: the KD proxy with inherited weights
   (:class:`atb.efficientbert.distill.KDProxyFitness`), at every scale here; the paper's fitness (a short
   pre-training and fine-tuning per candidate) is far beyond a CPU budget.
4. :func:`develop`: the searched hybrid (the fittest candidate other than the start, :func:`developed_pick`) and
   the standard-attention backbone (and, when asked, the published layer pattern) cut out of the warmed-up
   supernet, further distilled for the same ``further_steps``, exported as ``atb-autobert-zero`` models, each with
   an **untrained control** (:func:`atb.efficientbert.study.develop_candidate`).

Fine-tuning, seeds, intervals and learning rates are those of notebooks 05-06 (:mod:`atb.develop`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import config, stats
from ..efficientbert.distill import KDProxyFitness, WarmupConfig, log_cpu_seconds, warmup_distill
from ..efficientbert.study import develop_candidate
from ..fitness import heldout_batches
from ..latency import Protocol
from ..layout import Layout
from ..records import write_dir_atomic, write_json_atomic
from ..teacher import load_teacher
from .graph import formula, random_graph
from .latency import LayerLatencyTable
from .search import OpNasConfig, OpNasResult, run_opnas
from .space import DEFAULT_KERNELS, AttentionLayer, Candidate, ConvLayer, LayerSpec, published_candidate, \
    standard_candidate
from .supernet import AutoBertZeroSuperNet, supernet_config, warm_start_from_bert

SECTION = "autobert_zero"
SEARCHED, STANDARD, PUBLISHED = "autobert-zero-searched", "autobert-zero-standard", "autobert-zero-published"
METHODS = {SEARCHED: "searched", STANDARD: "standard-attention", PUBLISHED: "published-pattern"}
RULES = ("op-priority", "random")  # OP-NAS and its baseline, plain random mutation


@dataclass
class AutoBertZeroStudyConfig:
    """Section ``autobert_zero`` of ``configs/<scale>.yaml``."""

    teacher: str = "minilm-offline"  # the warm-up teacher, and the warm start's source when ``warm_start``
    warm_start: bool = True
    shape: dict[str, Any] = field(default_factory=dict)  # supernet config overrides (default: the teacher's shape)
    kernels: list[int] = field(default_factory=lambda: list(DEFAULT_KERNELS))
    conv_type: str = "light"
    latency_budget: float = 1.0  # x the standard-attention backbone's encoder latency (layer latency table)
    warmup: dict[str, Any] = field(default_factory=dict)  # WarmupConfig
    search: dict[str, Any] = field(default_factory=dict)  # OpNasConfig, without mutation / seed / max_latency_ms
    search_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    proxy: dict[str, Any] = field(default_factory=lambda: {"corpus": "wikitext-2-valid", "max_examples": 32,
                                                           "batch_size": 16, "max_seq_len": 128, "seed": 0})
    further_steps: int = 100  # further distillation of each developed model
    develop: list[str] = field(default_factory=lambda: ["searched", "standard"])  # + "published"
    squad: bool = True  # also SQuAD v1.1 (notebook 06's budget and seeds)
    published_shape: dict[str, Any] = field(default_factory=dict)  # the published pattern's size (default BERT-base)
    scale: str | None = None

    def __post_init__(self) -> None:
        where = f"{SECTION}"
        if self.latency_budget <= 0:
            raise ValueError(f"{where}.latency_budget must be > 0, got {self.latency_budget}")
        if self.further_steps < 1:
            raise ValueError(f"{where}.further_steps must be >= 1, got {self.further_steps}")
        if not self.search_seeds:
            raise ValueError(f"{where}.search_seeds must name at least one seed")
        unknown = set(self.develop) - {"searched", "standard", "published"}
        if unknown or "searched" not in self.develop or "standard" not in self.develop:
            raise ValueError(f"{where}.develop must hold 'searched' and 'standard' (and may hold 'published'), "
                             f"got {self.develop}")
        fixed = {"mutation", "seed", "max_latency_ms"} & set(self.search)
        if fixed:
            raise ValueError(f"{where}.search: {sorted(fixed)} are set by the study, not the config")
        WarmupConfig(**self.warmup)  # errors name the field
        OpNasConfig(**self.search)

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> AutoBertZeroStudyConfig:
        settings, file = config.section(scale, SECTION)
        config.check_keys(settings, config.fields_of(cls, exclude=("scale",)), file.where(SECTION))
        return config.build(cls, {**settings, **overrides}, f"{file.where(SECTION)} overrides", exclude=("scale",),
                            scale=file.scale)

    def warmup_config(self) -> WarmupConfig:
        return WarmupConfig(**self.warmup)

    def search_config(self, rule: str, seed: int, max_latency_ms: float) -> OpNasConfig:
        return OpNasConfig(**{**self.search, "mutation": rule, "seed": seed, "max_latency_ms": max_latency_ms})


def run_root(layout: Layout) -> Path:
    """``runs/<scale>/autobert_zero``."""
    return layout.runs / "autobert_zero"


# ------------------------------------------------------------------------------------------------ supernet
def warm_started_supernet(cfg: AutoBertZeroStudyConfig, root: Path) -> AutoBertZeroSuperNet:
    """The supernet before warm-up (``root/warm_start``, made once): the teacher's shape, warm-started from it."""
    directory = root / "warm_start"
    if not (directory / "config.json").exists():
        teacher = load_teacher(cfg.teacher)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            supernet = AutoBertZeroSuperNet(supernet_config(teacher.model.config, cfg.kernels, cfg.conv_type,
                                                            **cfg.shape))
        if cfg.warm_start:
            warm_start_from_bert(supernet, teacher.model)
        write_dir_atomic(directory, supernet.save_pretrained)
    return AutoBertZeroSuperNet.from_pretrained(directory).eval()


def sample_layer(rng: random.Random, kernels: list[int], max_nodes: int) -> LayerSpec:
    """One layer of a warm-up candidate: a convolution (random kernel), BERT's attention, or a random graph, each
    a third of the time, so the shared weights serve the search's start, its convolutions and its new graphs."""
    kind = rng.randrange(3)
    if kind == 0:
        return ConvLayer(rng.choice(kernels))
    if kind == 1:
        return standard_candidate(1)[0]
    return AttentionLayer(random_graph(rng, max_nodes=max_nodes))


def warm_up(cfg: AutoBertZeroStudyConfig, layout: Layout) -> tuple[AutoBertZeroSuperNet, dict]:
    """Warm-up distillation of the warm-started supernet on random candidates (resumable; ``.../warmup``)."""
    root = run_root(layout)
    supernet = warm_started_supernet(cfg, root)
    warm, layers = cfg.warmup_config(), supernet.config.num_hidden_layers
    max_nodes = cfg.search_config("random", 0, None).max_nodes

    def sample(step: int) -> Candidate:
        rng = random.Random(warm.seed * 1_000_003 + step)
        return tuple(sample_layer(rng, supernet.config.kernels, max_nodes) for _ in range(layers))

    record = warmup_distill(supernet, load_teacher(cfg.teacher), sample, warm, root / "warmup")
    trained = AutoBertZeroSuperNet.from_pretrained(root / "warmup" / "final").eval()
    return trained, {**record, "teacher": cfg.teacher, "warm_start": getattr(trained.config, "warm_start", None),
                     "cpu_seconds": log_cpu_seconds(root / "warmup")}


# ------------------------------------------------------------------------------------------------ search
def proxy_fitness(cfg: AutoBertZeroStudyConfig, supernet: AutoBertZeroSuperNet, name: str) -> KDProxyFitness:
    """The KD proxy (hidden states) on held-out text; ``name`` identifies the supernet in the logs' headers."""
    p = cfg.proxy
    batches = heldout_batches(p["corpus"], p["max_examples"], p["max_seq_len"], p["batch_size"], p.get("seed", 0),
                              mlm_probability=0.0)
    return KDProxyFitness(supernet, load_teacher(cfg.teacher), batches, name=name, settings=dict(p))


@dataclass
class SearchOutcome:
    """Every search run (``runs[(rule, seed)]``), the latency table and the constraint."""

    runs: dict[tuple[str, int], OpNasResult]
    start: Candidate
    start_latency_ms: float
    max_latency_ms: float
    latency: LayerLatencyTable

    def best(self, rule: str = "op-priority") -> tuple[int, Any]:
        """The seed and evaluation of the fittest candidate any run of ``rule`` found."""
        return max(((seed, r.best) for (k, seed), r in self.runs.items() if k == rule),
                   key=lambda pair: pair[1].fitness)

    def best_fitness(self, rule: str, *, proposed_only: bool = False) -> dict[int, float]:
        """Per search seed of ``rule``, the best feasible fitness it found; ``proposed_only``: among the candidates
        the search itself proposed (its shared start, evaluated first by every run, left out)."""
        start = [str(s) for s in self.start]
        return {seed: max(e.fitness for e in r.history if e.feasible and not (proposed_only and e.layers == start))
                for (k, seed), r in self.runs.items() if k == rule}

    def cpu_seconds(self, rule: str) -> float:
        return sum(r.cpu_seconds for (k, _), r in self.runs.items() if k == rule)


def search(cfg: AutoBertZeroStudyConfig, layout: Layout, supernet: AutoBertZeroSuperNet,
           protocol: Protocol | None = None) -> SearchOutcome:
    """OP-NAS and random mutation from the standard-attention backbone, for every search seed (resumable)."""
    root = run_root(layout) / "search"
    fitness = proxy_fitness(cfg, supernet, name=str(run_root(layout) / "warmup" / "final"))
    table = LayerLatencyTable(supernet.config, protocol, root / "layer_latency.json")
    start = standard_candidate(supernet.config.num_hidden_layers)
    start_ms = table.candidate(start)
    limit = cfg.latency_budget * start_ms
    describe = {"fitness": fitness.describe(), "latency": table.describe()}
    runs = {}
    for rule in RULES:
        for seed in cfg.search_seeds:
            runs[(rule, seed)] = run_opnas(start, fitness, table.candidate, cfg.search_config(rule, seed, limit),
                                           root / f"{rule}-seed{seed}.jsonl", kernels=supernet.config.kernels,
                                           describe=describe)
    return SearchOutcome(runs, start, start_ms, limit, table)


def opnas_vs_random(outcome: SearchOutcome, *, proposed_only: bool = True) -> dict:
    """OP-NAS minus random mutation, best fitness per search seed (paired by seed, equal evaluations): the mean and a
    Student-t 95 % interval over seeds (:func:`atb.stats.t_interval`; with a handful of seeds a bootstrap's
    percentile interval is too narrow).

    ``proposed_only`` (claim 11's measure): the best of the candidates each search *proposed*, its start left out.
    Both rules evaluate the same start first; when neither beats it (at mini: the warm start's own standard
    attention), the best-including-start difference is 0 by construction and says nothing about the rules."""
    opnas = outcome.best_fitness("op-priority", proposed_only=proposed_only)
    plain = outcome.best_fitness("random", proposed_only=proposed_only)
    seeds = sorted(opnas.keys() & plain.keys())
    differences = [opnas[s] - plain[s] for s in seeds]
    measure = "best fitness of the proposed candidates" if proposed_only else "best fitness, start included"
    if len(differences) < 2:
        return {"difference": sum(differences) / len(differences) if differences else None, "ci95": None,
                "n": len(differences), "seeds": seeds, "per_seed": differences, "measure": measure,
                "reason": "fewer than 2 search seeds: no interval"}
    return {**stats.t_interval(differences).to_dict(), "seeds": seeds, "per_seed": differences, "measure": measure,
            "reason": None}


def developed_pick(outcome: SearchOutcome) -> dict:
    """The candidate developed as "searched": OP-NAS's fittest over all seeds, unless that is the start (the
    standard-attention backbone, developed anyway as the baseline); then its fittest *new* candidate, so the
    comparison tests whether the search's best hybrid also wins downstream (``best_is_start`` says so)."""
    start = [str(s) for s in outcome.start]
    seed, best = outcome.best("op-priority")
    if best.layers != start:
        return {"layers": best.layers, "fitness": best.fitness, "seed": seed, "best_is_start": False}
    new = [(s, e) for (rule, s), r in outcome.runs.items() if rule == "op-priority" for e in r.history
           if e.feasible and e.layers != start]
    if not new:
        return {"layers": start, "fitness": best.fitness, "seed": seed, "best_is_start": True}
    seed, pick = max(new, key=lambda pair: pair[1].fitness)
    return {"layers": pick.layers, "fitness": pick.fitness, "seed": seed, "best_is_start": True,
            "start_fitness": best.fitness}


def search_curves(outcome: SearchOutcome):
    """One row per (rule, seed, evaluation): the best feasible fitness among the candidates the search has proposed so
    far (its shared start left out, as in claim 11; NaN until the first), the figure of notebook 09."""
    import pandas as pd

    start = [str(s) for s in outcome.start]
    rows = []
    for (rule, seed), result in outcome.runs.items():
        best = float("nan")
        for e in result.history:
            if e.feasible and e.layers != start and not e.fitness <= best:
                best = e.fitness
            rows.append({"mutation": rule, "seed": seed, "evaluations": e.index + 1, "best proposed so far": best})
    return pd.DataFrame(rows)


def plot_search(outcome: SearchOutcome, ax) -> None:
    """Best proposed fitness so far against evaluations, OP-NAS beside random mutation (mean over seeds, 95 % band),
    with the start's fitness, which every run evaluates first, as a dashed line."""
    import seaborn as sns

    sns.lineplot(data=search_curves(outcome), x="evaluations", y="best proposed so far", hue="mutation",
                 errorbar=("ci", 95), ax=ax)
    first = next(iter(outcome.runs.values())).history[0]
    ax.axhline(first.fitness, color="grey", linestyle="--", linewidth=1, label="start (standard attention)")
    ax.legend()
    ax.set(title="OP-NAS vs random mutation at equal evaluations (mean over search seeds)",
           ylabel="best fitness proposed so far")


def op_priority_table(outcome: SearchOutcome):
    """The priorities OP-NAS learned: per operation its mean reward, uses and final priority, averaged over seeds."""
    import pandas as pd

    frames = [pd.DataFrame(r.op_priority).T.assign(seed=seed) for (rule, seed), r in outcome.runs.items()
              if rule == "op-priority"]
    table = pd.concat(frames).drop(columns="seed").astype(float).groupby(level=0).mean()
    return table[["mean_reward", "count", "priority"]].sort_values("mean_reward", ascending=False)


def op_priority_record(outcome: SearchOutcome) -> dict[str, dict[str, float | None]]:
    """:func:`op_priority_table` as the record holds it (``None`` for an operation no run credited)."""
    table = op_priority_table(outcome)
    return {op: {k: (None if v != v else float(v)) for k, v in row.items()} for op, row in table.iterrows()}


# ------------------------------------------------------------------------------------------------ develop
def describe_layers(specs: list[str] | Candidate) -> list[str]:
    """Each layer as a reader sees it: ``conv k=9`` or the graph's formula."""
    from .space import parse_layer

    out = []
    for spec in specs:
        spec = parse_layer(spec) if isinstance(spec, str) else spec
        out.append(f"conv k={spec.kernel}" if isinstance(spec, ConvLayer) else formula(spec.graph))
    return out


def develop(cfg: AutoBertZeroStudyConfig, layout: Layout, supernet: AutoBertZeroSuperNet, name: str,
            candidate: Candidate) -> dict:
    """Further distillation of ``candidate``, its export and its untrained control. Returns the model's record."""
    from .supernet import as_candidate

    candidate = as_candidate(candidate)
    formulas = describe_layers(candidate)
    developed = develop_candidate(
        supernet, candidate, run_root(layout) / "models" / name, teacher=cfg.teacher, warm=cfg.warmup_config(),
        further_steps=cfg.further_steps,
        card=f"AutoBERT-Zero {name}: cut out of the warmed-up BIWS supernet and further distilled for "
             f"{cfg.further_steps} steps (atb notebook 09).",
        layers="Layers:\n\n" + "\n".join(f"{i + 1}. `{f}`" for i, f in enumerate(formulas)))
    return {"name": name, "arch": "; ".join(str(s) for s in candidate), "layers": [str(s) for s in candidate],
            "formulas": formulas, "objective": "kd", "method": METHODS[name], "kind": "autobert-zero",
            "params": supernet.candidate_params(candidate), **developed}


def development_cpu_seconds(model: dict, outcome: SearchOutcome, pick: dict) -> float | None:
    """A developed model's own cost in process CPU seconds: its search (the searched model: the OP-NAS run it came
    from; the baselines none) and its further distillation. The warm-up, shared by every candidate, is recorded
    once beside them (``warmup.cpu_seconds``)."""
    further = log_cpu_seconds(Path(model["model_dir"]).parent / "train")
    if further is None:
        return None
    search_cost = outcome.runs[("op-priority", pick["seed"])].cpu_seconds if model["name"] == SEARCHED else 0.0
    return search_cost + further


def candidates_to_develop(cfg: AutoBertZeroStudyConfig, supernet: AutoBertZeroSuperNet, pick: dict) -> dict:
    """``{model name: candidate}`` of ``cfg.develop``."""
    from .supernet import as_candidate

    layers = supernet.config.num_hidden_layers
    chosen = {SEARCHED: as_candidate(pick["layers"]), STANDARD: standard_candidate(layers),
              PUBLISHED: published_candidate(layers)}
    names = {"searched": SEARCHED, "standard": STANDARD, "published": PUBLISHED}
    return {names[k]: chosen[names[k]] for k in cfg.develop}


def save_record(layout: Layout, record: dict) -> Path:
    return write_json_atomic(layout.record("09_autobert_zero.json"), record, allow_nan=False)
