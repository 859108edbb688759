"""GLUE and SQuAD metrics against values worked out by hand (all metrics are percentages)."""

import pytest

import numpy as np

from atb.metrics import (
    GLUE_SCORE_METRIC,
    exact_match,
    f1,
    glue_metrics,
    glue_score,
    glue_score_fn,
    normalize_answer,
    squad_evaluate,
    squad_question_scores,
)


# ------------------------------------------------------------------------------------------------ GLUE
def test_matthews_on_a_hand_counted_confusion_matrix():
    # TP = 3 (0, 1, 7), FN = 1 (2), TN = 3 (3, 4, 6), FP = 1 (5):
    # (3*3 - 1*1) / sqrt((3+1)(3+1)(3+1)(3+1)) = 8 / 16
    refs = [1, 1, 1, 0, 0, 0, 0, 1]
    preds = [1, 1, 0, 0, 0, 1, 0, 1]
    assert glue_metrics("cola", preds, refs) == pytest.approx({"mcc": 50.0})
    assert glue_metrics("cola", refs, refs)["mcc"] == pytest.approx(100.0)


def test_f1_and_accuracy_for_mrpc_and_qqp():
    # TP = 2, FP = 1, FN = 1 -> precision = recall = 2/3 -> F1 = 2/3; 3 of 5 right
    refs, preds = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    for task in ("mrpc", "qqp"):
        assert glue_metrics(task, preds, refs) == pytest.approx({"f1": 200 / 3, "accuracy": 60.0})


