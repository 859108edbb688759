"""The distillation teacher: offline loading, frozen-ness, exact pre-softmax scores, masks by keyword."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, ElectraConfig, ElectraModel, GPT2Config, GPT2Model

from atb.teacher import (
    OFFLINE_TEACHER,
    PAPER_TEACHER,
    Teacher,
    TeacherOutput,
    load_teacher,
    offline_teacher_path,
)

TOL = 1e-5
SENTENCES = [
    "AutoTinyBERT searches the architecture hyper-parameters of a tiny pre-trained language model.",
    "A short one.",
    "The teacher is frozen.",
]


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return load_teacher(OFFLINE_TEACHER)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(offline_teacher_path())


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    # Give the second half of each sequence segment id 1 so token_type_ids matter.
    segments = torch.zeros_like(enc["input_ids"])
    segments[:, enc["input_ids"].shape[1] // 2:] = 1
    segments = segments * enc["attention_mask"]
    assert (enc["attention_mask"] == 0).any(), "the batch should contain padding"
    return enc["input_ids"], enc["attention_mask"], segments


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def test_loads_offline_and_output_shapes(teacher, batch):
    ids, mask, segments = batch
    assert teacher.name == OFFLINE_TEACHER
    assert (teacher.hidden_size, teacher.num_heads, teacher.num_layers) == (384, 12, 6)
    out = teacher(ids, attention_mask=mask, token_type_ids=segments)
    assert isinstance(out, TeacherOutput)
    B, T = ids.shape
    assert out.last_hidden_state.shape == (B, T, 384)
    assert out.attention_scores.shape == (B, 12, T, T)
    # No additive mask was folded in: scores towards padded keys are ordinary q.k values (finfo.min or -1e4,
    # both finite, would dwarf them), and they still vary like the real ones.
    padded_keys = (mask == 0)[:, None, None, :].expand_as(out.attention_scores)
    to_pad, to_real = out.attention_scores[padded_keys], out.attention_scores[~padded_keys]
    assert to_pad.numel() > 0 and to_pad.abs().max() < 4 * to_real.abs().max()
    assert to_pad.std() > 0.25 * to_real.std()


def test_the_paper_scales_distil_from_the_paper_teacher():
    """base and paper name ELECTRA-base (PAPER_TEACHER) as their teacher; the CPU scales the offline MiniLM.
    EfficientBERT's and AutoBERT-Zero's studies distil from BERT-base at those scales."""
    import yaml

    def teachers(node):
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "teacher"] + [t for v in node.values() for t in teachers(v)]
        return [t for v in node for t in teachers(v)] if isinstance(node, list) else []

    configs = Path(__file__).resolve().parents[1] / "configs"
    for scale, expected, efficientbert in [("smoke", OFFLINE_TEACHER, OFFLINE_TEACHER),
                                           ("mini", OFFLINE_TEACHER, OFFLINE_TEACHER),
                                           ("base", PAPER_TEACHER, "bert-base-uncased"),  # EfficientBERT's teacher
                                           ("paper", PAPER_TEACHER, "bert-base-uncased")]:
        settings = yaml.safe_load((configs / f"{scale}.yaml").read_text())
        related = ("efficientbert", "autobert_zero")
        assert set(teachers({k: v for k, v in settings.items() if k not in related})) == {expected}, scale
        for section in related:
            assert (settings[section].get("teacher") or OFFLINE_TEACHER) == efficientbert, (scale, section)
    assert PAPER_TEACHER == "google/electra-base-discriminator"


def test_frozen_no_grad_and_train_cannot_enable_dropout(teacher, batch):
    ids, mask, segments = batch
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.enable_grad():
        out = teacher(ids, attention_mask=mask, token_type_ids=segments)
    assert out.last_hidden_state.grad_fn is None and not out.last_hidden_state.requires_grad
    assert out.attention_scores.grad_fn is None and not out.attention_scores.requires_grad

    parent = nn.ModuleDict({"student": nn.Linear(2, 2), "teacher": teacher})
    parent.train()
    assert parent.training and parent["student"].training
    assert not any(m.training for m in teacher.modules())
    assert teacher.train() is teacher and not teacher.training
    a = teacher(ids, attention_mask=mask, token_type_ids=segments)
    b = teacher(ids, attention_mask=mask, token_type_ids=segments)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.equal(a.attention_scores, b.attention_scores)


def test_scores_are_pre_softmax_of_last_layer(teacher, batch):
    """softmax(scores + additive mask) == transformers' own eager post-softmax last-layer attentions."""
    ids, mask, segments = batch
    eager = AutoModel.from_pretrained(offline_teacher_path(), local_files_only=True, attn_implementation="eager").eval()
    with torch.no_grad():
        ref = eager(input_ids=ids, attention_mask=mask, token_type_ids=segments, output_attentions=True)
    assert len(ref.attentions) == teacher.num_layers
    out = teacher(ids, attention_mask=mask, token_type_ids=segments)
    probs = torch.softmax(out.attention_scores + _additive(mask, out.attention_scores.dtype), dim=-1)
    torch.testing.assert_close(probs, ref.attentions[-1], atol=TOL, rtol=0)
    # Hidden states too, at real positions (padded rows differ at ~1e-5 between SDPA and eager kernels).
    real = mask.bool()
    torch.testing.assert_close(out.last_hidden_state[real], ref.last_hidden_state[real], atol=TOL, rtol=0)


