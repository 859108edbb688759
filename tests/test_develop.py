"""Model development (atb.develop): default-rule baselines, the plan of models, the GLUE / SQuAD rows, the cost
table, the config, model cards, fine-tuning resume, and further training of a tiny SuperPLM (needs ``ATB_DATA_DIR``)."""

import dataclasses
import json

import pytest

from atb import Arch, SearchSpace, develop, finetune, train, zoo
from atb.develop import (
    DEFAULT_RULE,
    GLUE_AVERAGE,
    GLUE_COLUMNS,
    DevelopConfig,
    default_rule_archs,
    default_rule_baseline,
    development_costs,
    glue_entry,
    model_card,
    paired_differences,
    plan_models,
    squad_entry,
    summarize_pairs,
    write_model_card,
)
from atb.extract import export_card
from atb.latency import num_threads
from atb.train import further_train
from conftest import save_supernet, write_scale_config



def params_latency(archs):
    """A fake latency predictor (ms): proportional to the encoder's weights, strictly monotone in size."""
    return [a.encoder_parameters() / 1e5 for a in archs]


def latency_of(arch):
    return params_latency([Arch.parse(arch) if isinstance(arch, str) else arch])[0]


# ------------------------------------------------------------------------------------ default rule
@pytest.mark.parametrize("objective", ["mlm", "kd"])
def test_default_rule_archs_follow_the_rule_within_5_percent(objective):
    space = SearchSpace.preset("mini", objective)
    archs = default_rule_archs(space, 4)
    assert len(archs) >= 5 and len(set(archs)) == len(archs)
    for a in archs:
        assert a.layers == 4 and space.contains(a), a
        assert abs(a.ffn - 4 * a.hidden) <= 0.05 * 4 * a.hidden, a
        assert abs(a.qkv - a.hidden) <= 0.05 * a.hidden, a
    exact = Arch(4, 256, 1024, 4, 256) if objective == "mlm" else Arch(4, 240, 960, 12, 240)
    assert exact in archs  # an exact grid point is taken as it is


def test_default_rule_archs_without_an_exact_point_take_the_nearest():
    space = SearchSpace.preset("smoke", "kd")  # qkv in 24..48 step 12 with 12 heads: no point within 5%

    def deviation(a):
        return max(abs(a.ffn - 4 * a.hidden) / (4 * a.hidden), abs(a.qkv - a.hidden) / a.hidden)

    archs = default_rule_archs(space, 2)
    assert archs and all(a.layers == 2 and space.contains(a) for a in archs)
    best = min(deviation(a) for a in space.grid() if a.layers == 2)
    assert best > 0.05 and all(deviation(a) == pytest.approx(best) for a in archs)  # nothing in the grid is closer


def test_default_rule_archs_reproduce_the_papers_baseline_shapes():
    # the zoo's default-rule BERTs (from the official code) on the paper grid: same heads and d_qkv per d_m
    for m in zoo.baselines():
        archs = {a.hidden: a for a in default_rule_archs(SearchSpace.preset("paper", m.objective), 4)}
        got = archs[m.arch.hidden]
        assert (got.heads, got.qkv) == (m.arch.heads, m.arch.qkv), m.name
        assert abs(got.ffn - m.arch.ffn) <= 0.05 * m.arch.ffn, m.name  # BERT-KD-312 has 1200, the rule 1248


def test_default_rule_archs_refuse_layers_outside_the_space():
    with pytest.raises(ValueError, match="baseline_layers"):
        default_rule_archs(SearchSpace.preset("mini", "mlm"), 5)
    with pytest.raises(ValueError, match="baseline_layers"):
        default_rule_baseline(SearchSpace.preset("smoke", "kd"), params_latency, 1.0, 4)


def test_default_rule_baseline_is_the_closest_latency_from_a_function_or_a_predictor():
    space = SearchSpace.preset("mini", "kd")
    target = 0.93 * latency_of("4/256/1024/12/252")  # between two rule points, nearer this one
    arch, latency = default_rule_baseline(space, params_latency, target, 4)
    rule = default_rule_archs(space, 4)
    assert arch == min(rule, key=lambda a: abs(latency_of(a) - target))
    assert latency == pytest.approx(latency_of(arch))

    class Predictor:
        def predict(self, archs):
            return params_latency(archs)

    assert default_rule_baseline(space, Predictor(), target, 4) == (arch, latency)
    assert default_rule_baseline(space, Predictor(), 1e9, 4)[0] == max(rule, key=latency_of)  # far target: largest


