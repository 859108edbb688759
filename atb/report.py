"""The claims report ``results/<scale>/REPORT.md`` and ``report.json``, generated from the result records (never
hand-edited).

    python -m atb.report [--scale mini | --results-dir results/mini]

For each claim of the notes (§9) it puts the paper's number beside this study's, at the scale the records
were produced at, and a verdict computed by the rules below from the records alone:

* ``not testable``: the records needed are missing, or the scale is ``smoke`` (CI's toy models, whose numbers only
  show that the pipeline runs; this holds for every claim, timings included), or there is nothing to compare (no
  pairs), or the design could not have come out either way (below: claims 9-11);
* **comparisons of models are decided from a 95 % interval** (:func:`atb.stats.verdict`): claim 0 (the developed
  models learned from pre-training: each against an untrained model of its shape, fine-tuned with the same budgets
  and seeds), claim 2 (searched vs default-rule), claim 4 (KD vs MLM) and the quality half of claim 5 (fast vs
  full). Notebooks 05 / 06 record, per comparison, the mean paired difference of the GLUE average (SQuAD v1.1 F1
  beside it) and its interval from one paired bootstrap over fine-tuning seeds and dev examples that pools the
  comparison's model pairs (:func:`atb.develop.pooled_difference`; the pairs themselves are not resampled, so the
  interval speaks for these models, not for other architectures). ``reproduced`` when the interval lies above 0,
  ``refuted`` when below, ``not testable`` when it contains 0. Claims 2, 4 and 5 compare what pre-training taught
  the models, so they are ``not testable`` unless claim 0 is reproduced, and their pairs leave out any pair holding
  a model that did not beat its own control (:func:`atb.develop.comparison_intervals`; records before that gate pooled
  every pair, and the report names those models). Claim 5's "nearly the same quality" is
  non-inferiority: the fast models at most :data:`FAST_TOLERANCE` GLUE points worse (the interval shifted by it),
  and the fast method must be cheaper (else ``refuted``). Records written before seeds and controls existed make
  these claims ``not testable`` with the reason :data:`NO_INTERVALS`;
* claim 1 (speedups; the released architectures are timed at every scale, once, so no interval): ``reproduced`` when
  the released models rank alike (Spearman >= 0.8; with 8 models, p < 0.01) and measured speedups are within 25 %
  of the paper's on average, ``partly`` when they rank alike only;
* claim 3 (shapes, a count with no interval): ``reproduced`` when at least 3/4 of the evolved winners satisfy the
  efficient rule, ``partly`` when their d_f/d_m is nearer the efficient rule's 1.6-1.9 than BERT's 4 on average;
* claim 6 (ranking): Kendall's tau between inherited-weight and further-trained fitness, with a 95 % interval from
  resampling the architectures (:func:`atb.stats.kendall_tau_interval`); ``not testable`` while it contains 0;
* claims 7-8 (EfficientBERT, notebook 08): the published model's size and speed ratios by claim 1's 25 % rule;
* claim 9 (notebook 08): the searched model minus plain gelu, and claim 10 (notebook 09): the searched hybrid minus
  the standard-attention backbone (no slower, by the search's latency constraint), both on the GLUE average's
  interval, gated on both models beating their untrained controls and on a design that could have come out either
  way (:func:`design_problem`), else ``not testable``: the record predates the searched model's ``changes`` field;
  the searched model changes nothing the claim is about (claim 9: no FFN expression differs from plain gelu's,
  sizes aside; claim 10: no convolution layer, not a hybrid; or the search found no hybrid within its budget);
  it is the search's start itself (``developed_pick.is_start``); or it was picked by a proxy that is the distance
  to the start by construction (``proxy_is_distance_to_start``: the teacher is the warm start's source, so no new
  operator can win on it) rather than by the rerank (``picked_by == "rerank"``: a short fine-tune on held-out train
  examples);
* claim 11 (notebook 09): OP-NAS minus plain random mutation, the best fitness per search seed at equal
  evaluations (the record's ``fitness``: the proxy or the rerank), a Student-t interval over at least 5 search
  seeds (fewer: ``not testable``).

``report.json`` holds, per claim, ``{"claim", "verdict", "measure", "difference", "ci95", "n", "reason"}``
(``difference`` / ``ci95`` / ``n`` ``null`` where a claim has no interval, and ``reason`` says why).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import stats
from .develop import (DECISION_MEASURE, GLUE_MEASURE, LEARNED, MIN_ABOVE_CHANCE, SQUAD_MEASURE, below_control,
                      calibration_label, development_costs, fast_over_full)
from .efficientbert.published import PAPER as EFFICIENTBERT_PAPER
from .layout import SCALES, Layout
from .pareto import favours
from .records import write_json_atomic, write_text_atomic
from .search import shape_summary
from .space import DEFAULT_RULE_FFN_RATIO, EFFICIENT_FFN_RATIO, EFFICIENT_QKV_RATIO, Arch

REPRODUCED, REFUTED, NOT_TESTABLE = stats.REPRODUCED, stats.REFUTED, stats.NOT_TESTABLE  # interval verdicts
PARTLY, NOT_REPRODUCED = "partly", "not reproduced"  # the threshold rules of claims 1 and 3
# Why a comparison has no verdict in records written before seeds and untrained controls existed.
NO_INTERVALS = "no seeds / controls in these records (rerun at this scale)"
FAST_TOLERANCE = 1.0  # claim 5: "nearly the same quality" = at most this many GLUE points below the full method
SMOKE = "the smoke scale's toy models only show that the pipeline runs"  # why no smoke number decides a claim
MIN_SEARCH_SEEDS = 5  # claim 11: a Student-t interval over fewer search seeds is not read
FIGURES = ("01_loss_curves.png", "02_latency_speedup.png", "02_latency_predictor.png", "03_search_history.png",
           "03_search_shapes.png", "04_development_cost.png", "07_accuracy_latency.png", "08_accuracy_latency.png",
           "09_search.png", "10_accuracy_latency.png", "11_deployment_speedups.png",
           "12_pareto_fronts.png", "12_pareto_developed.png")


def load_records(results_dir: str | Path) -> dict[str, dict]:
    """``{"02": {...}, "03": {...}, ..., "reproduce": {...}, "budgets": {...}}``: every ``NN_*.json`` record, the
    runner's and the budget ladder's (where they exist)."""
    results_dir = Path(results_dir)
    records = {p.name[:2]: json.loads(p.read_text()) for p in sorted(results_dir.glob("[0-9][0-9]_*.json"))}
    for name in ("reproduce", "budgets"):  # the runner's record; the budget ladder's (atb.budgets)
        if (results_dir / f"{name}.json").exists():
            records[name] = json.loads((results_dir / f"{name}.json").read_text())
    return records


def _claim(number: int, claim: str, paper: str, ours: str, verdict: str, note: str = "", *,
           interval: dict | None = None, measure: str | None = None, reason: str | None = None,
           extra: dict | None = None) -> dict:
    """One claim's row. ``interval``: ``{"difference", "ci95", "n"}`` the verdict was decided from (``None``: the
    claim has none, and ``reason`` says why), and for comparisons of models ``pairs``, the model pairs it pools
    (counted in the row); ``extra``: further intervals shown beside it (e.g. SQuAD)."""
    interval = interval or {}
    pairs = interval.get("pairs")
    return {"number": number, "claim": claim, "paper": paper, "ours": ours, "verdict": verdict, "note": note,
            "measure": measure, "difference": interval.get("difference"), "ci95": interval.get("ci95"),
            "n": interval.get("n"), "pairs": None if pairs is None else len(pairs), "reason": reason,
            "extra": extra or {}}


def above_chance(records: dict) -> float | None:
    """GLUE points by which the best developed model beats the majority-class baseline over the tasks of its own
    average (the models may run fewer tasks than the calibration row: notebook 05's decision tasks); None: not
    recorded."""
    glue = records.get("05") or {}
    chance = (glue.get("chance") or {}).get("tasks") or {}
    margins = []
    for m in (glue.get("models") or {}).values():
        baseline = [chance[c] for c in m.get("avg_over") or [] if chance.get(c) is not None]
        if m.get("avg") is not None and baseline:
            margins.append(m["avg"] - statistics.fmean(baseline))
    return max(margins) if margins else None


def _pairs_text(summary: dict | None, what: str) -> str:
    if not summary or not summary.get("pairs"):
        return "no comparable pairs"
    return (f"{what}: higher in {summary['wins']} of {summary['pairs']} pairs, mean difference "
            f"{summary['mean_difference']:+.2f}")


def beats_control(model: dict | None) -> bool | None:
    """Whether a developed model's interval over its untrained control (notebook 05's ``vs_control``) lies above 0
    (not :func:`atb.develop.below_control`); None: no such interval."""
    vs_control = (model or {}).get("vs_control")
    return None if (vs_control or {}).get("ci95") is None else not below_control(vs_control)


def _interval_text(interval: dict | None, what: str, digits: int = 2) -> str:
    """``GLUE avg +1.23 [-0.40, +2.90] (95 % CI; 4 pairs, n = 60)``, or why there is no interval."""
    if not interval or interval.get("ci95") is None:
        return f"{what}: no interval" + (f" ({interval['reason']})" if (interval or {}).get("reason") else "")
    lo, hi = interval["ci95"]
    pairs = interval.get("pairs")
    counted = f"; {len(pairs)} pair{'s' * (len(pairs) != 1)}" if pairs is not None else ""
    difference = f"{interval['difference']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return f"{what} {difference} (95 % CI{counted}, n = {interval['n']})"


def comparison(records: dict, key: str, measure: str = GLUE_MEASURE) -> dict | None:
    """The recorded interval of comparison ``key`` (``atb.develop.COMPARISONS`` or ``LEARNED``) on ``measure``:
    notebook 05's record for the GLUE average (``intervals``) and for the average over its decision tasks
    (``decision_intervals``), 06's for SQuAD v1.1 F1; ``None`` when the record predates them."""
    record = records.get("06" if measure == SQUAD_MEASURE else "05") or {}
    return (record.get("decision_intervals" if measure == DECISION_MEASURE else "intervals") or {}).get(key)


