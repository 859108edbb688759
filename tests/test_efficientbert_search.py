"""EfficientBERT's three-stage expression search (atb.efficientbert.search): validity, uniqueness and the parameter
range of every candidate, what each stage may change (stage 2 from stage 1's top-2, stage 3 sizes only), the LaNAS
tree's split by true label, improvement on a synthetic fitness for both samplers, determinism, resume without
re-evaluation, stopping after stage 2, the log header check, the config, the stage-3 size sampler.

No training: a synthetic fitness (rewards tanh and more stacks at a smaller ratio, both bounded) and a synthetic
parameter count (stacks x inner width per layer), on 3 layers.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from atb.efficientbert.expression import BERT_FFN, RATIOS, STACKS, LayerFFN, function_hash, is_valid, parse
from atb.efficientbert.search import (
    ExpressionSearchConfig, candidate_strings, encode, format_candidate, parse_candidate, random_proposal, run_search,
    run_stage, stage3_size_sampler,
)

LAYERS = 3
START = (parse(BERT_FFN),) * LAYERS
SMALL = dict(samples=(24, 16, 16), init_samples=8, train_interval=4, tree_levels=(12,), min_leaf=2, population=6,
             max_rejections=200, min_params=40, max_params=200, seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """function_hash is a few small matmuls: threads only contend (the machine may be busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def params(candidate) -> int:
    return sum(f.stacks * (64 // f.ratio) for f in candidate)


class Synthetic:
    """A deterministic fitness of the strings and sizes; counts its calls, and raises after ``fail_after`` of them
    (an interrupted search). ``describe`` keeps the log header the same whatever the counters."""

    def __init__(self, fail_after: int | None = None):
        self.fail_after, self.calls = fail_after, []

    def describe(self) -> dict:
        return {"name": "synthetic"}

    def __call__(self, candidate) -> float:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls.append(format_candidate(candidate))
        return sum(min(str(f).count("tanh"), 2) + 0.25 * f.stacks - 0.25 * f.ratio for f in candidate)


def search(tmp_path, fitness=None, last_stage=3, **overrides):
    cfg = ExpressionSearchConfig(**{**SMALL, **overrides})
    return run_search(START, fitness or Synthetic(), params, cfg, tmp_path, last_stage=last_stage)


def stripped(result) -> list[list[dict]]:
    """The histories without timings (which differ between runs)."""
    return [[{k: v for k, v in e.record().items() if k not in ("seconds", "cpu_seconds")} for e in s.history]
            for s in result.stages]


@pytest.fixture(scope="module", params=["lanas", "evolution"])
def baseline(request, tmp_path_factory):
    return search(tmp_path_factory.mktemp(request.param), sampler=request.param)


# ---------------------------------------------------------------------------------------------- candidates
def test_candidate_strings_round_trip():
    candidate = (parse("tanh(linear4_2(gelu(linear4_2(x,wb1)),wb2))"),
                 parse("linear2_2(gelu(linear2_2(max(x,tanh(x)),wb1)),wb2)"))
    assert parse_candidate(candidate_strings(candidate)) == candidate
    assert parse_candidate(format_candidate(candidate)) == candidate  # the official ", "-joined line
    assert encode(candidate).shape == encode(START[:2]).shape


def test_lanas_tree_picks_the_path_by_ucb_and_its_classifiers_judge_proposals():
    from atb.efficientbert.search import _accepts, _Node

    x = np.array([[1.0, 0.0]] * 14 + [[0.0, 1.0]] * 2)  # 14 good samples, 2 bad ones
    z = np.array([1.0] * 14 + [0.0] * 2)
    tree = _Node(x, z, height=1, min_leaf=2)
    assert (tree.good.n, tree.bad.n) == (14, 2) and tree.good.model is None  # height 1: the children are leaves
    (model, side), = tree.select(c=0.0)  # exploitation: the good leaf
    assert side and _accepts([(model, side)], x[0]) and not _accepts([(model, side)], x[-1])
    assert tree.select(c=2.0)[0][1] is False  # 1 + 2 sqrt(2 ln 16 / 14) < 0 + 2 sqrt(2 ln 16 / 2): explore
    assert _Node(x, z, height=1, min_leaf=9).model is None  # too few samples to split
    assert _Node(x, np.ones(16), height=2, min_leaf=2).model is None  # all tie: nothing to learn


def test_lanas_tree_splits_each_node_by_the_true_label_not_the_prediction():
    """The official LearningPhase: the good child holds exactly the samples with fitness >= the node's median, also
    where the node's classifier gets some of them wrong; and so on down the tree."""
    from atb.efficientbert.search import _Node

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))  # features that hardly predict the fitness
    z = rng.normal(size=64) + 0.3 * x[:, 0]
    tree = _Node(x, z, height=2, min_leaf=2)
    labels = z >= np.median(z)
    assert tree.model is not None and (tree.model.predict(x).astype(bool) != labels).sum() >= 5  # it errs
    assert sorted(tree.good.z) == sorted(z[labels]) and sorted(tree.bad.z) == sorted(z[~labels])
    assert (tree.good.n, tree.bad.n) == (32, 32) and tree.good.mean > tree.bad.mean
    for child in (tree.good, tree.bad):  # the next level splits by its own median in turn
        assert child.model is not None
        assert sorted(child.good.z) == sorted(child.z[child.z >= np.median(child.z)])


# ----------------------------------------------------------------------------------------------- the search
def test_every_candidate_is_valid_unique_and_in_range(baseline):
    for stage in baseline.stages:
        assert len(stage.history) == SMALL["samples"][stage.stage - 1] and not stage.exhausted
        assert [e.index for e in stage.history] == list(range(len(stage.history)))
        hashes = [function_hash(e.candidate) for e in stage.history]
        assert hashes == [e.hash for e in stage.history]
        assert len(set(hashes)) == len(hashes) == len({format_candidate(e.candidate) for e in stage.history})
        for e in stage.history:
            assert len(e.candidate) == LAYERS and all(is_valid(f) for f in e.candidate)
            assert e.params == params(e.candidate) and e.in_range
            assert SMALL["min_params"] <= e.params <= SMALL["max_params"]
        assert stage.history[0].source == "start" and {e.source for e in stage.history[1:]} <= {
            "random", "lanas", "evolution", "fallback", *(["top-k"] if stage.stage == 2 else [])}
        assert stage.best.fitness == max(e.fitness for e in stage.history)


def test_each_stage_starts_from_the_previous_best_and_moves_only_what_it_may(baseline):
    one, two, three = baseline.stages
    assert one.start == START
    assert two.start == one.best.candidate and three.start == two.best.candidate
    sizes = [(f.stacks, f.ratio) for f in two.start]
    for e in two.history:  # stage 2: expressions only
        assert [(f.stacks, f.ratio) for f in e.candidate] == sizes
    # stage 1's runner-up is evaluated right after the start, at the start's sizes
    second = tuple(LayerFFN(f.expr, s, r) for f, (s, r) in zip(one.top(2)[1].candidate, sizes))
    assert two.history[1].candidate == second and two.history[1].source == "top-k"
    exprs = [f.expr for f in three.start]
    for e in three.history:  # stage 3 (top_k = 1): sizes only
        assert [f.expr for f in e.candidate] == exprs
    assert len({tuple((f.stacks, f.ratio) for f in e.candidate) for e in three.history}) == len(three.history)
    assert any(f.expr != START[0].expr for e in one.history for f in e.candidate)
    assert any((f.stacks, f.ratio) != (1, 1) for e in one.history for f in e.candidate)  # stage 1 moves both


def test_the_search_improves_on_the_start(baseline):
    start_fitness = baseline.stages[0].history[0].fitness
    assert baseline.best.fitness >= baseline.stages[1].best.fitness >= baseline.stages[0].best.fitness
    assert baseline.best.fitness >= start_fitness + 2  # at least two more tanh than BERT's FFN
    assert baseline.best.fitness > baseline.stages[0].best.fitness  # stages 2-3 refine stage 1's best


def test_the_lanas_sampler_is_used_after_the_random_samples(baseline):
    sources = [e.source for e in baseline.stages[0].history]
    assert sources[1:SMALL["init_samples"]] == ["random"] * (SMALL["init_samples"] - 1)
    expected = "lanas" if baseline.config.sampler == "lanas" else "evolution"
    assert expected in sources[SMALL["init_samples"]:]


def test_to_dict_fits_the_results_contract(baseline, tmp_path):
    data = json.loads(json.dumps(baseline.to_dict(), allow_nan=False))
    assert [s["stage"] for s in data["stages"]] == [1, 2, 3]
    for s, stage in zip(data["stages"], baseline.stages):
        assert s["best"] == {"expressions": stage.best.expressions, "fitness": stage.best.fitness,
                             "params": stage.best.params}
        assert len(s["history"]) == len(stage.history) and s["cpu_seconds"] >= 0
    baseline.save(tmp_path / "result.json")
    assert json.loads((tmp_path / "result.json").read_text())["stages"][2]["best"] == data["stages"][2]["best"]


def test_the_start_may_lie_outside_the_range_but_nothing_else_does(tmp_path):
    cfg = ExpressionSearchConfig(**{**SMALL, "samples": (12, 6, 6), "max_params": 150})  # BERT's FFN: 192
    result = run_search(START, Synthetic(), lambda c: np.int64(params(c)), cfg, tmp_path)  # numpy counts too
    one = result.stages[0]
    assert not one.history[0].in_range and all(e.in_range for e in one.history[1:])
    assert one.best.in_range and all(s.best.params <= 150 for s in result.stages)


def test_stage2_starts_from_stage1s_top_2_deterministically(baseline, tmp_path):
    """Stage 2's starting points are stage 1's top-2 (the official stage 2's two initial expressions), recorded in the
    result and in the log header, and its proposals mutate the expressions of both."""
    one, two, three = baseline.stages
    top = one.top(2)
    assert baseline.config.stage2_top_k == 2 and len(top) == 2
    assert two.start == top[0].candidate and two.start_from == {"stage": 1, "top_k": 2, "rank": 1, "ranks": [1, 2]}
    assert one.start_from is None and three.start_from == {"stage": 2, "top_k": 1, "rank": 1, "ranks": [1]}
    assert baseline.to_dict()["stages"][1]["start_from"]["ranks"] == [1, 2]
    again = search(tmp_path / "again", sampler=baseline.config.sampler, samples=(24, 4, 1))
    assert again.stages[1].start == two.start and stripped(again)[1] == stripped(baseline)[1][:4]
    header = json.loads((tmp_path / "again" / "stage2.jsonl").read_text().splitlines()[0])["header"]
    assert header["start"] == candidate_strings(top[0].candidate)
    assert header["more_starts"] == [candidate_strings(two.history[1].candidate)]
    # with top-1 the runner-up is neither evaluated nor drawn on
    single = search(tmp_path / "single", sampler=baseline.config.sampler, samples=(24, 4, 1), stage2_top_k=1)
    assert single.stages[1].start == two.start and "top-k" not in {e.source for e in single.stages[1].history}
    assert single.stages[1].start_from["ranks"] == [1]


def test_stage2_proposals_mutate_the_expressions_of_any_of_its_starting_points(monkeypatch):
    import atb.efficientbert.search as search_module

    monkeypatch.setattr(search_module, "mutate", lambda ffn, rng, **kw: ffn)  # the bases themselves
    best = (parse("linear2_3(gelu(linear2_3(x,wb1)),wb2)"), parse("tanh(linear1_1(gelu(linear1_1(x,wb1)),wb2))"))
    runner_up = (parse("linear4_1(relu(linear4_1(x,wb1)),wb2)"), parse("linear3_2(elu(linear3_2(x,wb1)),wb2)"))
    cfg = ExpressionSearchConfig(**{**SMALL, "min_params": None, "max_params": None})
    choices = [[best[i].expr, runner_up[i].expr] for i in range(2)]
    rng = random.Random(0)
    drawn = {random_proposal(2, best, params, cfg, rng, choices=choices) for _ in range(40)}
    assert {tuple(f.expr for f in c) for c in drawn} == {(a, b) for a in choices[0] for b in choices[1]}
    assert {tuple((f.stacks, f.ratio) for f in c) for c in drawn} == {((2, 3), (1, 1))}  # the best's sizes


def test_search_stops_after_stage_2_and_a_rerun_runs_only_stage_3(baseline, tmp_path):
    first = Synthetic()
    two = search(tmp_path, first, sampler=baseline.config.sampler, last_stage=2)
    assert [s.stage for s in two.stages] == [1, 2] and two.best == baseline.stages[1].best
    assert not (tmp_path / "stage3.jsonl").exists()
    fitness = Synthetic()
    full = search(tmp_path, fitness, sampler=baseline.config.sampler)
    assert stripped(full) == stripped(baseline) and [s.replayed for s in full.stages[:2]] == [24, 16]
    assert fitness.calls == [format_candidate(e.candidate) for e in baseline.stages[2].history]
    with pytest.raises(ValueError, match="last_stage"):
        search(tmp_path, last_stage=4)


def test_stage3_picks_expressions_among_stage2s_top_k(tmp_path):
    result = search(tmp_path, samples=(12, 12, 16), top_k=3, sampler="evolution")
    top = result.stages[1].top(3)
    for e in result.stages[2].history:
        for layer, f in enumerate(e.candidate):
            assert f.expr in {t.candidate[layer].expr for t in top}
    assert len({tuple(f.expr for f in e.candidate) for e in result.stages[2].history}) > 1


def test_same_seed_same_history_other_seed_other_history(baseline, tmp_path):
    again = search(tmp_path / "again", sampler=baseline.config.sampler)
    assert stripped(again) == stripped(baseline)
    other = search(tmp_path / "other", sampler=baseline.config.sampler, seed=2, samples=(12, 1, 1))
    assert stripped(other)[0] != stripped(baseline)[0][:12]


# ------------------------------------------------------------------------------------------------------ resume
def test_an_interrupted_search_resumes_without_reevaluating(baseline, tmp_path):
    sampler = baseline.config.sampler
    interrupted = Synthetic(fail_after=30)  # stage 1 (24) done, stage 2 cut after 6
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, interrupted, sampler=sampler)
    with (tmp_path / "stage2.jsonl").open("a") as f:
        f.write('{"index": 6, "round": 1, "expre')  # a line cut off by the kill
    resumed = Synthetic()
    with pytest.warns(UserWarning, match="cut-off last line"):
        result = search(tmp_path, resumed, sampler=sampler)
    assert stripped(result) == stripped(baseline)
    # the fitness ran for stage 2's unlogged evaluations and stage 3, nothing else
    two, three = baseline.stages[1:]
    assert resumed.calls == [format_candidate(e.candidate) for e in [*two.history[6:], *three.history]]
    assert interrupted.calls[24:] == [format_candidate(e.candidate) for e in two.history[:6]]
    assert [s.replayed for s in result.stages] == [24, 6, 0]
    assert result.stages[0].cpu_seconds == pytest.approx(sum(e.cpu_seconds for e in result.stages[0].history))
    # a third run replays everything
    third = Synthetic()
    assert stripped(search(tmp_path, third, sampler=sampler)) == stripped(baseline) and third.calls == []


