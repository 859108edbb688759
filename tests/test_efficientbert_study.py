"""Notebook 08's steps (atb.efficientbert.study): its config section per scale, and which candidate it develops."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from atb.config import ConfigError
from atb.efficientbert import parse
from atb.efficientbert.study import EfficientBertStudyConfig, developed_pick
from conftest import write_scale_config


def _candidate(*texts):
    return tuple(parse(t) for t in texts)


GELU = _candidate("linear1_1(gelu(linear1_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
TANH = _candidate("linear1_2(tanh(linear1_2(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
RELU = _candidate("linear1_1(relu(linear1_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
BIG = _candidate("linear4_1(relu(linear4_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")


def _result(stages):
    """A search result of ``[[(candidate, fitness, in_range), ...] per stage]``; its best: stage 3's fittest."""
    built = [SimpleNamespace(stage=i + 1, history=[SimpleNamespace(candidate=c, fitness=f, in_range=r)
                                                   for c, f, r in evaluated])
             for i, evaluated in enumerate(stages)]
    last = max((e for e in built[-1].history if e.in_range), key=lambda e: e.fitness)
    return SimpleNamespace(stages=built, best=last)


def test_the_searched_model_is_the_searchs_best_unless_that_is_the_plain_gelu_start():
    found = developed_pick(_result([[(GELU, -5.0, True), (TANH, -6.0, True)], [(GELU, -5.0, True)],
                                    [(GELU, -5.0, True), (RELU, -4.0, True)]]), GELU)
    assert found["candidate"] == RELU and found["best_is_start"] is False
    start_wins = developed_pick(_result([[(GELU, -5.0, True), (TANH, -6.0, True), (BIG, -1.0, False)],
                                         [(GELU, -5.0, True), (RELU, -6.5, True)], [(GELU, -5.0, True)]]), GELU)
    assert start_wins["best_is_start"] and start_wins["candidate"] == TANH  # the best new one in the range
    assert start_wins["stage"] == 1 and start_wins["fitness"] == -6.0 and start_wins["start_fitness"] == -5.0
    only_start = developed_pick(_result([[(GELU, -5.0, True)]] * 3), GELU)
    assert only_start["candidate"] == GELU and only_start["stage"] is None


def test_every_scale_has_an_efficientbert_section_and_bad_keys_name_the_field(tmp_path):
    for scale in ("smoke", "mini", "base", "paper"):
        cfg = EfficientBertStudyConfig.load(scale)
        assert cfg.scale == scale and cfg.warmup_config().steps >= 1
        search = cfg.search_config(1000)
        assert (search.min_params, search.max_params) == (int(1000 * cfg.budget[0]), int(1000 * cfg.budget[1]))
    assert EfficientBertStudyConfig.load("mini").warm_start and not EfficientBertStudyConfig.load("paper").warm_start
    path = write_scale_config(tmp_path / "a.yaml", efficientbert={"warmup": {"stepz": 3}})
    with pytest.raises((ConfigError, TypeError, ValueError), match="stepz"):
        EfficientBertStudyConfig.load(path)
    path = write_scale_config(tmp_path / "b.yaml", efficientbert={"budget": [1.0, 0.5]})
    with pytest.raises(ValueError, match="budget"):
        EfficientBertStudyConfig.load(path)
