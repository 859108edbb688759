"""Can the proxy-vs-paper ranking study rank anything? Its paper fitness fine-tunes each inherited sub-model on SST-2
(offline MNLI's substitute); at the mini budget of the study committed before a614f18 (2,000 examples, one epoch,
batch 32, lr 1e-4: 63 steps) most of its architectures scored the constant prediction, so its Kendall tau ranked ties (issue #23, item 4).

This benchmark runs the study's own code (:func:`atb.ranking.kendall_proxy_vs_paper` with untrained controls) on the
architectures notebook 03 would pick (:func:`atb.ranking.pick_archs` over the KD searches' candidates, ``--archs`` of
them) under several fine-tuning budgets, and reports for each: how many architectures beat their untrained control
(a 95 % interval over dev examples above 0), tau over those with its bootstrap interval, the smallest tau that many
architectures could show above 0 (:func:`atb.stats.detectable_tau`), and the seconds it took. The budgets:

* ``committed``: the ranking section's paper budget as configured when the benchmark runs (the record keeps each
  row's ``budget``: the committed record's row is the earlier budget above; since a614f18 the configured budget is
  ``study_3e-4``'s);
* ``study_1e-4`` / ``study_3e-4``: the study's GLUE budget for SST-2 (1,000 examples, two epochs, batch 16: 125 steps,
  the same examples seen as the committed budget) with shuffled length-grouped batches, at each candidate rate of
  ``develop.lr_candidates`` (bench_lr_choice: 3e-4 won on dev for every developed model).

Everything is cached under ``runs/<scale>/bench_ranking_power/<budget>/`` (an interrupted benchmark resumes).
Usage: ``python benchmarks/bench_ranking_power.py [--scale mini] [--archs 12] [--out
results/mini/bench_ranking_power.json]``
"""

from __future__ import annotations

import argparse
import time

from atb import engine
from atb.develop import DevelopConfig
from atb.finetune import FinetuneConfig
from atb.layout import Layout
from atb.ranking import RankingConfig, kendall_proxy_vs_paper, pick_archs
from atb.records import machine_info, write_json_atomic
from atb.search import SearchConfig, read_search_log
from atb.stats import detectable_tau, kendall_tau_interval

OBJECTIVE, METHODS = "kd", ("random", "fast", "evolved")


def candidates(layout: Layout, speedups: list[float]) -> list[dict]:
    """Every architecture the seed-0 searches of :data:`OBJECTIVE` evaluated (notebook 03's ranking candidates)."""
    rows = []
    for method in METHODS:
        for speedup in speedups:
            rows += read_search_log(layout.search_log(OBJECTIVE, method, speedup))[1]
    if not rows:
        raise SystemExit(f"no {OBJECTIVE} search logs under {layout.runs / 'search'}: run notebook 03 first")
    return [r for r in rows if r.get("fitness") is not None]


def budgets(scale: str, ranking: RankingConfig) -> dict[str, dict]:
    """The paper budgets compared, as ``budgets`` settings of the paper fitness (over the scale's SST-2 budget)."""
    study = FinetuneConfig.load(scale, "sst2")
    glue = {"epochs": study.epochs, "batch_size": study.batch_size, "max_train_examples": study.max_train_examples,
            "max_eval_examples": ranking.paper_settings()["budgets"]["sst2"].get("max_eval_examples"),
            "shuffle_batches": True}
    out = {"committed": ranking.paper_settings()["budgets"]["sst2"]}
    for lr in DevelopConfig.load(scale).lr_candidates or [study.lr]:
        out[f"study_{lr:g}"] = {**glue, "lr": lr}
    return out


def interval(x: list[float], y: list[float]) -> dict | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    tau = kendall_tau_interval(x, y)
    return {"tau": tau.difference, "ci95": list(tau.ci95), "n": tau.n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--archs", type=int, default=12, help="architectures (default 12: detects tau >= 0.45)")
    parser.add_argument("--only", nargs="*", help="budgets to run (default: all)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    layout, ranking = Layout(args.scale), RankingConfig.load(args.scale)
    archs = pick_archs(candidates(layout, SearchConfig.load(args.scale).speedups[OBJECTIVE]), args.archs,
                       ranking.seed)
    supernet = layout.superplm_final(OBJECTIVE)
    rows = {}
    for name, budget in budgets(args.scale, ranking).items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        paper = {**ranking.paper_settings(), "budgets": {"sst2": budget}}
        result = kendall_proxy_vs_paper(supernet, archs, ranking.proxy_settings(), paper,
                                        layout.runs / "bench_ranking_power" / name, controls=True)
        learned = [i for i, v in enumerate(result["learned"]) if v]
        rows[name] = {
            "budget": budget, "n": len(archs), "n_learned": len(learned),
            "constant": sum(len(set(d["paper"]["tasks"]["mnli"]["dev"]["validation"]["predictions"])) == 1
                            for d in result["details"]),
            "paper": result["paper"], "control": result["control"], "learned": result["learned"],
            "vs_control": result["vs_control"],
            "tau_all": interval(result["proxy"], result["paper"]),
            "tau_learned": interval([result["proxy"][i] for i in learned], [result["paper"][i] for i in learned]),
            "detectable_tau_learned": detectable_tau(len(learned)) if len(learned) >= 2 else None,
            "seconds": result["seconds"], "seconds_this_call": round(time.perf_counter() - start, 1)}
    record = {"scale": args.scale, "objective": OBJECTIVE, "archs": [str(a) for a in archs],
              "supernet": str(supernet.relative_to(layout.runs_root)), "task": "sst2 (MNLI's offline substitute)",
              "machine": machine_info(), "computed_in": engine.describe("auto")["computed_in"], "budgets": rows}
    print(f"{args.scale}: {len(archs)} {OBJECTIVE} architectures, {record['machine']['cpu']}, {record['computed_in']}")
    for name, r in rows.items():
        taus = "  ".join(f"{k} " + (f"{t['tau']:+.2f} [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}]" if t else "n/a")
                         for k, t in (("tau all", r["tau_all"]), ("tau learned", r["tau_learned"])))
        print(f"  {name:12s} learned {r['n_learned']:2d}/{r['n']}  constant {r['constant']:2d}  {taus}  "
              f"{sum(r['seconds'].values()):.0f} s")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
