"""Fine-tuning: budgets from the YAML, SQuAD windowing and post-processing on hand-made inputs, and
smoke-budget runs of GLUE and SQuAD on a tiny random model (those need ``ATB_DATA_DIR``)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import atb
from atb import Arch, AtbBertConfig, AtbBertForMaskedLM, export
from atb import finetune
from atb.data import load_glue, load_squad, load_tokenizer
from atb.finetune import (
    FinetuneConfig,
    answer_token_span,
    finetune_glue,
    finetune_squad,
    majority_baseline,
    postprocess_qa_predictions,
    tokenize_squad,
)
from atb.metrics import glue_score_fn
from conftest import write_scale_config

RESULT_KEYS = {"task", "metrics", "score", "train_examples", "eval_examples", "train_loss", "seconds", "config",
               "model_dir"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random 1/32/64/2/32 atb-bert MLM checkpoint, saved like any extracted sub-model."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "atb"
    AtbBertForMaskedLM(AtbBertConfig.from_arch(Arch(1, 32, 64, 2, 32))).save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------- config
def test_budgets_come_from_the_yaml(tmp_path):
    smoke = FinetuneConfig.load("smoke", "rte")
    assert (smoke.epochs, smoke.max_train_examples, smoke.scale) == (1, 32, "smoke")
    squad = FinetuneConfig.load("smoke", "squad_v1.1")
    assert squad.max_seq_len >= 2 * squad.doc_stride
    paper = FinetuneConfig.load("paper", "squad_v2.0")
    assert (paper.epochs, paper.max_seq_len, paper.doc_stride, paper.batch_size) == (2, 384, 128, 32)
    assert FinetuneConfig.load("paper", "squad_v1.1").epochs == 3
    mini = FinetuneConfig.load("mini", "cola")
    assert (mini.max_train_examples, mini.epochs) == (4000, 3) and mini.max_seq_len == 128 and mini.batch_size == 16
    assert FinetuneConfig.load("mini", "rte").max_train_examples < mini.max_train_examples  # per-task section wins
    bad_stride = write_scale_config(tmp_path / "stride.yaml", finetune={"squad": {"max_seq_len": 128, "doc_stride": 128}})
    with pytest.raises(ValueError, match="doc_stride"):
        FinetuneConfig.load(bad_stride, "squad_v1.1")
    assert FinetuneConfig.load(bad_stride, "rte").doc_stride == 128  # GLUE ignores the stride
    with pytest.raises(ValueError, match="huge.yaml: no such config file"):
        FinetuneConfig.load("huge", "rte")
    with pytest.raises(ValueError, match="unknown task"):
        FinetuneConfig.load("smoke", "squad")
    bad = write_scale_config(tmp_path / "bad.yaml", finetune={"all": {"learning_rate": 0.1}})
    with pytest.raises(ValueError, match=r"bad.yaml: finetune.all.*learning_rate"):
        FinetuneConfig.load(bad, "rte")
    with pytest.raises(ValueError, match=r"finetune.*'squad_v3'"):  # a misspelled task section
        FinetuneConfig.load(write_scale_config(tmp_path / "task.yaml", finetune={"squad_v3": {"epochs": 1}}), "rte")


# ------------------------------------------------------------------------------- SQuAD pre/post-processing
def test_answer_token_span():
    # [CLS] q q [SEP] "The" "quick" "brown" "fox" [SEP]; context "The quick brown fox"
    offsets = [None, None, None, None, (0, 3), (4, 9), (10, 15), (16, 19), None]
    assert answer_token_span(offsets, {"text": ["quick brown"], "answer_start": [4]}, 0) == (5, 6)
    assert answer_token_span(offsets, {"text": ["fox"], "answer_start": [16]}, 0) == (7, 7)
    assert answer_token_span(offsets, {"text": ["ick"], "answer_start": [6]}, 0) == (5, 5)  # inside a token
    assert answer_token_span(offsets[:6] + [None], {"text": ["brown fox"], "answer_start": [10]}, 0) == (0, 0)
    assert answer_token_span(offsets, {"text": [], "answer_start": []}, 0) == (0, 0)  # unanswerable


def test_windows_label_the_answer_or_cls():
    tokenizer = load_tokenizer()
    context = " ".join(f"word{i}" for i in range(60)) + " The answer is Marie Curie. " + " ".join(["filler"] * 60)
    start = context.index("Marie Curie")
    examples = {"id": ["q1"], "question": ["  Who is it?"], "context": [context],
                "answers": [{"text": ["Marie Curie"], "answer_start": [start]}]}
    cfg = FinetuneConfig(max_seq_len=48, doc_stride=16)
    train = tokenize_squad(examples, tokenizer, cfg, train=True)
    assert len(train["input_ids"]) > 3  # the context was cut into several windows
    labelled = 0
    for ids, s, e in zip(train["input_ids"], train["start_positions"], train["end_positions"]):
        assert len(ids) <= 48
        if (s, e) != (0, 0):
            labelled += 1
            assert tokenizer.decode(ids[s:e + 1]) == "marie curie"
    assert labelled >= 1
    dev = tokenize_squad(examples, tokenizer, cfg, train=False)
    assert dev["example_id"] == ["q1"] * len(train["input_ids"])
    spans = []  # the character span of each window's context tokens
    for ids, offsets in zip(dev["input_ids"], dev["offset_mapping"]):
        assert offsets[0] is None and len(offsets) == len(ids)  # [CLS] and the question are not context
        spans.append((next(o for o in offsets if o)[0], next(o for o in reversed(offsets) if o)[1]))
    assert spans[0][0] == 0 and spans[-1][1] == len(context)  # the windows cover the context ...
    assert all(nxt[0] < prev[1] for prev, nxt in zip(spans, spans[1:]))  # ... and overlap


def test_postprocessing_maps_logits_back_to_context_text():
    context = "The quick brown fox jumps"
    window = [None, None, None, (0, 3), (4, 9), (10, 15), (16, 19), (20, 25), None]
    features = [{"example_id": "q", "offset_mapping": window}]
    start = np.zeros(9, dtype=np.float32)
    end = np.zeros(9, dtype=np.float32)
    start[1], start[4] = 9.0, 5.0  # the highest start is in the question: not an answer
    end[6], end[3] = 4.0, 6.0  # an end before the start does not count
    answers, null_odds = postprocess_qa_predictions([{"id": "q", "context": context}], features, [start], [end])
    assert answers == {"q": "quick brown fox"}
    assert null_odds["q"] == pytest.approx(0.0 - (5.0 + 4.0))  # [CLS] start + end = 0
    # max_answer_length 2 rules "quick brown fox" (3 tokens) out; the best 2-token span is "quick brown"
    start2, end2 = start.copy(), end.copy()
    end2[5] = 3.0
    answers, _ = postprocess_qa_predictions([{"id": "q", "context": context}], features, [start2], [end2],
                                            max_answer_length=2)
    assert answers == {"q": "quick brown"}


def test_postprocessing_takes_the_best_window_and_the_smallest_null_score():
    context = "alpha beta gamma delta"
    w1 = [None, None, (0, 5), (6, 10), (11, 16), None]  # alpha beta gamma
    w2 = [None, None, (11, 16), (17, 22), None]  # gamma delta
    features = [{"example_id": "q", "offset_mapping": w1}, {"example_id": "q", "offset_mapping": w2}]
    s1, e1 = np.array([3.0, 0, 2, 0, 0, 0]), np.array([1.0, 0, 0, 2, 0, 0])  # "alpha beta": 4
    s2, e2 = np.array([-1.0, 0, 0, 4, 0]), np.array([0.0, 0, 0, 3, 0])  # "delta": 7
    answers, null_odds = postprocess_qa_predictions([{"id": "q", "context": context}], features, [s1, s2], [e1, e2])
    assert answers == {"q": "delta"}
    assert null_odds["q"] == pytest.approx(min(3.0 + 1.0, -1.0 + 0.0) - 7.0)


# ----------------------------------------------------------------------------------- runs on local data
def check_result(result, task, n_train, n_eval):
    assert RESULT_KEYS <= set(result)
    assert result["task"] == task and result["train_examples"] == n_train and result["eval_examples"] == n_eval
    assert np.isfinite(result["train_loss"]) and result["seconds"] > 0
    assert result["config"]["scale"] == "smoke"


@pytest.mark.requires_data
def test_glue_on_an_atb_checkpoint_and_on_its_plain_bert_export(tiny_model, tmp_path):
    cfg = FinetuneConfig.load("smoke", "rte")
    result = finetune_glue(tiny_model, "rte", cfg, output_dir=tmp_path / "out")
    check_result(result, "rte", 32, 32)
    assert 0.0 <= result["score"] <= 100.0 and result["score"] == result["metrics"]["accuracy"]
    assert json.loads((tmp_path / "out" / "rte.json").read_text()) == result
    dev = result["dev"]["validation"]  # per-example predictions: the score can be recomputed from them
    assert len(dev["predictions"]) == len(dev["labels"]) == 32 and set(dev["predictions"]) <= {0, 1}
    assert glue_score_fn("rte")(np.array(dev["predictions"]), np.array(dev["labels"])) == pytest.approx(result["score"])
    other_seed = finetune_glue(tiny_model, "rte", dataclasses.replace(cfg, seed=1), output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "rte.seed1.json").exists() and other_seed["dev"]["validation"]["labels"] == dev["labels"]
    assert finetune_glue(tiny_model, "rte", cfg)["train_loss"] == result["train_loss"]  # same seed, same run

    bert_dir = export(AtbBertForMaskedLM.from_pretrained(tiny_model), tmp_path / "bert")  # qkv == hidden
    assert json.loads((bert_dir / "config.json").read_text())["model_type"] == "bert"
    stsb = finetune_glue(bert_dir, "stsb", FinetuneConfig.load("smoke", "stsb"))
    check_result(stsb, "stsb", 32, 32)
    assert set(stsb["metrics"]) == {"pearson", "spearman"} and -100 <= stsb["score"] <= 100
    scores = np.array(stsb["dev"]["validation"]["predictions"])  # STS-B: the predicted similarity, a float
    assert scores.dtype == float and glue_score_fn("stsb")(scores, np.array(stsb["dev"]["validation"]["labels"])) == \
        pytest.approx(stsb["score"], abs=1e-4)


@pytest.mark.requires_data
@pytest.mark.parametrize("task", ["mnli", "qqp", "qnli"])
def test_glue_without_offline_data_gives_no_score_and_a_reason(tiny_model, tmp_path, task):
    result = finetune_glue(tiny_model, task, FinetuneConfig.load("smoke", task), output_dir=tmp_path)
    assert result["score"] is None and "not available offline" in result["reason"]
    assert json.loads((tmp_path / f"{task}.json").read_text())["score"] is None


@pytest.mark.requires_data
def test_squad_v11(tiny_model, tmp_path):
    cfg = FinetuneConfig.load("smoke", "squad_v1.1")
    result = finetune_squad(tiny_model, "v1.1", cfg, output_dir=tmp_path)
    check_result(result, "squad_v1.1", 32, 32)
    assert result["train_features"] >= 32 and result["eval_features"] >= 32
    assert 0.0 <= result["metrics"]["em"] <= result["metrics"]["f1"] == result["score"] <= 100.0
    assert json.loads((tmp_path / "squad_v1.1.json").read_text()) == result
    dev = result["dev"]  # each question's EM and F1, whose means are the reported ones
    assert len(dev["ids"]) == len(dev["em"]) == len(dev["f1"]) == 32 and len(set(dev["ids"])) == 32
    assert np.mean(dev["f1"]) == pytest.approx(result["metrics"]["f1"]) and np.mean(dev["em"]) == pytest.approx(
        result["metrics"]["em"])
    assert all(e in (0.0, 100.0) and e <= f + 1e-9 for e, f in zip(dev["em"], dev["f1"]))

    both = finetune_squad(tiny_model, "v1.1", dataclasses.replace(cfg, evaluate_on="dev+heldout"))
    assert both["dev"] == dev and both["score"] == result["score"]  # the same training, dev scored alike
    alone = finetune_squad(tiny_model, "v1.1", dataclasses.replace(cfg, evaluate_on="heldout"))
    assert both["heldout"] == {"metrics": alone["metrics"], "score": alone["score"], "eval_examples": 32}


@pytest.mark.requires_data
def test_squad_v20_is_skipped_offline_but_its_pipeline_runs(tiny_model, monkeypatch):
    cfg = FinetuneConfig.load("smoke", "squad_v2.0")
    skipped = finetune_squad(tiny_model, "v2.0", cfg)
    assert skipped["score"] is None and "not available offline" in skipped["reason"]
    # Stand in v2.0 dev for the missing train split, only to drive the v2.0 code path end to end.
    monkeypatch.setattr(atb.finetune, "load_squad", lambda version, split: load_squad(version, "validation"))
    result = finetune_squad(tiny_model, "v2.0", cfg)
    check_result(result, "squad_v2.0", 32, 32)
    assert {"HasAns_f1", "NoAns_f1", "best_f1", "best_f1_threshold"} <= set(result["metrics"])
    assert result["metrics"]["best_f1"] >= result["score"] - 1e-9  # the dev-optimal threshold is no worse


def seeded_subset(data, n, seed):
    """The test's own copy of the documented subset rule: ``n`` rows shuffled with ``seed`` (all if fewer)."""
    return data if n is None or n >= len(data) else data.shuffle(seed=seed).select(range(n))


