"""OP-NAS (atb.autobert_zero.search): the latency constraint, no duplicates, equal cost for both mutation rules,
determinism, resume without re-evaluation, the log header check, the operation priorities, the config.

No training: a synthetic fitness (a deterministic function of the layers' strings) and a synthetic latency (the
number of attention layers), on 4-layer backbones.
"""

from __future__ import annotations

import json
import math
import random
import warnings

import pytest

from atb.autobert_zero.graph import OPS
from atb.autobert_zero.search import OpNasConfig, OpPriority, reward, run_opnas
from atb.autobert_zero.space import AttentionLayer, candidate_key, candidate_strings, published_candidate

START = published_candidate(4)  # conv65, attn, conv9, attn
KERNELS = (3, 7, 9, 65)
SMALL = dict(evaluations=40, population=5, init_random=3, max_latency_ms=2.0, seed=1)


class Interrupted(Exception):
    pass


class Synthetic:
    """Rewards ``softsign`` operations (capped) and convolution kernels near 7; counts its calls and raises after
    ``fail_after`` of them (an interrupted search). ``describe`` keeps the header the same whatever the counters."""

    def __init__(self, fail_after: int | None = None):
        self.fail_after, self.calls = fail_after, []

    def describe(self) -> dict:
        return {"name": "synthetic"}

    def __call__(self, candidate) -> float:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise Interrupted("interrupted")
        self.calls.append(candidate_strings(candidate))
        text = " ".join(candidate_strings(candidate))
        kernels = [layer.kernel for layer in candidate if not isinstance(layer, AttentionLayer)]
        return min(text.count("softsign"), 6) - 0.1 * sum(abs(k - 7) ** 0.5 for k in kernels) + 0.01 * len(text) % 1


def attention_layers(candidate) -> float:
    return float(sum(isinstance(layer, AttentionLayer) for layer in candidate))


def search(tmp_path, fitness=None, name="log.jsonl", **overrides):
    cfg = OpNasConfig(**{**SMALL, **overrides})
    return run_opnas(START, fitness or Synthetic(), attention_layers, cfg, tmp_path / name, kernels=KERNELS)


# ---------------------------------------------------------------------------------------------- search
def test_latency_constraint_duplicates_and_records(tmp_path):
    result = search(tmp_path)
    assert len(result.history) == 40 and not result.exhausted
    assert [r.index for r in result.history] == list(range(40))
    assert all(r.latency_ms <= 2.0 and r.feasible for r in result.history)
    keys = [candidate_key(r.candidate) for r in result.history]
    assert len(set(keys)) == len(keys)
    assert result.history[0].source == "start" and result.history[0].candidate == START
    assert [r.source for r in result.history[1:4]] == ["random"] * 3
    assert {r.source for r in result.history[4:]} == {"mutation"}
    assert all(r.parent is not None and r.parent < r.index for r in result.history[4:])
    assert result.best.fitness == max(r.fitness for r in result.history)
    assert result.cpu_seconds == pytest.approx(sum(r.cpu_seconds for r in result.history))
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["evaluated"] == 40


def test_equal_cost_for_both_mutation_rules(tmp_path):
    a = search(tmp_path, name="priority.jsonl", mutation="op-priority")
    b = search(tmp_path, name="random.jsonl", mutation="random")
    assert len(a.history) == len(b.history) == 40
    assert [r.candidate for r in a.history] != [r.candidate for r in b.history]
    assert sum(v["count"] for v in b.op_priority.values()) > 0  # the baseline still reports priorities


def test_deterministic(tmp_path):
    a = search(tmp_path, name="a.jsonl")
    b = search(tmp_path, name="b.jsonl")
    assert a.history == b.history and a.op_priority == b.op_priority
    assert search(tmp_path, name="c.jsonl", seed=2).history != a.history


def test_resume_gives_the_uninterrupted_history_without_re_evaluating(tmp_path):
    whole = search(tmp_path, name="whole.jsonl")
    with pytest.raises(Interrupted):
        search(tmp_path, Synthetic(fail_after=17), name="cut.jsonl")
    rest = Synthetic()
    resumed = search(tmp_path, rest, name="cut.jsonl")
    assert resumed.history == whole.history and resumed.op_priority == whole.op_priority
    assert resumed.replayed == 17 and len(rest.calls) == 40 - 17
    again = Synthetic()
    replay = search(tmp_path, again, name="cut.jsonl")
    assert replay.history == whole.history and again.calls == [] and replay.replayed == 40
    longer = search(tmp_path, Synthetic(), name="cut.jsonl", evaluations=45)  # more evaluations extend a search
    assert longer.history[:40] == whole.history and len(longer.history) == 45


