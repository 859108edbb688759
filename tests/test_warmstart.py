"""Warm start from a pretrained BERT (atb.warmstart): the rewired model is the source, slices keep the most
important units, sliced = extracted, rewired slices lose less of the source than plain slices, bad sources are
refused naming the field, and the TrainConfig hook."""

from __future__ import annotations

import copy
import dataclasses
import os
import random

import pytest
import torch
from transformers import AutoModel

from atb import Arch, Range, SearchSpace, SuperBert, SuperBertConfig, extract
from atb.objectives import KDObjective
from atb.teacher import Teacher, offline_teacher_path
from atb.train import TrainConfig, build_objective, build_student
from atb.warmstart import (
    Importance,
    apply_rewiring,
    importance_sample,
    init_fit_from_warm_start,
    load_source,
    magnitude_importance,
    plan_rewiring,
    source_supernet,
    taylor_importance,
    warm_start,
)

pytestmark = pytest.mark.skipif(not os.environ.get("ATB_DATA_DIR"), reason="needs the local corpus (ATB_DATA_DIR)")

TOL = 1e-5
# The spaces whose largest architecture is MiniLM itself (6/384/1536/12/384): the KD space of the feasibility run,
# and an MLM space with MiniLM's head size (32) instead of the paper's 64.
# The mini scale's spaces (SearchSpace.preset("mini", ...)): the largest architecture is MiniLM itself.
KD_SPACE = SearchSpace("kd", Range(1, 6), Range(128, 384, 16), Range(128, 1536, 32), Range(12, 12), Range(96, 384, 12))
MLM_SPACE = SearchSpace("mlm", Range(1, 6), Range(128, 384, 16), Range(128, 1536, 32), Range(1, 12), Range(32, 384, 32),
                        head_size=32)
FULL = Arch(6, 384, 1536, 12, 384)


def new_supernet(space: SearchSpace) -> SuperBert:
    torch.manual_seed(0)
    return SuperBert(SuperBertConfig.from_space(space)).eval()


@pytest.fixture(scope="module")
def minilm():
    """The stock ``transformers`` MiniLM (``BertModel``), the source and the KD teacher."""
    return AutoModel.from_pretrained(offline_teacher_path(), local_files_only=True).eval()


@pytest.fixture(scope="module")
def source_big(minilm) -> SuperBert:
    """MiniLM as a SuperBERT of its own shape (head-wise slicing), not rewired."""
    return source_supernet(load_source(minilm)[0], "headwise")


@pytest.fixture(scope="module")
def importance(source_big) -> Importance:
    """Taylor scores of MiniLM on a small sample of training text, every depth 1..6 scored (as warm_start does for
    KD_SPACE). At full width the source computes the same function whatever its Q/K/V slicing, so one set of
    scores serves both spaces."""
    batches = importance_sample(batches=4, batch_size=8, max_seq_len=64, max_documents=20)
    return taylor_importance(source_big, batches, depths=range(1, 7))


@pytest.fixture(scope="module")
def rewired(minilm, importance) -> SuperBert:
    return warm_start(new_supernet(KD_SPACE), minilm, importance=importance)


@pytest.fixture(scope="module")
def plain(minilm) -> SuperBert:
    return warm_start(new_supernet(KD_SPACE), minilm, rewire=False)


@pytest.fixture(scope="module")
def text():
    """Held-out real text (WikiText-2 validation, not the training text the scores were computed on), with padding."""
    from atb.fitness import heldout_batches

    batches = heldout_batches("wikitext-2-valid", 16, 128, 16, 0)
    assert any((b["attention_mask"] == 0).any() for b in batches)
    return [{k: v for k, v in b.items() if k != "labels"} for b in batches]


