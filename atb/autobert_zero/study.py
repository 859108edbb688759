"""AutoBERT-Zero on the study's pipeline (notebook 09): BIWS supernet, warm-up, OP-NAS against random mutation, and
the development of the searched hybrid beside the standard-attention backbone, each with its untrained control.

The steps, each cached under ``runs/<scale>/autobert_zero/`` so that a rerun resumes:

1. :func:`warm_started_supernet`: the BIWS supernet (:mod:`.supernet`) of the teacher's shape, warm-started from
   it at small scales (the paper pre-trains from scratch; at mini nothing transfers without the warm start, README
   "Which one-shot recipe transfers at mini").
2. :func:`warm_up`: the supernet distilled from the teacher on random candidates (each layer a convolution of a
   random kernel, BERT's attention, or a random graph: :func:`sample_layer`), with the shared resumable warm-up
   (:func:`atb.distill.warmup_distill`; hidden states only, since graphs and convolutions have no
   BERT attention scores). The paper trains its supernet by MLM pre-training.
3. :func:`train_convolutions`: the convolution branch distilled layer by layer with the rest frozen
   (:mod:`.local_kd`), so that a convolution is not random at search time: MiniLM gives it nothing to inherit.
4. :func:`search`: OP-NAS and plain random mutation (:mod:`.search`), the same number of evaluations each, from
   the standard-attention backbone, under the latency constraint (:mod:`.latency`: no slower than that backbone
   x ``latency_budget``, with ``latency_tolerance`` above it so that timing noise does not decide), for each of
   ``search_seeds``. Fitness: the KD proxy with inherited weights (:class:`atb.distill.KDProxyFitness`), a **screen**.
5. :func:`rerank`: the screen's best hybrids (candidates with a convolution) and the start, adapted and fine-tuned
   on held-out train examples (:mod:`atb.rerank`); at small scales the teacher is the warm start's source, so the
   screen is the distance to the start by construction. Claim 11 compares each search's best proposed candidate by
   the same rerank (:func:`opnas_vs_random_reranked`).
6. :func:`develop`: the searched hybrid (the rerank's best, :func:`developed_pick`) and the standard-attention
   backbone (and, when asked, the published layer pattern) cut out of the supernet, further distilled for the same
   ``further_steps``, exported as ``atb-autobert-zero`` models, each with an **untrained control**
   (:func:`atb.develop.develop_candidate`).

Fine-tuning, seeds, intervals and learning rates are those of notebooks 05-06 (:mod:`atb.develop`).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import config, stats
from ..develop import develop_candidate
from ..distill import KDProxyFitness, WarmupConfig, log_cpu_seconds, warmup_distill
from ..fitness import heldout_batches
from ..latency import Protocol
from ..layout import Layout
from ..records import write_dir_atomic
from ..rerank import RerankConfig, RerankResult, screen
from ..rerank import rerank as rerank_candidates
from ..teacher import load_teacher
from .graph import formula, random_graph
from .latency import LayerLatencyTable
from .local_kd import LocalKDConfig
from .local_kd import train_convolutions as train_convolutions_locally
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
    latency_tolerance: float = 0.02  # the limit's margin above the budget: several times the table's timing noise
    warmup: dict[str, Any] = field(default_factory=dict)  # WarmupConfig
    search: dict[str, Any] = field(default_factory=dict)  # OpNasConfig, without mutation / seed / max_latency_ms
    search_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    proxy: dict[str, Any] = field(default_factory=lambda: {"corpus": "wikitext-2-valid", "max_examples": 32,
                                                           "batch_size": 16, "max_seq_len": 128, "seed": 0})
    conv_kd: dict[str, Any] = field(default_factory=dict)  # LocalKDConfig: the convolution branch's layer-local KD
    rerank: dict[str, Any] = field(default_factory=dict)  # atb.rerank.RerankConfig
    further_steps: int = 100  # further distillation of each developed model
    develop: list[str] = field(default_factory=lambda: ["searched", "standard"])  # + "published"
    squad: bool = True  # also SQuAD v1.1 (notebook 06's budget and seeds)
    published_shape: dict[str, Any] = field(default_factory=dict)  # the published pattern's size (default BERT-base)
    scale: str | None = None

    def __post_init__(self) -> None:
        where = f"{SECTION}"
        if self.latency_budget <= 0:
            raise ValueError(f"{where}.latency_budget must be > 0, got {self.latency_budget}")
        if not 0 <= self.latency_tolerance < 1:
            raise ValueError(f"{where}.latency_tolerance must be in [0, 1), got {self.latency_tolerance}")
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
        LocalKDConfig(**self.conv_kd)
        RerankConfig(**self.rerank)

    @classmethod
    def load(cls, scale: str | Path, **overrides) -> AutoBertZeroStudyConfig:
        return config.load_section(cls, scale, SECTION, overrides)

    def warmup_config(self) -> WarmupConfig:
        return WarmupConfig(**self.warmup)

    def conv_kd_config(self) -> LocalKDConfig:
        return LocalKDConfig(**self.conv_kd)

    def rerank_config(self) -> RerankConfig:
        return RerankConfig(**self.rerank)

    def max_latency_ms(self, start_ms: float) -> float:
        """The latency constraint: the start's encoder latency x ``latency_budget`` x (1 + ``latency_tolerance``)."""
        return start_ms * self.latency_budget * (1 + self.latency_tolerance)

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


