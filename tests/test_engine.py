"""The engine (atb.engine): precision detected and resolved per machine, autocast reaching the matmuls of every
training loop, the fused optimizer, and the config's `engine` section handed down to the loops' settings."""

import warnings

import pytest
import torch
from torch import nn

from atb import engine
from atb.config import ConfigError
from atb.distill import WarmupConfig
from atb.finetune import FinetuneConfig
from atb.train import TrainConfig
from atb.autobert_zero.study import AutoBertZeroStudyConfig
from conftest import write_scale_config

AMX_FLAGS = "fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile"
EPYC_FLAGS = "fpu sse avx2 fma"


# ------------------------------------------------------------------------------------ what the CPU can do
@pytest.mark.parametrize("flags, native", [(AMX_FLAGS, True), (EPYC_FLAGS, False), ("avx512f avx512_bf16", True),
                                           ("", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert engine.cpu_flags(cpuinfo) == frozenset(flags.split())
    assert engine.native_bf16("cpu", flags=engine.cpu_flags(cpuinfo)) is native
    assert engine.cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: nothing is assumed


@pytest.mark.parametrize("precision, native, expected", [
    ("auto", True, "bf16"), ("auto", False, "fp32"), ("fp32", True, "fp32"), ("bf16", False, "bf16"),
    ("bf16", True, "bf16")])
def test_auto_is_bf16_only_where_the_cpu_has_it(precision, native, expected):
    assert engine.resolve_precision(precision, "cpu", native=native) == expected


def test_bad_precisions_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="fp16.*needs a GPU"):
        engine.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="'finetune.precision'.*got 'half'"):
        FinetuneConfig(precision="half")
    with pytest.raises(ValueError, match="'warmup.fused_optimizer'.*true or false"):
        WarmupConfig(fused_optimizer="yes")
    with pytest.raises(ValueError, match="'pretrain.precision'"):
        TrainConfig(precision="int8")


def test_describe_names_the_cpu_and_what_was_computed():
    record = engine.describe("fp32", fused_optimizer=False)
    assert record["computed_in"] == "fp32" and record["optimizer"] == "AdamW" and record["cpu"]
    assert record["native_bf16"] == engine.native_bf16("cpu")
    assert engine.describe("auto")["computed_in"] == ("bf16" if engine.native_bf16("cpu") else "fp32")


# ------------------------------------------------------------------------------------------ numerics
def test_bf16_autocast_reaches_the_matmuls_and_fp32_does_not():
    layer = nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with engine.autocast("bf16"):
        assert layer(x).dtype == torch.bfloat16
    with engine.autocast("fp32"):
        assert layer(x).dtype == torch.float32
    assert layer.weight.dtype == torch.float32  # master weights stay fp32


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_groups_and_fusion(fused):
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    optimizer = engine.adamw(model.parameters(), lr=1e-3, weight_decay=0.01, fused=fused)
    assert bool(optimizer.defaults.get("fused")) is fused
    decay, no_decay = optimizer.param_groups
    assert [p.ndim for p in decay["params"]] == [2] and all(p.ndim == 1 for p in no_decay["params"])
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.01, 0.0)


def test_fused_and_unfused_steps_agree():
    """The fused optimizer and foreach clipping compute what the earlier loop did, up to float rounding."""
    def train(fused: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 1))
        params = list(model.parameters())
        optimizer = engine.adamw(params, lr=1e-2, weight_decay=0.01, fused=fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        for step in range(5):
            x = torch.randn(8, 16, generator=torch.Generator().manual_seed(step))
            model(x).pow(2).mean().mul(100).backward()  # large gradients: clipping is active
            norm = engine.clip_and_step(optimizer, scheduler, params, 1.0, foreach=fused)
            assert norm > 1.0 and all(p.grad is None for p in params)
        return [p.detach().clone() for p in params]

    for a, b in zip(train(True), train(False)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [0.01, 100.0])  # within the bound (no multiply) and above it (clipped)
def test_clipping_is_clip_grad_norm_to_the_bit(scale):
    """clip_and_step skips clip_grad_norm_'s multiply by exactly 1.0 within the bound: the same gradients either way."""
    def step(ours: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 1))
        params = list(model.parameters())
        model(torch.randn(8, 16)).pow(2).mean().mul(scale).backward()
        optimizer = torch.optim.SGD(params, lr=1.0)  # p - grad: the gradients the optimizer saw, to the bit
        if ours:
            norm = engine.clip_and_step(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0),
                                        params, 1.0)
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            optimizer.step()
        return norm, [p.detach() for p in params]

    (ours, ours_grads), (theirs, their_grads) = step(True), step(False)
    assert bool(ours > 1.0) is (scale > 1) and torch.equal(ours, theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours_grads, their_grads))


