"""The claims report: verdicts follow the documented rules, and REPORT.md is rendered from records alone."""

import json

import pytest

from atb import report
from atb.layout import ROOT


def _figure(wins: int, pairs: int, mean: float) -> dict:
    s = {"wins": wins, "pairs": pairs, "mean_difference": mean}
    return {"summary": {"claim2_searched_vs_baseline": {"GLUE avg": s, "SQuAD v1.1 F1": s},
                        "claim4_kd_vs_mlm": {"GLUE avg": s, "SQuAD v1.1 F1": s}}}


def _interval(ci, pairs=2):
    if ci is None:
        return {"difference": None, "ci95": None, "n": None, "pairs": [], "reason": "no pair of models scored"}
    return {"difference": sum(ci) / 2, "ci95": list(ci), "n": 3 * pairs * 5, "n_boot": 1000,
            "pairs": [["a", "b"]] * pairs, "reason": None}


LEARNED_YES, LEARNED_UNSURE = (2.0, 9.0), (-1.0, 4.0)


def _records(comparison=(0.5, 3.0), learned=LEARNED_YES, key="searched_vs_default_rule", scale="mini"):
    """Notebook 05/06 records holding ``key``'s interval and the developed-vs-control one (None: a pair-less one)."""
    intervals = {"developed_vs_control": _interval(learned), key: _interval(comparison)}
    return {"05": {"scale": scale, "intervals": intervals}, "06": {"scale": scale, "intervals": intervals},
            "04": {"scale": scale, "fast_over_full": {"kd": {"search": 0.2, "further_training": 0.33, "total": 0.3}}},
            "reproduce": {"scale": scale}}


@pytest.mark.parametrize("claim,key", [(report.claim_searched_vs_baseline, "searched_vs_default_rule"),
                                       (report.claim_kd_vs_mlm, "kd_vs_mlm")])
@pytest.mark.parametrize("comparison,learned,scale,verdict,reason", [
    ((0.5, 3.0), LEARNED_YES, "mini", report.REPRODUCED, None),
    ((-3.0, -0.2), LEARNED_YES, "mini", report.REFUTED, None),
    ((-0.5, 3.0), LEARNED_YES, "mini", report.NOT_TESTABLE, None),
    ((0.5, 3.0), LEARNED_UNSURE, "mini", report.NOT_TESTABLE, "untrained models"),  # the models learned nothing sure
    ((0.5, 3.0), (-5.0, -1.0), "mini", report.NOT_TESTABLE, "untrained models"),
    ((0.5, 3.0), None, "mini", report.NOT_TESTABLE, "untrained models"),
    (None, LEARNED_YES, "mini", report.NOT_TESTABLE, "no pair of models scored"),
    ((0.5, 3.0), LEARNED_YES, "smoke", report.NOT_TESTABLE, "smoke"),
])
def test_comparison_verdicts_come_from_the_interval(claim, key, comparison, learned, scale, verdict, reason):
    result = claim(_records(comparison, learned, key, scale))
    assert result["verdict"] == verdict
    if verdict != report.NOT_TESTABLE:
        assert result["reason"] is None
    if reason:
        assert reason in result["reason"] and reason in result["note"]
    if comparison is not None:
        assert result["ci95"] == list(comparison) and result["difference"] == sum(comparison) / 2
        assert result["pairs"] == 2  # the model pairs the interval pools (issue #23: claims 2 and 4 need >= 3)
        assert f"[{comparison[0]:+.2f}, {comparison[1]:+.2f}]" in result["ours"]
        assert result["extra"]["SQuAD v1.1 F1"]["ci95"] == list(comparison)


@pytest.mark.parametrize("claim,key", [(report.claim_searched_vs_baseline, "searched_vs_default_rule"),
                                       (report.claim_kd_vs_mlm, "kd_vs_mlm")])
def test_pairs_left_out_by_the_gate_are_shown_and_not_counted(claim, key):
    """A record written since atb.develop.comparison_intervals gates its pairs: the claim counts the pairs the
    interval pools and names the ones left out with why, instead of naming models in pooled pairs."""
    records = _records(key=key)
    records["05"]["intervals"][key]["pairs_left_out"] = {"c vs d": "c not above its untrained control"}
    records["05"]["models"] = {"a": {"vs_control": {"ci95": [5.0, 9.0]}}, "c": {"vs_control": {"ci95": [-1.0, 1.0]}}}
    result = claim(records)
    assert result["pairs"] == 2 and result["verdict"] == report.REPRODUCED
    assert result["ours"].endswith("; left out: c vs d (c not above its untrained control)")
    records["05"]["intervals"][key] = {**_interval(None), "reason": "no pair in which both models beat their "
                                       "untrained controls", "pairs_left_out": {"c vs d": "c not above"}}
    result = claim(records)
    assert result["verdict"] == report.NOT_TESTABLE and "both models beat" in result["reason"]


def _with_decision(records: dict, comparison, learned, key: str, tasks=("sst2", "stsb")) -> dict:
    """``records`` whose notebook 05 also decided ``key`` over its decision tasks (:func:`atb.develop.decision_tasks`)."""
    records["05"] = {**records["05"], "decision_tasks": {"tasks": list(tasks), "left_out": {"cola": "no learning"}},
                     "decision_intervals": {"developed_vs_control": _interval(learned), key: _interval(comparison)}}
    return records


@pytest.mark.parametrize("claim,key", [(report.claim_searched_vs_baseline, "searched_vs_default_rule"),
                                       (report.claim_kd_vs_mlm, "kd_vs_mlm"), (report.claim_learned,
                                                                               "developed_vs_control")])
def test_claims_are_decided_on_the_decision_tasks_with_every_task_beside(claim, key):
    # every scored task: nothing decided (the interval includes 0); the decision tasks: reproduced
    records = _with_decision(_records((-1.0, 2.0), LEARNED_UNSURE, key), (0.5, 3.0), LEARNED_YES, key)
    result = claim(records)
    assert result["verdict"] == report.REPRODUCED and result["ci95"] == [0.5, 3.0]
    assert result["measure"] == "decision avg (sst2, stsb)" and result["ours"].count("decision avg (sst2, stsb)") == 1
    assert result["extra"]["GLUE avg"]["ci95"] == [-1.0, 2.0]  # (for claim 0, _records' key is the learned one)
    if key != "developed_vs_control":  # the gate (claim 0) is read on the same measure as the claim
        gated = claim(_with_decision(_records((0.5, 3.0), LEARNED_YES, key), (0.5, 3.0), LEARNED_UNSURE, key))
        assert gated["verdict"] == report.NOT_TESTABLE and "untrained models" in gated["reason"]


