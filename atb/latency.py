"""CPU latency of an architecture, measured the paper's way, and the latency window of the search.

Protocol (notes §5): CPU, **one thread**, batch 1, sequence length 128; each architecture is run a few
times, the first run(s) are dropped as warm-up and the rest are timed. The paper averages the timed runs;
we record the mean *and* the median and call the **median** "the latency", because a shared machine
produces one-sided outliers that drag a mean but not a median.

Every run is timed on two clocks: wall-clock time (what the paper reports) and the **CPU time of the
timing thread** (``time.thread_time``). With one thread and nothing else running they agree to about 1 %;
on a shared machine (other processes on 2 cores) the wall clock also counts the time the scheduler gives
to others, which made BERT-base look 2x slower in our runs, while the CPU time moved by ~10 % (cache
sharing). The latency is therefore the CPU time by default (``Protocol.clock = "cpu"``, one thread only);
``clock: wall`` (``latency.protocol`` in ``configs/<scale>.yaml``) gives the paper's clock on a quiet machine. Both are
recorded.

What is timed is the standalone encoder ``AtbBertModel`` (embeddings, ``l`` layers, **pooler**) in eval
mode under ``torch.inference_mode``, called with an all-ones attention mask: the network a deployed
sentence classifier runs, minus its one-row classifier. The pooler is one d_m x d_m product on the [CLS]
vector, well under 1 % of any model here, but it is part of the deployable model, so it is in.

A speedup constraint ``s`` means ``target = latency(BERT-base) / s`` and a candidate is feasible when
``0.85 * target <= latency <= 1.1 * target`` (both ends inclusive). BERT-base is always measured with the
same protocol on the same machine as the models it is compared with, never a hard-coded constant (pitfall 7
of the official code): it is a row of the study's sweep CSV (:func:`zoo_sweep`), timed beside the zoo.

**The sweep is an input of the study.** Sweeps append to a CSV one flushed row at a time; every row records
the protocol and the machine (CPU model, core count, ISA, torch version; the thread count is the protocol's).
Timing is noisy (a point of MAPE, tens of ms for BERT-base on a shared VM), so re-timing on every run would
make two runs of the same study pick different speedup targets and different models. Instead a rerun on the
same machine with the same protocol **reuses every row it finds and times only what is missing** (an
interrupted sweep resumes). A CSV measured on another machine, with another protocol or by an older atb is
**refused** with a message naming what differs; ``sweep(..., retime=True)`` (notebook 02: ``retime = True``)
sets the old file aside as ``<name>.previous.csv`` and measures again here.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import platform
import random
import statistics
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from . import config, records, zoo
from .modeling import AtbBertConfig, AtbBertModel
from .progress import bar as progress_bar
from .space import FIELDS, Arch, SearchSpace


# The paper's feasibility window around the target latency (notes §5).
WINDOW_LOW, WINDOW_HIGH = 0.85, 1.1

Implementation = Literal["atb", "transformers"]
IMPLEMENTATIONS: tuple[str, ...] = ("atb", "transformers")
CLOCKS: tuple[str, ...] = ("cpu", "wall")
STATISTICS: tuple[str, ...] = ("median", "min")


# ------------------------------------------------------------------------------------ the window
def target_latency(bert_base_ms: float, speedup: float) -> float:
    """The latency a speedup constraint asks for: ``latency(BERT-base) / speedup``."""
    if not bert_base_ms > 0 or not speedup > 0:
        raise ValueError(f"need bert_base_ms > 0 and speedup > 0, got {bert_base_ms!r} and {speedup!r}")
    return bert_base_ms / speedup


def latency_window(bert_base_ms: float, speedup: float) -> tuple[float, float]:
    """The inclusive range ``[0.85 * target, 1.1 * target]`` of feasible latencies (ms)."""
    target = target_latency(bert_base_ms, speedup)
    return WINDOW_LOW * target, WINDOW_HIGH * target


def is_feasible(latency_ms: float | np.ndarray, bert_base_ms: float, speedup: float) -> bool | np.ndarray:
    """Whether a latency (or an array of them, e.g. predictions over a grid) lies in the window."""
    low, high = latency_window(bert_base_ms, speedup)
    result = (low <= np.asarray(latency_ms)) & (np.asarray(latency_ms) <= high)
    return bool(result) if result.ndim == 0 else result


# ----------------------------------------------------------------------------------- the machine
# The fields that decide whether two latency tables (or predictors) are comparable ("arch" is the ISA).
MACHINE_KEYS: tuple[str, ...] = ("cpu", "cores", "arch", "torch", "threads")


def machine_info(threads: int = 1) -> dict:
    """Where a latency was measured: ``atb.records.machine_info()`` (CPU model, cores, torch, python) plus
    the ISA, with the thread count of the *measurement* (not the process's setting)."""
    return {**records.machine_info(), "arch": platform.machine(), "threads": threads}


def same_machine(a: dict, b: dict) -> bool:
    """Latencies from ``a`` are valid on ``b``: same CPU model, core count, ISA, torch version and thread count."""
    return all(str(a.get(k)) == str(b.get(k)) for k in MACHINE_KEYS)


# ---------------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class Protocol:
    """How one architecture is timed: the paper's defaults (1 thread, batch 1, 128 tokens, 10 runs of which
    the first is dropped), timed by the thread's CPU time unless ``clock="wall"`` (module docstring)."""

    seq_len: int = 128
    batch_size: int = 1
    threads: int = 1
    warmup: int = 1  # dropped runs
    runs: int = 9  # timed runs
    pooler: bool = True
    clock: str = "cpu"  # which clock is "the latency": "cpu" (the timing thread's CPU time) or "wall"
    # Robustness on a shared CPU (module docstring, "Noisy machines"); the defaults are the paper's plain timing.
    statistic: str = "median"  # of the timed runs: "median" or "min" (load only ever adds time)
    reference: str | None = None  # an architecture timed in turns with every candidate: drift is divided out
    max_rsd: float | None = None  # re-time a candidate whose runs spread more than this (relative std) ...
    retries: int = 0  # ... up to this many times, keeping the least spread measurement

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "threads", "runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"Protocol.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"Protocol.warmup must be >= 0, got {self.warmup}")
        if self.clock not in CLOCKS:
            raise ValueError(f"Protocol.clock must be one of {CLOCKS}, got {self.clock!r}")
        if self.clock == "cpu" and self.threads != 1:
            raise ValueError("Protocol.clock='cpu' times the calling thread only; with threads > 1 use 'wall'")
        if self.statistic not in STATISTICS:
            raise ValueError(f"Protocol.statistic must be one of {STATISTICS}, got {self.statistic!r}")
        if self.reference is not None:
            Arch.parse(self.reference)  # a malformed reference fails here, naming itself
        if self.max_rsd is not None and self.max_rsd <= 0:
            raise ValueError(f"Protocol.max_rsd must be > 0 (or None), got {self.max_rsd}")
        if self.retries < 0:
            raise ValueError(f"Protocol.retries must be >= 0, got {self.retries}")

    def summary(self, runs_ms: tuple[float, ...]) -> float:
        """The protocol's statistic of timed runs (ms)."""
        return min(runs_ms) if self.statistic == "min" else statistics.median(runs_ms)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measurement:
    """The timed runs of one architecture on both clocks; ``latency_ms`` is their median on the
    protocol's clock."""

    arch: Arch
    wall_ms: tuple[float, ...]
    cpu_ms: tuple[float, ...]
    protocol: Protocol = field(default_factory=Protocol)
    implementation: str = "atb"
    reference_wall_ms: tuple[float, ...] = ()  # the protocol's reference, timed in turns with ``arch``
    reference_cpu_ms: tuple[float, ...] = ()

    @classmethod
    def from_seconds(cls, arch: Arch, seconds: dict[str, list[float]], protocol: Protocol,
                     implementation: str = "atb", reference: dict[str, list[float]] | None = None) -> Measurement:
        """From :func:`time_forward`'s ``{"wall": [...], "cpu": [...]}`` seconds (and the reference's)."""
        ms = lambda t: {c: tuple(1e3 * x for x in t[c]) for c in ("wall", "cpu")}  # noqa: E731
        own, ref = ms(seconds), ms(reference or {"wall": [], "cpu": []})
        return cls(arch, own["wall"], own["cpu"], protocol, implementation, ref["wall"], ref["cpu"])

    @property
    def runs_ms(self) -> tuple[float, ...]:
        return self.cpu_ms if self.protocol.clock == "cpu" else self.wall_ms

    @property
    def latency_ms(self) -> float:
        """The protocol's statistic (median or minimum) of the timed runs."""
        return self.protocol.summary(self.runs_ms)

    @property
    def reference_ms(self) -> float:
        """The reference's latency in the same turns (``nan`` without a reference)."""
        runs = self.reference_cpu_ms if self.protocol.clock == "cpu" else self.reference_wall_ms
        return self.protocol.summary(runs) if runs else math.nan

    @property
    def relative(self) -> float:
        """Latency in units of the reference timed beside it: what a change of the machine's load cancels from."""
        return self.latency_ms / self.reference_ms

    @property
    def rsd(self) -> float:
        """Relative standard deviation of the timed runs (how noisy this measurement was)."""
        return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.runs_ms)

    @property
    def std_ms(self) -> float:
        return statistics.pstdev(self.runs_ms)