@pytest.mark.requires_data
@pytest.mark.parametrize("task,overrides", [
    ("sst2", {}),  # mini budget: the training majority (1) is also the dev majority; its share is not the minority's
    ("rte", {"max_train_examples": 32, "seed": 4}),  # 19 of 32 train rows are 1, but 0 is the dev majority
])
def test_majority_baseline_predicts_the_training_majority_on_the_dev_subset(task, overrides):
    cfg = dataclasses.replace(FinetuneConfig.load("mini", task), **overrides)
    rest, _ = finetune.heldout_split(load_glue(task, "train"), cfg)  # never trained on, whatever a run is scored on
    train = seeded_subset(rest, cfg.max_train_examples, cfg.seed)
    dev = seeded_subset(load_glue(task, "validation"), cfg.max_eval_examples, 0)
    train_counts, dev_counts = np.bincount(train["label"], minlength=2), np.bincount(dev["label"], minlength=2)
    assert train_counts[0] != train_counts[1] and dev_counts[0] != dev_counts[1]  # no ties: one right answer
    majority = int(train_counts.argmax())
    if task == "rte":  # the case that tells the training majority from the dev one
        assert majority != dev_counts.argmax()
    result = majority_baseline(task, cfg)
    assert result["score"] == pytest.approx(100 * dev_counts[majority] / len(dev), abs=1e-9)
    assert result["score"] != pytest.approx(100 * dev_counts[1 - majority] / len(dev), abs=1e-9)
    assert (result["train_examples"], result["eval_examples"]) == (len(train), len(dev))


