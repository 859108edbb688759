"""The objectives: MLM = cross-entropy of the masked tokens (one function, used by every model); KD = last-layer
attention-score MSE + hidden-state MSE through W_fit, which lives in the objective and is saved beside the SuperPLM."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import BertConfig, BertModel

from atb import AtbBertConfig, AtbBertForMaskedLM, SearchSpace, SuperBert, SuperBertConfig
from atb.objectives import (
    OBJECTIVE_JSON,
    OBJECTIVE_WEIGHTS,
    KDObjective,
    MLMObjective,
    copy_objective,
    masked_mse,
    read_objective,
    soft_cross_entropy,
)
from atb.modeling import masked_lm_loss
from atb.space import Arch
from atb.teacher import Teacher


def tiny_teacher(hidden: int = 24, heads: int = 12) -> Teacher:
    """A random one-layer BERT with the smoke KD space's 12 heads (vocabulary of 100 ids)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=32, attn_implementation="eager")
    return Teacher(BertModel(config), name="tiny")


def batch_of(ids: torch.Tensor, real: list[int]) -> dict[str, torch.Tensor]:
    mask = torch.zeros_like(ids)
    for row, n in enumerate(real):
        mask[row, :n] = 1
    labels = torch.full_like(ids, -100)
    labels[:, 1] = ids[:, 1]
    labels[0, 3] = ids[0, 3]
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask, "labels": labels}


# ------------------------------------------------------------------------------------------------ MLM
def test_masked_lm_loss_is_cross_entropy_over_masked_tokens_only():
    logits = torch.randn(2, 5, 11)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 4] = 3, 7
    expected = F.cross_entropy(torch.stack([logits[0, 1], logits[1, 4]]), torch.tensor([3, 7]))
    torch.testing.assert_close(masked_lm_loss(logits, labels), expected)
    empty = masked_lm_loss(torch.randn(0, 11, requires_grad=True), torch.zeros(0, dtype=torch.long))
    assert empty.item() == 0.0 and empty.requires_grad


def test_every_mlm_model_uses_the_one_masked_lm_loss():
    torch.manual_seed(0)
    ids = torch.randint(1000, 5000, (2, 6))
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5] = 7, 9
    arch = Arch(1, 32, 32, 2, 32)
    standalone = AtbBertForMaskedLM(AtbBertConfig.from_arch(arch)).eval()
    out = standalone(ids, labels=labels)
    torch.testing.assert_close(out.loss, masked_lm_loss(out.logits, labels))
    supernet = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", "mlm"))).eval()
    out = supernet(ids, arch=arch, labels=labels)  # logits only at the masked positions
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([7, 9])))
    assert supernet(ids, arch=arch, labels=torch.full_like(ids, -100)).loss.item() == 0.0


def test_soft_cross_entropy_is_cross_entropy_against_probabilities():
    logits, targets = torch.randn(4, 9), torch.randn(4, 9).softmax(-1)
    torch.testing.assert_close(soft_cross_entropy(logits, targets), F.cross_entropy(logits, targets))


def test_mlm_objective_with_soft_targets_and_as_a_share_of_a_global_batch():
    torch.manual_seed(0)
    supernet = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", "mlm"))).eval()
    objective, arch = MLMObjective(), Arch(1, 48, 64, 2, 32)
    batch = batch_of(torch.randint(1000, 5000, (4, 7)), [7, 5, 6, 7])
    out = objective(supernet, batch, arch)
    assert out.loss == supernet(batch["input_ids"], arch=arch, attention_mask=batch["attention_mask"],
                                labels=batch["labels"]).loss
    targets = MLMObjective.soft_targets(out.logits)
    assert not targets.requires_grad
    torch.testing.assert_close(objective(supernet, batch, arch, targets).loss, F.cross_entropy(out.logits, targets))
    halves = [{k: v[r::2] for k, v in batch.items()} for r in (0, 1)]  # two ranks' rows: 3 and 2 masked tokens
    shares = [objective(supernet, half, arch, share_of=batch).loss for half in halves]
    torch.testing.assert_close(sum(shares), out.loss)


# ------------------------------------------------------------------------------------------------- KD
def test_masked_mse_ignores_padding_entries():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    keep = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    keep[1, :, 3, :] = keep[1, :, :, 3] = False
    base = masked_mse(a, b, keep)
    a2 = a.clone()
    a2[1, :, 3, :] += 100.0  # change only padded entries
    torch.testing.assert_close(masked_mse(a2, b, keep), base)
    torch.testing.assert_close(masked_mse(a, b, torch.ones_like(keep)), F.mse_loss(a, b))
    # the count of a broadcast mask is its count times the broadcast factor: exactly the expanded mask's
    expanded = keep.expand_as(a).clone()
    assert torch.equal(masked_mse(a, b, keep), masked_mse(a, b, expanded))
    torch.testing.assert_close(masked_mse(a, b, keep), ((a - b)[expanded] ** 2).sum() / expanded.sum())