# --------------------------------------------------------------------------------------------- plan
def search(objective, method, speedup, arch, latency=None):
    return {"objective": objective, "method": method, "speedup": speedup, "best_arch": arch,
            "predicted_latency_ms": latency_of(arch) if latency is None else latency, "best_fitness": -1.5,
            "cpu_seconds": 12.0, "wall_seconds": 7.0, "evaluated": 300}


def test_plan_models_picks_evolved_fast_and_a_latency_matched_baseline():
    spaces = {o: SearchSpace.preset("mini", o) for o in ("mlm", "kd")}
    # each evolved pick's predicted latency equals one rule arch's exactly; the fast picks' point elsewhere
    targets = {("mlm", 25): "4/256/1024/4/256", ("mlm", 4.6): "4/384/1536/6/384",
               ("kd", 25): "4/192/768/12/192", ("kd", 4.6): "4/288/1152/12/288"}
    records = []
    for (objective, speedup), rule_arch in targets.items():
        other = "1/128/128/1/64" if objective == "mlm" else "1/128/128/12/96"
        records += [search(objective, "random", speedup, other),
                    search(objective, "fast", speedup, other),
                    search(objective, "evolved", speedup, "3/320/608/4/256" if objective == "mlm" else
                           "4/256/480/12/192", latency=latency_of(rule_arch))]
    records.append(search("kd", "fast", 9.0, "2/160/320/12/144", latency=latency_of("4/144/576/12/144")))
    cfg = DevelopConfig.load("mini")
    models = plan_models(records, spaces, params_latency, cfg)

    assert [m.name for m in models] == [
        "kd-evolved-4.6x", "kd-fast-4.6x", "kd-default-rule-4.6x", "kd-fast-9x", "kd-default-rule-9x",
        "kd-evolved-25x", "kd-fast-25x", "kd-default-rule-25x",
        "mlm-evolved-4.6x", "mlm-fast-4.6x", "mlm-default-rule-4.6x", "mlm-evolved-25x", "mlm-fast-25x", "mlm-default-rule-25x"]
    assert all(m.method != "random" for m in models)
    by_name = {m.name: m for m in models}
    for (objective, speedup), rule_arch in targets.items():
        base = by_name[develop.model_name(objective, "default-rule", speedup)]
        assert base.kind == "baseline" and base.method == DEFAULT_RULE == "default-rule"
        assert base.search is None and base.objective == objective
        assert str(base.arch) == rule_arch  # matched to the evolved pick, not the fast one
        assert base.predicted_latency_ms == pytest.approx(latency_of(rule_arch))
    assert str(by_name["kd-default-rule-9x"].arch) == "4/144/576/12/144"  # only a fast search: matched to it
    evolved = by_name["kd-evolved-25x"]
    assert evolved.kind == "searched" and str(evolved.arch) == "4/256/480/12/192" and evolved.speedup == 25.0
    assert evolved.search == {"best_fitness": -1.5, "cpu_seconds": 12.0, "wall_seconds": 7.0, "evaluated": 300}
    assert evolved.to_dict()["kind"] == "searched" and by_name["kd-fast-25x"].kind == "searched"


# ------------------------------------------------------------------------------------------- tables
def glue_results(**extra):
    scored = {"cola": 30.0, "sst2": 80.0, "mrpc": 85.0, "stsb": 70.0, "rte": 60.0}
    results = {t: {"task": t, "score": s, "metrics": {"x": s}, "reason": None} for t, s in scored.items()}
    results["mnli"] = {"task": "mnli", "score": 71.0, "metrics": {"accuracy_m": 70.0, "accuracy_mm": 72.0},
                       "reason": None}
    for task in ("qqp", "qnli"):
        results[task] = {"task": task, "score": None, "metrics": None, "reason": f"{task} is not available offline"}
    return {**results, **extra}


def test_glue_entry_fills_mnli_both_ways_and_marks_what_is_missing():
    entry = glue_entry(glue_results())
    assert set(entry["tasks"]) == set(GLUE_COLUMNS)
    assert (entry["tasks"]["mnli_m"], entry["tasks"]["mnli_mm"]) == (70.0, 72.0)
    assert entry["tasks"]["qqp"] is None and entry["unavailable"]["qqp"] == "qqp is not available offline"
    assert entry["tasks"]["wnli"] is None and entry["unavailable"]["wnli"].startswith("not run at this scale")
    assert set(entry["unavailable"]) == {"qqp", "qnli", "wnli"}
    assert entry["avg_over"] == ["cola", "sst2", "mrpc", "stsb", "mnli_m", "rte"]  # GLUE_AVERAGE order
    assert entry["avg"] == pytest.approx((30 + 80 + 85 + 70 + 70 + 60) / 6)  # mnli_mm not in the average


