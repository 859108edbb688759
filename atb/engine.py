"""How a training step is computed on this machine: mixed precision where the hardware has it, a fused optimizer.

The papers trained on GPUs with fp16 mixed precision. A CPU gains from lower precision only where it multiplies
bf16 natively: Intel AMX or AVX-512 BF16 run a bf16 matmul several times faster than fp32, while elsewhere (AVX2 CPUs, such as
the AMD EPYC of the committed mini records) bf16 is emulated and *slower* than fp32. So ``precision: auto`` means

- on a GPU: bf16 autocast where the GPU supports bf16, fp16 otherwise (as before);
- on a CPU: bf16 autocast where :func:`native_bf16` finds AMX or AVX-512 BF16 in the CPU's flags, fp32 elsewhere;

detected on the machine that runs, never assumed, and recorded (:func:`describe`) beside every run. Autocast casts the
inputs of matrix products only: master weights, gradients and the optimizer's state stay fp32, and the losses are
computed in fp32 (autocast's fp32 list; the objectives also upcast). Latency is *not* measured through this module:
claim 1 is about fp32 CPU latency, so :mod:`atb.latency` keeps the paper's fp32 protocol.

The optimizer is AdamW with ``fused=True`` where the device supports it (one kernel over all parameters instead of
a dozen per parameter; benchmarks/bench_training.py measures the difference), and gradient clipping uses the
``foreach`` kernels. ``fused_optimizer: false`` restores the unfused path of the earlier study (for comparisons).
"""

from __future__ import annotations

import contextlib
import json
import platform
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
# /proc/cpuinfo flags of CPUs that compute bf16 products in hardware (AMX tiles; AVX-512 BF16 dot products)
NATIVE_BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
RECORD = "engine.json"  # beside a training run's config.json: :func:`describe` of how it was computed


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``cpuinfo`` (empty where there is no such file: not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device | str = "cpu", flags: Iterable[str] | None = None) -> bool:
    """Whether ``device`` multiplies bf16 in hardware: a CUDA GPU that supports bf16, or a CPU whose ``flags``
    (default: this machine's, :func:`cpu_flags`) name AMX or AVX-512 BF16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(set(NATIVE_BF16_FLAGS) & set(cpu_flags() if flags is None else flags))


def check_precision(precision: str, where: str = "precision") -> str:
    """``precision`` itself if it is one of :data:`PRECISIONS`, else a ``ValueError`` naming ``where`` (the field)."""
    if precision not in PRECISIONS:
        raise ValueError(f"config field {where!r} must be one of {'/'.join(PRECISIONS)}, got {precision!r}")
    return precision


def check_engine(precision: str, fused_optimizer: bool, where: str) -> None:
    """Validate a loop config's engine fields, naming ``where`` (its section) in the error."""
    check_precision(precision, f"{where}.precision")
    if not isinstance(fused_optimizer, bool):
        raise ValueError(f"config field '{where}.fused_optimizer' must be true or false, got {fused_optimizer!r}")


@dataclass(frozen=True)
class EngineConfig:
    """Section ``engine`` of a scale's config: how every training loop computes its steps. Its values are the defaults
    of each loop's own ``precision`` / ``fused_optimizer`` fields (:mod:`atb.config` hands them down; a loop's
    setting, where written, wins), so one line runs the whole study in fp32."""

    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (module docstring)
    fused_optimizer: bool = True  # False: the per-parameter AdamW loop of the earlier study

    def __post_init__(self) -> None:
        check_engine(self.precision, self.fused_optimizer, "engine")


def resolve_precision(precision: str, device: torch.device | str = "cpu", *, native: bool | None = None) -> str:
    """What ``precision`` computes in on ``device``: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (module docstring).
    ``native``: whether the device has native bf16 (default: :func:`native_bf16`; given by tests)."""
    check_precision(precision)
    device = torch.device(device)
    native = native_bf16(device) if native is None else native
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if native else "fp16"
        return "bf16" if native else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a GPU: CPU autocast computes in bf16 (use 'bf16' or 'auto')")
    return precision


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32): wrap the forward passes and the
    losses, not ``backward()`` or the optimizer step."""
    device = torch.device(device)
    computed = resolve_precision(precision, device)
    if computed == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[computed])


def parameter_groups(params: Iterable[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """BERT's AdamW groups: no weight decay on biases and LayerNorm weights, i.e. on the 1-D parameters (so a
    LayerNorm is recognised whatever its name: EfficientBERT's blocks call theirs ``norm``)."""
    params = list(params)
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def adamw(params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float,
          fused: bool = True) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` of ``params``, fused where asked for and supported (CPU and CUDA float
    parameters); otherwise the default implementation (on a CPU, the per-parameter loop of the earlier study)."""
    groups = parameter_groups(params, weight_decay)
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
            pass
    return torch.optim.AdamW(groups, lr=lr)


def clip_and_step(optimizer: torch.optim.Optimizer, scheduler, params: list[torch.nn.Parameter],
                  max_grad_norm: float, *, foreach: bool = True) -> torch.Tensor:
    """The end of every training step of the study: clip the gradients' global norm to ``max_grad_norm``, step the
    optimizer and the learning-rate schedule, free the gradients. Returns the norm before clipping.

    ``clip_grad_norm_`` itself, except that gradients within the bound are left alone: it would multiply every one of
    them by exactly 1.0 (its factor ``max_grad_norm / (norm + 1e-6)`` clamped to 1), a pass over every gradient that
    changes nothing. On a GPU it multiplies unconditionally, as there, so as not to wait for the norm."""
    foreach = foreach or None
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, foreach=foreach)
    if norm.device.type != "cpu" or not norm + 1e-6 <= max_grad_norm:  # (a non-finite norm is clipped, as there)
        torch.nn.utils.clip_grads_with_norm_(params, max_grad_norm, norm, foreach=foreach)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def describe(precision: str, device: torch.device | str = "cpu", *, fused_optimizer: bool = True) -> dict:
    """What a record says about how its numbers were computed: the precision asked for and the one used, the
    device and its CPU, whether it has native bf16, the optimizer, torch and its threads."""
    from .records import cpu_model

    device = torch.device(device)
    return {"precision": precision, "computed_in": resolve_precision(precision, device),
            "device": device.type, "cpu": cpu_model(), "isa": platform.machine(),
            "native_bf16": native_bf16(device), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "optimizer": "AdamW (fused)" if fused_optimizer else "AdamW", "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def record_run(run_dir: str | Path, precision: str, device: torch.device | str = "cpu", *,
               fused_optimizer: bool = True) -> dict:
    """Write :func:`describe` to ``run_dir/engine.json`` (atomically) and return it. A resumed run whose earlier part
    was computed otherwise (another machine, another setting) says so on stderr and in the record (``resumed_from``):
    its steps are then not the run one machine would make, though each part is right."""
    from .records import write_json_atomic

    path = Path(run_dir) / RECORD
    record = describe(precision, device, fused_optimizer=fused_optimizer)
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        earlier = None
    if earlier:
        keys = ("computed_in", "optimizer", "cpu")
        if any(earlier.get(k) != record[k] for k in keys):
            warnings.warn(f"{run_dir}: resumed with {[record[k] for k in keys]}, its earlier steps ran with "
                          f"{[earlier.get(k) for k in keys]}", stacklevel=2)
            record["resumed_from"] = {k: earlier.get(k) for k in keys}
        elif "resumed_from" in earlier:
            record["resumed_from"] = earlier["resumed_from"]
    write_json_atomic(path, record)
    return record

