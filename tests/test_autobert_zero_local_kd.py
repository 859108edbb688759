"""Layer-local distillation of AutoBERT-Zero's convolution branches (issue #21): the loss falls, only the convolution
branch trains (the standard-attention candidate is bit-identical), resuming is bitwise, config errors name the field."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from atb.autobert_zero.local_kd import LocalKDConfig, draw_kernels, layer_local_losses, train_convolutions
from atb.autobert_zero.space import standard_candidate
from atb.autobert_zero.supernet import AutoBertZeroSuperNet, supernet_config, warm_start_from_bert
from atb.teacher import Teacher

KERNELS = (3, 5, 9)


def tiny_bert(layers: int = 2, hidden: int = 24, heads: int = 4) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    bert = BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # larger than BERT's initialisation, so attention mixes tokens (a target worth learning)
        for name, p in bert.named_parameters():
            if p.ndim == 2 and not name.startswith("embeddings"):
                p.normal_(0.0, 0.2)
    return bert


def warm_supernet(bert: BertModel, conv_type: str = "light") -> AutoBertZeroSuperNet:
    torch.manual_seed(1)
    net = AutoBertZeroSuperNet(supernet_config(bert.config, KERNELS, conv_type))
    return warm_start_from_bert(net, bert).eval()


def batch(seed: int = 0, rows: int = 3, length: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (rows, length), generator=g)
    mask = torch.ones(rows, length, dtype=torch.long)
    mask[1, 7:] = 0
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}


def run(tmp_path, *, steps=6, max_steps=None, conv_type="light", fixed=False, lr=1e-2, bert=None, net=None,
        precision="auto"):
    bert = bert or tiny_bert()
    net = net or warm_supernet(bert, conv_type)
    cfg = LocalKDConfig(steps=steps, batch_size=3, lr=lr, warmup_steps=1, checkpoint_every=2, precision=precision)
    result = train_convolutions(net, Teacher(bert), cfg, tmp_path, max_steps=max_steps,
                                batch=(lambda step: batch(0)) if fixed else (lambda step: batch(step)))
    return net, result


@pytest.mark.parametrize("conv_type", ["light", "dynamic"])
def test_the_loss_falls_and_only_the_convolution_branch_changes(tmp_path, conv_type):
    bert = tiny_bert()
    net = warm_supernet(bert, conv_type)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    b = batch(5)
    standard = standard_candidate(net.config.num_hidden_layers)
    with torch.no_grad():
        attention_before = net(b["input_ids"], standard, attention_mask=b["attention_mask"]).last_hidden_state
        conv_before = sum(layer_local_losses(net, Teacher(bert), batch(0), [9, 9])).item()
    net, result = run(tmp_path, steps=30, conv_type=conv_type, fixed=True, bert=bert, net=net)
    assert result["steps"] == 30 and result["loss_last"] < 0.75 * result["loss_first"], result
    assert result["seconds"] > 0 and result["cpu_seconds"] > 0
    with torch.no_grad():
        assert sum(layer_local_losses(net, Teacher(bert), batch(0), [9, 9])).item() < conv_before
        attention_after = net(b["input_ids"], standard, attention_mask=b["attention_mask"]).last_hidden_state
    assert torch.equal(attention_before, attention_after)  # the warm-started attention, bit for bit
    trained = set(net.conv_parameters())
    assert trained and all(".conv." in k for k in trained)
    for name, value in net.state_dict().items():
        if name in trained:
            assert not torch.equal(value, before[name]), f"{name} did not train"
        else:
            assert torch.equal(value, before[name]), f"{name} changed but is not the convolution branch's"
    assert not net.training
    final = AutoBertZeroSuperNet.from_pretrained(tmp_path / "final")
    for name, value in final.state_dict().items():
        assert torch.equal(value, net.state_dict()[name]), name
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 30 and {"loss", "layers", "kernels", "seconds", "cpu_seconds"} <= set(log[0])
    assert {k for r in log for k in r["kernels"]} == set(KERNELS)  # every kernel size trained the shared kernel


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_resuming_after_max_steps_gives_the_uninterrupted_weights(tmp_path, precision):
    straight, result = run(tmp_path / "straight", precision=precision)
    assert result["steps"] == 6 and (tmp_path / "straight" / "final" / "config.json").exists()
    _, partial = run(tmp_path / "resumed", max_steps=3, precision=precision)  # killed after step 3 (checkpoint: 2)
    assert partial["steps"] == 3 and not (tmp_path / "resumed" / "final").exists()
    resumed, again = run(tmp_path / "resumed", precision=precision)
    assert again["steps"] == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

    def steps(run_name: str) -> list[str]:  # the log without the timings
        return [line.split('"seconds"')[0] for line in (tmp_path / run_name / "log.jsonl").read_text().splitlines()]

    assert len(steps("resumed")) == 6 and steps("resumed") == steps("straight")
    _, cached = run(tmp_path / "straight", precision=precision)  # a finished run does nothing more
    assert cached["steps"] == 6 and cached["loss_last"] == result["loss_last"]


def test_kernel_draws_are_a_function_of_the_step():
    assert draw_kernels([3, 5, 9], 4, 0, 7) == draw_kernels([3, 5, 9], 4, 0, 7)
    assert len({tuple(draw_kernels([3, 5, 9], 4, 0, s)) for s in range(10)}) > 1


def test_a_teacher_of_another_depth_or_width_is_refused(tmp_path):
    net = warm_supernet(tiny_bert())
    with pytest.raises(ValueError, match="3 layers, the supernet 2"):
        train_convolutions(net, Teacher(tiny_bert(layers=3)), LocalKDConfig(steps=1), tmp_path,
                           batch=lambda step: batch(step))
    with pytest.raises(ValueError, match="hidden size is 32"):
        train_convolutions(net, Teacher(tiny_bert(hidden=32)), LocalKDConfig(steps=1), tmp_path,
                           batch=lambda step: batch(step))
    with pytest.raises(ValueError, match="kernel 7"):
        layer_local_losses(net, Teacher(tiny_bert()), batch(), [7, 3])


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", 0), ("lr", 0.0), ("lr", -1e-3),
                                          ("warmup_steps", -1), ("max_documents", 0), ("max_seq_len", 0),
                                          ("checkpoint_every", 0), ("seed", -1), ("steps", 2.5),
                                          ("max_grad_norm", 0.0), ("weight_decay", -0.1)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"'{field}'"):
        LocalKDConfig(**{field: value})


def test_config_defaults_are_valid_and_give_the_warm_up_batch_settings():
    cfg = LocalKDConfig(batch_size=4, max_seq_len=64, max_documents=None, seed=3)
    warm = cfg.batch_config()
    assert (warm.batch_size, warm.max_seq_len, warm.max_documents, warm.seed, warm.corpus) == (4, 64, None, 3,
                                                                                               "pretrain")