def deciding_measure(records: dict) -> str:
    """The measure claims 0, 2, 4 and 5 are decided on: the GLUE average over notebook 05's decision tasks (the
    tasks on which the teacher learns at this budget, :func:`atb.develop.decision_tasks`) where it recorded them,
    else (records before them) the average over every scored task."""
    return DECISION_MEASURE if (records.get("05") or {}).get("decision_tasks") is not None else GLUE_MEASURE


def measure_label(records: dict, measure: str) -> str:
    """``measure`` as the report names it: the decision average with its tasks, e.g. ``decision avg (sst2, stsb)``."""
    if measure != DECISION_MEASURE:
        return measure
    return f"{measure} ({', '.join(records['05']['decision_tasks']['tasks']) or 'no task'})"


def decide(interval: dict | None, records: dict, *, gate: bool = True, shift: float = 0.0) -> tuple[str, str | None]:
    """``(verdict, reason)`` of a comparison from its recorded ``interval`` by :func:`atb.stats.verdict` (after adding
    ``shift``: non-inferiority), or ``not testable`` and why: the smoke scale, records without intervals, no scored
    pairs, or (``gate``) developed models that do not beat their untrained controls (claim 0)."""
    if _scale(records) == "smoke":
        return NOT_TESTABLE, SMOKE
    if interval is None:
        return NOT_TESTABLE, NO_INTERVALS
    if interval.get("ci95") is None:
        return NOT_TESTABLE, interval.get("reason") or "no scored pairs"
    if gate:
        learned = comparison(records, LEARNED, deciding_measure(records))
        learned_verdict = (stats.verdict(_as_interval(learned)) if learned and learned.get("ci95") is not None
                           else None)
        if learned_verdict != REPRODUCED:
            return NOT_TESTABLE, ("the developed models do not beat untrained models of their shapes (claim 0), so "
                                  "differences between them do not measure what pre-training taught them")
    return stats.verdict(stats.shifted(_as_interval(interval), shift)), None


def _as_interval(recorded: dict) -> stats.Interval:
    return stats.Interval(recorded["difference"], tuple(recorded["ci95"]), recorded["n"], recorded.get("n_boot", 0))


# ------------------------------------------------------------------------------------------- claims
def claim_speedups(records: dict) -> dict:
    claim = "The published speedups over BERT-base (CPU latency) hold on today's CPU and PyTorch"
    paper = "S1-S4: 7.2x, 15.7x, 20.2x, 27.2x; KD-S1-KD-S4: 4.6x, 9.0x, 10.7x, 17.0x"
    latency = records.get("02")
    measure = "measured / published speedup"
    no_interval = ("each speedup is one measurement per model (no seeds or dev examples to resample): decided by the "
                   "rank and ratio rule")
    if not latency:
        return _claim(1, claim, paper, "notebook 02 has not run", NOT_TESTABLE, measure=measure,
                      reason="notebook 02 has not run")
    agreement = latency["speedup_agreement"]
    measured = {n: s["measured"] for n, s in latency["speedup"].items() if s.get("paper")}
    by_obj = agreement.get("by_objective", {})
    ours = (f"BERT-base {latency['bert_base_ms']:.1f} ms; S1-S4: " +
            ", ".join(f"{measured[n]:.1f}x" for n in ("S1", "S2", "S3", "S4") if n in measured) + "; KD-S1-KD-S4: " +
            ", ".join(f"{measured[n]:.1f}x" for n in ("KD-S1", "KD-S2", "KD-S3", "KD-S4") if n in measured) +
            f". Spearman {agreement['spearman']:.2f}; measured/paper {by_obj.get('mlm', float('nan')):.2f} (MLM), "
            f"{by_obj.get('kd', float('nan')):.2f} (KD)")
    movement = latency.get("speedup_repeat")
    if movement:
        ours += (f"; timed twice, the speedups moved by {100 * movement['median_abs']:.1f} % (median), at most "
                 f"{100 * movement['max_abs']:.1f} %")
    if _scale(records) == "smoke":  # toy models: like every smoke number, their timings decide nothing
        return _claim(1, claim, paper, ours, NOT_TESTABLE, measure=measure, reason=SMOKE)
    if agreement["spearman"] >= 0.8 and abs(agreement["mean_ratio"] - 1) <= 0.25:
        verdict = REPRODUCED
    elif agreement["spearman"] >= 0.8:
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return _claim(1, claim, paper, ours, verdict,
                  "Same ranking; the KD models, with small d_qkv and 12 heads, run relatively faster here than the "
                  "paper measured (its CPU and PyTorch were different)." if verdict == PARTLY else "",
                  measure=measure, reason=no_interval)


def _comparison_claim(number: int, claim: str, paper: str, records: dict, key: str, summary_key: str | None,
                      prefix: str = "") -> dict:
    """A claim decided from the interval of comparison ``key`` on :func:`deciding_measure` (the GLUE average over
    the decision tasks; the average over every scored task and SQuAD v1.1 F1 shown beside it), with notebook 07's
    pair counts (``summary_key``) when present."""
    if not records.get("05"):
        return _claim(number, claim, paper, "notebook 05 has not run", NOT_TESTABLE, measure=GLUE_MEASURE,
                      reason="notebook 05 has not run")
    measure = deciding_measure(records)
    decided, glue = comparison(records, key, measure), comparison(records, key)
    squad = comparison(records, key, SQUAD_MEASURE)
    verdict, reason = decide(decided, records, gate=key != LEARNED)
    parts = [_interval_text(decided, f"{prefix}{measure_label(records, measure)}")]
    if measure != GLUE_MEASURE:
        parts.append(_interval_text(glue, f"{prefix}{GLUE_MEASURE} (every scored task)"))
    if records.get("06"):
        parts.append(_interval_text(squad, f"{prefix}{SQUAD_MEASURE}"))
    summary = ((records.get("07") or {}).get("summary") or {}).get(summary_key) if summary_key else None
    if summary:
        parts.append(_pairs_text(summary.get(GLUE_MEASURE), "GLUE avg per pair"))
    left_out = (decided or {}).get("pairs_left_out") if key != LEARNED else None  # gated (atb.develop)
    if left_out:
        parts.append("left out: " + "; ".join(f"{pair} ({why})" for pair, why in left_out.items()))
    note = (f"Not testable: {reason}. " if reason else "") + _noise_note(_scale(records), above_chance(records))
    extra = {**({GLUE_MEASURE: _bare(glue)} if measure != GLUE_MEASURE and glue else {}),
             **({SQUAD_MEASURE: _bare(squad)} if squad else {})}
    return _claim(number, claim, paper, "; ".join(parts), verdict, note.strip(), interval=decided,
                  measure=measure_label(records, measure), reason=reason, extra=extra or None)