def test_glue_entry_never_averages_wnli():
    wnli = {"task": "wnli", "score": 99.0, "metrics": {"accuracy": 99.0}, "reason": None}
    entry = glue_entry(glue_results(wnli=wnli))
    assert entry["tasks"]["wnli"] == 99.0 and "wnli" not in entry["unavailable"]
    assert "wnli" not in GLUE_AVERAGE and "wnli" not in entry["avg_over"]
    assert entry["avg"] == pytest.approx(glue_entry(glue_results())["avg"])
    empty = glue_entry({})
    assert empty["avg"] is None and empty["avg_over"] == [] and set(empty["unavailable"]) == set(GLUE_COLUMNS)


def test_squad_entry_scored_and_unavailable():
    entry = squad_entry({
        "squad_v1.1": {"task": "squad_v1.1", "score": 45.6, "metrics": {"em": 33.3, "f1": 45.6}},
        "squad_v2.0": {"task": "squad_v2.0", "score": None, "metrics": None, "reason": "v2.0 train is offline"}})
    assert entry["squad_v1"] == {"em": 33.3, "f1": 45.6}
    assert entry["squad_v2"] is None and entry["unavailable"] == {"squad_v2": "v2.0 train is offline"}
    assert squad_entry({})["unavailable"]["squad_v1"] == "not run at this scale"


# --------------------------------------------------------------------------------------------- cost
def dev_record(objective, method, search_cpu, further_cpu, steps):
    return {"objective": objective, "method": method, "search": None if method == "default-rule" else
            {"cpu_seconds": search_cpu}, "further_training": {"cpu_seconds": further_cpu, "steps": steps}}


def test_development_costs_full_fast_and_scratch_estimate():
    models = [dev_record("kd", "evolved", 100.0, 50.0, 10), dev_record("kd", "evolved", 120.0, 80.0, 10),
              dev_record("kd", "fast", 10.0, 20.0, 4), dev_record("kd", "default-rule", 0.0, 40.0, 10),
              dev_record("mlm", "fast", 5.0, 6.0, 3)]
    rows = {(r["objective"], r["method"]): r for r in development_costs(models, {"kd": 90, "mlm": 30})}
    assert set(rows) == {("kd", "evolved"), ("kd", "fast"), ("kd", "scratch"), ("mlm", "fast")}  # no baselines
    full = rows["kd", "evolved"]
    assert (full["models"], full["search_cpu_seconds"], full["further_training_cpu_seconds"]) == (2, 220.0, 130.0)
    assert full["total_cpu_seconds"] == 350.0 and full["estimated"] is False
    assert rows["kd", "fast"]["total_cpu_seconds"] == 30.0
    scratch = rows["kd", "scratch"]
    # (90 SuperPLM steps + 10 further) x the measured CPU-seconds per step, summed over the full-method models
    assert scratch["estimated"] is True and scratch["search_cpu_seconds"] == 0.0 and scratch["models"] == 2
    assert scratch["total_cpu_seconds"] == pytest.approx(100 * 5.0 + 100 * 8.0)


# ------------------------------------------------------------------------------------------- config
def test_develop_config_per_scale(tmp_path):
    smoke, mini = DevelopConfig.load("smoke"), DevelopConfig.load("mini")
    assert (smoke.steps, smoke.fast_steps, smoke.baseline_layers) == (2, 1, 2)
    assert (mini.steps, mini.fast_steps, mini.baseline_layers) == (100, 33, 4) and "wnli" not in mini.glue_tasks
    assert mini.steps_for("fast") == mini.fast_steps and mini.steps_for("evolved") == mini.steps_for("default-rule") == 100
    further = smoke.train_config_for("mlm", "fast")
    assert (further.steps, further.objective, further.max_documents, further.scale) == (1, "mlm", 20, "smoke")
    bad = write_scale_config(tmp_path / "bad.yaml", develop={"steps": 3, "fast_stepz": 1})
    with pytest.raises(ValueError, match=r"bad.yaml: develop.*fast_stepz"):
        DevelopConfig.load(bad)
    with pytest.raises(ValueError, match="huge"):
        DevelopConfig.load("huge")
    with pytest.raises(ValueError, match="fast_steps"):
        DevelopConfig(fast_steps=0)


