"""Do AutoTinyBERT's speedups survive the runtimes tiny BERTs are deployed with? (beyond the paper)

The paper times its models in fp32 eager PyTorch (notebook 02, :mod:`atb.latency`). Deployed models run elsewhere:
in bf16 on CPUs that multiply it natively, exported to ONNX Runtime (fp32, or int8 with dynamic quantization), or to
OpenVINO. A runtime fuses operators and quantizes matrices, so the shapes it favours may differ: many small heads,
deep-narrow against shallow-wide. This module measures the speedup column under each :data:`RUNTIMES` entry.

* **Export.** Each encoder (``AtbBertModel`` with its pooler, random weights: the work does not depend on them) is
  exported once with ``torch.onnx.export`` (the maintained exporter, ``torch.export`` based; it handles
  ``d_qkv != d_m``) at the protocol's fixed shape, batch 1 × 128 tokens; int8 is ONNX Runtime's
  ``quantize_dynamic`` of that file (weights int8 per tensor, activations quantized on the fly).
* **Checked.** Every runtime's output is compared with PyTorch fp32 on the protocol's inputs before it is timed
  (:func:`check_outputs`): fp32 runtimes within :data:`FP32_TOLERANCE` (max abs difference), bf16 and int8 by the
  cosine similarity of the last hidden states (:data:`LOW_PRECISION_COSINE`).
* **Timed** with the paper's protocol (one thread, batch 1, 128 tokens, warm-up dropped, the protocol's statistic of
  the timed runs), on the **wall clock** (OpenVINO may run a request on a thread of its own, which a thread's CPU
  time would miss), all models of one runtime in turns with BERT-base (:func:`atb.latency.time_interleaved`), so a
  change of the machine's load hits a model and its reference alike. The table is timed ``rounds`` times; a speedup
  is the median over rounds and its spread the range.
* **Compared.** Per runtime, Spearman's ρ of the published models' speedups against the paper's, with an interval
  from resampling the models (:func:`atb.stats.spearman_interval`).
* **What int8 costs** (:func:`int8_predictions`, :func:`int8_cost`): a developed model fine-tuned exactly as notebook
  05 fine-tunes it (its config and seed, :func:`atb.finetune.train_glue`), then scored on the dev subset by PyTorch
  fp32 (as notebook 05 scores it) and by its int8 ONNX Runtime export; int8 − fp32 paired over seeds and examples.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import config, engine
from .data import GLUE_TASK_INFO
from .finetune import EVAL_BATCH_SIZE, FinetuneConfig, glue_features, predict, train_glue
from .latency import Protocol, build_model, example_inputs, num_threads, time_interleaved
from .progress import bar as progress_bar
from .metrics import glue_score_fn
from .space import Arch
from .stats import Interval, TaskRuns, paired_bootstrap, spearman_interval

RUNTIMES: tuple[str, ...] = ("pytorch-fp32", "pytorch-bf16", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32")
FP32_TOLERANCE = 1e-4  # max |runtime - PyTorch fp32| of the last hidden state (LayerNorm outputs, order 1)
LOW_PRECISION_COSINE = 0.99  # bf16 / int8: cosine similarity of the last hidden states, flattened
REFERENCE = "BERT-base"  # the model every speedup is over, timed under the same runtime


def available(runtime: str) -> bool:
    """Whether ``runtime``'s package is installed (PyTorch always is)."""
    check_runtime(runtime)
    package = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(runtime.split("-")[0])
    if package is None:
        return True
    try:
        __import__(package)
    except ImportError:
        return False
    return True


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    return runtime


@dataclass(frozen=True)
class DeploymentSettings:
    """Per-scale settings of notebook 11 (the ``deployment`` section of ``configs/<scale>.yaml``); the timing protocol
    is the ``latency`` section's (:func:`deployment_protocol`)."""

    scale: str
    runtimes: tuple[str, ...] = RUNTIMES
    rounds: int = 3  # times the whole table is timed: a speedup's spread is its range over rounds
    zoo: tuple[str, ...] | None = None  # the zoo models timed (names); None: every published one
    developed: bool = True  # also time the study's developed models (notebook 04's record; int8's accuracy uses them all)

    def __post_init__(self) -> None:
        for runtime in self.runtimes:
            check_runtime(runtime)
        if self.rounds < 1:
            raise ValueError(f"deployment.rounds must be >= 1, got {self.rounds}")

    @classmethod
    def load(cls, scale: str | Path) -> DeploymentSettings:
        return config.load_section(cls, scale, "deployment", tuples=("runtimes", "zoo"))