def run(model: SuperBert, arch: Arch, batch: dict):
    with torch.no_grad():
        return model(batch["input_ids"], arch=arch, attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"])


# ---------------------------------------------------------------------------------------- (a) the same function
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 3e-5), (torch.float64, 1e-10)])
def test_rewired_full_model_computes_the_source_function(minilm, rewired, text, dtype, tol):
    """KD space: the warm-started SuperBERT at full size is MiniLM with its hidden dimensions in a new order (the
    recorded ``hidden_order``); the 12 heads keep their places, so the last layer's scores equal the teacher's.
    In float32 the sums run in another order, so outputs agree to rounding only (measured: up to 1.3e-5 on scores
    that reach ~9); in float64 they agree to 1e-10: the permutation is exact."""
    teacher = Teacher(copy.deepcopy(minilm).to(dtype))
    model = copy.deepcopy(rewired).to(dtype)
    order = torch.tensor(rewired.config.warm_start["hidden_order"])
    assert not torch.equal(order, torch.arange(384)), "no permutation happened"
    for batch in text[:1]:
        ours = run(model, FULL, batch)
        theirs = teacher(batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
        real = batch["attention_mask"].bool()
        torch.testing.assert_close(ours.last_hidden_state[real], theirs.last_hidden_state[..., order][real],
                                   atol=tol, rtol=0)
        torch.testing.assert_close(ours.attention_scores, theirs.attention_scores, atol=tol, rtol=0)


def test_contiguous_rewiring_reorders_heads_and_keeps_function_and_mlm_head(source_big, importance, text):
    """MLM space (whole heads): heads are reordered, and every output is the source's up to that order, the MLM
    logits included (the source's MLM head, here an untrained one, is rewired with the hidden dimensions). In
    float64, so that the comparison is exact up to 1e-10."""
    before = source_supernet(source_big, "contiguous").double()
    after = apply_rewiring(copy.deepcopy(before), plan := plan_rewiring(importance, "contiguous"))
    assert not torch.equal(plan.heads[-1], torch.arange(12)), "the last layer's heads were not reordered"
    assert torch.equal(plan.qk, torch.arange(32).expand(6, 12, 32)), "whole-head slicing keeps dims within a head"
    batch = {k: v[:4] for k, v in text[0].items()}
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 5:9] = batch["input_ids"][:, 5:9]
    with torch.no_grad():
        a = before(batch["input_ids"], arch=FULL, attention_mask=batch["attention_mask"], labels=labels)
        b = after(batch["input_ids"], arch=FULL, attention_mask=batch["attention_mask"], labels=labels)
    real = batch["attention_mask"].bool()
    exact = dict(atol=1e-10, rtol=0)
    torch.testing.assert_close(b.last_hidden_state[real], a.last_hidden_state[..., plan.hidden][real], **exact)
    torch.testing.assert_close(b.attention_scores, a.attention_scores[:, plan.heads[-1]], **exact)
    torch.testing.assert_close(b.logits, a.logits, **exact)


def test_mlm_warm_start_keeps_the_most_important_heads(minilm, importance):
    model = warm_start(new_supernet(MLM_SPACE), minilm, importance=importance)
    plan = plan_rewiring(importance, "contiguous")
    source = minilm.encoder.layer[2].attention.self.query.weight
    top = torch.topk(importance.heads[2], 3).indices  # the 3 most important heads of layer 3, most important first
    rows = torch.cat([h * 32 + torch.arange(32) for h in top.tolist()])
    kept = model.bert.encoder.layer[2].attention.self.query.weight[:96]
    torch.testing.assert_close(kept, source[rows][:, plan.hidden], atol=0, rtol=0)


