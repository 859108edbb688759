"""Downstream fine-tuning and evaluation: GLUE and SQuAD v1.1 / v2.0, for atb-bert and plain BERT checkpoints.

    python -m atb.finetune runs/extracted/kd-s4 --scale mini --tasks rte squad_v1.1 --output-dir results/kd-s4

The shape of Hugging Face's ``run_glue.py`` / ``run_qa.py``, much shorter: one small training loop
(AdamW, linear warm-up and decay, gradient clipping at 1.0; :mod:`atb.engine`'s precision and fused optimizer),
dynamic padding over batches of similar lengths (``group_by_length``; evaluation sorted by length), official metrics
(:mod:`atb.metrics`). Models load through ``AutoModelFor*.from_pretrained``, so an exported plain-BERT
checkpoint and an ``atb-bert`` one (``qkv != hidden``; registered by ``import atb``, which importing this
module does) take the same path; the task head (pooler + classifier, or the span head) is freshly
initialised under the seed.

Budgets (learning rate, epochs, how many examples...) live in the ``finetune`` section of
``configs/<scale>.yaml``, never in code: ``FinetuneConfig.load(scale, task)``.

**Seeds.** :func:`run_seeds` fine-tunes every task once per seed (``cfg.seed``, ``cfg.seed + 1``, ...; the seed
draws the training subset, the data order, the new head and dropout, while the dev subset stays fixed), and caches
each (task, seed) result as its own file (:func:`result_path`; seed 0 keeps the single-seed name ``<task>.json``).
Every scored result also holds the dev **per-example** predictions (``dev``: GLUE the predicted class or score and
the label of each example, per dev split; SQuAD each question's EM and F1), so that intervals over seeds and dev
examples (:mod:`atb.stats`) can be computed later without fine-tuning again.

Data that is not available (offline: MNLI, QQP, the QNLI train split, SQuAD v2.0 train) gives a result
with ``score: None`` and the reason, never an exception or a made-up number; it is evaluated whenever the
hub or a local copy provides the data. For SQuAD v2.0 offline we deliberately do *not* substitute a
model fine-tuned on v1.1: such a model never learns to point at [CLS] for "no answer", so its v2.0 number
would be comparable with nothing in the literature (EfficientBERT's 74.5 F1 is trained on v2.0).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
    set_seed,
)
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from . import config, engine
from .data import GLUE_TASK_INFO, GLUE_TASKS, DataUnavailableOffline, load_glue, load_squad, load_tokenizer
from .data.glue import glue_task_info
from .metrics import glue_metrics, glue_score, glue_score_fn, squad_evaluate, squad_question_scores
from .progress import bar as progress_bar, libraries_quiet, no_load_report, silence_this_process
from .records import write_json_atomic
from .stats import ModelRuns

SQUAD_TASKS = ("squad_v1.1", "squad_v2.0")
# The sub-sections of a scale's `finetune`: budgets for every task, for GLUE, for SQuAD, then per task.
BUDGET_GROUPS = ("all", "glue", "squad", *GLUE_TASKS, *SQUAD_TASKS)
# Evaluation subsets (max_eval_examples) are drawn with a fixed seed, so that runs with different
# training seeds, and different models, are scored on the same questions.
EVAL_SUBSET_SEED = 0
# Evaluation batches (no gradients, sorted by length: :func:`predict`); Hugging Face's `per_device_eval_batch_size`
EVAL_BATCH_SIZE = 64
EVALUATE_ON = ("dev", "heldout", "dev+heldout")
# The held-out part of a train split: this fraction of it, at most max_eval_examples (or HELDOUT_MAX), drawn with its
# own fixed seed and never trained on, whatever a run is scored on: so a run scored on dev and one scored held out
# train alike, and the run that chose a learning rate (scored on both) is also the reported run of its seed.
HELDOUT_FRACTION, HELDOUT_MAX, HELDOUT_SEED = 0.2, 500, 12345
HELDOUT = "heldout"  # the key of the held-out examples among a "dev+heldout" run's evaluation sets and in its result


# ------------------------------------------------------------------------------------------- config
@dataclass
class FinetuneConfig:
    """One fine-tuning run's budget. Defaults are BERT's usual GLUE settings; scales override them."""

    lr: float = 2e-5
    epochs: int = 3
    batch_size: int = 32
    max_seq_len: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    max_train_examples: int | None = None  # a seeded random subset of the train split (None: all)
    max_eval_examples: int | None = None  # per evaluation split (None: all)
    # SQuAD only
    doc_stride: int = 128  # tokens shared by consecutive windows over a long context
    max_answer_length: int = 30  # in tokens
    n_best: int = 20  # start and end candidates per window
    null_threshold: float = 0.0  # v2.0: answer "" when null score - best span score > this
    # "dev": score on the dev split (the reported numbers); "heldout": on examples held out of the *train* split
    # (:func:`heldout_split`), to choose a budget without ever looking at dev (atb.budgets, atb.rerank);
    # "dev+heldout": both, the held-out score beside the dev one (``result["heldout"]``): :func:`choose_lr` chooses a
    # rate on it, and the chosen rate's run is then the reported run of its seed (:func:`adopt_chosen_runs`)
    evaluate_on: str = "dev"
    # how the steps are computed (atb.engine; defaults from the scale's `engine` section)
    precision: str = "auto"
    fused_optimizer: bool = True
    # batches of similar lengths (Hugging Face's `group_by_length`): random mega-batches of up to 50 batches, each
    # sorted by length, so dynamic padding pads little (short-sentence tasks such as SST-2 gain most); False: the
    # uniformly shuffled batches of the earlier study
    group_by_length: bool = True
    # with group_by_length, visit those batches in a random order (True). False is Hugging Face's order: each
    # mega-batch swept from its longest batch to its shortest, which on a 1,000-example subset is 4 sweeps per epoch
    # and a curriculum by length that cost the teacher much of its STS-B score at the mini budget
    # (benchmarks/bench_batch_order.py, results/mini/bench_batch_order.json)
    shuffle_batches: bool = True
    scale: str | None = None  # the scale whose budget this is, for the record

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_seq_len", "max_answer_length", "n_best"):
            if getattr(self, name) < 1:
                raise ValueError(f"FinetuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"FinetuneConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.evaluate_on not in EVALUATE_ON:
            raise ValueError(f"FinetuneConfig.evaluate_on must be one of {EVALUATE_ON}, got {self.evaluate_on!r}")
        engine.check_engine(self.precision, self.fused_optimizer, "finetune")
        for name in ("group_by_length", "shuffle_batches"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"FinetuneConfig.{name} must be true or false, got {getattr(self, name)!r}")

    def check_squad(self) -> FinetuneConfig:
        """SQuAD windows: the question takes part of every window, so the stride must fit in half of it."""
        if not 0 < self.doc_stride <= self.max_seq_len // 2:
            raise ValueError(f"FinetuneConfig.doc_stride must be in (0, max_seq_len / 2], got {self.doc_stride} "
                             f"for max_seq_len {self.max_seq_len} (scale {self.scale})")
        return self

    @classmethod
    def load(cls, scale: str | Path, task: str) -> FinetuneConfig:
        """The budget of ``task`` (a GLUE task or ``squad_v1.1`` / ``squad_v2.0``) at ``scale``: the
        ``finetune`` section of ``configs/<scale>.yaml`` (or a YAML path), merged in order ``all``, then
        ``glue`` or ``squad``, then the task's own sub-section (e.g. ``rte``, ``squad_v2.0``)."""
        if task not in GLUE_TASKS and task not in SQUAD_TASKS:
            raise ValueError(f"unknown task {task!r}; valid: {', '.join(GLUE_TASKS + SQUAD_TASKS)}")
        settings, file = config.section(scale, "finetune")
        where = file.where("finetune")
        config.check_keys(settings, BUDGET_GROUPS, where)
        known = config.fields_of(cls, exclude=("scale",))
        for group, values in settings.items():
            config.check_keys(values or {}, known, f"{where}.{group}")
        merged: dict[str, Any] = {}
        for group in ("all", "squad" if task in SQUAD_TASKS else "glue", task):
            merged.update(settings.get(group) or {})
        cfg = cls(**merged, scale=file.scale)
        return cfg.check_squad() if task in SQUAD_TASKS else cfg


