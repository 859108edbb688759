"""The search space: one hashable Arch, presets, validation messages, sampling and the grid."""

import random

import pytest

from atb.space import Arch, Range, SearchSpace

PRESETS = [(name, obj) for name in ("smoke", "mini", "paper") for obj in ("mlm", "kd")]


def test_arch_is_hashable_and_order_independent():
    a = Arch(layers=4, hidden=256, ffn=512, heads=4, qkv=256)
    b = Arch.from_dict({"qkv": 256, "heads": 4, "ffn": 512, "hidden": 256, "layers": 4})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Arch.parse(str(a)) == a


@pytest.mark.parametrize("bad", [dict(layers=0), dict(hidden=-4), dict(qkv=100, heads=12), dict(ffn=1.5)])
def test_arch_rejects_structurally_invalid(bad):
    fields = dict(layers=2, hidden=64, ffn=128, heads=2, qkv=64) | bad
    with pytest.raises(ValueError):
        Arch(**fields)


def test_paper_spaces_match_the_notes():
    mlm, kd = SearchSpace.preset("paper", "mlm"), SearchSpace.preset("paper", "kd")
    assert mlm.largest() == kd.largest() == Arch(8, 768, 3072, 12, 768)
    assert mlm.smallest() == Arch(1, 128, 128, 1, 64)
    assert kd.smallest() == Arch(1, 128, 128, 12, 180)
    assert (mlm.hidden.step, mlm.ffn.step, kd.qkv.step) == (4, 4, 12)
    # The released KD models lie in the KD space (S1's d_f = 1054 is off the step-4 grid).
    for text in ("5/564/1024/12/528", "5/324/600/12/324", "5/280/512/12/276", "4/256/480/12/192"):
        assert kd.contains(Arch.parse(text))
    assert mlm.contains(Arch.parse("4/396/624/6/384"))


@pytest.mark.parametrize("arch, field", [
    (Arch(9, 256, 512, 4, 256), "layers"),
    (Arch(4, 258, 512, 4, 256), "hidden"),
    (Arch(4, 256, 3076, 4, 256), "ffn"),
    (Arch(4, 256, 512, 13, 832), "heads"),
])
def test_validate_names_field_value_and_range(arch, field):
    with pytest.raises(ValueError) as err:
        SearchSpace.preset("paper", "mlm").validate(arch)
    msg = str(err.value)
    assert msg.startswith(f"{field}={getattr(arch, field)}") and "allowed" in msg and "step" in msg


def test_validate_mlm_qkv_tied_to_heads_and_kd_heads_fixed():
    with pytest.raises(ValueError, match="qkv"):
        SearchSpace.preset("paper", "mlm").validate(Arch(4, 256, 512, 4, 192))
    with pytest.raises(ValueError, match="heads=6"):
        SearchSpace.preset("paper", "kd").validate(Arch(4, 256, 512, 6, 384))
    with pytest.raises(ValueError, match="qkv=24 is outside"):
        SearchSpace.preset("paper", "kd").validate(Arch(4, 256, 512, 12, 192 - 12 * 14))


@pytest.mark.parametrize("name, objective", PRESETS)
def test_samples_are_valid_and_cover_the_grid(name, objective):
    space = SearchSpace.preset(name, objective)
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(300)]
    assert all(space.contains(a) for a in samples)
    assert {a.layers for a in samples} == set(space.layers.values())
    assert space.sample(random.Random(7)) == space.sample(random.Random(7))


@pytest.mark.parametrize("objective", ["mlm", "kd"])
def test_grid_enumerates_exactly_the_space(objective):
    space = SearchSpace.preset("smoke", objective)
    grid = list(space.grid())
    assert len(grid) == len(space) == len(set(grid))
    assert all(space.contains(a) for a in grid)
    assert space.smallest() in grid and space.largest() in grid


def test_with_steps_coarsens_inside_the_space():
    space = SearchSpace.preset("paper", "mlm")
    coarse = space.with_steps(hidden=16, ffn=32)
    assert coarse.hidden == Range(128, 768, 16) and coarse.ffn == Range(128, 3072, 32)
    assert all(space.contains(a) for a in list(coarse.grid())[:1000])


def test_space_round_trips_through_dict():
    for name, obj in PRESETS:
        space = SearchSpace.preset(name, obj)
        assert SearchSpace.from_dict(space.as_dict()) == space


def test_efficient_and_default_rules():
    assert Arch.parse("4/512/2048/8/512").follows_default_rule()
    assert not Arch.parse("4/512/2048/8/512").is_efficient()  # d_f = 4 d_m
    assert Arch.parse("5/564/1024/12/528").is_efficient()  # KD-S1: 1.6 <= 1024/564 <= 1.9


def test_encoder_parameters_match_the_model():
    from atb import AtbBertConfig, AtbBertModel

    arch = Arch(2, 48, 80, 4, 32)
    model = AtbBertModel(AtbBertConfig.from_arch(arch, vocab_size=10), add_pooling_layer=False)
    assert arch.encoder_parameters() == sum(p.numel() for p in model.encoder.parameters())
