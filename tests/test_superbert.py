"""SuperBERT weight sharing: sliced sub-model == extracted model (50 random mini architectures per space, and a
handful at the paper's size with ragged padding), padding invariance at the paper's size, head shapes."""

import inspect
import random

import pytest
import torch

import atb
from atb import Arch, AtbBertConfig, SearchSpace, SuperBert, SuperBertConfig, extract

TOL = 1e-5


@pytest.fixture(scope="module", params=["mlm", "kd"])
def supernet(request):
    torch.manual_seed(0)
    space = SearchSpace.preset("mini", request.param)
    return space, SuperBert(SuperBertConfig.from_space(space)).eval()


@pytest.fixture(scope="module", params=["mlm", "kd"])
def paper_supernet(request):
    """The paper-size SuperBERT of each space (8 layers, d_m 768, d_f 3072; KD: 12 heads, head-wise d_qkv)."""
    torch.manual_seed(0)
    space = SearchSpace.preset("paper", request.param)
    return space, SuperBert(SuperBertConfig.from_space(space)).eval()


def paper_archs(space, seed, n_random=2, smallest=True):
    """A handful of architectures: the largest (every slice full), the smallest, ``n_random`` seeded random ones."""
    rng = random.Random(seed)
    return [space.largest()] + [space.smallest()] * smallest + [space.sample(rng) for _ in range(n_random)]


