"""The larger scales cannot rot unseen (issue #11, item 12).

``base`` and ``paper`` are meant for a GPU and the hub, so nothing else here ever runs them. This module runs
each of their real configs (``configs/<scale>.yaml``, loaded through the same classes the notebooks use) for a
step or two on the CPU: the paper-size SuperBERT trained one-shot with both objectives, one generation of the
scale's own search (its grid coarsening, its speedup constraints, its fine-tuning fitness), further training
of the found sub-model with the scale's development settings, and one fine-tuning of it on a GLUE task and
SQuAD v1.1 with the scale's budgets. A config key or a code path that only these scales use fails here, not
on a user's GPU.

Only what a CPU without a network forces is overridden, each override with its reason beside it (``TRAIN``,
``PAPER_FITNESS_BUDGET``, ``FINETUNE``); everything else (the space, precision ``auto``, learning rates,
checkpoint cadence and retention, the sampler, the search's grid steps, speedups and fitness, the fine-tuning
schedule and sequence lengths) is the scale's own. The one substitution is the latency predictor: fitting one
needs a sweep of hundreds of timed paper-size models (notebook 02), so the search gets ``SyntheticLatency``, a
FLOPs-and-layers model of latency with the shape of the analytic predictor.

Cost, measured on the shared 2-core CPU (one torch thread): ~165 CPU-seconds for both scales together (KD ~45-53,
MLM ~33-36 per scale), 4.5 minutes of wall time under the load of several other engineers. The search generation
is the largest part: its two candidates are each fine-tuned on SST-2 and SQuAD (the SQuAD loader parses the whole
train JSON every time, ~3 s), and it enumerates the whole coarsened grid (KD: 1.5 M architectures, ~7
CPU-seconds per scale); ``test_search_generation`` checks that enumeration stays under ``GRID_CPU_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open

from atb import Arch, SearchSpace, SuperBert, config
from atb.develop import DevelopConfig
from atb.finetune import FinetuneConfig, finetune_glue, finetune_squad
from atb.latency import is_feasible
from atb.reproduce import check_config
from atb.search import SearchConfig, run_search
from atb.train import TrainConfig, Trainer, further_train, read_log

pytestmark = [
    pytest.mark.slow,
    pytest.mark.requires_data,  # the local corpus, GLUE and SQuAD
    # A GPU-only path taken on the CPU (torch.autocast("cuda"), a CUDA GradScaler) only warns and goes on in fp32:
    # here it fails.
    pytest.mark.filterwarnings("error:.*CUDA is not available"),
]

SCALES = ("base", "paper")
OBJECTIVES = ("mlm", "kd")
CASES = [pytest.param(scale, objective, id=f"{scale}-{objective}") for scale in SCALES for objective in OBJECTIVES]

# Overrides of the scale's `pretrain` section (one-shot training) and of its `develop.train` (further training).
# Everything not listed is the scale's: space "paper" (the paper-size SuperBERT), lr, weight decay, dropout,
# sampler, checkpoint_every and keep_checkpoints (a run checkpoints at its last step whatever the cadence), and
# precision "auto" (bf16 autocast where the CPU has it, else fp32: weights stay fp32 either way).
TRAIN = dict(
    steps=2,  # 100k (base) / 400k (paper) one-shot, 20k / 100k further-training steps: two run every path of a step
    batch_size=2,  # 256 sequences of the paper-size SuperBERT per step are a GPU's work, minutes on this CPU
    max_seq_len=32,  # 128 tokens: four times the work of every layer for no path that 32 does not take
    max_documents=20,  # the whole local corpus (~76 MB of text) takes minutes to tokenize and pack on a CPU
    warmup_steps=1,  # the scale's 10k (1k for base further training) warm-up steps would leave both steps at lr ~0,
    # where a broken update would go unseen
    teacher="minilm-offline",  # ELECTRA-base (the scale's KD teacher) is on the hub, unreachable offline
)

# The search's `paper` fitness fine-tunes every candidate with the scale's budgets (`finetune` section with
# `search.paper.budgets` over it: 20k examples (base) or whole train sets (paper), one epoch). Only the amount of
# data shrinks: one optimizer step (batch_size 32 >= 8 examples, the scale's one epoch) and an 8-question dev
# set; the scale's sequence lengths, SQuAD windows (384 tokens, stride 128), learning rates and batch size stay.
# MNLI is not available offline: the fitness substitutes SST-2 by itself, as the notebooks do; both are shrunk
# so that the test is as fast with the hub's MNLI.
PAPER_FITNESS_BUDGET = {task: {"max_train_examples": 8, "max_eval_examples": 8}
                        for task in ("mnli", "sst2", "squad_v1.1")}

# Fine-tuning the developed model (the scale's `finetune` section): the same shrinking of the data, nothing else
# (8 examples fit one batch of the scale's 32, so each of the scale's 3 epochs is one optimizer step).
FINETUNE = dict(max_train_examples=8,  # full train sets (393k MNLI pairs, 88k SQuAD questions): hours on a CPU
                max_eval_examples=8)  # full dev sets: minutes; 8 examples still go through every metric
GLUE_TASK = "rte"  # a sentence-pair task available offline (MNLI, the search's, is not)

# CPU-seconds the search may spend on its own work (enumerating the grid with the predictor, selection) in one
# generation of one constraint. Measured on the shared 2-core CPU: KD (1.5 M grid points) 6-7 s, MLM (0.37 M)
# 1.3-2 s. Enumerating the uncoarsened KD space (47 M points) would take ~30 times as long and fail this.
GRID_CPU_SECONDS = 60.0


# ------------------------------------------------------------------------------------------ latency
class SyntheticLatency:
    """A stand-in latency predictor (``predict(archs) -> ms``): FLOPs of a 128-token forward pass plus a fixed
    cost per layer and per head, the terms of ``atb.latency_predictor.AnalyticPredictor``, with coefficients
    that put BERT-base near the ~250-280 ms measured on this CPU (the released KD-S4 then gets 18.6x, S1 6.2x).
    It records what the search asked it, so the test can check that the whole coarsened grid was enumerated, and
    check every constraint's window on it."""

    MS_PER_GFLOP, MS_PER_LAYER, MS_PER_LAYER_HEAD, MS_INTERCEPT = 11.0, 0.8, 0.1, 1.0

    def __init__(self) -> None:
        self.archs: list[np.ndarray] = []
        self.latency_ms: list[np.ndarray] = []

    @classmethod
    def ms(cls, fields: np.ndarray) -> np.ndarray:
        layers, hidden, ffn, heads, qkv = fields.T
        tokens = 128.0
        gflops = layers * 2 * (4 * tokens * hidden * qkv + 2 * tokens * hidden * ffn + 2 * tokens ** 2 * qkv) / 1e9
        return (cls.MS_PER_GFLOP * gflops + cls.MS_PER_LAYER * layers + cls.MS_PER_LAYER_HEAD * layers * heads
                + cls.MS_INTERCEPT)

    @staticmethod
    def fields(archs) -> np.ndarray:
        return np.array([(a.layers, a.hidden, a.ffn, a.heads, a.qkv) for a in archs], dtype=np.float64).reshape(-1, 5)

    def predict(self, archs) -> np.ndarray:
        fields = self.fields(archs)
        ms = self.ms(fields)
        self.archs.append(fields)
        self.latency_ms.append(ms)
        return ms

    def reset(self) -> None:
        self.archs.clear()
        self.latency_ms.clear()


