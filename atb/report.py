"""The claims report ``results/<scale>/REPORT.md``, generated from the result records (never hand-edited).

    python -m atb.report [--scale mini | --results-dir results/mini]

For each claim of the notes (§9) it puts the paper's number beside this study's, at the scale the records
were produced at, and a verdict computed by the rules below from the records alone:

* ``not testable at this scale``: the records needed are missing, or the scale is ``smoke`` (CI's toy models,
  whose numbers only show that the pipeline runs), or there is nothing to compare (no pairs);
* comparisons of models (claims 2, 4, 5) are ``not testable`` either when the best model's GLUE average is less
  than :data:`MIN_ABOVE_CHANCE` points above always predicting the majority class (``05_glue.json``
  ``chance``): such models learned the tasks only a little and their differences are noise; otherwise
  ``reproduced`` when the paper's direction holds in every pair,
  ``partly`` when it holds in some pairs or on average, ``not reproduced`` otherwise. At small budgets a
  difference of a point or two is within fine-tuning noise (one seed per model): the report says so;
* claim 1 (speedups; the released architectures are timed at every scale): ``reproduced`` when the released
  models rank alike (Spearman >= 0.8; with 8 models, p < 0.01) and measured speedups are within 25 % of the
  paper's on average, ``partly`` when they rank alike only;
* claim 3 (shapes): ``reproduced`` when at least 3/4 of the evolved winners satisfy the efficient rule,
  ``partly`` when their d_f/d_m is nearer the efficient rule's 1.6-1.9 than BERT's 4 on average;
* claim 6 (ranking): ``reproduced`` when Kendall's tau >= 0.5 with p < 0.05, ``partly`` when tau > 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .develop import MIN_ABOVE_CHANCE
from .layout import SCALES, Layout
from .records import write_text_atomic
from .search import shape_summary
from .space import DEFAULT_RULE_FFN_RATIO, EFFICIENT_FFN_RATIO, EFFICIENT_QKV_RATIO, Arch

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTABLE = ("reproduced", "partly", "not reproduced",
                                                   "not testable at this scale")
FIGURES = ("01_loss_curves.png", "02_latency_speedup.png", "02_latency_predictor.png", "03_search_history.png",
           "03_search_shapes.png", "04_development_cost.png", "07_accuracy_latency.png")


def load_records(results_dir: str | Path) -> dict[str, dict]:
    """``{"02": {...}, "03": {...}, ..., "reproduce": {...}}``: every ``NN_*.json`` record and the runner's."""
    results_dir = Path(results_dir)
    records = {p.name[:2]: json.loads(p.read_text()) for p in sorted(results_dir.glob("[0-9][0-9]_*.json"))}
    if (results_dir / "reproduce.json").exists():
        records["reproduce"] = json.loads((results_dir / "reproduce.json").read_text())
    return records


def _claim(number: int, claim: str, paper: str, ours: str, verdict: str, note: str = "") -> dict:
    return {"number": number, "claim": claim, "paper": paper, "ours": ours, "verdict": verdict, "note": note}


def above_chance(records: dict) -> float | None:
    """GLUE points by which the best developed model beats the majority-class baseline (None: not recorded)."""
    glue = records.get("05") or {}
    scored = [m["avg"] for m in (glue.get("models") or {}).values() if m.get("avg") is not None]
    chance = (glue.get("chance") or {}).get("avg")
    return max(scored) - chance if scored and chance is not None else None


def _pairs_verdict(summary: dict | None, scale: str, gap: float | None = None) -> str:
    if not summary or not summary.get("pairs") or scale == "smoke":
        return NOT_TESTABLE
    if gap is not None and gap < MIN_ABOVE_CHANCE:
        return NOT_TESTABLE
    if summary["wins"] == summary["pairs"]:
        return REPRODUCED
    if summary["wins"] > 0 or (summary["mean_difference"] or 0) > 0:
        return PARTLY
    return NOT_REPRODUCED