def _bare(interval: dict | None) -> dict | None:
    return None if interval is None else {k: interval.get(k) for k in ("difference", "ci95", "n")}


def claim_learned(records: dict) -> dict:
    return _comparison_claim(
        0, "(Prerequisite of claims 2, 4, 5) The developed models learned from pre-training: fine-tuned alike, they "
           "beat untrained models of the same shapes",
        "implicit (pre-trained tiny BERTs far above scratch training)", records, LEARNED, None)


def claim_searched_vs_baseline(records: dict) -> dict:
    return _comparison_claim(2, "At equal latency, searched architectures beat default-rule BERTs (Figure 1)",
                             "searched above the baselines at every latency (both SuperPLMs)", records,
                             "searched_vs_default_rule", "claim2_searched_vs_baseline")


def claim_shapes(records: dict) -> dict:
    (f_lo, f_hi), (q_lo, q_hi) = EFFICIENT_FFN_RATIO, EFFICIENT_QKV_RATIO
    claim = f"Good tiny architectures are shallow and wide, with d_f/d_m ~ {f_lo}-{f_hi} and d_qkv/d_m ~ {q_lo}-{q_hi}"
    paper = f"d_f/d_m {f_lo}-{f_hi}, d_qkv/d_m {q_lo}-{q_hi}, 3-5 layers"
    search = records.get("03")
    measure, no_interval = "share of evolved winners with efficient shapes", ("a count of the searches' winners (one "
                                                                              "search per constraint): no interval")
    if not search:
        return _claim(3, claim, paper, "notebook 03 has not run", NOT_TESTABLE, measure=measure,
                      reason="notebook 03 has not run")
    shapes = shape_summary([Arch.parse(s["best_arch"]) for s in search["searches"] if s["method"] == "evolved"])
    if not shapes["n"]:
        return _claim(3, claim, paper, "no evolved search ran", NOT_TESTABLE, measure=measure,
                      reason="no evolved search ran")
    ffn, qkv = shapes["ffn_ratio"], shapes["qkv_ratio"]
    ours = (f"{shapes['n']} evolved winners: d_f/d_m {ffn['min']:.2f}-{ffn['max']:.2f} (mean {ffn['mean']:.2f}), "
            f"d_qkv/d_m {qkv['min']:.2f}-{qkv['max']:.2f}, {shapes['layers'][0]}-{shapes['layers'][1]} layers; "
            f"{shapes['efficient']} of {shapes['n']} satisfy the efficient rule")
    gate = fitness_ranks_downstream(search)
    if search.get("scale") == "smoke":
        verdict = NOT_TESTABLE
    elif gate is not None:
        return _claim(3, claim, paper, ours, NOT_TESTABLE, f"Not testable: {gate}.", measure=measure, reason=gate)
    elif shapes["efficient_share"] >= 0.75:
        verdict = REPRODUCED
    elif abs(ffn["mean"] - (f_lo + f_hi) / 2) < abs(ffn["mean"] - DEFAULT_RULE_FFN_RATIO):
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return _claim(3, claim, paper, ours, verdict,
                  f"Searched with fitness = {search.get('fitness')} (the inherited sub-model's held-out loss at "
                  "small scales), which rewards capacity more than the paper's fine-tuning fitness may.",
                  measure=measure, reason=no_interval)


def fitness_ranks_downstream(search: dict) -> str | None:
    """Why the search's winners say nothing about good shapes, or ``None`` if they may: the proxy-vs-paper ranking
    study (notebook 03) must show a Kendall tau interval above 0 between the search fitness and the downstream
    (paper) fitness of the same sub-models. A fitness that ranks sub-models unlike their fine-tuned scores finds
    the shapes *it* rewards, not the shapes that transfer."""
    study = (search.get("ranking") or {}).get("proxy_vs_paper") or {}
    if len(study.get("proxy") or []) < 3:
        return "no proxy-vs-paper ranking study shows that the search fitness ranks sub-models like fine-tuning does"
    proxy, paper, which = proxy_vs_paper_ranking(study)
    if len(proxy) < 3:
        return (f"only {len(proxy)} of {len(study['proxy'])} architectures of the proxy-vs-paper ranking study beat "
                "their untrained controls at its fine-tuning budget: the paper fitness cannot rank the rest, so "
                "nothing shows that the search fitness ranks sub-models like fine-tuning does")
    tau = _tau_interval(proxy, paper)
    if tau is None:
        return "Kendall tau between the search fitness and the paper fitness is undefined (a constant fitness)"
    if tau.ci95[0] <= 0:
        return (f"the search fitness does not rank sub-models like their fine-tuned scores (Kendall tau "
                f"{tau.difference:.2f} [{tau.ci95[0]:+.2f}, {tau.ci95[1]:+.2f}]{which}, an interval that includes 0)")
    return None


def proxy_vs_paper_ranking(study: dict) -> tuple[list[float], list[float], str]:
    """The proxy and paper fitness values a proxy-vs-paper study can rank, and words saying which: with untrained
    controls (:func:`atb.ranking.kendall_proxy_vs_paper`), only the architectures that beat theirs (a score at the
    constant prediction ranks the budget, not the sub-model); without, every architecture."""
    if "learned" not in study:
        return list(study["proxy"]), list(study["paper"]), ""
    keep = [i for i, learned in enumerate(study["learned"]) if learned]
    words = f" over the {len(keep)} of {len(study['learned'])} architectures that beat their untrained controls"
    return [study["proxy"][i] for i in keep], [study["paper"][i] for i in keep], words


def claim_kd_vs_mlm(records: dict) -> dict:
    return _comparison_claim(4, "KD SuperPLMs give better sub-models than MLM ones at equal latency",
                             "KD-S models above S models at every latency (e.g. GLUE 73.5 for KD-S4 at 17.0x vs 73.0 "
                             "for S4 at 27.2x)", records, "kd_vs_mlm", "claim4_kd_vs_mlm", "KD - MLM ")


def claim_fast(records: dict) -> dict:
    claim = "Fast development reaches nearly the same quality at a fraction of the search and training cost"
    paper = "search 150 -> 12 GPU-hours (0.08x), further training 870 -> 290 (0.33x), similar GLUE"
    develop, glue = records.get("04"), records.get("05")
    if not develop or not glue:
        return _claim(5, claim, paper, "notebooks 04-05 have not run", NOT_TESTABLE, measure=GLUE_MEASURE,
                      reason="notebooks 04-05 have not run")
    ratios = cost_ratios(develop)
    if not ratios:
        return _claim(5, claim, paper, "no fast search ran at this scale", NOT_TESTABLE, measure=GLUE_MEASURE,
                      reason="no fast search ran at this scale")
    measure = deciding_measure(records)
    interval, squad = comparison(records, "fast_vs_evolved", measure), comparison(records, "fast_vs_evolved",
                                                                                   SQUAD_MEASURE)
    ours = ("cost fast/full: " + "; ".join(f"{o.upper()} search {r['search']:.2f}x, further training "
                                           f"{r['further_training']:.2f}x" for o, r in ratios.items())
            + "; quality fast - full: " + _interval_text(interval, measure_label(records, measure)))
    if records.get("06"):
        ours += "; " + _interval_text(squad, SQUAD_MEASURE)
    cheaper = all(r["total"] < 1 for r in ratios.values())
    verdict, reason = decide(interval, records, shift=FAST_TOLERANCE)
    if verdict != NOT_TESTABLE and not cheaper:
        verdict, reason = REFUTED, "the fast method was not cheaper than the full one"
    return _claim(5, claim, paper, ours, verdict,
                  (f"Not testable: {reason}. " if verdict == NOT_TESTABLE and reason else "") +
                  "The further-training ratio is set by develop.fast_steps in configs/<scale>.yaml, as the paper's; "
                  f"the search ratio is measured. 'Nearly the same' is taken as at most {FAST_TOLERANCE:g} GLUE point "
                  "below the full method: reproduced when the interval of fast - full lies above "
                  f"-{FAST_TOLERANCE:g}, refuted when below. " + _noise_note(_scale(records), above_chance(records)),
                  interval=interval,
                  measure=f"{measure_label(records, measure)} (fast - full; tolerance {FAST_TOLERANCE:g})",
                  reason=reason, extra={SQUAD_MEASURE: _bare(squad)} if squad else None)