def check_arch(arch: object, space: SearchSpace | None = None) -> Arch:
    """Return ``arch`` if it is an :class:`Arch` with positive integer fields (and in ``space``, if given).

    ``Arch`` validates itself when built, but a latency table is the wrong place to find out that
    something else (a string, a dict, a tampered object) slipped through, so it is checked again here.
    """
    if not isinstance(arch, Arch):
        hint = " (use Arch.parse for 'L/d_m/d_f/h/d_qkv' strings)" if isinstance(arch, str) else ""
        raise ValueError(f"expected an Arch, got {type(arch).__name__} {arch!r}{hint}")
    for name in FIELDS:
        value = getattr(arch, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"invalid architecture {arch!r}: {name} must be a positive integer, got {value!r}")
    if arch.qkv % arch.heads:
        raise ValueError(f"invalid architecture {arch}: qkv={arch.qkv} is not divisible by heads={arch.heads}")
    if space is not None:
        space.validate(arch)
    return arch


def build_model(arch: Arch, implementation: Implementation = "atb", pooler: bool = True) -> torch.nn.Module:
    """The standalone encoder of ``arch`` in eval mode: ``AtbBertModel`` or, if ``qkv == hidden``,
    ``transformers.BertModel`` (to compare the two implementations of the same network).

    Weights are initialised as usual. Their values do not change the work, but uninitialised memory can
    hold denormal floats, which are much slower on CPU, so "skipping the init" would bias the timing.
    """
    if implementation == "atb":
        return AtbBertModel(AtbBertConfig.from_arch(arch), add_pooling_layer=pooler).eval()
    if implementation == "transformers":
        from transformers import BertConfig, BertModel

        if arch.qkv != arch.hidden:
            raise ValueError(f"{arch}: a plain BertModel needs qkv == hidden, got qkv={arch.qkv}, hidden={arch.hidden}")
        config = BertConfig(num_hidden_layers=arch.layers, hidden_size=arch.hidden, intermediate_size=arch.ffn,
                            num_attention_heads=arch.heads)
        return BertModel(config, add_pooling_layer=pooler).eval()
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")


