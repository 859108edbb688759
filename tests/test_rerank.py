"""Screen, then rerank (atb.rerank): which candidates are reranked, how the best is chosen, tau, and the settings."""

from __future__ import annotations

import math

import pytest

from atb.rerank import RerankConfig, Reranked, RerankResult, candidate_slug, screen

START = ("a", "a")


def _entries(*rows):
    """``(candidate, screen, scores)``, the start first."""
    return [Reranked(c, s, i == 0, list(scores), 1.0, 2.0, f"m{i}") for i, (c, s, scores) in enumerate(rows)]


def test_screen_puts_the_start_first_then_the_fittest_distinct_eligible_candidates():
    evaluated = [(START, -1.0), (("b", "a"), -3.0), (("c", "a"), -2.0), (("c", "a"), -2.0), (("a", "b"), -1.5),
                 (("d", "a"), float("nan")), (("e", "a"), -9.0), (START, -1.0)]
    eligible = lambda c: c[0] != "a"  # noqa: E731  (claim-style filter: the first layer must change)
    picked = screen(evaluated, START, 2, eligible)
    assert picked == [(START, -1.0), (("c", "a"), -2.0), (("b", "a"), -3.0)]
    assert screen(evaluated, START, 10, eligible)[-1] == (("e", "a"), -9.0)  # NaN left out, duplicates once
    with pytest.raises(ValueError, match="start"):
        screen([(("b", "a"), -3.0)], START, 2, eligible)


def test_the_best_is_the_highest_score_and_new_only_leaves_the_start_out():
    result = RerankResult(_entries((START, -1.0, [80.0, 82.0]), (("b",), -3.0, [79.0, 81.0]),
                                   (("c",), -2.0, [70.0, 72.0])), RerankConfig(), None, None)
    assert result.best().candidate == START and result.best().score == 81.0
    assert result.best(new_only=True).candidate == ("b",)
    assert result.cpu_seconds == 3 * (1.0 + 2.0)
    only_start = RerankResult(_entries((START, -1.0, [80.0])), RerankConfig(), None, None)
    with pytest.raises(ValueError, match="other than the start"):
        only_start.best(new_only=True)


def test_the_record_holds_both_rankings_and_tau():
    from atb.stats import kendall_tau_interval

    entries = _entries((START, -1.0, [70.0]), (("b",), -3.0, [80.0]), (("c",), -2.0, [75.0]), (("d",), -4.0, [85.0]))
    tau = kendall_tau_interval([e.screen for e in entries], [e.score for e in entries])
    record = RerankResult(entries, RerankConfig(), tau, None).to_dict()
    assert record["screen_ranking"] == [0, 2, 1, 3] and record["rerank_ranking"] == [3, 1, 2, 0]
    assert math.isclose(record["kendall_tau"]["difference"], -1.0)  # the screen ranks exactly backwards here
    assert [c["score"] for c in record["candidates"]] == [70.0, 80.0, 75.0, 85.0]


@pytest.mark.parametrize("field, value, message", [("top", 0, "top"), ("adapt_steps", -1, "adapt_steps"),
                                                   ("seeds", 1.5, "seeds"), ("task", "squad_v1.1", "task"),
                                                   ("budget", {"evaluate_on": "dev"}, "evaluate_on"),
                                                   ("budget", {"epochz": 1}, "epochz")])
def test_bad_settings_name_the_field(field, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        RerankConfig(**{field: value})


def test_the_rerank_always_scores_on_examples_held_out_of_the_train_split():
    assert RerankConfig(task="rte", budget={"epochs": 1}).budgets() == {"rte": {"epochs": 1, "evaluate_on": "heldout"}}


def test_candidate_folders_are_stable_and_distinct():
    assert candidate_slug(["x", "y"]) == candidate_slug(("x", "y")) != candidate_slug(["y", "x"])
