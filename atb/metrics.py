"""Official evaluation metrics: GLUE (scikit-learn / scipy) and SQuAD v1.1 / v2.0 (the official scripts).

Every number is a percentage (0-100, correlations x 100), as in the paper's tables and the official
SQuAD script, so that a GLUE average or a SQuAD F1 computed here reads like the paper's 78.3 or 83.3.

GLUE: each task has its official metric(s) (``glue_metrics``) and one number that enters a GLUE average
(``glue_score``). The AutoTinyBERT paper does not spell its convention out; we use the one of TinyBERT,
MiniLM and AutoDistil (whose tables quote AutoTinyBERT's per-task numbers): Matthews correlation for
CoLA, Spearman for STS-B, **accuracy** for every other task (MRPC and QQP included; their F1 is reported
beside it) and matched accuracy for MNLI. The quoted numbers fit this: QQP 89.9 for KD-S1 is on the
accuracy scale (QQP F1 of BERT-size models is ~88, their accuracy ~91).

SQuAD: ``normalize_answer``, ``exact_match``, ``f1`` and ``squad_evaluate`` re-implement the official
``evaluate-v1.1.py`` / ``evaluate-v2.0.py``, including v2.0's no-answer handling (an empty prediction
matches an unanswerable question), its HasAns / NoAns breakdown and its best-threshold search over
null-score differences.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

# ------------------------------------------------------------------------------------------------ GLUE
# The single number of each task in a GLUE average (see the module docstring for why).
GLUE_SCORE_METRIC: dict[str, str] = {
    "cola": "mcc", "sst2": "accuracy", "mrpc": "accuracy", "stsb": "spearman", "qqp": "accuracy",
    "mnli": "accuracy_m", "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy",
}
# MNLI has two dev sets; their accuracies are told apart by a suffix.
_MNLI_SUFFIX = {"validation_matched": "_m", "validation_mismatched": "_mm"}


def glue_metrics(task: str, predictions: Sequence, references: Sequence, split: str = "validation") -> dict[str, float]:
    """The official GLUE metric(s) of one evaluation split, in percent.

    ``predictions`` are class ids (a float score for STS-B), ``references`` the gold labels.
    CoLA: ``mcc``; STS-B: ``pearson``, ``spearman``; MRPC, QQP: ``f1`` (of the positive class) and
    ``accuracy``; MNLI: ``accuracy_m`` or ``accuracy_mm`` by ``split``; the others: ``accuracy``.
    """
    if task not in GLUE_SCORE_METRIC:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks: {', '.join(GLUE_SCORE_METRIC)}")
    preds, refs = np.asarray(predictions), np.asarray(references)
    if preds.shape != refs.shape or preds.size == 0:
        raise ValueError(f"glue_metrics({task!r}): need equally many predictions and references, "
                         f"got {preds.shape} and {refs.shape}")
    if task == "stsb":
        return {"pearson": _correlation(pearsonr, preds, refs), "spearman": _correlation(spearmanr, preds, refs)}
    if task == "cola":
        return {"mcc": 100 * float(matthews_corrcoef(refs, preds))}
    accuracy = 100 * float(accuracy_score(refs, preds))
    if task == "mnli":
        if split not in _MNLI_SUFFIX:
            raise ValueError(f"MNLI split must be one of {', '.join(_MNLI_SUFFIX)}, got {split!r}")
        return {"accuracy" + _MNLI_SUFFIX[split]: accuracy}
    if task in ("mrpc", "qqp"):
        return {"f1": 100 * float(f1_score(refs, preds)), "accuracy": accuracy}
    return {"accuracy": accuracy}


def _correlation(fn, preds: np.ndarray, refs: np.ndarray) -> float:
    """``fn``'s correlation in percent; 0 when undefined (constant predictions), as sklearn does for MCC."""
    if np.ptp(preds) == 0 or np.ptp(refs) == 0:
        return 0.0
    return 100 * float(fn(preds, refs)[0])