def example_inputs(protocol: Protocol) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random token ids (no padding) and an all-ones attention mask, ``[batch, seq_len]``."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (protocol.batch_size, protocol.seq_len), generator=g)
    return ids, torch.ones_like(ids)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; the previous setting is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


Timings = dict[str, list[float]]  # {"wall": seconds per run, "cpu": seconds per run}


def time_interleaved(models: dict[str, torch.nn.Module], inputs: tuple[torch.Tensor, torch.Tensor], warmup: int,
                     runs: int) -> dict[str, Timings]:
    """Wall-clock and thread-CPU seconds of ``runs`` forward passes of each model, after ``warmup`` untimed ones.

    Several models are timed in turns (A, B, A, B, ...), so a change in the machine's load during the
    measurement affects them alike and their ratio stays fair.
    """
    ids, mask = inputs
    times: dict[str, Timings] = {name: {"wall": [], "cpu": []} for name in models}
    with torch.inference_mode():
        for model in models.values():
            for _ in range(warmup):
                model(ids, attention_mask=mask)
        for _ in range(runs):
            for name, model in models.items():
                wall, cpu = time.perf_counter(), time.thread_time()
                model(ids, attention_mask=mask)
                times[name]["cpu"].append(time.thread_time() - cpu)
                times[name]["wall"].append(time.perf_counter() - wall)
    return times


def time_forward(model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], warmup: int,
                 runs: int) -> Timings:
    """Wall-clock and thread-CPU seconds of ``runs`` forward passes of one model, after ``warmup`` untimed ones."""
    return time_interleaved({"model": model}, inputs, warmup, runs)["model"]