@pytest.mark.requires_data
def test_majority_baseline_held_out_is_scored_on_the_held_out_examples_and_trained_on_the_rest():
    """The budget ladder's chance level (atb.budgets): the same examples its fine-tunings are scored on."""
    from atb.finetune import glue_splits, heldout_split

    cfg = dataclasses.replace(FinetuneConfig.load("mini", "rte"), evaluate_on="heldout")
    rest, heldout = heldout_split(load_glue("rte", "train"), cfg)
    train, evals = glue_splits("rte", cfg)
    assert list(evals["validation"]["idx"]) == list(heldout["idx"])  # never the dev split
    assert set(train["idx"]) <= set(rest["idx"]) and not set(train["idx"]) & set(heldout["idx"])
    result = majority_baseline("rte", cfg)
    majority = int(np.bincount(train["label"]).argmax())
    assert result["eval_examples"] == len(heldout)
    assert result["score"] == pytest.approx(100 * float(np.mean(np.asarray(heldout["label"]) == majority)))


@pytest.mark.requires_data
def test_majority_baseline_of_f1_and_correlation_tasks():
    cfg = FinetuneConfig.load("mini", "mrpc")
    dev = seeded_subset(load_glue("mrpc", "validation"), cfg.max_eval_examples, 0)
    assert np.bincount(seeded_subset(finetune.heldout_split(load_glue("mrpc", "train"), cfg)[0], cfg.max_train_examples,
                                    cfg.seed)["label"]).argmax() == 1
    p = float(np.mean(dev["label"]))  # always "paraphrase": precision p, recall 1
    result = majority_baseline("mrpc", cfg)
    assert result["metrics"] == pytest.approx({"f1": 100 * 2 * p / (1 + p), "accuracy": 100 * p})
    assert majority_baseline("stsb", FinetuneConfig.load("mini", "stsb"))["score"] == 0.0  # a constant correlates with nothing
    assert majority_baseline("cola", FinetuneConfig.load("mini", "cola"))["score"] == 0.0  # MCC of a constant
    assert majority_baseline("qqp", FinetuneConfig.load("mini", "qqp"))["score"] is None