def _pairs_text(summary: dict | None, what: str) -> str:
    if not summary or not summary.get("pairs"):
        return "no comparable pairs"
    return (f"{what}: higher in {summary['wins']} of {summary['pairs']} pairs, mean difference "
            f"{summary['mean_difference']:+.2f}")


# ------------------------------------------------------------------------------------------- claims
def claim_speedups(records: dict) -> dict:
    claim = "The published speedups over BERT-base (CPU latency) hold on today's CPU and PyTorch"
    paper = "S1-S4: 7.2x, 15.7x, 20.2x, 27.2x; KD-S1-KD-S4: 4.6x, 9.0x, 10.7x, 17.0x"
    latency = records.get("02")
    if not latency:
        return _claim(1, claim, paper, "notebook 02 has not run", NOT_TESTABLE)
    agreement = latency["speedup_agreement"]
    measured = {n: s["measured"] for n, s in latency["speedup"].items() if s.get("paper")}
    by_obj = agreement.get("by_objective", {})
    ours = (f"BERT-base {latency['bert_base_ms']:.1f} ms; S1-S4: " +
            ", ".join(f"{measured[n]:.1f}x" for n in ("S1", "S2", "S3", "S4") if n in measured) + "; KD-S1-KD-S4: " +
            ", ".join(f"{measured[n]:.1f}x" for n in ("KD-S1", "KD-S2", "KD-S3", "KD-S4") if n in measured) +
            f". Spearman {agreement['spearman']:.2f}; measured/paper {by_obj.get('mlm', float('nan')):.2f} (MLM), "
            f"{by_obj.get('kd', float('nan')):.2f} (KD)")
    if agreement["spearman"] >= 0.8 and abs(agreement["mean_ratio"] - 1) <= 0.25:
        verdict = REPRODUCED
    elif agreement["spearman"] >= 0.8:
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return _claim(1, claim, paper, ours, verdict,
                  "Same ranking; the KD models, with small d_qkv and 12 heads, run relatively faster here than the "
                  "paper measured (its CPU and PyTorch were different)." if verdict == PARTLY else "")


def _figure_claim(number: int, claim: str, paper: str, records: dict, key: str, prefix: str) -> dict:
    """A claim read off notebook 07's pair comparisons (``summary[key]``), judged on the GLUE average."""
    figure = records.get("07")
    if not figure:
        return _claim(number, claim, paper, "notebook 07 has not run", NOT_TESTABLE)
    glue, squad = figure["summary"][key]["GLUE avg"], figure["summary"][key]["SQuAD v1.1 F1"]
    scale, gap = _scale(records), above_chance(records)
    ours = _pairs_text(glue, f"{prefix}GLUE avg") + "; " + _pairs_text(squad, f"{prefix}SQuAD v1.1 F1")
    return _claim(number, claim, paper, ours, _pairs_verdict(glue, scale, gap), _noise_note(scale, gap))


def claim_searched_vs_baseline(records: dict) -> dict:
    return _figure_claim(2, "At equal latency, searched architectures beat default-rule BERTs (Figure 1)",
                         "searched above the baselines at every latency (both SuperPLMs)", records,
                         "claim2_searched_vs_baseline", "")


def claim_shapes(records: dict) -> dict:
    (f_lo, f_hi), (q_lo, q_hi) = EFFICIENT_FFN_RATIO, EFFICIENT_QKV_RATIO
    claim = f"Good tiny architectures are shallow and wide, with d_f/d_m ~ {f_lo}-{f_hi} and d_qkv/d_m ~ {q_lo}-{q_hi}"
    paper = f"d_f/d_m {f_lo}-{f_hi}, d_qkv/d_m {q_lo}-{q_hi}, 3-5 layers"
    search = records.get("03")
    if not search:
        return _claim(3, claim, paper, "notebook 03 has not run", NOT_TESTABLE)
    shapes = shape_summary([Arch.parse(s["best_arch"]) for s in search["searches"] if s["method"] == "evolved"])
    if not shapes["n"]:
        return _claim(3, claim, paper, "no evolved search ran", NOT_TESTABLE)
    ffn, qkv = shapes["ffn_ratio"], shapes["qkv_ratio"]
    ours = (f"{shapes['n']} evolved winners: d_f/d_m {ffn['min']:.2f}-{ffn['max']:.2f} (mean {ffn['mean']:.2f}), "
            f"d_qkv/d_m {qkv['min']:.2f}-{qkv['max']:.2f}, {shapes['layers'][0]}-{shapes['layers'][1]} layers; "
            f"{shapes['efficient']} of {shapes['n']} satisfy the efficient rule")
    if search.get("scale") == "smoke":
        verdict = NOT_TESTABLE
    elif shapes["efficient_share"] >= 0.75:
        verdict = REPRODUCED
    elif abs(ffn["mean"] - (f_lo + f_hi) / 2) < abs(ffn["mean"] - DEFAULT_RULE_FFN_RATIO):
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return _claim(3, claim, paper, ours, verdict,
                  f"Searched with fitness = {search.get('fitness')} (the inherited sub-model's held-out loss at "
                  "small scales), which rewards capacity more than the paper's fine-tuning fitness may.")