def measure(arch: Arch, protocol: Protocol | None = None, *, implementation: Implementation = "atb",
            space: SearchSpace | None = None) -> Measurement:
    """Latency of ``arch`` on this CPU with the paper's protocol (see the module docstring).

    Raises ``ValueError`` for anything that is not a valid ``Arch`` (or not in ``space``, if given).
    """
    arch = check_arch(arch, space)
    protocol = protocol or Protocol()
    models = {"model": build_model(arch, implementation, protocol.pooler)}
    if protocol.reference is not None:
        models["reference"] = _reference_model(protocol.reference, implementation, protocol.pooler)
    best: Measurement | None = None
    for _ in range(1 + (protocol.retries if protocol.max_rsd is not None else 0)):
        with num_threads(protocol.threads):
            times = time_interleaved(models, example_inputs(protocol), protocol.warmup, protocol.runs)
        m = Measurement.from_seconds(arch, times["model"], protocol, implementation, times.get("reference"))
        if best is None or m.rsd < best.rsd:
            best = m
        if protocol.max_rsd is None or best.rsd <= protocol.max_rsd:
            break
    return best


@functools.lru_cache(maxsize=2)
def _reference_model(reference: str, implementation: str, pooler: bool) -> torch.nn.Module:
    """The protocol's reference network (built once per process: it is timed beside every candidate)."""
    return build_model(Arch.parse(reference), implementation, pooler)


class LatencyMeter:
    """Measures architectures with one protocol; BERT-base is measured once, on first use, in this run.

    >>> meter = LatencyMeter(Protocol(runs=9))
    >>> meter.speedup(zoo.ZOO["KD-S4"].arch)   # latency(BERT-base) / latency(KD-S4), both measured here
    """

    def __init__(self, protocol: Protocol | None = None):
        self.protocol = protocol or Protocol()

    @functools.cached_property
    def bert_base(self) -> Measurement:
        return measure(zoo.BERT_BASE, self.protocol)

    def measure(self, arch: Arch) -> Measurement:
        return measure(arch, self.protocol)

    def latency_ms(self, arch: Arch) -> float:
        """``arch``'s latency in the conditions BERT-base was timed in: with a reference, its latency relative to
        the reference beside it times the reference's latency beside BERT-base (drift divided out)."""
        m = self.measure(arch)
        return m.relative * self.bert_base.reference_ms if self.protocol.reference else m.latency_ms

    def speedup(self, arch: Arch) -> float:
        """How many times faster than BERT-base ``arch`` runs on this machine."""
        return self.bert_base.latency_ms / self.latency_ms(arch)

    def window(self, speedup: float) -> tuple[float, float]:
        """The feasible latency range (ms) of a speedup constraint, from the measured BERT-base."""
        return latency_window(self.bert_base.latency_ms, speedup)


# ------------------------------------------------------------------------------------ the sweeps
# latency_ms / mean_ms / std_ms are on the protocol's clock; wall_ms and cpu_ms are the medians of both clocks.
_TIMES = ("latency_ms", "mean_ms", "std_ms", "wall_ms", "cpu_ms", "reference_ms")
_PROTOCOL = tuple(f.name for f in fields(Protocol))
# The machine a row was measured on: CSV column -> machine_info() key (the thread count is the protocol's).
_MACHINE_COLUMNS = {"cpu": "cpu", "cores": "cores", "isa": "arch", "torch": "torch"}
CSV_FIELDS: tuple[str, ...] = ("arch", *FIELDS, *_TIMES, *_PROTOCOL, "implementation", *_MACHINE_COLUMNS)
# The header of the sweeps of atb <= 0.1.0 (no core count, no ISA): refused, they cannot be checked.
_LEGACY_FIELDS: tuple[str, ...] = ("arch", *FIELDS, *_TIMES[:-1], "seq_len", "batch_size", "threads", "warmup", "runs",
                                   "pooler", "clock", "implementation", "cpu", "torch")
# Columns that must agree between the rows already in a CSV and the sweep that reuses or resumes it.
_SAME_RUN = (*_PROTOCOL, "implementation", *_MACHINE_COLUMNS)


class ForeignSweepError(ValueError):
    """A sweep CSV holds latencies of another machine or protocol (or of an older atb): not reused."""


