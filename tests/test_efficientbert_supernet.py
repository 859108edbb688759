"""EfficientBERT's supernet (sliced == extracted, parameter counts, the fixed supernet the official warm-up trains,
warm start from a BERT) and its warm-up distillation (layer-wise loss, teacher outputs of every layer, bitwise
resume, the KD proxy fitness)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch
from transformers import BertConfig, BertModel

from atb.efficientbert import BERT_FFN, PUBLISHED, mutate, parse
from atb.distill import KDProxyFitness, LayerwiseKD, WarmupConfig, candidate_loss, random_sampler, \
    warmup_distill
from atb.efficientbert.supernet import EfficientBertSuperNet, as_candidate, candidate_params, \
    fixed_supernet_candidate, ffn_params, supernet_config, uniform_candidate, warm_start_from_bert
from atb.teacher import Teacher


def tiny_bert(layers: int = 2, hidden: int = 24, heads: int = 4) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=4 * hidden, max_position_embeddings=32, attn_implementation="eager")
    return BertModel(config, add_pooling_layer=False).eval()


def batch(seed: int = 0, rows: int = 3, length: int = 9) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (rows, length), generator=g)
    mask = torch.ones(rows, length, dtype=torch.long)
    mask[1, 6:] = 0
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}


def random_candidate(rng: random.Random, layers: int):
    return tuple(mutate(parse(PUBLISHED[i % len(PUBLISHED)]), rng) for i in range(layers))


def test_sliced_candidate_equals_the_extracted_model_and_its_parameter_count():
    bert = tiny_bert()
    net = EfficientBertSuperNet(supernet_config(bert.config)).eval()
    b, rng = batch(), random.Random(0)
    for _ in range(5):
        candidate = random_candidate(rng, 2)
        model = net.extract(candidate).eval()
        sliced = net(b["input_ids"], ffns=candidate, attention_mask=b["attention_mask"]).last_hidden_state
        alone = model(b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        torch.testing.assert_close(sliced, alone, rtol=0, atol=0)
        assert candidate_params(net.config, candidate) == sum(p.numel() for p in model.parameters())
        assert model.config.ffn_expressions == [str(c) for c in candidate]
    with pytest.raises(ValueError, match="2 layers"):
        net(b["input_ids"], ffns=candidate[:1])


@pytest.mark.parametrize("max_stacks", [4, 2])
def test_fixed_supernet_candidate_is_the_whole_supernet_and_runs(max_stacks):
    """The official warm-up's network: every layer max_stacks gelu blocks at full width, i.e. every supernet weight."""
    net = EfficientBertSuperNet(supernet_config(tiny_bert().config, max_stacks=max_stacks)).eval()
    fixed = fixed_supernet_candidate(net.config)
    assert [str(f) for f in fixed] == [f"linear{max_stacks}_1(gelu(linear{max_stacks}_1(x,wb1)),wb2)"] * 2
    ffn_weights = sum(p.numel() for layer in net.layer for p in layer.ffn.parameters())
    assert sum(ffn_params(f, 24, net.config.intermediate_size) for f in fixed) == ffn_weights
    pooler = 24 * 24 + 24  # candidate_params counts the standalone model's pooler, which the supernet has not
    assert candidate_params(net.config, fixed) == sum(p.numel() for p in net.parameters()) + pooler
    smaller = as_candidate([f"linear{max_stacks}_2(gelu(linear{max_stacks}_2(x,wb1)),wb2)"] * 2)
    assert candidate_params(net.config, smaller) < candidate_params(net.config, fixed)
    model, b = net.extract(fixed).eval(), batch()
    extracted = model.state_dict()
    for name, tensor in net.state_dict().items():  # the extracted network holds every supernet weight
        assert torch.equal(extracted[name], tensor), name
    sliced = net(b["input_ids"], ffns=fixed, attention_mask=b["attention_mask"]).last_hidden_state
    alone = model(b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    assert sliced.shape == (3, 9, 24) and torch.isfinite(sliced).all()
    torch.testing.assert_close(sliced, alone, rtol=0, atol=0)


def test_supernet_round_trips_through_save_pretrained(tmp_path):
    net = EfficientBertSuperNet(supernet_config(tiny_bert().config, max_stacks=2)).eval()
    net.save_pretrained(tmp_path)
    again = EfficientBertSuperNet.from_pretrained(tmp_path).eval()
    assert again.config.max_stacks == 2 and len(again.layer[0].ffn.blocks) == 2
    candidate, b = as_candidate(["linear2_3(gelu(linear2_3(x,wb1)),wb2)"] * 2), batch()
    torch.testing.assert_close(net(b["input_ids"], ffns=candidate).last_hidden_state,
                               again(b["input_ids"], ffns=candidate).last_hidden_state)


@pytest.mark.parametrize("importance", ["none", "magnitude"])
def test_warm_start_copies_the_bert_and_deals_its_ffn_neurons_to_the_blocks(importance):
    bert = tiny_bert()
    net = warm_start_from_bert(EfficientBertSuperNet(supernet_config(bert.config)).eval(), bert,
                               importance=importance)
    b = batch()
    layer, block0, block1 = bert.encoder.layer[0], net.layer[0].ffn.blocks[0], net.layer[0].ffn.blocks[1]
    torch.testing.assert_close(net.layer[0].attention.self.query.weight, layer.attention.self.query.weight)
    rows = block0.dense1.weight @ layer.intermediate.dense.weight.T  # each copied neuron matches one source row
    assert torch.isclose(rows.max(1).values, (block0.dense1.weight ** 2).sum(1)).all()
    if importance == "none":
        torch.testing.assert_close(block1.dense1.weight, layer.intermediate.dense.weight[24:48])
    else:  # the first block holds the neurons of largest magnitude
        norms = [block.dense1.weight.norm(dim=1).mean() for block in net.layer[0].ffn.blocks]
        assert norms[0] >= norms[3]
    # every block of the full-width four-stack together holds all of the source's FFN neurons
    held = torch.cat([blk.dense1.weight for blk in net.layer[0].ffn.blocks])
    assert torch.allclose(held.sum(0), layer.intermediate.dense.weight.sum(0), atol=1e-5)
    out = net(b["input_ids"], ffns=uniform_candidate(net.config), attention_mask=b["attention_mask"])
    assert out.last_hidden_state.shape == (3, 9, 24)
    with pytest.raises(ValueError, match="num_hidden_layers"):
        warm_start_from_bert(EfficientBertSuperNet(supernet_config(tiny_bert(layers=3).config)), bert)


def test_teacher_returns_every_layer_and_the_last_layer_as_before():
    teacher, b = Teacher(tiny_bert(layers=3)), batch()
    last = teacher(b["input_ids"], attention_mask=b["attention_mask"])
    every = teacher(b["input_ids"], attention_mask=b["attention_mask"], all_layers=True)
    assert last.hidden_states is None and len(every.hidden_states) == 4 and len(every.all_attention_scores) == 3
    torch.testing.assert_close(every.all_attention_scores[-1], last.attention_scores)
    torch.testing.assert_close(every.hidden_states[-1], last.last_hidden_state)


def test_layerwise_kd_is_zero_for_the_teacher_itself_and_maps_layers_by_interval():
    bert = tiny_bert(layers=2)
    bert.encoder.layer[0].intermediate.dense.weight.data[24:] = 0  # FFN neurons 24.. unused: the first block is exact
    bert.encoder.layer[1].intermediate.dense.weight.data[24:] = 0
    bert.encoder.layer[0].intermediate.dense.bias.data[24:] = -1e4  # gelu(-1e4) = 0
    bert.encoder.layer[1].intermediate.dense.bias.data[24:] = -1e4
    net = warm_start_from_bert(EfficientBertSuperNet(supernet_config(bert.config)).eval(), bert, importance="none")
    teacher, b = Teacher(bert), batch()
    kd = LayerwiseKD(teacher, 2, 24)
    terms = candidate_loss(net, kd, b, uniform_candidate(net.config))
    assert terms.loss.item() < 1e-9
    worse = candidate_loss(net, kd, b, as_candidate(["linear1_2(gelu(linear1_2(x,wb1)),wb2)"] * 2))
    assert worse.hidden > 1e-6 and worse.attention > 0  # layer 2's scores read layer 1's changed output
    assert LayerwiseKD(Teacher(tiny_bert(layers=4)), 2, 24).interval == 2
    with pytest.raises(ValueError, match="multiple"):
        LayerwiseKD(Teacher(tiny_bert(layers=3)), 2, 24)


def _warmup(tmp_path, max_steps=None, precision="auto"):
    bert = tiny_bert()
    torch.manual_seed(1)
    net = EfficientBertSuperNet(supernet_config(bert.config))
    cfg = WarmupConfig(steps=6, batch_size=3, lr=1e-3, warmup_steps=1, checkpoint_every=2, precision=precision)
    sample = random_sampler(lambda rng: random_candidate(rng, 2), seed=0)
    result = warmup_distill(net, Teacher(bert), sample, cfg, tmp_path, batch=lambda step: batch(step),
                            max_steps=max_steps)
    return net, result


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16"])  # the default, and each precision explicitly
def test_warmup_distillation_lowers_the_loss_and_resumes_bitwise(tmp_path, precision):
    straight, result = _warmup(tmp_path / "straight", precision=precision)
    assert result["steps"] == 6 and (tmp_path / "straight" / "final" / "config.json").exists()
    _warmup(tmp_path / "resumed", max_steps=3, precision=precision)  # killed after step 3 (last checkpoint: step 2)
    resumed, again = _warmup(tmp_path / "resumed", precision=precision)
    assert again["steps"] == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    def steps(run: str) -> list[str]:  # the log without the timings
        return [line.split('"seconds"')[0] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert len(steps("resumed")) == 6 and steps("resumed") == steps("straight")
    losses = [float(line.split('"loss": ')[1].split(",")[0]) for line in steps("straight")]
    assert losses[-1] < losses[0]


def test_kd_proxy_fitness_prefers_the_teachers_own_ffn():
    """A supernet of the teacher's FFN width, warm-started: every block holds the teacher's whole FFN, so one gelu
    block at full width (BERT's FFN) is the teacher's own layer: fitness ~0, above every other candidate's."""
    bert = tiny_bert()
    config = supernet_config(bert.config, intermediate_size=bert.config.intermediate_size)
    net = warm_start_from_bert(EfficientBertSuperNet(config).eval(), bert, importance="magnitude")
    fitness = KDProxyFitness(net, Teacher(bert), [batch(0), batch(1)])
    own = fitness(uniform_candidate(net.config, BERT_FFN))
    others = {text: fitness(uniform_candidate(net.config, text)) for text in (
        "linear1_4(gelu(linear1_4(x,wb1)),wb2)",  # a quarter of its neurons
        "linear4_1(gelu(linear4_1(x,wb1)),wb2)",  # its FFN applied four times
        "sigmoid(linear1_1(gelu(linear1_1(x,wb1)),wb2))",  # the same neurons, another expression
    )}
    assert -1e-6 < own <= 0, own
    for text, value in others.items():
        assert value < own - 1e-5, (text, value, own)
    assert fitness(uniform_candidate(net.config)) == own  # deterministic


def test_minilm_warm_start_in_a_fresh_process_matches_minilm_at_full_width():
    """The offline MiniLM copied in. At MiniLM's own FFN width (1536) every block holds all of its neurons (reordered
    by importance, which does not change the sum), so one gelu block, BERT's FFN at ratio 1, computes MiniLM. At the
    default width (the hidden width, 384) the neurons are dealt out a quarter per block: one block is not MiniLM."""
    code = """
import torch
from transformers import AutoModel
from atb.teacher import offline_teacher_path
from atb.efficientbert.supernet import EfficientBertSuperNet, supernet_config, uniform_candidate, warm_start_from_bert
bert = AutoModel.from_pretrained(offline_teacher_path(), local_files_only=True).eval()
ids = torch.randint(1000, 5000, (2, 12))
with torch.no_grad():
    ref = bert(ids).last_hidden_state
    full = supernet_config(bert.config, max_stacks=1, intermediate_size=bert.config.intermediate_size)
    net = warm_start_from_bert(EfficientBertSuperNet(full).eval(), importance="magnitude")
    out = net(ids, ffns=uniform_candidate(net.config)).last_hidden_state
    assert net.config.intermediate_size == 1536
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    quarter = warm_start_from_bert(EfficientBertSuperNet(supernet_config(bert.config)).eval(), importance="magnitude")
    out = quarter(ids, ffns=uniform_candidate(quarter.config)).last_hidden_state
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=-1).mean().item()
    assert quarter.config.intermediate_size == 384 and 0.3 < cos < 0.999, cos
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
