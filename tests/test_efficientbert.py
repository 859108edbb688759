"""EfficientBERT's expression space and expression FFN (atb.efficientbert)."""

from __future__ import annotations

import random

import pytest
import torch

from atb.efficientbert import BERT_FFN, PUBLISHED, LayerFFN, function_hash, is_valid, mutate, parse, problems
from atb.efficientbert.ffn import ExpressionFFN


@pytest.mark.parametrize("text", [*PUBLISHED, BERT_FFN])
def test_published_expressions_parse_back_to_themselves_and_are_valid(text):
    ffn = parse(text)
    assert str(ffn) == text and parse(str(ffn)) == ffn
    assert problems(ffn) == []


def test_sizes_come_from_the_linear_names():
    ffn = parse(PUBLISHED[0])  # tanh(linear4_2(...))
    assert (ffn.stacks, ffn.ratio) == (4, 2) and parse("linear(gelu(linear(x,wb1)),wb2)").stacks == 1
    assert parse(BERT_FFN).expr.height == 3  # the official minimum height: linear -> gelu -> linear -> x


@pytest.mark.parametrize("text, rule", [
    ("linear(gelu(tanh(linear(x,wb1))),wb2)", "activation applied directly to an activation"),
    ("linear(linear(gelu(x),wb1),wb2)", "linear applied directly to a linear"),
    ("linear(gelu(add(linear(x,wb1),linear(x,wb1))),wb2)", "wb1 then wb2"),
    ("add(linear(gelu(x),wb2),gelu(linear(x,wb1)))", "wb1 then wb2"),
    ("linear(gelu(add(linear(x,wb1),linear(x,wb1))),wb2)", "identical operands"),
    ("linear(gelu(x),wb1)", "wb1 then wb2"),
    ("add(linear(gelu(linear(x,wb1)),wb2),gelu(linear(x,wb1)))", "wb1 then wb2"),
    ("mul(linear(gelu(linear(x,wb1)),wb2),gelu(linear(x,wb1)))", "wb1 then wb2"),
    ("linear(gelu(linear(x,wb1)),wb2)", None),
    ("mul(linear(gelu(linear(x,wb1)),wb2),tanh(x))", None),
    ("add(gelu(linear(tanh(x),wb1)),linear(gelu(x),wb2))", "wb2 reads a tensor not computed from wb1"),
    ("linear(gelu(add(x,linear(x,wb1))),wb2)", None),  # add(hidden, inner) is inner-wide: what wb2 reads
])
def test_validity_rules(text, rule):
    found = problems(parse(text), min_height=0)
    if rule is None:
        assert found == []
    else:
        assert any(rule in p for p in found), found


def test_height_bounds_and_the_output_width():
    assert any("height" in p for p in problems(parse("linear(gelu(linear(x,wb1)),wb2)"), min_height=4))
    deep = "linear(" + "gelu(add(x," * 4 + "linear(x,wb1)" + "))" * 4 + ",wb2)"
    assert any("height" in p for p in problems(parse(deep)))
    # add(inner, hidden) is inner-wide: no residual possible (and wb2 reads the hidden-wide gelu(x))
    assert any("hidden width" in p for p in problems(parse("add(gelu(linear(tanh(x),wb1)),linear(gelu(x),wb2))")))


@pytest.mark.parametrize("text, message", [
    ("linear(gelu(linear(x,wb1)),wb2", "expected ')'"),
    ("linear(gelu(linear(x,wb1)),wb3)", "needs wb1 or wb2"),
    ("linear(softmax(linear(x,wb1)),wb2)", "unknown operation 'softmax'"),
    ("linear1_2(gelu(linear2_2(x,wb1)),wb2)", "different sizes"),
    ("linear(gelu(linear(x,wb1)),wb2) x", "unexpected 'x'"),
])
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_function_hash_identifies_equal_functions_and_separates_others():
    same = [parse("linear1_2(relu(mul(linear1_2(x,wb1),x)),wb2)"), parse("linear1_2(relu(mul(x,linear1_2(x,wb1))),wb2)")]
    assert function_hash([same[0]]) == function_hash([same[1]])  # mul commutes
    assert function_hash([parse("linear(gelu(linear(max(x,tanh(x)),wb1)),wb2)")]) == \
        function_hash([parse("linear(gelu(linear(max(tanh(x),x),wb1)),wb2)")])
    assert function_hash([same[0]]) != function_hash([parse("linear1_2(relu(add(x,linear1_2(x,wb1))),wb2)")])
    assert function_hash([parse("linear1_1(gelu(linear1_1(x,wb1)),wb2)")]) != \
        function_hash([parse("linear1_2(gelu(linear1_2(x,wb1)),wb2)")])  # the size is part of the function
    layers = [parse(t) for t in PUBLISHED]
    assert function_hash(layers) != function_hash(layers[::-1])  # the layer order too
    assert function_hash(layers) == function_hash([parse(t) for t in PUBLISHED])  # and it is reproducible


def _walk(seed: int, sizes: bool, steps: int = 50) -> list[LayerFFN]:
    """``steps`` successive mutations from BERT's FFN, drawn from one seeded generator."""
    rng, ffn, out = random.Random(seed), parse(BERT_FFN), []
    for _ in range(steps):
        ffn = mutate(ffn, rng, sizes=sizes)
        out.append(ffn)
    return out