def test_under_autocast_the_weights_are_cast_once_with_the_same_outputs(batch):
    """Under bf16 autocast the teacher keeps its Linear weights cast (autocast would cast them at every call): the
    same numbers as the model's own forward under autocast, and cast again when a weight changes."""
    ids, mask, segments = batch
    teacher = load_teacher(OFFLINE_TEACHER)
    query = teacher.model.encoder.layer[-1].attention.self.query
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = teacher(ids, attention_mask=mask, token_type_ids=segments, all_layers=True)
        ref = teacher.model(input_ids=ids, attention_mask=mask, token_type_ids=segments, output_hidden_states=True)
        batch_, seq = ids.shape
        heads = [f(ref.hidden_states[-2]).view(batch_, seq, 12, 32).transpose(1, 2) for f in (query, teacher.model.
                 encoder.layer[-1].attention.self.key)]
        ref_scores = torch.matmul(heads[0], heads[1].transpose(-1, -2)) / math.sqrt(32)
    assert out.attention_scores.dtype == torch.bfloat16 and query.weight.dtype == torch.float32
    assert torch.equal(out.last_hidden_state, ref.last_hidden_state)
    assert all(torch.equal(a, b) for a, b in zip(out.hidden_states, ref.hidden_states))
    assert torch.equal(out.attention_scores, ref_scores)
    casts = teacher._casts[1]
    assert casts[f"encoder.layer.{teacher.num_layers - 1}.attention.self.query.weight"].dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        teacher(ids, attention_mask=mask, token_type_ids=segments)
        assert teacher._casts[1] is casts  # kept
        with torch.no_grad():
            query.weight.mul_(2.0)
        doubled = teacher(ids, attention_mask=mask, token_type_ids=segments)
    assert teacher._casts[1] is not casts and not torch.equal(doubled.attention_scores, out.attention_scores)
    fp32 = teacher(ids, attention_mask=mask, token_type_ids=segments)  # outside autocast: the fp32 weights
    assert fp32.attention_scores.dtype == torch.float32


def test_hidden_states_minus_two_is_the_last_layer_input(teacher, batch):
    """Guards the indexing assumption against future changes of how v5 records hidden states."""
    ids, mask, segments = batch
    seen: dict[str, torch.Tensor] = {}

    def grab(module, args, kwargs) -> None:
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).clone()

    handle = teacher.model.encoder.layer[-1].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        out = teacher(ids, attention_mask=mask, token_type_ids=segments)
    finally:
        handle.remove()
    attn = teacher.model.encoder.layer[-1].attention.self
    B, T, _ = seen["x"].shape
    q = attn.query(seen["x"]).view(B, T, 12, -1).transpose(1, 2)
    k = attn.key(seen["x"]).view(B, T, 12, -1).transpose(1, 2)
    torch.testing.assert_close(out.attention_scores, q @ k.transpose(-1, -2) / 32**0.5, atol=TOL, rtol=0)


def test_scores_from_the_kept_projections_are_those_recomputed_bit_for_bit(teacher, batch):
    """The query/key projections are kept from the forward pass (hooks, removed after it): every layer's scores are
    exactly those recomputed from the layer's input, the path of a model whose attention does not call them."""
    ids, mask, segments = batch
    hooks = {name: len(m._forward_hooks) for name, m in teacher.model.named_modules()}
    with mock.patch.object(teacher, "_scores", wraps=teacher._scores) as scores:
        out = teacher(ids, attention_mask=mask, token_type_ids=segments, all_layers=True)
    kept = scores.call_args.args[3]  # every layer's projections were kept from the forward pass
    assert set(kept) == {(i, kind) for i in range(teacher.num_layers) for kind in ("query", "key")}
    recomputed = [teacher._scores(i, out.hidden_states[i], {}, {}) for i in range(teacher.num_layers)]
    assert all(torch.equal(a, b) for a, b in zip(out.all_attention_scores, recomputed))
    assert torch.equal(out.attention_scores, recomputed[-1])
    assert {name: len(m._forward_hooks) for name, m in teacher.model.named_modules()} == hooks


