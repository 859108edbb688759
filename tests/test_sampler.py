"""Samplers: a pure function of (seed, step), so every rank and every resumed run draws the same archs."""

import subprocess
import sys

import pytest

from atb.sampler import FixedSampler, SandwichSampler, UniformSampler, make_sampler
from atb.space import Arch, SearchSpace

SPACE = SearchSpace.preset("mini", "kd")


def test_uniform_is_a_function_of_seed_and_step():
    a, b = UniformSampler(SPACE, seed=3), UniformSampler(SPACE, seed=3)
    assert [a.archs(s) for s in range(20)] == [b.archs(s) for s in range(20)]
    assert len({a.archs(s)[0] for s in range(20)}) > 15  # steps differ
    assert UniformSampler(SPACE, seed=4).archs(0) != a.archs(0) or UniformSampler(SPACE, seed=4).archs(1) != a.archs(1)


@pytest.mark.slow  # a fresh interpreter
def test_uniform_is_identical_in_another_process():
    """What data-parallel ranks rely on: no shared RNG state, same draw in a fresh interpreter."""
    code = ("from atb.sampler import UniformSampler; from atb.space import SearchSpace;"
            "s = UniformSampler(SearchSpace.preset('mini', 'kd'), seed=3);"
            "print(';'.join(str(s.archs(i)[0]) for i in range(10)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    here = ";".join(str(UniformSampler(SPACE, seed=3).archs(i)[0]) for i in range(10))
    assert other == here


def test_uniform_marginals_cover_every_value():
    sampler = UniformSampler(SPACE, seed=0)
    draws = [sampler.archs(s)[0] for s in range(2000)]
    assert {a.layers for a in draws} == set(SPACE.layers.values())
    assert {a.qkv for a in draws} == set(SPACE.qkv.values())
    assert all(SPACE.contains(a) for a in draws)


def test_sandwich_puts_largest_first_then_smallest():
    archs = SandwichSampler(SPACE, seed=0, k=3).archs(7)
    assert archs[:2] == [SPACE.largest(), SPACE.smallest()] and len(archs) == 5


def test_fixed_sampler_and_factory_errors():
    arch = Arch(2, 128, 256, 12, 96)
    assert FixedSampler(arch).archs(123) == [arch]
    with pytest.raises(ValueError, match="sampler.name"):
        make_sampler("bignas", SPACE)
    with pytest.raises(ValueError, match="inplace_distillation"):
        make_sampler("uniform", SPACE, inplace_distillation=True)
    assert make_sampler("uniform", SPACE, k=2).archs(0).__len__() == 2


@pytest.mark.parametrize("objective", ["kd", "mlm"])
def test_progressive_shrinking_starts_at_the_largest_and_reaches_the_whole_space(objective):
    from atb.sampler import PROGRESSIVE_RAMP, ProgressiveSampler, shrunk

    space = SearchSpace.preset("mini", objective)
    assert shrunk(space, 0.0).largest() == shrunk(space, 0.0).smallest() == space.largest()
    assert shrunk(space, 1.0) == space
    half = shrunk(space, 0.5)  # on the grid, inside the space, the top half of every size
    assert half.hidden.low == 256 and half.layers.low == 4 and half.hidden.high == 384
    sampler = ProgressiveSampler(space, steps=100, seed=0)
    assert sampler.archs(0) == [space.largest()]
    early = [sampler.archs(s)[0] for s in range(1, 10)]
    late = [sampler.archs(s)[0] for s in range(int(PROGRESSIVE_RAMP * 100), 100)]
    assert all(a.hidden >= 336 and space.contains(a) for a in early)  # still near the top
    assert min(a.hidden for a in late) < 200 and all(space.contains(a) for a in late)  # the whole space by then
    assert make_sampler("progressive", space, 0, steps=100).archs(7) == sampler.archs(7)  # (seed, step) alone
    with pytest.raises(ValueError, match="number of steps"):
        make_sampler("progressive", space)
    with pytest.raises(ValueError, match="inplace_distillation"):
        make_sampler("progressive", space, steps=10, inplace_distillation=True)