# ------------------------------------------------------------------------- learning rate on held-out data
@pytest.mark.requires_data
def test_heldout_split_is_disjoint_from_training_and_never_loads_dev(tiny_model, tmp_path, monkeypatch):
    cfg = dataclasses.replace(FinetuneConfig.load("smoke", "rte"), evaluate_on="heldout")
    train = load_glue("rte", "train")
    rest, heldout = finetune.heldout_split(train, cfg)
    assert len(heldout) == 32 and len(rest) + len(heldout) == len(train)  # max_eval_examples caps it
    assert not set(heldout["idx"]) & set(rest["idx"])
    assert finetune.heldout_split(train, dataclasses.replace(cfg, seed=7))[1]["idx"] == heldout["idx"]  # fixed

    real_load = finetune.load_glue
    monkeypatch.setattr(finetune, "load_glue", lambda task, split: real_load(task, split) if split == "train"
                        else pytest.fail(f"the dev split ({split}) was loaded to choose a learning rate"))
    result = finetune_glue(tiny_model, "rte", cfg)
    assert result["eval_examples"] == 32 and sorted(result["dev"]) == ["validation"]
    assert result["dev"]["validation"]["labels"] == list(heldout["label"])
    with pytest.raises(ValueError, match="evaluate_on"):
        dataclasses.replace(cfg, evaluate_on="test")