def cost_ratios(develop: dict) -> dict[str, dict[str, float]]:
    """Claim 5's fast / full cost ratios per objective, computed from notebook 04's per-model costs by the current
    rule (:func:`atb.develop.development_costs`: both methods at the targets both were developed at), so that a
    record written before a fix of that rule is still divided right; a record without per-model costs keeps its own
    ``fast_over_full``."""
    models, superplm = list((develop.get("models") or {}).values()), develop.get("superplm") or {}
    if not models or not all(m.get("further_training") and (m.get("search") or m.get("method") not in ("evolved", "fast"))
                             for m in models):
        return develop.get("fast_over_full") or {}
    steps = {objective: entry["steps"] for objective, entry in superplm.items()}
    if not {m["objective"] for m in models} <= set(steps):
        return develop.get("fast_over_full") or {}
    return fast_over_full(development_costs(models, steps))


def claim_ranking(records: dict) -> dict:
    claim = "(Implicit in one-shot NAS) inherited-weight rankings agree with rankings after further training"
    paper = "not measured in the paper"
    measure = "Kendall tau (inherited vs further-trained fitness)"
    search = records.get("03")
    study = ((search or {}).get("ranking") or {}).get("inherited_vs_trained")
    if not study or len(study.get("inherited") or []) < 3:
        return _claim(6, claim, paper, "no ranking study ran", NOT_TESTABLE, measure=measure,
                      reason="no ranking study of at least 3 architectures")
    tau = _tau_interval(study["inherited"], study["trained"])
    if tau is None:
        return _claim(6, claim, paper, "Kendall tau is undefined (a constant fitness)", NOT_TESTABLE, measure=measure,
                      reason="Kendall tau is undefined for these rankings (a constant fitness)")
    ours = (f"Kendall tau {tau.difference:.2f} [{tau.ci95[0]:+.2f}, {tau.ci95[1]:+.2f}] (95 % CI, {tau.n} "
            f"architectures resampled; p = {study['p_value']:.2f}; {study.get('steps', '?')} further-training steps)")
    proxy = search["ranking"].get("proxy_vs_paper") or {}
    if len(proxy.get("proxy") or []) >= 3:
        x, y, which = proxy_vs_paper_ranking(proxy)
        other = _tau_interval(x, y) if len(x) >= 3 else None
        if other is not None:
            ours += (f"; proxy vs paper fitness tau {other.difference:.2f} [{other.ci95[0]:+.2f}, "
                     f"{other.ci95[1]:+.2f}]{which}")
        elif which:
            ours += f"; proxy vs paper fitness: only {len(x)} of {len(proxy['learned'])} architectures beat their controls"
    if search.get("scale") == "smoke":
        verdict, reason = NOT_TESTABLE, SMOKE
    else:
        verdict = stats.verdict(tau)
        reason = ("the interval of tau contains 0; with "
                  f"{tau.n} architectures only tau >= {stats.detectable_tau(tau.n):.2f} could have an interval above "
                  "0 (atb.stats.detectable_tau)" if verdict == NOT_TESTABLE else None)
    return _claim(6, claim, paper, ours, verdict, f"Not testable: {reason}." if reason else "",
                  interval={"difference": tau.difference, "ci95": list(tau.ci95), "n": tau.n}, measure=measure,
                  reason=reason)


def _tau_interval(x: list[float], y: list[float]) -> stats.Interval | None:
    """:func:`atb.stats.kendall_tau_interval`, or ``None`` where tau is undefined (a constant side, every draw tied)."""
    try:
        tau = stats.kendall_tau_interval(x, y)
    except (ValueError, IndexError):
        return None
    return tau if all(math.isfinite(v) for v in (tau.difference, *tau.ci95)) else None


# --------------------------------------------------------------------------------------- EfficientBERT
RATIO_TOLERANCE = 0.25  # a measured ratio within 25 % of the paper's agrees (claim 1's rule)


def _efficientbert(records: dict) -> dict | None:
    return records.get("08")


def _ratio_claim(number: int, claim: str, key: str, what: str, records: dict) -> dict:
    """A published EfficientBERT ratio against BERT-base (parameters or speed), measured once on this machine: no
    interval; ``reproduced`` within :data:`RATIO_TOLERANCE` of the paper's, ``partly`` when larger than that (the same
    direction, a larger margin), ``not reproduced`` when smaller."""
    paper_value = EFFICIENTBERT_PAPER[key]  # EfficientBERT, Table 1
    paper = f"{paper_value}x {what} than BERT-base"
    record = _efficientbert(records)
    reason = "one measurement of the published model's shape (no seeds to resample): decided by the ratio rule"
    if not record:
        return _claim(number, claim, paper, "notebook 08 has not run", NOT_TESTABLE, measure=key,
                      reason="notebook 08 has not run")
    published = record["published"]
    measured = published[key]
    ours = f"{measured:.1f}x (measured here: {published['params'] / 1e6:.1f} M parameters, {published['latency_ms']:.1f} ms " \
           f"vs BERT-base {published['bert_base_ms']:.1f} ms)"
    ratio = measured / paper_value
    if _scale(records) == "smoke":  # its latency protocol times 2 runs: like every smoke number, it decides nothing
        return _claim(number, claim, paper, ours, NOT_TESTABLE, measure=key,
                      reason="the smoke scale only shows that the pipeline runs")
    verdict = (REPRODUCED if abs(ratio - 1) <= RATIO_TOLERANCE else PARTLY if ratio > 1 else NOT_REPRODUCED)
    note = (f"Measured {ratio:.2f}x the paper's ratio: this CPU and PyTorch run the narrow model relatively faster "
            "than the paper's setting." if verdict == PARTLY else "")
    return _claim(number, claim, paper, ours, verdict, note, measure=key, reason=reason)


def claim_efficientbert_size(records: dict) -> dict:
    return _ratio_claim(7, "EfficientBERT: the published model is 6.9x smaller than BERT-base", "params_ratio",
                        "fewer parameters", records)


def claim_efficientbert_speed(records: dict) -> dict:
    return _ratio_claim(8, "EfficientBERT: the published model is 4.4x faster than BERT-base (CPU)", "speedup",
                        "faster", records)


# ------------------------------------------------------------------------ searched vs baseline (claims 9, 10)
@dataclass(frozen=True)
class SearchDesign:
    """What a searched-vs-baseline comparison (claims 9 and 10) needs before its interval can decide it: the
    ``notebook`` whose record holds it, the ``searched`` and ``baseline`` models' names (those of
    ``atb.efficientbert.study`` / ``atb.autobert_zero.study``; a test checks), the key of the searched model's
    ``changes`` that must not be empty (what the claim is about), and why an empty one tests nothing."""
    notebook: str
    searched: str
    baseline: str
    change: str
    unchanged: str


EFFICIENTBERT_SEARCH = SearchDesign(
    "08", "efficientbert-searched", "efficientbert-gelu", "expressions",
    "the developed 'searched' model changes no FFN expression against plain gelu: it tests nothing about expressions")
AUTOBERT_ZERO_SEARCH = SearchDesign(
    "09", "autobert-zero-searched", "autobert-zero-standard", "convolution_layers",
    "the developed 'searched' model has no convolution layer: it is not a hybrid")
IS_START = "the 'searched' model is the search's start itself"
DISTANCE_PROXY = ("the model was picked by a proxy that is the distance to the start by construction (the teacher is "
                  "the warm start's source), so no new operator can win on it")
PICKED_BY = {"rerank": "the rerank (a short fine-tune on held-out train examples)", "proxy": "the proxy (KD loss)"}