# --------------------------------------------------------------------------------------- model card
def card_entry(**changes):
    return {"name": "kd-evolved-25x", "arch": "4/256/480/12/192", "scale": "mini", "method": "evolved",
            "objective": "kd", "speedup_target": 25.0, "latency_ms": 3.21, "speedup": 17.34, "bert_base_ms": 55.6,
            "machine": {"cpu": "Test CPU 9000"},
            "further_training": {"steps": 100, "final_loss": 1.234, "cpu_seconds": 321.0},
            "glue": glue_entry(glue_results()),
            "squad": squad_entry({"squad_v1.1": {"score": 45.6, "metrics": {"em": 33.3, "f1": 45.6}}}),
            **changes}


def test_model_card_names_the_arch_speedup_and_scores():
    card = model_card(card_entry())
    # the exported model's card (atb.extract.export_card: metadata, architecture, use) with the development added
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n")
    assert "\n# kd-evolved-25x\n" in card
    assert card.startswith(export_card(Arch(4, 256, 480, 12, 192), name="kd-evolved-25x").split("## Use")[0])
    assert "| 4 | 256 | 480 | 12 | 192 |" in card and "import atb" in card and "atb-bert" in card  # d_qkv != d_m
    assert "## How it was made" in card and "searched, evolved search, KD SuperPLM" in card
    assert "3.21 ms, 17.3x faster than BERT-base (55.6 ms) on Test CPU 9000" in card
    assert "trained for 100 steps" in card and "final loss 1.234" in card
    # the GLUE row: n/a where there is no score, then the average (65.8)
    assert "| 30.0 | 80.0 | 85.0 | 70.0 | n/a | 70.0 | 72.0 | n/a | 60.0 | n/a | 65.8 |" in card
    assert "- squad_v1: EM 33.3, F1 45.6" in card and "- squad_v2: n/a" in card


def test_model_card_of_a_baseline_without_measurements():
    card = model_card(card_entry(name="mlm-default-rule-25x", arch="4/256/1024/4/256", method="default-rule",
                                 latency_ms=None, speedup=None, glue=None, squad=None, further_training=None))
    assert "\n# mlm-default-rule-25x\n" in card
    assert "default-rule BERT baseline" in card and "plain BERT" in card and "import atb" not in card
    assert "n/a ms, n/ax faster" in card and "## GLUE" not in card and "## SQuAD" not in card


def test_write_model_card_writes_readme_and_copy(tmp_path):
    entry = card_entry()
    path = write_model_card(tmp_path / "model", entry, copy_to=tmp_path / "cards" / "kd-evolved-25x.md")
    assert path == tmp_path / "model" / "README.md" and path.read_text() == model_card(entry)
    assert (tmp_path / "cards" / "kd-evolved-25x.md").read_text() == model_card(entry)
    write_model_card(tmp_path / "other", entry)
    assert (tmp_path / "other" / "README.md").exists()


# ---------------------------------------------------------------------------------- fine-tuning resume
def test_finetune_run_reuses_only_scored_results_of_the_same_model(tmp_path, monkeypatch):
    calls = []
    score = {"value": 1.0}

    def fake_glue(model_dir, task, cfg, output_dir=None):
        calls.append((str(model_dir), task))
        return finetune._save({"task": task, "score": score["value"], "metrics": {"accuracy": score["value"]},
                               "config": dataclasses.asdict(cfg), "model_dir": str(model_dir)}, output_dir)

    monkeypatch.setattr(finetune, "finetune_glue", fake_glue)
    out, model = tmp_path / "out", tmp_path / "model"
    first = finetune.run(model, ["rte"], "smoke", out)
    again = finetune.run(model, ["rte"], "smoke", out)
    assert len(calls) == 1 and again == first == {"rte": json.loads((out / "rte.json").read_text())}
    finetune.run(tmp_path / "other-model", ["rte"], "smoke", out)  # another model: not reused
    assert calls[-1] == (str(tmp_path / "other-model"), "rte") and len(calls) == 2
    finetune.run(model, ["rte"], "smoke", out, resume=False)
    assert len(calls) == 3

    score["value"] = None  # an unscored result (data unavailable) is tried again next time
    finetune.run(model, ["rte"], "smoke", out, resume=False)
    finetune.run(model, ["rte"], "smoke", out)
    assert len(calls) == 5
    assert finetune.cached_result(out, "rte", finetune.FinetuneConfig.load("smoke", "rte"), model) is None


