"""Losses: MLM on masked tokens; KD = last-layer attention-score MSE + projected hidden-state MSE."""

import pytest
import torch
import torch.nn.functional as F

from atb.losses import KDLoss, masked_mse, mlm_loss


def test_mlm_loss_is_cross_entropy_over_masked_tokens_only():
    logits = torch.randn(2, 5, 11)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 4] = 3, 7
    expected = F.cross_entropy(torch.stack([logits[0, 1], logits[1, 4]]), torch.tensor([3, 7]))
    torch.testing.assert_close(mlm_loss(logits, labels), expected)


def test_masked_mse_ignores_padding_entries():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    keep = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    keep[1, :, 3, :] = keep[1, :, :, 3] = False
    base = masked_mse(a, b, keep)
    a2 = a.clone()
    a2[1, :, 3, :] += 100.0  # change only padded entries
    torch.testing.assert_close(masked_mse(a2, b, keep), base)
    torch.testing.assert_close(masked_mse(a, b, torch.ones_like(keep)), F.mse_loss(a, b))


def test_kd_loss_is_zero_for_identical_states_and_identity_projection():
    loss = KDLoss(max_student_hidden=16, teacher_hidden=16)
    with torch.no_grad():
        loss.fit_dense.weight.copy_(torch.eye(16))
        loss.fit_dense.bias.zero_()
    h, s = torch.randn(2, 6, 16), torch.randn(2, 4, 6, 6)
    mask = torch.ones(2, 6)
    mask[0, 4:] = 0
    out = loss(h, s, h.clone(), s.clone(), mask)
    assert out["loss"].item() == 0.0


def test_kd_loss_trains_the_projection_for_a_narrower_student():
    torch.manual_seed(0)
    loss = KDLoss(max_student_hidden=32, teacher_hidden=24)
    student_h = torch.randn(2, 5, 20, requires_grad=True)  # an elastic student of width 20 < 32
    out = loss(student_h, torch.randn(2, 12, 5, 5), torch.randn(2, 5, 24), torch.randn(2, 12, 5, 5))
    out["loss"].backward()
    assert out["attention"] > 0 and out["hidden"] > 0
    assert loss.fit_dense.weight.grad[:, :20].abs().sum() > 0 and loss.fit_dense.weight.grad[:, 20:].abs().sum() == 0
    assert student_h.grad is not None


def test_kd_loss_rejects_mismatched_heads():
    loss = KDLoss(8, 8)
    with pytest.raises(ValueError, match="number of heads"):
        loss(torch.randn(1, 3, 8), torch.randn(1, 4, 3, 3), torch.randn(1, 3, 8), torch.randn(1, 12, 3, 3))