# ---------------------------------------------------------------------------------------------- export
@contextlib.contextmanager
def _quiet():
    """Silence the exporter's and the quantizer's advice (torchvision's absence; "consider pre-processing"), which
    would otherwise fill the executed notebook; errors still surface."""
    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], outputs: Sequence[str],
                path: str | Path) -> Path:
    """``model`` (called as ``model(**inputs)``) as an ONNX file at ``inputs``' fixed shapes, its inputs and ``outputs``
    named; reused when ``path`` exists."""
    path = Path(path)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with _quiet():
        program = torch.onnx.export(model, (), kwargs=dict(inputs), dynamo=True, verbose=False,
                                    input_names=list(inputs), output_names=list(outputs))
    program.save(str(tmp))
    tmp.replace(path)
    return path


def quantize_int8(onnx_path: str | Path, path: str | Path) -> Path:
    """ONNX Runtime's dynamic quantization of ``onnx_path``: int8 weights, activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    if not path.is_file():
        tmp = path.with_suffix(".tmp.onnx")
        with _quiet():
            quantize_dynamic(str(onnx_path), str(tmp), weight_type=QuantType.QInt8)
        tmp.replace(path)
    return path


# -------------------------------------------------------------------------------------------- sessions
Session = Callable[..., np.ndarray]  # session(ids, attention_mask=mask) -> the last hidden state


def _torch_session(model: torch.nn.Module) -> Session:
    def run(ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(ids, attention_mask=attention_mask).last_hidden_state.float().numpy()
    return run


def _onnxruntime(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnxruntime_session(path: Path, threads: int) -> Session:
    session = _onnxruntime(path, threads)

    def run(ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        return session.run(["last_hidden_state"], {"input_ids": ids.numpy(), "attention_mask": attention_mask.numpy()})[0]
    return run


def _openvino_session(path: Path, threads: int) -> Session:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "INFERENCE_PRECISION_HINT": "f32",
                                                          "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    output = compiled.output("last_hidden_state")

    def run(ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        return request.infer({"input_ids": ids.numpy(), "attention_mask": attention_mask.numpy()})[output]
    return run


def session(runtime: str, model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], workdir: str | Path,
            name: str, protocol: Protocol) -> Session:
    """``model`` (fp32, eval) ready to run under ``runtime``; ONNX files are written to (and reused from) ``workdir``
    as ``<name>.onnx`` / ``<name>.int8.onnx``."""
    check_runtime(runtime)
    if runtime == "pytorch-fp32":
        return _torch_session(model)
    if runtime == "pytorch-bf16":  # deployed in bf16: the weights themselves are cast, not autocast
        return _torch_session(copy.deepcopy(model).to(torch.bfloat16))
    onnx_path = export_onnx(model, dict(zip(("input_ids", "attention_mask"), inputs)),
                            ("last_hidden_state", "pooler_output"), Path(workdir) / f"{name}.onnx")
    if runtime == "onnxruntime-fp32":
        return _onnxruntime_session(onnx_path, protocol.threads)
    if runtime == "onnxruntime-int8":
        return _onnxruntime_session(quantize_int8(onnx_path, Path(workdir) / f"{name}.int8.onnx"), protocol.threads)
    return _openvino_session(onnx_path, protocol.threads)


def check_outputs(runtime: str, run: Session, model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """How ``run``'s last hidden state agrees with PyTorch fp32 on ``inputs``: ``max_abs`` and ``cosine``; a
    ``ValueError`` naming the runtime if it is outside the runtime's tolerance (module docstring)."""
    ids, mask = inputs
    with torch.inference_mode():
        expected = model(ids, attention_mask=mask).last_hidden_state.numpy().ravel().astype(np.float64)
        got = np.asarray(run(ids, attention_mask=mask), dtype=np.float64).ravel()
    max_abs = float(np.abs(got - expected).max())
    cosine = float(got @ expected / (np.linalg.norm(got) * np.linalg.norm(expected)))
    fp32 = runtime.endswith("fp32")
    ok = max_abs <= FP32_TOLERANCE if fp32 else cosine >= LOW_PRECISION_COSINE
    if not ok:
        bound = f"max |difference| <= {FP32_TOLERANCE}" if fp32 else f"cosine >= {LOW_PRECISION_COSINE}"
        raise ValueError(f"{runtime}: output differs from PyTorch fp32 (max |difference| {max_abs:.2e}, cosine "
                         f"{cosine:.5f}); expected {bound}")
    return {"max_abs": max_abs, "cosine": cosine, "tolerance": {"max_abs": FP32_TOLERANCE} if fp32 else
            {"cosine": LOW_PRECISION_COSINE}}


