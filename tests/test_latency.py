"""Latency measurement, the speedup window, resumable sweeps and the latency predictors.

No test asserts on a real timing (the machine is shared): where a number matters, the timer is faked.
"""

import dataclasses
import json
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import atb.latency as latency
import atb.latency_predictor as latency_predictor
from atb import Arch, AtbBertConfig, AtbBertModel, SearchSpace, zoo
from atb.latency import (
    CSV_FIELDS, ForeignSweepError, LatencyMeter, LatencySettings, Measurement, Protocol, is_feasible, latency_window,
    machine_info, measure, previous_path, read_sweep, sweep, sweep_archs, target_latency, zoo_sweep,
)
from atb.latency_predictor import (
    AnalyticPredictor, ForeignMachineError, ForeignMachineWarning, LatencyPredictor, MLPPredictor, best_predictor,
    fit_predictors, flops, load_or_fit_predictors, metrics, parameters, split_indices,
)
from atb.search import SearchConfig
from conftest import write_scale_config

TINY = Arch(1, 32, 64, 2, 32)
FAST = Protocol(seq_len=16, warmup=1, runs=2)


def fake_measurement(arch: Arch, protocol: Protocol | None = None, **_) -> Measurement:
    """A deterministic 'latency' that grows with the work, for tests that must not time anything."""
    ms = float(flops([arch], 128)[0]) / 1e8 + 0.5
    return Measurement(arch, (ms,), (ms,), protocol or Protocol())


# ------------------------------------------------------------------------------------ the window
def test_target_is_bert_base_over_speedup():
    assert target_latency(300.0, 10.0) == pytest.approx(30.0)
    assert latency_window(300.0, 10.0) == pytest.approx((0.85 * 30.0, 1.1 * 30.0))


def test_window_boundaries_are_inclusive():
    low, high = latency_window(250.0, 8.0)
    assert is_feasible(low, 250.0, 8.0) and is_feasible(high, 250.0, 8.0)
    assert is_feasible(250.0 / 8.0, 250.0, 8.0)
    assert not is_feasible(np.nextafter(low, 0), 250.0, 8.0)
    assert not is_feasible(np.nextafter(high, np.inf), 250.0, 8.0)
    grid = np.array([low - 1e-6, low, 31.0, high, high + 1e-6])
    assert is_feasible(grid, 250.0, 8.0).tolist() == [False, True, True, True, False]


@pytest.mark.parametrize("bert_base_ms, s", [(0.0, 5.0), (300.0, 0.0), (300.0, -2.0)])
def test_window_rejects_nonpositive_inputs(bert_base_ms, s):
    with pytest.raises(ValueError):
        latency_window(bert_base_ms, s)


# ----------------------------------------------------------------------------------- measurement
def test_measure_a_tiny_model_restores_threads():
    before = torch.get_num_threads()
    m = measure(TINY, FAST)
    assert torch.get_num_threads() == before
    assert m.arch == TINY and len(m.wall_ms) == len(m.cpu_ms) == FAST.runs
    assert m.latency_ms > 0 and m.latency_ms == np.median(m.cpu_ms)  # the default clock
    assert m.protocol.threads == 1
    wall = measure(TINY, dataclasses.replace(FAST, clock="wall"))
    assert wall.latency_ms == np.median(wall.wall_ms)
    with pytest.raises(ValueError, match="wall"):
        Protocol(threads=2, clock="cpu")


@pytest.mark.parametrize("bad", ["1/32/64/2/32", {"layers": 1}, None, (1, 32, 64, 2, 32)])
def test_measure_rejects_what_is_not_an_arch(bad):
    with pytest.raises(ValueError, match="expected an Arch"):
        measure(bad, FAST)


def test_measure_rejects_nonpositive_fields_and_archs_outside_a_space():
    tampered = Arch(1, 32, 64, 2, 32)
    object.__setattr__(tampered, "hidden", 0)  # Arch validates at construction; this bypasses it
    with pytest.raises(ValueError, match="hidden"):
        measure(tampered, FAST)
    with pytest.raises(ValueError, match="outside"):
        measure(Arch(3, 32, 64, 2, 32), FAST, space=SearchSpace.preset("smoke", "mlm"))