def test_a_log_of_another_search_is_refused(tmp_path):
    search(tmp_path, evaluations=5)
    with pytest.raises(ValueError, match=r"differs in \['config.seed'\]"):
        search(tmp_path, evaluations=5, seed=7)
    path = tmp_path / "log.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["layers"] = ["conv:3"] * 4
    path.write_text("\n".join([*lines[:3], json.dumps(row), *lines[4:]]) + "\n")
    with pytest.raises(ValueError, match="does not belong to this search"):
        search(tmp_path, evaluations=5)


def test_op_priority_learns_the_rewarded_operation(tmp_path):
    def softsigns(candidate) -> float:
        return float(sum(str(layer).count("softsign") for layer in candidate))

    for seed in (0, 1):
        cfg = OpNasConfig(evaluations=60, population=5, seed=seed, max_latency_ms=3.0)
        result = run_opnas(published_candidate(4), softsigns, attention_layers, cfg, tmp_path / f"s{seed}.jsonl",
                           kernels=(3, 7))
        credited = {op: v for op, v in result.op_priority.items() if v["count"]}
        assert max(credited, key=lambda op: credited[op]["mean_reward"]) == "softsign"
        assert credited["softsign"]["mean_reward"] > 0


def test_an_impossible_constraint_stops_the_search(tmp_path):
    with warnings.catch_warnings(record=True) as caught:  # one mutation changes one layer: >= 1 attention layer
        warnings.simplefilter("always")
        result = search(tmp_path, max_latency_ms=0.5, max_rejections=20, init_random=0)
    messages = [str(w.message) for w in caught]
    assert any("start's latency 2 ms exceeds" in m for m in messages)
    assert any("20 proposals in a row rejected" in m for m in messages)
    assert result.exhausted and len(result.history) == 1  # the start only, evaluated as the reference point
    assert not result.history[0].feasible


# -------------------------------------------------------------------------------------------- priority
def test_op_priority_ucb_and_choice():
    p = OpPriority(("add", "mul", "neg"), ucb_c=1.0, temperature=0.1)
    rng = random.Random(0)
    assert {p.choose(["add", "mul"], rng) for _ in range(50)} == {"add", "mul"}  # untried: uniform
    p.update("add", 2.0)
    assert p.choose(["add", "mul"], rng) == "mul"  # an untried op comes first
    p.update("mul", -1.0)
    p.update("add", 0.0)
    assert p.mean_reward("add") == 1.0 and p.counts["add"] == 2
    assert p.ucb("add") == pytest.approx(1.0 + math.sqrt(2 * math.log(3) / 2))
    assert p.ucb("neg") == math.inf
    assert sum(p.choose(["add", "mul"], rng) == "add" for _ in range(200)) > 190
    d = p.to_dict()
    assert d["neg"] == {"priority": None, "mean_reward": 0.0, "count": 0}
    assert d["mul"]["mean_reward"] == -1.0 and set(OpPriority().to_dict()) == set(OPS)


def test_reward_is_scale_free():
    assert reward(2.0, 1.0, [0.0, 1.0, 2.0]) == pytest.approx(reward(20.0, 10.0, [0.0, 10.0, 20.0]))
    assert reward(2.0, 1.0, [2.0]) == 1.0 and reward(1.0, 1.0, [1.0, 1.0]) == 0.0


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("field, value", [
    ("evaluations", 0), ("population", 0), ("init_random", -1), ("mutation", "uniform"), ("ucb_c", -1.0),
    ("temperature", 0.0), ("max_nodes", 0), ("max_rejections", 0), ("switch_prob", 1.5), ("seed", 1.5),
    ("max_latency_ms", 0.0), ("evaluations", True),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"autobert_zero.search field '{field}'"):
        OpNasConfig(**{field: value})


def test_an_invalid_start_is_refused(tmp_path):
    with pytest.raises(ValueError, match="start is not a valid candidate"):
        run_opnas((), Synthetic(), attention_layers, OpNasConfig(), tmp_path / "x.jsonl", kernels=KERNELS)
