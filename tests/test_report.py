"""The claims report: every verdict branch and boundary of every claim function (table-driven, on minimal
records built below), and REPORT.md rendered from the records alone."""

import json
import re

import pytest

from atb import report
from atb.develop import DEFAULT_RULE

R, P, NR, NT = report.REPRODUCED, report.PARTLY, report.NOT_REPRODUCED, report.NOT_TESTABLE
MIN = report.MIN_ABOVE_CHANCE
CHANCE = 30.0  # the majority-class GLUE average of the fixtures; 30 + gap is exact for the gaps used here

# Method names as the records spell them, in one place (the baselines' is atb.develop's DEFAULT_RULE, formerly
# "bert"); the report judges by the summaries, never by these names.
EVOLVED, FAST, RANDOM, BASELINE = "evolved", "fast", "random", DEFAULT_RULE


# ---------------------------------------------------------------------------------------- fixtures
def model_row(objective: str, method: str, speedup: int, avg: float | None) -> tuple[str, dict]:
    """One developed model of ``05_glue.json`` ``models``: ``(name, record)``."""
    return f"{objective}-{method}-{speedup}x", {"objective": objective, "method": method, "speedup_target": speedup,
                                                "avg": avg}


def glue_record(gap: float | None = None, fast_vs_evolved: list[float] | None = None) -> dict:
    """``05_glue.json``: when ``gap`` is given, a chance row and models whose best is ``gap`` points above it
    (plus one lower model and one without an average, which must not count); ``fast_vs_evolved``: the
    per-pair GLUE differences fast - evolved."""
    record: dict = {"scale": "mini", "comparison": {}}
    if gap is not None:
        record["chance"] = {"avg": CHANCE}
        record["models"] = dict([model_row("kd", EVOLVED, 25, CHANCE + gap), model_row("kd", BASELINE, 25, CHANCE),
                                 model_row("mlm", FAST, 25, None)])
    if fast_vs_evolved is not None:
        record["comparison"]["fast_vs_evolved"] = [
            {"model": model_row("kd", FAST, 25, None)[0], "other": model_row("kd", EVOLVED, 25, None)[0],
             "difference": d} for d in fast_vs_evolved]
    return record


def summary(wins: int, pairs: int, mean: float | None) -> dict:
    return {"wins": wins, "pairs": pairs, "mean_difference": mean}


def figure_records(glue: dict | None, squad: dict | None = None, *, scale: str = "mini",
                   gap: float | None = None) -> dict:
    """Records for claims 2 and 4: notebook 07's pair summaries (the same for both claims), the run's scale
    and, when ``gap`` is given, notebook 05's chance level."""
    squad = glue if squad is None else squad
    figure = {"summary": {key: {"GLUE avg": glue, "SQuAD v1.1 F1": squad}
                          for key in ("claim2_searched_vs_baseline", "claim4_kd_vs_mlm")}}
    records = {"07": figure, "reproduce": {"scale": scale}}
    if gap is not None:
        records["05"] = glue_record(gap)
    return records


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
        record["ranking"] = {"inherited_vs_trained": {"p_value": p, "n": 10, "steps": 40}}
    return {"03": record}


def fast_records(totals: list[float] | None, differences: list[float] | None, *, gap: float | None = None,
                 scale: str = "mini") -> dict:
    ratios = {obj: {"search": 0.2, "further_training": 0.33, "total": t}
              for obj, t in zip(("kd", "mlm"), totals or [])}
    return {"04": {"scale": scale, "fast_over_full": ratios}, "05": glue_record(gap, differences),
            "reproduce": {"scale": scale}}


# ------------------------------------------------------------------------------------ every claim
def test_claims_are_numbered_in_order_and_missing_records_are_not_testable():
    said = {1: "notebook 02 has not run", 2: "notebook 07 has not run", 3: "notebook 03 has not run",
            4: "notebook 07 has not run", 5: "notebooks 04-05 have not run", 6: "no ranking study ran"}
    claims = [claim({}) for claim in report.CLAIMS]
    assert [(c["number"], c["verdict"], c["ours"]) for c in claims] == [(n, NT, said[n]) for n in range(1, 7)]


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


# ------------------------------------------------------------------------- claims 2 and 4: pairs
PAIR_CLAIMS = [pytest.param(report.claim_searched_vs_baseline, id="claim2"),
               pytest.param(report.claim_kd_vs_mlm, id="claim4")]


