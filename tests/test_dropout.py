"""atb.dropout: the keep mask's rate, F.dropout's semantics (scaling, eval, p = 0), seeded repeatability, and the
models' dropout layers are it."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from atb import AtbBertConfig, AtbBertForSequenceClassification
from atb.dropout import Dropout, bernoulli_dropout, cheap_masks, dropout, dropout_matmul, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_keep_mask_keeps_one_minus_p(p):
    torch.manual_seed(0)
    mask = keep_mask((64, 128, 384), p)
    n = mask.numel()
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(mask.float().mean().item() - (1 - p)) < 6 * sd  # a 6-sigma bound: a biased lane would fail
    lanes = mask.view(-1, 4).float().mean(0)  # every 16-bit lane of the 64-bit words, the top one too
    assert (lanes - (1 - p)).abs().max().item() < 6 * (p * (1 - p) / (n / 4)) ** 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_mask_in_a_floating_dtype_is_the_bool_mask_written_as_zeros_and_ones(dtype):
    """keep_mask(dtype=...) compares straight into the dtype: the same draws, the same mask as converting bools."""
    torch.manual_seed(7)
    bools = keep_mask((6, 5, 33), 0.1)
    torch.manual_seed(7)
    numbers = keep_mask((6, 5, 33), 0.1, dtype=dtype)
    assert bools.dtype == torch.bool and numbers.dtype == dtype
    assert torch.equal(numbers, bools.to(dtype))


def test_kept_units_are_scaled_like_f_dropout_and_dropped_ones_are_zero():
    torch.manual_seed(0)
    x = torch.randn(8, 16, 32, requires_grad=True)
    y = dropout(x, 0.25)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()  # the gradient is the same mask and scale
    torch.testing.assert_close(x.grad, kept.float() / 0.75)


@pytest.mark.parametrize("cheap", [True, False])
def test_dropout_matmul_is_dropout_then_matmul(cheap):
    """Attention's dropout scales the product instead of the probabilities: the same mask, the same values and
    gradients up to rounding (on a CPU), and exactly dropout(x) @ v with torch's own masks."""
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    v = torch.randn(2, 3, 16, 8, requires_grad=True)
    with contextlib.nullcontext() if cheap else bernoulli_dropout():
        torch.manual_seed(5)
        expected = dropout(x, 0.1) @ v
        grads = torch.autograd.grad(expected.sum(), (x, v))
        torch.manual_seed(5)
        ours = dropout_matmul(x, 0.1, v)
    if cheap:
        torch.testing.assert_close(ours, expected)
    else:
        assert torch.equal(ours, expected)
    for a, b in zip(torch.autograd.grad(ours.sum(), (x, v)), grads):
        torch.testing.assert_close(a, b)
    assert torch.equal(dropout_matmul(x, 0.1, v, training=False), x @ v)


def test_eval_mode_and_p_zero_are_the_identity():
    x = torch.randn(4, 8)
    assert dropout(x, 0.1, training=False) is x and dropout(x, 0.0) is x
    layer = Dropout(0.1).eval()
    assert layer(x) is x
    assert Dropout(0.1).state_dict() == torch.nn.Dropout(0.1).state_dict()


def test_the_same_seed_draws_the_same_mask_and_a_bad_p_is_refused():
    torch.manual_seed(3)
    a = dropout(torch.ones(1000), 0.1)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(torch.ones(1000), 0.1))
    with pytest.raises(ValueError, match="dropout probability"):
        keep_mask((4,), 1.0)


def test_the_rate_matches_f_dropout_in_a_training_model():
    """The models use it: a training forward differs from eval, and it drops what F.dropout would, on average."""
    torch.manual_seed(0)
    model = AtbBertForSequenceClassification(AtbBertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                           intermediate_size=64, vocab_size=100))
    assert any(isinstance(m, Dropout) for m in model.modules())
    x = torch.ones(200_000)
    torch.manual_seed(0)
    ours = (dropout(x, 0.1) == 0).float().mean().item()
    theirs = (F.dropout(x, 0.1) == 0).float().mean().item()
    assert abs(ours - theirs) < 0.005


def test_within_bernoulli_dropout_torch_draws_the_masks():
    """The earlier engine (benchmarks/bench_training.py): F.dropout's own stream, restored on leaving."""
    assert cheap_masks("cpu")
    with bernoulli_dropout():
        assert not cheap_masks("cpu")
        torch.manual_seed(1)
        ours = dropout(torch.ones(100), 0.5)
        torch.manual_seed(1)
        assert torch.equal(ours, F.dropout(torch.ones(100), 0.5))
    assert cheap_masks("cpu") and not cheap_masks("meta")
