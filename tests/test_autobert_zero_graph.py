"""AutoBERT-Zero's attention graphs (atb.autobert_zero.graph) and backbone space (atb.autobert_zero.space): typing,
validity, canonical forms, the string forms, masking, BERT's attention as a graph, and mutation.

No model, no data: graphs evaluated on small random tensors.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from atb.autobert_zero.graph import (
    MUTATIONS, OPS, PUBLISHED_ATTENTION, PUBLISHED_KERNELS, STANDARD, MutationFailed, Node, canonical, evaluate,
    formula, inputs_used, introduced, is_valid, key, mutate, op_counts, parse, problems, random_graph, shape,
    signed_sqrt, size,
)
from atb.autobert_zero.space import (
    AttentionLayer, ConvLayer, candidate_key, candidate_strings, mutate_candidate, mutate_layer, parse_candidate,
    parse_layer, published_candidate, random_candidate, standard_candidate,
)

B, H, T, D = 2, 3, 5, 4


def inputs(seed: int = 0, dtype=torch.float64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(B, H, T, D, generator=g, dtype=dtype) for name in "QKVX"}


def padding_mask() -> torch.Tensor:
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 3:] = False  # sequence 0 has 3 real tokens, sequence 1 all 5
    return mask


def random_graphs(n: int = 30) -> list[Node]:
    return [random_graph(random.Random(seed)) for seed in range(n)]


# ------------------------------------------------------------------------------------------- published
def test_published_graphs_are_valid_and_print_as_the_paper_writes_them():
    assert formula(STANDARD) == "softmax(Q · Kᵀ / √d) · V"
    assert formula(PUBLISHED_ATTENTION[0]) == "softmax(Q · (−logsigmoid(−K))ᵀ / √d) · (Q + K)"
    assert formula(PUBLISHED_ATTENTION[1]) == "softmax(Q · (−logsigmoid(logsigmoid(Q) + Q + K))ᵀ / √d) · Q"
    assert formula(PUBLISHED_ATTENTION[2]) == "softmax(Q · (−logsigmoid(K))ᵀ / √d) · Q"
    assert formula(PUBLISHED_ATTENTION[4]) == "softmax(Q · (K / √d + softsign(softsign(K) / √d) + V)ᵀ / √d) · V"
    assert formula(PUBLISHED_ATTENTION[5]) == "softmax(Q · (K / √d + V)ᵀ / √d) · V"
    assert PUBLISHED_ATTENTION[2] == PUBLISHED_ATTENTION[3] and len(set(PUBLISHED_ATTENTION)) == 5
    assert PUBLISHED_KERNELS == (65, 9, 3, 7, 7, 3)
    for g in (STANDARD, *PUBLISHED_ATTENTION):
        assert problems(g) == [] and shape(g) == "td"
    assert size(STANDARD) == 5 and inputs_used(STANDARD) == {"Q", "K", "V"}
    assert inputs_used(PUBLISHED_ATTENTION[2]) == {"Q", "K"}  # no V projection needed


def test_published_and_standard_candidates():
    assert candidate_strings(published_candidate(6))[::2] == ["conv:65", "conv:9", "conv:3"]
    six = published_candidate(6)
    assert [type(layer) for layer in six] == [ConvLayer, AttentionLayer] * 3
    assert [layer.graph for layer in six[1::2]] == list(PUBLISHED_ATTENTION[:3])
    twelve = published_candidate(12)
    assert tuple(layer.kernel for layer in twelve[::2]) == PUBLISHED_KERNELS
    assert tuple(layer.graph for layer in twelve[1::2]) == PUBLISHED_ATTENTION
    assert standard_candidate(3) == (AttentionLayer(STANDARD),) * 3
    with pytest.raises(ValueError, match="n_layers"):
        published_candidate(13)


# ------------------------------------------------------------------------------------------ string forms
def test_parse_and_str_round_trip():
    for g in (STANDARD, *PUBLISHED_ATTENTION, *random_graphs()):
        assert parse(str(g)) == g
        assert parse(" " + str(g).replace(",", " , ") + " ") == g  # whitespace is ignored
    for layer in (ConvLayer(7), AttentionLayer(PUBLISHED_ATTENTION[0])):
        assert parse_layer(str(layer)) == layer
    c = published_candidate(4)
    assert parse_candidate(candidate_strings(c)) == c


@pytest.mark.parametrize("text, where", [
    ("matmul(Q,", "ends early"), ("foo(Q)", "'foo' at character 0"), ("matmul(Q K)", "got 'K' at character 9"),
    ("Q)", "unexpected ')' at character 1"), ("neg(Q,K)", "expected ')', got ','"), ("neg(Q$)", "character 5"),
])
def test_parse_names_the_offending_token(text, where):
    with pytest.raises(ValueError, match=where.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_parse_layer_errors():
    for text in ("attention:Q", "conv:x", "conv:0", "attn:foo(Q)"):
        with pytest.raises(ValueError):
            parse_layer(text)


# -------------------------------------------------------------------------------------------- validity
def test_typing():
    assert shape(parse("transpose(Q)")) == "dt"
    assert shape(parse("matmul(Q,transpose(K))")) == "tt"
    assert shape(parse("matmul(transpose(K),V)")) == "dd"
    assert shape(parse("matmul(Q,K)")) is None  # (t,d) x (t,d)
    assert shape(parse("add(Q,transpose(K))")) is None
    assert any("cannot take operands of kinds td and td" in p for p in problems(parse("matmul(Q,K)")))
    with pytest.raises(ValueError, match="takes 2 operand"):
        Node("add", (Node("Q"),))


def test_validity_rules():
    assert any("kind 'tt'" in p for p in problems(parse("softmax(matmul(Q,transpose(K)))")))
    assert is_valid(parse("matmul(Q,softmax(matmul(transpose(K),K)))"))  # Kᵀ·K sums over tokens: linear attention
    for elementwise in ("softmax(add(Q,K))", "mul(Q,sigmoid(K))"):
        assert any("token axis" in p for p in problems(parse(elementwise)))
    assert any("neither Q nor K" in p for p in problems(parse("matmul(softmax(matmul(V,transpose(X))),V)")))
    assert any("max_nodes=4" in p for p in problems(STANDARD, max_nodes=4))


# ----------------------------------------------------------------------------------------- canonical form
def test_canonical_forms():
    assert key(parse("add(K,Q)")) == key(parse("add(Q,K)"))
    assert key(parse("mul(V,add(K,Q))")) == key(parse("mul(add(Q,K),V)"))
    assert canonical(parse("neg(neg(K))")) == Node("K")
    assert canonical(parse("transpose(transpose(neg(neg(Q))))")) == Node("Q")
    assert canonical(parse("neg(neg(neg(K)))")) == parse("neg(K)")
    a = parse("matmul(softmax(scale(matmul(Q,transpose(add(K,V))))),V)")
    b = parse("matmul(softmax(scale(matmul(Q,transpose(add(V,neg(neg(K))))))),V)")
    assert key(a) == key(b)
    assert key(parse("matmul(Q,transpose(K))")) != key(parse("matmul(K,transpose(Q))"))  # matmul is not commutative


def test_canonical_form_computes_the_same_function():
    x, mask = inputs(1), padding_mask()
    graphs = [*random_graphs(20), parse("matmul(softmax(scale(matmul(add(K,Q),transpose(neg(neg(mul(V,K))))))),V)")]
    for g in graphs:
        torch.testing.assert_close(evaluate(canonical(g), x, mask), evaluate(g, x, mask), rtol=0, atol=0,
                                   equal_nan=True)


# ---------------------------------------------------------------------------------------------- evaluation
def test_standard_is_bert_attention():
    x, mask = inputs(2), padding_mask()
    ours = evaluate(STANDARD, x, mask)
    scores = x["Q"] @ x["K"].transpose(-1, -2) / D ** 0.5
    scores = scores + torch.where(mask, 0.0, -1e9).to(scores.dtype)[:, None, None, :]
    reference = torch.softmax(scores, -1) @ x["V"]
    torch.testing.assert_close(ours, reference)
    sdpa = F.scaled_dot_product_attention(x["Q"], x["K"], x["V"], attn_mask=mask[:, None, None, :])
    torch.testing.assert_close(ours, sdpa)
    torch.testing.assert_close(evaluate(STANDARD, x), F.scaled_dot_product_attention(x["Q"], x["K"], x["V"]))


UNNORMALISED = (parse("matmul(sigmoid(matmul(Q,transpose(K))),V)"),  # token sums that no softmax masks: rule (b)
                parse("matmul(Q,matmul(transpose(sigmoid(K)),V))"))


@pytest.mark.parametrize("graph", [STANDARD, *PUBLISHED_ATTENTION[:3], *PUBLISHED_ATTENTION[4:], *UNNORMALISED,
                                   *random_graphs(15)], ids=str)
def test_padded_tokens_do_not_change_real_tokens(graph):
    mask = padding_mask()
    x, y = inputs(3), inputs(3)
    noise = inputs(4)
    for name in y:  # other values at sequence 0's padded tokens only
        y[name][0, :, 3:] = 5 * noise[name][0, :, 3:]
    out_x, out_y = evaluate(graph, x, mask), evaluate(graph, y, mask)
    real = mask[:, None, :, None].expand_as(out_x)
    torch.testing.assert_close(out_x[real], out_y[real])
    assert torch.isfinite(out_x[real]).all()


def test_evaluate_memoises_and_checks_inputs():
    g = parse("matmul(softmax(scale(matmul(softsign(K),transpose(softsign(K))))),softsign(K))")
    calls = []
    original = F.softsign

    def counting(t):
        calls.append(1)
        return original(t)

    import atb.autobert_zero.graph as graph_module
    graph_module._ELEMENTWISE_FN["softsign"] = counting
    try:
        evaluate(g, {"K": inputs(0)["K"]})
    finally:
        graph_module._ELEMENTWISE_FN["softsign"] = original
    assert len(calls) == 1
    with pytest.raises(ValueError, match=r"inputs lack \['V'\]"):
        evaluate(STANDARD, {"Q": inputs()["Q"], "K": inputs()["K"]})


def test_scale_uses_the_head_dimension():
    x = inputs(0)
    torch.testing.assert_close(evaluate(parse("scale(Q)"), x), x["Q"] / D ** 0.5)


def test_signed_sqrt_is_odd_finite_and_differentiable():
    t = torch.tensor([-4.0, -1e-9, 0.0, 1e-9, 4.0], dtype=torch.float64, requires_grad=True)
    y = signed_sqrt(t)
    y.sum().backward()
    y = y.detach()
    assert torch.isfinite(y).all() and torch.isfinite(t.grad).all()
    torch.testing.assert_close(y, -signed_sqrt(-t.detach()))
    assert abs(float(y[1])) < 1e-6 and abs(float(y[2])) == 0.0  # continuous at 0
    assert float(y[4]) == pytest.approx(2.0, abs=1e-3)


# ------------------------------------------------------------------------------------------------ mutation
def test_random_graphs_are_valid_and_deterministic():
    for seed in range(50):
        g = random_graph(random.Random(seed), max_nodes=8)
        assert is_valid(g, max_nodes=8), (g, problems(g, 8))
        assert g == random_graph(random.Random(seed), max_nodes=8)


def test_mutation_children_are_valid_new_and_report_an_op_they_gained():
    reported = []
    for seed in range(150):
        rng = random.Random(seed)
        parent = (STANDARD, *PUBLISHED_ATTENTION)[seed % 6] if seed % 2 else random_graph(rng)
        for _ in range(3):
            child, op = mutate(parent, rng)
            assert is_valid(child), (parent, child, problems(child))
            assert key(child) != key(parent)
            assert op is None or (op in OPS and op_counts(child)[op] > op_counts(parent)[op]), (parent, child, op)
            reported.append(op)
            parent = child
    assert None in reported and len(set(reported) - {None}) > 5


# ----------------------------------------------------------------------------------- mutation credit (OP-NAS)
def mutations_of(kind: str, parents=(STANDARD, *PUBLISHED_ATTENTION), choose=None, seeds=range(40)):
    """``(parent, child, op)`` of ``kind`` mutations, from ``seeds`` on each parent."""
    found = []
    for parent in parents:
        for seed in seeds:
            kwargs = {} if choose is None else {"choose_op": choose}
            child, op = mutate(parent, random.Random(seed), kinds=(kind,), **kwargs)
            found.append((parent, child, op))
    return found


def test_an_inserted_or_substituted_op_is_credited():
    def tanh_first(ops, rng):
        return "tanh" if "tanh" in ops else rng.choice(list(ops))

    for parent, child, op in mutations_of("insert-unary", choose=tanh_first):
        assert op == "tanh" and op_counts(child)["tanh"] == op_counts(parent)["tanh"] + 1
    for parent, child, op in mutations_of("replace-op", choose=tanh_first):
        assert op is not None and op_counts(child)[op] == op_counts(parent)[op] + 1
        assert op == "tanh" or op in ("add", "mul", "matmul")  # binary nodes offer no tanh


def test_deletions_and_leaf_swaps_credit_none():
    for kind in ("delete-unary", "replace-leaf"):
        found = mutations_of(kind)
        assert {op for _, _, op in found} == {None}, kind
        assert all(key(child) != key(parent) for parent, child, _ in found)


def test_a_new_subtree_credits_an_op_it_added_or_none():
    found = mutations_of("replace-subtree")
    ops = [op for _, _, op in found]
    assert None in ops and set(ops) - {None}  # a subtree regrown as a leaf (or its own ops) introduces none
    for parent, child, op in found:
        gained = {o for o in OPS if op_counts(child)[o] > op_counts(parent)[o]}
        assert (op is None) == (not gained) and (op is None or op in gained), (parent, child, op)
    # regrowing scale(K) as scale(Q) is a leaf swap: nothing introduced
    assert introduced(parse("matmul(softmax(scale(matmul(Q,transpose(K)))),V)"),
                      parse("matmul(softmax(scale(matmul(Q,transpose(Q)))),V)"), ["scale"]) is None


def test_an_insertion_that_cancels_credits_none():
    parent = parse("matmul(softmax(scale(matmul(Q,transpose(K)))),neg(V))")
    found = mutations_of("insert-unary", parents=(parent,), choose=lambda ops, rng: "neg", seeds=range(80))
    assert {op for _, _, op in found} == {None, "neg"}
    for _, child, op in found:  # neg(neg(V)) is V: the insertion deleted a neg
        assert (op is None) == (op_counts(child)["neg"] < op_counts(parent)["neg"])
    with pytest.raises(ValueError, match="kinds must be among"):
        mutate(STANDARD, random.Random(0), kinds=("swap",))
    assert set(MUTATIONS) == {"replace-op", "insert-unary", "delete-unary", "replace-leaf", "replace-subtree"}


def test_type_switches_and_kernel_changes_credit_none():
    rng = random.Random(0)
    for _ in range(20):
        layer, op = mutate_layer(AttentionLayer(STANDARD), rng, kernels=(3, 7), switch_prob=1.0)
        assert isinstance(layer, ConvLayer) and op is None
        layer, op = mutate_layer(ConvLayer(3), rng, kernels=(3, 7), switch_prob=1.0)
        assert isinstance(layer, AttentionLayer) and op is None
        layer, op = mutate_layer(ConvLayer(3), rng, kernels=(3, 7), switch_prob=0.0)
        assert layer == ConvLayer(7) and op is None


def test_mutation_is_deterministic_and_offers_only_fitting_ops():
    offered = []

    def choose(ops, rng):
        offered.append(list(ops))
        return ops[-1]

    for seed in range(30):
        a = mutate(PUBLISHED_ATTENTION[1], random.Random(seed), choose)
        b = mutate(PUBLISHED_ATTENTION[1], random.Random(seed), choose)
        assert a == b
    assert offered and all(ops and set(ops) <= set(OPS) for ops in offered)
    with pytest.raises(MutationFailed, match="no valid mutation"):
        mutate(STANDARD, random.Random(0), tries=0)


def test_candidate_mutation_and_keys():
    assert candidate_key((AttentionLayer(parse("matmul(softmax(add(K,Q)),V)")),)) == \
        candidate_key((AttentionLayer(parse("matmul(softmax(add(Q,K)),V)")),))
    for seed in range(60):
        rng = random.Random(seed)
        parent = published_candidate(4) if seed % 2 else random_candidate(4, rng, (3, 7))
        child, op = mutate_candidate(parent, rng, kernels=(3, 7, 65))
        changed = [i for i in range(4) if child[i] != parent[i]]
        assert len(changed) == 1 and candidate_key(child) != candidate_key(parent)
        layer = child[changed[0]]
        if op is not None:
            assert isinstance(layer, AttentionLayer) and op in {n.op for n in layer.graph.nodes()}
        if isinstance(layer, AttentionLayer):
            assert is_valid(layer.graph)
        else:
            assert layer.kernel in (3, 7, 65)
