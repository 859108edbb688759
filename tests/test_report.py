"""The claims report: verdicts follow the documented rules, and REPORT.md is rendered from records alone."""

import json

import pytest

from atb import report


def _figure(wins: int, pairs: int, mean: float) -> dict:
    s = {"wins": wins, "pairs": pairs, "mean_difference": mean}
    return {"summary": {"claim2_searched_vs_baseline": {"GLUE avg": s, "SQuAD v1.1 F1": s},
                        "claim4_kd_vs_mlm": {"GLUE avg": s, "SQuAD v1.1 F1": s}}}


@pytest.mark.parametrize("wins,pairs,mean,verdict", [
    (4, 4, 2.0, report.REPRODUCED), (1, 4, -0.5, report.PARTLY), (0, 4, 0.5, report.PARTLY),
    (0, 4, -1.0, report.NOT_REPRODUCED), (0, 0, None, report.NOT_TESTABLE)])
def test_pair_verdicts(wins, pairs, mean, verdict):
    records = {"07": _figure(wins, pairs, mean), "reproduce": {"scale": "mini"}}
    assert report.claim_searched_vs_baseline(records)["verdict"] == verdict
    assert report.claim_kd_vs_mlm(records)["verdict"] == verdict


def test_smoke_scale_is_never_a_verdict():
    records = {"07": {**_figure(4, 4, 2.0), "scale": "smoke"}, "03": {"scale": "smoke"}}
    assert report.claim_searched_vs_baseline(records)["verdict"] == report.NOT_TESTABLE


def test_missing_records_are_not_testable():
    for claim in report.CLAIMS:
        assert claim({})["verdict"] == report.NOT_TESTABLE


def _search(archs: list[str], tau: float = 0.6, p: float = 0.01) -> dict:
    return {"scale": "mini", "fitness": "proxy",
            "searches": [{"method": "evolved", "best_arch": a} for a in archs] + [{"method": "random", "best_arch": "4/128/1536/2/128"}],
            "kendall": {"inherited_vs_trained": tau, "proxy_vs_paper": 0.1},
            "ranking": {"inherited_vs_trained": {"p_value": p, "n": 10, "steps": 40}}}


def test_shapes_verdict_counts_efficient_winners_only():
    efficient = ["4/256/448/4/256", "3/320/544/5/320", "4/192/336/3/192", "4/384/672/6/384"]
    assert report.claim_shapes({"03": _search(efficient)})["verdict"] == report.REPRODUCED
    near = ["4/256/512/4/128"] * 4  # d_f/d_m = 2: nearer 1.75 than 4, but d_qkv/d_m = 0.5 breaks the rule
    assert report.claim_shapes({"03": _search(near)})["verdict"] == report.PARTLY
    bert = ["4/256/1024/4/256"] * 4
    assert report.claim_shapes({"03": _search(bert)})["verdict"] == report.NOT_REPRODUCED


@pytest.mark.parametrize("tau,p,verdict", [(0.6, 0.01, report.REPRODUCED), (0.6, 0.2, report.PARTLY),
                                           (-0.1, 0.5, report.NOT_REPRODUCED)])
def test_ranking_verdict(tau, p, verdict):
    claim = report.claim_ranking({"03": _search(["4/256/448/4/256"], tau, p)})
    assert claim["verdict"] == verdict and f"{tau:.2f}" in claim["ours"]


def test_speedup_verdict():
    def latency(spearman, ratio):
        return {"02": {"scale": "mini", "bert_base_ms": 250.0, "speedup": {"S1": {"measured": 7.0, "paper": 7.2}},
                       "speedup_agreement": {"spearman": spearman, "mean_ratio": ratio, "by_objective": {"mlm": ratio}}}}
    assert report.claim_speedups(latency(0.95, 1.1))["verdict"] == report.REPRODUCED
    assert report.claim_speedups(latency(0.95, 1.5))["verdict"] == report.PARTLY
    assert report.claim_speedups(latency(0.85, 1.5))["verdict"] == report.PARTLY
    assert report.claim_speedups(latency(0.5, 1.0))["verdict"] == report.NOT_REPRODUCED


def test_fast_verdict_needs_cheaper_and_close_quality():
    records = {"reproduce": {"scale": "mini"},
               "04": {"fast_over_full": {"kd": {"search": 0.2, "further_training": 0.33, "total": 0.3}}},
               "05": {"comparison": {"fast_vs_evolved": [{"difference": -0.4}, {"difference": 0.2}]}}}
    assert report.claim_fast(records)["verdict"] == report.REPRODUCED
    records["05"]["comparison"]["fast_vs_evolved"] = [{"difference": -3.0}]
    assert report.claim_fast(records)["verdict"] == report.PARTLY


def test_write_report_from_records(tmp_path):
    (tmp_path / "07_accuracy_latency.json").write_text(json.dumps({**_figure(2, 2, 1.5), "scale": "mini"}))
    (tmp_path / "reproduce.json").write_text(json.dumps(
        {"scale": "mini", "commit": "abc123", "total_seconds": 120.0,
         "notebooks": {"07_accuracy_latency.ipynb": {"seconds": 120.0, "status": "ok"}}}))
    (tmp_path / "07_accuracy_latency.png").write_bytes(b"png")
    text = report.write_report(tmp_path).read_text()
    assert "| 2 |" in text and "**reproduced**" in text and "abc123" in text
    assert "![07_accuracy_latency.png](07_accuracy_latency.png)" in text and "2.0 minutes" in text
    assert text.count("not testable at this scale") == 4  # claims 1, 3, 5, 6: no records


def test_comparisons_near_chance_are_not_testable():
    records = {**{"07": _figure(4, 4, 2.0)}, "reproduce": {"scale": "mini"},
               "05": {"chance": {"avg": 34.0}, "models": {"a": {"avg": 36.0}, "b": {"avg": 35.0}}}}
    claim = report.claim_searched_vs_baseline(records)
    assert claim["verdict"] == report.NOT_TESTABLE and "majority class" in claim["note"]
    records["05"]["models"]["a"]["avg"] = 45.0  # 11 points above chance: now a verdict
    assert report.claim_searched_vs_baseline(records)["verdict"] == report.REPRODUCED