BERT_BASE_MS = float(SyntheticLatency.ms(SyntheticLatency.fields([Arch(12, 768, 3072, 12, 768)]))[0])  # ~270 ms


# -------------------------------------------------------------------------------------- the pipeline
@dataclasses.dataclass
class Pipeline:
    """The steps already run for one (scale, objective), computed on first need and shared by the tests."""

    root: Path
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # CPU-seconds per step
    trained: dict | None = None
    searched: dict | None = None
    developed: dict | None = None


class Timer:
    def __init__(self, timings: dict[str, float], name: str):
        self.timings, self.name = timings, name

    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.name] = round(time.process_time() - self.cpu, 1)
        self.timings[f"{self.name}_wall"] = round(time.perf_counter() - self.wall, 1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine a second one mostly spins (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipelines():
    """One Pipeline per (scale, objective); the checkpoints (~1 GB per SuperPLM) are deleted at the end."""
    root = Path(tempfile.mkdtemp(prefix="atb-scales-"))
    made: dict[tuple[str, str], Pipeline] = {}

    def get(scale: str, objective: str) -> Pipeline:
        if (scale, objective) not in made:
            made[(scale, objective)] = Pipeline(root / f"{scale}-{objective}")
        return made[(scale, objective)]

    try:
        yield get
    finally:
        for (scale, objective), pipeline in made.items():
            cpu = sum(v for k, v in pipeline.timings.items() if not k.endswith("_wall"))
            print(f"\n{scale}-{objective}: {cpu:.1f} CPU-s {pipeline.timings}")
        shutil.rmtree(root, ignore_errors=True)


def one_shot(pipeline: Pipeline, scale: str, objective: str) -> dict:
    """Train the scale's SuperPLM for two steps (``TRAIN`` overrides); keeps only what later steps need."""
    if pipeline.trained is None:
        scale_cfg = TrainConfig.load(scale, objective)
        cfg = TrainConfig.load(scale, objective, **TRAIN)
        with Timer(pipeline.timings, "one_shot"):
            trainer = Trainer(cfg, pipeline.root / "superplm")
            result = trainer.run()
        pipeline.trained = {
            "scale_cfg": scale_cfg, "cfg": cfg, "run_dir": result.run_dir, "steps": result.steps,
            "final_loss": result.final_loss, "archs": result.archs, "log": read_log(result.run_dir),
            "space": trainer.space, "largest": Arch(trainer.model.config.num_hidden_layers,
                                                    trainer.model.config.hidden_size,
                                                    trainer.model.config.intermediate_size,
                                                    trainer.model.config.num_attention_heads,
                                                    trainer.model.config.qkv_size),
            "dtypes": {p.dtype for p in trainer.model.parameters()},
        }
        del trainer, result  # ~1 GB of weights and AdamW state
    return pipeline.trained


def search_generation(pipeline: Pipeline, scale: str, objective: str) -> dict:
    """One generation of the scale's evolutionary search for its last (tightest) speedup constraint."""
    if pipeline.searched is None:
        trained = one_shot(pipeline, scale, objective)
        cfg = SearchConfig.load(scale, population=2,  # the scale's 25 candidates per generation: fine-tunings
                                generations=1,  # the scale's 10: the first generation shows the path; the
                                # later ones only evolve (covered at every scale by tests/test_search.py)
                                paper={"budgets": PAPER_FITNESS_BUDGET})
        scale_cfg = SearchConfig.load(scale)
        space = SearchSpace.preset(trained["cfg"].space, objective)
        predictor = SyntheticLatency()
        speedups = cfg.constraints(objective, space, predictor, BERT_BASE_MS)
        predictor.reset()  # (explicit speedups do not ask the predictor; quantile ones would)
        fitness = cfg.make_fitness(trained["run_dir"] / "final")
        with Timer(pipeline.timings, "search"):
            result = run_search(space, fitness, predictor, speedups[-1], BERT_BASE_MS, cfg,
                                pipeline.root / "search.jsonl", method="evolved", seed=0, progress=False)
        pipeline.timings["search_overhead"] = round(result.overhead_cpu_seconds, 1)  # mostly the grid
        pipeline.searched = {"cfg": cfg, "scale_cfg": scale_cfg, "space": space, "speedups": speedups,
                             "result": result, "grid": np.concatenate(predictor.archs),
                             "grid_ms": np.concatenate(predictor.latency_ms)}
        del fitness  # its loaded SuperPLM
    return pipeline.searched


def develop(pipeline: Pipeline, scale: str, objective: str) -> dict:
    """Further train the search's pick with the scale's develop settings, then fine-tune it on GLUE and SQuAD."""
    if pipeline.developed is None:
        trained = one_shot(pipeline, scale, objective)
        arch = search_generation(pipeline, scale, objective)["result"].best_arch
        develop_cfg = DevelopConfig.load(scale)
        scale_cfg = develop_cfg.train_config_for(objective, "evolved")
        cfg = dataclasses.replace(scale_cfg, **TRAIN)
        with Timer(pipeline.timings, "further_train"):
            record = further_train(trained["run_dir"] / "final", arch, cfg, pipeline.root / "develop")
        finetune = {}
        for task in (GLUE_TASK, "squad_v1.1"):
            ft_cfg = dataclasses.replace(FinetuneConfig.load(scale, task), **FINETUNE)
            with Timer(pipeline.timings, f"finetune_{task}"):
                if task == "squad_v1.1":
                    finetune[task] = finetune_squad(record["model_dir"], "v1.1", ft_cfg)
                else:
                    finetune[task] = finetune_glue(record["model_dir"], task, ft_cfg)
        pipeline.developed = {"develop_cfg": develop_cfg, "scale_cfg": scale_cfg, "cfg": cfg, "arch": arch,
                              "record": record, "finetune": finetune}
    return pipeline.developed


def checkpoint_steps(run_dir: Path) -> list[int]:
    """The steps of a run's checkpoints (``checkpoints/step-000002/`` -> 2)."""
    return sorted(int(p.name.removeprefix("step-")) for p in (run_dir / "checkpoints").glob("step-*") if p.is_dir())


# -------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("scale", SCALES)
def test_every_section_of_the_scale_loads(scale):
    loaded = check_config(scale)
    assert loaded["search"].scale == scale and loaded["develop"].scale == scale
    for objective in OBJECTIVES:
        assert loaded["pretrain"][objective].space == "paper", "base and paper train the paper-size SuperBERT"


@pytest.mark.parametrize("scale", SCALES)
def test_a_misspelled_search_grid_step_fails_check_config(tmp_path, scale):
    """Found by this module: ``search.steps`` keys were checked only when the search ran, i.e. at ``base`` after
    the SuperPLMs' 100k GPU steps; ``check_config`` (run before any notebook) now refuses them."""
    settings = yaml.safe_load(config.load(scale).path.read_text())
    settings["search"]["steps"] = {"hidden": 16, "fnn": 32}
    path = tmp_path / f"{scale}.yaml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ValueError, match="steps.*fnn"):
        check_config(path)


@pytest.mark.parametrize(("scale", "objective"), CASES)
def test_one_shot_training_of_the_paper_size_superbert(pipelines, scale, objective):
    trained = one_shot(pipelines(scale, objective), scale, objective)
    cfg, scale_cfg, run_dir = trained["cfg"], trained["scale_cfg"], trained["run_dir"]
    # the run is the scale's config with only the CPU/offline overrides
    assert cfg == dataclasses.replace(scale_cfg, **TRAIN) and cfg.scale == scale and cfg.precision == "auto"
    if objective == "kd":
        assert scale_cfg.teacher != "minilm-offline", "the scale names a hub teacher: the test substitutes it"
    assert trained["largest"] == SearchSpace.preset("paper", objective).largest() == trained["space"].largest()
    assert trained["dtypes"] == {torch.float32}, "autocast or not, the master weights stay fp32"

    assert trained["steps"] == 2 and len(trained["archs"]) == 2
    assert all(trained["space"].contains(Arch.parse(a)) for step in trained["archs"] for a in step)
    assert math.isfinite(trained["final_loss"]) and all(math.isfinite(r["loss"]) for r in trained["log"])
    assert [r["step"] for r in trained["log"]] == [1, 2] and trained["log"][1]["lr"] > 0

    assert checkpoint_steps(run_dir) == [2]
    with safe_open(run_dir / "final" / "model.safetensors", "pt") as weights:
        assert weights.get_tensor(next(iter(weights.keys()))).dtype == torch.float32
    supernet = SuperBert.from_pretrained(run_dir / "final")
    assert supernet.config.search_space() == trained["space"]


@pytest.mark.parametrize(("scale", "objective"), CASES)
def test_search_generation(pipelines, scale, objective):
    searched = search_generation(pipelines(scale, objective), scale, objective)
    cfg, scale_cfg, result = searched["cfg"], searched["scale_cfg"], searched["result"]
    scale_budgets = scale_cfg.paper.get("budgets", {})
    assert set(scale_budgets) <= set(PAPER_FITNESS_BUDGET), "the scale budgets a task this test does not shrink"
    budgets = {task: {**scale_budgets.get(task, {}), **budget} for task, budget in PAPER_FITNESS_BUDGET.items()}
    assert cfg == dataclasses.replace(scale_cfg, population=2, generations=1, paper={**scale_cfg.paper, "budgets": budgets})
    assert cfg.fitness == "paper" and cfg.steps, "base and paper search with fine-tuning, on a coarsened grid"

    # the grid: the scale's steps, enumerated whole, within the CPU bound
    grid_space = cfg.search_space(searched["space"])
    assert len(searched["grid"]) == len(grid_space) < len(searched["space"])
    for name, step in cfg.steps.items():
        column = ("layers", "hidden", "ffn", "heads", "qkv").index(name)
        assert np.all((searched["grid"][:, column] - getattr(grid_space, name).low) % step == 0)
    assert result.overhead_cpu_seconds < GRID_CPU_SECONDS, result.overhead_cpu_seconds

    # every constraint of the scale has a population of candidates on that grid, not only the one searched
    assert searched["speedups"] == [float(s) for s in scale_cfg.speedups[objective]]
    for speedup in searched["speedups"]:
        feasible = int(is_feasible(searched["grid_ms"], BERT_BASE_MS, speedup).sum())
        assert feasible >= scale_cfg.population, (speedup, feasible)

    # one generation of the scale's fitness: the candidates fine-tuned on the scale's tasks (MNLI substituted)
    assert result.speedup == searched["speedups"][-1] and result.fitness["name"] == "paper"
    assert result.fitness["finetune_scale"] == scale
    assert len(result.candidates) == cfg.population and len({c.arch for c in result.candidates}) == cfg.population
    low, high = result.window_ms
    for candidate in result.candidates:
        assert grid_space.contains(candidate.arch) and low <= candidate.latency_ms <= high
        assert math.isfinite(candidate.fitness)
        tasks = candidate.details["tasks"]
        assert set(tasks) == {"mnli", "squad_v1.1"}
        assert {t["task_used"] for t in tasks.values()} <= set(PAPER_FITNESS_BUDGET)
        assert tasks["mnli"]["task_used"] == "mnli" or tasks["mnli"]["substitutes"] == "mnli"
        assert candidate.fitness == pytest.approx(np.mean([t["score"] for t in tasks.values()]))
    assert result.best_fitness == max(c.fitness for c in result.candidates)


@pytest.mark.parametrize(("scale", "objective"), CASES)
def test_further_training_and_finetuning_of_the_searched_model(pipelines, scale, objective):
    developed = develop(pipelines(scale, objective), scale, objective)
    develop_cfg, scale_cfg, cfg, record = (developed[k] for k in ("develop_cfg", "scale_cfg", "cfg", "record"))
    assert scale_cfg.steps == develop_cfg.steps and scale_cfg.objective == objective
    assert cfg == dataclasses.replace(scale_cfg, **TRAIN)
    assert record["arch"] == str(developed["arch"]) and record["steps"] == 2 and math.isfinite(record["final_loss"])
    model_dir = Path(record["model_dir"])
    assert (model_dir / "config.json").exists() and checkpoint_steps(model_dir.parent) == [2]

    for task, result in developed["finetune"].items():
        assert result["score"] is not None, result.get("reason")
        assert math.isfinite(result["score"]) and math.isfinite(result["train_loss"]), result
        assert result["train_examples"] == FINETUNE["max_train_examples"]
        budget = dataclasses.replace(FinetuneConfig.load(scale, task), **FINETUNE)
        assert result["config"] == dataclasses.asdict(budget) and result["config"]["scale"] == scale