def test_the_notes_say_which_tasks_decide_and_why_squad_does_not():
    records = _with_decision(_records(), (0.5, 3.0), LEARNED_YES, "searched_vs_default_rule")
    records["06"] = {**records["06"], "decision": {"decides": False, "reason": "the teacher reaches F1 12.0"}}
    lines = report.decision_lines(records)
    assert "sst2, stsb. Left out: cola, no learning." in lines[0]
    assert lines[1] == "- SQuAD v1.1 decides nothing at this scale: the teacher reaches F1 12.0; its intervals are shown only."
    assert report.decision_lines(_records()) == []


@pytest.mark.parametrize("learned,verdict", [(LEARNED_YES, report.REPRODUCED), ((-5.0, -1.0), report.REFUTED),
                                             (LEARNED_UNSURE, report.NOT_TESTABLE)])
def test_did_the_models_learn_is_claim_0_and_needs_no_gate(learned, verdict):
    result = report.claim_learned(_records(learned=learned))
    assert result["number"] == 0 and result["verdict"] == verdict and result["ci95"] == list(learned)


def test_missing_records_are_not_testable():
    for claim in report.CLAIMS:
        result = claim({})
        assert result["verdict"] == report.NOT_TESTABLE and result["ci95"] is None and result["reason"]


def test_comparisons_near_chance_keep_their_interval_verdict_and_say_so():
    records = _records((0.5, 3.0))
    records["05"].update({"chance": {"avg": 50.0, "tasks": {"sst2": 34.0, "cola": 0.0, "rte": 52.0}},
                          "models": {"a": {"avg": 36.0, "avg_over": ["sst2"]}, "b": {"avg": 35.0, "avg_over": ["sst2"]}}})
    assert report.above_chance(records) == 2.0  # the majority class on the models' own tasks, not the calibration's
    claim = report.claim_searched_vs_baseline(records)
    assert claim["verdict"] == report.REPRODUCED and "majority class" in claim["note"]


def test_records_without_seeds_or_controls_are_not_testable_with_the_reason():
    legacy = {"05": {"scale": "mini", "models": {}}, "06": {"scale": "mini", "models": {}}, "07": _figure(4, 4, 2.0),
              "04": {"fast_over_full": {"kd": {"search": 0.2, "further_training": 0.33, "total": 0.3}}},
              "reproduce": {"scale": "mini"}}
    for claim in (report.claim_learned, report.claim_searched_vs_baseline, report.claim_kd_vs_mlm, report.claim_fast):
        result = claim(legacy)
        assert result["verdict"] == report.NOT_TESTABLE and result["reason"] == report.NO_INTERVALS
        assert result["difference"] is None and result["ci95"] is None and result["n"] is None
    assert "higher in 4 of 4 pairs" in report.claim_searched_vs_baseline(legacy)["ours"]  # 07's pair counts stay


def test_the_committed_mini_records_render(tmp_path):
    """results/mini/: the report renders from the committed records, and every claim has a verdict from an interval
    or a stated reason (claim 1 has no interval: one timing per model)."""
    for record in (ROOT / "results" / "mini").glob("*.json"):
        (tmp_path / record.name).write_text(record.read_text())
    text = report.write_report(tmp_path).read_text()
    summary = json.loads((tmp_path / "report.json").read_text())
    assert set(summary["claims"]) == {str(n) for n in range(12)} and summary["scale"] == "mini"
    for number, claim in summary["claims"].items():
        assert (claim["ci95"] is not None) or claim["reason"], number
    decision = json.loads((tmp_path / "05_glue.json").read_text())["decision_tasks"]["tasks"]
    for number in ("0", "2", "4", "5"):  # decided on the decision average, from the seeds and controls of 05-06
        claim = summary["claims"][number]
        assert claim["ci95"] is not None and claim["n"] >= 2 * len(decision), number
        assert claim["n"] % len(decision) == 0, number  # every seed of every pair on every decision task
    assert summary["claims"]["1"]["ci95"] is None and summary["claims"]["1"]["reason"]
    assert "| 0 |" in text and "| 6 |" in text and "## One-shot recipe" in text and "`teacher-rewired`" in text


def _search(archs: list[str], tau: float = 0.6, p: float = 0.01) -> dict:
    return {"scale": "mini", "fitness": "proxy",
            "searches": [{"method": "evolved", "best_arch": a} for a in archs] + [{"method": "random", "best_arch": "4/128/1536/2/128"}],
            "kendall": {"inherited_vs_trained": tau, "proxy_vs_paper": 0.1},
            "ranking": {"inherited_vs_trained": {"p_value": p, "n": 10, "steps": 40}, "proxy_vs_paper": AGREEING}}


# A search fitness that ranks 10 sub-models exactly like their fine-tuned scores (claim 3's prerequisite)
AGREEING = {"proxy": list(range(10)), "paper": [50.0 + i for i in range(10)]}


def test_shapes_verdict_counts_efficient_winners_only():
    efficient = ["4/256/448/4/256", "3/320/544/5/320", "4/192/336/3/192", "4/384/672/6/384"]
    assert report.claim_shapes({"03": _search(efficient)})["verdict"] == report.REPRODUCED
    near = ["4/256/512/4/128"] * 4  # d_f/d_m = 2: nearer 1.75 than 4, but d_qkv/d_m = 0.5 breaks the rule
    assert report.claim_shapes({"03": _search(near)})["verdict"] == report.PARTLY
    bert = ["4/256/1024/4/256"] * 4
    assert report.claim_shapes({"03": _search(bert)})["verdict"] == report.NOT_REPRODUCED


def _ranking(inherited, trained, scale="mini"):
    return {"03": {"scale": scale, "searches": [], "kendall": {"inherited_vs_trained": 0.0},
                   "ranking": {"inherited_vs_trained": {"inherited": inherited, "trained": trained, "p_value": 0.01,
                                                        "n": len(inherited), "steps": 40}}}}


@pytest.mark.parametrize("trained,scale,verdict", [
    (list(range(12)), "mini", report.REPRODUCED),  # the same ranking
    (list(range(12))[::-1], "mini", report.REFUTED),  # the reverse
    ([3, 9, 0, 7, 1, 11, 5, 2, 10, 4, 8, 6], "mini", report.NOT_TESTABLE),  # unrelated: the interval contains 0
    (list(range(12)), "smoke", report.NOT_TESTABLE)])