def design_problem(record: dict, design: SearchDesign) -> str | None:
    """Why ``record``'s searched-vs-baseline comparison could not have come out either way, or ``None`` if it could:
    no searched model (the search's own ``reason``, e.g. no hybrid within the budget), a record that predates the
    ``changes`` field, a searched model that changes nothing the claim is about, the search's start itself, or a
    model picked by a proxy that is the distance to the start by construction (unless the rerank picked it)."""
    search = record.get("search") or {}
    pick = search.get("developed_pick") or {}
    searched = (record.get("models") or {}).get(design.searched)
    if searched is None:
        return pick.get("reason") or f"the record holds no '{design.searched}' model"
    if "changes" not in searched:
        return (f"the record predates the `changes` field, so it cannot show that the searched model holds what the "
                f"claim is about (rerun notebook {design.notebook})")
    if not (searched["changes"] or {}).get(design.change):
        return design.unchanged
    if pick.get("is_start"):
        return IS_START
    if pick.get("picked_by") != "rerank" and search.get("proxy_is_distance_to_start"):
        return DISTANCE_PROXY
    return None


def searched_verdict(records: dict, record: dict, versus: dict | None, design: SearchDesign) -> tuple[str, str | None]:
    """``(verdict, reason)`` of claim 9 or 10 from the searched-minus-baseline interval ``versus``: ``not testable``
    at the smoke scale, for a design problem (:func:`design_problem`), without an interval, or unless both models
    beat their untrained controls (else their difference does not measure what they learned); then the interval's
    verdict."""
    if _scale(records) == "smoke":
        return NOT_TESTABLE, SMOKE
    if (problem := design_problem(record, design)) is not None:
        return NOT_TESTABLE, problem
    if versus is None or versus.get("ci95") is None:
        return NOT_TESTABLE, (versus or {}).get("reason") or "no scored pair"
    models = record.get("models") or {}
    if not all(beats_control(models.get(name)) for name in (design.searched, design.baseline)):
        return NOT_TESTABLE, (f"{design.searched} and {design.baseline} do not both beat untrained models of their "
                              "configuration, so their difference does not measure what they learned")
    return stats.verdict(_as_interval(versus)), None


def _pick_text(pick: dict, start: str) -> list[str]:
    """What the record says of how the searched model was picked."""
    parts = []
    if pick.get("best_is_start"):
        where = "in the rerank" if pick.get("picked_by") == "rerank" else "on its proxy"
        parts.append(f"the search's best candidate {where} was its start, {start} itself; 'searched' is its best new "
                     "candidate")
    if pick.get("picked_by"):
        parts.append(f"picked by {PICKED_BY.get(pick['picked_by'], pick['picked_by'])}")
    return parts


def claim_efficientbert_search(records: dict) -> dict:
    """Decided from notebook 08's paired interval (searched minus plain-gelu, GLUE average) by
    :func:`searched_verdict`: a design that could have come out either way, both models beating their controls."""
    claim = "EfficientBERT: the searched FFN expressions beat BERT's plain gelu FFN at equal size"
    paper = "searched FFNs above BERT's FFN of the same size (EfficientBERT, Table 2)"
    record = _efficientbert(records)
    if not record:
        return _claim(9, claim, paper, "notebook 08 has not run", NOT_TESTABLE, measure=GLUE_MEASURE,
                      reason="notebook 08 has not run")
    versus = (record.get("searched_vs_gelu") or {}).get("glue")
    parts = [_interval_text(versus, "searched minus plain-gelu, GLUE avg")]
    parts += [f"{name} vs its control {m['vs_control']['difference']:+.1f}" for name, m in record["models"].items()
              if (m.get("vs_control") or {}).get("difference") is not None]
    parts += _pick_text((record.get("search") or {}).get("developed_pick") or {}, "the plain-gelu model")
    verdict, reason = searched_verdict(records, record, versus, EFFICIENTBERT_SEARCH)
    note = (f"Not testable: {reason}. " if reason else "") + _noise_note(_scale(records))
    return _claim(9, claim, paper, "; ".join(parts), verdict, note.strip(), interval=versus, measure=GLUE_MEASURE,
                  reason=reason)


# --------------------------------------------------------------------------------------- AutoBERT-Zero
def claim_autobert_zero_hybrid(records: dict) -> dict:
    """Decided from notebook 09's paired interval (searched hybrid minus the standard-attention backbone, GLUE
    average; the search's constraint keeps the hybrid no slower) by :func:`searched_verdict`, like claim 9."""
    claim = "AutoBERT-Zero: the searched hybrid backbone beats a standard-attention backbone of equal latency"
    paper = "+2.4 GLUE (test) over RoBERTa-base at base size (AutoBERT-Zero, Table 2)"
    record = records.get("09")
    if not record:
        return _claim(10, claim, paper, "notebook 09 has not run", NOT_TESTABLE, measure=GLUE_MEASURE,
                      reason="notebook 09 has not run")
    versus = (record.get("searched_vs_standard") or {}).get("glue")
    models = record.get("models") or {}
    parts = [_interval_text(versus, "searched minus standard-attention, GLUE avg")]
    parts += [f"{name} vs its control {m['vs_control']['difference']:+.1f}" for name, m in models.items()
              if (m.get("vs_control") or {}).get("difference") is not None]
    published = (record.get("published_vs_standard") or {}).get("glue")
    if published and published.get("ci95"):
        parts.append(_interval_text(published, "the published pattern (at this shape) minus standard-attention, "
                                               "GLUE avg"))
    speed = {name: m.get("speedup") for name, m in models.items()}
    if any(v is not None for v in speed.values()):
        parts.append("speedups " + ", ".join(f"{n} {v:.2f}x" for n, v in speed.items() if v is not None))
    parts += _pick_text((record.get("search") or {}).get("developed_pick") or {}, "the standard-attention backbone")
    verdict, reason = searched_verdict(records, record, versus, AUTOBERT_ZERO_SEARCH)
    note = (f"Not testable: {reason}. " if reason else "") + _noise_note(_scale(records))
    return _claim(10, claim, paper, "; ".join(parts), verdict, note.strip(), interval=versus, measure=GLUE_MEASURE,
                  reason=reason, extra={"published_vs_standard": published} if published else None)


SEARCH_FITNESS = {"rerank": "the rerank fitness (a short fine-tune on held-out train examples)",
                  "proxy": "the proxy fitness (negated KD loss)"}


def claim_opnas(records: dict) -> dict:
    """OP-NAS minus plain random mutation, best fitness per search seed at equal evaluations, with a Student-t
    interval over at least :data:`MIN_SEARCH_SEEDS` search seeds (notebook 09)."""
    claim = "AutoBERT-Zero: OP-NAS finds fitter backbones than plain random mutation at equal search cost"
    paper = "OP-NAS's search curve above random mutation's (AutoBERT-Zero, Figure 4)"
    record = records.get("09")
    search = (record or {}).get("search") or {}
    versus = search.get("opnas_vs_random") or {}
    fitness = versus.get("fitness")
    measure = (f"best {fitness} fitness of the proposed candidates" if fitness else
               "best proxy fitness of the proposed candidates (negated KD loss)")
    if not record:
        return _claim(11, claim, paper, "notebook 09 has not run", NOT_TESTABLE, measure=measure,
                      reason="notebook 09 has not run")
    if versus.get("ci95"):  # fitness differences are small numbers: four decimals, not the GLUE points' two
        lo, hi = versus["ci95"]
        ours = f"OP-NAS minus random mutation {versus['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] (95 % CI, n = {versus['n']})"
    else:
        ours = _interval_text(versus, "OP-NAS minus random mutation")
    if fitness:
        ours += f"; measured on {SEARCH_FITNESS.get(fitness, repr(fitness))}"
    ours += (f"; seeds {versus.get('seeds')}; CPU seconds {search['cpu_seconds']:.0f} vs "
             f"{search['random_mutation']['cpu_seconds']:.0f}")
    if _scale(records) == "smoke":
        verdict, reason = NOT_TESTABLE, "the smoke scale's toy searches only show that the pipeline runs"
    elif versus.get("ci95") is None:
        verdict, reason = NOT_TESTABLE, versus.get("reason") or "no interval"
    elif (versus.get("n") or 0) < MIN_SEARCH_SEEDS:
        verdict, reason = NOT_TESTABLE, f"fewer than {MIN_SEARCH_SEEDS} search seeds (n = {versus.get('n')})"
    else:
        verdict, reason = stats.verdict(_as_interval({**versus, "n_boot": 0})), None
    note = ("Equal cost = the same number of evaluated candidates per seed. Measured on the best candidate each "
            "search proposed, the start both evaluate first left out (with it, the difference is 0 whenever neither "
            "beats the start). The interval is over search seeds (Student t), so it speaks for this supernet and "
            "fitness, not for OP-NAS in general.")
    return _claim(11, claim, paper, ours, verdict, (f"Not testable: {reason}. " if reason else "") + note,
                  interval=versus if versus.get("ci95") else None, measure=measure, reason=reason)