def test_transformers_model_needs_qkv_equal_hidden():
    with pytest.raises(ValueError, match="qkv == hidden"):
        measure(Arch(1, 32, 64, 2, 16), FAST, implementation="transformers")
    models = {impl: latency.build_model(TINY, impl) for impl in latency.IMPLEMENTATIONS}
    atb_params, hf_params = (sum(p.numel() for p in m.parameters()) for m in models.values())
    assert atb_params == hf_params == parameters([TINY])[0]  # the same network, counted independently
    row = latency.compare_implementations([TINY], FAST).iloc[0]  # really timed: only its arithmetic is checked
    assert row["arch"] == str(TINY) and row["ratio"] == row["atb_ms"] / row["transformers_ms"]


@pytest.mark.parametrize("clock, scale", [("cpu", 1.0), ("wall", 2.0)])
def test_implementations_are_timed_in_turns_on_the_protocol_clock(monkeypatch, clock, scale):
    """Fake models advance a fake clock by known costs: the table must hold their medians, timed A, B, A, B."""
    now = {"cpu": 0.0, "wall": 0.0}
    calls = []
    costs = {"atb": iter([9.0, 3.0, 1.0, 2.0]), "transformers": iter([9.0, 4.0, 10.0, 4.0])}  # ms; first = warm-up

    def fake_model(arch, implementation, pooler):
        def forward(ids, attention_mask=None):
            calls.append(implementation)
            cost = next(costs[implementation]) / 1e3
            now["cpu"] += cost
            now["wall"] += 2 * cost  # a busy machine: wall = 2 x CPU
        return forward

    monkeypatch.setattr(latency, "build_model", fake_model)
    monkeypatch.setattr(latency, "time", types.SimpleNamespace(perf_counter=lambda: now["wall"],
                                                               thread_time=lambda: now["cpu"]))
    protocol = dataclasses.replace(FAST, warmup=1, runs=3, clock=clock)
    row = latency.compare_implementations([TINY], protocol).iloc[0]
    assert calls == ["atb", "transformers"] * 4
    assert row["atb_ms"] == pytest.approx(scale * 2.0, rel=1e-9)  # median of 3, 1, 2
    assert row["transformers_ms"] == pytest.approx(scale * 4.0, rel=1e-9)  # median of 4, 10, 4
    assert row["ratio"] == pytest.approx(0.5, rel=1e-9)


def test_speedup_is_relative_to_a_measured_bert_base(monkeypatch):
    calls = []
    monkeypatch.setattr(latency, "build_model", lambda arch, implementation, pooler: arch)

    def fake_timer(models, inputs, warmup, runs):  # "model" is the arch: 1 ms per layer and 100 hidden units
        calls.append(models["model"])
        seconds = {n: m.layers * m.hidden / 100 / 1e3 for n, m in models.items()}
        return {n: {"wall": [2 * t] * runs, "cpu": [t] * runs} for n, t in seconds.items()}  # busy: wall = 2 x CPU

    monkeypatch.setattr(latency, "time_interleaved", fake_timer)
    meter = LatencyMeter(FAST)
    kd_s4 = zoo.ZOO["KD-S4"].arch
    assert meter.speedup(kd_s4) == pytest.approx((12 * 768) / (4 * 256))
    assert meter.speedup(Arch(6, 768, 3072, 12, 768)) == pytest.approx(2.0)
    assert calls.count(zoo.BERT_BASE) == 1  # measured once, in this run, then reused
    bert_base_ms = 12 * 768 / 100
    assert meter.bert_base.latency_ms == pytest.approx(bert_base_ms)
    assert meter.window(10.0) == pytest.approx((0.85 * bert_base_ms / 10, 1.1 * bert_base_ms / 10))


def _drifting_timer(factors: list[float]):
    """A machine that gets slower call after call (``factors``), for the model and the reference timed beside it
    alike, with one noisy run per call: each time the model and reference are timed, ``load`` multiplies both."""
    calls = iter(factors)

    def timer(models, inputs, warmup, runs):
        load = next(calls)
        out = {}
        for name, m in models.items():
            base = m.layers * m.hidden / 100 / 1e3 * load
            cpu = [base * (1.5 if i == 0 else 1.0) for i in range(runs)]  # the first run hit a busy moment
            out[name] = {"wall": cpu, "cpu": cpu}
        return out
    return timer