def glue_score_fn(task: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``(predictions, labels) -> score``: the task's number in a GLUE average (:func:`glue_score` of
    :func:`glue_metrics`, in percent) in plain NumPy, for bootstraps that recompute it thousands of times.
    MNLI's matched and mismatched accuracies are both accuracies (pass the split's predictions)."""
    if task not in GLUE_SCORE_METRIC:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks: {', '.join(GLUE_SCORE_METRIC)}")
    return {"mcc": _mcc, "spearman": _spearman}.get(GLUE_SCORE_METRIC[task], _accuracy)


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return 100 * float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def _mcc(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation in percent, sklearn's multi-class formula (0 when undefined)."""
    preds, refs = np.asarray(predictions, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    k = int(max(preds.max(), refs.max())) + 1
    confusion = np.bincount(refs * k + preds, minlength=k * k).reshape(k, k).astype(np.float64)
    t, p = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    cov_tp, cov_pp, cov_tt = correct * n - t @ p, n * n - p @ p, n * n - t @ t
    return 0.0 if cov_pp * cov_tt == 0 else 100 * float(cov_tp / np.sqrt(cov_tt * cov_pp))


def _spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Spearman correlation in percent (Pearson of average ranks); 0 for a constant side, as :func:`glue_metrics`."""
    preds, refs = np.asarray(predictions, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if np.ptp(preds) == 0 or np.ptp(refs) == 0:
        return 0.0
    return 100 * float(np.corrcoef(rankdata(preds), rankdata(refs))[0, 1])


def glue_score(task: str, metrics: Mapping[str, float]) -> float:
    """The task's number in a GLUE average: ``metrics[GLUE_SCORE_METRIC[task]]``."""
    if task not in GLUE_SCORE_METRIC:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks: {', '.join(GLUE_SCORE_METRIC)}")
    key = GLUE_SCORE_METRIC[task]
    if key not in metrics:
        raise KeyError(f"glue_score({task!r}) needs the metric {key!r}; got {sorted(metrics)}")
    return float(metrics[key])


# ----------------------------------------------------------------------------------------------- SQuAD
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace (official order)."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when prediction and gold are equal after normalisation."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, version: str = "v2.0") -> float:
    """Token-overlap F1 (bag of normalised tokens).

    If either side normalises to nothing, v2.0 scores 1.0 only when both do (an empty prediction for an
    unanswerable question is right); v1.1 scores 0.0. Otherwise the two scripts agree.
    """
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref and version == "v2.0")
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def gold_answers(references: Mapping[str, Sequence[str]] | Iterable[Mapping]) -> dict[str, list[str]]:
    """``{id: [gold texts]}`` from such a mapping or from hub-schema rows (``id``, ``answers.text``)."""
    if isinstance(references, Mapping):
        return {qid: list(texts) for qid, texts in references.items()}
    return {row["id"]: list(row["answers"]["text"]) for row in references}


def squad_evaluate(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]] | Iterable[Mapping],
    *,
    version: str | None = None,
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 0.0,
) -> dict[str, float]:
    """SQuAD exact match and F1 (percent), the max over each question's gold answers.

    ``references``: ``{id: [gold texts]}`` or hub rows; an empty list is an unanswerable (v2.0) question.
    ``version``: "v1.1" or "v2.0"; ``None`` infers v2.0 when some question is unanswerable. A question
    without a prediction scores 0 (as in the v1.1 script).

    v2.0 adds ``HasAns_*`` / ``NoAns_*`` breakdowns. With ``na_probs`` (per question, higher = more
    likely unanswerable; we pass null score − best non-null score) ``predictions`` should be the best
    non-null answers: a question counts as answered "" when ``na_probs[id] > na_prob_thresh``, and
    ``best_em`` / ``best_f1`` with their ``*_threshold`` give the dev-set-optimal threshold, as in the
    official script's ``find_best_thresh`` (an oracle on dev: report it separately).
    """
    golds, has_ans, version, raw_em, raw_f1, em, f1s = _question_scores(predictions, references, version, na_probs,
                                                                        na_prob_thresh)
    result = _percent(em, f1s, golds)
    if version == "v2.0":
        for name, wanted in (("HasAns", True), ("NoAns", False)):
            qids = [q for q in golds if has_ans[q] == wanted]
            if qids:
                result.update({f"{name}_{k}": v for k, v in _percent(em, f1s, qids).items()})
        if na_probs is not None:
            for name, raw in (("em", raw_em), ("f1", raw_f1)):
                best, threshold = _best_threshold(predictions, raw, na_probs, has_ans)
                result[f"best_{name}"], result[f"best_{name}_threshold"] = best, threshold
    return result