CLAIMS: tuple[Callable[[dict], dict], ...] = (claim_learned, claim_speedups, claim_searched_vs_baseline, claim_shapes,
                                              claim_kd_vs_mlm, claim_fast, claim_ranking, claim_efficientbert_size,
                                              claim_efficientbert_speed, claim_efficientbert_search,
                                              claim_autobert_zero_hybrid, claim_opnas)


def _scale(records: dict) -> str:
    scales = {r.get("scale") for k, r in records.items() if isinstance(r, dict) and r.get("scale")}
    return "smoke" if "smoke" in scales else (records.get("reproduce", {}).get("scale") or next(iter(scales), "?"))


def _noise_note(scale: str, gap: float | None = None) -> str:
    note = ""
    if gap is not None and gap < MIN_ABOVE_CHANCE:
        note = (f"The best model's GLUE average is only {gap:+.1f} points above always predicting the majority class "
                f"(< {MIN_ABOVE_CHANCE:g}): the models learned the tasks only a little. ")
    if scale in ("smoke", "mini"):
        note += (f"At the {scale} scale models are fine-tuned on small subsets: a difference of a few points means "
                 "something only when its interval (seeds and dev examples resampled) excludes 0.")
    return note


# ------------------------------------------------------------------------------------------- render
PAPER_RECIPE = "scratch"  # the paper trains its SuperPLMs from random initialisation


def recipe_lines(records: dict) -> list[str]:
    """The one-shot recipe of each SuperPLM (notebook 01's ``init``), what it changes against the paper, and what the
    one-shot step did to the held-out loss of the same sub-models (before vs after), when recorded."""
    pre = records.get("01") or {}
    if not any(isinstance(pre.get(o), dict) for o in ("mlm", "kd")):
        return []
    lines = ["## One-shot recipe", ""]
    for objective in ("mlm", "kd"):
        run = pre.get(objective) or {}
        init = run.get("init", PAPER_RECIPE)
        changed = ("as in the paper (random initialisation)" if init == PAPER_RECIPE else
                   f"**not the paper's**: the SuperPLM starts from a pretrained BERT ({init}: the offline MiniLM, "
                   "the space's largest architecture, copied in with importance rewiring) instead of random weights")
        line = f"- {objective.upper()}: `{init}`, {run.get('steps', '?')} steps; {changed}."
        effect = run.get("one_shot_effect") or []
        if effect:
            lower = sum(r["trained"] < r["warm start"] for r in effect)
            line += (f" Held-out {objective.upper()} loss of {len(effect)} sub-models before -> after one-shot training: "
                     + ", ".join(f"{r['arch']} {r['warm start']:.2f} -> {r['trained']:.2f}" for r in effect)
                     + f" (lower for {lower} of {len(effect)}).")
        lines.append(line)
    return [*lines, ""]


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def budget_lines(records: dict) -> list[str]:
    """The Budgets section: every rung the ladder climbed per task (``budgets.json``, :mod:`atb.budgets`), the
    teacher's and its control's held-out scores, the majority class, their difference with its interval, and
    whether it passed (or why not); then the budgets chosen. None without the record."""
    ladder = records.get("budgets")
    if not ladder:
        return []
    margins = ", ".join(f"{t} {m:g}" for t, m in (ladder.get("margins") or {}).items()) or "none"
    lines = ["## Budgets", "",
             f"Chosen by the budget ladder (`python -m atb.budgets`, record `budgets.json`): per task the first rung, "
             f"cheapest first, at which {calibration_label(ladder['teacher'])} beats its untrained control, both "
             f"fine-tuned with {ladder['seeds']} seeds and scored on {ladder['scored_on']}, with an interval above 0 "
             f"and by the margin over the better of the control and the majority class (margins: {margins}). A rung "
             "left blank asks only for more examples than the task's train split holds.", "",
             "| task | rung | budget | teacher | control | majority | teacher - control | passes |",
             "|---|---|---|---|---|---|---|---|"]
    for task, climb in ladder["tasks"].items():
        for step in climb["rungs"]:
            budget = ", ".join(f"{k} {v}" for k, v in step["budget"].items()) or "the scale's first"
            if step.get("same_as") is not None:
                lines.append(f"| {task} | {step['rung']} | {budget} | | | | as rung {step['same_as']} | no |")
                continue
            ci = step.get("ci95")
            difference = ("n/a" if step.get("difference") is None else f"{step['difference']:+.1f}"
                          + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else ""))
            passes = "**yes**" if step["passes"] else _cell(step.get("reason") or "no")
            lines.append(f"| {task} | {step['rung']} | {budget} | {_score(step.get('teacher'))} | "
                         f"{_score(step.get('control'))} | {_score(step.get('majority'))} | {difference} | {passes} |")
    chosen = [f"{t} rung {c['chosen']}" for t, c in ladder["tasks"].items() if c["chosen"] is not None]
    unchosen = [t for t, c in ladder["tasks"].items() if c["chosen"] is None]
    lines += ["", f"Chosen: {', '.join(chosen) or 'none'}; the scale's `finetune` section holds these budgets."
              + (f" {', '.join(unchosen)} passed no rung and keep the scale's first budget; notebook 05's calibration "
                 "(on dev) decides whether they enter the decision average." if unchosen else ""), ""]
    return lines


def _cell(text: Any) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def render(records: dict, results_dir: str | Path) -> str:
    """The report's Markdown (``results_dir`` only decides which figures exist)."""
    results_dir = Path(results_dir)
    claims = [f(records) for f in CLAIMS]
    run = records.get("reproduce", {})
    lines = [
        "# AutoTinyBERT reproduction (with EfficientBERT): claims report",
        "",
        f"Generated by `python -m atb.report` from the records in `results/{_scale(records)}/` (do not edit by "
        f"hand). Scale: **{_scale(records)}**; commit `{(run.get('commit') or 'unknown')[:12]}`.",
        "",
        "Comparisons of models (claims 0, 2, 4, 5) give the mean paired difference with its 95 % interval from a "
        "bootstrap over fine-tuning seeds and dev examples, pooling the comparison's model pairs; the verdict is "
        "reproduced / refuted when the interval lies above / below 0 (`atb.report`'s docstring has every rule). "
        "Per claim, the numbers are also in `report.json`.",
        "",
        "| # | claim | paper | this study | verdict |",
        "|---|---|---|---|---|",
        *(f"| {c['number']} | {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['ours'])} | **{c['verdict']}** |"
          for c in claims),
        "",
        *recipe_lines(records),
        *budget_lines(records),
        "## Notes",
        *(f"- Claim {c['number']}: {c['note']}" for c in claims if c["note"]),
        "- Offline, MNLI, QQP and the QNLI train split are absent: GLUE averages here are over the scored tasks "
        f"(results/{_scale(records)}/05_glue.json lists them), not the paper's eight; SQuAD v2.0 is not scored.",
        *decision_lines(records),
    ]
    lines += beyond_lines(records)
    if run.get("notebooks"):
        lines += ["", "## Run", "", "| notebook | seconds | status |", "|---|---|---|",
                  *(f"| {n} | {v['seconds']:.0f}{' (cached)' if v.get('cached') else ''} | {_cell(v['status'])} |"
                    for n, v in sorted(run["notebooks"].items())),
                  "", run_total(run)]
    figures = [f for f in FIGURES if (results_dir / f).exists()]
    if figures:
        lines += ["", "## Figures", "", *(f"![{f}]({f})" for f in figures)]
    return "\n".join(lines) + "\n"


