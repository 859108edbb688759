"""benchmarks/bench_training.py times the earlier engine (ecb91f4) beside the new default in one run and records
what each path computed in; ``--precision fp32`` measures the fp32 improvements alone on any CPU."""

import json
import sys

import pytest

from conftest import load_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_the_record_holds_every_step_side_by_side_and_the_new_paths_precision(tmp_path, monkeypatch, precision):
    bench = load_benchmark("bench_training")
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--scale", "smoke", "--steps", "1", "--rounds", "1",
                                      "--precision", precision, "--out", str(out)])
    bench.main()
    record = json.loads(out.read_text())
    steps = {"finetune_sst2", "finetune_mrpc", "kd_step", "mlm_step", "further_step"}
    assert steps <= set(record["speedup"]) and steps <= set(record["seconds"])
    assert all(s["earlier"] > 0 and s["new"] > 0 for s in record["seconds"].values())
    for name, s in record["seconds"].items():  # one ratio per round, the median ratio within their range
        assert len(s["rounds"]) == 1 and record["speedup_range"][name] == [s["rounds"][0]] * 2
        assert record["speedup"][name] == pytest.approx(s["rounds"][0])
    assert record["commit"] is None or len(record["commit"]) == 40
    assert record["earlier"]["precision"] == "fp32" and record["new"]["precision"] == precision
    expected = "bf16" if precision == "auto" and record["native_bf16"] else "fp32"
    assert record["new"]["computed_in"] == expected


def test_the_earlier_paths_code_is_ecb91f4s_and_computes_the_same_numbers():
    """kernels("earlier") puts back ecb91f4's attention logits (masked_fill), KD mask count and teacher projections
    (recomputed), and takes them away after; each computes what today's code does, to the bit."""
    import torch

    from atb import modeling, objectives
    from atb.teacher import load_teacher

    bench = load_benchmark("bench_training")
    torch.manual_seed(0)
    q, k, other = torch.randn(2, 12, 6, 8), torch.randn(2, 12, 6, 8), torch.randn(2, 12, 6, 6)
    attention_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    mask = attention_mask.bool()[:, None, None, :]
    teacher, ids = load_teacher(), torch.randint(1000, 2000, (2, 6))

    def compute():
        logits, scores = modeling.attention_logits(q, k, mask, keep_scores=True)
        return (logits.softmax(-1), scores, modeling.attention_logits(q, k, mask, keep_scores=False)[0].softmax(-1),
                objectives.masked_mse(scores, other, objectives.real_pairs(attention_mask)),
                teacher(ids, attention_mask=attention_mask, all_layers=True).all_attention_scores)

    new = compute()
    with bench.kernels("earlier"):
        assert modeling.attention_logits is bench.masked_fill_logits
        assert objectives.masked_mse is bench.expanded_masked_mse
        with teacher._projections([5]) as kept:
            teacher.model(ids)
        assert kept == {}  # recomputed
        earlier = compute()
    assert modeling.attention_logits is not bench.masked_fill_logits
    assert all(torch.equal(a, b) for a, b in zip(new[:4], earlier[:4]))
    assert all(torch.equal(a, b) for a, b in zip(new[4], earlier[4]))