def test_a_reference_timed_beside_each_candidate_divides_out_the_drift(monkeypatch):
    monkeypatch.setattr(latency, "build_model", lambda arch, implementation, pooler: arch)
    latency._reference_model.cache_clear()
    true_speedup = (12 * 768) / (4 * 256)
    kd_s4 = zoo.ZOO["KD-S4"].arch
    plain = Protocol(runs=3, warmup=0)
    monkeypatch.setattr(latency, "time_interleaved", _drifting_timer([1.0, 1.3]))  # BERT-base, then KD-S4 30 % slower
    drifted = LatencyMeter(plain).speedup(kd_s4)
    assert drifted == pytest.approx(true_speedup / 1.3)  # without a reference the busier hour shows up as a speedup
    robust = Protocol(runs=3, warmup=0, statistic="min", reference="4/256/1024/4/256")
    monkeypatch.setattr(latency, "time_interleaved", _drifting_timer([1.0, 1.3]))
    meter = LatencyMeter(robust)
    assert meter.speedup(kd_s4) == pytest.approx(true_speedup)
    assert meter.bert_base.latency_ms == pytest.approx(12 * 768 / 100)  # min ignores the busy first run


def test_noisy_measurements_are_retimed_and_the_least_spread_one_kept(monkeypatch):
    monkeypatch.setattr(latency, "build_model", lambda arch, implementation, pooler: arch)
    spreads = iter([[1.0, 2.0, 1.0], [1.0, 1.2, 1.0], [1.0, 1.01, 1.0]])
    seen = []

    def timer(models, inputs, warmup, runs):
        runs_s = [1e-3 * x for x in next(spreads)]
        seen.append(runs_s)
        return {"model": {"wall": runs_s, "cpu": runs_s}}

    monkeypatch.setattr(latency, "time_interleaved", timer)
    m = latency.measure(zoo.BERT_BASE, Protocol(runs=3, warmup=0, max_rsd=0.05, retries=1))
    assert len(seen) == 2 and m.cpu_ms == pytest.approx((1.0, 1.2, 1.0))  # one retry allowed: the better of two
    with pytest.raises(ValueError, match="statistic"):
        Protocol(statistic="mean")
    with pytest.raises(ValueError, match="not-an-arch|L/d_m"):
        Protocol(reference="not-an-arch")


def test_drift_correction_and_report_of_a_sweep():
    table = pd.DataFrame({"arch": ["a", "b", "c", "d"], "latency_ms": [10.0, 22.0, 36.0, 8.0],
                          "reference_ms": [5.0, 5.5, 6.0, 4.0]})
    corrected = latency.drift_corrected(table)
    assert corrected["raw_latency_ms"].tolist() == [10.0, 22.0, 36.0, 8.0]
    assert corrected["latency_ms"].tolist() == pytest.approx([10.0, 22 / 5.5 * 5, 36 / 6 * 5, 8 / 4 * 5])
    # appending rows never changes the corrected latency of the rows already there (BERT-base, read first)
    assert latency.drift_corrected(table.iloc[:2])["latency_ms"].tolist() == corrected["latency_ms"].tolist()[:2]
    report = latency.drift_report(table)
    assert report["max_over_min"] == pytest.approx(1.5) and report["median_ms"] == pytest.approx(5.25)
    no_reference = table.assign(reference_ms=float("nan"))
    assert latency.drift_report(no_reference) is None
    assert latency.drift_corrected(no_reference)["latency_ms"].tolist() == [10.0, 22.0, 36.0, 8.0]


def test_speedup_movement_between_two_timings():
    first = pd.DataFrame({"name": ["x", "y"], "measured": [10.0, 20.0]})
    second = pd.DataFrame({"name": ["x", "y"], "measured": [11.0, 19.0]})
    moved = latency.speedup_movement(first, second)
    assert moved["max_abs"] == pytest.approx(0.1) and moved["worst"] == "x"
    assert moved["median_abs"] == pytest.approx(0.075)