@pytest.mark.parametrize("claim", PAIR_CLAIMS)
@pytest.mark.parametrize("glue,scale,gap,verdict", [
    (summary(4, 4, 2.0), "mini", None, R),  # the direction holds in every pair
    (summary(2, 2, -0.1), "mini", None, R),  # every pair, even with a negative mean (pairs decide first)
    (summary(3, 4, -0.5), "mini", None, P),  # some pairs
    (summary(1, 4, -0.5), "mini", None, P),
    (summary(0, 4, 0.5), "mini", None, P),  # no pair, but above on average
    (summary(0, 4, 0.0), "mini", None, NR),  # a zero mean is not "above on average"
    (summary(0, 4, -1.0), "mini", None, NR),
    (summary(0, 0, None), "mini", None, NT),  # nothing to compare
    (None, "mini", None, NT),
    (summary(4, 4, 2.0), "smoke", None, NT),  # smoke numbers only show that the pipeline runs
    (summary(4, 4, 2.0), "base", MIN, R),  # exactly MIN_ABOVE_CHANCE above chance: a verdict
    (summary(0, 4, -1.0), "mini", MIN, NR),
    (summary(4, 4, 2.0), "mini", MIN - 0.25, NT),  # just below it: the models learned too little
    (summary(0, 4, -1.0), "mini", MIN - 0.25, NT),
    (summary(4, 4, 2.0), "mini", -2.0, NT),  # below chance
])
def test_pair_verdicts(claim, glue, scale, gap, verdict):
    result = claim(figure_records(glue, scale=scale, gap=gap))
    assert result["verdict"] == verdict
    assert ("majority class" in result["note"]) == (gap is not None and gap < MIN)


@pytest.mark.parametrize("claim", PAIR_CLAIMS)
def test_pair_verdicts_are_judged_on_the_glue_average_not_squad(claim):
    records = figure_records(summary(0, 4, -1.0), squad=summary(4, 4, 3.0))
    result = claim(records)
    assert result["verdict"] == NR
    assert "higher in 0 of 4 pairs, mean difference -1.00" in result["ours"]
    assert "SQuAD v1.1 F1: higher in 4 of 4 pairs, mean difference +3.00" in result["ours"]
    assert claim(figure_records(summary(4, 4, 1.0), squad=summary(0, 0, None)))["verdict"] == R


@pytest.mark.parametrize("claim", PAIR_CLAIMS)
def test_the_smoke_scale_of_any_record_makes_pairs_not_testable(claim):
    records = figure_records(summary(4, 4, 2.0), gap=10.0)
    assert claim(records)["verdict"] == R
    records["03"] = {"scale": "smoke"}  # one smoke record is enough, whatever the runner says
    assert claim(records)["verdict"] == NT


def test_the_chance_gap_is_taken_from_the_best_scored_model():
    records = figure_records(summary(4, 4, 2.0), gap=MIN - 0.25)
    assert report.above_chance(records) == pytest.approx(MIN - 0.25)
    records["05"]["models"].update([model_row("mlm", EVOLVED, 50, CHANCE + MIN)])  # a better model: a verdict
    assert report.above_chance(records) == MIN and report.claim_searched_vs_baseline(records)["verdict"] == R
    del records["05"]["chance"]  # no chance row recorded: no gap, judged on the pairs alone
    assert report.above_chance(records) is None and report.claim_kd_vs_mlm(records)["verdict"] == R


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


# ---------------------------------------------------------------------------- claim 5: fast development
@pytest.mark.parametrize("totals,differences,gap,scale,verdict", [
    ([0.3, 0.3], [-0.4, 0.2], None, "mini", R),
    ([0.3], [-1.0], None, "mini", R),  # exactly 1 GLUE point worse: still "nearly the same"
    ([0.3], [-1.5, -0.5], None, "mini", R),  # judged on the mean gap
    ([0.3], [-1.25], None, "mini", P),  # cheaper, but more than a point worse
    ([0.3, 0.99], [-3.0], None, "mini", P),
    ([0.3, 1.0], [0.0], None, "mini", NR),  # one objective's fast development costs as much as the full one
    ([1.2], [0.5], None, "mini", NR),
    ([0.3], [0.0], MIN, "mini", R),  # exactly MIN_ABOVE_CHANCE above chance: a verdict
    ([0.3], [0.0], MIN - 0.25, "mini", NT),
    ([0.3], [0.0], None, "smoke", NT),
    (None, [0.0], None, "mini", NT),  # no fast search ran
    ([0.3], None, None, "mini", NT),
    ([0.3], [], None, "mini", NT),
])
def test_fast_verdicts(totals, differences, gap, scale, verdict):
    claim = report.claim_fast(fast_records(totals, differences, gap=gap, scale=scale))
    assert claim["verdict"] == verdict
    if totals and differences:
        mean = sum(differences) / len(differences)
        assert f"mean {mean:+.2f} over {len(differences)} pairs" in claim["ours"]
        assert ("majority class" in claim["note"]) == (gap is not None and gap < MIN)
    else:
        assert claim["ours"] == "no fast search ran at this scale"