def train_convolutions(cfg: AutoBertZeroStudyConfig, layout: Layout,
                       supernet: AutoBertZeroSuperNet) -> tuple[AutoBertZeroSuperNet, dict]:
    """Layer-local distillation of the warmed-up supernet's convolution branch, the rest frozen (:mod:`.local_kd`;
    resumable, ``.../conv_kd``). Returns the trained supernet (a copy) and the run's record; where the teacher's shape
    differs from the supernet's (smoke's toy supernet) the supernet as it is, and the record says why
    (``skipped``)."""
    root = run_root(layout) / "conv_kd"
    teacher = load_teacher(cfg.teacher)
    shapes = ((teacher.num_layers, teacher.hidden_size),
              (supernet.config.num_hidden_layers, supernet.config.hidden_size))
    if shapes[0] != shapes[1]:  # smoke's toy supernet: no teacher layer to copy a layer's input and output from
        return supernet, {"steps": 0, "skipped": f"layer-local KD needs the teacher's layers and width; the teacher "
                                                  f"has {shapes[0]}, the supernet {shapes[1]} (layers, hidden)"}
    trained = copy.deepcopy(supernet)
    record = train_convolutions_locally(trained, teacher, cfg.conv_kd_config(), root)
    return trained.eval(), record


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
        return {seed: best.fitness for seed, best in self.best_records(rule, proposed_only=proposed_only).items()}

    def best_records(self, rule: str, *, proposed_only: bool = False) -> dict[int, Any]:
        """Per search seed of ``rule``, its fittest feasible evaluation (discarded candidates left out)."""
        start = [str(s) for s in self.start]
        best = {seed: max((e for e in r.history if e.feasible and e.fitness is not None
                           and not (proposed_only and e.layers == start)), key=lambda e: e.fitness, default=None)
                for (k, seed), r in self.runs.items() if k == rule}
        return {seed: e for seed, e in best.items() if e is not None}  # a seed whose every proposal was discarded

    def cpu_seconds(self, rule: str) -> float:
        return sum(r.cpu_seconds for (k, _), r in self.runs.items() if k == rule)


def search(cfg: AutoBertZeroStudyConfig, layout: Layout, supernet: AutoBertZeroSuperNet,
           protocol: Protocol | None = None) -> SearchOutcome:
    """OP-NAS and random mutation from the standard-attention backbone, for every search seed (resumable), scored with
    the supernet after :func:`train_convolutions`."""
    root = run_root(layout) / "search"
    fitness = proxy_fitness(cfg, supernet, name=str(run_root(layout) / "conv_kd" / "final"))
    table = LayerLatencyTable(supernet.config, protocol, root / "layer_latency.json")
    start = standard_candidate(supernet.config.num_hidden_layers)
    start_ms = table.candidate(start)
    limit = cfg.max_latency_ms(start_ms)
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


def proxy_is_distance_to_start(cfg: AutoBertZeroStudyConfig) -> bool:
    """Whether the screen measures the distance to the start by construction: with a warm start the standard-attention
    candidate *is* the teacher (its KD loss is 0 before warm-up), so no new graph or convolution can beat it."""
    return bool(cfg.warm_start)


def changes(candidate: Candidate, start: Candidate) -> dict[str, list[int]]:
    """What ``candidate`` changes against ``start`` (0-based layers): ``graphs`` (an attention layer computing another
    graph) and ``convolution_layers`` (convolutions). Claim 10's hybrid needs a convolution."""
    from .space import candidate_key

    conv = [i for i, spec in enumerate(candidate) if isinstance(spec, ConvLayer)]
    graphs = [i for i, (a, b) in enumerate(zip(candidate, start))
              if isinstance(a, AttentionLayer) and candidate_key((a,)) != candidate_key((b,))]
    return {"graphs": graphs, "convolution_layers": conv}


