"""OP-NAS (atb.autobert_zero.search): the latency constraint, no duplicates, equal cost for both mutation rules,
determinism, resume without re-evaluation, the log header check, the operation priorities (reward in units of the
gains' spread, credit to the introduced operation only), unstable candidates discarded, the config.

No training: a synthetic fitness (a deterministic function of the layers' strings) and a synthetic latency (the
number of attention layers), on 4-layer backbones.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import warnings
from collections import defaultdict

import pytest

from atb.autobert_zero.graph import OPS, op_counts
from atb.autobert_zero.search import ALGORITHM, OpNasConfig, OpPriority, evaluate_or_discard, reward, run_opnas
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
    assert set(a.op_priority) == set(b.op_priority) == set(OPS)  # side by side: the same operations and fields
    assert {tuple(sorted(v)) for r in (a, b) for v in r.op_priority.values()} == {("count", "mean_reward",
                                                                                   "priority")}


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
    header = json.loads(lines[0])
    header["header"]["algorithm"] = "op-nas/1"  # a log of the earlier reward and credit rules
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"differs in \['algorithm'\]"):
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


def test_reward_is_scale_free_and_in_units_of_the_gains_spread():
    assert reward(1.0, [1.0, -1.0, 3.0]) == pytest.approx(reward(10.0, [10.0, -10.0, 30.0]))
    assert reward(1.0, [1.0, -1.0, 3.0]) == pytest.approx(1.0 / statistics.pstdev([1.0, -1.0, 3.0]))
    assert reward(2.0, [2.0]) == 2.0 and reward(2.0, [2.0, 2.0]) == 2.0  # one gain, or all equal: unit 1
    assert reward(0.0, [1.0, 0.0]) == 0.0


def expected_priorities(result) -> dict[str, tuple[float, int]]:
    """``{op: (mean reward, count)}`` recomputed from the history: each kept child whose mutation introduced an op
    is credited ``gain / pstdev(gains so far)``, gains being those of credited children only."""
    gains, rewards = [], defaultdict(list)
    for r in result.history:
        if r.fitness is not None and r.op is not None and r.parent is not None:
            gains.append(r.fitness - result.history[r.parent].fitness)
            rewards[r.op].append(gains[-1] / ((statistics.pstdev(gains) if len(gains) > 1 else 0.0) or 1.0))
    return {op: (sum(v) / len(v), len(v)) for op, v in rewards.items()}


def test_op_priority_is_rebuilt_from_credited_gains(tmp_path):
    for rule in ("op-priority", "random"):
        result = search(tmp_path, name=f"{rule}.jsonl", mutation=rule)
        expected = expected_priorities(result)
        assert expected and {op for op, v in result.op_priority.items() if v["count"]} == set(expected)
        for op, (mean, count) in expected.items():
            assert result.op_priority[op]["count"] == count
            assert result.op_priority[op]["mean_reward"] == pytest.approx(mean)


class StartUpOutliers(Synthetic):
    """:class:`Synthetic`, but the random start-up backbones (calls 1..3) score ``low``: never parents."""

    def __init__(self, low: float):
        super().__init__()
        self.low = low

    def __call__(self, candidate) -> float:
        value = super().__call__(candidate)
        return self.low if 1 <= len(self.calls) - 1 <= 3 else value


def test_outliers_among_random_backbones_do_not_shrink_rewards(tmp_path):
    mild = search(tmp_path, StartUpOutliers(-100.0), name="mild.jsonl", population=2)
    huge = search(tmp_path, StartUpOutliers(-1e9), name="huge.jsonl", population=2)
    assert [r.fitness for r in huge.history[1:4]] == [-1e9] * 3
    assert all(r.parent not in (1, 2, 3) for r in huge.history)  # the outliers were never parents
    assert huge.op_priority == mild.op_priority  # the unit is the gains' spread: the outliers play no part
    assert [r.candidate for r in huge.history] == [r.candidate for r in mild.history]
    credited = [v["mean_reward"] for v in huge.op_priority.values() if v["count"]]
    assert max(abs(m) for m in credited) > 0.5  # rewards of order 1, not ~1e-9


def test_credit_goes_only_to_an_introduced_op(tmp_path):
    result = search(tmp_path, evaluations=60)
    children = [r for r in result.history if r.source == "mutation"]
    uncredited = [r for r in children if r.op is None]
    assert uncredited and len(uncredited) < len(children)  # type switches, kernel changes, leaf swaps, deletions
    for r in children:
        parent = result.history[r.parent].candidate
        (i,) = [i for i, (a, b) in enumerate(zip(parent, r.candidate)) if a != b]
        before, after = parent[i], r.candidate[i]
        if r.op is not None:  # the changed layer gained one of it
            assert isinstance(before, AttentionLayer) and isinstance(after, AttentionLayer)
            assert op_counts(after.graph)[r.op] > op_counts(before.graph)[r.op]
        elif isinstance(before, AttentionLayer) and isinstance(after, AttentionLayer):
            assert not any(op_counts(after.graph)[o] > op_counts(before.graph)[o] for o in OPS)
    assert sum(v["count"] for v in result.op_priority.values()) == len(children) - len(uncredited)


# --------------------------------------------------------------------------------------- unstable candidates
class Unstable(Synthetic):
    """:class:`Synthetic`, but NaN, inf or a ``FloatingPointError`` for some candidates (a deterministic function
    of the layers: the same candidates are unstable on a rerun)."""

    def __call__(self, candidate) -> float:
        value = super().__call__(candidate)
        code = sum(map(ord, " ".join(candidate_strings(candidate)))) % 11  # the start's: 5
        if code == 0:
            return math.nan
        if code == 1:
            return -math.inf
        if code == 2:
            raise FloatingPointError("overflow in the proxy loss")
        return value


def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"the log holds {constant}")

    return json.loads(text, parse_constant=refuse)


def test_a_non_finite_fitness_is_discarded_and_logged(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = search(tmp_path, Unstable())
        plain = search(tmp_path, Unstable(), name="random.jsonl", mutation="random")
    assert len(result.history) == len(plain.history) == 40  # discarded ones count: equal cost for both rules
    assert sum("discarded" in str(w.message) for w in caught) == result.discarded + plain.discarded
    discarded = [r for r in result.history if not r.kept]
    assert result.discarded == len(discarded) >= 3 and plain.discarded >= 1
    reasons = {r.discarded.split(" ")[0] for r in discarded}
    assert reasons == {"non-finite", "FloatingPointError:"}
    assert all(r.fitness is None for r in discarded)
    assert all(r.fitness is not None and math.isfinite(r.fitness) for r in result.kept)
    gone = {r.index for r in discarded}
    assert not any(r.parent in gone for r in result.history)  # never a parent
    assert result.best.kept and result.best.fitness == max(r.fitness for r in result.kept if r.feasible)
    credited = sum(v["count"] for v in result.op_priority.values())
    assert credited == sum(r.op is not None and r.parent is not None for r in result.kept)  # never credited
    assert credited == sum(c for _, c in expected_priorities(result).values())
    lines = [strict_json(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines[0]["header"]["algorithm"] == ALGORITHM
    logged = [row for row in lines[1:] if row["discarded"] is not None]
    assert len(logged) == len(discarded) and all(row["fitness"] is None for row in logged)
    saved = strict_json(json.dumps(result.to_dict(), allow_nan=False))
    assert saved["discarded"] == len(discarded) and saved["evaluated"] == 40


def test_a_discarded_candidate_is_never_re_proposed_and_a_discarded_start_is_survived(tmp_path):
    def all_but_the_start(candidate) -> float:
        return math.nan if candidate == START else 1.0 + 0.01 * len(" ".join(candidate_strings(candidate)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = search(tmp_path, all_but_the_start, evaluations=12, init_random=0)
        assert result.history[0].discarded and result.history[1].source == "random"  # no parent to mutate yet
        assert {r.source for r in result.history[2:]} == {"mutation"} and result.best.index > 0
        keys = [candidate_key(r.candidate) for r in result.history]
        assert len(set(keys)) == len(keys)
        only_the_start = search(tmp_path, lambda c: 1.0 if c == START else math.nan, name="start.jsonl",
                                evaluations=30, init_random=0)
        with pytest.raises(RuntimeError, match="all 3 evaluations were discarded"):
            search(tmp_path, lambda candidate: math.inf, name="none.jsonl", evaluations=3)
    assert only_the_start.discarded == 29 and only_the_start.best.index == 0
    assert {r.parent for r in only_the_start.history[1:]} == {0}  # a discarded child is never a parent
    keys = [candidate_key(r.candidate) for r in only_the_start.history]
    assert len(set(keys)) == len(keys)  # nor proposed again


def test_evaluate_or_discard():
    class Reporting:
        def __init__(self, value):
            self.value = value

        def evaluate(self, candidate) -> dict:
            return {"fitness": self.value, "loss": math.nan, "parts": [1.0, math.inf]}

    value, details, seconds, cpu, why = evaluate_or_discard(Reporting(math.nan), START, "x")
    assert value is None and why == "non-finite fitness (nan)" and details == {"loss": None, "parts": [1.0, None]}
    assert evaluate_or_discard(Reporting(2), START, "x")[0::4] == (2.0, None)

    def broken(candidate):
        raise ValueError("a bug, not an unstable candidate")

    with pytest.raises(ValueError, match="a bug"):  # only non-finite values are discarded
        evaluate_or_discard(broken, START, "x")


def test_resume_with_a_discarded_record_replays_identically(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = search(tmp_path, Unstable(), name="whole.jsonl")
        cut_at = 17
        assert any(not r.kept for r in whole.history[:cut_at])  # the cut part holds a discarded record
        with pytest.raises(Interrupted):
            search(tmp_path, Unstable(fail_after=cut_at), name="cut.jsonl")
        rest = Unstable()
        resumed = search(tmp_path, rest, name="cut.jsonl")
        assert resumed.history == whole.history and resumed.op_priority == whole.op_priority
        assert resumed.replayed == cut_at and len(rest.calls) == 40 - cut_at
        again = Unstable()
        replay = search(tmp_path, again, name="cut.jsonl")
    assert replay.history == whole.history and replay.op_priority == whole.op_priority and again.calls == []
    assert replay.discarded == whole.discarded > 0

    def logged(result):
        return [{k: v for k, v in r.record().items() if k not in ("seconds", "cpu_seconds")} for r in result.history]

    assert logged(replay) == logged(whole)


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