def claim_kd_vs_mlm(records: dict) -> dict:
    return _figure_claim(4, "KD SuperPLMs give better sub-models than MLM ones at equal latency",
                         "KD-S models above S models at every latency (e.g. GLUE 73.5 for KD-S4 at 17.0x vs 73.0 "
                         "for S4 at 27.2x)", records, "claim4_kd_vs_mlm", "KD ")


def claim_fast(records: dict) -> dict:
    claim = "Fast development reaches nearly the same quality at a fraction of the search and training cost"
    paper = "search 150 -> 12 GPU-hours (0.08x), further training 870 -> 290 (0.33x), similar GLUE"
    develop, glue = records.get("04"), records.get("05")
    if not develop or not glue:
        return _claim(5, claim, paper, "notebooks 04-05 have not run", NOT_TESTABLE)
    ratios = develop.get("fast_over_full") or {}
    pairs = glue.get("comparison", {}).get("fast_vs_evolved") or []
    if not ratios or not pairs:
        return _claim(5, claim, paper, "no fast search ran at this scale", NOT_TESTABLE)
    mean_gap = statistics.fmean(p["difference"] for p in pairs)
    ours = ("cost fast/full: " + "; ".join(f"{o.upper()} search {r['search']:.2f}x, further training "
                                           f"{r['further_training']:.2f}x" for o, r in ratios.items())
            + f"; GLUE avg fast - full: mean {mean_gap:+.2f} over {len(pairs)} pairs")
    cheaper = all(r["total"] < 1 for r in ratios.values())
    gap = above_chance(records)
    if _scale(records) == "smoke" or (gap is not None and gap < MIN_ABOVE_CHANCE):
        verdict = NOT_TESTABLE
    elif cheaper and mean_gap >= -1.0:
        verdict = REPRODUCED
    elif cheaper:
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return _claim(5, claim, paper, ours, verdict,
                  "The further-training ratio is set by develop.fast_steps in configs/<scale>.yaml, as the paper's; "
                  "the search ratio is measured. 'Nearly the same' is taken as within 1 GLUE point. "
                  + _noise_note(_scale(records), gap))


def claim_ranking(records: dict) -> dict:
    claim = "(Implicit in one-shot NAS) inherited-weight rankings agree with rankings after further training"
    paper = "not measured in the paper"
    search = records.get("03")
    kendall = (search or {}).get("kendall") or {}
    tau = kendall.get("inherited_vs_trained")
    if tau is None:
        return _claim(6, claim, paper, "no ranking study ran", NOT_TESTABLE)
    study = search["ranking"]["inherited_vs_trained"]
    proxies = {k: v for k, v in kendall.items() if k != "inherited_vs_trained" and v is not None}
    ours = (f"Kendall tau {tau:.2f} (p = {study['p_value']:.2f}, {study['n']} architectures, "
            f"{study.get('steps', '?')} further-training steps)" +
            "".join(f"; {k.replace('_', ' ')} tau {v:.2f}" for k, v in proxies.items()))
    if search.get("scale") == "smoke":
        verdict = NOT_TESTABLE
    elif tau >= 0.5 and study["p_value"] < 0.05:
        verdict = REPRODUCED
    elif tau > 0:
        verdict = PARTLY
    else:
        verdict = NOT_REPRODUCED
    return _claim(6, claim, paper, ours, verdict)