def test_zoo_speedups_and_their_agreement_with_the_paper(monkeypatch):
    monkeypatch.setattr(latency, "measure", fake_measurement)
    table = latency.zoo_speedups(LatencyMeter(FAST), progress=False)
    assert table["name"].tolist() == list(zoo.ZOO) and table["paper"].isna().sum() == 8
    bert_base_ms = fake_measurement(zoo.BERT_BASE).latency_ms
    assert table.loc[0, "measured"] == pytest.approx(bert_base_ms / table.loc[0, "latency_ms"])
    table["measured"] = table["paper"] * np.where(table["objective"] == "kd", 2.0, 1.0)  # KD twice as fast here
    agree = latency.speedup_agreement(table)
    assert agree["n"] == 8 and agree["by_objective"] == pytest.approx({"kd": 2.0, "mlm": 1.0})
    assert agree["mean_ratio"] == pytest.approx(2 ** 0.5) and agree["max_ratio"]["ratio"] == pytest.approx(2.0)


def test_zoo_speedups_from_the_sweep_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "measure", fake_measurement)
    reference = zoo_sweep(tmp_path / "sweep.csv", FAST, progress=False)
    assert reference["arch"].tolist() == [str(zoo.BERT_BASE), *(str(m.arch) for m in zoo.ZOO.values())]
    table = latency.zoo_speedups(reference)
    stored = {a: float(f"{fake_measurement(Arch.parse(a)).latency_ms:.6g}") for a in reference["arch"]}  # 6 digits
    assert table["latency_ms"].tolist() == [stored[str(m.arch)] for m in zoo.ZOO.values()]
    assert table["measured"].tolist() == [stored[str(zoo.BERT_BASE)] / stored[str(m.arch)] for m in zoo.ZOO.values()]
    with pytest.raises(ValueError, match="no latency for"):
        latency.zoo_speedups(reference.iloc[1:])  # without BERT-base


# ------------------------------------------------------------------------------------ the sweeps
def test_an_interrupted_sweep_resumes_and_measures_only_what_is_missing(tmp_path, monkeypatch):
    archs = [Arch(1, 32, 32 * k, 2, 32) for k in range(1, 6)]
    path = tmp_path / "sweep.csv"
    machine = machine_info(FAST.threads)
    rows = [latency._row(fake_measurement(a, FAST), machine) for a in archs[:2]]
    lines = [",".join(CSV_FIELDS)] + [",".join(str(r[k]) for k in CSV_FIELDS) for r in rows]
    truncated = ",".join(str(v) for v in latency._row(fake_measurement(archs[2], FAST), machine).values())[:20]
    path.write_text("\n".join(lines) + "\n" + truncated)  # killed while writing the third row

    measured = []
    monkeypatch.setattr(latency, "measure", lambda a, p=None, **kw: measured.append(a) or fake_measurement(a, p))
    with pytest.warns(UserWarning, match="truncated"):
        table = sweep(archs, path, FAST, progress=False)
    assert measured == archs[2:]
    assert table["arch"].tolist() == [str(a) for a in archs]
    assert len(read_sweep(path)) == 5 and path.read_text().endswith("\n")

    measured.clear()
    sweep(list(reversed(archs)), path, FAST, progress=False)  # a rerun measures nothing
    assert measured == []


def test_a_sweep_refuses_to_mix_protocols(tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "measure", fake_measurement)
    path = tmp_path / "sweep.csv"
    sweep([TINY], path, FAST, progress=False)
    with pytest.raises(ValueError, match="runs"):
        sweep([TINY, Arch(1, 32, 32, 2, 32)], path, dataclasses.replace(FAST, runs=5), progress=False)


def counting_measure(monkeypatch, drift: float = 0.0) -> list[Arch]:
    """Replace the timer with :func:`fake_measurement`; returns the list of timed archs. With ``drift`` every
    call runs ``drift`` slower than the one before, like a shared VM: re-timing would change the numbers."""
    timed: list[Arch] = []

    def fake(arch, protocol=None, **kw):
        m = fake_measurement(arch, protocol)
        factor = 1 + drift * len(timed)
        timed.append(arch)
        reference = tuple(factor * 1.0 for _ in m.cpu_ms) if m.protocol.reference else ()  # drifts alike
        return dataclasses.replace(m, wall_ms=tuple(factor * t for t in m.wall_ms),
                                   cpu_ms=tuple(factor * t for t in m.cpu_ms),
                                   reference_wall_ms=reference, reference_cpu_ms=reference)

    monkeypatch.setattr(latency, "measure", fake)
    return timed