def deployment_summary(records: dict) -> dict | None:
    """Notebook 11's answer to "do the speedups hold under deployment runtimes?": per runtime the Spearman ρ of the
    published models' speedups against the paper's (with its interval) and whether it lies above 0; int8's accuracy
    cost. ``None`` without the record."""
    record = records.get("11")
    if not record:
        return None
    rho = {runtime: entry["spearman_vs_paper"] for runtime, entry in record["runtimes"].items()
           if entry.get("spearman_vs_paper")}
    return {"spearman_vs_paper": rho, "holds": sorted(r for r, v in rho.items() if v["ci95"][0] > 0),
            "int8_accuracy": {k: record["int8_accuracy"][k] for k in ("task", "difference", "ci95", "n")}
            if record.get("int8_accuracy") else None, "cpu": record["machine"]["cpu"]}


def pareto_summary(records: dict) -> dict | None:
    """Notebook 12's answer to "can one search give the whole front?": the hypervolume differences (NSGA-II minus
    evolution, over the span and inside the targets' windows) with their intervals and verdicts, per target the best
    fitness difference, and the developed front points against the evolved models. ``None`` without the record."""
    record = records.get("12")
    if not record:
        return None

    def decided(interval: dict | None) -> dict | None:  # which search the interval over seeds favours, if any
        if interval is None:
            return None
        return {**{k: interval[k] for k in ("difference", "ci95", "n")}, "verdict": favours(interval)}

    developed = record.get("developed") or {}
    return {"objective": record["objective"], "seeds": record["seeds"], "speedups": record["speedups"],
            "evaluations_per_search": record["evaluations_per_search"],
            "hypervolume": decided(record["hypervolume"]), "hypervolume_windows": decided(record["hypervolume_windows"]),
            "targets": {s: decided(v) for s, v in record["targets"].items()},
            "developed": (developed.get("intervals") or {}).get("pareto_vs_evolved"),
            "developed_measure": developed.get("measure"),
            "same_pick": developed.get("same_pick") or {}}


def pareto_line(summary: dict) -> str:
    """REPORT.md's line on notebook 12 (:func:`pareto_summary`)."""
    line = (f"- **One search for the whole front** (notebook 12, {summary['objective'].upper()} space, "
            f"{len(summary['seeds'])} seeds, {summary['evaluations_per_search']} evaluations per search): NSGA-II "
            "minus one evolution per target, normalised hypervolume ")
    parts = [f"{_interval_text(v, name, digits=3)}: {v['verdict']}" for name, v in
             (("over the whole span", summary["hypervolume"]), ("inside the targets' windows", summary["hypervolume_windows"]))
             if v is not None]
    line += "; ".join(parts) if parts else "not decided (fewer than two seeds scored)"
    developed = summary["developed"]
    if developed and developed.get("ci95"):
        line += ". " + _interval_text(developed, "Its developed front points minus the evolved models, "
                                      + (summary["developed_measure"] or developed["measure"]))
    if summary["same_pick"]:
        line += ". Both searches picked the same architecture at " + ", ".join(f"{s}x" for s in summary["same_pick"])
    return line + "."


def beyond_lines(records: dict) -> list[str]:
    """REPORT.md's section on what the papers did not ask (notebooks 11 and 12); none without their records."""
    lines = [pareto_line(s)] if (s := pareto_summary(records)) else []
    summary = deployment_summary(records)
    if summary is None:
        return ["", "## Beyond the paper", "", *lines] if lines else []
    rho = summary["spearman_vs_paper"]
    line = f"- **The speedups hold under deployment runtimes** (notebook 11, {summary['cpu']}): "
    line += ((f"the paper's ranking of its models holds, Spearman's ρ with an interval above 0, under "
              f"{len(summary['holds'])} of {len(rho)} runtimes: "
              + "; ".join(f"{r} ρ = {v['difference']:.2f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]"
                          for r, v in rho.items()) + ".") if rho else
             "too few published models were timed at this scale to rank them.")
    int8 = summary["int8_accuracy"]
    if int8:
        line += (f" int8 (ONNX Runtime, dynamic quantization) − fp32 on {int8['task'].upper()}: {int8['difference']:+.2f} "
                 f"points [{int8['ci95'][0]:+.2f}, {int8['ci95'][1]:+.2f}] over {int8['n']} model × seed pairs.")
    return ["", "## Beyond the paper", "", line, *lines]


def decision_lines(records: dict) -> list[str]:
    """The Notes' lines on what decides claims 0, 2, 4 and 5: notebook 05's decision tasks and why each other task
    is out, and whether SQuAD v1.1 decides anything (notebook 06); none for records before them."""
    decision = (records.get("05") or {}).get("decision_tasks")
    if decision is None:
        return []
    calibration = (records.get("05") or {}).get("calibration") or {}
    who = calibration_label(calibration) if calibration.get("arch") else "the teacher"
    lines = [f"- Claims 0, 2, 4 and 5 are decided on the GLUE average over the tasks on which {who}, "
             f"fine-tuned with the same budget, beats its untrained control (`atb.develop.decision_tasks`): "
             f"{', '.join(decision['tasks']) or 'none'}. Left out: "
             + "; ".join(f"{c}, {r}" for c, r in decision["left_out"].items()) + "."]
    squad = (records.get("06") or {}).get("decision")
    if squad and not squad["decides"]:
        lines.append(f"- SQuAD v1.1 decides nothing at this scale: {squad['reason']}; its intervals are shown only.")
    return lines


FIRST_BEYOND_THE_PAPERS = 11  # notebooks numbered from here on (deployment, Pareto search) go beyond the papers


def notebook_seconds(run: dict) -> dict[str, float]:
    """Each notebook's seconds in the run that produced its current executed copy (for a failed notebook, its last
    good run)."""
    seconds = {}
    for name, entry in (run.get("notebooks") or {}).items():
        good = entry if entry.get("status") == "ok" else entry.get("last_ok") or {}
        seconds[name] = good.get("seconds", 0.0)
    return seconds


def split_seconds(seconds: dict[str, float]) -> dict[str, float]:
    """Notebook seconds split into the papers' study (notebooks 00-10, what the engine and power issues budget) and
    what goes beyond the papers (11 and up)."""
    split = {"papers": 0.0, "beyond": 0.0}
    for name, value in seconds.items():
        split["beyond" if int(name.split("_", 1)[0]) >= FIRST_BEYOND_THE_PAPERS else "papers"] += value
    return {part: round(value, 1) for part, value in split.items()}


def _papers_part(split: dict[str, float]) -> str:
    """``notebooks 00-10, the papers' study: N minutes`` (the part the engine and power issues budget)."""
    return f"notebooks 00-{FIRST_BEYOND_THE_PAPERS - 1:02d}, the papers' study: {split['papers'] / 60:.1f} minutes"


def run_total(run: dict) -> str:
    """The Run section's last line: the total (and, when the run holds both, the papers' part 00-10 and the part
    beyond them), and whether it is the study's cost from scratch (or, for a re-execution, what the last study from
    scratch cost)."""
    machine = run.get("machine") or {}
    where = f" on {machine['cpu']} ({machine.get('computed_in', 'fp32')})" if machine.get("cpu") else ""
    total = f"Total: {run.get('total_seconds', 0) / 60:.1f} minutes{where}"
    split = split_seconds(notebook_seconds(run))
    if split["papers"] and split["beyond"]:
        total += (f" ({_papers_part(split)}; "
                  f"{FIRST_BEYOND_THE_PAPERS}+, beyond the papers: {split['beyond'] / 60:.1f} minutes)")
    cost = run.get("from_scratch") or {}
    calls = cost.get("calls", 1)
    sittings = "one call" if calls == 1 else f"{calls} calls, each resuming at a notebook boundary"
    if run.get("runs_empty_at_start"):
        return (total + f": every notebook executed once, from an empty `runs/` ({sittings}), the study's cost from "
                "scratch.")
    entries = run.get("notebooks") or {}
    studies = {e.get("study") for e in entries.values()}
    retried = sorted(n for n, e in entries.items() if e.get("retried"))
    if entries and retried and len(studies) == 1 and None not in studies and all(
            e.get("status") == "ok" for e in entries.values()):
        total += (f". Every notebook ran in one study that started from an empty `runs/`, but {', '.join(retried)} "
                  f"executed more than once in it (re-executed, or an earlier attempt was stopped or failed): "
                  f"{'its' if len(retried) == 1 else 'their'} last execution may have reused the cached steps of the "
                  "earlier one, so the total is not certified as the study's cost from scratch")
    scratch_split = cost.get("split") or {}
    papers = f" ({_papers_part(scratch_split)})" if scratch_split.get("papers") and scratch_split.get("beyond") else ""
    earlier = (f" The last study from scratch took {cost['total_seconds'] / 60:.1f} minutes{papers} on "
               f"{', '.join(cost.get('cpus') or ['an unrecorded CPU'])} ({sittings}; commit "
               f"{', '.join(c[:7] for c in cost.get('commits', []))}).") if cost else ""
    return (total + ". **Not the cost from scratch**: seconds are those of each notebook's last execution (of the run "
            "that produced it, for a notebook skipped as unchanged), and work cached under `runs/` (checkpoints, search "
            "logs, fine-tuning results) is not redone, so a re-execution can be far shorter than the first." + earlier)