# ---------------------------------------------------------------------------------------------- timing
def deployment_protocol(protocol: Protocol) -> Protocol:
    """The study's protocol on the wall clock, without its reference architecture: here every model of a runtime is
    timed in turns with BERT-base under that runtime, which plays the reference's part (module docstring)."""
    return dataclasses.replace(protocol, clock="wall", reference=None, max_rsd=None, retries=0)


@dataclass
class DeploymentTable:
    """Latencies per runtime, model and round (``times``: ms), and each runtime's output check."""

    times: pd.DataFrame  # columns: runtime, model, round, latency_ms
    checks: dict[str, dict[str, dict]]  # runtime -> model -> check_outputs(...)
    protocol: Protocol
    skipped: dict[str, str]  # runtime -> why it was not timed

    def speedups(self) -> pd.DataFrame:
        """Per runtime and model: ``latency_ms`` (median over rounds), ``speedup`` over BERT-base under the same
        runtime (median over rounds of each round's ratio), its ``low`` / ``high`` over rounds."""
        rows = []
        for (runtime, rnd), group in self.times.groupby(["runtime", "round"]):
            base = float(group.set_index("model").loc[REFERENCE, "latency_ms"])
            rows += [{"runtime": runtime, "round": rnd, "model": m, "latency_ms": t, "speedup": base / t}
                     for m, t in zip(group.model, group.latency_ms)]
        per_round = pd.DataFrame(rows)
        out = per_round.groupby(["runtime", "model"], sort=False).agg(
            latency_ms=("latency_ms", "median"), speedup=("speedup", "median"), low=("speedup", "min"),
            high=("speedup", "max"), rounds=("round", "count")).reset_index()
        order = {r: i for i, r in enumerate(RUNTIMES)}
        return out.sort_values("runtime", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def time_runtimes(models: Mapping[str, Arch], workdir: str | Path, protocol: Protocol, *,
                  runtimes: Iterable[str] = RUNTIMES, rounds: int = 3, progress: bool = True) -> DeploymentTable:
    """Time ``models`` (name -> architecture; :data:`REFERENCE` among them) under each of ``runtimes`` that is
    installed, ``rounds`` times (module docstring)."""
    if REFERENCE not in models:
        raise ValueError(f"models must include {REFERENCE!r}: every speedup is over it")
    protocol = deployment_protocol(protocol)
    inputs = example_inputs(protocol)
    torch.manual_seed(0)
    encoders = {name: build_model(arch, pooler=protocol.pooler) for name, arch in models.items()}
    rows, checks, skipped = [], {}, {}
    for runtime in progress_bar(list(runtimes), desc="deployment runtimes", disable=not progress):
        if not available(check_runtime(runtime)):
            skipped[runtime] = "not installed"
            continue
        with num_threads(protocol.threads):
            sessions = {name: session(runtime, model, inputs, workdir, name, protocol) for name, model in encoders.items()}
            checks[runtime] = {name: check_outputs(runtime, run, encoders[name], inputs) for name, run in sessions.items()}
            for rnd in range(rounds):
                times = time_interleaved(sessions, inputs, protocol.warmup, protocol.runs)
                rows += [{"runtime": runtime, "model": name, "round": rnd,
                          "latency_ms": protocol.summary(tuple(1e3 * s for s in t["wall"]))} for name, t in times.items()]
        del sessions
    return DeploymentTable(pd.DataFrame(rows), checks, protocol, skipped)


def ranking_agreement(speedups: pd.DataFrame, paper: Mapping[str, float], *, seed: int = 0) -> dict[str, dict]:
    """Per runtime: Spearman's ρ of the speedups of the models in ``paper`` (name -> published speedup) against the
    published ones, with a 95 % interval from resampling the models."""
    out = {}
    for runtime, group in speedups.groupby("runtime", sort=False):
        table = group.set_index("model").loc[list(paper)]
        out[runtime] = spearman_interval(table.speedup.to_numpy(), np.array(list(paper.values())), seed=seed).to_dict()
    return out


def machine_record() -> dict:
    """The CPU the table was timed on and what it computes natively (bf16 is emulated where it does not)."""
    described = engine.describe("auto")
    return {k: described[k] for k in ("cpu", "isa", "native_bf16", "cpu_capability", "torch")}


def versions() -> dict[str, str | None]:
    """The runtimes' package versions (None: not installed)."""
    out: dict[str, str | None] = {"torch": torch.__version__}
    for package in ("onnx", "onnxruntime", "openvino"):
        try:
            out[package] = __import__(package).__version__
        except ImportError:
            out[package] = None
    return out



def record(table: DeploymentTable, agreement: Mapping[str, dict], archs: Mapping[str, Arch]) -> dict:
    """The ``runtimes`` part of notebook 11's record: per runtime, per model its latency, speedup over BERT-base under
    that runtime and the speedup's spread over rounds, the output check, and the ranking agreement with the paper."""
    speedups = table.speedups()
    out = {}
    for runtime, group in speedups.groupby("runtime", sort=False):
        out[runtime] = {
            "models": {r.model: {"arch": str(archs[r.model]), "latency_ms": float(r.latency_ms),
                                 "speedup": float(r.speedup), "spread": [float(r.low), float(r.high)],
                                 "rounds": int(r.rounds), "check": table.checks[runtime][r.model]}
                       for r in group.itertuples()},
            "spearman_vs_paper": agreement.get(runtime),
        }
    return out


def plot_speedups(speedups: pd.DataFrame, paper: Mapping[str, float], title: str):
    """Speedup over BERT-base under each runtime (log scale, the range over rounds as error bars) of every model, the
    published ones ordered by the paper's speedup, with the paper's own value as a black tick."""
    import matplotlib.pyplot as plt

    from .plots import legend_beside, speedup_axis

    order = [m for m in sorted(paper, key=paper.get)] + [m for m in dict.fromkeys(speedups.model)
                                                          if m not in paper and m != REFERENCE]
    runtimes = list(dict.fromkeys(speedups.runtime))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(order) + 3), 4.5), layout="constrained")
    width = 0.8 / len(runtimes)
    for i, runtime in enumerate(runtimes):
        rows = speedups[speedups.runtime == runtime].set_index("model").reindex(order)
        x = np.arange(len(order)) + (i - (len(runtimes) - 1) / 2) * width
        ax.errorbar(x, rows.speedup, yerr=[rows.speedup - rows.low, rows.high - rows.speedup], fmt="o", ms=4,
                    capsize=2, label=runtime)
    published = [i for i, m in enumerate(order) if m in paper]
    ax.scatter(published, [paper[order[i]] for i in published], marker="_", s=300, color="black",
               label="paper (PyTorch fp32, 2021)")
    speedup_axis(ax, [*speedups[speedups.model.isin(order)].low, *speedups[speedups.model.isin(order)].high,
                      *paper.values()], "speedup over BERT-base (same runtime)", axis="y")
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.set_title(title)
    legend_beside(ax)
    return fig