def squad_question_scores(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]] | Iterable[Mapping],
    *,
    version: str | None = None,
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 0.0,
) -> dict[str, dict[str, float]]:
    """Per question, the exact match and F1 that :func:`squad_evaluate` averages (same arguments; in percent, so
    their means are its ``em`` and ``f1``): ``{"em": {id: 0 | 100}, "f1": {id: 0-100}}``, in the references' order.
    A bootstrap over questions resamples these."""
    golds, *_, em, f1s = _question_scores(predictions, references, version, na_probs, na_prob_thresh)
    return {"em": {q: 100 * em[q] for q in golds}, "f1": {q: 100 * f1s[q] for q in golds}}


def _question_scores(predictions, references, version, na_probs, na_prob_thresh):
    """``(golds, has_ans, version, raw_em, raw_f1, em, f1)``: each question's scores (0-1) before and after the
    no-answer threshold (the official scripts' per-question step)."""
    golds = gold_answers(references)
    if not golds:
        raise ValueError("squad_evaluate: no references")
    if version is None:
        version = "v2.0" if any(not answers for answers in golds.values()) else "v1.1"
    if version not in ("v1.1", "v2.0"):
        raise ValueError(f"unknown SQuAD version {version!r}; valid: v1.1, v2.0")

    has_ans = {qid: bool(answers) for qid, answers in golds.items()}
    raw_em, raw_f1 = {}, {}
    for qid, answers in golds.items():
        if version == "v2.0":  # the v2.0 script ignores golds that normalise to nothing
            answers = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            raw_em[qid] = raw_f1[qid] = 0.0
            continue
        raw_em[qid] = max(exact_match(predictions[qid], a) for a in answers)
        raw_f1[qid] = max(f1(predictions[qid], a, version) for a in answers)

    em, f1s = raw_em, raw_f1
    if na_probs is not None:  # answer "" where the null score wins by more than the threshold
        def thresholded(scores):
            return {q: float(not has_ans[q]) if q in predictions and na_probs[q] > na_prob_thresh else s
                    for q, s in scores.items()}
        em, f1s = thresholded(raw_em), thresholded(raw_f1)
    return golds, has_ans, version, raw_em, raw_f1, em, f1s


def _percent(em: Mapping[str, float], f1s: Mapping[str, float], qids: Iterable[str]) -> dict[str, float]:
    qids = list(qids)
    return {"em": 100 * sum(em[q] for q in qids) / len(qids), "f1": 100 * sum(f1s[q] for q in qids) / len(qids),
            "total": len(qids)}


def _best_threshold(predictions, raw_scores, na_probs, has_ans) -> tuple[float, float]:
    """The official ``find_best_thresh``: sweep the threshold up through the sorted ``na_probs``.

    Start from "every question unanswered" (all NoAns right, all HasAns wrong); lowering the bar for
    one more question adds its raw score if it has an answer, costs 1 if it has none but we answer.
    """
    score = best = sum(not v for v in has_ans.values())
    threshold = 0.0
    for qid in sorted((q for q in na_probs if q in raw_scores), key=lambda q: na_probs[q]):
        if has_ans[qid]:
            score += raw_scores[qid]
        elif predictions.get(qid):
            score -= 1
        if score > best:
            best, threshold = score, float(na_probs[qid])
    return 100 * best / len(raw_scores), threshold