def test_cached_result_needs_the_same_budget(tmp_path):
    cfg = finetune.FinetuneConfig.load("smoke", "rte")
    finetune._save({"task": "rte", "score": 50.0, "config": dataclasses.asdict(cfg), "model_dir": "m"}, tmp_path)
    assert finetune.cached_result(tmp_path, "rte", cfg, "m")["score"] == 50.0
    assert finetune.cached_result(tmp_path, "rte", dataclasses.replace(cfg, seed=1), "m") is None
    assert finetune.cached_result(None, "rte", cfg, "m") is None and finetune.cached_result(tmp_path, "cola", cfg, "m") is None


# ---------------------------------------------------------------------------------- further training
@pytest.mark.requires_data
def test_further_train_a_tiny_superplm_then_read_it_back(tmp_path, monkeypatch):
    supernet = save_supernet(tmp_path / "superplm", "mlm")
    cfg = DevelopConfig.load("smoke").train_config_for("mlm", "evolved")
    arch = Arch(2, 32, 128, 2, 32)
    with num_threads(1):
        record = further_train(supernet, arch, cfg, tmp_path / "run")
    model_dir = tmp_path / "run" / "train" / "final"
    assert record["model_dir"] == str(model_dir) and (model_dir / "config.json").exists()
    assert (tmp_path / "run" / "extracted" / "config.json").exists()
    assert f"Extracted from the SuperPLM `{supernet}`" in (tmp_path / "run" / "extracted" / "README.md").read_text()
    assert {"tokenizer.json", "README.md"} <= {p.name for p in model_dir.iterdir()}  # a usable export
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]) == (2, 32, 128)
    assert record["steps"] == cfg.steps == 2 and record["cpu_seconds"] > 0 and record["arch"] == str(arch)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished further-training run was trained again")

    monkeypatch.setattr(train, "Trainer", no_training)  # further_train lives in atb.train
    assert further_train(supernet, arch, cfg, tmp_path / "run") == record  # the cached record, no training
    assert json.loads((tmp_path / "run" / "further_training.json").read_text()) == record


def test_paired_differences_match_speedup_and_the_unselected_key():
    entries = {
        "kd-evolved-25x": {"objective": "kd", "method": "evolved", "speedup_target": 25.0, "avg": 40.0},
        "kd-default-rule-25x": {"objective": "kd", "method": "default-rule", "speedup_target": 25.0, "avg": 38.0},
        "mlm-evolved-25x": {"objective": "mlm", "method": "evolved", "speedup_target": 25.0, "avg": 37.0},
        "mlm-default-rule-25x": {"objective": "mlm", "method": "default-rule", "speedup_target": 25.0, "avg": None},
        "kd-default-rule-50x": {"objective": "kd", "method": "default-rule", "speedup_target": 50.0, "avg": 30.0},
    }
    avg = lambda e: e["avg"]
    claim2 = paired_differences(entries, avg, {"method": "evolved"}, {"method": "default-rule"})
    assert [(p["model"], p["other"], p["difference"]) for p in claim2] == [("kd-evolved-25x", "kd-default-rule-25x", 2.0)]
    claim4 = paired_differences(entries, avg, {"objective": "kd", "method": "evolved"},
                                {"objective": "mlm", "method": "evolved"})
    assert [(p["model"], p["other"], p["difference"]) for p in claim4] == [("kd-evolved-25x", "mlm-evolved-25x", 3.0)]
    assert summarize_pairs(claim2 + claim4) == {"wins": 2, "pairs": 2, "mean_difference": 2.5}
    assert summarize_pairs([]) == {"wins": 0, "pairs": 0, "mean_difference": None}


def test_fast_over_full_divides_each_part_per_objective():
    from atb.develop import fast_over_full

    rows = [{"objective": "kd", "method": "evolved", "search_cpu_seconds": 100.0, "further_training_cpu_seconds": 300.0,
             "total_cpu_seconds": 400.0},
            {"objective": "kd", "method": "fast", "search_cpu_seconds": 25.0, "further_training_cpu_seconds": 100.0,
             "total_cpu_seconds": 125.0},
            {"objective": "kd", "method": "scratch", "search_cpu_seconds": 0.0, "further_training_cpu_seconds": 9.0,
             "total_cpu_seconds": 9.0},
            {"objective": "mlm", "method": "evolved", "search_cpu_seconds": 1.0, "further_training_cpu_seconds": 1.0,
             "total_cpu_seconds": 2.0}]  # no fast MLM model: no ratio
    assert fast_over_full(rows) == {"kd": {"search": 0.25, "further_training": pytest.approx(1 / 3),
                                           "total": pytest.approx(125 / 400)}}
