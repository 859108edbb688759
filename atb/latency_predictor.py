"""Latency predictors: the paper's MLP and an analytic baseline, fitted to a measured sweep.

The search scores thousands of candidates and cannot time each one, so it asks a predictor whether a
candidate's latency falls in the window of its speedup constraint (``atb.latency.is_feasible``).

* :class:`MLPPredictor` — the paper's (notes §5): an MLP with 3 hidden layers of 2000 units and ReLU on
  the four features (d_m, l, d_f, d_qkv), each divided by its maximum over the training architectures,
  trained with an MSE loss. The paper does not say on which scale the target is; we regress
  **log-latency**, so the squared error is a relative one, like the ±10–15 % window it serves (a 1 ms
  error matters for a 5 ms model, not for a 200 ms one). The validation split picks the epoch.
* :class:`AnalyticPredictor` — a baseline from counting: latency ≈ a·FLOPs + b·parameters + c·layers +
  e·layers·heads + d, fitted by least squares (each row weighted by 1/latency, i.e. relative error again).
  The layer term is the fixed cost of the ~20 operator calls of a layer, which does not shrink with its
  size and dominates the smallest models; the head term is the per-head work FLOPs do not see (a softmax
  over a T x T score matrix, small per-head products) and separates the KD space's 12 small heads from
  the MLM space's fewer 64-dimensional ones.

Both predict a whole list of architectures at once (``predict(archs) -> np.ndarray`` of ms); the search
and development call them through :func:`predict_latency`, which also takes a plain function. They are
saved as ``predictor.safetensors`` (tensors) + ``predictor.json`` (feature maxima, the machine the
latencies were measured on, metrics). A predictor is only valid on the machine it was measured on:
``LatencyPredictor.load(directory)`` compares the stored machine with this one (or ``expect_machine``),
and on a mismatch sets ``predictor.foreign_machine`` and warns rather than being used silently;
:func:`best_predictor`, which hands the search its predictor, refuses one with :class:`ForeignMachineError`.

**Same sweep, same predictors.** The fit is deterministic: seeded split, seeded MLP initialisation and
shuffling, on the CPU with a fixed thread count (1 unless the settings say otherwise). Every saved predictor
records ``inputs_sha256``, a digest of everything its fit depends on (the sweep's architectures and
latencies, split, seed, MLP settings, protocol, machine); :func:`load_or_fit_predictors` reuses the saved
predictors when the digest matches and fits (and saves) them otherwise, so a rerun of notebook 02 on an
unchanged sweep gives the search bitwise the same predictions and thus the same speedup targets.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.stats import spearmanr
from torch import nn

from .latency import (MACHINE_KEYS, WINDOW_HIGH, WINDOW_LOW, Protocol, machine_info, num_threads,
                      same_machine)
from .records import write_json_atomic
from .space import Arch

FEATURES: tuple[str, ...] = ("hidden", "layers", "ffn", "qkv")  # the paper's inputs: d_m, l, d_f, d_qkv
WEIGHTS_FILE, META_FILE = "predictor.safetensors", "predictor.json"
PREDICTORS: tuple[str, ...] = ("mlp", "analytic")  # what fit_predictors fits, each saved in <directory>/<name>

LatencyFn = Callable[[Sequence[Arch]], Sequence[float]]  # or an object with .predict(archs) -> ms


class ForeignMachineWarning(UserWarning):
    """A predictor trained on latencies of another machine (CPU, cores, torch version or threads) was loaded."""


class ForeignMachineError(ValueError):
    """The search was handed a predictor fitted to latencies of another machine than its record's."""


def predict_latency(latency_fn: LatencyFn, archs: Sequence[Arch]) -> np.ndarray:
    """Latencies (ms) from a predictor object (``.predict``) or a plain function of a list of archs."""
    predict = getattr(latency_fn, "predict", latency_fn)
    return np.asarray(predict(list(archs)), dtype=np.float64).reshape(-1)


# -------------------------------------------------------------------------------------- features
def arch_matrix(archs: Sequence[Arch]) -> np.ndarray:
    """``[N, 4]`` float64 matrix of (d_m, l, d_f, d_qkv), the MLP's raw features."""
    return np.array([[a.hidden, a.layers, a.ffn, a.qkv] for a in archs], dtype=np.float64).reshape(-1, 4)