def test_kd_loss_is_zero_for_identical_states_and_identity_projection():
    objective = KDObjective(tiny_teacher(hidden=16, heads=4), max_student_hidden=16)
    with torch.no_grad():
        objective.fit_dense.weight.copy_(torch.eye(16))
        objective.fit_dense.bias.zero_()
    h, s = torch.randn(2, 6, 16), torch.randn(2, 4, 6, 6)
    mask = torch.ones(2, 6)
    mask[0, 4:] = 0
    out = objective.loss(h, s, h.clone(), s.clone(), mask)
    assert out.loss.item() == 0.0 and out.attention.item() == 0.0 and out.hidden.item() == 0.0


def test_kd_loss_trains_the_projection_for_a_narrower_student():
    torch.manual_seed(0)
    objective = KDObjective(tiny_teacher(), max_student_hidden=32)
    student_h = torch.randn(2, 5, 20, requires_grad=True)  # an elastic student of width 20 < 32
    out = objective.loss(student_h, torch.randn(2, 12, 5, 5), torch.randn(2, 5, 24), torch.randn(2, 12, 5, 5))
    out.loss.backward()
    assert out.attention > 0 and out.hidden > 0
    grad = objective.fit_dense.weight.grad
    assert grad[:, :20].abs().sum() > 0 and grad[:, 20:].abs().sum() == 0
    assert student_h.grad is not None


def test_kd_hidden_term_normalised_by_the_teacher_variance_is_the_unexplained_fraction():
    """recipe 2b (#12): predicting the teacher's per-dimension mean scores 1 whatever the teacher's scale; the
    plain term scales with the teacher's variance, the normalised one does not; padding does not count."""
    torch.manual_seed(0)
    teacher = tiny_teacher(hidden=16, heads=4)
    plain, normed = KDObjective(teacher, 16), KDObjective(teacher, 16, hidden_norm="teacher-variance")
    normed.load_state_dict(plain.state_dict())
    for objective in (plain, normed):
        with torch.no_grad():
            objective.fit_dense.weight.zero_()
            objective.fit_dense.bias.zero_()
    mask = torch.ones(2, 6)
    mask[1, 4:] = 0
    scores = torch.randn(2, 4, 6, 6)
    teacher_h = torch.randn(2, 6, 16) * 7.0
    teacher_h[1, 4:] = 1e6  # padding
    real = teacher_h[mask.bool()]
    with torch.no_grad():
        normed.fit_dense.bias.copy_(real.mean(0))
        plain.fit_dense.bias.copy_(real.mean(0))
    student_h = torch.randn(2, 6, 16)
    out = normed.loss(student_h, scores, teacher_h, scores, mask)
    torch.testing.assert_close(out.hidden, torch.tensor(1.0))
    assert out.attention == 0.0
    assert plain.loss(student_h, scores, teacher_h, scores, mask).hidden > 30  # ~ the variance, 49
    scaled = normed.loss(student_h, scores, teacher_h * 3, scores, mask)  # bias no longer the mean: > 1
    assert scaled.hidden > 1.0
    with pytest.raises(ValueError, match="hidden_norm"):
        KDObjective(teacher, 16, hidden_norm="layer")


def test_kd_loss_rejects_mismatched_heads():
    objective = KDObjective(tiny_teacher(hidden=8, heads=4), 8)
    with pytest.raises(ValueError, match="number of heads"):
        objective.loss(torch.randn(1, 3, 8), torch.randn(1, 4, 3, 3), torch.randn(1, 3, 8), torch.randn(1, 12, 3, 3))


def test_kd_objective_runs_the_teacher_and_its_shares_add_up_to_the_global_loss():
    teacher = tiny_teacher()
    objective = KDObjective(teacher, max_student_hidden=64)
    assert [name for name, _ in objective.named_parameters()] == ["fit_dense.weight", "fit_dense.bias"]
    assert set(objective.state_dict()) == {"fit_dense.weight", "fit_dense.bias"}  # the teacher is not state
    supernet = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", "kd"))).eval()
    batch, arch = batch_of(torch.randint(5, 100, (4, 7)), [7, 3, 6, 7]), Arch(2, 48, 64, 12, 36)
    with torch.no_grad():
        out = objective(supernet, batch, arch)
        again = objective(supernet, batch, arch, objective.targets(batch))
        s = supernet(batch["input_ids"], arch=arch, attention_mask=batch["attention_mask"])
        t = teacher(batch["input_ids"], attention_mask=batch["attention_mask"])
        direct = objective.loss(s.last_hidden_state, s.attention_scores, t.last_hidden_state, t.attention_scores,
                                batch["attention_mask"])
        halves = [{k: v[r::2] for k, v in batch.items()} for r in (0, 1)]  # unequal real tokens per half
        shares = [objective(supernet, half, arch, share_of=batch) for half in halves]
    assert out.loss == again.loss == direct.loss and out.attention > 0 and out.hidden > 0
    for term in ("loss", "attention", "hidden"):
        torch.testing.assert_close(sum(getattr(x, term) for x in shares), getattr(out, term))