# --------------------------------------------------------------------------------- (b) slices keep the top units
def test_slices_keep_the_most_important_units(minilm, importance, rewired):
    """Every kept unit of a top-left slice is among the top-k by importance, most important first, and the copy
    holds exactly those source weights."""
    order = torch.tensor(rewired.config.warm_start["hidden_order"])
    assert torch.equal(order, torch.sort(importance.hidden, descending=True, stable=True).indices)
    assert set(order[:128].tolist()) == set(torch.topk(importance.hidden, 128).indices.tolist())
    torch.testing.assert_close(rewired.bert.embeddings.word_embeddings.weight[:, :128],
                               minilm.embeddings.word_embeddings.weight[:, order[:128]], atol=0, rtol=0)
    for layer in (0, 5):
        ours, theirs = rewired.bert.encoder.layer[layer], minilm.encoder.layer[layer]
        top_ffn = torch.topk(importance.ffn[layer], 256).indices  # FFN neurons: rows of W1, in importance order
        torch.testing.assert_close(ours.intermediate.dense.weight[:256], theirs.intermediate.dense.weight[top_ffn][:, order],
                                   atol=0, rtol=0)
        torch.testing.assert_close(ours.output.dense.weight[:, :256], theirs.output.dense.weight[order][:, top_ffn],
                                   atol=0, rtol=0)
        for head in (0, 7):  # head-wise: each head keeps its own most important dims (q/k pairs, v separately)
            top_qk = head * 32 + torch.topk(importance.qk[layer, head], 8).indices
            top_v = head * 32 + torch.topk(importance.v[layer, head], 8).indices
            rows = slice(head * 32, head * 32 + 8)
            for name, top in (("query", top_qk), ("key", top_qk), ("value", top_v)):
                torch.testing.assert_close(getattr(ours.attention.self, name).weight[rows],
                                           getattr(theirs.attention.self, name).weight[top][:, order], atol=0, rtol=0)
            torch.testing.assert_close(ours.attention.output.dense.weight[:, rows],
                                       theirs.attention.output.dense.weight[order][:, top_v], atol=0, rtol=0)


def test_importance_is_deterministic_and_depends_on_the_seed(source_big, text):
    model = source_big
    batches = [{k: v[:4, :32] for k, v in text[0].items()}]
    a, b = (taylor_importance(model, batches, depths=[2, 6], seed=3) for _ in range(2))
    c = taylor_importance(model, batches, depths=[2, 6], seed=4)
    assert torch.equal(a.ffn, b.ffn) and torch.equal(a.hidden, b.hidden) and torch.equal(a.qk, b.qk)
    assert not torch.equal(a.ffn, c.ffn)
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert magnitude_importance(model).ffn.shape == (6, 1536)


# -------------------------------------------------------------------------------- (c) sliced equals extracted
def test_warm_started_slices_equal_extracted_models(rewired, text):
    rng = random.Random(0)
    batch = {k: v[:4] for k, v in text[0].items()}
    for arch in [KD_SPACE.smallest(), Arch(4, 256, 480, 12, 192)] + [KD_SPACE.sample(rng) for _ in range(3)]:
        sliced = run(rewired, arch, batch)
        standalone = extract(rewired, arch).eval()
        with torch.no_grad():
            out = standalone.bert(batch["input_ids"], attention_mask=batch["attention_mask"],
                                  token_type_ids=batch["token_type_ids"], output_attention_scores=True)
        torch.testing.assert_close(sliced.last_hidden_state, out.last_hidden_state, atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.attention_scores, out.attention_scores, atol=TOL, rtol=0)


# ------------------------------------------------------------------------ (d) rewiring keeps more of the source
@pytest.fixture(scope="module")
def teachers(minilm, text) -> dict[int, tuple[Teacher, list]]:
    """Per depth d: MiniLM cut after d layers (what a sub-model of depth d is a slice of; d = 6 is the teacher) and
    its outputs on the held-out text, computed once."""
    out = {}
    for layers in (2, 4, 6):
        model = copy.deepcopy(minilm)
        model.encoder.layer = model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
        teacher = Teacher(model)
        out[layers] = teacher, [teacher(b["input_ids"], attention_mask=b["attention_mask"],
                                        token_type_ids=b["token_type_ids"]) for b in text]
    return out


def heldout_kd(model: SuperBert, arch: Arch, teacher: tuple[Teacher, list], text) -> dict[str, float]:
    """The KD objective (``atb.objectives``) of a slice on held-out text, ``W_fit`` inherited from the warm start
    (the permutation back to the teacher's dimensions), weighted by real tokens as ``HeldOutKDFitness`` does."""
    teacher, targets = teacher
    objective = KDObjective(teacher, 384)
    assert init_fit_from_warm_start(objective.fit_dense, model)
    totals, tokens = {"loss": 0.0, "attention": 0.0, "hidden": 0.0}, 0
    with torch.no_grad():
        for batch, target in zip(text, targets):
            out = objective(model, batch, arch, target)
            n = int(batch["attention_mask"].sum())
            tokens += n
            for key in totals:
                totals[key] += getattr(out, key).item() * n
    return {key: value / tokens for key, value in totals.items()}