def test_a_sweep_records_the_machine_and_protocol_and_is_reused_without_timing(tmp_path, monkeypatch):
    timed = counting_measure(monkeypatch, drift=0.01)
    path = tmp_path / "sweep.csv"
    archs = [TINY, Arch(1, 32, 96, 2, 32)]
    first = sweep(archs, path, FAST, progress=False)
    here = machine_info(FAST.threads)
    row = read_sweep(path).iloc[0]
    assert {k: row[k] for k in ("cpu", "cores", "isa", "torch")} == \
        {"cpu": here["cpu"], "cores": str(here["cores"]), "isa": here["arch"], "torch": here["torch"]}
    assert {k: row[k] for k in FAST.as_dict()} == FAST.as_dict()
    assert timed == archs
    again = sweep(archs, path, FAST, progress=False)
    assert timed == archs and again.equals(first)  # nothing timed, the same numbers


def test_a_sweep_of_another_machine_is_refused_and_retimed_on_request(tmp_path, monkeypatch):
    timed = counting_measure(monkeypatch, drift=0.01)
    path = tmp_path / "sweep.csv"
    sweep([TINY], path, FAST, progress=False)
    stored = path.read_text()
    elsewhere = {**machine_info(FAST.threads), "cpu": "Some Other CPU", "cores": 64}
    monkeypatch.setattr(latency, "machine_info", lambda threads=1: {**elsewhere, "threads": threads})
    with pytest.raises(ForeignSweepError, match=r"another machine.*cpu: .* there, 'Some Other CPU' here.*retime=True"):
        sweep([TINY], path, FAST, progress=False)
    assert len(timed) == 1 and path.read_text() == stored  # refused: nothing timed, nothing touched
    table = sweep([TINY], path, FAST, retime=True, progress=False)
    assert len(timed) == 2 and previous_path(path).read_text() == stored
    assert read_sweep(path)["cpu"].tolist() == ["Some Other CPU"]
    assert table.loc[0, "latency_ms"] != read_sweep(previous_path(path)).loc[0, "latency_ms"]  # timed again


def test_retime_on_the_same_machine_measures_everything_again(tmp_path, monkeypatch):
    timed = counting_measure(monkeypatch)
    path = tmp_path / "sweep.csv"
    sweep([TINY, Arch(1, 32, 96, 2, 32)], path, FAST, progress=False)
    sweep([TINY], path, FAST, retime=True, progress=False)
    assert timed == [TINY, Arch(1, 32, 96, 2, 32), TINY]
    assert read_sweep(path)["arch"].tolist() == [str(TINY)] and len(read_sweep(previous_path(path))) == 2


def test_a_sweep_of_an_older_atb_is_refused(tmp_path, monkeypatch):
    timed = counting_measure(monkeypatch)
    path = tmp_path / "sweep.csv"
    path.write_text(",".join(latency._LEGACY_FIELDS) + "\n")
    with pytest.raises(ForeignSweepError, match="older atb.*retime=True"):
        sweep([TINY], path, FAST, progress=False)
    sweep([TINY], path, FAST, retime=True, progress=False)
    assert timed == [TINY] and read_sweep(path)["arch"].tolist() == [str(TINY)]