@pytest.mark.parametrize("missing", ["04", "05"])
def test_fast_needs_both_notebooks(missing):
    records = fast_records([0.3], [0.0])
    del records[missing]
    claim = report.claim_fast(records)
    assert (claim["verdict"], claim["ours"]) == (NT, "notebooks 04-05 have not run")


# --------------------------------------------------------------------------------- claim 6: ranking
@pytest.mark.parametrize("tau,p,scale,verdict", [
    (0.6, 0.01, "mini", R),
    (0.5, 0.049, "mini", R),  # tau exactly 0.5
    (0.5, 0.05, "mini", P),  # p exactly 0.05 is not significant
    (0.49, 0.001, "mini", P),
    (0.01, 0.9, "mini", P),  # any positive tau is "partly"
    (0.0, 0.5, "mini", NR),
    (-0.3, 0.2, "mini", NR),
    (0.9, 0.001, "smoke", NT),
])
def test_ranking_verdicts(tau, p, scale, verdict):
    claim = report.claim_ranking(search_records([EFFICIENT], tau=tau, p=p, scale=scale))
    assert claim["verdict"] == verdict
    assert f"Kendall tau {tau:.2f} (p = {p:.2f}, 10 architectures, 40 further-training steps)" in claim["ours"]
    assert "proxy vs paper tau 0.10" in claim["ours"]


def test_ranking_without_a_study_is_not_testable():
    assert report.claim_ranking(search_records([EFFICIENT], tau=None))["verdict"] == NT


# --------------------------------------------------------------------------------------- rendering
def report_rows(text: str) -> dict[int, list[str]]:
    """The claims table of REPORT.md: claim number -> its cells (claim, paper, this study, verdict)."""
    rows = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\| (\d) \| (.*) \|", line)
        if match:
            rows[int(match[1])] = [cell.strip() for cell in match[2].split(" | ")]
    return rows


def test_write_report_from_records(tmp_path):
    figure = figure_records(summary(2, 2, 1.5))["07"]
    (tmp_path / "07_accuracy_latency.json").write_text(json.dumps({**figure, "scale": "mini"}))
    (tmp_path / "reproduce.json").write_text(json.dumps(
        {"scale": "mini", "commit": "abc123", "total_seconds": 120.0,
         "notebooks": {"07_accuracy_latency.ipynb": {"seconds": 120.0, "status": "ok"}}}))
    (tmp_path / "07_accuracy_latency.png").write_bytes(b"png")
    text = report.write_report(tmp_path).read_text()
    rows = report_rows(text)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6] and all(len(cells) == 4 for cells in rows.values())
    assert {n: cells[3] for n, cells in rows.items()} == {
        1: f"**{NT}**", 2: f"**{R}**", 3: f"**{NT}**", 4: f"**{R}**", 5: f"**{NT}**", 6: f"**{NT}**"}
    assert rows[2][2] == ("GLUE avg: higher in 2 of 2 pairs, mean difference +1.50; "
                          "SQuAD v1.1 F1: higher in 2 of 2 pairs, mean difference +1.50")
    assert rows[4][2].startswith("KD GLUE avg: higher in 2 of 2 pairs")
    assert rows[1][2] == "notebook 02 has not run" and rows[6][2] == "no ranking study ran"
    assert "Scale: **mini**; commit `abc123`" in text
    assert "| 07_accuracy_latency.ipynb | 120 | ok |" in text and "Total: 2.0 minutes" in text
    assert "![07_accuracy_latency.png](07_accuracy_latency.png)" in text
    assert "02_latency_speedup.png" not in text  # only figures that exist are linked