def test_rewired_slices_lose_less_of_the_source_than_plain_slices(teachers, rewired, plain, text):
    """Held-out KD loss of slices, rewired vs plain top-left slices of the same MiniLM.

    Full depth: against the teacher itself (the KD objective of the project). Shallower slices: against MiniLM cut at
    the same depth, the model they are slices of; against the teacher's 6th layer their *attention* loss does not
    measure what a slice kept (next test), so it is not compared there.
    """
    teacher = teachers[6]
    assert plain.config.warm_start["hidden_order"] == list(range(384)) and not plain.config.warm_start["rewire"]
    assert heldout_kd(rewired, FULL, teacher, text)["loss"] < 1e-9  # the full copy is the teacher, W_fit included
    for arch in (Arch(6, 256, 768, 12, 192), Arch(6, 192, 512, 12, 96)):
        ours, theirs = heldout_kd(rewired, arch, teacher, text), heldout_kd(plain, arch, teacher, text)
        assert ours["loss"] < theirs["loss"] and ours["attention"] < theirs["attention"], (arch, ours, theirs)
        assert ours["hidden"] < theirs["hidden"], (arch, ours, theirs)
    for arch in (Arch(4, 256, 1024, 12, 192), Arch(2, 256, 768, 12, 192)):
        cut = teachers[arch.layers]
        ours, theirs = heldout_kd(rewired, arch, cut, text), heldout_kd(plain, arch, cut, text)
        assert ours["loss"] < theirs["loss"] and ours["attention"] < theirs["attention"], (arch, ours, theirs)


def test_shallow_attention_loss_against_the_last_layer_rewards_breaking_the_layer(teachers, plain, text):
    """Why the shallow slices are compared with the cut MiniLM: against the teacher's last layer, a depth-4 slice that
    keeps arbitrary dims scores a *lower* attention loss than depth 4 at full width (MiniLM's own layer 4), i.e. the
    loss rewards destroying layer 4's attention rather than keeping it. (Rewired depth-4 slices keep more of layer 4
    and score higher there: measured, not hidden.)"""
    teacher = teachers[6]
    whole = heldout_kd(plain, Arch(4, 384, 1536, 12, 384), teacher, text)["attention"]
    narrow = heldout_kd(plain, Arch(4, 256, 1024, 12, 192), teacher, text)["attention"]
    assert narrow < whole, (narrow, whole)


# ------------------------------------------------------------------------------------------- (e) bad sources
@pytest.mark.parametrize("space, field", [
    (dataclasses.replace(KD_SPACE, layers=Range(1, 7)), "layers=7"),
    (dataclasses.replace(KD_SPACE, hidden=Range(128, 512, 16)), "hidden=512"),
    (dataclasses.replace(KD_SPACE, ffn=Range(128, 2048, 32)), "ffn=2048"),
    (dataclasses.replace(KD_SPACE, qkv=Range(96, 480, 12)), "qkv=480"),
    (SearchSpace("kd", Range(1, 4), Range(128, 384, 16), Range(128, 1536, 32), Range(8, 8), Range(96, 256, 8)), "heads=8"),
    (dataclasses.replace(MLM_SPACE, heads=Range(1, 6), qkv=Range(64, 384, 64), head_size=64), "head_size=64"),
    (dataclasses.replace(MLM_SPACE, heads=Range(1, 16), qkv=Range(32, 512, 32)), "heads=16"),
])
def test_a_space_that_does_not_fit_the_source_is_refused_naming_the_field(minilm, space, field):
    assert SearchSpace.preset("mini", "kd") == KD_SPACE and SearchSpace.preset("mini", "mlm") == MLM_SPACE
    with pytest.raises(ValueError, match=field):
        warm_start(SuperBert(SuperBertConfig.from_space(space)), minilm, rewire=False)


def test_other_bad_inputs_are_refused(minilm):
    with pytest.raises(ValueError, match="vocab_size"):
        warm_start(SuperBert(SuperBertConfig.from_space(KD_SPACE, vocab_size=1000)), minilm, rewire=False)
    with pytest.raises(ValueError, match="importance must be"):
        warm_start(new_supernet(KD_SPACE), minilm, importance="random")
    with pytest.raises(TypeError, match="must be a BERT"):
        warm_start(new_supernet(KD_SPACE), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="depths"):
        taylor_importance(source_supernet(load_source(minilm)[0], "headwise"), [], depths=[7])