def test_accuracy_tasks_and_mnli_splits():
    for task in ("sst2", "qnli", "rte", "wnli"):
        assert glue_metrics(task, [0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx({"accuracy": 75.0})
    assert glue_metrics("mnli", [0, 1, 2], [0, 1, 1], "validation_matched") == pytest.approx({"accuracy_m": 200 / 3})
    mismatched = glue_metrics("mnli", [0, 1, 2], [0, 2, 1], "validation_mismatched")
    assert mismatched == pytest.approx({"accuracy_mm": 100 / 3})
    with pytest.raises(ValueError, match="MNLI split"):
        glue_metrics("mnli", [0], [0])


def test_pearson_and_spearman():
    # x = 1..5, y = 1, 2, 3, 4, 10: same ranks (Spearman 1); Pearson = 20 / sqrt(10 * 50)
    m = glue_metrics("stsb", [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 10.0])
    assert m["spearman"] == pytest.approx(100.0)
    assert m["pearson"] == pytest.approx(100 * 20 / (10 * 50) ** 0.5)
    # one swapped pair: Spearman = 1 - 6 * 2 / (5 * 24) = 0.9; Pearson = 9 / 10 as well
    m = glue_metrics("stsb", [1, 2, 3, 4, 5], [1, 2, 3, 5, 4])
    assert m == pytest.approx({"pearson": 90.0, "spearman": 90.0})
    # a collapsed regressor: correlation undefined, counted as 0 (a JSON-safe number, not NaN)
    assert glue_metrics("stsb", [2.5, 2.5, 2.5], [1.0, 2.0, 4.0]) == {"pearson": 0.0, "spearman": 0.0}


def test_glue_score_picks_the_documented_metric():
    assert glue_score("cola", {"mcc": 30.0}) == 30.0
    assert glue_score("stsb", {"pearson": 80.0, "spearman": 79.0}) == 79.0
    assert glue_score("mrpc", {"f1": 88.0, "accuracy": 84.0}) == 84.0
    assert glue_score("mnli", {"accuracy_m": 82.3, "accuracy_mm": 81.0}) == 82.3
    assert set(GLUE_SCORE_METRIC) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    with pytest.raises(KeyError, match="spearman"):
        glue_score("stsb", {"pearson": 1.0})
    with pytest.raises(ValueError, match="unknown GLUE task"):
        glue_metrics("squad", [1], [1])
    with pytest.raises(ValueError, match="equally many"):
        glue_metrics("rte", [1, 0], [1])


# ----------------------------------------------------------------------------------------------- SQuAD
@pytest.mark.parametrize("raw, normal", [
    ("The Cat!", "cat"),
    ("cat", "cat"),
    ("  an   apple. ", "apple"),
    ("A tale of the two cities", "tale of two cities"),
    ("theater, another", "theater another"),  # articles only as whole words
    ("U.S.-based", "usbased"),  # punctuation is deleted, not replaced by a space
    ("Hello\tWORLD\n", "hello world"),
])
def test_normalize_answer(raw, normal):
    assert normalize_answer(raw) == normal


def test_exact_match_and_f1_by_hand():
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("an apple", "apple") == 1.0
    assert exact_match("big cat", "cat") == 0.0
    # "the big cat" -> [big, cat]; "a cat sat" -> [cat, sat]; 1 common: P = R = 1/2
    assert f1("the big cat", "a cat sat") == pytest.approx(0.5)
    assert f1("big black cat", "cat") == pytest.approx(0.5)  # P = 1/3, R = 1 -> 2*(1/3)/(4/3)
    assert f1("cat cat", "cat") == pytest.approx(2 / 3)  # bag overlap counts 'cat' once: P = 1/2, R = 1
    assert f1("dog", "cat") == 0.0


def test_empty_answers_follow_each_official_script():
    assert f1("", "", "v2.0") == 1.0  # "no answer" for an unanswerable question
    assert f1("the", "", "v2.0") == 1.0  # normalises to nothing as well
    assert f1("", "", "v1.1") == 0.0
    assert f1("", "cat", "v2.0") == f1("cat", "", "v2.0") == 0.0


def test_squad_evaluate_takes_the_max_over_gold_answers():
    refs = {"q1": ["dog", "the big cat", "cat"], "q2": ["Paris"]}
    result = squad_evaluate({"q1": "big cat", "q2": "paris."}, refs)
    assert result == pytest.approx({"em": 100.0, "f1": 100.0, "total": 2})
    # q1: vs "big cat" 0.5, vs "cat" 2/3 -> 2/3; q2 missing -> 0
    result = squad_evaluate({"q1": "black cat"}, refs)
    assert result == pytest.approx({"em": 0.0, "f1": 100 * (2 / 3) / 2, "total": 2})


def test_squad_evaluate_accepts_hub_rows():
    rows = [{"id": "a", "answers": {"text": ["Denver Broncos"], "answer_start": [0]}},
            {"id": "b", "answers": {"text": ["1990", "in 1990"], "answer_start": [3, 0]}}]
    assert squad_evaluate({"a": "Denver", "b": "in 1990"}, rows) == pytest.approx(
        {"em": 50.0, "f1": 100 * (2 / 3 + 1) / 2, "total": 2})


def test_v11_keeps_golds_that_normalise_to_nothing():
    # SQuAD v1.1 dev has three golds that are just ".": v1.1 gives EM 1 but F1 0 to an empty prediction.
    v11 = squad_evaluate({"q": ""}, {"q": ["."]}, version="v1.1")
    assert v11 == pytest.approx({"em": 100.0, "f1": 0.0, "total": 1})
    assert squad_evaluate({"q": ""}, {"q": ["."]}, version="v2.0")["f1"] == 100.0


def test_v20_no_answer_questions_and_breakdown():
    refs = {"a": [], "b": ["Paris"], "c": ["Rome", "in Rome"]}
    right = squad_evaluate({"a": "", "b": "Paris", "c": "Rome"}, refs)  # v2.0 inferred from "a"
    assert right == pytest.approx({"em": 100.0, "f1": 100.0, "total": 3, "HasAns_em": 100.0, "HasAns_f1": 100.0,
                                   "HasAns_total": 2, "NoAns_em": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1})
    wrong = squad_evaluate({"a": "London", "b": "", "c": "Rome city"}, refs)
    assert wrong["NoAns_f1"] == 0.0 and wrong["em"] == 0.0
    assert wrong["HasAns_f1"] == pytest.approx(100 * (0 + 2 / 3) / 2)  # "Rome city" vs "Rome": P 1/2, R 1


def test_v20_null_threshold_and_best_threshold_search():
    refs = {"q1": ["Paris"], "q2": [], "q3": ["Rome"], "q4": []}
    best_spans = {"q1": "Paris", "q2": "London", "q3": "Rome", "q4": "x"}
    null_odds = {"q1": -1.0, "q2": 2.0, "q3": 0.1, "q4": 0.2}
    result = squad_evaluate(best_spans, refs, na_probs=null_odds, na_prob_thresh=0.0)
    # threshold 0: q1 answered (right), q2, q3, q4 answered "" (right, wrong, right)
    assert result["em"] == result["f1"] == 75.0
    assert result["HasAns_f1"] == 50.0 and result["NoAns_f1"] == 100.0
    # sweep: all null = 2/4; + q1 -> 3; + q3 -> 4 (best, at 0.1); + q4 -> 3; + q2 -> 2
    assert result["best_f1"] == result["best_em"] == 100.0
    assert result["best_f1_threshold"] == result["best_em_threshold"] == 0.1
    # a threshold above every null difference answers everything: only the answerable ones are right
    assert squad_evaluate(best_spans, refs, na_probs=null_odds, na_prob_thresh=5.0)["f1"] == 50.0


@pytest.mark.parametrize("task", sorted(GLUE_SCORE_METRIC))
def test_the_fast_score_function_equals_the_official_score(task):
    """The bootstraps recompute a task's score thousands of times with glue_score_fn: it must be glue_score exactly."""
    rng = np.random.default_rng(0)
    split = "validation_matched" if task == "mnli" else "validation"
    for trial in range(25):
        if task == "stsb":
            refs, preds = rng.uniform(0, 5, 40).round(1), rng.normal(size=40).astype(np.float32)
        else:
            classes = 3 if task == "mnli" else 2
            refs, preds = rng.integers(0, classes, 40), rng.integers(0, classes, 40)
        if trial == 0:
            preds = np.zeros_like(preds)  # a constant prediction: MCC / Spearman are 0
        official = glue_score(task, glue_metrics(task, preds, refs, split))
        assert glue_score_fn(task)(preds, refs) == pytest.approx(official, abs=1e-9)
    with pytest.raises(ValueError, match="unknown GLUE task"):
        glue_score_fn("squad")


def test_per_question_scores_average_to_the_official_em_and_f1():
    refs = {"q1": ["Paris"], "q2": [], "q3": ["Rome"], "q4": [], "q5": ["the Eiffel tower"]}
    spans = {"q1": "Paris", "q2": "London", "q3": "Rome", "q4": "x", "q5": "Eiffel"}
    null_odds = {"q1": -1.0, "q2": 2.0, "q3": 0.1, "q4": 0.2, "q5": -0.5}
    answerable = {q: a for q, a in refs.items() if a}
    for references, kwargs in ((refs, {"na_probs": null_odds, "na_prob_thresh": 0.0}), (refs, {}),
                               (answerable, {"version": "v1.1"})):
        scores = squad_question_scores(spans, references, **kwargs)
        official = squad_evaluate(spans, references, **kwargs)
        assert list(scores["f1"]) == list(references)  # the references' order
        assert np.mean(list(scores["em"].values())) == pytest.approx(official["em"])
        assert np.mean(list(scores["f1"].values())) == pytest.approx(official["f1"])
    thresholded = squad_question_scores(spans, refs, na_probs=null_odds)
    assert thresholded["em"] == {"q1": 100.0, "q2": 100.0, "q3": 0.0, "q4": 100.0, "q5": 0.0}
    assert thresholded["f1"]["q5"] == pytest.approx(100 * 2 / 3)  # "eiffel" vs "eiffel tower": P 1, R 1/2


def test_squad_evaluate_rejects_bad_input():
    with pytest.raises(ValueError, match="no references"):
        squad_evaluate({}, {})
    with pytest.raises(ValueError, match="version"):
        squad_evaluate({"q": "x"}, {"q": ["x"]}, version="v3")