@pytest.mark.requires_data
def test_choose_lr_takes_the_best_heldout_score(tiny_model, tmp_path, monkeypatch):
    scores = {1e-4: 60.0, 3e-4: 70.0, 1e-3: 65.0}
    seen = []

    def fake_run(model_dir, tasks, scale, output_dir=None, resume=True, seed=None, budgets=None):
        (task,) = tasks
        seen.append((task, budgets[task]["evaluate_on"], Path(output_dir).name))
        if task == "qnli":  # unavailable
            return {task: {"score": None}}
        return {task: {"score": 0.0, "heldout": {"score": scores[budgets[task]["lr"]]}}}  # chosen on held-out only

    monkeypatch.setattr(finetune, "run", fake_run)
    choice = finetune.choose_lr(tiny_model, ["rte", "qnli"], "smoke", list(scores), tmp_path)
    assert choice["rte"] == {"lr": 3e-4, "scores": scores} and choice["qnli"]["lr"] is None
    assert {e for _, e, _ in seen} == {"dev+heldout"} and len({d for _, _, d in seen}) == 3  # one folder per rate
    assert finetune.chosen_budgets(choice) == {"rte": {"lr": 3e-4}}
    with pytest.raises(ValueError, match="candidate"):
        finetune.choose_lr(tiny_model, ["rte"], "smoke", [])


