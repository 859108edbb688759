"""Every numbered notebook runs end to end at smoke scale under papermill (no error cell), writes only into
the smoke folders of the roots it is given, and leaves the committed study (``results/mini/``) byte for byte
as it was. The runner itself is tested on tiny notebooks in ``test_reproduce.py``."""

import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from atb import develop as develop_module
from atb.develop import COMPARISONS, GLUE_COLUMNS, LEARNED, DevelopConfig
from atb.reproduce import MAX_NOTEBOOK_BYTES, MAX_OUTPUT_LINES, ROOT, notebooks, output_lines, run
from test_comparison import check_comparison_contract


def tree_hashes(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path`` (empty when it does not exist)."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_all_notebooks_run_at_smoke_scale(tmp_path):
    committed = tree_hashes(ROOT / "results")  # results/mini/ and every other scale's committed folder
    assert any(name.startswith("mini/") for name in committed), "the committed mini study is missing"
    record = run("smoke", ROOT / "notebooks", tmp_path / "results", runs_root=tmp_path / "runs")
    assert set(record["notebooks"]) == {nb.name for nb in notebooks(ROOT / "notebooks")}
    assert all(v["status"] == "ok" for v in record["notebooks"].values())
    results = tmp_path / "results" / "smoke"
    for nb in notebooks(ROOT / "notebooks"):
        executed = nbformat.read(results / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{nb.name}: {errors[0]['ename']}"
        assert executed.metadata.papermill.parameters == {"scale": "smoke"}
        check_quiet(results / "notebooks" / nb.name, record["notebooks"][nb.name])
    check_result_contracts(results)
    check_portable(results, tmp_path / "runs")
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["smoke"]
    after = tree_hashes(ROOT / "results")
    changed = sorted(name for name in committed.keys() | after.keys() if committed.get(name) != after.get(name))
    assert not changed, f"a smoke run changed the repository's results/: {changed}"


def check_portable(results, runs_root):
    """Committed records name run folders from ``runs/`` (:meth:`atb.layout.Layout.write_record`), never by the path
    of the machine that ran the study: a clone's notebooks and benchmarks find them in its own ``runs/``."""
    records = sorted(results.glob("*.json"))
    leaking = [p.name for p in records if str(runs_root) in p.read_text()]
    assert not leaking, f"records naming the machine's runs folder {runs_root}: {leaking}"
    assert any('"runs/smoke/' in p.read_text() for p in records)


def test_notebooks_read_and_write_records_through_the_layout():
    """Every record a notebook reads or writes goes through ``layout.read_record`` / ``layout.write_record``, which
    keep run folders portable; ``json.loads`` or ``write_json_atomic`` on a record would bypass that."""
    for nb in notebooks(ROOT / "notebooks"):
        code = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
        assert "json.loads(" not in code and "write_json_atomic(" not in code, nb.name


def check_quiet(path, entry):
    """A reading group reads the executed copy: no library chatter (load reports of head swaps), no progress text
    from worker processes, at most 300 lines and 1 MB (issue #24); the record says how much it saved."""
    text = path.read_text()
    assert "LOAD REPORT" not in text, f"{path.name}: a transformers load report reached the notebook"
    lines = output_lines(path)
    assert lines <= MAX_OUTPUT_LINES, f"{path.name}: {lines} lines of text output (at most {MAX_OUTPUT_LINES})"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    assert entry["output_lines"] == lines and entry["output_bytes"] > 0


def check_result_contracts(results):
    """The records other tools read (issue contracts): keys present, unavailable tasks null with a reason."""
    search = json.loads((results / "03_search.json").read_text())
    assert {"objective", "speedup", "method", "best_arch", "best_fitness", "predicted_latency_ms", "cpu_seconds",
            "history"} <= set(search["searches"][0]) and "inherited_vs_trained" in search["kendall"]
    develop = json.loads((results / "04_further_training.json").read_text())
    assert develop["costs"] and all({"latency_ms", "speedup", "further_training"} <= set(m)
                                    for m in develop["models"].values())
    glue_record = json.loads((results / "05_glue.json").read_text())
    cfg = DevelopConfig.load(results.name)
    glue, (seeds, control_seeds) = glue_record["models"], cfg.seed_counts(cfg.glue_tasks)
    assert glue.keys() == develop["models"].keys() and glue_record["seeds"] == seeds
    # the developed models run the decision tasks (every calibrated task where none passes), the calibration all
    decided = [develop_module.column_task(c) for c in glue_record["decision_tasks"]["tasks"]]
    assert glue_record["developed_tasks"] == (list(dict.fromkeys(decided)) or cfg.glue_tasks_run)
    assert glue_record["calibration_tasks"] == cfg.glue_tasks_run
    assert glue_record["control_seeds"] == control_seeds
    for entry in glue.values():
        assert set(entry["tasks"]) == set(GLUE_COLUMNS) and entry["kind"] in ("searched", "baseline")
        assert all(entry["tasks"][c] is None and entry["unavailable"][c] for c in entry["unavailable"])
        assert entry["avg"] is not None and entry["seeds"] == seeds
        check_intervals(entry["tasks_ci95"], entry["tasks"])  # seed means, each with its interval
        control = entry["control"]
        assert set(control["tasks"]) == set(GLUE_COLUMNS) and control["avg"] is not None and control["seeds"] == control_seeds
        check_intervals(control["tasks_ci95"], control["tasks"])
        check_difference(entry["vs_control"])
    check_comparisons(glue_record["intervals"], glue)
    check_calibration(glue_record["calibration"], cfg.glue_tasks)
    check_decision(glue_record, GLUE_COLUMNS)
    squad_record = json.loads((results / "06_squad.json").read_text())
    squad, (seeds, control_seeds) = squad_record["models"], cfg.seed_counts(cfg.squad_tasks)
    decision = squad_record["decision"]
    assert decision["decides"] == (decision["reason"] is None) and decision["min_f1"] == cfg.squad_min_f1
    # the developed models are fine-tuned on SQuAD only where the calibration row says it decides
    assert squad.keys() == (glue.keys() if decision["decides"] else set()) and squad_record["seeds"] == seeds
    for s in squad.values():
        assert {"em", "f1"} <= set(s["squad_v1"]) and ("squad_v2" in s) and s["seeds"] == seeds
        assert s["control"]["seeds"] == control_seeds
        lo, hi = s["tasks_ci95"]["squad_v1"]["f1"]
        assert lo <= hi and {"em", "f1"} <= set(s["control"]["squad_v1"])
        check_difference(s["vs_control"])
    check_comparisons(squad_record["intervals"], squad)
    check_calibration(squad_record["calibration"], ["squad_v1"])
    assert (results / "07_accuracy_latency.png").exists() and (results / "model_cards").is_dir()
    assert "| 6 |" in (results / "REPORT.md").read_text()
    check_efficientbert_contract(json.loads((results / "08_efficientbert.json").read_text()), cfg)
    check_autobert_zero_contract(json.loads((results / "09_autobert_zero.json").read_text()), cfg)
    check_comparison_contract(json.loads((results / "10_comparison.json").read_text()))
    check_deployment_contract(json.loads((results / "11_deployment.json").read_text()), develop["models"])
    check_pareto_contract(json.loads((results / "12_pareto.json").read_text()), develop["models"])
    assert "## Beyond the paper" in (results / "REPORT.md").read_text()
    assert "One search for the whole front" in (results / "REPORT.md").read_text()
    claims = json.loads((results / "report.json").read_text())["claims"]
    assert set(claims) == {str(n) for n in range(12)}
    assert all({"verdict", "difference", "ci95", "n", "reason"} <= set(c) for c in claims.values())
    assert all(c["verdict"] in ("not testable", "partly", "not reproduced") for c in claims.values())  # smoke


def check_deployment_contract(record, developed):
    """Notebook 11 (issue #25): per installed runtime every model's latency, speedup over BERT-base under that runtime
    (BERT-base itself 1) and spread, its output check; int8's accuracy cost with its interval."""
    from atb.deployment import RUNTIMES, available

    assert set(record["runtimes"]) == {r for r in RUNTIMES if available(r)} and not record["skipped"]
    for runtime, entry in record["runtimes"].items():
        models = entry["models"]
        assert {"BERT-base", "KD-S4"} == set(models), runtime  # smoke times no developed model (configs/smoke.yaml)
        assert models["BERT-base"]["speedup"] == 1.0
        assert all(m["latency_ms"] > 0 and m["spread"][0] <= m["speedup"] <= m["spread"][1] and m["check"]
                   for m in models.values())
    int8 = record["int8_accuracy"]
    assert int8["task"] == "sst2" and int8["ci95"][0] <= int8["difference"] <= int8["ci95"][1]
    assert set(int8["models"]) == set(developed)


def check_pareto_contract(record, developed):
    """Notebook 12 (issue #25): both searches with every seed at equal evaluations, the hypervolume differences with
    their intervals over seeds, the developed front points (or the targets where both searches picked alike)."""
    from atb.pareto import ParetoConfig

    cfg = ParetoConfig.load("smoke")
    assert record["seeds"] == list(cfg.seeds) and [s["seed"] for s in record["searches"]["pareto"]] == list(cfg.seeds)
    assert all(s["evaluations"] == record["evaluations_per_search"] and s["front"] for s in record["searches"]["pareto"])
    assert sum(s["evaluated"] for s in record["searches"]["evolved"]) == record["evaluations_per_search"] * len(cfg.seeds)
    for key in ("hypervolume", "hypervolume_windows"):
        lo, hi = record[key]["ci95"]
        assert lo <= record[key]["difference"] <= hi and record[key]["n"] == len(cfg.seeds)
    chosen = record["developed"]
    assert chosen["tasks"] == list(cfg.tasks)
    assert set(chosen["same_pick"]) | {f"{m['speedup_target']:g}" for m in chosen["models"].values()} == \
        {f"{s:g}" for s in record["speedups"]}
    assert all(m["method"] == "pareto" and m["latency_ms"] > 0 for m in chosen["models"].values())
    pairs = (chosen["intervals"].get("pareto_vs_evolved") or {}).get("pairs", [])
    assert all(evolved in developed for _, evolved in pairs)  # each front point beside notebook 04's evolved model
    assert set(chosen["rows"]) == set(chosen["models"]) | {evolved for _, evolved in pairs}


def check_calibration(entry, columns):
    """The teacher beside its untrained control (issue #23): both scored, a paired interval per scored column."""
    assert entry["kind"] == "calibration" and entry["arch"] == entry["control"]["arch"] == "6/384/1536/12/384"
    assert entry["vs_control_by_task"], "no column of the calibration was scored"
    assert all(c.split(".")[0] in columns or c in columns for c in entry["vs_control_by_task"])
    for interval in entry["vs_control_by_task"].values():
        assert interval["ci95"] is None or interval["ci95"][0] <= interval["difference"] <= interval["ci95"][1]


def check_decision(record, columns):
    """The decision tasks (issue #23): each kept column learned by the teacher (interval above 0), every other column
    of the average left out with a reason, and every comparison decided on the kept columns only."""
    decision = record["decision_tasks"]
    assert set(decision["tasks"]).isdisjoint(decision["left_out"]) and all(decision["left_out"].values())
    assert set(decision["tasks"]) | set(decision["left_out"]) <= set(columns)
    for column in decision["tasks"]:
        assert record["calibration"]["vs_control_by_task"][column]["ci95"][0] > 0
    assert record["decision_intervals"].keys() == record["intervals"].keys()
    for interval in record["decision_intervals"].values():
        assert set(interval["columns"]) <= set(decision["tasks"])
        assert interval["ci95"] is not None or interval["reason"]


def check_intervals(intervals, scores):
    """``{column: [lo, hi]}`` for every scored column (``None`` for the others), lo <= hi."""
    assert set(intervals) == set(scores)
    for column, score in scores.items():
        assert (intervals[column] is None) == (score is None), column
        if score is not None:
            assert intervals[column][0] <= intervals[column][1]


def check_difference(difference):
    """A paired difference with its interval: ``{"difference", "ci95": [lo, hi], "n"}``."""
    assert {"difference", "ci95", "n"} <= set(difference)
    lo, hi = difference["ci95"]
    assert lo <= hi and difference["n"] >= 1


def check_comparisons(intervals, models):
    assert set(intervals) == {*COMPARISONS, LEARNED}
    assert len(intervals[LEARNED]["pairs"]) == len(models)
    if models:  # SQuAD without developed models (the teacher does not learn it): every interval says why
        check_difference(intervals[LEARNED])
    for interval in intervals.values():
        assert {"difference", "ci95", "n", "pairs"} <= set(interval)
        if interval["ci95"] is None:
            assert interval["reason"]
        else:
            check_difference(interval)


def check_efficientbert_contract(record, cfg):
    """08_efficientbert.json (issue #13): the published model's ratios beside the paper's, three search stages with
    their best expressions, and each developed model with its expressions, speedup, GLUE tasks and control."""
    published = record["published"]
    assert {"params", "params_ratio", "speedup"} <= set(published)
    assert published["paper"] == {"params_ratio": 6.9, "speedup": 4.4}
    stages = record["search"]["stages"]
    assert [s["stage"] for s in stages] == [1, 2, 3]
    for s in stages:
        assert {"expressions", "fitness"} <= set(s["best"]) and s["history"] and s["cpu_seconds"] >= 0
    assert len(stages[0]["best"]["expressions"]) == len(stages[2]["best"]["expressions"])  # one FFN per layer
    assert set(record["models"]) == {"efficientbert-searched", "efficientbert-gelu"}
    seeds, control_seeds = cfg.seed_counts(cfg.glue_tasks)
    for m in record["models"].values():
        assert {"expressions", "speedup", "tasks", "avg", "control"} <= set(m) and m["speedup"] > 0
        assert set(m["tasks"]) == set(GLUE_COLUMNS) and m["avg"] is not None and m["seeds"] == seeds
        assert m["control"]["avg"] is not None and m["control"]["seeds"] == control_seeds
        check_difference(m["vs_control"])
    check_difference(record["searched_vs_gelu"]["glue"])


def check_autobert_zero_contract(record, cfg):
    """09_autobert_zero.json (issue #14): the published pattern's size and speed, the search's best layers and fitness,
    its history and op priorities, random mutation at equal cost, and every developed model with its control."""
    assert {"params", "speedup"} <= set(record["published"]) and record["published"]["speedup"] > 0
    search = record["search"]
    assert {"layers", "fitness"} <= set(search["best"]) and search["history"] and search["cpu_seconds"] >= 0
    assert search["op_priority"] and {"best_fitness", "cpu_seconds"} <= set(search["random_mutation"])
    runs = search["runs"]
    assert {r["evaluated"] for r in runs if r["mutation"] == "op-priority"} == \
        {r["evaluated"] for r in runs if r["mutation"] == "random"}  # equal search cost
    assert {"autobert-zero-searched", "autobert-zero-standard"} <= set(record["models"])
    seeds, control_seeds = cfg.seed_counts(cfg.glue_tasks)
    for m in record["models"].values():
        assert {"layers", "speedup", "tasks", "avg", "control"} <= set(m) and m["speedup"] > 0
        assert set(m["tasks"]) == set(GLUE_COLUMNS) and m["avg"] is not None and m["seeds"] == seeds
        assert m["control"]["avg"] is not None and m["control"]["seeds"] == control_seeds
        check_difference(m["vs_control"])
    check_difference(record["searched_vs_standard"]["glue"])


def test_every_figure_a_notebook_saves_is_also_shown_inline():
    """A figure goes to results/<scale>/ as PNG (GitHub shows it) and into the notebook (a reader steps through it)."""
    for nb in notebooks(ROOT / "notebooks"):
        code = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
        saved, shown = code.count("save_figure("), code.count("display(Image(")
        assert saved <= shown, f"{nb.name}: {saved} figures saved, {shown} shown"