def _row(m: Measurement, machine: dict) -> dict:
    times = (m.latency_ms, m.mean_ms, m.std_ms, statistics.median(m.wall_ms), statistics.median(m.cpu_ms),
             m.reference_ms)
    return {"arch": str(m.arch), **m.arch.as_dict(), **{k: f"{v:.6g}" for k, v in zip(_TIMES, times)},
            **m.protocol.as_dict(), "implementation": m.implementation,
            **{column: machine[key] for column, key in _MACHINE_COLUMNS.items()}}


def _parse_row(line: str) -> dict | None:
    """One complete CSV line as a typed row, or ``None`` if it is cut short or malformed."""
    if not line.endswith("\n"):
        return None
    values = next(csv.reader([line]), [])
    if len(values) != len(CSV_FIELDS):
        return None
    row = dict(zip(CSV_FIELDS, values))
    try:
        if Arch.parse(row["arch"]) != Arch(*(int(row[f]) for f in FIELDS)):
            return None
        for name in _TIMES:
            row[name] = float(row[name])
        for name in ("seq_len", "batch_size", "threads", "warmup", "runs", "retries", *FIELDS):
            row[name] = int(row[name])
    except ValueError:
        return None
    row["pooler"] = row["pooler"] == "True"
    for name in ("reference", "max_rsd"):  # optional settings: csv.DictWriter writes None as ""
        row[name] = None if row[name] in ("", "None") else row[name]
    try:
        row["max_rsd"] = None if row["max_rsd"] is None else float(row["max_rsd"])
    except ValueError:
        return None
    return row


def read_sweep(csv_path: str | Path) -> pd.DataFrame:
    """The rows of a sweep CSV. A cut-off last line (an interrupted write) is dropped from the file."""
    path = Path(csv_path)
    if not path.exists():
        return pd.DataFrame(columns=list(CSV_FIELDS))
    lines = path.read_text().splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != ",".join(CSV_FIELDS):
        if len(lines) <= 1 and ",".join(CSV_FIELDS).startswith(lines[0].rstrip("\r\n") if lines else ""):
            path.unlink()  # interrupted while writing the header: nothing was measured yet
            return pd.DataFrame(columns=list(CSV_FIELDS))
        if lines[0].rstrip("\r\n") == ",".join(_LEGACY_FIELDS):
            raise ForeignSweepError(f"{path} was written by an older atb that did not record the core count and ISA, "
                                    "so it cannot be checked against this machine: measure again with retime=True "
                                    "(notebook 02: retime = True; it is kept as a .previous.csv) or delete it")
        raise ValueError(f"{path} is not a latency sweep CSV of this version (header {','.join(CSV_FIELDS)}); "
                         "measure again with retime=True (it is kept as a .previous.csv) or choose another path")
    rows = [_parse_row(line) for line in lines[1:]]
    if rows and rows[-1] is None:
        warnings.warn(f"{path}: dropping a truncated last line (interrupted sweep); that arch is re-measured",
                      stacklevel=2)
        records.write_text_atomic(path, "".join(lines[:-1]))
        rows = rows[:-1]
    if any(r is None for r in rows):
        bad = next(i for i, r in enumerate(rows) if r is None) + 2
        raise ValueError(f"{path}: line {bad} is malformed (not the last line, so not an interrupted write)")
    return pd.DataFrame(rows, columns=list(CSV_FIELDS))


def _expected_columns(protocol: Protocol, implementation: str, machine: dict) -> dict:
    """The values of the :data:`_SAME_RUN` columns a sweep with this protocol writes on ``machine``."""
    return {**protocol.as_dict(), "implementation": implementation,
            **{column: machine[key] for column, key in _MACHINE_COLUMNS.items()}}


def _check_reusable(done: pd.DataFrame, expected: dict, path: Path) -> None:
    """Raise :class:`ForeignSweepError` naming every column whose stored values differ from this sweep's."""
    differ = {}
    for name in _SAME_RUN:
        found = sorted({str(v) for v in done[name].unique()})
        if found and found != [str(expected[name])]:
            differ[name] = (found if len(found) > 1 else found[0], expected[name])
    if differ:
        listed = ", ".join(f"{k}: {stored!r} there, {here!r} here" for k, (stored, here) in differ.items())
        raise ForeignSweepError(
            f"{path} holds latencies measured on another machine or with another protocol ({listed}); they are not "
            "valid here and are not reused. Measure again with retime=True (notebook 02: retime = True; the old "
            "file is kept as a .previous.csv), delete it, or choose another path")