def flops(archs: Sequence[Arch], seq_len: int = 128, pooler: bool = True) -> np.ndarray:
    """Floating-point operations (2 per multiply-add) of one forward pass at batch 1, per architecture.

    Per layer: Q, K, V and the output projection (4·T·d_m·d_qkv multiply-adds), the FFN (2·T·d_m·d_f),
    scores and context (2·T²·d_qkv); plus the pooler (d_m²). Element-wise work is left out.
    """
    d, l, f, q = arch_matrix(archs).T
    t = float(seq_len)
    per_layer = 2 * (4 * t * d * q + 2 * t * d * f + 2 * t * t * q)
    return l * per_layer + (2 * d * d if pooler else 0.0)


def parameters(archs: Sequence[Arch], vocab_size: int = 30522, max_positions: int = 512, type_vocab: int = 2,
               pooler: bool = True) -> np.ndarray:
    """Parameter count of the standalone ``AtbBertModel``: embeddings, layers (``Arch.encoder_parameters``)
    and pooler."""
    d = arch_matrix(archs)[:, 0]
    layers = np.array([a.encoder_parameters() for a in archs], dtype=np.float64)
    embeddings = (vocab_size + max_positions + type_vocab) * d + 2 * d  # three tables and their LayerNorm
    return embeddings + layers + ((d * d + d) if pooler else 0.0)