# ---------------------------------------------------------------------------------- the `engine` section
def test_the_engine_section_is_the_default_of_every_training_loop(tmp_path):
    path = write_scale_config(
        tmp_path / "s.yaml", engine={"precision": "fp32", "fused_optimizer": False},
        pretrain={"space": "smoke", "kd": {"precision": "bf16"}},  # a loop's own setting wins
        finetune={"glue": {"epochs": 1}},
        autobert_zero={"warmup": {"steps": 3}, "conv_kd": {"steps": 2, "precision": "bf16"}})
    mlm, kd = TrainConfig.load(path, "mlm"), TrainConfig.load(path, "kd")
    assert (mlm.precision, mlm.fused_optimizer, kd.precision, kd.fused_optimizer) == ("fp32", False, "bf16", False)
    glue = FinetuneConfig.load(path, "rte")
    assert (glue.precision, glue.fused_optimizer, glue.epochs) == ("fp32", False, 1)
    study = AutoBertZeroStudyConfig.load(path)
    assert study.warmup_config().precision == "fp32" and study.warmup_config().steps == 3
    assert study.conv_kd_config().precision == "bf16" and not study.conv_kd_config().fused_optimizer
    default = write_scale_config(tmp_path / "d.yaml", pretrain={"space": "smoke"})
    assert TrainConfig.load(default, "mlm").precision == "auto" and FinetuneConfig.load(default, "rte").fused_optimizer


@pytest.mark.parametrize("section, message", [
    ({"precison": "fp32"}, r"engine: unknown key\(s\) \['precison'\]"),
    ({"precision": "fp8"}, r"'engine.precision' must be one of"),
])
def test_a_bad_engine_section_is_named(tmp_path, section, message):
    path = write_scale_config(tmp_path / "bad.yaml", engine=section, pretrain={"space": "smoke"})
    with pytest.raises(ConfigError, match=message):
        TrainConfig.load(path, "mlm")


@pytest.mark.parametrize("scale", ["smoke", "mini", "base", "paper"])
def test_every_scale_computes_in_auto_precision_with_the_fused_optimizer(scale):
    """The committed scales leave the choice to the machine; ``engine: {precision: fp32}`` is the documented switch."""
    assert (TrainConfig.load(scale, "kd").precision, FinetuneConfig.load(scale, "sst2").precision) == ("auto", "auto")
    assert TrainConfig.load(scale, "mlm").fused_optimizer and FinetuneConfig.load(scale, "rte").group_by_length


def test_a_run_records_its_engine_and_a_resume_computed_otherwise_says_so(tmp_path):
    first = engine.record_run(tmp_path, "fp32")
    assert first["computed_in"] == "fp32" and "resumed_from" not in first
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same engine again: silent
        assert "resumed_from" not in engine.record_run(tmp_path, "fp32")
    with pytest.warns(UserWarning, match="resumed with .*bf16.*earlier steps ran with .*fp32"):
        again = engine.record_run(tmp_path, "bf16")
    assert again["resumed_from"]["computed_in"] == "fp32"
    assert engine.record_run(tmp_path, "bf16")["resumed_from"]["computed_in"] == "fp32"  # kept by later resumes