def previous_path(csv_path: str | Path) -> Path:
    """Where ``sweep(..., retime=True)`` keeps the file it replaces: ``<stem>.previous.csv`` beside it."""
    path = Path(csv_path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def sweep(archs: Iterable[Arch], csv_path: str | Path, protocol: Protocol | None = None, *,
          implementation: Implementation = "atb", retime: bool = False, progress: bool = True) -> pd.DataFrame:
    """Measure every architecture of ``archs`` that ``csv_path`` does not hold yet; return the rows of all.

    Rows already in the file were measured on this machine with this protocol (checked: otherwise
    :class:`ForeignSweepError`) and are reused as they are, so rerunning the same call times nothing.
    ``retime=True`` sets the existing file aside (:func:`previous_path`) and measures every architecture
    of ``archs`` again; rows of other architectures stay only in the set-aside file. Each result is appended
    and flushed as soon as it is measured, so an interrupted sweep loses at most the architecture it was
    timing. The returned frame follows the order of ``archs`` (duplicates removed).
    """
    archs = list(dict.fromkeys(check_arch(a) for a in archs))
    protocol = protocol or Protocol()
    path = Path(csv_path)
    machine = machine_info(protocol.threads)
    if retime and path.exists():
        path.replace(previous_path(path))
    done = read_sweep(path)
    _check_reusable(done, _expected_columns(protocol, implementation, machine), path)
    measured = set(done["arch"])
    todo = [a for a in archs if str(a) not in measured]
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, lineterminator="\n")
        if new_file:
            writer.writeheader()
        for arch in progress_bar(todo, desc=f"latency sweep ({len(measured & set(map(str, archs)))} cached)",
                         disable=not progress or not todo):
            writer.writerow(_row(measure(arch, protocol, implementation=implementation), machine))
            f.flush()
    table = drift_corrected(read_sweep(path)).drop_duplicates("arch", keep="last").set_index("arch")
    return table.loc[[str(a) for a in archs]].reset_index()


