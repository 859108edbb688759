"""atb.deployment: every installed runtime computes what PyTorch fp32 computes (within its tolerance) for a model with
d_qkv != d_m; a wrong output is refused naming the runtime; speedups are over BERT-base within each runtime and round;
the ranking agreement; the settings."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from atb import Arch
from atb.config import ConfigError
from atb.deployment import (REFERENCE, RUNTIMES, DeploymentSettings, DeploymentTable, available, check_outputs,
                            deployment_protocol, ranking_agreement, session, time_runtimes)
from atb.latency import Protocol, build_model, example_inputs

ARCH = Arch.parse("2/64/96/4/48")  # d_qkv != d_m, as AutoTinyBERT's KD models
PROTOCOL = Protocol(seq_len=16, warmup=0, runs=2)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_runtime_computes_what_pytorch_computes(runtime, tmp_path):
    if not available(runtime):
        pytest.skip(f"{runtime} is not installed")
    torch.manual_seed(0)
    model, inputs = build_model(ARCH), example_inputs(PROTOCOL)
    check = check_outputs(runtime, session(runtime, model, inputs, tmp_path, "tiny", PROTOCOL), model, inputs)
    if runtime.endswith("fp32"):
        assert check["max_abs"] <= 1e-4
    else:
        assert 0.99 <= check["cosine"] <= 1.0 and check["max_abs"] > 0  # lower precision, yet the same function
    if runtime.startswith("onnx"):
        assert (tmp_path / "tiny.onnx").is_file()  # exported once, reused by the other ONNX runtimes


def test_a_wrong_output_is_refused_naming_the_runtime():
    model, inputs = build_model(ARCH), example_inputs(PROTOCOL)
    with torch.inference_mode():
        good = model(*inputs[:1], attention_mask=inputs[1]).last_hidden_state.numpy()
    with pytest.raises(ValueError, match="onnxruntime-fp32: output differs"):
        check_outputs("onnxruntime-fp32", lambda ids, attention_mask: good + 1e-3, model, inputs)
    with pytest.raises(ValueError, match="onnxruntime-int8: output differs"):
        check_outputs("onnxruntime-int8", lambda ids, attention_mask: -good, model, inputs)


def test_speedups_are_over_bert_base_in_the_same_runtime_and_round():
    rows = [("pytorch-fp32", REFERENCE, 0, 100.0), ("pytorch-fp32", "a", 0, 10.0),
            ("pytorch-fp32", REFERENCE, 1, 120.0), ("pytorch-fp32", "a", 1, 10.0),  # a slower round: 12x
            ("pytorch-fp32", REFERENCE, 2, 90.0), ("pytorch-fp32", "a", 2, 10.0),
            ("onnxruntime-fp32", REFERENCE, 0, 50.0), ("onnxruntime-fp32", "a", 0, 10.0)]
    table = DeploymentTable(pd.DataFrame(rows, columns=["runtime", "model", "round", "latency_ms"]), {}, PROTOCOL, {})
    out = table.speedups().set_index(["runtime", "model"])
    assert out.loc[("pytorch-fp32", "a"), ["speedup", "low", "high", "rounds"]].tolist() == [10.0, 9.0, 12.0, 3]
    assert out.loc[("pytorch-fp32", REFERENCE), "speedup"] == 1.0
    assert out.loc[("onnxruntime-fp32", "a"), "speedup"] == 5.0  # its own BERT-base, not PyTorch's
    assert list(out.index.get_level_values(0).unique()) == ["pytorch-fp32", "onnxruntime-fp32"]  # RUNTIMES' order


def test_ranking_agreement_per_runtime():
    paper = {"a": 2.0, "b": 4.0, "c": 8.0, "d": 16.0}
    speedups = pd.DataFrame({"runtime": ["x"] * 4 + ["y"] * 4, "model": list(paper) * 2,
                             "speedup": [1, 2, 3, 4, 4, 3, 2, 1]})
    agreement = ranking_agreement(speedups, paper)
    assert agreement["x"]["difference"] == pytest.approx(1.0) and agreement["y"]["difference"] == pytest.approx(-1.0)
    assert agreement["x"]["n"] == 4 and agreement["x"]["ci95"][0] <= 1.0


def test_timing_needs_bert_base_and_uses_the_wall_clock(tmp_path):
    with pytest.raises(ValueError, match="BERT-base"):
        time_runtimes({"tiny": ARCH}, tmp_path, PROTOCOL)
    protocol = deployment_protocol(Protocol(statistic="min", reference="4/256/1024/4/256", max_rsd=0.05, retries=2))
    assert (protocol.clock, protocol.reference, protocol.statistic) == ("wall", None, "min")


def test_a_tiny_table_end_to_end(tmp_path):
    table = time_runtimes({REFERENCE: Arch.parse("2/64/128/2/64"), "tiny": ARCH}, tmp_path, PROTOCOL,
                          runtimes=["pytorch-fp32", "onnxruntime-fp32"], rounds=2)
    out = table.speedups()
    assert set(out.runtime) == {r for r in ("pytorch-fp32", "onnxruntime-fp32") if available(r)}
    assert (out.rounds == 2).all() and np.isfinite(out.speedup).all() and (out.latency_ms > 0).all()
    assert set(table.checks["pytorch-fp32"]) == {REFERENCE, "tiny"}


def test_settings_are_checked_naming_the_field(tmp_path):
    assert DeploymentSettings.load("mini").rounds >= 1
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        DeploymentSettings(scale="x", runtimes=("tensorrt",))
    bad = tmp_path / "bad.yaml"
    bad.write_text("scale: bad\ndeployment: {round: 2}\n")
    with pytest.raises(ConfigError, match="deployment.*round"):
        DeploymentSettings.load(bad)


@pytest.mark.requires_data
def test_int8_predictions_of_a_fine_tuned_classifier(tmp_path):
    """A model fine-tuned as notebook 05 does, scored by PyTorch fp32 and by its int8 export: both predict every dev
    example, and int8 mostly agrees; the cost is paired over seeds and examples."""
    from atb.deployment import int8_cost, int8_predictions
    from atb.finetune import FinetuneConfig
    from atb.modeling import AtbBertConfig, AtbBertForMaskedLM

    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    AtbBertForMaskedLM(AtbBertConfig.from_arch(ARCH)).save_pretrained(model_dir)
    cfg = FinetuneConfig.load("smoke", "sst2")
    runs = {"tiny": {seed: int8_predictions(model_dir, "sst2", dataclasses.replace(cfg, seed=seed), tmp_path / "x")
                     for seed in (0, 1)}}
    first = runs["tiny"][0]
    assert len(first["fp32"]) == len(first["int8"]) == len(first["labels"]) == cfg.max_eval_examples
    cost = int8_cost("sst2", runs, n_boot=50)
    assert cost["n"] == 2 and cost["ci95"][0] <= cost["difference"] <= cost["ci95"][1]
    assert cost["agreement"] > 0.8 and set(cost["models"]) == {"tiny"}