def is_hybrid(candidate: Candidate) -> bool:
    """A candidate claim 10 is about: at least one convolution layer."""
    return any(isinstance(spec, ConvLayer) for spec in candidate)


def rerank(cfg: AutoBertZeroStudyConfig, layout: Layout, supernet: AutoBertZeroSuperNet,
           outcome: SearchOutcome) -> RerankResult:
    """Screen, then rerank (:mod:`atb.rerank`): the start and the ``rerank.top`` fittest feasible hybrids any OP-NAS
    run evaluated, adapted and fine-tuned on held-out train examples (resumable; ``.../rerank``)."""
    from .supernet import as_candidate

    evaluated = [(as_candidate(e.layers), e.fitness) for (rule, _), r in outcome.runs.items() if rule == "op-priority"
                 for e in r.history if e.feasible and e.fitness is not None]
    screened = screen(evaluated, outcome.start, cfg.rerank_config().top, is_hybrid)
    return _rerank(cfg, layout, supernet, screened, outcome.start)


def _rerank(cfg: AutoBertZeroStudyConfig, layout: Layout, supernet: AutoBertZeroSuperNet, screened: list,
            start: Candidate) -> RerankResult:
    return rerank_candidates(supernet, screened, start=start, scale=layout.scale,
                             root=run_root(layout) / "rerank", teacher=cfg.teacher, warm=cfg.warmup_config(),
                             cfg=cfg.rerank_config(), what="AutoBERT-Zero",
                             layers=lambda c: "\n".join(f"{i + 1}. `{f}`" for i, f in enumerate(describe_layers(c))))


def developed_pick(reranked: RerankResult, start: Candidate) -> dict:
    """The candidate developed as "searched": the rerank's best hybrid (the standard-attention start is developed anyway
    as the baseline). ``best_is_start``: the start scored best of all; ``reason`` (and ``layers`` None) when the
    search found no feasible hybrid to rerank, so claim 10 cannot be tested."""
    overall = reranked.best()
    if not any(not e.is_start for e in reranked.entries):
        return {"layers": None, "picked_by": "rerank", "is_start": False, "best_is_start": overall.is_start,
                "reason": "no OP-NAS run evaluated a candidate with a convolution within the latency budget"}
    pick = reranked.best(new_only=True)
    return {"layers": [str(s) for s in pick.candidate], "screen_fitness": pick.screen, "rerank_score": pick.score,
            "picked_by": "rerank", "is_start": False, "best_is_start": overall.is_start,
            "changes": changes(pick.candidate, start), "rerank_seconds": reranked.cpu_seconds, "reason": None}


def opnas_vs_random_reranked(cfg: AutoBertZeroStudyConfig, layout: Layout, supernet: AutoBertZeroSuperNet,
                             outcome: SearchOutcome) -> dict:
    """Claim 11 under the fair fitness: each search's best *proposed* candidate (its screen pick, the shared start left
    out) reranked (:mod:`atb.rerank`), and OP-NAS minus random mutation paired by seed, a Student-t interval over
    seeds. Candidates both rules found are scored once (cached by candidate)."""
    best = {rule: outcome.best_records(rule, proposed_only=True) for rule in RULES}
    seeds = sorted(best["op-priority"].keys() & best["random"].keys())
    from .supernet import as_candidate

    screened = list({tuple(best[rule][s].layers): (as_candidate(best[rule][s].layers), best[rule][s].fitness)
                     for rule in RULES for s in seeds}.values())
    scored = {tuple(str(x) for x in e.candidate): e.score
              for e in _rerank(cfg, layout, supernet, screened, outcome.start).entries}
    per_rule = {rule: {s: scored[tuple(best[rule][s].layers)] for s in seeds} for rule in RULES}
    differences = [per_rule["op-priority"][s] - per_rule["random"][s] for s in seeds]
    measure = f"{cfg.rerank_config().task} held-out score of each search's best proposed candidate (rerank)"
    base = {"seeds": seeds, "per_seed": differences, "measure": measure, "fitness": "rerank",
            "scores": {rule: [per_rule[rule][s] for s in seeds] for rule in RULES}}
    if len(differences) < 2:
        return {"difference": sum(differences) / len(differences) if differences else None, "ci95": None,
                "n": len(differences), **base, "reason": "fewer than 2 search seeds: no interval"}
    return {**stats.t_interval(differences).to_dict(), **base, "reason": None}