@pytest.mark.requires_data
def test_the_chosen_rates_run_is_the_first_seeds_run(tiny_model, tmp_path, monkeypatch):
    """choose_lr's runs train as dev runs do (the held-out examples are never trained on, whatever a run is scored
    on), so the chosen rate's run, scored on dev too, is adopted as seed 0's and not fine-tuned again."""
    train, evals = finetune.glue_splits("rte", FinetuneConfig.load("smoke", "rte"))
    _, heldout = finetune.heldout_split(load_glue("rte", "train"), FinetuneConfig.load("smoke", "rte"))
    assert not set(train["idx"]) & set(heldout["idx"]) and "heldout" not in evals  # dev runs skip the held-out part

    selection = tmp_path / "seeds" / "lr_selection"
    choice = finetune.choose_lr(tiny_model, ["rte"], "smoke", [1e-4, 1e-3], selection)
    picked = json.loads((selection / f"lr{choice['rte']['lr']:g}" / "rte.json").read_text())
    assert picked["config"]["evaluate_on"] == "dev+heldout" and picked["heldout"]["eval_examples"] == len(heldout)
    assert choice["rte"]["scores"][choice["rte"]["lr"]] == picked["heldout"]["score"]
    assert finetune.adopt_chosen_runs(choice, selection, tmp_path / "seeds") == [tmp_path / "seeds" / "rte.json"]
    assert finetune.adopt_chosen_runs(choice, selection, tmp_path / "seeds") == []  # already there

    calls = []
    real = finetune.finetune_glue
    monkeypatch.setattr(finetune, "finetune_glue", lambda *a, **k: calls.append(a[2].seed) or real(*a, **k))
    out = finetune.run_seeds(tiny_model, ["rte"], "smoke", tmp_path / "seeds", seeds=2,
                             budgets=finetune.chosen_budgets(choice))
    assert calls == [1]  # seed 0 is the choice's run
    assert out["rte"][0]["dev"] == picked["dev"] and out["rte"][0]["score"] == picked["score"]
    fresh = finetune.run(tiny_model, ["rte"], "smoke", tmp_path / "fresh", budgets=finetune.chosen_budgets(choice))
    assert fresh["rte"]["dev"] == picked["dev"]  # a plain dev run at that rate and seed trains alike
    assert fresh["rte"]["config"]["evaluate_on"] == "dev" and "heldout" not in fresh["rte"]
    alone = finetune.finetune_glue(tiny_model, "rte", finetune.seed_config(
        "smoke", "rte", budgets={"rte": {"lr": choice["rte"]["lr"], "evaluate_on": "heldout"}}))
    assert picked["heldout"]["metrics"] == alone["metrics"]  # scored held out as a "heldout" run scores


@pytest.mark.requires_data
def test_run_seeds_applies_per_task_budgets(tiny_model, tmp_path):
    out = finetune.run_seeds(tiny_model, ["rte"], "smoke", tmp_path, seeds=1, budgets={"rte": {"lr": 5e-4}})
    assert out["rte"][0]["config"]["lr"] == 5e-4 and out["rte"][0]["config"]["evaluate_on"] == "dev"


@pytest.mark.slow
@pytest.mark.requires_data
def test_jobs_in_two_processes_give_what_one_process_gives(tiny_model, tmp_path):
    jobs = finetune.seed_jobs(tiny_model, ["rte", "stsb"], "smoke", tmp_path / "two", seeds=2)
    assert [(j.task, j.seed) for j in jobs] == [("rte", 0), ("rte", 1), ("stsb", 0), ("stsb", 1)]
    two = finetune.run_jobs(jobs, workers=2)
    one = finetune.run_jobs(finetune.seed_jobs(tiny_model, ["rte", "stsb"], "smoke", tmp_path / "one", seeds=2))
    # seeded runs: the process does not matter, up to float summation order (1 thread there, 2 here)
    assert [r["dev"] for r in two[:2]] == [r["dev"] for r in one[:2]]  # RTE: the predicted classes
    for a, b in zip(two[2:], one[2:]):  # STS-B: predicted similarities
        assert a["dev"]["validation"]["predictions"] == pytest.approx(b["dev"]["validation"]["predictions"], rel=1e-3)
    assert [r["train_loss"] for r in two] == pytest.approx([r["train_loss"] for r in one], rel=1e-5)
    cached = finetune.run_seeds(tiny_model, ["rte", "stsb"], "smoke", tmp_path / "two", seeds=2)
    assert [r["seconds"] for t in ("rte", "stsb") for r in cached[t]] == [r["seconds"] for r in two]  # read back