def batch(seq: int = 24, pad_from: int = 17, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, 30000, (3, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[1, pad_from:] = 0
    ids[1, pad_from:] = 0
    segments = torch.zeros_like(ids)
    segments[:, seq // 2:] = 1
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    labels[0, 9] = ids[0, 9]
    return ids, mask, segments, labels


def ragged_batch(rows: int = 4, seq: int = 12, seed: int = 0):
    """Rows of seeded random lengths (one full row), padded at the tail with *random* token ids: padding must
    be ignored whatever it holds. Two segments per row; MLM labels at two random real positions of each row."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, seq + 1, (rows,), generator=g)
    lengths[torch.randint(rows, (1,), generator=g)] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    ids = torch.randint(999, 30000, (rows, seq), generator=g)
    segments = (torch.arange(seq)[None, :] >= (lengths[:, None] + 1) // 2).long() * mask
    labels = torch.full_like(ids, -100)
    for row, n in enumerate(lengths.tolist()):
        where = torch.randint(n, (2,), generator=g)
        labels[row, where] = ids[row, where]
    return ids, mask, segments, labels, lengths.tolist()


def test_sliced_equals_extracted_for_50_random_architectures(supernet):
    """The property test: every output of the sliced sub-model equals its extracted standalone model."""
    space, model = supernet
    ids, mask, segments, labels = batch()
    rng = random.Random(1234)
    archs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(48)]
    for arch in archs:
        sliced = model(ids, attention_mask=mask, token_type_ids=segments, arch=arch, labels=labels)
        standalone = extract(model, arch).eval()
        assert standalone.config.arch == arch
        enc = standalone.bert(ids, attention_mask=mask, token_type_ids=segments, output_attention_scores=True)
        mlm = standalone(ids, attention_mask=mask, token_type_ids=segments, labels=labels)
        assert sliced.last_hidden_state.shape == (3, 24, arch.hidden)
        assert sliced.attention_scores.shape == (3, arch.heads, 24, 24)
        torch.testing.assert_close(sliced.last_hidden_state, enc.last_hidden_state, atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.attention_scores, enc.attention_scores, atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.logits, mlm.logits[labels != -100], atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.loss, mlm.loss, atol=TOL, rtol=0)


def test_extracted_model_holds_only_the_submodel(supernet):
    space, model = supernet
    arch = space.smallest()
    standalone = extract(model, arch)
    n_layers = {k.split(".")[3] for k in standalone.state_dict() if ".layer." in k}
    assert n_layers == {str(i) for i in range(arch.layers)}
    assert standalone.bert.encoder.layer[0].attention.self.query.weight.shape == (arch.qkv, arch.hidden)
    assert standalone.num_parameters() < model.num_parameters()


def test_kd_space_slices_qkv_headwise():
    """KD space: each of the 12 heads keeps its first qkv/12 dims (not the first qkv rows)."""
    torch.manual_seed(0)
    space = SearchSpace.preset("mini", "kd")
    model = SuperBert(SuperBertConfig.from_space(space))
    arch = Arch(2, 128, 256, 12, 96)  # head size 8 out of 32
    q_super = model.bert.encoder.layer[0].attention.self.query.weight
    q_sub = extract(model, arch).bert.encoder.layer[0].attention.self.query.weight
    rows = [h * 32 + d for h in range(12) for d in range(8)]
    torch.testing.assert_close(q_sub, q_super[rows, :128])
    o_super = model.bert.encoder.layer[0].attention.output.dense.weight
    o_sub = extract(model, arch).bert.encoder.layer[0].attention.output.dense.weight
    torch.testing.assert_close(o_sub, o_super[:128, rows])


@pytest.mark.parametrize("groups", ["out", "in", None])
def test_a_cut_cast_under_autocast_is_autocasts_cast_of_the_cut(groups):
    """Under autocast a sliced Linear cuts and casts its weight in one copy: the same output and gradients, to the bit,
    as autocast casting the cut (grouped Q/K/V rows, grouped output columns, or plain top-left)."""
    from atb.elastic import ElasticLinear, slice_cols, slice_rows

    torch.manual_seed(0)
    kwargs = {"out": {"out_groups": 12}, "in": {"in_groups": 12}, None: {}}[groups]
    layer = ElasticLinear(48, 96, **kwargs) if groups == "out" else ElasticLinear(96, 48, **kwargs)
    layer.set_active(*((40, 72) if groups == "out" else (72, 40)))
    cut = slice_cols(slice_rows(layer.weight, layer.active_out, layer.out_groups), layer.active_in, layer.in_groups)
    assert torch.equal(layer.active_weight(), cut) and torch.equal(layer.active_weight(torch.bfloat16),
                                                                   cut.to(torch.bfloat16))
    x = torch.randn(3, 5, layer.active_in)

    def run(forward):
        layer.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = forward(x)
        y.float().pow(2).sum().backward()
        return y, layer.weight.grad

    ours = run(layer)
    theirs = run(lambda x: torch.nn.functional.linear(x, layer.active_weight(), layer.active_bias()))
    assert ours[0].dtype == torch.bfloat16 and all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_mlm_space_keeps_the_first_heads():
    torch.manual_seed(0)
    model = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("mini", "mlm")))
    q_super = model.bert.encoder.layer[1].attention.self.query.weight
    q_sub = extract(model, Arch(2, 128, 256, 3, 96)).bert.encoder.layer[1].attention.self.query.weight  # 3 x 32
    torch.testing.assert_close(q_sub, q_super[:96, :128])


def test_gradients_reach_only_the_active_slice():
    """Weight sharing: training a sub-model updates only its top-left sub-matrices and first layers."""
    torch.manual_seed(0)
    space = SearchSpace.preset("smoke", "mlm")
    model = SuperBert(SuperBertConfig.from_space(space)).train()
    arch = space.smallest()
    ids, mask, segments, labels = batch(seq=12, pad_from=9)
    model(ids, attention_mask=mask, arch=arch, labels=labels).loss.backward()
    ffn = model.bert.encoder.layer[0].intermediate.dense.weight.grad
    assert ffn[: arch.ffn, : arch.hidden].abs().sum() > 0
    assert ffn[arch.ffn:].abs().sum() == 0 and ffn[:, arch.hidden:].abs().sum() == 0
    assert model.bert.encoder.layer[1].intermediate.dense.weight.grad is None  # layer 2 inactive


def test_sliced_equals_extracted_at_paper_size_with_ragged_padding(paper_supernet):
    """The property test at the paper's size, on rows of random lengths: every output, padded positions too."""
    space, model = paper_supernet
    ids, mask, segments, labels, _ = ragged_batch(seed=1)
    for arch in paper_archs(space, seed=11, n_random=3):
        with torch.no_grad():
            sliced = model(ids, attention_mask=mask, token_type_ids=segments, arch=arch, labels=labels)
            standalone = extract(model, arch).eval()
            enc = standalone.bert(ids, attention_mask=mask, token_type_ids=segments, output_attention_scores=True)
            mlm = standalone(ids, attention_mask=mask, token_type_ids=segments, labels=labels)
        rows, seq = ids.shape
        assert standalone.config.arch == arch and sliced.attention_scores.shape == (rows, arch.heads, seq, seq)
        torch.testing.assert_close(sliced.last_hidden_state, enc.last_hidden_state, atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.attention_scores, enc.attention_scores, atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.logits, mlm.logits[labels != -100], atol=TOL, rtol=0)
        torch.testing.assert_close(sliced.loss, mlm.loss, atol=TOL, rtol=0)


@pytest.mark.parametrize("scores", [True, False])
def test_padding_invariance_at_paper_size_with_ragged_rows(paper_supernet, scores):
    """Each row of a ragged, padded batch gives at its real positions what it gives alone and unpadded (hidden
    states, scores between real tokens, MLM logits), on both attention paths; seeded random lengths per row."""
    space, model = paper_supernet
    for seed, arch in enumerate(paper_archs(space, seed=5, n_random=2, smallest=False)):
        ids, mask, segments, labels, lengths = ragged_batch(seed=100 + seed)
        assert min(lengths) < ids.shape[1] and len(set(lengths)) > 1  # really ragged
        with torch.no_grad():
            padded = model(ids, attention_mask=mask, token_type_ids=segments, arch=arch, labels=labels,
                           output_attention_scores=scores)
            alone = [model(ids[i:i + 1, :n], attention_mask=mask[i:i + 1, :n], token_type_ids=segments[i:i + 1, :n],
                           arch=arch, labels=labels[i:i + 1, :n], output_attention_scores=scores)
                     for i, n in enumerate(lengths)]
        for i, (n, single) in enumerate(zip(lengths, alone)):
            torch.testing.assert_close(padded.last_hidden_state[i, :n], single.last_hidden_state[0],
                                       atol=TOL, rtol=0, msg=lambda m: f"{arch} row {i} (length {n}): {m}")
            if scores:
                torch.testing.assert_close(padded.attention_scores[i, :, :n, :n], single.attention_scores[0],
                                           atol=TOL, rtol=0)
        # MLM logits come row-major at the labelled positions, so the rows' own logits concatenate to them
        torch.testing.assert_close(padded.logits, torch.cat([single.logits for single in alone]), atol=TOL, rtol=0)


def test_explicit_and_fused_attention_agree(supernet):
    space, model = supernet
    arch = space.sample(random.Random(9))
    ids, mask, segments, _ = batch()
    a = model(ids, attention_mask=mask, token_type_ids=segments, arch=arch, output_attention_scores=True)
    b = model(ids, attention_mask=mask, token_type_ids=segments, arch=arch, output_attention_scores=False)
    assert b.attention_scores is None
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=TOL, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_additive_mask_gives_the_probabilities_and_gradients_of_masking_bit_for_bit(dtype):
    """Attention masks by adding 0 / finfo.min to the logits (atb.modeling.additive_mask): exactly the probabilities
    and score gradients of setting masked logits to finfo.min, in fp32 and bf16; masked keys get probability 0."""
    from atb.modeling import additive_mask

    torch.manual_seed(0)
    mask = torch.ones(3, 1, 1, 9, dtype=torch.bool)
    mask[0, ..., 6:] = mask[2, ..., 2:] = False
    scores = (torch.randn(3, 4, 9, 9) * 8).to(dtype)
    grad = torch.randn(3, 4, 9, 9).to(dtype)
    results = []
    for logits in (lambda s: torch.where(mask, s, torch.finfo(dtype).min), lambda s: s + additive_mask(mask, dtype)):
        s = scores.clone().requires_grad_()
        probs = logits(s).softmax(-1)
        probs.backward(grad)
        results.append((probs.detach(), s.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[1][0].dtype == dtype and (results[1][0][~mask.expand_as(scores)] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_logits_in_place_are_those_of_new_tensors(dtype):
    """atb.modeling.attention_logits divides the product in place, and adds the mask in place unless the scores are
    kept: the logits, scores and gradients of computing each as a new tensor, bit for bit."""
    from atb.modeling import additive_mask, attention_logits

    torch.manual_seed(1)
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 4:] = False
    q, k, grad = (torch.randn(2, 3, 7, 5).to(dtype), torch.randn(2, 3, 7, 5).to(dtype),
                  torch.randn(2, 3, 7, 7).to(dtype))

    def run(logits_of):
        qs, ks = q.clone().requires_grad_(), k.clone().requires_grad_()
        logits, scores = logits_of(qs, ks)
        logits.softmax(-1).backward(grad)
        return logits.detach(), scores, qs.grad, ks.grad

    def new_tensors(qs, ks):
        scores = qs @ ks.transpose(-1, -2) / 5**0.5
        return scores + additive_mask(mask, dtype), scores.detach()

    expected = run(new_tensors)
    kept = run(lambda qs, ks: attention_logits(qs, ks, mask, keep_scores=True))
    dropped = run(lambda qs, ks: attention_logits(qs, ks, mask, keep_scores=False))
    assert dropped[1] is None and torch.equal(kept[1].detach(), expected[1])
    for got in (kept, dropped):
        assert all(torch.equal(got[i], expected[i]) for i in (0, 2, 3))


@pytest.mark.parametrize("objective", ["mlm", "kd"])
@pytest.mark.parametrize("which", ["smallest", "largest"])
def test_output_shapes_of_every_head(objective, which):
    """MLM, classification and QA heads, for the smallest and largest architecture of the paper space."""
    arch = getattr(SearchSpace.preset("paper", objective), which)()
    ids = torch.randint(1000, 2000, (2, 10))
    mask = torch.ones_like(ids)
    config = AtbBertConfig.from_arch(arch, num_labels=3)
    with torch.no_grad():
        mlm = atb.AtbBertForMaskedLM(config).eval()(ids, attention_mask=mask)
        cls = atb.AtbBertForSequenceClassification(config).eval()(ids, attention_mask=mask, labels=torch.tensor([0, 2]))
        qa = atb.AtbBertForQuestionAnswering(config).eval()(
            ids, attention_mask=mask, start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    assert mlm.logits.shape == (2, 10, config.vocab_size)
    assert cls.logits.shape == (2, 3) and cls.loss.ndim == 0
    assert qa.start_logits.shape == qa.end_logits.shape == (2, 10) and qa.loss.ndim == 0


def test_regression_head_for_one_label():
    config = AtbBertConfig.from_arch(Arch(1, 32, 64, 2, 32), num_labels=1)
    out = atb.AtbBertForSequenceClassification(config)(torch.randint(5, 99, (4, 6)), labels=torch.rand(4))
    assert out.logits.shape == (4, 1) and out.loss.ndim == 0


@pytest.mark.parametrize("cls", [SuperBert, atb.AtbBertModel, atb.AtbBertForMaskedLM,
                                 atb.AtbBertForSequenceClassification, atb.AtbBertForQuestionAnswering])
def test_mask_and_segments_are_keyword_only(cls):
    """Pitfall 1 of the official code: a positional mask arrived as segment ids. Make that impossible."""
    params = inspect.signature(cls.forward).parameters
    for name in ("attention_mask", "token_type_ids"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}.{name}"


def test_arch_outside_the_space_is_rejected_with_the_field(supernet):
    space, model = supernet
    too_deep = Arch(space.layers.high + 1, space.hidden.low, space.ffn.low, space.heads.low, space.qkv.low)
    with pytest.raises(ValueError, match="layers="):
        model(torch.ones(1, 4, dtype=torch.long), arch=too_deep)


def test_config_round_trips_the_space(tmp_path):
    space = SearchSpace.preset("smoke", "kd")
    model = SuperBert(SuperBertConfig.from_space(space))
    model.save_pretrained(tmp_path)
    again = SuperBert.from_pretrained(tmp_path)
    assert again.config.search_space() == space and again.config.qkv_slicing == "headwise"
    for (n, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(p, q), n


def test_inference_cache_follows_weight_updates():
    """The no-grad slice cache must never serve stale weights after an optimiser step."""
    torch.manual_seed(0)
    space = SearchSpace.preset("smoke", "kd")
    model = SuperBert(SuperBertConfig.from_space(space, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    arch = space.smallest()
    ids, mask, _, labels = batch(seq=10, pad_from=8)
    with torch.no_grad():
        before = model(ids, attention_mask=mask, arch=arch).last_hidden_state
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model(ids, attention_mask=mask, arch=arch, labels=labels).loss.backward()
    opt.step()
    with torch.no_grad():
        after = model(ids, attention_mask=mask, arch=arch).last_hidden_state
    fresh = extract(model, arch).eval()
    with torch.no_grad():
        expected = fresh.bert(ids, attention_mask=mask).last_hidden_state
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, atol=TOL, rtol=0)


def test_the_shared_tables_gradients_equal_those_of_slicing():
    """The word-embedding lookup gathers whole rows and the tied MLM decoder builds its gradient at the table's size
    (atb.elastic): the same values and gradients as computing with the sliced table, and nothing outside the slice."""
    from atb.elastic import ElasticEmbedding, linear_first_columns, sliced_table_gradients

    torch.manual_seed(0)
    table, d = ElasticEmbedding(50, 16), 10
    table.set_active(d)
    ids, h = torch.randint(0, 50, (3, 7)), torch.randn(5, d, requires_grad=True)
    weights = torch.randn(3, 7, d)

    def gradients(lookup, decoder):
        table.weight.grad, h.grad = None, None
        ((lookup(ids) * weights).sum() + decoder(h, table.weight).pow(2).sum()).backward()
        return table.weight.grad.clone(), h.grad.clone()

    ours = gradients(table, linear_first_columns)
    sliced = gradients(lambda i: torch.nn.functional.embedding(i, table.weight[:, :d]),
                       lambda x, w: torch.nn.functional.linear(x, w[:, :d]))
    torch.testing.assert_close(ours, sliced, atol=1e-5, rtol=1e-6)
    with sliced_table_gradients():  # the earlier engine's path, for the benchmark
        torch.testing.assert_close(gradients(table, linear_first_columns), sliced, atol=1e-5, rtol=1e-6)
    assert ours[0][:, d:].abs().sum() == 0 and ours[0][:, :d].abs().sum() > 0
    torch.testing.assert_close(linear_first_columns(h, table.weight), h @ table.weight[:, :d].T)


def test_an_mlm_step_trains_through_the_tied_table():
    """SuperBert's MLM loss reaches the shared table through both the lookup and the decoder, within the slice."""
    torch.manual_seed(0)
    space = SearchSpace.preset("smoke", "mlm")
    model = SuperBert(SuperBertConfig.from_space(space)).train()
    arch = space.smallest()
    ids, mask, segments, labels = batch(seq=12, pad_from=9)
    model(ids, attention_mask=mask, token_type_ids=segments, arch=arch, labels=labels).loss.backward()
    grad = model.bert.embeddings.word_embeddings.weight.grad
    assert grad[:, arch.hidden:].abs().sum() == 0
    assert (grad[:, : arch.hidden].abs().sum(1) > 0).sum() > len(ids.unique())  # the decoder's rows: every word