def proxy_gap(cfg: AutoBertZeroStudyConfig, layout: Layout, before: AutoBertZeroSuperNet,
              after: AutoBertZeroSuperNet, start: Candidate, candidate: Candidate) -> dict:
    """The screen's gap between the start and ``candidate`` (start minus candidate, negated KD loss: > 0 means the
    start looks better), with the supernet before and after :func:`train_convolutions`: what a convolution now has
    to inherit."""
    gaps = {when: (lambda f: f(start) - f(candidate))(proxy_fitness(cfg, net, name=when))
            for when, net in (("before", before), ("after", after))}
    return {**gaps, "candidate": [str(s) for s in candidate], "what": "screen fitness of the start minus the "
            "candidate's (negated KD loss), before and after the convolutions' layer-local distillation"}


def search_curves(outcome: SearchOutcome):
    """One row per (rule, seed, evaluation): the best feasible fitness among the candidates the search has proposed so
    far (its shared start left out, as in claim 11; NaN until the first), the figure of notebook 09."""
    import pandas as pd

    start = [str(s) for s in outcome.start]
    rows = []
    for (rule, seed), result in outcome.runs.items():
        best = float("nan")
        for e in result.history:
            if e.feasible and e.fitness is not None and e.layers != start and not e.fitness <= best:
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
    if first.fitness is not None:
        ax.axhline(first.fitness, color="grey", linestyle="--", linewidth=1, label="start (standard attention)")
    ax.legend()
    ax.set(title="OP-NAS vs random mutation at equal evaluations (mean over search seeds)",
           ylabel="best fitness proposed so far")


def op_priority_table(outcome: SearchOutcome, rule: str = "op-priority"):
    """The priorities a rule's runs learned: per operation its mean reward, uses and final priority, averaged over
    seeds. Random mutation tracks them too (what OP-NAS *would* have learnt from uniform choices): the two side by
    side show whether the bias changed what was credited."""
    import pandas as pd

    frames = [pd.DataFrame(r.op_priority).T.assign(seed=seed) for (k, seed), r in outcome.runs.items() if k == rule]
    table = pd.concat(frames).drop(columns="seed").astype(float).groupby(level=0).mean()
    return table[["mean_reward", "count", "priority"]].sort_values("mean_reward", ascending=False)


def op_priority_record(outcome: SearchOutcome, rule: str = "op-priority") -> dict[str, dict[str, float | None]]:
    """:func:`op_priority_table` as the record holds it (``None`` for an operation no run credited)."""
    table = op_priority_table(outcome, rule)
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
            "formulas": formulas, "changes": changes(candidate, standard_candidate(len(candidate))), "objective": "kd", "method": METHODS[name], "kind": "autobert-zero",
            "params": supernet.candidate_params(candidate), **developed}


def development_cpu_seconds(model: dict, outcome: SearchOutcome, pick: dict) -> float | None:
    """A developed model's own cost in CPU seconds: its selection (the searched model: every OP-NAS run, since the
    rerank draws from all of them, and the rerank, ``pick["rerank_seconds"]``; the baselines none) and its further
    distillation. The warm-up and the convolutions' distillation, shared by every candidate, are recorded once
    beside them (``warmup.cpu_seconds``, ``conv_kd.cpu_seconds``)."""
    further = log_cpu_seconds(Path(model["model_dir"]).parent / "train")
    if further is None:
        return None
    if model["name"] != SEARCHED:
        return further
    return outcome.cpu_seconds("op-priority") + (pick.get("rerank_seconds") or 0.0) + further


def candidates_to_develop(cfg: AutoBertZeroStudyConfig, supernet: AutoBertZeroSuperNet, pick: dict) -> dict:
    """``{model name: candidate}`` of ``cfg.develop`` (no searched model when the search found no hybrid)."""
    from .supernet import as_candidate

    layers = supernet.config.num_hidden_layers
    chosen = {SEARCHED: as_candidate(pick["layers"]) if pick.get("layers") else None,
              STANDARD: standard_candidate(layers), PUBLISHED: published_candidate(layers)}
    names = {"searched": SEARCHED, "standard": STANDARD, "published": PUBLISHED}
    return {names[k]: chosen[names[k]] for k in cfg.develop if chosen[names[k]] is not None}


def save_record(layout: Layout, record: dict) -> Path:
    return layout.write_record("09_autobert_zero.json", record, allow_nan=False)