def test_ranking_verdict_is_decided_by_the_kendall_interval(trained, scale, verdict):
    claim = report.claim_ranking(_ranking([float(i) for i in range(12)], [float(t) for t in trained], scale))
    assert claim["verdict"] == verdict and claim["n"] == 12
    lo, hi = claim["ci95"]
    assert lo - 1e-9 <= claim["difference"] <= hi + 1e-9 and f"[{lo:+.2f}, {hi:+.2f}]" in claim["ours"]
    if verdict == report.NOT_TESTABLE and scale == "mini":  # says which agreement 12 architectures could decide
        assert "only tau >= 0.43 could have an interval above 0" in claim["reason"]
    constant = report.claim_ranking(_ranking([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert constant["verdict"] == report.NOT_TESTABLE and "undefined" in constant["reason"]


def test_speedup_verdict():
    def latency(spearman, ratio):
        return {"02": {"scale": "mini", "bert_base_ms": 250.0, "speedup": {"S1": {"measured": 7.0, "paper": 7.2}},
                       "speedup_agreement": {"spearman": spearman, "mean_ratio": ratio, "by_objective": {"mlm": ratio}}}}
    assert report.claim_speedups(latency(0.95, 1.1))["verdict"] == report.REPRODUCED
    assert report.claim_speedups(latency(0.95, 1.5))["verdict"] == report.PARTLY
    assert report.claim_speedups(latency(0.85, 1.5))["verdict"] == report.PARTLY
    assert report.claim_speedups(latency(0.5, 1.0))["verdict"] == report.NOT_REPRODUCED


@pytest.mark.parametrize("interval,total,verdict", [
    ((-0.8, 0.5), 0.3, report.REPRODUCED),  # at most 1 point worse: non-inferior
    ((0.2, 1.5), 0.3, report.REPRODUCED),
    ((-3.0, -1.5), 0.3, report.REFUTED),  # surely more than 1 point worse
    ((-2.0, 0.5), 0.3, report.NOT_TESTABLE),
    ((-0.8, 0.5), 1.2, report.REFUTED)])  # not cheaper
def test_fast_verdict_needs_cheaper_and_non_inferior_quality(interval, total, verdict):
    records = _records(interval, key="fast_vs_evolved")
    records["04"]["fast_over_full"]["kd"]["total"] = total
    claim = report.claim_fast(records)
    assert claim["verdict"] == verdict and claim["ci95"] == list(interval)
    assert claim["difference"] == pytest.approx(sum(interval) / 2)  # fast - full itself, not shifted
    assert "tolerance 1" in claim["measure"] and "None" not in claim["note"]  # an interval that cannot tell: no reason


def test_fast_cost_ratio_is_recomputed_from_the_models_at_the_targets_both_methods_have():
    """A record whose stored ratio divided one fast model's cost by three evolved models' (before the rule compared
    them at the same targets) is divided right by the report."""
    records = _records((-0.5, 0.5), key="fast_vs_evolved")
    model = lambda method, target, search, further: {"objective": "kd", "method": method, "speedup_target": target,
                                                     "search": {"cpu_seconds": search},
                                                     "further_training": {"cpu_seconds": further, "steps": 10}}
    records["04"].update({"models": {f"e{t}": model("evolved", t, 100.0, 60.0) for t in (15.0, 25.0, 40.0)}
                          | {"f": model("fast", 25.0, 25.0, 20.0)}, "superplm": {"kd": {"steps": 250}},
                          "fast_over_full": {"kd": {"search": 0.08, "further_training": 0.11, "total": 0.1}}})
    assert report.cost_ratios(records["04"]) == {"kd": {"search": 0.25, "further_training": pytest.approx(1 / 3),
                                                        "total": pytest.approx(45 / 160)}}
    assert "KD search 0.25x, further training 0.33x" in report.claim_fast(records)["ours"]
    del records["04"]["models"]  # a record without per-model costs keeps its own ratios
    assert report.cost_ratios(records["04"])["kd"]["search"] == 0.08


def test_write_report_from_records(tmp_path):
    records = _records((0.5, 3.0))
    for number, name in (("05", "05_glue.json"), ("06", "06_squad.json")):
        (tmp_path / name).write_text(json.dumps(records[number]))
    (tmp_path / "07_accuracy_latency.json").write_text(json.dumps({**_figure(2, 2, 1.5), "scale": "mini"}))
    (tmp_path / "reproduce.json").write_text(json.dumps(
        {"scale": "mini", "commit": "abc123", "total_seconds": 120.0,
         "notebooks": {"07_accuracy_latency.ipynb": {"seconds": 120.0, "status": "ok"}}}))
    (tmp_path / "07_accuracy_latency.png").write_bytes(b"png")
    text = report.write_report(tmp_path).read_text()
    assert "| 2 |" in text and "**reproduced**" in text and "abc123" in text
    assert "![07_accuracy_latency.png](07_accuracy_latency.png)" in text and "2.0 minutes" in text
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["commit"] == "abc123" and summary["scale"] == "mini"
    claims = summary["claims"]
    assert set(claims) == {str(n) for n in range(12)}
    assert all(set(c) >= {"verdict", "difference", "ci95", "n", "pairs", "reason"} for c in claims.values())
    assert claims["1"]["pairs"] is None  # no comparison of models, no pairs
    assert claims["0"]["verdict"] == claims["2"]["verdict"] == report.REPRODUCED and claims["2"]["ci95"] == [0.5, 3.0]
    assert claims["2"]["n"] == 30 and claims["2"]["reason"] is None
    for number in ("1", "3", "6"):  # no records: no interval, and why
        assert claims[number]["verdict"] == report.NOT_TESTABLE and claims[number]["ci95"] is None
        assert claims[number]["reason"]


# Table-driven boundaries of claims 1 and 3 (their verdicts are not intervals).
R, P, NR, NT = report.REPRODUCED, report.PARTLY, report.NOT_REPRODUCED, report.NOT_TESTABLE
EVOLVED, FAST, RANDOM = "evolved", "fast", "random"


def latency_records(spearman: float, ratio: float, scale: str = "mini") -> dict:
    speedups = {"S1": {"measured": 7.0, "paper": 7.2}, "KD-S4": {"measured": 30.0, "paper": 17.0},
                "BERT-base": {"measured": 1.0, "paper": None}}
    return {"02": {"scale": scale, "bert_base_ms": 250.0, "speedup": speedups,
                   "speedup_agreement": {"spearman": spearman, "mean_ratio": ratio,
                                         "by_objective": {"mlm": ratio, "kd": ratio}}}}


def search_records(evolved: list[str], others: tuple[tuple[str, str], ...] = ((RANDOM, "4/128/1536/2/128"),),
                   tau: float | None = 0.6, p: float = 0.01, scale: str = "mini") -> dict:
    """``03_search.json``: evolved searches won by ``evolved``, other searches ``(method, best_arch)``, and the
    inherited-vs-trained ranking study (``tau`` None: no study ran)."""
    searches = [{"method": EVOLVED, "best_arch": a} for a in evolved] + [
        {"method": m, "best_arch": a} for m, a in others]
    record = {"scale": scale, "fitness": "proxy", "searches": searches}
    if tau is not None:
        record["kendall"] = {"inherited_vs_trained": tau, "proxy_vs_paper": 0.1}
        record["ranking"] = {"inherited_vs_trained": {"p_value": p, "n": 10, "steps": 40}, "proxy_vs_paper": AGREEING}
    return {"03": record}


# ---------------------------------------------------------------------------------- claim 1: speedups
@pytest.mark.parametrize("spearman,ratio,verdict", [
    (0.95, 1.0, R),
    (0.8, 1.25, R),  # both thresholds exactly: Spearman >= 0.8, |ratio - 1| <= 0.25
    (0.8, 0.75, R),
    (0.8, 1.26, P),  # ranks alike, speedups off by more than 25 %
    (0.8, 0.74, P),
    (0.95, 1.95, P),
    (0.79, 1.0, NR),  # just below the rank cutoff: the ratio does not rescue it
    (-0.5, 1.0, NR),
])
def test_speedup_verdicts(spearman, ratio, verdict):
    claim = report.claim_speedups(latency_records(spearman, ratio))
    assert claim["verdict"] == verdict
    assert f"Spearman {spearman:.2f}" in claim["ours"] and "7.0x" in claim["ours"] and "30.0x" in claim["ours"]
    assert bool(claim["note"]) == (verdict == P)  # the note explains a "partly"


# ---------------------------------------------------------------------------------- claim 3: shapes
EFFICIENT = "4/256/448/4/256"  # d_f/d_m 1.75, d_qkv/d_m 1
BERT_LIKE = "4/256/1024/4/256"  # d_f/d_m 4
FFN_3_75 = "4/256/960/4/256"  # d_f/d_m 3.75, not efficient
NEAR = "4/256/512/4/128"  # d_f/d_m 2 (nearer 1.75 than 4), but d_qkv/d_m 0.5 breaks the rule


@pytest.mark.parametrize("evolved,others,scale,verdict", [
    ([EFFICIENT, "3/320/544/5/320", "4/192/336/3/192", "4/384/672/6/384"], (), "mini", R),
    ([EFFICIENT] * 3 + [BERT_LIKE], (), "mini", R),  # exactly 3/4 efficient
    ([EFFICIENT] * 2 + [FFN_3_75] * 2, (), "mini", P),  # 2/4; mean d_f/d_m 2.75, nearer 1.75 than 4
    ([EFFICIENT] * 2 + [BERT_LIKE] * 2, (), "mini", NR),  # mean 2.875: exactly halfway is not "nearer"
    ([NEAR] * 4, (), "mini", P),
    ([BERT_LIKE] * 4, (), "mini", NR),
    ([BERT_LIKE] * 4, ((RANDOM, EFFICIENT), (FAST, EFFICIENT)), "mini", NR),  # only evolved winners count
    ([EFFICIENT] * 4, (), "smoke", NT),
    ([], ((RANDOM, EFFICIENT), (FAST, EFFICIENT)), "mini", NT),  # no evolved search ran
])
def test_shape_verdicts(evolved, others, scale, verdict):
    claim = report.claim_shapes(search_records(evolved, others, scale=scale))
    assert claim["verdict"] == verdict
    if evolved:
        efficient = sum(a in (EFFICIENT, "3/320/544/5/320", "4/192/336/3/192", "4/384/672/6/384") for a in evolved)
        assert f"{efficient} of {len(evolved)} satisfy the efficient rule" in claim["ours"]
    else:
        assert claim["ours"] == "no evolved search ran"


@pytest.mark.parametrize("study,why", [
    (None, "no proxy-vs-paper ranking study"),
    ({"proxy": [0, 1], "paper": [1, 0]}, "no proxy-vs-paper ranking study"),  # fewer than 3 architectures
    ({"proxy": list(range(10)), "paper": [50.0, 52, 51, 49, 53, 50.5, 48, 52.5, 49.5, 51.5]},
     "does not rank sub-models like their fine-tuned scores"),  # an interval that includes 0
    ({"proxy": list(range(10)), "paper": [1.0] * 10}, "undefined"),
    # with untrained controls: ranked only over the architectures that beat theirs (here 2 of 10: too few)
    ({**AGREEING, "learned": [False] * 8 + [True] * 2}, "only 2 of 10 architectures"),
])
def test_shapes_are_not_testable_while_the_fitness_does_not_rank_like_fine_tuning(study, why):
    records = {"03": _search(["4/256/448/4/256"] * 4)}
    records["03"]["ranking"]["proxy_vs_paper"] = study
    claim = report.claim_shapes(records)
    assert claim["verdict"] == report.NOT_TESTABLE and why in claim["reason"]
    records["03"]["ranking"]["proxy_vs_paper"] = AGREEING
    assert report.claim_shapes(records)["verdict"] == report.REPRODUCED


def test_with_controls_tau_counts_only_the_architectures_that_beat_theirs():
    """Eight architectures at the constant prediction and two that learned: over all ten, tau rewards the proxy for
    ranking the two learners on top; over the learners alone there is nothing to rank. With six that learned and
    agree, the fitness ranks like fine-tuning."""
    ties = {"proxy": list(range(10)), "paper": [50.9] * 8 + [60.0, 74.0]}
    records = {"03": _search(["4/256/448/4/256"] * 4)}
    records["03"]["ranking"]["proxy_vs_paper"] = ties
    assert report.fitness_ranks_downstream(records["03"]) is None  # without controls the ties pass for a ranking
    records["03"]["ranking"]["proxy_vs_paper"] = {**ties, "learned": [False] * 8 + [True] * 2}
    assert "only 2 of 10 architectures" in report.fitness_ranks_downstream(records["03"])
    agreeing = {**AGREEING, "learned": [False] * 4 + [True] * 6}
    assert report.proxy_vs_paper_ranking(agreeing) == (list(range(4, 10)), [54.0 + i for i in range(6)],
                                                       " over the 6 of 10 architectures that beat their untrained "
                                                       "controls")
    records["03"]["ranking"]["proxy_vs_paper"] = agreeing
    assert report.fitness_ranks_downstream(records["03"]) is None


def test_the_report_names_the_one_shot_recipe_and_its_effect():
    records = {"01": {"scale": "mini", "mlm": {"steps": 250, "init": "teacher-rewired", "one_shot_effect": [
        {"arch": "1/128/128/1/32", "warm start": 10.3, "trained": 8.2}]}, "kd": {"steps": 600, "init": "scratch"}}}
    text = "\n".join(report.recipe_lines(records))
    assert "MLM: `teacher-rewired`, 250 steps; **not the paper's**" in text and "10.30 -> 8.20 (lower for 1 of 1)" in text
    assert "KD: `scratch`, 600 steps; as in the paper" in text
    assert report.recipe_lines({}) == []


# A well-designed search comparison (claims 9, 10): the searched model changes what the claim is about, is not the
# start, and the rerank (a short fine-tune) picked it, so the proxy being the distance to the start does not matter.
RERANKED = {"picked_by": "rerank", "is_start": False, "best_is_start": False}


def _efficientbert_record(params_ratio=7.0, speedup=6.5, versus=(0.5, 2.0), controls=((1.0, 3.0), (0.2, 4.0)),
                          scale="mini"):
    """A notebook-08 record whose searched model changes the FFN expressions of layers 1 and 3."""
    models = {name: {"vs_control": {"difference": sum(ci) / 2, "ci95": list(ci), "n": 10}}
              for name, ci in zip(("efficientbert-searched", "efficientbert-gelu"), controls)}
    models["efficientbert-searched"]["changes"] = {"expressions": [1, 3]}
    models["efficientbert-gelu"]["changes"] = {"expressions": []}
    return {"scale": scale, "models": models,
            "published": {"params": 15.6e6, "params_ratio": params_ratio, "speedup": speedup, "latency_ms": 40.0,
                          "bert_base_ms": 260.0},
            "search": {"developed_pick": dict(RERANKED), "proxy_is_distance_to_start": True},
            "searched_vs_gelu": {"glue": {"difference": sum(versus) / 2, "ci95": list(versus), "n": 30}}}


@pytest.mark.parametrize("record, expected", [
    (None, (NT, NT, NT)),
    (_efficientbert_record(), (R, P, R)),                                  # 6.5x speed: faster than the paper's 4.4x
    (_efficientbert_record(params_ratio=3.0, speedup=4.0, versus=(-2.0, -0.5)), (NR, R, report.REFUTED)),
    (_efficientbert_record(versus=(-0.5, 2.0)), (R, P, NT)),               # the interval includes 0
    (_efficientbert_record(controls=((1.0, 3.0), (-1.0, 4.0))), (R, P, NT)),  # the baseline did not learn
    (_efficientbert_record(scale="smoke"), (NT, NT, NT)),                 # smoke decides nothing
])
def test_efficientbert_claims(record, expected):
    records = {} if record is None else {"08": record}
    claims = [report.claim_efficientbert_size(records), report.claim_efficientbert_speed(records),
              report.claim_efficientbert_search(records)]
    assert tuple(c["verdict"] for c in claims) == expected
    assert [c["number"] for c in claims] == [7, 8, 9]
    for c in claims:
        assert c["reason"] or c["ci95"] is not None  # a verdict from an interval, or why there is none


def _autobert_zero_record(versus=(0.5, 3.0), controls=((2.0, 6.0), (1.0, 5.0)), opnas=(0.01, 0.05), scale="mini",
                          seeds=5, fitness=None):
    """A notebook-09 record: the searched-minus-standard interval, each model against its control (the searched one
    with convolutions at layers 0 and 2), OP-NAS minus random mutation over ``seeds`` search seeds."""
    names = ("autobert-zero-searched", "autobert-zero-standard")
    models = {name: {"vs_control": {"difference": sum(ci) / 2, "ci95": list(ci), "n": 10}, "speedup": 1.1}
              for name, ci in zip(names, controls)}
    models["autobert-zero-searched"]["changes"] = {"convolution_layers": [0, 2]}
    models["autobert-zero-standard"]["changes"] = {"convolution_layers": []}
    interval = None if opnas is None else list(opnas)
    versus_random = {"difference": None if opnas is None else sum(opnas) / 2, "ci95": interval, "n": seeds,
                     "seeds": list(range(seeds)), "reason": None if opnas else "fewer than 2 search seeds"}
    if fitness:
        versus_random["fitness"] = fitness
    return {"scale": scale, "models": models,
            "searched_vs_standard": {"glue": {"difference": sum(versus) / 2, "ci95": list(versus), "n": 30,
                                              "pairs": [list(names)]}},
            "search": {"cpu_seconds": 10.0, "random_mutation": {"cpu_seconds": 9.0, "best_fitness": -1.0},
                       "developed_pick": dict(RERANKED), "proxy_is_distance_to_start": True,
                       "opnas_vs_random": versus_random}}


@pytest.mark.parametrize("record, expected", [
    (None, (NT, NT)),
    (_autobert_zero_record(), (R, R)),
    (_autobert_zero_record(versus=(-3.0, -0.5), opnas=(-0.05, -0.01)), (report.REFUTED, report.REFUTED)),
    (_autobert_zero_record(versus=(-0.5, 2.0), opnas=(-0.01, 0.02)), (NT, NT)),      # the intervals include 0
    (_autobert_zero_record(controls=((1.0, 3.0), (-1.0, 4.0))), (NT, R)),          # the baseline did not learn
    (_autobert_zero_record(opnas=None), (R, NT)),                                   # one search seed: no interval
    (_autobert_zero_record(scale="smoke"), (NT, NT)),                               # smoke decides nothing
])
def test_autobert_zero_claims(record, expected):
    records = {} if record is None else {"09": record}
    claims = [report.claim_autobert_zero_hybrid(records), report.claim_opnas(records)]
    assert tuple(c["verdict"] for c in claims) == expected
    assert [c["number"] for c in claims] == [10, 11]
    for c in claims:
        assert c["reason"] or c["ci95"] is not None


# ------------------------------------------------- claims 9 and 10: a design that could have come out either way
SEARCH_CLAIMS = {  # claim -> (its function, its record's builder, the record's key, the design it is checked by)
    9: (report.claim_efficientbert_search, _efficientbert_record, "08", report.EFFICIENTBERT_SEARCH),
    10: (report.claim_autobert_zero_hybrid, _autobert_zero_record, "09", report.AUTOBERT_ZERO_SEARCH),
}


def _set(path: str, value):
    """An edit of a record: set ``value`` at ``path`` ("search.developed_pick.is_start"; "{searched}" / "{baseline}"
    name the design's models); ``DELETE`` removes the key."""
    def edit(record: dict, design: report.SearchDesign) -> None:
        *parents, last = path.format(searched=design.searched, baseline=design.baseline).split(".")
        target = record
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return edit


def _empty_change(record: dict, design: report.SearchDesign) -> None:
    record["models"][design.searched]["changes"][design.change] = []


DELETE = object()
KEEP = None  # the reason of a case whose verdict comes from the interval
PREDATES = "the record predates the `changes` field"
BELOW_0 = {"difference": -1.75, "ci95": [-3.0, -0.5], "n": 30, "pairs": [["a", "b"]]}
CONTAINS_0 = {"difference": 0.75, "ci95": [-0.5, 2.0], "n": 30, "pairs": [["a", "b"]]}


@pytest.mark.parametrize("number", sorted(SEARCH_CLAIMS))
@pytest.mark.parametrize("edits,verdict,reason", [
    ([], R, KEEP),  # well designed, both beat their controls, the interval above 0
    ([_set("versus", BELOW_0)], report.REFUTED, KEEP),  # ... and below 0: the new gates do not block everything
    ([_set("versus", CONTAINS_0)], NT, KEEP),
    ([_set("search.developed_pick.picked_by", "proxy"), _set("search.proxy_is_distance_to_start", False)], R, KEEP),
    ([_set("search.developed_pick", {}), _set("search.proxy_is_distance_to_start", False)], R, KEEP),
    ([_set("models.{searched}.changes", DELETE)], NT, PREDATES),
    ([_set("models.{searched}.changes", DELETE), _set("versus", BELOW_0)], NT, PREDATES),  # not "refuted"
    ([_empty_change], NT, "unchanged"),
    ([_empty_change, _set("versus", BELOW_0)], NT, "unchanged"),
    ([_set("search.developed_pick.is_start", True)], NT, report.IS_START),
    ([_set("search.developed_pick.is_start", True), _set("versus", BELOW_0)], NT, report.IS_START),
    ([_set("search.developed_pick.picked_by", "proxy")], NT, report.DISTANCE_PROXY),
    ([_set("search.developed_pick.picked_by", DELETE), _set("versus", BELOW_0)], NT, report.DISTANCE_PROXY),
    ([_set("models.{searched}.vs_control.ci95", [-1.0, 4.0])], NT, "do not both beat untrained models"),
    ([_set("models.{baseline}.vs_control.ci95", [-1.0, 4.0])], NT, "do not both beat untrained models"),
    ([_set("models.{baseline}", DELETE)], NT, "do not both beat untrained models"),
    ([_set("scale", "smoke"), _empty_change], NT, report.SMOKE),  # smoke first: it decides nothing at all
])
def test_searched_comparisons_need_a_design_that_could_come_out_either_way(number, edits, verdict, reason):
    claim, build, key, design = SEARCH_CLAIMS[number]
    record = build()
    versus = "searched_vs_gelu" if key == "08" else "searched_vs_standard"
    record["versus"] = record[versus]["glue"]
    for edit in edits:
        edit(record, design)
    record[versus]["glue"] = record.pop("versus")
    result = claim({key: record})
    assert result["number"] == number and result["verdict"] == verdict
    if reason is KEEP:
        assert result["reason"] is None or verdict == NT
    else:
        expected = design.unchanged if reason == "unchanged" else reason
        assert expected in result["reason"] and expected in result["note"]
        if expected != report.SMOKE and "untrained" not in expected:  # a design problem: design_problem says it
            assert report.design_problem(record, design) == result["reason"]
    if reason == PREDATES:
        assert f"(rerun notebook {key})" in result["reason"]


def test_the_design_problem_of_a_well_designed_record_is_none():
    for _, build, _, design in SEARCH_CLAIMS.values():
        assert report.design_problem(build(), design) is None


@pytest.mark.parametrize("pick,verdict,reason", [
    ({"reason": "no feasible hybrid within 40 evaluations"}, NT, "no feasible hybrid within 40 evaluations"),
    ({}, NT, "holds no 'autobert-zero-searched' model"),
])
def test_no_searched_hybrid_is_not_testable_with_the_search_s_reason(pick, verdict, reason):
    record = _autobert_zero_record()
    del record["models"]["autobert-zero-searched"]
    record["search"]["developed_pick"] = pick
    result = report.claim_autobert_zero_hybrid({"09": record})
    assert result["verdict"] == verdict and reason in result["reason"]


def test_the_searched_and_baseline_names_are_the_studies():
    from atb.autobert_zero import study as autobert_zero
    from atb.efficientbert import study as efficientbert
    assert (report.EFFICIENTBERT_SEARCH.searched, report.EFFICIENTBERT_SEARCH.baseline) == (
        efficientbert.SEARCHED, efficientbert.GELU)
    assert (report.AUTOBERT_ZERO_SEARCH.searched, report.AUTOBERT_ZERO_SEARCH.baseline) == (
        autobert_zero.SEARCHED, autobert_zero.STANDARD)


# ---------------------------------------------------------------------------------- claim 11: enough seeds
@pytest.mark.parametrize("opnas,seeds,fitness,verdict,reason", [
    ((0.01, 0.05), 5, None, R, None),
    ((-0.05, -0.01), 8, "rerank", report.REFUTED, None),
    ((-0.01, 0.02), 5, "proxy", NT, None),  # the interval contains 0
    ((0.01, 0.05), 4, None, NT, "fewer than 5 search seeds"),
    ((-0.05, -0.01), 2, "rerank", NT, "fewer than 5 search seeds"),
    (None, 1, None, NT, "fewer than 2 search seeds"),
    ((0.01, 0.05), 5, None, NT, "toy searches"),  # at smoke
])
def test_opnas_needs_5_seeds_and_names_its_fitness(opnas, seeds, fitness, verdict, reason):
    record = _autobert_zero_record(opnas=opnas, seeds=seeds, fitness=fitness,
                                   scale="smoke" if reason == "toy searches" else "mini")
    result = report.claim_opnas({"09": record})
    assert result["number"] == 11 and result["verdict"] == verdict
    assert (reason in result["reason"]) if reason else result["reason"] is None
    if fitness:
        assert f"measured on {report.SEARCH_FITNESS[fitness]}" in result["ours"] and fitness in result["measure"]
    else:
        assert "measured on" not in result["ours"] and "proxy" in result["measure"]


# ---------------------------------------------------------------------------------- claim 1 at smoke
@pytest.mark.parametrize("spearman,ratio", [(0.95, 1.0), (0.95, 1.5), (0.5, 1.0)])
def test_speedups_at_smoke_are_not_testable(spearman, ratio):
    claim = report.claim_speedups(latency_records(spearman, ratio, scale="smoke"))
    assert claim["verdict"] == NT and claim["reason"] == report.SMOKE and not claim["note"]
    assert f"Spearman {spearman:.2f}" in claim["ours"]  # the numbers are still shown
    assert report.claim_speedups(latency_records(spearman, ratio))["verdict"] != NT


# ------------------------------------------------------------------------------------------- the README
def _prose(text: str) -> str:
    """Markdown without its code fences and inline code: what a reader takes for the study's statements."""
    import re

    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))


def test_the_readme_results_table_is_the_committed_report():
    """The README's table is generated (``python -m atb.report --readme README.md``); it may not drift."""
    readme = (ROOT / "README.md").read_text()
    committed = json.loads((ROOT / "results" / "mini" / "report.json").read_text())
    block = readme.split(report.README_START)[1].split(report.README_END)[0]
    assert report.README_START + block + report.README_END == report.readme_block(committed)
    assert {str(n) for n in range(12)} == set(committed["claims"]) and all(
        f"**{c['verdict']}**" in block for c in committed["claims"].values())


def test_the_readme_is_short_and_states_no_number_of_its_own():
    """At most 250 lines, and outside the generated table no measured number: a number typed by hand drifts from its
    record. Decimals, intervals and speedups belong to the records, REPORT.md and the generated block."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    before, rest = readme.split(report.README_START)
    outside = _prose(before + rest.split(report.README_END)[1])
    numbers = r"(?<![v\d.])\d+\.\d+|\d+(?:\.\d+)? ?[x×]\b|\d+ ?%"  # (v1.1: a dataset's version, not a number)
    assert not re.findall(numbers, outside.replace("95 %", ""))


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_the_docs_pages_hold_methods_not_results(page):
    """The pages under docs/ explain methods and deviations; results are read from the records, never copied."""
    import re

    text = _prose((ROOT / "docs" / page).read_text())
    assert not re.findall(r"\[[−+-]?\d+\.\d+, [−+-]?\d+\.\d+\]", text), "an interval copied from a record"
    assert not re.findall(r"\d+\.\d+ ?(?:[x×]\b|ms\b|s\b|points\b|CPU-s)", text), "a measurement copied from a record"


def test_sync_readme_rewrites_only_the_block_and_names_a_readme_without_markers(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    summary = {"scale": "mini", "commit": "abc1234def", "claims": {"0": {
        "claim": "c", "paper": "p", "ours": "GLUE avg +1.00 [+0.50, +1.50] (95 % CI; 1 pair, n = 3)",
        "verdict": "reproduced"}}}
    (results / "report.json").write_text(json.dumps(summary))
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{report.README_START}\nstale\n{report.README_END}\nbottom\n")
    report.sync_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("top\n") and text.endswith("\nbottom\n") and "stale" not in text
    assert "| 0 | c | p | GLUE avg +1.00 [+0.50, +1.50] | **reproduced** |" in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="README.md"):
        report.sync_readme(readme, results)


# ------------------------------------------------------------------------------------------- chapters
def test_every_notebook_is_a_chapter_and_every_claim_is_tested_in_one():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert set(report.CHAPTERS) == notebooks
    assert set().union(*report.CHAPTERS.values()) == set(range(12))
    for name in notebooks:  # the opening names the claims, the closing cell decides them, both from atb.report
        source = (ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert f'chapter_opening(\\"{name}\\")' in source and f'chapter_verdicts(\\"{name}\\", ' in source, name


def test_a_chapter_opens_with_its_claims_and_cost_and_closes_with_the_reports_verdicts(tmp_path):
    results = tmp_path / "mini"
    results.mkdir()
    (results / "reproduce.json").write_text(json.dumps({"scale": "mini", "notebooks": {"08_efficientbert.ipynb": {
        "status": "ok", "seconds": 600.0, "cpu": "Some CPU", "computed_in": "fp32"}}}))
    opening = report.chapter_opening("08_efficientbert", tmp_path)
    assert all(f"| {n} | EfficientBERT" in opening for n in (7, 8, 9)) and "6.9x" in opening
    assert "mini 10.0 min on Some CPU (fp32)" in opening
    assert "No claim is decided" in report.chapter_opening("00_overview", tmp_path)
    closing = report.chapter_verdicts("08_efficientbert", results)  # no records: each claim says so
    assert closing.count("**not testable**") == 3
    with pytest.raises(ValueError, match="unknown notebook '11_nothing'"):
        report.chapter_opening("11_nothing")


def test_the_deployment_table_gets_its_line_beyond_the_paper():
    """Notebook 11's record: REPORT.md names the runtimes under which the paper's ranking holds (interval above 0) and
    int8's accuracy cost; report.json carries the same; no record, no section."""
    rho = {"pytorch-fp32": {"difference": 0.9, "ci95": [0.5, 1.0], "n": 8},
           "onnxruntime-int8": {"difference": 0.4, "ci95": [-0.3, 0.9], "n": 8}}
    records = {"11": {"machine": {"cpu": "AMD EPYC"}, "runtimes": {r: {"spearman_vs_paper": v} for r, v in rho.items()},
                      "int8_accuracy": {"task": "sst2", "difference": -0.4, "ci95": [-1.1, 0.2], "n": 12}}}
    lines = report.beyond_lines(records)
    assert lines[1] == "## Beyond the paper" and "under 1 of 2 runtimes" in lines[3]
    assert "pytorch-fp32 ρ = 0.90 [+0.50, +1.00]" in lines[3] and "SST2: -0.40 points [-1.10, +0.20]" in lines[3]
    assert report.deployment_summary(records)["holds"] == ["pytorch-fp32"]
    assert report.beyond_lines({}) == [] and report.summary({})["beyond"] == {"deployment": None, "pareto": None}


def test_the_front_search_gets_its_line_beyond_the_paper():
    """Notebook 12's record: REPORT.md says which search each hypervolume interval favours (or that it cannot
    decide), the developed front points against the evolved models, and the targets where both picked alike."""
    record = {"objective": "kd", "seeds": [0, 1, 2], "speedups": [8.0, 25.0], "evaluations_per_search": 200,
              "hypervolume": {"difference": 0.03, "ci95": [0.01, 0.05], "n": 3},
              "hypervolume_windows": {"difference": -0.02, "ci95": [-0.09, 0.04], "n": 3},
              "targets": {"8": {"difference": -0.01, "ci95": [-0.03, -0.005], "n": 3}, "25": None},
              "developed": {"measure": "GLUE avg over sst2", "same_pick": {"25": "4/256/512/8/256"},
                            "intervals": {"pareto_vs_evolved": {"difference": 1.2, "ci95": [-0.5, 2.9], "n": 6,
                                                                "pairs": [["a", "b"]], "measure": "GLUE avg"}}}}
    summary = report.pareto_summary({"12": record})
    assert summary["hypervolume"]["verdict"] == "NSGA-II higher"
    assert summary["hypervolume_windows"]["verdict"] == "undecided"
    assert summary["targets"] == {"8": {"difference": -0.01, "ci95": [-0.03, -0.005], "n": 3,
                                        "verdict": "evolution higher"}, "25": None}
    lines = report.beyond_lines({"12": record})
    assert lines[1] == "## Beyond the paper" and len(lines) == 4
    assert "over the whole span +0.030 [+0.010, +0.050] (95 % CI, n = 3): NSGA-II higher" in lines[3]
    assert "GLUE avg over sst2 +1.20 [-0.50, +2.90] (95 % CI; 1 pair, n = 6)" in lines[3] and "at 25x" in lines[3]
    assert report.summary({"12": record})["beyond"]["pareto"] == summary


def test_the_budgets_section_shows_every_rung_the_ladder_climbed_and_what_it_chose(tmp_path):
    step = {"budget": {}, "teacher": 80.0, "control": 55.0, "majority": 50.0, "difference": 25.0, "ci95": [20.0, 30.0]}
    ladder = {"teacher": {"arch": "6/384/1536/12/384"}, "seeds": 2, "scored_on": "examples held out of the train split",
              "margins": {"sst2": 25.0}, "tasks": {
                  "sst2": {"chosen": 1, "rungs": [{**step, "rung": 0, "difference": 10.0, "passes": False,
                                                   "reason": "only +10.0 points"},
                                                  {**step, "rung": 1, "budget": {"epochs": 3}, "passes": True,
                                                   "reason": None}]},
                  "rte": {"chosen": None, "rungs": [{**step, "rung": 0, "passes": False, "reason": "does not beat"},
                                                    {"rung": 1, "budget": {"epochs": 3}, "same_as": 0, "passes": False,
                                                     "reason": "the same budget as rung 0"}]}}}
    (tmp_path / "budgets.json").write_text(json.dumps(ladder))
    records = report.load_records(tmp_path)
    lines = report.budget_lines(records)
    assert "| sst2 | 1 | epochs 3 | 80.0 | 55.0 | 50.0 | +25.0 [+20.0, +30.0] | **yes** |" in lines
    assert "| sst2 | 0 | the scale's first | 80.0 | 55.0 | 50.0 | +10.0 [+20.0, +30.0] | only +10.0 points |" in lines
    assert "| rte | 1 | epochs 3 | | | | as rung 0 | no |" in lines
    assert any(line.startswith("Chosen: sst2 rung 1;") and "rte passed no rung" in line for line in lines)
    assert "## Budgets" in report.render(records, tmp_path)
    assert report.budget_lines({}) == []


def test_the_run_total_splits_the_papers_study_from_what_goes_beyond_it():
    """The engine and power issues budget notebooks 00-10 (the papers); 11-12 go beyond them. The Run line shows both
    parts, each from the run that produced the current copy (a failed notebook's last good run)."""
    run = {"total_seconds": 660.0, "runs_empty_at_start": True, "from_scratch": {"calls": 1},
           "notebooks": {"00_overview.ipynb": {"status": "ok", "seconds": 60.0},
                         "10_comparison.ipynb": {"status": "ok", "seconds": 420.0},
                         "11_deployment.ipynb": {"status": "failed: X", "seconds": 5.0,
                                                 "last_ok": {"status": "ok", "seconds": 120.0}},
                         "12_pareto.ipynb": {"status": "ok", "seconds": 60.0}}}
    assert report.notebook_seconds(run)["11_deployment.ipynb"] == 120.0
    assert report.split_seconds(report.notebook_seconds(run)) == {"papers": 480.0, "beyond": 180.0}
    line = report.run_total(run)
    assert "Total: 11.0 minutes (notebooks 00-10, the papers' study: 8.0 minutes; 11+, beyond the papers: 3.0" in line
    only_papers = {**run, "notebooks": {k: v for k, v in run["notebooks"].items() if k < "11"}}
    assert "beyond the papers" not in report.run_total(only_papers)


def test_a_re_execution_names_the_papers_part_of_the_last_study_from_scratch():
    """A re-execution's own seconds are not a cost; the Run line then names what the study from scratch cost, in all
    and for notebooks 00-10 (the part the engine and power issues budget), from the record's ``from_scratch``."""
    run = {"total_seconds": 100.0, "runs_empty_at_start": False,
           "notebooks": {"00_overview.ipynb": {"status": "ok", "seconds": 40.0},
                         "11_deployment.ipynb": {"status": "ok", "seconds": 60.0}},
           "from_scratch": {"total_seconds": 6000.0, "split": {"papers": 4800.0, "beyond": 1200.0}, "calls": 1,
                            "cpus": ["Some CPU"], "commits": ["abcdef0123"]}}
    line = report.run_total(run)
    assert ("The last study from scratch took 100.0 minutes (notebooks 00-10, the papers' study: 80.0 minutes) on "
            "Some CPU (one call; commit abcdef0)") in line
    older = {**run, "from_scratch": {k: v for k, v in run["from_scratch"].items() if k != "split"}}
    assert "The last study from scratch took 100.0 minutes on Some CPU" in report.run_total(older)  # older records