# ---------------------------------------------------------------------------------------------- GLUE
def finetune_glue(model_dir: str | Path, task: str, cfg: FinetuneConfig, output_dir: str | Path | None = None) -> dict:
    """Fine-tune ``model_dir`` on GLUE ``task`` and evaluate it on the dev split(s).

    Returns ``{"task", "metrics", "score", "train_examples", "eval_examples", "train_loss", "seconds",
    "config", "model_dir", "dev"}`` (``score`` = :func:`atb.metrics.glue_score`; ``dev``: per dev split,
    ``{"predictions": [...], "labels": [...]}``, the predicted class, or score for STS-B, of every example), or
    ``score: None`` with a ``reason`` if the data is unavailable. Written to :func:`result_path` if ``output_dir``
    is given.
    """
    if task not in GLUE_TASK_INFO:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks: {', '.join(GLUE_TASKS)}")
    info = GLUE_TASK_INFO[task]
    started = time.perf_counter()
    try:
        run = train_glue(model_dir, task, cfg)
    except DataUnavailableOffline as err:
        return _save(_unavailable(task, err, cfg, model_dir), output_dir)

    metrics: dict[str, float] = {}
    dev: dict[str, dict[str, list]] = {}
    heldout: dict[str, Any] | None = None
    evaluated_in = prediction_precision(task, cfg.precision)
    for split, data in run.evals.items():
        features = glue_features(data, task, cfg, run.tokenizer, labels=False)
        logits = np.stack(predict(run.model, features, run.collate, EVAL_BATCH_SIZE, evaluated_in)["logits"])
        predictions = logits[:, 0] if info.is_regression else logits.argmax(-1)
        if split == HELDOUT:  # a "dev+heldout" run: scored as a "heldout" run scores (every column, same examples)
            scored = {k: v for s in info.validation_splits for k, v in
                      glue_metrics(task, predictions, data["label"], s).items()}
            heldout = {"metrics": scored, "score": glue_score(task, scored), "eval_examples": len(data)}
            continue
        metrics.update(glue_metrics(task, predictions, data["label"], split))
        dev[split] = {"predictions": predictions.tolist(), "labels": list(data["label"])}
    return _save({
        "task": task, "metrics": metrics, "score": glue_score(task, metrics),
        "train_examples": len(run.train),
        "eval_examples": sum(len(d) for s, d in run.evals.items() if s != HELDOUT),
        "train_loss": run.train_loss, "seconds": round(time.perf_counter() - started, 2),
        "config": dataclasses.asdict(cfg),
        "engine": {**engine_record(cfg), "evaluated_in": engine.resolve_precision(evaluated_in, device())},
        "model_dir": str(model_dir), "dev": dev, **({} if heldout is None else {HELDOUT: heldout}),
    }, output_dir)


def prediction_precision(task: str, precision: str) -> str:
    """The precision a task's dev predictions are computed in: the fine-tuning's own (``precision``), except for a
    regression task (STS-B), always predicted in fp32. A regression output is the score itself, not an argmax:
    bf16 keeps 8 significant bits, steps of 1/64 near 2, and a model that learned little (predictions within a few
    thousandths of the mean) then gives every dev pair the same value and Spearman 0, where fp32 keeps their order
    (tests/test_finetune.py shows it on a collapsed regressor)."""
    info = GLUE_TASK_INFO.get(task)
    return "fp32" if info is not None and info.is_regression else precision