def test_mutate_gives_valid_neighbours_reproducibly():
    walk = _walk
    first = walk(0, True)
    assert all(is_valid(f) for f in first) and len({str(f) for f in first}) > 40
    assert [str(f) for f in first] == [str(f) for f in walk(0, True)]
    assert len({(f.stacks, f.ratio) for f in first}) > 1
    assert {(f.stacks, f.ratio) for f in walk(1, False)} == {(1, 1)}  # stage 2: the size stays


def test_bert_ffn_expression_computes_berts_feed_forward_block():
    torch.manual_seed(0)
    ffn = ExpressionFFN(16, 64, max_stacks=1).eval()
    x = torch.randn(2, 5, 16)
    block = ffn.blocks[0]
    expected = block.norm(x + block.dense2(torch.nn.functional.gelu(block.dense1(x))))
    torch.testing.assert_close(ffn(x, parse(BERT_FFN)), expected)


@pytest.mark.parametrize("seed", range(3))
def test_sliced_expression_ffn_equals_the_extracted_one(seed):
    torch.manual_seed(seed)
    ffn = ExpressionFFN(24, 48).eval()
    x = torch.randn(2, 7, 24)
    for candidate in [*_walk(seed, True, 8), *map(parse, PUBLISHED)]:
        small = ffn.extract(candidate)
        assert len(small.blocks) == candidate.stacks and small.blocks[0].dense1.out_features == 48 // candidate.ratio
        torch.testing.assert_close(small(x), ffn(x, candidate), msg=str(candidate))


def test_expression_ffn_refuses_too_many_blocks_and_a_missing_expression():
    ffn = ExpressionFFN(8, 16, max_stacks=2)
    with pytest.raises(ValueError, match="holds 2"):
        ffn(torch.zeros(1, 1, 8), parse("linear3_1(gelu(linear3_1(x,wb1)),wb2)"))
    with pytest.raises(ValueError, match="none given or fixed"):
        ffn(torch.zeros(1, 1, 8))


# ------------------------------------------------------------------------------------- the model
# The official AutoBertConfig.param_list (millions): per-layer attention and per-size FFN parameters, and the
# embeddings with the distillation-only fit_dense (540 x 768 + 768) that a deployed model leaves out.
OFFICIAL_PARAMS = {"embed_fit_dense": 4.8088, "attn": 1.1696, "1_2": 0.2935, "2_1": 1.1707, "2_2": 0.5870,
                   "2_3": 0.3924, "4_2": 1.1740}
FIT_DENSE = (540 * 768 + 768) / 1e6


def test_published_efficientbert_has_the_official_parameter_count():
    from atb.efficientbert import EfficientBertModel, published_config

    model = EfficientBertModel(published_config(), add_pooling_layer=False)
    sizes = [f"{parse(t).stacks}_{parse(t).ratio}" for t in PUBLISHED]
    official = OFFICIAL_PARAMS["embed_fit_dense"] - FIT_DENSE + sum(OFFICIAL_PARAMS["attn"] + OFFICIAL_PARAMS[s]
                                                                    for s in sizes)
    assert model.num_parameters() / 1e6 == pytest.approx(official, abs=0.001)


def test_config_names_the_layer_of_an_invalid_expression():
    from atb.efficientbert import EfficientBertConfig

    with pytest.raises(ValueError, match=r"ffn_expressions\[1\].*activation applied directly"):
        EfficientBertConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                            ffn_expressions=[BERT_FFN, "linear(gelu(tanh(linear(x,wb1))),wb2)"])
    with pytest.raises(ValueError, match="3 expressions for 2 layers"):
        EfficientBertConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, ffn_expressions=[BERT_FFN] * 3)


def test_efficientbert_round_trips_through_the_auto_classes_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    from atb.efficientbert import EfficientBertForSequenceClassification, published_config

    torch.manual_seed(0)
    config = published_config(hidden_size=48, num_attention_heads=4, intermediate_size=48, embedding_size=16,
                              num_labels=3, vocab_size=100, max_position_embeddings=32)
    model = EfficientBertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "m")
    ids = torch.randint(1, 100, (2, 9))
    torch.save({"ids": ids, "logits": model(ids).logits.detach()}, tmp_path / "expected.pt")
    code = f"""
import torch, atb
from transformers import AutoModelForSequenceClassification
expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "m")!r}).eval()
assert type(model).__name__ == "EfficientBertForSequenceClassification", type(model)
torch.testing.assert_close(model(expected["ids"]).logits, expected["logits"])
print(model.config.ffn_expressions[3])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == PUBLISHED[3]
    code = f"""
import atb
from transformers import AutoModelForQuestionAnswering
model = AutoModelForQuestionAnswering.from_pretrained({str(tmp_path / "m")!r})  # the encoder's weights, a new head
assert type(model).__name__ == "EfficientBertForQuestionAnswering", type(model)
assert model.bert.pooler is None and model.bert.layer[3].ffn.fixed is not None
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_published_size_and_speed_are_measured_beside_bert_base():
    from atb.efficientbert.published import PAPER, measure_published
    from atb.latency import Protocol

    record = measure_published(Protocol(seq_len=8, runs=2, warmup=0))
    assert record["bert_base_params"] == 109_482_240  # BERT-base with its pooler, counted on the model
    assert record["params_ratio"] == pytest.approx(record["bert_base_params"] / record["params"])
    assert 6.5 < record["params_ratio"] < 7.5 and record["paper"] == PAPER
    assert record["latency_ms"] > 0 and record["speedup"] == pytest.approx(record["bert_base_ms"] / record["latency_ms"])