CLAIMS: tuple[Callable[[dict], dict], ...] = (claim_speedups, claim_searched_vs_baseline, claim_shapes,
                                              claim_kd_vs_mlm, claim_fast, claim_ranking)


def _scale(records: dict) -> str:
    scales = {r.get("scale") for k, r in records.items() if isinstance(r, dict) and r.get("scale")}
    return "smoke" if "smoke" in scales else (records.get("reproduce", {}).get("scale") or next(iter(scales), "?"))


def _noise_note(scale: str, gap: float | None = None) -> str:
    note = ""
    if gap is not None and gap < MIN_ABOVE_CHANCE:
        note = (f"The best model's GLUE average is only {gap:+.1f} points above always predicting the majority class "
                f"(< {MIN_ABOVE_CHANCE:g}): the models learned the tasks only a little. ")
    if scale in ("smoke", "mini"):
        note += (f"At the {scale} scale every model is fine-tuned once on small subsets: differences of a few points "
                 "are within fine-tuning noise.")
    return note


# ------------------------------------------------------------------------------------------- render
def _cell(text: Any) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def render(records: dict, results_dir: str | Path) -> str:
    """The report's Markdown (``results_dir`` only decides which figures exist)."""
    results_dir = Path(results_dir)
    claims = [f(records) for f in CLAIMS]
    run = records.get("reproduce", {})
    lines = [
        "# AutoTinyBERT reproduction: claims report",
        "",
        f"Generated by `python -m atb.report` from the records in `results/{_scale(records)}/` (do not edit by "
        f"hand). Scale: **{_scale(records)}**; commit `{(run.get('commit') or 'unknown')[:12]}`.",
        "",
        "| # | claim | paper | this study | verdict |",
        "|---|---|---|---|---|",
        *(f"| {c['number']} | {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['ours'])} | **{c['verdict']}** |"
          for c in claims),
        "",
        "## Notes",
        *(f"- Claim {c['number']}: {c['note']}" for c in claims if c["note"]),
        "- Offline, MNLI, QQP and the QNLI train split are absent: GLUE averages here are over the scored tasks "
        f"(results/{_scale(records)}/05_glue.json lists them), not the paper's eight; SQuAD v2.0 is not scored.",
    ]
    if run.get("notebooks"):
        lines += ["", "## Run", "", "| notebook | seconds | status |", "|---|---|---|",
                  *(f"| {n} | {v['seconds']:.0f}{' (cached)' if v.get('cached') else ''} | {_cell(v['status'])} |"
                    for n, v in sorted(run["notebooks"].items())),
                  "", f"Total: {run.get('total_seconds', 0) / 60:.1f} minutes. Seconds are those of each notebook's "
                      "last execution (of the run that produced it, for a notebook skipped as unchanged); work cached "
                      "under `runs/` (checkpoints, search logs, fine-tuning results) is not redone, so a re-execution "
                      "can be far shorter than the first."]
    figures = [f for f in FIGURES if (results_dir / f).exists()]
    if figures:
        lines += ["", "## Figures", "", *(f"![{f}]({f})" for f in figures)]
    return "\n".join(lines) + "\n"


def write_report(results_dir: str | Path) -> Path:
    """Render the report from the records of ``results_dir`` (one scale's folder, ``Layout(scale).results``)
    and write ``results_dir/REPORT.md`` atomically."""
    return write_text_atomic(Path(results_dir) / "REPORT.md", render(load_records(results_dir), results_dir))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scale", choices=SCALES, default="mini",
                       help="report on results/<scale>/ (under $ATB_RESULTS_DIR when set); default mini")
    where.add_argument("--results-dir", type=Path, help="report on this folder of one scale's records instead")
    args = parser.parse_args(argv)
    print(write_report(args.results_dir or Layout(args.scale).results))


if __name__ == "__main__":
    main()