# -------------------------------------------------------------------------------------- metrics
def metrics(measured_ms: np.ndarray, predicted_ms: np.ndarray) -> dict[str, float | None]:
    """MAPE (%), RMSE (ms) and Spearman's rank correlation of predictions against measurements.

    Spearman needs two or more distinct values on each side; otherwise it is ``None``.
    """
    y, p = np.asarray(measured_ms, dtype=np.float64), np.asarray(predicted_ms, dtype=np.float64)
    rho = spearmanr(y, p).statistic if len(y) > 1 and np.ptp(y) > 0 and np.ptp(p) > 0 else math.nan
    return {"mape": float(100 * np.mean(np.abs(p - y) / y)), "rmse_ms": float(np.sqrt(np.mean((p - y) ** 2))),
            "spearman": None if math.isnan(rho) else float(rho), "n": int(len(y))}


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random train / validation / test split of ``range(n)`` (the paper's 80/10/10)."""
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = round(fractions[0] * n), round(fractions[1] * n)
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


# ------------------------------------------------------------------------------------ predictors
class LatencyPredictor:
    """What the search needs from a predictor: ``predict(archs) -> ms``; plus save / load.

    Subclasses register under their ``kind``, so ``LatencyPredictor.load`` returns the right one.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[LatencyPredictor]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        LatencyPredictor._kinds[cls.kind] = cls

    def __init__(self) -> None:
        self.metadata: dict = {}
        self.foreign_machine = False
        self.loaded_from: Path | None = None  # the directory it was loaded from; None if fitted in this process

    # -- to implement
    def fit(self, archs: Sequence[Arch], latency_ms: Sequence[float], **kwargs) -> LatencyPredictor:
        raise NotImplementedError

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        raise NotImplementedError

    def _tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    # -- shared
    def evaluate(self, archs: Sequence[Arch], latency_ms: Sequence[float]) -> dict[str, float | None]:
        return metrics(np.asarray(latency_ms), self.predict(archs))

    def _record_fit(self, archs: Sequence[Arch], machine: dict | None, protocol: Protocol | None, **extra) -> None:
        protocol = protocol or Protocol()
        self.metadata.update({
            "kind": self.kind, "features": list(FEATURES), "n_train": len(archs),
            "machine": machine or machine_info(protocol.threads),
            "protocol": protocol.as_dict(),
            **extra,
        })

    def save(self, directory: str | Path) -> Path:
        """Write ``predictor.safetensors`` and ``predictor.json`` into ``directory``; returns it."""
        if not self.metadata:
            raise RuntimeError("fit the predictor before saving it")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self._tensors().items()}, directory / WEIGHTS_FILE,
                  metadata={"kind": self.kind})
        write_json_atomic(directory / META_FILE, self.metadata)
        return directory

    @classmethod
    def load(cls, directory: str | Path, expect_machine: dict | None = None) -> LatencyPredictor:
        """Load a saved predictor. If it was fitted to latencies of another machine than
        ``expect_machine`` (default: this one, with the threads it was measured with), the returned
        predictor has ``foreign_machine = True`` and a :class:`ForeignMachineWarning` is issued."""
        directory = Path(directory)
        metadata = json.loads((directory / META_FILE).read_text())
        kind = metadata.get("kind")
        if kind not in cls._kinds or not issubclass(cls._kinds[kind], cls):
            raise ValueError(f"{directory} holds a {kind!r} predictor, not a {cls.__name__}")
        predictor = cls._kinds[kind]._from_metadata(metadata)
        predictor._load_tensors(load_file(directory / WEIGHTS_FILE))
        predictor.metadata = metadata
        predictor.loaded_from = directory
        stored = metadata.get("machine", {})
        expected = expect_machine or machine_info(stored.get("threads", 1))
        if not same_machine(stored, expected):
            predictor.foreign_machine = True
            differ = {k: (stored.get(k), expected.get(k)) for k in MACHINE_KEYS
                      if str(stored.get(k)) != str(expected.get(k))}
            warnings.warn(f"{directory}: predictor fitted to latencies of another machine (stored vs expected: "
                          f"{differ}); its predictions may not hold here — re-measure and refit",
                          ForeignMachineWarning, stacklevel=2)
        return predictor

    @classmethod
    def _from_metadata(cls, metadata: dict) -> LatencyPredictor:
        return cls()


def _log(latency_ms: Sequence[float]) -> torch.Tensor:
    return torch.log(torch.as_tensor(np.asarray(latency_ms, dtype=np.float64), dtype=torch.float32))


class LatencyMLP(nn.Module):
    """4 features -> ``depth`` x (Linear(hidden), ReLU) -> 1 (log-latency)."""

    def __init__(self, hidden: int = 2000, depth: int = 3, in_features: int = len(FEATURES)):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden if depth else in_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class MLPPredictor(LatencyPredictor):
    """The paper's predictor: an MLP on (d_m, l, d_f, d_qkv) / their maxima, MSE on log-latency."""

    kind = "mlp"

    def __init__(self, hidden: int = 2000, depth: int = 3):
        super().__init__()
        self.hidden, self.depth = hidden, depth
        self.model = LatencyMLP(hidden, depth)
        self.feature_max = np.ones(len(FEATURES))

    def _inputs(self, archs: Sequence[Arch]) -> torch.Tensor:
        return torch.as_tensor(arch_matrix(archs) / self.feature_max, dtype=torch.float32)

    def fit(self, archs: Sequence[Arch], latency_ms: Sequence[float], *, val_archs: Sequence[Arch] = (),
            val_latency_ms: Sequence[float] = (), epochs: int = 1000, lr: float = 1e-3, batch_size: int | None = None,
            seed: int = 0, threads: int | None = None, machine: dict | None = None, protocol: Protocol | None = None,
            hidden: int | None = None, depth: int | None = None) -> MLPPredictor:
        """Adam on MSE(log-latency) for ``epochs`` passes over the training set, in shuffled mini-batches
        of ``batch_size`` (``None``: the whole set), learning rate decayed to 0 on a cosine.

        The weights of the epoch with the lowest validation loss (training loss without a validation
        set) are kept. Deterministic for a given ``seed`` on a given machine and thread count; ``threads``
        sets that count for the fit (``None``: torch's current setting — on a busy 2-core machine one
        thread was 3x faster than two). ``hidden`` / ``depth`` rebuild the network (so a settings dict
        can carry them).
        """
        self.hidden, self.depth = hidden or self.hidden, depth or self.depth
        self.feature_max = arch_matrix(archs).max(axis=0)
        x, y = self._inputs(archs), _log(latency_ms)
        xv, yv = (self._inputs(val_archs), _log(val_latency_ms)) if len(val_archs) else (x, y)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = LatencyMLP(self.hidden, self.depth)
        with num_threads(threads or torch.get_num_threads()):
            best_epoch = self._train(x, y, xv, yv, epochs, lr, batch_size or len(x), seed)
            threads = torch.get_num_threads()
        self._record_fit(archs, machine, protocol, feature_max=self.feature_max.tolist(), hidden=self.hidden,
                         depth=self.depth, epochs=epochs, best_epoch=best_epoch, lr=lr, batch_size=batch_size,
                         seed=seed, fit_threads=threads, target="log(latency_ms)", loss="mse")
        return self

    def _train(self, x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, epochs: int, lr: float,
               batch_size: int, seed: int) -> int:
        """The training loop; keeps the weights of the epoch with the lowest (validation) loss, returns it."""
        shuffle = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        steps = epochs * math.ceil(len(x) / batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
        best_loss, best_state, best_epoch = math.inf, None, 0
        self.model.train()
        for epoch in range(epochs):
            for batch in torch.randperm(len(x), generator=shuffle).split(batch_size):
                loss = nn.functional.mse_loss(self.model(x[batch]), y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
            with torch.no_grad():
                score = nn.functional.mse_loss(self.model(xv), yv).item()
            if score < best_loss:
                best_loss, best_epoch = score, epoch + 1
                best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return best_epoch

    @torch.inference_mode()
    def predict(self, archs: Sequence[Arch], chunk: int = 8192) -> np.ndarray:
        """Latency (ms) of every architecture; chunked so a large grid does not need one huge activation."""
        x = self._inputs(archs)
        out = [torch.exp(self.model(x[i:i + chunk])) for i in range(0, len(x), chunk)]
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {**self.model.state_dict(), "feature_max": torch.as_tensor(self.feature_max)}

    def _load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.feature_max = tensors.pop("feature_max").numpy()
        self.model.load_state_dict(tensors)
        self.model.eval()

    @classmethod
    def _from_metadata(cls, metadata: dict) -> MLPPredictor:
        return cls(hidden=metadata["hidden"], depth=metadata["depth"])


class AnalyticPredictor(LatencyPredictor):
    """latency ≈ a·GFLOPs + b·M-parameters + c·layers + e·layers·heads + d, least squares weighted by 1/latency."""

    kind = "analytic"
    TERMS: ClassVar[tuple[str, ...]] = ("ms_per_gflop", "ms_per_mparam", "ms_per_layer", "ms_per_layer_head",
                                        "ms_intercept")

    def __init__(self, seq_len: int = 128, pooler: bool = True):
        super().__init__()
        self.seq_len, self.pooler = seq_len, pooler
        self.coef = np.zeros(len(self.TERMS))

    def _design(self, archs: Sequence[Arch]) -> np.ndarray:
        """Columns: GFLOPs, millions of parameters, layers, layers x heads, 1 (units keep the problem well posed)."""
        layers = np.array([a.layers for a in archs], dtype=np.float64)
        heads = np.array([a.heads for a in archs], dtype=np.float64)
        return np.column_stack([flops(archs, self.seq_len, self.pooler) / 1e9,
                                parameters(archs, pooler=self.pooler) / 1e6, layers, layers * heads,
                                np.ones(len(archs))])

    def fit(self, archs: Sequence[Arch], latency_ms: Sequence[float], *, machine: dict | None = None,
            protocol: Protocol | None = None, **unused) -> AnalyticPredictor:
        if protocol is not None:
            self.seq_len, self.pooler = protocol.seq_len, protocol.pooler
        y = np.asarray(latency_ms, dtype=np.float64)
        a = self._design(archs)
        self.coef = np.linalg.lstsq(a / y[:, None], np.ones_like(y), rcond=None)[0]  # min sum((a·c - y) / y)^2
        self._record_fit(archs, machine, protocol, seq_len=self.seq_len, pooler=self.pooler,
                         coefficients=dict(zip(self.TERMS, self.coef.tolist())))
        return self

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        return self._design(archs) @ self.coef

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"coef": torch.as_tensor(self.coef)}

    def _load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.coef = tensors["coef"].numpy()

    @classmethod
    def _from_metadata(cls, metadata: dict) -> AnalyticPredictor:
        return cls(seq_len=metadata["seq_len"], pooler=metadata["pooler"])


# ---------------------------------------------------------------------------------- the recipe
def _mlp_settings(mlp: dict | None) -> dict:
    """``MLPPredictor.fit`` keywords of a settings dict, on one thread unless it says otherwise (determinism)."""
    return {"threads": 1, **(mlp or {})}


def fit_inputs_digest(archs: Sequence[Arch], latency_ms: Sequence[float], *, split: Sequence[float] = (0.8, 0.1, 0.1),
                      seed: int = 0, mlp: dict | None = None, machine: dict | None = None,
                      protocol: Protocol | None = None) -> str:
    """SHA-256 of everything :func:`fit_predictors` depends on: the sweep (architectures and latencies, exactly),
    the split, the seed, the MLP settings, the protocol and the machine (its :data:`MACHINE_KEYS`)."""
    protocol = protocol or Protocol()
    machine = machine or machine_info(protocol.threads)
    inputs = {"archs": [str(a) for a in archs], "latency_ms": [float(t).hex() for t in latency_ms],
              "split": [float(f) for f in split], "seed": seed, "mlp": _mlp_settings(mlp),
              "protocol": protocol.as_dict(), "machine": {k: str(machine.get(k)) for k in MACHINE_KEYS}}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def fit_predictors(archs: Sequence[Arch], latency_ms: Sequence[float], *, split: Sequence[float] = (0.8, 0.1, 0.1),
                   seed: int = 0, mlp: dict | None = None, machine: dict | None = None,
                   protocol: Protocol | None = None) -> tuple[dict[str, LatencyPredictor], dict[str, np.ndarray]]:
    """Split a measured sweep, fit both predictors on the training part and score them on the test part.

    Returns the predictors (their ``metadata["metrics"]`` holds the test metrics, ``metadata["inputs_sha256"]``
    the :func:`fit_inputs_digest`) and the split indices (``{"train", "val", "test"}``). The analytic model has no
    hyper-parameters: it uses train only. The MLP is fitted on one thread unless ``mlp["threads"]`` says otherwise.
    """
    archs, y = list(archs), np.asarray(latency_ms, dtype=np.float64)
    train, val, test = split_indices(len(archs), split, seed)
    pick = lambda idx: [archs[i] for i in idx]  # noqa: E731
    common = {"machine": machine, "protocol": protocol}
    predictors: dict[str, LatencyPredictor] = {
        "mlp": MLPPredictor().fit(pick(train), y[train], val_archs=pick(val), val_latency_ms=y[val],
                                  **common, **_mlp_settings(mlp)),
        "analytic": AnalyticPredictor().fit(pick(train), y[train], **common),
    }
    digest = fit_inputs_digest(archs, y, split=split, seed=seed, mlp=mlp, machine=machine, protocol=protocol)
    for predictor in predictors.values():
        # chosen on validation (best_predictor), reported on test: the test split decides nothing
        predictor.metadata["val_metrics"] = predictor.evaluate(pick(val), y[val]) if len(val) else None
        predictor.metadata["metrics"] = predictor.evaluate(pick(test), y[test]) if len(test) else None
        predictor.metadata["split"] = {"fractions": list(split), "seed": seed, "n_train": len(train),
                                       "n_val": len(val), "n_test": len(test)}
        predictor.metadata["inputs_sha256"] = digest
    return predictors, {"train": train, "val": val, "test": test}


def load_or_fit_predictors(directory: str | Path, archs: Sequence[Arch], latency_ms: Sequence[float], *,
                           split: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, mlp: dict | None = None,
                           machine: dict | None = None, protocol: Protocol | None = None, refit: bool = False
                           ) -> tuple[dict[str, LatencyPredictor], dict[str, np.ndarray]]:
    """:func:`fit_predictors`, reusing the predictors saved in ``directory/<name>`` when they were fitted to the
    same inputs (same :func:`fit_inputs_digest`); otherwise (or with ``refit=True``) fit them and save them there.

    Returns what :func:`fit_predictors` returns; a reused predictor has ``loaded_from`` set.
    """
    directory, archs = Path(directory), list(archs)
    fit = {"split": split, "seed": seed, "mlp": mlp, "machine": machine, "protocol": protocol}
    if not refit and all((directory / name / META_FILE).exists() and (directory / name / WEIGHTS_FILE).exists()
                         for name in PREDICTORS):
        digest = fit_inputs_digest(archs, latency_ms, **fit)
        stored = {name: json.loads((directory / name / META_FILE).read_text()).get("inputs_sha256")
                  for name in PREDICTORS}
        if all(d == digest for d in stored.values()):
            protocol = protocol or Protocol()
            expect = machine or machine_info(protocol.threads)
            train, val, test = split_indices(len(archs), split, seed)
            return ({name: LatencyPredictor.load(directory / name, expect_machine=expect) for name in PREDICTORS},
                    {"train": train, "val": val, "test": test})
    predictors, indices = fit_predictors(archs, latency_ms, **fit)
    for name, predictor in predictors.items():
        predictor.save(directory / name)
    return predictors, indices


def choose_predictor(scores: dict[str, dict]) -> str:
    """The name of the predictor with the lowest validation MAPE (``val_mape``) among ``{name: metrics}`` (as notebook
    02 records them); a tie goes to the first. Raises ``ValueError`` if none has one (a record from before the
    choice moved to the validation split, or a sweep too small to hold one: rerun notebook 02)."""
    scored = {n: m["val_mape"] for n, m in scores.items()
              if isinstance(m, dict) and m.get("val_mape") is not None and math.isfinite(m["val_mape"])}
    if not scored:
        raise ValueError("02_latency.json holds no predictor with a validation MAPE (val_mape): rerun notebook 02")
    return min(scored, key=scored.get)


def best_predictor(latency_record: dict, directory: str | Path) -> tuple[str, LatencyPredictor]:
    """``(name, predictor)``: the predictor of notebook 02's record (``results/<scale>/02_latency.json``) with the
    lowest **validation** MAPE (:func:`choose_predictor`), loaded from ``directory/<name>`` (``Layout(scale).latency``).

    The test split is only reported, never used to choose. Raises ``ValueError`` if none is scored, :class:`ForeignMachineError` if the saved predictor
    was fitted on another machine than the record's, and ``ValueError`` if the record names the inputs its
    predictor was fitted to (``inputs_sha256``) and the saved one was fitted to others (refitted since).
    """
    name = choose_predictor(latency_record["predictor"])
    directory = Path(directory) / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ForeignMachineWarning)  # raised below, with the same differences
        predictor = LatencyPredictor.load(directory, expect_machine=latency_record["machine"])
    if predictor.foreign_machine:
        stored, expected = predictor.metadata.get("machine", {}), latency_record["machine"]
        differ = {k: (stored.get(k), expected.get(k)) for k in MACHINE_KEYS if str(stored.get(k)) != str(expected.get(k))}
        raise ForeignMachineError(f"{directory}: the {name} predictor was fitted to latencies of another machine than "
                                  f"02_latency.json's (predictor vs record: {differ}); rerun notebook 02 here")
    wanted = latency_record["predictor"][name].get("inputs_sha256")
    if wanted is not None and predictor.metadata.get("inputs_sha256") != wanted:
        raise ValueError(f"{directory}: the {name} predictor was fitted to other inputs than the one 02_latency.json "
                         "records (refitted since?); rerun notebook 02")
    return name, predictor


# -------------------------------------------------------------------------------------- figures
def plot_predictions(measured_ms: np.ndarray, predicted_ms: dict[str, np.ndarray], title: str):
    """Predicted against measured latency, one panel per predictor, with the band a 0.85–1.1 window spans."""
    import matplotlib.pyplot as plt

    measured_ms = np.asarray(measured_ms)
    fig, axes = plt.subplots(1, len(predicted_ms), figsize=(4.5 * len(predicted_ms), 4.2), sharex=True,
                             sharey=True, squeeze=False)
    everything = np.concatenate([measured_ms, *map(np.asarray, predicted_ms.values())])
    lo, hi = 0.9 * everything.min(), 1.1 * everything.max()
    for ax, (name, predicted) in zip(axes[0], predicted_ms.items()):
        m = metrics(measured_ms, predicted)
        rho = "n/a" if m["spearman"] is None else f"{m['spearman']:.3f}"
        ax.scatter(measured_ms, predicted, s=14)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.fill_between([lo, hi], [WINDOW_LOW * lo, WINDOW_LOW * hi], [WINDOW_HIGH * lo, WINDOW_HIGH * hi],
                        color="grey", alpha=0.15, label=f"{WINDOW_LOW}–{WINDOW_HIGH} × measured")
        ax.set(xscale="log", yscale="log", xlabel="measured latency (ms)",
               title=f"{name}: MAPE {m['mape']:.1f} %, ρ {rho}")
    axes[0, 0].set_ylabel("predicted latency (ms)")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
