"""The front search (notebook 12): NSGA-II stays in the span and spends exactly the evolution's evaluations on distinct
architectures, is deterministic per seed and resumes without re-evaluating; the front, the hypervolume and the
comparison on hand-made points; the config. Synthetic latency and fitness, as in test_search: no training, no timing.
"""

import math

import pytest

from atb import Arch, SearchSpace
from atb.latency import latency_window, num_threads
from atb.pareto import (
    Normaliser, ParetoConfig, best_in_window, compare, evaluations_of, favours, hypervolume, latency_span, pareto_front,
    run_front_search,
)
from atb.search import Candidate, SearchConfig, SearchExhausted, read_search_log, run_search
from test_search import BERT_BASE_MS, PeakedFitness, synthetic_latency

CFG = SearchConfig(population=10, generations=3)
SPEEDUPS = [15.0, 30.0]
PARETO = ParetoConfig(seeds=(0, 1))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with num_threads(1):
        yield


def front(tmp_path, seed=0, fitness=None, speedups=SPEEDUPS, cfg=CFG, pareto=PARETO, log="front.jsonl"):
    return run_front_search(SearchSpace.preset("mini", "kd"), fitness or PeakedFitness(), synthetic_latency, BERT_BASE_MS,
                            speedups, cfg, pareto, tmp_path / log, seed=seed, progress=False)


def candidate(latency_ms, fitness, arch=None):
    return Candidate(arch or Arch(4, 256, 512, 8, 256), fitness, 0, 0, latency_ms, 0.0, 0.0)


def test_equal_budget_of_distinct_architectures_inside_the_span(tmp_path):
    fitness = PeakedFitness()
    result = front(tmp_path, fitness=fitness)
    low, high = latency_span(BERT_BASE_MS, SPEEDUPS)
    assert result.evaluations == evaluations_of(CFG, SPEEDUPS) == 3 * 10 * 2
    assert len(result.candidates) == len({c.arch for c in result.candidates}) == result.evaluations
    assert len(fitness.calls) == result.evaluations  # every fitness call is a new architecture
    assert all(low <= c.latency_ms <= high for c in result.candidates) and result.proposals >= result.evaluations
    assert (low, high) == (latency_window(BERT_BASE_MS, 30.0)[0], latency_window(BERT_BASE_MS, 15.0)[1])


def test_deterministic_per_seed_and_resumes_without_evaluating(tmp_path):
    first = front(tmp_path, seed=3, log="a.jsonl")
    assert [c.arch for c in front(tmp_path, seed=3, log="b.jsonl").candidates] == [c.arch for c in first.candidates]
    assert [c.arch for c in front(tmp_path, seed=4, log="c.jsonl").candidates] != [c.arch for c in first.candidates]
    replay = front(tmp_path, seed=3, fitness=PeakedFitness(fail_on=1), log="a.jsonl")  # any fitness call would raise
    assert replay.replayed == first.evaluations and replay.candidates == first.candidates


def test_an_interrupted_search_continues_where_it_stopped(tmp_path):
    whole = front(tmp_path, log="whole.jsonl")
    with pytest.raises(KeyboardInterrupt):
        front(tmp_path, fitness=PeakedFitness(fail_on=25), log="cut.jsonl")
    assert len(read_search_log(tmp_path / "cut.jsonl")[1]) == 24
    resumed = front(tmp_path, log="cut.jsonl")
    assert resumed.replayed == 24 and resumed.candidates == whole.candidates


def test_a_log_of_another_search_is_refused(tmp_path):
    front(tmp_path, log="log.jsonl")
    with pytest.raises(ValueError, match="different search.*seed"):
        front(tmp_path, seed=1, log="log.jsonl")


def test_a_span_too_small_for_the_budget_stops_with_a_reason(tmp_path):
    with pytest.raises(SearchExhausted, match="distinct architectures within"):
        front(tmp_path, speedups=[300.0], cfg=SearchConfig(population=50, generations=10),
              pareto=ParetoConfig(seeds=(0, 1), max_proposals=2))


def test_pareto_front_keeps_exactly_the_non_dominated():
    points = [candidate(1.0, 0.1), candidate(2.0, 0.5), candidate(2.5, 0.4), candidate(3.0, 0.9), candidate(3.5, 0.9)]
    assert [(c.latency_ms, c.fitness) for c in pareto_front(points)] == [(1.0, 0.1), (2.0, 0.5), (3.0, 0.9)]
    assert pareto_front([]) == []