def test_padding_invariance(teacher, tokenizer):
    enc = tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    extra = 5
    ids_p = torch.cat([ids, torch.full((ids.shape[0], extra), tokenizer.pad_token_id)], dim=1)
    mask_p = torch.cat([mask, torch.zeros(ids.shape[0], extra, dtype=mask.dtype)], dim=1)
    a = teacher(ids, attention_mask=mask)
    b = teacher(ids_p, attention_mask=mask_p)
    T = ids.shape[1]
    real = mask.bool()
    torch.testing.assert_close(b.last_hidden_state[:, :T][real], a.last_hidden_state[real], atol=TOL, rtol=0)
    # Scores between real tokens do not depend on padding either.
    pair = real[:, None, :, None] & real[:, None, None, :]
    pair = pair.expand_as(a.attention_scores)
    torch.testing.assert_close(b.attention_scores[:, :, :T, :T][pair], a.attention_scores[pair], atol=TOL, rtol=0)


def test_mask_and_segments_are_keyword_only_and_reach_the_model(teacher, batch):
    params = inspect.signature(Teacher.forward).parameters
    assert params["input_ids"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert params["attention_mask"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["token_type_ids"].kind is inspect.Parameter.KEYWORD_ONLY
    ids, mask, segments = batch
    with pytest.raises(TypeError):
        teacher(ids, mask)
    with pytest.raises(TypeError):
        teacher(ids, mask, segments)
    # Each input changes the output, i.e. it is really used (and used in its own role).
    base = teacher(ids, attention_mask=mask, token_type_ids=segments).last_hidden_state
    no_seg = teacher(ids, attention_mask=mask).last_hidden_state
    no_mask = teacher(ids, token_type_ids=segments).last_hidden_state
    assert not torch.allclose(base, no_seg)
    assert not torch.allclose(base[mask.bool()], no_mask[mask.bool()])


def test_electra_layout_with_embedding_projection():
    """The paper's teacher is an ELECTRA discriminator; check the same code on a tiny random one."""
    torch.manual_seed(0)
    cfg = ElectraConfig(
        vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, attn_implementation="eager",
    )
    teacher = Teacher(ElectraModel(cfg), name="tiny-electra")
    assert (teacher.hidden_size, teacher.num_heads, teacher.num_layers, teacher.head_size) == (32, 4, 2, 8)
    ids = torch.randint(5, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    out = teacher(ids, attention_mask=mask)
    with torch.no_grad():
        ref = teacher.model(input_ids=ids, attention_mask=mask, output_attentions=True)
    probs = torch.softmax(out.attention_scores + _additive(mask, torch.float32), dim=-1)
    torch.testing.assert_close(probs, ref.attentions[-1], atol=TOL, rtol=0)


def test_unsupported_architecture_fails_clearly():
    gpt2 = GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16))
    with pytest.raises(TypeError, match=r"encoder\.layer"):
        Teacher(gpt2)


def test_hub_name_without_network_gives_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once at import; patch the cached value so it fails fast.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError, match=OFFLINE_TEACHER) as info:
        load_teacher("atb-tests/this-teacher-does-not-exist")
    assert "network" in str(info.value)


def test_first_layers_keeps_the_first_layers_exactly(tmp_path, caplog):
    from transformers import AutoModel, BertConfig, BertModel

    from atb.data import load_tokenizer
    from atb.teacher import first_layers

    torch.manual_seed(0)
    source = tmp_path / "source"
    BertModel(BertConfig(vocab_size=load_tokenizer().vocab_size, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(source)
    load_tokenizer().save_pretrained(source)
    caplog.clear()
    out = first_layers(source, 2, tmp_path / "first-2")
    assert "LOAD REPORT" not in caplog.text  # the dropped layer's keys are expected (notebook 05's copy showed them)
    full, cut = AutoModel.from_pretrained(source), AutoModel.from_pretrained(out)
    assert cut.config.num_hidden_layers == 2 and len(cut.encoder.layer) == 2
    kept = {k: v for k, v in full.state_dict().items() if not k.startswith("encoder.layer.2.")}
    assert kept.keys() == cut.state_dict().keys()
    assert all(torch.equal(v, cut.state_dict()[k]) for k, v in kept.items())
    assert (out / "tokenizer_config.json").exists()
    stamp = (out / "config.json").stat().st_mtime_ns
    assert first_layers(source, 2, out) == out and (out / "config.json").stat().st_mtime_ns == stamp  # kept
    with pytest.raises(ValueError, match="cannot keep 4"):
        first_layers(source, 4, tmp_path / "first-4")