# ---------------------------------------------------------------------------------------------- the config hook
SMOKE_KD = dict(scale="smoke", space="smoke", objective="kd", max_seq_len=16, seed=0)


def test_defaults_keep_the_cold_start():
    cfg = TrainConfig(**SMOKE_KD)
    assert cfg.init_from is None and cfg.rewire is True
    torch.manual_seed(0)
    model, space = build_student(cfg)
    torch.manual_seed(0)
    cold = SuperBert(SuperBertConfig.from_space(space, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), cold.state_dict().values()))
    assert getattr(model.config, "warm_start", None) is None


def test_init_from_warm_starts_one_shot_training_and_sets_w_fit(minilm, tmp_path):
    cfg = TrainConfig(**SMOKE_KD, init_from="minilm-offline")
    torch.manual_seed(5)
    build_student(dataclasses.replace(cfg, init_from=None))
    after_cold = torch.get_rng_state()
    torch.manual_seed(5)
    model, _ = build_student(cfg)
    assert torch.equal(after_cold, torch.get_rng_state()), "the warm start must leave the global RNG as it found it"

    record = model.config.warm_start
    assert record["source"] == "minilm-offline" and record["rewire"] and record["importance"] == "taylor"
    order = record["hidden_order"]
    assert len(order) == 64 and len(set(order)) == 64 and max(order) < 384 and order != list(range(64))
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight,
                               minilm.embeddings.word_embeddings.weight[:, order], atol=0, rtol=0)

    objective = build_objective(cfg, model, torch.device("cpu"))
    w = objective.fit_dense.weight
    assert torch.equal(w[order, torch.arange(64)], torch.ones(64)) and w.sum() == 64 and objective.fit_dense.bias.abs().sum() == 0

    model.save_pretrained(tmp_path)  # the record travels with the saved SuperBERT
    assert SuperBertConfig.from_pretrained(tmp_path).warm_start == record

    further, _ = build_student(dataclasses.replace(cfg, arch="1/32/32/12/24"))  # further training: not warm-started
    assert getattr(further.config, "warm_start", None) is None


@pytest.mark.requires_data
def test_a_warm_started_run_keeps_its_supernet_before_one_shot_training(minilm, tmp_path):
    from atb.fitness import checkpoint_losses, probe_archs
    from atb.train import WARM_START_DIR, train

    cfg = TrainConfig(**{**SMOKE_KD, "max_seq_len": 32}, init_from="minilm-offline", steps=2, batch_size=2,
                      max_documents=8, warmup_steps=1, corpus="wikitext-2-valid")
    assert cfg.recipe == "teacher-rewired" and dataclasses.replace(cfg, rewire=False).recipe == "teacher"
    assert TrainConfig(**SMOKE_KD).recipe == "scratch"
    assert TrainConfig(**SMOKE_KD, kd_hidden_norm="teacher-variance").recipe == "scratch+hidden-variance"
    with pytest.raises(ValueError, match="kd_hidden_norm"):
        TrainConfig(**{**SMOKE_KD, "objective": "mlm"}, kd_hidden_norm="teacher-variance")
    torch.manual_seed(0)
    result = train(cfg, tmp_path / "run")
    warm = tmp_path / "run" / WARM_START_DIR
    assert (warm / "objective.json").exists() and (warm / "objective.safetensors").exists()
    before = SuperBert.from_pretrained(warm)
    assert before.config.warm_start["source"] == "minilm-offline"
    after = result.model.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.state_dict().items())  # trained since
    space = SearchSpace.preset("smoke", "kd")
    rows = checkpoint_losses({"warm start": warm, "trained": tmp_path / "run" / "final"}, probe_archs(space, 1),
                             max_examples=4, max_seq_len=32, batch_size=4)
    assert [r["arch"] for r in rows] == [str(space.smallest()), str(probe_archs(space, 1)[1]), str(space.largest())][
        :len(rows)] and all(r["warm start"] > 0 and r["trained"] > 0 for r in rows)