def test_a_sweep_rejects_an_invalid_arch_before_measuring(tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(latency, "measure", lambda a, p=None, **kw: measured.append(a) or fake_measurement(a, p))
    with pytest.raises(ValueError, match="expected an Arch"):
        sweep([TINY, "2/64/64/2/64"], tmp_path / "sweep.csv", FAST, progress=False)
    assert measured == []


def test_sweep_architectures_follow_the_settings():
    settings = LatencySettings.load("smoke")
    archs = latency.sweep_archs(settings)
    assert len(archs) == len(set(archs)) == 2 * settings.sweep_per_objective
    assert archs == latency.sweep_archs(settings)  # seeded
    mini = LatencySettings.load("mini")
    assert mini.split == (0.8, 0.1, 0.1) and mini.include_zoo
    # the paper's protocol, made robust to a shared CPU (minimum, a reference beside each candidate, re-timing)
    assert mini.protocol == Protocol(statistic="min", reference="4/256/1024/4/256", max_rsd=0.05, retries=2)


def test_settings_reject_unknown_keys(tmp_path):
    path = write_scale_config(tmp_path / "latency.yaml", latency={"space": "smoke", "sweep_per_objective": 2, "runz": 3})
    with pytest.raises(ValueError, match=r"latency.yaml: latency.*runz"):
        LatencySettings.load(path)
    nested = write_scale_config(tmp_path / "nested.yaml", latency={"protocol": {"threadz": 2}})
    with pytest.raises(ValueError, match=r"latency.protocol.*threadz"):
        LatencySettings.load(nested)
    with pytest.raises(ValueError, match="no such config file"):
        LatencySettings.load("huge")


# -------------------------------------------------------------------------------------- the zoo
def test_the_zoo_has_the_sixteen_models_of_the_notes():
    assert len(zoo.ZOO) == 16 and len(zoo.published()) == len(zoo.baselines()) == 8
    assert zoo.ZOO["S1"].arch == Arch(5, 564, 1054, 8, 512) and zoo.ZOO["S1"].paper_speedup == 7.2
    assert not SearchSpace.preset("paper", "mlm").contains(zoo.ZOO["S1"].arch)  # d_f off the step-4 grid
    assert all(m.paper_speedup is None for m in zoo.baselines())
    assert all(3.8 <= m.arch.ffn / m.arch.hidden <= 4 and m.arch.qkv - m.arch.hidden in (0, 4) for m in zoo.baselines())


# ---------------------------------------------------------------------------------- predictors
def synthetic(n: int = 200, seed: int = 0) -> tuple[list[Arch], np.ndarray]:
    """Architectures of the mini spaces with a latency that is exactly linear in FLOPs."""
    import random

    rng = random.Random(seed)
    spaces = [SearchSpace.preset("mini", o) for o in ("mlm", "kd")]
    archs = list(dict.fromkeys(spaces[i % 2].sample(rng) for i in range(n)))
    return archs, 0.8 + flops(archs) / 2e8


def test_parameter_count_matches_the_model():
    for arch in (TINY, Arch(2, 48, 80, 12, 36)):
        assert parameters([arch])[0] == AtbBertModel(AtbBertConfig.from_arch(arch)).num_parameters()


def test_analytic_predictor_recovers_an_exact_linear_law():
    archs, y = synthetic()
    predictor = AnalyticPredictor().fit(archs[:150], y[:150])
    m = predictor.evaluate(archs[150:], y[150:])
    assert m["mape"] < 1e-6 and m["spearman"] > 0.999


def test_mlp_predictor_learns_a_known_function_and_is_deterministic():
    archs, y = synthetic()
    fit = lambda: MLPPredictor(hidden=64).fit(archs[:150], y[:150], val_archs=archs[150:170],  # noqa: E731
                                              val_latency_ms=y[150:170], epochs=400, lr=3e-3, seed=1, threads=1)
    before = torch.get_num_threads()
    a, b = fit(), fit()
    assert torch.get_num_threads() == before and a.metadata["fit_threads"] == 1
    m = a.evaluate(archs[170:], y[170:])
    assert m["mape"] < 10 and m["spearman"] > 0.97
    assert np.array_equal(a.predict(archs), b.predict(archs))


def test_predictors_round_trip_through_safetensors(tmp_path):
    archs, y = synthetic(60)
    predictors, split = fit_predictors(archs, y, mlp={"hidden": 32, "epochs": 20, "threads": 1}, protocol=FAST)
    assert sorted(len(v) for v in split.values()) == [6, 6, 48]
    for name, predictor in predictors.items():
        predictor.save(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # same machine: no warning
            loaded = LatencyPredictor.load(tmp_path / name)
        assert type(loaded) is type(predictor) and not loaded.foreign_machine
        assert np.array_equal(loaded.predict(archs), predictor.predict(archs))
        assert loaded.metadata["metrics"] == predictor.metadata["metrics"]
        assert loaded.metadata["machine"] == machine_info(FAST.threads)


def test_a_predictor_from_another_machine_is_flagged(tmp_path):
    archs, y = synthetic(30)
    AnalyticPredictor().fit(archs, y).save(tmp_path)
    elsewhere = {**machine_info(), "cpu": "Some Other CPU"}
    with pytest.warns(ForeignMachineWarning, match="another machine"):
        loaded = LatencyPredictor.load(tmp_path, expect_machine=elsewhere)
    assert loaded.foreign_machine
    with pytest.raises(ValueError, match="not a MLPPredictor"):
        MLPPredictor.load(tmp_path)


def test_metrics_and_split():
    m = metrics(np.array([10.0, 20.0, 40.0]), np.array([11.0, 18.0, 40.0]))
    assert m["mape"] == pytest.approx(100 * (0.1 + 0.1 + 0) / 3) and m["spearman"] == pytest.approx(1.0)
    assert metrics(np.array([5.0]), np.array([5.0]))["spearman"] is None
    train, val, test = split_indices(100, seed=3)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))