def drift_corrected(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a sweep (in file order) with ``latency_ms`` corrected for the machine's drift, the raw value kept
    as ``raw_latency_ms``: with a reference, ``latency = raw / reference beside it x reference beside the file's
    first row``, so every row is expressed in the load conditions of the first (BERT-base's, for the study's sweep).

    The scale is that of the *first* row, not of all rows, so that a row's corrected latency never changes when
    rows are appended: BERT-base read before the sweep and the sweep read after it stay on one scale, and a rerun
    derives the same speedup targets. (atb 1e2d680 scaled by the median of the rows present at the time, which put
    BERT-base, read when the file held the zoo only, 2.2 % off the sweep's scale in the committed mini study.)
    Without a reference, unchanged."""
    table = table.copy()
    table["raw_latency_ms"] = table["latency_ms"]
    reference = pd.to_numeric(table.get("reference_ms"), errors="coerce") if len(table) else None
    if reference is not None and reference.notna().all() and len(reference):
        table["latency_ms"] = table["raw_latency_ms"] / reference * float(reference.iloc[0])
    return table


def drift_report(table: pd.DataFrame) -> dict | None:
    """How the reference timed beside every row moved over a sweep (in row order, i.e. time): its median (ms), its
    spread (10th-90th percentile over the median), the largest ratio between two rows' references, and Spearman's ρ
    of reference against row order (a trend: the machine got busier or quieter). ``None`` without a reference."""
    reference = pd.to_numeric(table.get("reference_ms"), errors="coerce") if len(table) else None
    if reference is None or reference.isna().any() or len(reference) < 2:
        return None
    r = reference.to_numpy(dtype=float)
    rho = spearmanr(np.arange(len(r)), r).statistic
    return {"n": len(r), "median_ms": float(np.median(r)),
            "spread": float((np.percentile(r, 90) - np.percentile(r, 10)) / np.median(r)),
            "max_over_min": float(r.max() / r.min()), "trend_spearman": None if np.isnan(rho) else float(rho)}


def speedup_movement(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """How much the speedup column moves between two independent timings of the zoo (:func:`zoo_speedups` tables):
    per model the relative change of its measured speedup, and their median and largest absolute value."""
    a, b = (t.set_index("name")["measured"] for t in (first, second))
    change = ((b - a) / a).dropna()
    return {"n": len(change), "median_abs": float(change.abs().median()), "max_abs": float(change.abs().max()),
            "worst": str(change.abs().idxmax()), "per_model": {k: float(v) for k, v in change.items()}}


def sweep_archs(settings: LatencySettings) -> list[Arch]:
    """The architectures a scale's sweep measures: ``sweep_per_objective`` uniform samples from each
    objective's space (distinct, seeded), then the zoo if ``include_zoo``."""
    rng = random.Random(settings.seed)
    archs: list[Arch] = []
    for objective in ("mlm", "kd"):
        space = SearchSpace.preset(settings.space, objective)
        wanted = min(settings.sweep_per_objective, len(space))
        chosen: set[Arch] = set()
        while len(chosen) < wanted:
            arch = space.sample(rng)
            if arch not in chosen:
                chosen.add(arch)
                archs.append(arch)
    if settings.include_zoo:
        archs += [m.arch for m in zoo.ZOO.values()]
    return list(dict.fromkeys(archs))


# ------------------------------------------------------------------------ the speedup column
def zoo_sweep(csv_path: str | Path, protocol: Protocol | None = None, models: Iterable[zoo.ZooModel] | None = None,
              *, retime: bool = False, progress: bool = True) -> pd.DataFrame:
    """The rows of BERT-base (row 0) and of the zoo models in the sweep CSV ``csv_path``, timed only if missing.

    The study's reference: the speedup targets of the search are ``latency(BERT-base) / s`` with BERT-base's
    latency read from here, so a rerun on the same machine reuses it instead of timing it again (:func:`sweep`).
    """
    models = list(zoo.ZOO.values() if models is None else models)
    return sweep([zoo.BERT_BASE, *(m.arch for m in models)], csv_path, protocol, retime=retime, progress=progress)


def zoo_speedups(source: LatencyMeter | pd.DataFrame, models: Iterable[zoo.ZooModel] | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """The speedup column of the model-zoo table, measured here, next to the paper's.

    ``source``: the rows of a sweep that holds BERT-base and the models (:func:`zoo_sweep`), or a
    :class:`LatencyMeter` that measures BERT-base first and then each model, now. Baselines have no paper value.
    """
    models = list(zoo.ZOO.values() if models is None else models)
    if isinstance(source, pd.DataFrame):
        table = source.drop_duplicates("arch").set_index("arch")["latency_ms"]
        missing = [str(a) for a in (zoo.BERT_BASE, *(m.arch for m in models)) if str(a) not in table.index]
        if missing:
            raise ValueError(f"the sweep holds no latency for {missing}: sweep them first (zoo_sweep)")
        bert_base_ms = float(table[str(zoo.BERT_BASE)])
        latency_of = lambda arch: float(table[str(arch)])  # noqa: E731
    else:
        bert_base_ms = source.bert_base.latency_ms
        latency_of = lambda arch: source.measure(arch).latency_ms  # noqa: E731
    rows = []
    for m in progress_bar(models, desc="zoo latency", disable=not progress or isinstance(source, pd.DataFrame)):
        latency = latency_of(m.arch)
        rows.append({"name": m.name, "arch": str(m.arch), "objective": m.objective, "kind": m.kind,
                     "latency_ms": latency, "measured": bert_base_ms / latency, "paper": m.paper_speedup})
    return pd.DataFrame(rows)


def speedup_agreement(table: pd.DataFrame) -> dict:
    """How the measured speedups of the published models compare with the paper's.

    ``spearman``: rank agreement; ``mean_ratio``: geometric mean of measured / paper (1 = same scale);
    ``min_ratio`` / ``max_ratio``: the extreme ratios and the models they belong to; ``by_objective``:
    the mean ratio of the MLM and of the KD models (the KD ones all have 12 small heads).
    """
    published = table.dropna(subset=["paper"])
    ratio = published["measured"] / published["paper"]
    geomean = lambda r: float(np.exp(np.log(r).mean()))  # noqa: E731
    rho = spearmanr(published["measured"], published["paper"]).statistic if len(published) > 1 else math.nan
    low, high = ratio.idxmin(), ratio.idxmax()
    return {"n": len(published), "spearman": float(rho), "mean_ratio": geomean(ratio),
            "min_ratio": {"name": published.loc[low, "name"], "ratio": float(ratio[low])},
            "max_ratio": {"name": published.loc[high, "name"], "ratio": float(ratio[high])},
            "by_objective": {o: geomean(ratio[published.objective == o]) for o in sorted(set(published.objective))}}


def compare_implementations(archs: Iterable[Arch], protocol: Protocol | None = None) -> pd.DataFrame:
    """Latency of the atb standalone model and of ``transformers.BertModel`` of the same shape.

    Only architectures with ``qkv == hidden`` have a ``BertModel``. The two are timed in turns
    (:func:`time_interleaved`) so that load changes on a shared machine do not favour either.
    """
    protocol = protocol or Protocol()
    inputs = example_inputs(protocol)
    rows = []
    for arch in archs:
        models = {impl: build_model(check_arch(arch), impl, protocol.pooler) for impl in IMPLEMENTATIONS}
        with num_threads(protocol.threads):
            times = time_interleaved(models, inputs, protocol.warmup, protocol.runs)
        atb_ms, hf_ms = (1e3 * statistics.median(times[impl][protocol.clock]) for impl in IMPLEMENTATIONS)
        rows.append({"arch": str(arch), "atb_ms": atb_ms, "transformers_ms": hf_ms, "ratio": atb_ms / hf_ms})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- settings
# The paper's latency-predictor MLP (notes §5): 3 hidden layers of 2000, ReLU; keyword arguments of MLPPredictor.fit.
# `epochs` passes over the training set with a cosine-decayed learning rate; the validation split picks the epoch
# whose weights are kept. Full batch: an Adam step over 8 M weights costs more than a forward pass over a few
# hundred rows, so few large steps are fastest. One thread: 3x faster than 2 on a busy 2-core machine.
MLP_DEFAULTS = {"hidden": 2000, "depth": 3, "epochs": 500, "batch_size": None, "lr": 1.0e-3, "seed": 0, "threads": 1}


@dataclass(frozen=True)
class LatencySettings:
    """Per-scale settings of notebook 02 (the ``latency`` section of ``configs/<scale>.yaml``): the timing
    protocol (the paper's by default), the sweep, the predictors' training."""

    scale: str
    sweep_per_objective: int = 200  # architectures of each objective's space the sweep times
    space: str = "paper"  # the SearchSpace preset the sweep samples from (both objectives)
    include_zoo: bool = True  # also time the 16 zoo models (what the search is compared with)
    protocol: Protocol = field(default_factory=Protocol)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / validation / test (the paper's)
    seed: int = 0
    mlp: dict = field(default_factory=lambda: dict(MLP_DEFAULTS))  # keyword arguments of MLPPredictor.fit

    @classmethod
    def load(cls, scale: str | Path) -> LatencySettings:
        """The ``latency`` section of a scale's config; ``protocol`` and ``mlp`` merged key by key over the defaults."""
        settings, file = config.section(scale, "latency")
        where = file.where("latency")
        config.check_keys(settings, config.fields_of(cls, exclude=("scale",)), where)
        config.check_keys(settings.get("protocol") or {}, config.fields_of(Protocol), f"{where}.protocol")
        config.check_keys(settings.get("mlp") or {}, MLP_DEFAULTS, f"{where}.mlp")
        settings["protocol"] = Protocol(**(settings.get("protocol") or {}))
        settings["mlp"] = {**MLP_DEFAULTS, **(settings.get("mlp") or {})}
        if "split" in settings:
            settings["split"] = tuple(settings["split"])
        return cls(scale=file.scale, **settings)


# -------------------------------------------------------------------------------------- figures
def plot_speedups(table: pd.DataFrame, title: str):
    """Measured against published speedup of the released models (log-log), the diagonal for reference."""
    import matplotlib.pyplot as plt

    from .plots import colour_of, legend_beside, speedup_axis

    published = table.dropna(subset=["paper"])
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    for objective, marker in (("mlm", "o"), ("kd", "s")):
        rows = published[published.objective == objective]
        ax.scatter(rows.paper, rows.measured, marker=marker, color=colour_of(objective),
                   label=f"{objective.upper()} models")
        for r in rows.itertuples():
            ax.annotate(r.name, (r.paper, r.measured), textcoords="offset points", xytext=(4, 3), fontsize=8)
    both = [*published.paper, *published.measured]
    ax.plot([min(both), max(both)], [min(both), max(both)], "k--", lw=0.8, label="measured = paper")
    speedup_axis(ax, both, "paper speedup")
    speedup_axis(ax, both, "measured speedup here", axis="y")
    ax.set_title(title)
    legend_beside(ax)
    return fig