def test_teacher_layer_maps_every_student_layer_to_the_same_relative_depth():
    from atb.objectives import teacher_layer

    assert [teacher_layer(l, 4, 6) for l in range(5)] == [0, 2, 3, 5, 6]  # the embeddings, then ceil(l * 6 / 4)
    assert [teacher_layer(l, 6, 6) for l in range(7)] == list(range(7))
    assert [teacher_layer(l, 3, 12) for l in range(4)] == [0, 4, 8, 12]  # TinyBERT's g(m) = 3m for 4 of 12 layers
    with pytest.raises(ValueError, match="outside"):
        teacher_layer(5, 4, 6)


def test_layerwise_kd_averages_every_layer_against_its_teacher_layer_and_its_shares_add_up():
    from atb.objectives import teacher_layer

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=24, num_hidden_layers=4, num_attention_heads=12,
                        intermediate_size=48, max_position_embeddings=32, attn_implementation="eager")
    teacher = Teacher(BertModel(config), name="tiny4")
    objective = KDObjective(teacher, max_student_hidden=64, layers="uniform")
    supernet = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("smoke", "kd"))).eval()
    batch, arch = batch_of(torch.randint(5, 100, (4, 7)), [7, 3, 6, 7]), Arch(2, 48, 64, 12, 36)
    with torch.no_grad():
        out = objective(supernet, batch, arch)
        s = supernet(batch["input_ids"], arch=arch, attention_mask=batch["attention_mask"], output_all_layers=True)
        t = teacher(batch["input_ids"], attention_mask=batch["attention_mask"], all_layers=True)
        mask = batch["attention_mask"]
        per_layer = [objective.loss(s.hidden_states[l], s.all_attention_scores[l - 1],
                                    t.hidden_states[teacher_layer(l, 2, 4)],
                                    t.all_attention_scores[teacher_layer(l, 2, 4) - 1], mask) for l in (1, 2)]
        embeddings = objective.hidden_loss(s.hidden_states[0], t.hidden_states[0], mask)
        halves = [{k: v[r::2] for k, v in batch.items()} for r in (0, 1)]
        shares = [objective(supernet, half, arch, share_of=batch) for half in halves]
    assert len(s.hidden_states) == 3 and len(s.all_attention_scores) == 2  # 2 active layers (and the embeddings)
    torch.testing.assert_close(s.hidden_states[-1], s.last_hidden_state)
    torch.testing.assert_close(out.attention, (per_layer[0].attention + per_layer[1].attention) / 2)
    torch.testing.assert_close(out.hidden, (embeddings + per_layer[0].hidden + per_layer[1].hidden) / 3)
    last = KDObjective(teacher, max_student_hidden=64)(supernet, batch, arch)  # the paper's: the last layer only
    torch.testing.assert_close(last.attention, per_layer[1].attention)
    for term in ("loss", "attention", "hidden"):  # layer means of global-batch means: shares still add up
        torch.testing.assert_close(sum(getattr(x, term) for x in shares), getattr(out, term))
    with pytest.raises(ValueError, match="KD layers"):
        KDObjective(teacher, 64, layers="all")


def test_kd_objective_saves_and_loads_w_fit_and_the_teacher_name(tmp_path):
    teacher = tiny_teacher()
    teacher.model.save_pretrained(tmp_path / "teacher")
    teacher.name = str(tmp_path / "teacher")  # a local folder: load_teacher reads it back without the hub
    objective = KDObjective(teacher, max_student_hidden=64)
    objective.save(tmp_path / "final")
    record = read_objective(tmp_path / "final")
    assert record["objective"] == "kd" and record["teacher"] == teacher.name and record["max_student_hidden"] == 64
    assert record["hidden_norm"] == "none"
    KDObjective(teacher, 64, hidden_norm="teacher-variance").save(tmp_path / "normed")
    assert KDObjective.load(tmp_path / "normed").hidden_norm == "teacher-variance"  # the fitness scores alike
    KDObjective(teacher, 64, layers="uniform").save(tmp_path / "layerwise")
    assert KDObjective.load(tmp_path / "layerwise").layers == "uniform"
    assert KDObjective.load(tmp_path / "normed").layers == "last"
    assert set(load_file(tmp_path / "final" / OBJECTIVE_WEIGHTS)) == {"fit_dense.weight", "fit_dense.bias"}
    copy_objective(tmp_path / "final", tmp_path / "superbert")  # e.g. beside the same weights in another form
    loaded = KDObjective.load(tmp_path / "superbert")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), objective.state_dict().values()))
    assert loaded.teacher.name == teacher.name and loaded.teacher.hidden_size == 24
    with pytest.raises(ValueError, match="trained against the teacher"):
        KDObjective.load(tmp_path / "final", teacher="minilm-offline")
    (tmp_path / "final" / OBJECTIVE_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=OBJECTIVE_WEIGHTS):
        KDObjective.load(tmp_path / "final")
    with pytest.raises(FileNotFoundError, match=OBJECTIVE_JSON):
        read_objective(tmp_path)
    MLMObjective(inplace_distillation=True).save(tmp_path / "mlm")
    assert json.loads((tmp_path / "mlm" / OBJECTIVE_JSON).read_text()) == {"objective": "mlm",
                                                                           "inplace_distillation": True}