# ------------------------------------------------------------------------------------------- the engine
def _features(lengths):
    import datasets

    return datasets.Dataset.from_dict({"input_ids": [[101] + [7] * (n - 2) + [102] for n in lengths],
                                       "attention_mask": [[1] * n for n in lengths], "labels": [i % 2 for i in
                                                                                               range(len(lengths))]})


def test_length_grouped_batches_cover_the_epoch_and_pad_less(tmp_path):
    from transformers import DataCollatorWithPadding

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(4, 120, size=400)]
    features, collate = _features(lengths), DataCollatorWithPadding(load_tokenizer())
    cfg = dataclasses.replace(FinetuneConfig(batch_size=16), seed=3)

    def padded(c: FinetuneConfig) -> tuple[int, list[int]]:
        batches = list(finetune.train_batches(features, collate, c))
        ids = sorted(int(x) for b in batches for x in b["labels"].shape)  # shapes only: batch sizes
        return sum(b["input_ids"].numel() for b in batches), ids

    grouped, shuffled = padded(cfg), padded(dataclasses.replace(cfg, group_by_length=False))
    assert grouped[1] == shuffled[1] and sum(grouped[1]) == len(lengths)  # every example, once, in batches of 16
    assert grouped[0] < 0.7 * shuffled[0] and grouped[0] >= sum(lengths)  # far less padding
    first = [b["input_ids"].shape for b in finetune.train_batches(features, collate, cfg)]
    again = [b["input_ids"].shape for b in finetune.train_batches(features, collate, cfg)]
    other = [b["input_ids"].shape for b in finetune.train_batches(features, collate, dataclasses.replace(cfg, seed=4))]
    assert first == again and first != other  # a function of the seed


def test_length_grouped_batches_come_in_a_random_order_not_a_sweep():
    """Hugging Face's order sweeps each mega-batch from its longest batch to its shortest, a curriculum by length
    that cost the teacher STS-B on a 1,000-example subset; ``ShuffledLengthBatches`` keeps the same batches (same
    padding) and visits them in a random order, a fresh one each epoch."""
    from torch.utils.data import BatchSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(4, 120, size=1000)]
    hf = list(BatchSampler(LengthGroupedSampler(16, lengths=lengths, generator=torch.Generator().manual_seed(0)),
                           16, drop_last=False))
    sampler = finetune.ShuffledLengthBatches(lengths, 16, torch.Generator().manual_seed(0))
    ours, next_epoch = list(sampler), list(sampler)
    assert len(ours) == len(sampler) == len(hf) == 63
    assert sorted(map(sorted, ours)) == sorted(map(sorted, hf))  # the same batches: the same padding

    def rises(batches: list[list[int]]) -> int:  # steps whose batch is longer than the one before
        widths = [max(lengths[i] for i in b) for b in batches]
        return sum(b > a for a, b in zip(widths, widths[1:]))

    assert rises(hf) <= 5  # 4 mega-batches of 15 batches, each swept longest first (and its longest swapped ahead)
    assert rises(ours) >= 20 and ours != next_epoch  # random order, drawn again each epoch


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_fine_tuning_computes_its_matmuls_in_the_configured_precision(tiny_model, precision, dtype):
    """Autocast must reach the model's matmuls (a run in bf16 that computes in fp32 would look fine and gain nothing),
    while the weights stay fp32."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    seen = []
    query = next(m for name, m in model.named_modules() if name.endswith("query"))
    query.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype))
    cfg = FinetuneConfig(precision=precision, batch_size=8, epochs=1)
    finetune.train_model(model, _features([5, 9, 12, 7] * 4), DataCollatorWithPadding(load_tokenizer()), cfg)
    assert seen and set(seen) == {dtype}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_a_regression_is_predicted_in_fp32_because_bf16_rounds_small_differences_away(tiny_model):
    """A model that learned little predicts STS-B scores within a few thousandths of the mean: in bf16 (8 significant
    bits) they round to one value, Spearman 0, while fp32 keeps their order. So regression tasks are predicted in fp32
    (finetune.prediction_precision); classification keeps the fine-tuning's precision (an argmax survives bf16)."""
    import datasets
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    assert finetune.prediction_precision("stsb", "bf16") == "fp32" == finetune.prediction_precision("stsb", "auto")
    assert finetune.prediction_precision("sst2", "bf16") == "bf16" and finetune.prediction_precision("cola", "auto") == "auto"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1).eval()
    with torch.no_grad():  # a collapsed regressor: the mean, 2.2, plus differences of a few thousandths
        model.classifier.weight.mul_(0.5)
        model.classifier.bias.fill_(2.2)
    rng = np.random.default_rng(0)
    ids = [[101, *rng.integers(1000, 30000, size=n).tolist(), 102] for n in (5, 9, 12, 7, 20, 14, 6, 11)]
    features = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]})
    collate = DataCollatorWithPadding(load_tokenizer())
    bf16 = np.stack(finetune.predict(model, features, collate, 4, "bf16")["logits"])[:, 0]
    fp32 = np.stack(finetune.predict(model, features, collate, 4, "fp32")["logits"])[:, 0]
    assert len(np.unique(fp32)) == len(features) and np.ptp(fp32) < 1 / 64  # distinct, within one bf16 step of 2.2
    assert len(np.unique(bf16)) < len(np.unique(fp32))  # bf16 merged some of them