# ----------------------------------------------------------------- the predictor the search gets
def _saved_predictors(runs_dir) -> dict:
    """Two analytic predictors saved as ``mlp`` and ``analytic`` of scale smoke; returns the machine they record."""
    archs, y = synthetic(30)
    for name in ("mlp", "analytic"):
        predictor = AnalyticPredictor().fit(archs, y, protocol=FAST)
        predictor.metadata["inputs_sha256"] = f"digest-of-{name}"
        predictor.save(runs_dir / name)
    return machine_info(FAST.threads)


OTHER_CPU = {"cpu": "Some Other CPU"}


@pytest.mark.parametrize("entries, machine, expected", [
    ({"mlp": {"val_mape": 3.0}, "analytic": {"val_mape": 2.0}}, {}, "analytic"),  # the lowest validation MAPE
    ({"mlp": {"val_mape": 2.0}, "analytic": {"val_mape": 3.0}}, {}, "mlp"),
    ({"mlp": {"val_mape": 2.0}, "analytic": {"val_mape": 2.0}}, {}, "mlp"),  # a tie: the first in the record
    ({"analytic": {"val_mape": 2.0}, "mlp": {"val_mape": 2.0}}, {}, "analytic"),
    ({"mlp": {"n_train": 5}, "analytic": {"val_mape": 9.0}}, {}, "analytic"),  # no MAPE: skipped
    ({"mlp": {"val_mape": None}, "analytic": {"val_mape": 9.0}}, {}, "analytic"),  # no test split: skipped
    ({"mlp": {"val_mape": float("nan")}, "analytic": {"val_mape": 9.0}}, {}, "analytic"),
    ({"mlp": {"val_mape": 1.0, "inputs_sha256": "digest-of-mlp"}}, {}, "mlp"),  # fitted to what the record says
    ({"mlp": {"val_mape": 9.0, "mape": 1.0}, "analytic": {"val_mape": 2.0, "mape": 5.0}}, {}, "analytic"),  # test: never
    ({"mlp": {"mape": 1.0}}, {}, (ValueError, "no predictor with a validation MAPE")),  # an old record: rerun 02
    ({"mlp": {}, "analytic": {"val_mape": None}}, {}, (ValueError, "no predictor with a validation MAPE")),
    ({}, {}, (ValueError, "no predictor with a validation MAPE")),
    ({"mlp": {"val_mape": 1.0}}, OTHER_CPU, (ForeignMachineError, "another machine.*Some Other CPU")),
    ({"mlp": {"val_mape": 1.0}}, {"cores": 1024}, (ForeignMachineError, "cores")),
    ({"mlp": {"val_mape": 1.0, "inputs_sha256": "stale"}}, {}, (ValueError, "other inputs")),
])
def test_best_predictor(tmp_path, entries, machine, expected):
    record = {"predictor": entries, "machine": {**_saved_predictors(tmp_path), **machine}}
    if isinstance(expected, tuple):
        with pytest.raises(expected[0], match=expected[1]):
            best_predictor(record, tmp_path)
        return
    name, predictor = best_predictor(record, tmp_path)
    assert name == expected and predictor.loaded_from == tmp_path / expected
    assert not predictor.foreign_machine


