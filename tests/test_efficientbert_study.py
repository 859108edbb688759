"""Notebook 08's steps (atb.efficientbert.study): its config section per scale, and which candidate it develops."""

from __future__ import annotations

import pytest

from atb.config import ConfigError
from atb.efficientbert import parse
from atb.efficientbert.study import EfficientBertStudyConfig, changes, developed_pick, proxy_is_distance_to_start
from atb.rerank import RerankConfig, Reranked, RerankResult
from conftest import write_scale_config


def _candidate(*texts):
    return tuple(parse(t) for t in texts)


GELU = _candidate("linear1_1(gelu(linear1_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
TANH = _candidate("linear1_2(tanh(linear1_2(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
RELU = _candidate("linear1_1(relu(linear1_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
BIG = _candidate("linear4_1(relu(linear4_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")


def _reranked(*entries):
    """A rerank result of ``(candidate, screen fitness, rerank score)``, the start first."""
    built = [Reranked(c, screen, i == 0, [score], 1.0, 2.0, f"m{i}") for i, (c, screen, score) in enumerate(entries)]
    return RerankResult(built, RerankConfig(), None, "test")


def test_changes_name_the_layers_whose_expression_or_size_differs():
    assert changes(TANH, GELU) == {"expressions": [0], "sizes": [0]}
    assert changes(RELU, GELU) == {"expressions": [0], "sizes": []}
    assert changes(GELU, GELU) == {"expressions": [], "sizes": []}
    resized = _candidate("linear2_1(gelu(linear2_1(x,wb1)),wb2)", "linear1_1(gelu(linear1_1(x,wb1)),wb2)")
    assert changes(resized, GELU) == {"expressions": [], "sizes": [0]}


def test_the_searched_model_is_the_reranks_best_new_candidate_never_the_start():
    found = developed_pick(_reranked((GELU, -5.0, 70.0), (TANH, -6.0, 72.0), (RELU, -5.5, 71.0)), GELU)
    assert found["candidate"] == TANH and found["picked_by"] == "rerank" and found["is_start"] is False
    assert found["best_is_start"] is False and found["changes"]["expressions"] == [0]
    start_wins = developed_pick(_reranked((GELU, -5.0, 75.0), (TANH, -6.0, 72.0), (RELU, -5.5, 71.0)), GELU)
    assert start_wins["candidate"] == TANH and start_wins["best_is_start"] is True
    nothing = developed_pick(_reranked((GELU, -5.0, 75.0)), GELU)
    assert nothing["candidate"] is None and "no in-range candidate" in nothing["reason"]


def test_the_screen_is_the_distance_to_the_start_exactly_when_warm_started():
    assert proxy_is_distance_to_start(EfficientBertStudyConfig.load("mini"))
    assert not proxy_is_distance_to_start(EfficientBertStudyConfig.load("smoke"))  # a toy supernet from scratch


def test_the_mini_budget_holds_the_start_strictly_inside_and_admits_the_published_sizes():
    from atb.efficientbert.expression import PUBLISHED
    from atb.efficientbert.supernet import candidate_params, supernet_config, uniform_candidate
    from atb.teacher import load_teacher

    cfg = EfficientBertStudyConfig.load("mini")
    config = supernet_config(load_teacher(cfg.teacher).model.config, cfg.max_stacks)
    start = candidate_params(config, uniform_candidate(config), embeddings=False)
    published = candidate_params(config, tuple(parse(p) for p in PUBLISHED), embeddings=False)
    search = cfg.search_config(start)
    assert search.min_params < start < search.max_params
    assert search.in_range(published) and published > start


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
    path = write_scale_config(tmp_path / "c.yaml", efficientbert={"rerank": {"top": 0}})
    with pytest.raises(ValueError, match="top"):
        EfficientBertStudyConfig.load(path)