# ----------------------------------------------------------------------------------------- int8's accuracy
class _Logits(torch.nn.Module):
    """A sequence classifier as a function of (ids, mask, segments) -> logits, for export."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _padded(features, length: int) -> list[dict[str, np.ndarray]]:
    """Every feature as ONNX inputs of batch 1 padded to ``length`` (the export's fixed shape)."""
    rows = []
    for ids, types in zip(features["input_ids"], features["token_type_ids"]):
        pad = length - len(ids)
        rows.append({"input_ids": np.array([ids + [0] * pad], dtype=np.int64),
                     "attention_mask": np.array([[1] * len(ids) + [0] * pad], dtype=np.int64),
                     "token_type_ids": np.array([types + [0] * pad], dtype=np.int64)})
    return rows


def int8_predictions(model_dir: str | Path, task: str, cfg: FinetuneConfig, workdir: str | Path) -> dict:
    """``model_dir`` fine-tuned on ``task`` under ``cfg`` (notebook 05's way), its dev predictions by PyTorch fp32 and
    by its int8 ONNX Runtime export (one thread, inputs padded to ``cfg.max_seq_len``): ``{"labels", "fp32", "int8",
    "split", "seconds"}``. ``workdir`` keeps the exported files."""
    started = time.perf_counter()
    if GLUE_TASK_INFO[task].is_regression:
        raise ValueError(f"int8_predictions scores classification tasks, not {task!r}")
    run = train_glue(model_dir, task, cfg)
    split, data = next(iter(run.evals.items()))
    features = glue_features(data, task, cfg, run.tokenizer, labels=False)
    fp32 = np.stack(predict(run.model, features, run.collate, EVAL_BATCH_SIZE)["logits"]).argmax(-1)
    example = {k: torch.from_numpy(v) for k, v in _padded(features.select([0]), cfg.max_seq_len)[0].items()}
    path, int8_path = Path(workdir) / "classifier.onnx", Path(workdir) / "classifier.int8.onnx"
    for old in (path, int8_path):  # a new fine-tuning: never an older export
        old.unlink(missing_ok=True)
    export_onnx(_Logits(run.model.float().eval()), example, ("logits",), path)
    session = _onnxruntime(quantize_int8(path, int8_path), 1)
    int8 = np.array([session.run(["logits"], feeds)[0][0].argmax() for feeds in _padded(features, cfg.max_seq_len)])
    return {"split": split, "labels": np.asarray(data["label"]), "fp32": fp32, "int8": int8,
            "seconds": round(time.perf_counter() - started, 1)}


def int8_study(model_dirs: Mapping[str, str | Path], task: str, configs: Mapping[str, Mapping[int, FinetuneConfig]],
               workdir: str | Path) -> dict[str, dict[int, dict]]:
    """:func:`int8_predictions` of every model (name -> directory) with each of its seeds' configs (``configs[name]``:
    seed -> config; each model at its own learning rate where notebook 05 chose one per model), exported under
    ``workdir/<name>/seed<s>``: ``{name: {seed: predictions}}``, the input of :func:`int8_cost`."""
    jobs = [(name, seed) for name in model_dirs for seed in configs[name]]
    runs: dict[str, dict[int, dict]] = {name: {} for name in model_dirs}
    for name, seed in progress_bar(jobs, desc=f"int8 on {task}"):
        runs[name][seed] = int8_predictions(model_dirs[name], task, configs[name][seed],
                                            Path(workdir) / name / f"seed{seed}")
    return runs


def int8_cost(task: str, runs: Mapping[str, Mapping[int, dict]], *, n_boot: int = 1000) -> dict:
    """int8 − fp32 on ``task``'s score, pooled over models (``runs[model][seed]``: :func:`int8_predictions`), with a
    95 % interval from resampling seeds and dev examples (:func:`atb.stats.paired_bootstrap`; the models share their
    dev examples); per model beside it."""
    def task_runs(seeds: Mapping[int, dict]) -> TaskRuns:
        first = next(iter(seeds.values()))
        return TaskRuns(glue_score_fn(task), [seeds[s]["int8"] for s in sorted(seeds)],
                        [seeds[s]["fp32"] for s in sorted(seeds)], first["labels"], key=task)

    pooled: Interval = paired_bootstrap([task_runs(seeds) for seeds in runs.values()], n_boot=n_boot)
    return {"task": task, "difference": pooled.difference, "ci95": list(pooled.ci95), "n": pooled.n,
            "n_boot": pooled.n_boot, "agreement": float(np.mean([np.mean(r["int8"] == r["fp32"]) for seeds in
                                                                  runs.values() for r in seeds.values()])),
            "models": {name: paired_bootstrap([task_runs(seeds)], n_boot=n_boot).to_dict()
                       for name, seeds in runs.items()}}
