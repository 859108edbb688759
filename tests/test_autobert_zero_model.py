"""AutoBERT-Zero's convolutions (BIWS centre-crop sharing), standalone model (Auto classes, fresh-process round trip),
BIWS supernet (sliced == extracted, warm start), layer latency table and study config."""

import json
import random
import subprocess
import sys

import pytest
import torch

from atb.autobert_zero import AutoBertZeroConfig, AutoBertZeroForSequenceClassification, AutoBertZeroModel
from atb.autobert_zero.conv import ConvMixer, centre_out_offsets, positional
from atb.autobert_zero.graph import STANDARD, parse
from atb.autobert_zero.latency import LayerLatencyTable
from atb.autobert_zero.space import AttentionLayer, ConvLayer, published_candidate, random_candidate, \
    standard_candidate
from atb.autobert_zero.modeling import published_config
from atb.autobert_zero.study import AutoBertZeroStudyConfig
from atb.autobert_zero.supernet import AutoBertZeroSuperNet, as_candidate
from atb.latency import Protocol

SMALL = dict(vocab_size=100, hidden_size=24, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def supernet(conv_type="light", kernels=(3, 7, 9, 65)):
    torch.manual_seed(0)
    config = AutoBertZeroConfig(**SMALL, conv_type=conv_type)
    config.kernels = list(kernels)
    net = AutoBertZeroSuperNet(config).eval()
    with torch.no_grad():  # non-trivial kernels, so a wrong crop shows
        for layer in net.layer:
            if layer.conv.weight is not None:
                layer.conv.weight.normal_()
            else:
                layer.conv.kernel_generator.weight.normal_()
    return net


def batch(seed=0, length=20):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    return ids, mask


# ------------------------------------------------------------------------------------------------ convolutions
def test_centre_out_order_and_its_positional_inverse():
    assert centre_out_offsets(5) == (0, -1, 1, -2, 2)
    taps = torch.tensor([[10.0, 11.0, 12.0, 13.0, 14.0]])  # offsets 0, -1, +1, -2, +2
    assert positional(taps).tolist() == [[13.0, 11.0, 10.0, 12.0, 14.0]]  # offsets -2 .. +2
    with pytest.raises(ValueError, match="odd"):
        centre_out_offsets(4)


@pytest.mark.parametrize("conv_type", ["light", "dynamic"])
def test_biws_a_cropped_kernel_equals_the_extracted_smaller_kernel(conv_type):
    """The supernet's kernel of size k is the centre crop of its largest one, and is exactly the extracted model's."""
    torch.manual_seed(0)
    big = ConvMixer(24, 4, 9, conv_type).eval()
    with torch.no_grad():
        (big.weight if big.weight is not None else big.kernel_generator.weight).normal_()
    x = torch.randn(2, 11, 24)
    if conv_type == "light":
        raw_full = positional(big.weight)  # [H, 9] in positional order
        crop = raw_full[:, 2:7]  # the centre 5 taps
        small = big.extract(5)
        assert torch.equal(positional(small.weight), crop)  # the stored kernel is the crop, tap for tap
        assert torch.allclose(big.taps(None, 5), crop.softmax(-1))
    else:
        full = big.kernel_generator(x).unflatten(-1, (4, 9))
        crop = positional(full)[..., 2:7]
        small = big.extract(5)
        assert torch.allclose(positional(small.kernel_generator(x).unflatten(-1, (4, 5))), crop, atol=1e-6)
        big.kernel_generator.set_active(24, 36)
    assert torch.allclose(big.taps(x, 5), small.taps(x, 5), atol=1e-6)
    mask = torch.ones(2, 11, dtype=torch.bool)
    assert torch.allclose(big(x, mask, 5), small(x, mask), atol=1e-6)


@pytest.mark.parametrize("conv_type", ["light", "dynamic"])
def test_padding_never_reaches_a_real_token(conv_type):
    torch.manual_seed(0)
    conv = ConvMixer(24, 4, 7, conv_type).eval()
    x, mask = torch.randn(1, 10, 24), torch.ones(1, 10, dtype=torch.bool)
    mask[0, 7:] = False
    changed = x.clone()
    changed[0, 7:] += 100.0
    assert torch.allclose(conv(x, mask)[0, :7], conv(changed, mask)[0, :7], atol=1e-5)


# ------------------------------------------------------------------------------------------------ supernet
@pytest.mark.parametrize("conv_type", ["light", "dynamic"])
def test_sliced_equals_extracted_for_random_and_published_candidates(conv_type):
    net = supernet(conv_type)
    ids, mask = batch()
    rng = random.Random(0)
    candidates = [standard_candidate(3), published_candidate(3), as_candidate(["conv:3", "conv:7", "conv:65"])]
    candidates += [random_candidate(3, rng, (3, 7, 9, 65)) for _ in range(6)]
    with torch.no_grad():
        for candidate in candidates:
            sliced = net(ids, candidate, attention_mask=mask).last_hidden_state
            model = net.extract(candidate).eval()
            extracted = model(ids, attention_mask=mask).last_hidden_state
            assert torch.allclose(sliced, extracted, atol=1e-5), [str(s) for s in candidate]
            assert net.candidate_params(candidate) == sum(p.numel() for p in model.parameters())


def test_a_graph_without_v_has_no_value_projection_and_fewer_parameters():
    net = supernet()
    no_v = as_candidate([f"attn:{parse('matmul(softmax(scale(matmul(Q,transpose(neg(logsigmoid(K)))))),Q)')}"] * 3)
    model = net.extract(no_v)
    assert model.layer[0].attention.value is None and model.layer[0].conv is None
    assert net.candidate_params(no_v) == net.candidate_params(standard_candidate(3)) - 3 * (24 * 24 + 24)


def test_supernet_rejects_a_kernel_it_does_not_hold_and_a_wrong_depth():
    net = supernet(kernels=(3, 7))
    ids, mask = batch()
    with pytest.raises(ValueError, match="kernel 9"):
        net(ids, (ConvLayer(9),) * 3, attention_mask=mask)
    with pytest.raises(ValueError, match="2 layers"):
        net(ids, standard_candidate(2), attention_mask=mask)


def test_standard_candidate_of_a_warm_started_supernet_is_the_source_bert():
    """Warm start: the standard-attention candidate of the supernet computes the source BERT (MiniLM's shape)."""
    from atb.autobert_zero.supernet import supernet_config, warm_start_from_bert
    from atb.teacher import load_teacher

    teacher = load_teacher("minilm-offline")
    net = AutoBertZeroSuperNet(supernet_config(teacher.model.config, (3, 65))).eval()
    warm_start_from_bert(net, teacher.model)
    ids, mask = batch(length=16)
    ids = ids + 1000
    with torch.no_grad():
        ours = net(ids, standard_candidate(net.config.num_hidden_layers), attention_mask=mask).last_hidden_state
        theirs = teacher.model(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)
    assert net.config.warm_start["source"] == "BertModel"


# ------------------------------------------------------------------------------------------------ standalone model
def test_config_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer_specs\[1\]"):
        AutoBertZeroConfig(**SMALL, layer_specs=["conv:3", "conv:4", "conv:3"])
    with pytest.raises(ValueError, match="3 layers"):
        AutoBertZeroConfig(**SMALL, layer_specs=["conv:3"])
    with pytest.raises(ValueError, match="conv_type"):
        AutoBertZeroConfig(**SMALL, conv_type="separable")


def test_published_zoo_entry_is_the_published_pattern_at_bert_base_size():
    config = published_config()
    assert config.num_hidden_layers == 12 and config.hidden_size == 768
    kinds = [s.split(":")[0] for s in config.layer_specs]
    assert kinds == ["conv", "attn"] * 6
    assert [int(s[5:]) for s in config.layer_specs[::2]] == [65, 9, 3, 7, 7, 3]
    small = published_config(num_hidden_layers=6, hidden_size=48, num_attention_heads=12, intermediate_size=96)
    assert small.layer_specs == config.layer_specs[:6]


@pytest.mark.slow
def test_export_round_trip_in_a_fresh_process(tmp_path):
    """save_pretrained, then AutoModelForSequenceClassification.from_pretrained in a new process: equal logits."""
    torch.manual_seed(0)
    config = published_config(num_hidden_layers=4, hidden_size=24, num_attention_heads=4, intermediate_size=48,
                              vocab_size=100, max_position_embeddings=64, num_labels=3)
    model = AutoBertZeroForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    ids, mask = batch()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    torch.save({"ids": ids, "mask": mask}, tmp_path / "inputs.pt")
    script = f"""
import torch, atb.autobert_zero
from transformers import AutoModelForSequenceClassification
m = AutoModelForSequenceClassification.from_pretrained({str(tmp_path)!r}).eval()
x = torch.load({str(tmp_path / 'inputs.pt')!r}, weights_only=True)
with torch.no_grad():
    torch.save(m(input_ids=x['ids'], attention_mask=x['mask']).logits, {str(tmp_path / 'out.pt')!r})
print(type(m).__name__)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "AutoBertZeroForSequenceClassification"
    assert torch.allclose(torch.load(tmp_path / "out.pt", weights_only=True), expected, atol=1e-6)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "atb-autobert-zero"


def test_base_model_runs_and_has_a_pooler():
    model = AutoBertZeroModel(AutoBertZeroConfig(**SMALL, layer_specs=["conv:3", str(AttentionLayer(STANDARD)),
                                                                        "conv:9"])).eval()
    ids, mask = batch()
    out = model(ids, attention_mask=mask)
    assert out.last_hidden_state.shape == (2, 20, 24) and out.pooler_output.shape == (2, 24)


# ------------------------------------------------------------------------------------------------ latency
def test_layer_latency_table_is_measured_once_and_reused_from_its_file(tmp_path):
    config = AutoBertZeroConfig(**SMALL)
    protocol = Protocol(seq_len=16, runs=2, warmup=0)
    table = LayerLatencyTable(config, protocol, tmp_path / "lut.json")
    standard, conv = str(AttentionLayer(STANDARD)), "conv:3"
    assert table(standard) > 0 and table(conv) > 0
    assert table.candidate([standard, conv]) == pytest.approx(table(standard) + table(conv))
    again = LayerLatencyTable(config, protocol, tmp_path / "lut.json")
    assert again.ratios == table.ratios and again(conv) == table(conv)  # no re-timing: the same numbers
    other = LayerLatencyTable(AutoBertZeroConfig(**{**SMALL, "hidden_size": 32}), protocol, tmp_path / "lut.json")
    assert other.ratios == {}  # another width's table is not reused


# ------------------------------------------------------------------------------------------------ study config
@pytest.mark.parametrize("scale", ["smoke", "mini", "base", "paper"])
def test_every_scale_has_a_valid_autobert_zero_section(scale):
    cfg = AutoBertZeroStudyConfig.load(scale)
    assert {"searched", "standard"} <= set(cfg.develop) and cfg.search_seeds


def test_study_config_errors_name_the_field():
    with pytest.raises(ValueError, match="latency_budget"):
        AutoBertZeroStudyConfig(latency_budget=0)
    with pytest.raises(ValueError, match="develop"):
        AutoBertZeroStudyConfig(develop=["searched"])
    with pytest.raises(ValueError, match="set by the study"):
        AutoBertZeroStudyConfig(search={"seed": 3})
    with pytest.raises(ValueError, match="population"):
        AutoBertZeroStudyConfig(search={"population": 0})