def test_more_samples_extend_a_stage(tmp_path):
    short = search(tmp_path, samples=(10, 1, 1))
    fitness = Synthetic()
    longer = run_stage(1, START, fitness, params, ExpressionSearchConfig(**{**SMALL, "samples": (18, 1, 1)}),
                       tmp_path / "stage1.jsonl")
    assert stripped(short)[0] == [{k: v for k, v in e.record().items() if k not in ("seconds", "cpu_seconds")}
                                  for e in longer.history[:10]]
    assert longer.replayed == 10 and len(fitness.calls) == 8


def test_a_log_of_another_search_is_refused(tmp_path):
    search(tmp_path, samples=(4, 1, 1))
    with pytest.raises(ValueError, match=r"stage1\.jsonl logs a different search.*config\.seed"):
        search(tmp_path, samples=(4, 1, 1), seed=5)
    with pytest.raises(ValueError, match=r"stage1\.jsonl.*start"):
        run_stage(1, (parse("tanh(linear(gelu(linear(x,wb1)),wb2))"),) * LAYERS, Synthetic(), params,
                  ExpressionSearchConfig(**{**SMALL, "samples": (4, 1, 1)}), tmp_path / "stage1.jsonl")


# ------------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("field, value", [
    ("samples", (10, 10)), ("samples", (10, 0, 10)), ("init_samples", 0), ("sampler", "random"),
    ("population", 0), ("explore_rate", 1.5), ("ucb_c", -1.0), ("top_k", 0), ("stage2_top_k", 0), ("min_params", -1),
    ("max_params", 10), ("min_height", 8), ("tree_levels", (20, 10)), ("max_rejections", 0), ("seed", 1.5),
    ("train_interval", True),
])
def test_config_validation_names_the_field(field, value):
    kwargs = {"min_params": 20, field: value}
    with pytest.raises(ValueError, match=field):
        ExpressionSearchConfig(**kwargs)