def summary(records: dict) -> dict:
    """``report.json``: ``{"scale", "commit", "claims": {number: {"claim", "paper", "ours", "verdict", "measure",
    "difference", "ci95", "n", "pairs", "reason", "extra"}}, "beyond": {"deployment": deployment_summary(...), "pareto": pareto_summary(...)}}`` (``paper`` / ``ours``: REPORT.md's two cells; ``difference`` /
    ``ci95`` / ``n`` ``None`` where there is no interval; ``pairs``: how many model pairs a comparison pools)."""
    keys = ("claim", "paper", "ours", "verdict", "measure", "difference", "ci95", "n", "pairs", "reason", "extra")
    return {"scale": _scale(records), "commit": records.get("reproduce", {}).get("commit"),
            "claims": {str(c["number"]): {k: c[k] for k in keys} for c in (f(records) for f in CLAIMS)},
            "beyond": {"deployment": deployment_summary(records), "pareto": pareto_summary(records)}}


# Each notebook is a chapter: the claims it tests, named in its opening cell and decided in its closing one.
CHAPTERS: dict[str, tuple[int, ...]] = {
    "00_overview": (), "01_superpretraining": (), "02_latency": (1,), "03_search": (3, 5, 6),
    "04_further_training": (5,), "05_glue": (0, 2, 4, 5), "06_squad": (0, 2, 4, 5), "07_accuracy_latency": (2, 4),
    "08_efficientbert": (7, 8, 9), "09_autobert_zero": (10, 11), "10_comparison": (), "11_deployment": (),
    "12_pareto": (),
}


def _chapter(notebook: str) -> tuple[int, ...]:
    name = Path(notebook).stem
    if name not in CHAPTERS:
        raise ValueError(f"unknown notebook {notebook!r}; chapters: {', '.join(CHAPTERS)}")
    return CHAPTERS[name]


def chapter_opening(notebook: str, results_root: str | Path | None = None) -> str:
    """Markdown for a notebook's opening: the claims it tests with the paper's numbers (the words of REPORT.md), and
    what the notebook cost at each scale whose ``results/<scale>/reproduce.json`` records it."""
    numbers = _chapter(notebook)
    claims = {c["number"]: c for c in (f({}) for f in CLAIMS)}  # claim and paper cells need no records
    lines = (["**The claims this notebook tests** (decided at its end and in `REPORT.md`):", "",
              "| # | claim | paper |", "|---|---|---|",
              *(f"| {n} | {_cell(claims[n]['claim'])} | {_cell(claims[n]['paper'])} |" for n in numbers)]
             if numbers else ["**No claim is decided in this notebook**; its records feed the chapters after it."])
    root = Path(results_root) if results_root is not None else Layout("mini").results_root
    costs = []
    for scale in SCALES:
        try:
            run = json.loads((root / scale / "reproduce.json").read_text())
        except (OSError, ValueError):
            continue
        entry = run.get("notebooks", {}).get(f"{Path(notebook).stem}.ipynb")
        if entry and entry.get("status") == "ok":
            where = f" on {entry['cpu']} ({entry.get('computed_in', 'fp32')})" if entry.get("cpu") else ""
            costs.append(f"{scale} {entry['seconds'] / 60:.1f} min{where}")
    if costs:
        lines += ["", f"**Its last run took** {'; '.join(costs)} (`results/<scale>/reproduce.json`; a run that reused "
                  "cached steps under `runs/` is shorter than one from scratch)."]
    return "\n".join(lines)


def chapter_verdicts(notebook: str, results_dir: str | Path) -> str:
    """Markdown for a notebook's closing cell: REPORT.md's rows for the claims it tests, computed by the report's rules
    from the records now in ``results_dir`` (records of later notebooks may still be those of an earlier run)."""
    numbers = _chapter(notebook)
    if not numbers:
        return "**No claim is decided in this notebook.**"
    records = load_records(results_dir)
    claims = {c["number"]: c for c in (f(records) for f in CLAIMS)}
    return "\n".join([
        f"**Verdicts** (`atb.report`, from the records in `results/{_scale(records)}/`, the words of `REPORT.md`):", "",
        "| # | claim | this study | verdict |", "|---|---|---|---|",
        *(f"| {n} | {_cell(claims[n]['claim'])} | {_cell(claims[n]['ours'])} | **{claims[n]['verdict']}** |"
          for n in numbers),
        "",
        *(f"- Claim {n}: {claims[n]['note']}" for n in numbers if claims[n]["note"]),
    ])


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def headline(claim: dict) -> str:
    """A claim's result in one short cell: REPORT.md's own words up to the first interval's details (what is compared
    and the interval it was decided from), or the whole cell when it has no interval."""
    return str(claim["ours"]).split(" (95 % CI")[0]


def readme_block(report: dict) -> str:
    """The README's results table, from a ``report.json`` (:func:`summary`): claim, the paper's number, ours,
    verdict; between :data:`README_START` and :data:`README_END` (``python -m atb.report --readme README.md``)."""
    claims = report["claims"]
    rows = [f"| {n} | {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(headline(c))} | **{c['verdict']}** |"
            for n, c in sorted(claims.items(), key=lambda item: int(item[0]))]
    return "\n".join([
        README_START,
        f"Generated from `results/{report['scale']}/report.json` (commit `{(report.get('commit') or 'unknown')[:7]}`)"
        " by `python -m atb.report --readme README.md`; a test keeps it equal to the record. Intervals are 95 %.",
        "",
        "| # | claim | paper | this study | verdict |",
        "|---|---|---|---|---|",
        *rows,
        README_END,
    ])


def sync_readme(readme: str | Path, results_dir: str | Path) -> Path:
    """Replace the block between the markers of ``readme`` with :func:`readme_block` of ``results_dir``'s report."""
    readme = Path(readme)
    text = readme.read_text()
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(f"{readme}: expected one {README_START} and one {README_END} line around the results table")
    before, rest = text.split(README_START)
    after = rest.split(README_END)[1]
    block = readme_block(json.loads((Path(results_dir) / "report.json").read_text()))
    return write_text_atomic(readme, before + block + after)


def write_report(results_dir: str | Path) -> Path:
    """Render the report from the records of ``results_dir`` (one scale's folder, ``Layout(scale).results``)
    and write ``results_dir/REPORT.md`` and ``results_dir/report.json`` (:func:`summary`) atomically; returns the
    Markdown's path."""
    records = load_records(results_dir)
    write_json_atomic(Path(results_dir) / "report.json", summary(records), allow_nan=False)
    return write_text_atomic(Path(results_dir) / "REPORT.md", render(records, results_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scale", choices=SCALES, default="mini",
                       help="report on results/<scale>/ (under $ATB_RESULTS_DIR when set); default mini")
    where.add_argument("--results-dir", type=Path, help="report on this folder of one scale's records instead")
    parser.add_argument("--readme", type=Path, help="also rewrite this README's results table from the report")
    args = parser.parse_args(argv)
    results = args.results_dir or Layout(args.scale).results
    print(write_report(results))
    if args.readme:
        print(sync_readme(args.readme, results))


if __name__ == "__main__":
    main()