def test_hypervolume_on_hand_made_points():
    norm = Normaliser((0.0, 10.0), (0.0, 1.0))  # latency 0..10 ms, fitness 0..1
    assert hypervolume([candidate(5.0, 0.5)], norm) == pytest.approx(0.25)
    two = [candidate(5.0, 0.5), candidate(2.0, 0.2)]
    assert hypervolume(two, norm) == pytest.approx(0.25 + 0.3 * 0.2)  # the union of the two boxes
    assert hypervolume(two + [candidate(6.0, 0.4)], norm) == pytest.approx(hypervolume(two, norm))  # dominated: no area
    assert hypervolume([candidate(5.0, 0.5)], norm, window_ms=(4.0, 8.0)) == pytest.approx(0.3 * 0.5)
    assert hypervolume([candidate(9.0, 0.5)], norm, window_ms=(4.0, 8.0)) == 0.0  # outside the window
    assert hypervolume([candidate(10.0, 0.0)], norm) == 0.0  # on the reference point


def test_compare_decides_over_seeds_and_names_the_targets(tmp_path):
    fronts = {seed: front(tmp_path, seed=seed, log=f"f{seed}.jsonl").candidates for seed in PARETO.seeds}
    evolved = {seed: [c for s in SPEEDUPS for c in run_search(
        SearchSpace.preset("mini", "kd"), PeakedFitness(), synthetic_latency, s, BERT_BASE_MS, CFG,
        tmp_path / f"e{seed}-{s}.jsonl", seed=seed, progress=False).candidates] for seed in PARETO.seeds}
    out = compare(fronts, evolved, BERT_BASE_MS, SPEEDUPS)
    assert [r["seed"] for r in out["per_seed"]] == [0, 1] and set(out["targets"]) == {"15", "30"}
    for row in out["per_seed"]:
        assert all(0.0 <= v <= 1.0 for key in ("hypervolume", "hypervolume_windows") for v in row[key].values())
        for s, pair in row["targets"].items():
            window = latency_window(BERT_BASE_MS, float(s))
            assert all(p is None or window[0] <= p["latency_ms"] <= window[1] for p in pair.values())
    gaps = [r["hypervolume"]["pareto"] - r["hypervolume"]["evolved"] for r in out["per_seed"]]
    assert out["hypervolume"]["difference"] == pytest.approx(sum(gaps) / 2) and out["hypervolume"]["n"] == 2
    same = compare(fronts, fronts, BERT_BASE_MS, SPEEDUPS)  # a search against itself: no difference
    assert same["hypervolume"]["difference"] == 0.0 and same["hypervolume"]["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="same seeds"):
        compare(fronts, {0: evolved[0]}, BERT_BASE_MS, SPEEDUPS)


def test_the_normaliser_spans_the_fronts_not_the_wrecks():
    """Fitness is scaled from the worst point on any search's front (its nadir): a wrecked architecture far below
    every front changes nothing."""
    a = [candidate(1.0, 0.2), candidate(2.0, 0.8), candidate(1.5, -9.0)]  # the last: slower than a, far worse
    b = [candidate(1.2, 0.5)]
    norm = Normaliser.of((0.0, 10.0), [a, b])
    assert norm.fitness_range == (0.2, 0.8)
    assert hypervolume(a, norm) == hypervolume(a[:2], norm)


def test_favours_reads_the_interval():
    assert favours({"difference": 0.02, "ci95": [0.01, 0.03], "n": 3}) == "NSGA-II higher"
    assert favours({"difference": -0.02, "ci95": [-0.03, -0.01], "n": 3}) == "evolution higher"
    assert favours({"difference": 0.0, "ci95": [-0.01, 0.01], "n": 3}) == "undecided" and favours(None) == "no interval"


def test_best_in_window():
    points = [candidate(1.0, 0.9), candidate(5.0, 0.3), candidate(6.0, 0.6), candidate(9.0, 1.0)]
    assert best_in_window(points, (4.0, 8.0)).fitness == 0.6 and best_in_window(points, (2.0, 3.0)) is None


def test_config_checks_and_loads():
    assert ParetoConfig.load("smoke").seeds == (0, 1) and ParetoConfig.load("mini").seeds == (0, 1, 2)
    assert ParetoConfig.load("mini").speedups is None  # the front spans notebook 03's targets
    assert ParetoConfig.load("mini").targets(SearchConfig.load("mini"), None, None, 1.0) == [15.0, 20.0, 25.0]
    assert ParetoConfig(speedups=(10, 20)).targets(CFG, None, None, 1.0) == [10.0, 20.0]
    study = SearchConfig(speedups={"kd": [25.0], "mlm": [8.0]})
    assert ParetoConfig().targets(study, None, None, 1.0) == [25.0]  # notebook 03's targets of the objective
    for bad, match in (({"seeds": (0,)}, "at least two"), ({"seeds": (1, 1)}, "distinct"), ({"speedups": ()}, "speedups"),
                       ({"objective": "xl"}, "objective"), ({"population": 1}, "population"),
                       ({"max_proposals": 0}, "max_proposals")):
        with pytest.raises(ValueError, match=match):
            ParetoConfig(**bad)
    assert math.isclose(latency_span(100.0, [10.0])[1], latency_window(100.0, 10.0)[1])