@dataclass
class GlueRun:
    """A model fine-tuned by :func:`train_glue`, with what evaluating it needs."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    collate: Callable
    train: datasets.Dataset  # the training subset
    evals: dict[str, datasets.Dataset]  # evaluation split -> examples (:func:`glue_splits`)
    train_loss: float


def train_glue(model_dir: str | Path, task: str, cfg: FinetuneConfig) -> GlueRun:
    """The model :func:`finetune_glue` scores, fine-tuned the same way (``cfg``'s subset, seed, head and engine), for
    callers that evaluate it otherwise (e.g. quantized: :mod:`atb.deployment`). Raises
    :class:`atb.data.DataUnavailableOffline` when the data cannot be had."""
    train, evals = glue_splits(task, cfg)
    tokenizer = load_tokenizer()
    set_seed(cfg.seed)  # before loading: the new classifier head is drawn from it
    model = load_with_new_head(AutoModelForSequenceClassification, model_dir, num_labels=GLUE_TASK_INFO[task].num_labels)
    collate = DataCollatorWithPadding(tokenizer)
    train_loss = train_model(model, glue_features(train, task, cfg, tokenizer), collate, cfg, desc=f"fine-tune {task}")
    return GlueRun(model, tokenizer, collate, train, evals, train_loss)


# A head swap leaves these behind by design: the task head (and a pooler the checkpoint lacks) is new, and the
# pre-training heads (MLM, NSP) and a pooler the span head does not use are dropped. Any other key is news.
EXPECTED_MISSING = ("classifier.", "qa_outputs.", "pooler.", "bert.pooler.")
EXPECTED_UNUSED = ("cls.", "lm_head.", "pooler.", "bert.pooler.", "discriminator_predictions.")  # (ELECTRA's head)


def load_with_new_head(auto_class: type, model_dir: str | Path, **kwargs: Any) -> PreTrainedModel:
    """``auto_class.from_pretrained(model_dir, **kwargs)`` without the load report that ``transformers`` prints
    for every head swap (a table of the new head's and the dropped MLM head's keys, 12 lines per fine-tuning, the
    bulk of an executed notebook). Keys outside :data:`EXPECTED_MISSING` / :data:`EXPECTED_UNUSED` still warn,
    naming them: a checkpoint that lost encoder weights must not load silently."""
    import warnings

    with no_load_report(), libraries_quiet():
        model, info = auto_class.from_pretrained(model_dir, output_loading_info=True, **kwargs)
    unexpected = {"missing from the checkpoint (newly initialised)": [
                      k for k in info["missing_keys"] if not k.startswith(EXPECTED_MISSING)],
                  "in the checkpoint but unused": [
                      k for k in info["unexpected_keys"] if not k.startswith(EXPECTED_UNUSED)]}
    for what, keys in unexpected.items():
        if keys:
            warnings.warn(f"{model_dir}: {len(keys)} weights {what}: {', '.join(sorted(keys)[:8])}"
                          f"{' ...' if len(keys) > 8 else ''}", stacklevel=2)
    return model


def glue_features(data: datasets.Dataset, task: str, cfg: FinetuneConfig, tokenizer: PreTrainedTokenizerBase,
                  labels: bool = True) -> datasets.Dataset:
    """``data`` of GLUE ``task`` tokenised (truncated to ``cfg.max_seq_len``, not padded: batches are padded to their
    own longest row), without its text and ``idx`` columns, and without ``label`` unless ``labels``."""
    info = GLUE_TASK_INFO[task]

    def encode(batch: dict) -> dict:
        return tokenizer(*(batch[c] for c in info.text_columns), truncation=True, max_length=cfg.max_seq_len)

    return data.map(encode, batched=True, remove_columns=[*info.text_columns, "idx", *([] if labels else ["label"])])


def glue_splits(task: str, cfg: FinetuneConfig) -> tuple[datasets.Dataset, dict[str, datasets.Dataset]]:
    """``(training subset, {evaluation split: examples})`` of GLUE ``task`` under ``cfg``: the dev split(s) (a fixed
    subset of ``cfg.max_eval_examples``), or with ``evaluate_on="heldout"`` the examples held out of the train split
    (:func:`heldout_split`; the dev split is not even loaded, and MNLI scores both columns on the same examples), or
    with ``"dev+heldout"`` the dev split(s) and the held-out examples under :data:`HELDOUT`. The training subset is
    drawn from the rest of the train split in every mode. Raises :class:`atb.data.DataUnavailableOffline` when the
    data cannot be had."""
    train, heldout = heldout_split(load_glue(task, "train"), cfg)
    splits = glue_task_info(task).validation_splits
    if cfg.evaluate_on == "heldout":
        evals = {split: heldout for split in splits}
    else:
        evals = {split: _subset(load_glue(task, split), cfg.max_eval_examples, EVAL_SUBSET_SEED) for split in splits}
        if cfg.evaluate_on == "dev+heldout":
            evals[HELDOUT] = heldout
    return train_subset(train, cfg), evals


def train_subset(train: datasets.Dataset, cfg: FinetuneConfig) -> datasets.Dataset:
    """The examples of a train split that ``cfg`` fine-tunes on: a seeded random ``cfg.max_train_examples``."""
    return _subset(train, cfg.max_train_examples, cfg.seed)


def majority_baseline(task: str, cfg: FinetuneConfig) -> dict:
    """The chance level of ``task`` under ``cfg``: always predict the most frequent label of the training subset
    (STS-B: its mean score, whose correlation is 0), scored on the same examples as :func:`finetune_glue`
    (:func:`glue_splits`: the dev subset, or the examples held out of the train split).

    A fine-tuned model near this score has learned nothing from the task; comparisons between such models
    measure noise. Same result keys as :func:`finetune_glue` (``model_dir`` is ``"majority-class"``).
    """
    info = glue_task_info(task)
    try:
        train, evals = glue_splits(task, cfg)
    except DataUnavailableOffline as err:
        return _unavailable(task, err, cfg, "majority-class")
    evals.pop(HELDOUT, None)  # "dev+heldout": the chance level of the reported (dev) scores
    labels = np.asarray(train["label"])
    constant = labels.mean() if info.is_regression else np.bincount(labels).argmax()
    metrics: dict[str, float] = {}
    for split, data in evals.items():
        metrics.update(glue_metrics(task, np.full(len(data), constant), data["label"], split))
    return {"task": task, "metrics": metrics, "score": glue_score(task, metrics), "train_examples": len(train),
            "eval_examples": sum(len(d) for d in evals.values()), "config": dataclasses.asdict(cfg),
            "model_dir": "majority-class"}


# --------------------------------------------------------------------------------------------- SQuAD
def finetune_squad(model_dir: str | Path, version: str, cfg: FinetuneConfig,
                   output_dir: str | Path | None = None) -> dict:
    """Fine-tune ``model_dir`` on SQuAD ``version`` ("v1.1" / "v2.0") train, evaluate on its dev set.

    ``score`` is the dev F1. For v2.0, ``metrics`` holds EM/F1 at ``cfg.null_threshold`` (the reported
    number), the HasAns/NoAns breakdown and, separately, ``best_f1`` at ``best_f1_threshold``: the
    threshold chosen on dev itself, an oracle figure. Result keys as :func:`finetune_glue`;
    ``task`` is ``squad_<version>``; ``dev`` is ``{"ids", "em", "f1"}``: each dev question's exact match and F1
    in percent (after the no-answer threshold for v2.0), whose means are ``metrics["em"]`` / ``metrics["f1"]``.
    """
    task = f"squad_{version}"
    if task not in SQUAD_TASKS:
        raise ValueError(f"unknown SQuAD version {version!r}; valid: v1.1, v2.0")
    cfg.check_squad()
    started = time.perf_counter()
    try:
        train, heldout = heldout_split(load_squad(version, "train"), cfg)
        if cfg.evaluate_on == "heldout":  # the dev split is not even loaded
            dev = heldout
        else:
            dev = _subset(load_squad(version, "validation"), cfg.max_eval_examples, EVAL_SUBSET_SEED)
    except DataUnavailableOffline as err:
        return _save(_unavailable(task, err, cfg, model_dir), output_dir)
    train = train_subset(train, cfg)

    tokenizer = load_tokenizer()
    train_features = train.map(tokenize_squad, batched=True, remove_columns=train.column_names,
                               fn_kwargs={"tokenizer": tokenizer, "cfg": cfg, "train": True})
    set_seed(cfg.seed)
    model = load_with_new_head(AutoModelForQuestionAnswering, model_dir)
    collate = DataCollatorWithPadding(tokenizer)
    train_loss = train_model(model, train_features, collate, cfg, desc=f"fine-tune {task}")

    metrics, per_question, eval_features = squad_scores(model, dev, tokenizer, collate, cfg, version)
    also = {}
    if cfg.evaluate_on == "dev+heldout":
        scored, _, _ = squad_scores(model, heldout, tokenizer, collate, cfg, version)
        also = {HELDOUT: {"metrics": scored, "score": scored["f1"], "eval_examples": len(heldout)}}
    return _save({
        "task": task, "metrics": metrics, "score": metrics["f1"],
        "train_examples": len(train), "eval_examples": len(dev),
        "train_features": len(train_features), "eval_features": eval_features,
        "train_loss": train_loss, "seconds": round(time.perf_counter() - started, 2),
        "config": dataclasses.asdict(cfg), "engine": engine_record(cfg), "model_dir": str(model_dir),
        "dev": {"ids": list(per_question["f1"]), "em": list(per_question["em"].values()),
                "f1": list(per_question["f1"].values())},
        **also,
    }, output_dir)


def squad_scores(model: PreTrainedModel, examples: datasets.Dataset, tokenizer: PreTrainedTokenizerBase,
                 collate: Callable, cfg: FinetuneConfig, version: str) -> tuple[dict, dict, int]:
    """A fine-tuned span model scored on SQuAD ``examples`` (dev or held out): ``(metrics, per-question {"em",
    "f1"}, number of windows)``, with v2.0's no-answer threshold ``cfg.null_threshold``."""
    features = examples.map(tokenize_squad, batched=True, remove_columns=examples.column_names,
                            fn_kwargs={"tokenizer": tokenizer, "cfg": cfg, "train": False})
    model_inputs = features.remove_columns(["example_id", "offset_mapping"])
    logits = predict(model, model_inputs, collate, EVAL_BATCH_SIZE, cfg.precision, ("start_logits", "end_logits"),
                     per_token=True)
    start_logits, end_logits = logits["start_logits"], logits["end_logits"]  # one logit per real token
    answers, null_odds = postprocess_qa_predictions(examples, features, start_logits, end_logits,
                                                    cfg.n_best, cfg.max_answer_length)
    evaluation = {"version": version, "na_probs": null_odds if version == "v2.0" else None,
                  "na_prob_thresh": cfg.null_threshold}
    return (squad_evaluate(answers, examples, **evaluation), squad_question_scores(answers, examples, **evaluation),
            len(features))


def tokenize_squad(examples: dict, tokenizer: PreTrainedTokenizerBase, cfg: FinetuneConfig, train: bool) -> dict:
    """Question + context windows (a batch of hub-schema rows -> one feature per window).

    A context longer than ``max_seq_len`` is cut into overlapping windows (``doc_stride`` tokens
    shared), so every answer lies whole inside at least one window. Train windows get the answer's
    start/end token (the [CLS] index when the answer is not inside the window, or there is none);
    dev windows keep their question ``example_id`` and the character offsets of their context tokens
    (``None`` elsewhere) to map predicted spans back to text.
    """
    questions = [q.lstrip() for q in examples["question"]]  # some questions start with lots of spaces
    enc = tokenizer(questions, examples["context"], truncation="only_second", max_length=cfg.max_seq_len,
                    stride=cfg.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    example_index = enc.pop("overflow_to_sample_mapping")
    all_offsets = enc.pop("offset_mapping")
    extra = {"start_positions": [], "end_positions": []} if train else {"example_id": [], "offset_mapping": []}
    for i, offsets in enumerate(all_offsets):
        context_offsets = [tuple(o) if seq == 1 else None for o, seq in zip(offsets, enc.sequence_ids(i))]
        if train:
            cls_index = enc["input_ids"][i].index(tokenizer.cls_token_id)
            start, end = answer_token_span(context_offsets, examples["answers"][example_index[i]], cls_index)
            extra["start_positions"].append(start)
            extra["end_positions"].append(end)
        else:
            extra["example_id"].append(examples["id"][example_index[i]])
            extra["offset_mapping"].append(context_offsets)
    enc.update(extra)
    return enc


def answer_token_span(context_offsets: Sequence[tuple[int, int] | None], answers: dict,
                      cls_index: int) -> tuple[int, int]:
    """The first answer's (start, end) token indices in one window, or ``(cls_index, cls_index)``.

    ``context_offsets[i]`` is the character span of token ``i`` if it belongs to the context, else
    ``None``. Start = first context token ending after the answer's first character; end = last
    context token starting before its last.
    """
    if not answers["answer_start"]:
        return cls_index, cls_index
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    inside = [i for i, o in enumerate(context_offsets) if o is not None]
    if not inside or context_offsets[inside[0]][0] > start_char or context_offsets[inside[-1]][1] < end_char:
        return cls_index, cls_index
    start = next(i for i in inside if context_offsets[i][1] > start_char)
    end = next(i for i in reversed(inside) if context_offsets[i][0] < end_char)
    return start, end


def postprocess_qa_predictions(
    examples: Iterable[dict],
    features: Iterable[dict],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> tuple[dict[str, str], dict[str, float]]:
    """Map window logits back to answer text: ``({id: best span text}, {id: null score - best span score})``.

    For every window, the ``n_best`` highest start and end logits are paired; a pair counts if both
    tokens are in the context, end >= start and the span has at most ``max_answer_length`` tokens. Its
    score is start + end logit; the best over all windows of a question wins and is cut out of the
    context by the character offsets. The null ("no answer") score of a window is the [CLS] (index 0)
    start + end logit, minimised over windows as in BERT's ``run_squad``. An example with no valid span
    gets "" and an infinite null difference. ``examples``: rows with ``id`` and ``context``;
    ``features``: rows with ``example_id`` and ``offset_mapping``, aligned with the logits.
    """
    windows: dict[str, list[tuple[int, list]]] = collections.defaultdict(list)
    for i, feature in enumerate(features):
        windows[feature["example_id"]].append((i, feature["offset_mapping"]))
    answers, null_odds = {}, {}
    for example in examples:
        best_text, best_score, null_score = "", -np.inf, np.inf
        for i, offsets in windows[example["id"]]:
            start, end = start_logits[i], end_logits[i]
            null_score = min(null_score, float(start[0] + end[0]))
            for s in np.argsort(start)[::-1][:n_best]:
                for e in np.argsort(end)[::-1][:n_best]:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = float(start[s] + end[e])
                    if score > best_score:
                        best_score, best_text = score, example["context"][offsets[s][0]: offsets[e][1]]
        answers[example["id"]] = best_text
        null_odds[example["id"]] = null_score - best_score
    return answers, null_odds


# --------------------------------------------------------------------------------- training / predict
def device() -> torch.device:
    """CUDA when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def engine_record(cfg: FinetuneConfig) -> dict:
    """How a fine-tuning run computed its steps (:func:`atb.engine.describe`), for its result."""
    return engine.describe(cfg.precision, device(), fused_optimizer=cfg.fused_optimizer)


class ShuffledLengthBatches(Sampler[list[int]]):
    """Batches of similar lengths in a random order: each epoch, Hugging Face's length grouping
    (``get_length_grouped_indices``: random mega-batches, each sorted by length) cut into batches, and the batches
    shuffled. Padding stays as low as with ``LengthGroupedSampler``, but the steps no longer sweep each mega-batch
    from its longest batch to its shortest: on a small subset that sweep is a curriculum by length that the model
    follows (see ``FinetuneConfig.shuffle_batches``)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> None:
        self.lengths, self.batch_size, self.generator = list(lengths), batch_size, generator

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = get_length_grouped_indices(self.lengths, self.batch_size, generator=self.generator)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        yield from (batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist())


def train_batches(features: datasets.Dataset, collate: Callable, cfg: FinetuneConfig) -> DataLoader:
    """One epoch's batches (iterate again for the next): shuffled by a generator seeded with ``cfg.seed``, grouped by
    length with ``cfg.group_by_length`` (in a random order: :class:`ShuffledLengthBatches`; with
    ``shuffle_batches`` false, Hugging Face's ``LengthGroupedSampler`` order), padded per batch."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if not cfg.group_by_length:
        return DataLoader(features, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate, generator=generator)
    lengths = [len(ids) for ids in features["input_ids"]]
    if cfg.shuffle_batches:
        return DataLoader(features, batch_sampler=ShuffledLengthBatches(lengths, cfg.batch_size, generator),
                          collate_fn=collate)
    sampler = LengthGroupedSampler(cfg.batch_size, lengths=lengths, generator=generator)
    return DataLoader(features, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)


def train_model(model: PreTrainedModel, features: datasets.Dataset, collate: Callable, cfg: FinetuneConfig,
                desc: str = "fine-tune") -> float:
    """``cfg.epochs`` epochs of AdamW with linear warm-up/decay and clipping; returns the mean train loss.

    Weight decay skips biases and LayerNorm weights (every 1-d parameter), as BERT does. Batch order
    comes from a generator seeded with ``cfg.seed`` (:func:`train_batches`) and dropout from the global seed, so a
    run on the CPU is repeatable bit for bit at a given precision (:mod:`atb.engine`).
    """
    model.to(device()).train()
    loader = train_batches(features, collate, cfg)
    steps = cfg.epochs * len(loader)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = engine.adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_optimizer)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * steps), steps)
    total = 0.0
    with progress_bar(total=steps, desc=desc, mininterval=2.0) as bar:
        for _ in range(cfg.epochs):
            for batch in loader:
                with engine.autocast(cfg.precision, device()):
                    loss = model(**batch.to(device())).loss
                loss.backward()
                engine.clip_and_step(optimizer, scheduler, params, cfg.max_grad_norm, foreach=cfg.fused_optimizer)
                total += loss.item()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return total / steps


@torch.no_grad()
def predict(model: PreTrainedModel, features: datasets.Dataset, collate: Callable, batch_size: int,
            precision: str = "fp32", fields: Sequence[str] = ("logits",),
            per_token: bool = False) -> dict[str, list[np.ndarray]]:
    """The model's ``fields`` (output names) for every feature, in the features' order, as fp32 arrays: one row per
    feature, cut to the feature's real tokens when the outputs are ``per_token`` (``[B, T]``: SQuAD's start and end
    logits). Computed in eval mode without gradients, in ``precision`` (:func:`atb.engine.autocast`),
    over batches of similar lengths (the features sorted by length, the order restored after): padding changes
    nothing but the work, since padded keys are masked."""
    model.to(device()).eval()
    lengths = np.array([len(ids) for ids in features["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    out: dict[str, list] = {name: [None] * len(features) for name in fields}
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = collate([features[int(i)] for i in rows]).to(device())
        with engine.autocast(precision, device()):
            output = model(**batch)
        for name in fields:
            values = getattr(output, name).float().cpu().numpy()
            for row, i in enumerate(rows):
                out[name][i] = values[row, :lengths[i]] if per_token else values[row]
    return out


# ------------------------------------------------------------------------------------------- helpers
def heldout_split(train: datasets.Dataset, cfg: FinetuneConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(rest, held out): a fixed random part of a *train* split set aside for choosing hyper-parameters, so that the
    dev split, which reports the results, is never used to choose them. Its size: :data:`HELDOUT_FRACTION` of the
    split, at most ``cfg.max_eval_examples`` (or :data:`HELDOUT_MAX`); the training subset is drawn from the rest."""
    n = min(int(HELDOUT_FRACTION * len(train)), cfg.max_eval_examples or HELDOUT_MAX)
    if n < 1:
        raise ValueError(f"a train split of {len(train)} examples is too small to hold any out")
    shuffled = train.shuffle(seed=HELDOUT_SEED)
    return shuffled.select(range(n, len(shuffled))), shuffled.select(range(n))


def _subset(data: datasets.Dataset, n: int | None, seed: int) -> datasets.Dataset:
    """A seeded random ``n`` rows (not the first ``n``: GLUE/SQuAD files are grouped by source/article)."""
    return data if n is None or n >= len(data) else data.shuffle(seed=seed).select(range(n))


def _unavailable(task: str, err: Exception, cfg: FinetuneConfig, model_dir: str | Path) -> dict:
    """The result of a task whose data cannot be had: no score, and why (the loader's message)."""
    return {"task": task, "metrics": None, "score": None, "reason": str(err),
            "config": dataclasses.asdict(cfg), "model_dir": str(model_dir)}


def result_path(output_dir: str | Path, task: str, seed: int) -> Path:
    """Where the result of (``task``, ``seed``) is kept: ``output_dir/<task>.json`` for seed 0 (the single-seed
    name, so results of earlier single-seed runs are found), ``output_dir/<task>.seed<seed>.json`` otherwise."""
    return Path(output_dir) / (f"{task}.json" if seed == 0 else f"{task}.seed{seed}.json")


def _save(result: dict, output_dir: str | Path | None) -> dict:
    """Write ``result`` to :func:`result_path` of its task and seed atomically (tmp + rename); return it."""
    if output_dir is not None:
        path = result_path(output_dir, result["task"], (result.get("config") or {}).get("seed", 0))
        write_json_atomic(path, result, allow_nan=False)
    return result


def cached_result(output_dir: str | Path | None, task: str, cfg: FinetuneConfig, model_dir: str | Path) -> dict | None:
    """The scored result of ``task`` with ``cfg`` (its seed included) from ``model_dir``, if ``output_dir`` holds one.

    Results without a score (data unavailable) are never reused: the data may be there next time. Nor are results
    without the per-example dev predictions (``dev``, written since seeds were added): intervals need them, so such
    a result is fine-tuned once more. Nor, under ``precision: auto``, one computed in another precision than this
    machine's (a bf16 result on an fp32 machine, or the reverse): it is not the run this machine would make. Nor a
    GLUE result predicted in another precision than :func:`prediction_precision` says (STS-B predicted in bf16
    before its predictions were computed in fp32). A result scored on dev and held out (``"dev+heldout"``, the run
    that chose its learning rate: :func:`adopt_chosen_runs`) serves a request scored on dev: it is that run, and more.
    """
    path = None if output_dir is None else result_path(output_dir, task, cfg.seed)
    if path is None or not path.exists():
        return None
    result = json.loads(path.read_text())
    recorded = result.get("engine") or {}
    config_of = dict(result.get("config") or {})
    if cfg.evaluate_on == "dev" and config_of.get("evaluate_on") == "dev+heldout":
        config_of["evaluate_on"] = "dev"
    same = (config_of == json.loads(json.dumps(dataclasses.asdict(cfg)))
            and result.get("model_dir") == str(model_dir)
            and recorded.get("computed_in") == engine.resolve_precision(cfg.precision, device())
            and recorded.get("evaluated_in", recorded.get("computed_in"))  # (older results: predicted as computed)
            == engine.resolve_precision(prediction_precision(task, cfg.precision), device()))
    return result if same and result.get("score") is not None and result.get("dev") else None


def seeds_of(scale: str | Path, task: str, n: int) -> list[int]:
    """The ``n`` fine-tuning seeds of ``task`` at ``scale``: the budget's ``seed`` (0 unless configured) and the
    ``n - 1`` integers after it."""
    if n < 1:
        raise ValueError(f"need at least one seed, got {n}")
    first = FinetuneConfig.load(scale, task).seed
    return list(range(first, first + n))


def seed_config(scale: str | Path, task: str, seed: int | None = None,
                budgets: Mapping[str, Mapping[str, Any]] | None = None) -> FinetuneConfig:
    """The budget :func:`run` fine-tunes ``task`` with: the scale's, overridden by ``budgets[task]`` (e.g. a chosen
    learning rate), with ``seed`` (``None``: the budget's own)."""
    cfg = dataclasses.replace(FinetuneConfig.load(scale, task), **(budgets or {}).get(task, {}))
    return cfg if seed is None else dataclasses.replace(cfg, seed=seed)


def run(model_dir: str | Path, tasks: Sequence[str], scale: str | Path, output_dir: str | Path | None = None,
        resume: bool = True, seed: int | None = None, budgets: Mapping[str, Mapping[str, Any]] | None = None
        ) -> dict[str, dict]:
    """Fine-tune and evaluate ``model_dir`` on each of ``tasks`` with the budgets of ``scale`` (a scale name or
    a config path), once, with ``seed`` (``None``: the budget's own); ``{task: result}``.

    With ``resume``, a task whose result is already in ``output_dir`` (same budget and seed, same model, with its
    dev predictions) is read back instead of fine-tuned again, so an interrupted table picks up where it stopped.
    """
    results = {}
    for task in tasks:
        cfg = seed_config(scale, task, seed, budgets)
        if resume and (cached := cached_result(output_dir, task, cfg, model_dir)) is not None:
            results[task] = cached
        elif task in SQUAD_TASKS:
            results[task] = finetune_squad(model_dir, task.removeprefix("squad_"), cfg, output_dir)
        else:
            results[task] = finetune_glue(model_dir, task, cfg, output_dir)
    return results


def run_seeds(model_dir: str | Path, tasks: Sequence[str], scale: str | Path, output_dir: str | Path | None = None,
              seeds: int = 1, resume: bool = True, budgets: Mapping[str, Mapping[str, Any]] | None = None
              ) -> dict[str, list[dict]]:
    """:func:`run` once per seed (:func:`seeds_of`): ``{task: [result of each seed]}``, every (task, seed) cached
    on its own (:func:`result_path`), so adding seeds later fine-tunes only the new ones. ``budgets``: per task,
    fields of the scale's budget to replace (e.g. the learning rate :func:`choose_lr` picked)."""
    results: dict[str, list[dict]] = {}
    for task in tasks:
        results[task] = [run(model_dir, [task], scale, output_dir, resume, seed=s, budgets=budgets)[task]
                         for s in seeds_of(scale, task, seeds)]
    return results


@dataclass(frozen=True)
class Job:
    """One fine-tuning run of :func:`run`: ``model_dir`` on ``task`` with ``seed`` and the scale's budget (``budgets``
    replacing fields of it), its result cached in ``output_dir``."""

    model_dir: str
    task: str
    scale: str
    output_dir: str | None
    seed: int | None = None
    budgets: Mapping[str, Mapping[str, Any]] | None = None

    def __call__(self) -> dict:
        with libraries_quiet():  # a tokenising `map` and a load per job: hundreds of bars in a notebook otherwise
            return run(self.model_dir, [self.task], self.scale, self.output_dir, seed=self.seed,
                       budgets=self.budgets)[self.task]


def seed_jobs(model_dir: str | Path, tasks: Sequence[str], scale: str | Path, output_dir: str | Path | None,
              seeds: int = 1, budgets: Mapping[str, Mapping[str, Any]] | None = None) -> list[Job]:
    """The jobs :func:`run_seeds` with the same arguments runs, one per (task, seed)."""
    return [Job(str(model_dir), task, str(scale), None if output_dir is None else str(output_dir), s,
                None if budgets is None else {k: dict(v) for k, v in budgets.items()})
            for task in tasks for s in seeds_of(scale, task, seeds)]


def _init_worker(threads: int) -> None:
    """A fine-tuning worker: ``threads`` threads, no progress bars (the parent's bar counts the jobs)."""
    torch.set_num_threads(threads)
    silence_this_process()


def run_jobs(jobs: Sequence[Job], workers: int = 1) -> list[dict]:
    """Run ``jobs`` (each caches its result, so a rerun or a later :func:`run_seeds` reads them back) and return their
    results in order. ``workers > 1`` runs them in that many processes of ``cpu_count // workers`` threads each:
    small models use two threads poorly, and two one-thread fine-tunings on a 2-core CPU finish in ~0.63x the time
    of running them one after the other (SST-2, 4/256/1024/12/252: 33 s each side by side, 26 s each alone).
    Results do not depend on ``workers``: each run is seeded and its data order, head and dropout come from its seed.
    """
    if workers <= 1 or len(jobs) <= 1:  # one bar for them all; each job's own bar stays silent inside it
        return [job() for job in progress_bar(jobs, desc="fine-tuning", disable=len(jobs) <= 1)]
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        return list(progress_bar(pool.map(operator.call, jobs), total=len(jobs),
                                 desc=f"fine-tuning ({workers} processes)"))


def choose_lr(model_dir: str | Path, tasks: Sequence[str], scale: str | Path, candidates: Sequence[float],
              output_dir: str | Path | None = None, workers: int = 1,
              overrides: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """Per task, the learning rate among ``candidates`` that scores best on examples **held out of the train split**,
    everything else as the scale's budget (with ``overrides``, fields of it replaced): ``{task: {"lr": chosen or
    None, "scores": {lr: held-out score}}}`` (``lr`` None when the task's data is unavailable). Each candidate runs
    once, with the budget's seed, scored on the held-out examples *and* on dev (``evaluate_on="dev+heldout"``); only
    the held-out score chooses, so the dev scores that use the chosen rate stay unbiased, and the chosen rate's run
    is the reported run of that seed (:func:`adopt_chosen_runs`), not fine-tuned a second time. Ties go to the
    first."""
    results = iter(run_jobs(lr_jobs(model_dir, tasks, scale, candidates, output_dir, overrides), workers))
    chosen: dict[str, dict] = {}
    for task in tasks:
        scores = {float(lr): (next(results).get(HELDOUT) or {}).get("score") for lr in candidates}
        valid = {lr: v for lr, v in scores.items() if v is not None}
        chosen[task] = {"lr": max(valid, key=valid.get) if valid else None, "scores": scores}
    return chosen


def lr_jobs(model_dir: str | Path, tasks: Sequence[str], scale: str | Path, candidates: Sequence[float],
            output_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> list[Job]:
    """The runs :func:`choose_lr` makes, task by task and candidate by candidate (each cached in
    ``output_dir/lr<rate>``), so that a caller choosing for many models can run them all in one pool."""
    if not candidates:
        raise ValueError("choose_lr needs at least one candidate learning rate")
    return [Job(str(model_dir), task, str(scale), None if output_dir is None else str(lr_folder(output_dir, lr)),
                budgets={task: {**(overrides or {}), "lr": float(lr), "evaluate_on": "dev+heldout"}})
            for task in tasks for lr in candidates]


def lr_folder(output_dir: str | Path, lr: float) -> Path:
    """Where :func:`choose_lr` keeps the runs of candidate rate ``lr``."""
    return Path(output_dir) / f"lr{lr:g}"


def adopt_chosen_runs(choice: Mapping[str, Mapping[str, Any]], selection_dir: str | Path,
                      output_dir: str | Path) -> list[Path]:
    """Make each chosen rate's run (:func:`choose_lr`, kept in ``selection_dir``) the reported run of its seed in
    ``output_dir``, where :func:`run_seeds` with :func:`chosen_budgets` looks (:func:`cached_result` takes a run scored
    on dev and held out for one scored on dev): the seed the choice ran is not fine-tuned again. ``choice`` must be
    what :func:`choose_lr` just returned, so its runs are current; one that differs from them in ``output_dir`` is
    replaced. Returns the results written."""
    written = []
    for task, c in choice.items():
        if c.get("lr") is None:
            continue
        source_dir = lr_folder(selection_dir, c["lr"])
        for source in (source_dir / f"{task}.json", *sorted(source_dir.glob(f"{task}.seed*.json"))):
            target = Path(output_dir) / source.name
            if source.exists() and (not target.exists() or target.read_text() != source.read_text()):
                write_json_atomic(target, json.loads(source.read_text()), allow_nan=False)
                written.append(target)
    return written


def chosen_budgets(choice: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The ``budgets`` argument of :func:`run_seeds` from :func:`choose_lr`'s result (tasks with a chosen rate)."""
    return {task: {"lr": c["lr"]} for task, c in choice.items() if c.get("lr") is not None}


# ----------------------------------------------------------------------------- per-example dev runs
SQUAD_KEYS = {"squad_v1.1": "squad_v1", "squad_v2.0": "squad_v2"}  # result task -> row key


def column_runs(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, ModelRuns]:
    """One model's per-example dev predictions of every seed, per scored column, from
    :func:`run_seeds` results (``{task: [result of each seed]}``).

    Columns: the GLUE table's (``atb.develop.GLUE_COLUMNS``; MNLI's two dev splits are ``mnli_m`` / ``mnli_mm``)
    scored with the task's metric (:func:`atb.metrics.glue_score_fn`), and ``squad_v1.f1``, ``squad_v1.em``
    (``squad_v2.*``) whose per-question scores are averaged (their labels are the question ids). A task is left out
    when some seed has no score or no per-example predictions (results of code older than the seeds)."""
    out: dict[str, ModelRuns] = {}
    for task, per_seed in results.items():
        if not per_seed or any(r.get("score") is None or not r.get("dev") for r in per_seed):
            continue
        seeds = [r["config"]["seed"] for r in per_seed]
        if task in SQUAD_TASKS:
            ids = per_seed[0]["dev"]["ids"]
            if any(r["dev"]["ids"] != ids for r in per_seed):
                raise ValueError(f"{task}: the seeds were scored on different dev questions")
            for score in ("f1", "em"):
                out[f"{SQUAD_KEYS[task]}.{score}"] = ModelRuns(
                    _mean_score, {s: np.asarray(r["dev"][score], dtype=float) for s, r in zip(seeds, per_seed)},
                    np.asarray(ids))
            continue
        for split, dev in per_seed[0]["dev"].items():
            column = {"validation_matched": "mnli_m", "validation_mismatched": "mnli_mm"}.get(split, task)
            if any(r["dev"][split]["labels"] != dev["labels"] for r in per_seed):
                raise ValueError(f"{task}: the seeds were scored on different dev examples")
            out[column] = ModelRuns(glue_score_fn(task), {s: np.asarray(r["dev"][split]["predictions"])
                                                          for s, r in zip(seeds, per_seed)}, np.asarray(dev["labels"]))
    return out


def _mean_score(predictions: np.ndarray, labels: np.ndarray) -> float:
    """The metric of per-example scores (SQuAD EM / F1 per question): their mean."""
    return float(np.mean(predictions))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--scale", default="mini", help="a scale (configs/<scale>.yaml) or a config file's path")
    parser.add_argument("--tasks", nargs="+", default=[*GLUE_TASKS, "squad_v1.1"],
                        help=f"any of {' '.join(GLUE_TASKS + SQUAD_TASKS)}")
    parser.add_argument("--output-dir")
    parser.add_argument("--seed", type=int, help="the fine-tuning seed (default: the budget's, 0)")
    args = parser.parse_args(argv)
    for task, result in run(args.model_dir, args.tasks, args.scale, args.output_dir, seed=args.seed).items():
        shown = "n/a" if result["score"] is None else f"{result['score']:.2f}"
        print(f"{task:12s} {shown:>7s}  {result.get('reason') or result['metrics']}")


if __name__ == "__main__":
    main()
