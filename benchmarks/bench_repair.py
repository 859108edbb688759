"""Does one-shot training repair the cut? Sub-models cut from KD SuperPLMs trained with several recipes and for
several step counts, fine-tuned on STS-B and SST-2 beside untrained controls of the same shapes (issue #23, item 5).

    python benchmarks/bench_repair.py --scale mini [--recipes uniform sandwich] [--steps 250 1000 2000]
        [--archs 6/272/128/12/180 ...] [--tasks stsb sst2] [--seeds 2] [--out results/mini/bench_repair.json]

Cutting the warm-started SuperPLM (the packaged MiniLM, rewired by importance) to a hidden size below the
teacher's keeps SST-2 but loses STS-B (``benchmarks/slice_transfer.py``), and the mini study's 250 one-shot steps
did not bring it back; yet repairing every sub-model at once is what one-shot training is for. This measures, per
recipe and step count, how much of each task the cut sub-models keep:

* **recipes** (:data:`RECIPES`, overrides of the scale's KD ``pretrain`` settings): ``uniform``, the paper's one
  random sub-model per step; ``sandwich``, once-for-all / BigNAS's rule (the largest, the smallest and ``k`` random
  sub-models per step, gradients accumulated); ``layerwise``, every layer of the sampled sub-model distilled from
  the teacher layer at the same relative depth (``kd_layers: uniform``, TinyBERT's mapping) instead of the last;
  ``progressive``, once-for-all's progressive shrinking (the largest network first, smaller sizes admitted evenly
  over the first half of the run: ``atb.sampler.ProgressiveSampler``); ``large-lr``, the paper's rule at 5x the
  scale's learning rate (a short run may simply move the weights too little);
* ``further`` (:data:`FURTHER`), not a one-shot recipe: each sub-model cut from the warm start and trained **alone**
  with KD for the step count, AutoTinyBERT's further training (:func:`atb.train.further_train`, the scale's
  development settings, ``develop.train``) for longer than the study's ``develop.steps``: the repair each searched
  model gets for itself, where one-shot training must repair every sub-model at once; ``further-oneshot`` the same
  from the cut of the study's own SuperPLM (the paper's rule for the scale's one-shot steps), i.e. the study's
  pipeline: does further training give back what the one-shot step took?
* **steps**: 0 (the warm start itself, before any one-shot step) and each of ``--steps``, each its own run with
  its own schedule (10 % warm-up, linear decay), cached in ``runs/<scale>/bench_repair/`` and resumed;
* **sub-models** (``--archs``): shapes across the KD space, hidden sizes below the teacher's among them, and one at
  the teacher's hidden size with fewer layers (is it the width or the depth that loses the task?);
* **fine-tuning**: the scale's budget and seeds, in the scale's worker pool (``atb.finetune.run_jobs``, cached),
  scored on examples **held out of the train split** (the recipe is chosen by this measurement, so never on dev).

An existing ``--out`` record of the same scale, sub-models, tasks and seeds keeps the points this call does not
measure (a call measures only what it is given; each call's points, seconds, machine and precision are listed under
``calls``), so a new recipe or step count is added without retraining the others.

Recorded per (recipe, steps, sub-model, task): the sub-model's and its control's held-out score and their paired
difference with its 95 % interval (seeds and examples resampled, ``atb.develop.pooled_difference``); per (recipe,
steps, task) the same pooled over the sub-models; per run its seconds and last loss; the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from atb import Arch, SearchSpace, SuperBert, engine, export, extract
from atb.controls import export_control
from atb.develop import DevelopConfig, column_runs, pooled_difference
from atb.finetune import run_jobs, run_seeds, seed_jobs
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic
from atb.stats import ModelRuns
from atb.train import WARM_START_DIR, TrainConfig, further_train, read_log, train

RECIPES: dict[str, dict] = {"uniform": {}, "sandwich": {"sampler": "sandwich", "sampler_k": 2},
                            "layerwise": {"kd_layers": "uniform"}, "progressive": {"sampler": "progressive"},
                            "large-lr": {"lr": 5.0e-4}}
# each sub-model trained alone (further_models), not a one-shot recipe: the SuperPLM it is cut from, as a
# (recipe, steps) point; steps None: the scale's own one-shot steps (pretrain.steps)
FURTHER: dict[str, tuple[str, int | None]] = {"further": ("uniform", 0), "further-oneshot": ("uniform", None)}
# the KD evolved pick of the mini study (eef62a3), a 4-layer default-rule shape, MiniLM's width at 4 layers
ARCHS = ("6/272/128/12/180", "4/256/1024/12/252", "4/384/1536/12/384")
FOLDER = "bench_repair"


def train_recipe(layout: Layout, recipe: str, steps: int) -> tuple[Path, dict]:
    """The KD SuperPLM of ``recipe`` after ``steps`` one-shot steps from the scale's warm start (resumed if there):
    ``(its final/ folder, {"steps", "seconds_this_call", "last_loss"})`` (a resumed run times only this call);
    ``steps == 0``: the warm start itself."""
    cfg = TrainConfig.load(layout.scale, "kd", **RECIPES[recipe])
    if steps == 0:
        run = layout.runs / FOLDER / "warm-start"
        if not (run / WARM_START_DIR).exists():  # saves the warm start, takes no step
            train(dataclasses.replace(cfg, steps=1, checkpoint_every=1), run, max_steps=0, device="cpu")
        return run / WARM_START_DIR, {"steps": 0, "seconds_this_call": 0.0, "last_loss": None}
    run = layout.runs / FOLDER / f"{recipe}-{steps}"
    cfg = dataclasses.replace(cfg, steps=steps, warmup_steps=max(1, steps // 10),
                              checkpoint_every=min(steps, 250))
    start = time.perf_counter()
    train(cfg, run, device="cpu")
    losses = [r["loss"] for r in read_log(run) if "loss" in r]
    return run / "final", {"steps": steps, "seconds_this_call": round(time.perf_counter() - start, 1),
                           "last_loss": sum(losses[-20:]) / len(losses[-20:]) if losses else None}


def further_config(scale: str, steps: int) -> TrainConfig:
    """The scale's further training (notebook 04's KD settings, ``develop.train``) for ``steps`` steps, with the
    one-shot recipes' schedule: 10 % warm-up, a checkpoint every 250 steps at most."""
    cfg = DevelopConfig.load(scale).train_config_for("kd", "evolved")
    return dataclasses.replace(cfg, steps=steps, warmup_steps=max(1, steps // 10), checkpoint_every=min(steps, 250))


def further_start(scale: str, name: str) -> tuple[str, int]:
    """The (recipe, steps) point whose SuperPLM the ``FURTHER`` variant ``name`` cuts its sub-models from."""
    recipe, steps = FURTHER[name]
    return recipe, TrainConfig.load(scale, "kd").steps if steps is None else steps


def further_models(layout: Layout, archs: list[Arch], steps: int, name: str = "further"
                   ) -> tuple[dict[str, Path], dict]:
    """Each of ``archs`` cut from the SuperPLM of :func:`further_start` and further trained alone for ``steps`` steps
    (resumed if there): ``({arch: its trained model's folder}, {"steps", "from", "seconds_this_call", "last_loss":
    {arch: loss}, "from_run": the SuperPLM's run as :func:`train_recipe` returns it})``."""
    start_point = further_start(layout.scale, name)
    supernet, trained = train_recipe(layout, *start_point)
    cfg, models = further_config(layout.scale, steps), {}
    info = {"steps": steps, "from": " ".join(map(str, start_point)), "from_run": trained, "last_loss": {}}
    start = time.perf_counter()
    for arch in archs:
        run = further_train(supernet, arch, cfg, layout.runs / FOLDER / f"{name}-{steps}" / str(arch).replace("/", "-"),
                            device="cpu")
        models[str(arch)] = Path(run["model_dir"])
        info["last_loss"][str(arch)] = run.get("final_loss")
    return models, {**info, "seconds_this_call": round(time.perf_counter() - start, 1)}


def merge_record(path: Path, record: dict) -> dict:
    """``record`` with the points of an earlier record at ``path`` that it did not measure itself (the earlier
    rows first, in their order); refused, naming the field, when the two measured different things."""
    if not path.exists():
        return record
    old = json.loads(path.read_text())
    for name in ("scale", "archs", "tasks", "seeds", "scored_on", "budget"):
        if old.get(name) != record[name]:
            raise ValueError(f"{path}: its {name!r} is {old.get(name)!r}, this call's {record[name]!r}; the points "
                             f"would not compare (write this call to another --out)")
    measured = {(r["recipe"], r["steps"]) for r in record["pooled"]}

    def kept(rows: list[dict]) -> list[dict]:
        return [r for r in rows if (r["recipe"], r["steps"]) not in measured]

    earlier = old.get("calls") or [{"points": sorted({f"{r['recipe']} {r['steps']}" for r in old["pooled"]}),
                                    "seconds": old.get("seconds"), "machine": old.get("machine")}]
    return {**record, "recipes": {**old.get("recipes", {}), **record["recipes"]},
            "runs": {**{k: v for k, v in old.get("runs", {}).items() if k not in record["runs"]}, **record["runs"]},
            "rows": kept(old["rows"]) + record["rows"], "pooled": kept(old["pooled"]) + record["pooled"],
            "calls": earlier + record["calls"]}


def mean_score(runs: ModelRuns) -> float:
    """The task's metric, averaged over the fine-tuning seeds."""
    return statistics.fmean(runs.metric(runs.runs[s], runs.labels) for s in runs.seeds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--recipes", nargs="+", default=[*RECIPES, *FURTHER], choices=[*RECIPES, *FURTHER])
    parser.add_argument("--steps", nargs="+", type=int, default=[250, 1000, 2000])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--tasks", nargs="+", default=["stsb", "sst2"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    layout, develop = Layout(args.scale), DevelopConfig.load(args.scale)
    space = SearchSpace.preset(TrainConfig.load(args.scale, "kd").space, "kd")
    archs = [space.validate(Arch.parse(a)) for a in args.archs]
    heldout = {task: {"evaluate_on": "heldout"} for task in args.tasks}
    root, started = layout.runs / FOLDER, time.perf_counter()

    warm = [("warm start", 0)] if TrainConfig.load(args.scale, "kd").init_from else []  # (a scale from scratch: none)
    if any(r in FURTHER for r in args.recipes) and not warm:
        parser.error(f"--recipes {' '.join(FURTHER)} start from the warm start's training; {args.scale} trains from "
                     "scratch")
    points = warm + [(r, s) for r in args.recipes for s in sorted(set(args.steps))]
    models, runs_info = {}, {}
    for recipe, steps in points:
        if recipe in FURTHER:
            trained, runs_info[f"{recipe} {steps}"] = further_models(layout, archs, steps, recipe)
            models.update({(recipe, steps, a): d for a, d in trained.items()})
            print(f"{recipe} {steps} steps: {runs_info[f'{recipe} {steps}']}", flush=True)
            continue
        net_dir, info = train_recipe(layout, "uniform" if recipe == "warm start" else recipe, steps)
        runs_info[f"{recipe} {steps}"] = info
        net = SuperBert.from_pretrained(net_dir).eval()
        for arch in archs:
            out = root / "models" / f"{recipe.replace(' ', '-')}-{steps}" / str(arch).replace("/", "-")
            if not (out / "config.json").exists():
                export(extract(net, arch), out)
            models[(recipe, steps, str(arch))] = out
        print(f"{recipe} {steps} steps: {info}", flush=True)
    first = points[0][:2]
    controls = {str(a): export_control(a, root / "controls" / str(a).replace("/", "-"), like=models[(*first, str(a))])
                for a in archs}

    def out_dir(model_dir: Path) -> Path:
        return Path(model_dir) / "finetune"

    dirs = [*models.values(), *controls.values()]
    run_jobs([j for d in dirs for j in seed_jobs(d, args.tasks, args.scale, out_dir(d), args.seeds, heldout)],
             develop.workers)
    scores = {d: column_runs(run_seeds(d, args.tasks, args.scale, out_dir(d), seeds=args.seeds, budgets=heldout))
              for d in dirs}
    rows, pooled = [], []
    for recipe, steps in points:
        for task in args.tasks:
            pairs = []
            for arch in archs:
                model, control = models[(recipe, steps, str(arch))], controls[str(arch)]
                pairs.append((str(model), str(control)))
                iv = pooled_difference([(str(model), str(control))], {str(model): scores[model]},
                                       {str(control): scores[control]}, task)
                rows.append({"recipe": recipe, "steps": steps, "arch": str(arch), "task": task,
                             "model": mean_score(scores[model][task]), "control": mean_score(scores[control][task]),
                             "difference": iv["difference"], "ci95": iv["ci95"], "n": iv["n"]})
            by_dir = {str(d): s for d, s in scores.items()}
            iv = pooled_difference(pairs, by_dir, by_dir, task)
            pooled.append({"recipe": recipe, "steps": steps, "task": task, "difference": iv["difference"],
                           "ci95": iv["ci95"], "n": iv["n"], "archs": len(pairs)})
    further = dataclasses.asdict(further_config(args.scale, 1)) | {
        "steps": "the point's", "warmup_steps": "a tenth of the steps", "checkpoint_every": "min(steps, 250)"}
    described = {**RECIPES, **{name: {"further_training": further, "from": "the SuperPLM of the point "
                                      f"'{' '.join(map(str, further_start(args.scale, name)))}', each sub-model alone"}
                               for name in FURTHER}}
    record = {"scale": args.scale, "recipes": {r: described[r] for r in args.recipes}, "archs": [str(a) for a in archs],
              "tasks": args.tasks, "seeds": args.seeds, "scored_on": "examples held out of the train split",
              "budget": "the scale's finetune budgets", "runs": runs_info, "rows": rows, "pooled": pooled,
              "seconds": round(time.perf_counter() - started, 1), "machine": machine_info()}
    record["calls"] = [{"points": [f"{r} {s}" for r, s in points], "seconds": record["seconds"],
                        "machine": record["machine"],
                        "engine": engine.describe(TrainConfig.load(args.scale, "kd").precision)}]
    for p in pooled:
        lo, hi = p["ci95"] or (float("nan"), float("nan"))
        print(f"{p['recipe']:10s} {p['steps']:5d} {p['task']:5s} model - control {p['difference']:+6.1f} "
              f"[{lo:+.1f}, {hi:+.1f}] over {p['archs']} sub-models", flush=True)
    if args.out:
        write_json_atomic(args.out, merge_record(args.out, record), allow_nan=False)


if __name__ == "__main__":
    main()