def test_predict_evaluates_sorted_by_length_and_returns_the_features_order(tiny_model):
    """Length-sorted evaluation batches change the work, not the outputs: each feature's logits equal those of the
    feature evaluated alone (no padding), in the features' order, token outputs cut to the real tokens."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, DataCollatorWithPadding

    collate = DataCollatorWithPadding(load_tokenizer())
    lengths = [5, 30, 9, 17, 3, 30, 12]
    features = _features(lengths).remove_columns("labels")
    for auto, fields, per_token in ((AutoModelForSequenceClassification, ("logits",), False),
                                    (AutoModelForQuestionAnswering, ("start_logits", "end_logits"), True)):
        torch.manual_seed(0)
        model = auto.from_pretrained(tiny_model).eval()
        out = finetune.predict(model, features, collate, 3, fields=fields, per_token=per_token)
        for i, n in enumerate(lengths):
            with torch.no_grad():
                alone = model(**collate([features[i]]))
            for name in fields:
                expected = getattr(alone, name)[0].numpy()
                assert out[name][i].shape == ((n,) if per_token else (2,))
                np.testing.assert_allclose(out[name][i], expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------- quiet loading
def test_a_head_swap_loads_without_the_load_report_but_lost_encoder_weights_still_warn(tiny_model, tmp_path,
                                                                                       capfd, recwarn):
    from transformers import AutoModelForSequenceClassification

    model = finetune.load_with_new_head(AutoModelForSequenceClassification, tiny_model, num_labels=2)
    assert model.config.num_labels == 2
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and "UNEXPECTED" not in out + err and not recwarn.list
    from transformers.utils import logging as hf_logging
    assert hf_logging.get_logger("transformers.modeling_utils").level != hf_logging.ERROR  # restored

    broken = tmp_path / "broken"  # a checkpoint that lost an encoder weight: news, not chatter
    full = AtbBertForMaskedLM.from_pretrained(tiny_model)
    state = {k: v for k, v in full.state_dict().items() if "layer.0.attention" not in k}
    full.save_pretrained(broken, state_dict=state)
    with pytest.warns(UserWarning, match="missing from the checkpoint .*layer.0.attention"):
        finetune.load_with_new_head(AutoModelForSequenceClassification, broken, num_labels=2)