def test_a_bad_start_or_stage_is_refused(tmp_path):
    cfg = ExpressionSearchConfig(**SMALL)
    with pytest.raises(ValueError, match="stage must be one of"):
        run_stage(4, START, Synthetic(), params, cfg, tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match="layer 1"):
        bad = LayerFFN(parse("linear(gelu(linear(x,wb1)),wb2)").expr.args[0].args[0])  # linear(x, wb1) alone
        run_search((START[0], bad), Synthetic(), params, cfg, tmp_path)
    with pytest.raises(ValueError, match="choices"):
        run_stage(1, START, Synthetic(), params, cfg, tmp_path / "y.jsonl", choices=[[BERT_FFN]] * LAYERS)


# ---------------------------------------------------------------------------------- warm-up candidate samplers
def test_stage3_size_sampler_keeps_the_expressions_and_the_range_and_depends_on_the_step_alone():
    start = (parse("tanh(linear2_2(gelu(linear2_2(x,wb1)),wb2))"), parse("linear1_1(relu(linear1_1(x,wb1)),wb2)"),
             parse("linear4_3(gelu(linear4_3(max(x,tanh(x)),wb1)),wb2)"))
    cfg = ExpressionSearchConfig(**{**SMALL, "min_params": 100, "max_params": 250})
    sample = stage3_size_sampler(start, params, cfg, seed=3)
    drawn = [sample(step) for step in range(60)]
    for c in drawn:
        assert [f.expr for f in c] == [f.expr for f in start]
        assert 100 <= params(c) <= 250 and all(f.stacks in STACKS and f.ratio in RATIOS for f in c)
    sizes = {tuple((f.stacks, f.ratio) for f in c) for c in drawn}
    assert len(sizes) > 20  # sizes redrawn, not the start's alone
    assert [sample(step) for step in (59, 3, 3)] == [drawn[59], drawn[3], drawn[3]]  # the step alone decides
    assert [stage3_size_sampler(start, params, cfg, seed=3)(s) for s in range(60)] == drawn
    assert [stage3_size_sampler(start, params, cfg, seed=4)(s) for s in range(60)] != drawn
    other = (parse("elu(linear(gelu(linear(x,wb1)),wb2))"),) * 3
    choices = [[start[i].expr, other[i].expr] for i in range(3)]
    mixed = [stage3_size_sampler(start, params, cfg, seed=3, choices=choices)(s) for s in range(30)]
    assert {f.expr for c in mixed for f in c} == {e for layer in choices for e in layer}
    # nothing in the range: the start itself
    assert stage3_size_sampler(start, params, ExpressionSearchConfig(**{**SMALL, "min_params": 10 ** 6,
                                                                        "max_params": 10 ** 6}), 0)(0) == start


def test_random_proposal_of_stage_1_lies_in_the_range():
    cfg = ExpressionSearchConfig(**SMALL)
    rng = random.Random(0)
    for _ in range(10):
        c = random_proposal(1, START, params, cfg, rng)
        assert c != START and SMALL["min_params"] <= params(c) <= SMALL["max_params"] and all(map(is_valid, c))