# ---------------------------------------------------------------- same inputs, same study (#11)
def latency_study(directory, settings: LatencySettings, *, retime: bool = False, refit: bool = False) -> dict:
    """What notebooks 02 and 03 derive from the latency folder: BERT-base, the predictors, the smoke constraints."""
    reference = zoo_sweep(directory / "sweep.csv", settings.protocol, retime=retime, progress=False)
    table = sweep(sweep_archs(settings), directory / "sweep.csv", settings.protocol, progress=False)
    archs = [Arch.parse(a) for a in table.arch]
    predictors, split = load_or_fit_predictors(directory, archs, table.latency_ms.to_numpy(), split=settings.split,
                                               seed=settings.seed, mlp=settings.mlp, protocol=settings.protocol,
                                               refit=refit)
    bert_base_ms = float(reference.latency_ms[0])
    cfg = SearchConfig.load("smoke")
    spaces = {o: SearchSpace.preset("smoke", o) for o in ("mlm", "kd")}
    grid = [a for space in spaces.values() for a in space.grid()]
    return {"bert_base_ms": bert_base_ms, "split": split, "predictors": predictors,
            "predictions": {n: p.predict(grid) for n, p in predictors.items()},
            "constraints": {(n, o): cfg.constraints(o, space, p, bert_base_ms)
                            for n, p in predictors.items() for o, space in spaces.items()}}


@pytest.mark.parametrize("reference", [None, "1/32/32/2/32"])  # with a reference, drift is divided out
def test_the_same_sweep_gives_the_same_predictors_and_constraints(tmp_path, monkeypatch, reference):
    """Two runs into the same folder: the second times nothing and fits nothing, and derives exactly the same
    BERT-base latency, predictions and smoke speedup constraints; a forced refit predicts bitwise the same.
    The smoke settings, with a narrower MLP (256 instead of 2000 units) to keep the test fast. With a reference,
    BERT-base is read before the sweep appends its rows, and must stay on the sweep's scale."""
    settings = LatencySettings.load("smoke")
    settings = dataclasses.replace(settings, mlp={**settings.mlp, "hidden": 256},
                                   protocol=dataclasses.replace(settings.protocol, reference=reference))
    assert SearchConfig.load("smoke").speedup_quantiles  # smoke's constraints come from the predictor
    timed = counting_measure(monkeypatch, drift=0.01)  # a drifting machine: any re-timing would show
    fits = []
    fit = latency_predictor.fit_predictors
    monkeypatch.setattr(latency_predictor, "fit_predictors", lambda *a, **k: fits.append(1) or fit(*a, **k))

    first = latency_study(tmp_path, settings)
    n_timed = len(timed)
    assert n_timed == 1 + len(zoo.ZOO) + len(sweep_archs(settings)) and fits == [1]
    second = latency_study(tmp_path, settings)
    assert len(timed) == n_timed and fits == [1]  # nothing timed, nothing fitted
    assert all(p.loaded_from == tmp_path / n for n, p in second["predictors"].items())
    assert second["bert_base_ms"] == first["bert_base_ms"]
    assert second["constraints"] == first["constraints"]
    for name, predicted in first["predictions"].items():
        assert np.array_equal(second["predictions"][name], predicted)
        assert second["predictors"][name].metadata["metrics"] == first["predictors"][name].metadata["metrics"]
    assert all(np.array_equal(second["split"][k], first["split"][k]) for k in first["split"])

    refitted = latency_study(tmp_path, settings, refit=True)  # deterministic: seeded, one thread, on the CPU
    assert len(timed) == n_timed and fits == [1, 1]
    assert refitted["constraints"] == first["constraints"]
    for name, predicted in first["predictions"].items():
        assert np.array_equal(refitted["predictions"][name], predicted)
    meta = json.loads((tmp_path / "mlp" / "predictor.json").read_text())
    assert meta["fit_threads"] == 1 and meta["inputs_sha256"] == first["predictors"]["mlp"].metadata["inputs_sha256"]


def test_predictors_are_refitted_when_the_sweep_changes(tmp_path):
    archs, y = synthetic(40)
    kwargs = {"mlp": {"hidden": 16, "epochs": 5}, "protocol": FAST}
    first, _ = load_or_fit_predictors(tmp_path, archs, y, **kwargs)
    assert all(p.loaded_from is None for p in first.values())
    reused, _ = load_or_fit_predictors(tmp_path, archs, y, **kwargs)
    assert all(p.loaded_from == tmp_path / n for n, p in reused.items())
    y[0] *= 1.0 + 1e-12  # one latency differs in its last digits
    changed, _ = load_or_fit_predictors(tmp_path, archs, y, **kwargs)
    assert all(p.loaded_from is None for p in changed.values())
    assert changed["mlp"].metadata["inputs_sha256"] != first["mlp"].metadata["inputs_sha256"]
