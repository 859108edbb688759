"""Notebook 09's study logic: which candidate is developed as "searched", OP-NAS vs random mutation over seeds,
the search curves and development costs."""

from types import SimpleNamespace

import pytest

from atb.autobert_zero import study
from atb.autobert_zero.space import candidate_strings, standard_candidate
from atb.autobert_zero.supernet import as_candidate
from atb.rerank import RerankConfig, Reranked, RerankResult

START = candidate_strings(standard_candidate(2))
HYBRID = ["conv:3", START[1]]
OTHER = ["conv:9", "conv:3"]


def evaluation(index, layers, fitness, feasible=True):
    return SimpleNamespace(index=index, layers=layers, fitness=fitness, feasible=feasible, latency_ms=1.0)


def outcome(histories):
    """``{(rule, seed): [(layers, fitness, feasible), ...]}`` -> a SearchOutcome of fake runs."""
    runs = {}
    for key, entries in histories.items():
        history = [evaluation(i, *e) for i, e in enumerate(entries)]
        best = max((e for e in history if e.feasible), key=lambda e: e.fitness)
        runs[key] = SimpleNamespace(history=history, best=best, cpu_seconds=float(len(history)), op_priority={})
    return study.SearchOutcome(runs, standard_candidate(2), 2.0, 2.0, latency=None)


def _reranked(*entries):
    """A rerank result of ``(layers, screen fitness, rerank score)``, the start first."""
    built = [Reranked(as_candidate(layers), screen, i == 0, [score], 1.0, 2.0, f"m{i}")
             for i, (layers, screen, score) in enumerate(entries)]
    return RerankResult(built, RerankConfig(), None, "test")


def test_the_searched_model_is_the_reranks_best_hybrid_never_the_start():
    pick = study.developed_pick(_reranked((START, -1.0, 70.0), (HYBRID, -2.0, 72.0), (OTHER, -1.5, 71.0)),
                                standard_candidate(2))
    assert pick["layers"] == HYBRID and pick["picked_by"] == "rerank" and not pick["is_start"]
    assert not pick["best_is_start"] and pick["changes"] == {"graphs": [], "convolution_layers": [0]}
    assert pick["rerank_seconds"] == 3 * 3.0
    start_wins = study.developed_pick(_reranked((START, -1.0, 80.0), (HYBRID, -2.0, 72.0), (OTHER, -1.5, 75.0)),
                                      standard_candidate(2))
    assert start_wins["layers"] == OTHER and start_wins["best_is_start"]
    none = study.developed_pick(_reranked((START, -1.0, 80.0)), standard_candidate(2))
    assert none["layers"] is None and "convolution" in none["reason"]


def test_changes_name_the_convolutions_and_the_changed_graphs():
    assert study.changes(as_candidate(OTHER), standard_candidate(2)) == {"graphs": [], "convolution_layers": [0, 1]}
    assert study.changes(standard_candidate(2), standard_candidate(2)) == {"graphs": [], "convolution_layers": []}
    assert study.is_hybrid(as_candidate(HYBRID)) and not study.is_hybrid(standard_candidate(2))


def test_the_latency_limit_has_a_tolerance_above_the_budget():
    cfg = study.AutoBertZeroStudyConfig.load("mini")
    assert cfg.latency_tolerance > 0
    assert cfg.max_latency_ms(10.0) == pytest.approx(10.0 * cfg.latency_budget * (1 + cfg.latency_tolerance))
    with pytest.raises(ValueError, match="latency_tolerance"):
        study.AutoBertZeroStudyConfig(latency_tolerance=-0.1)


def test_opnas_vs_random_is_paired_by_seed_with_a_t_interval_over_the_proposed_candidates():
    def run(fitness):  # the shared start (fittest) then one proposed candidate
        return [(START, 0.0, True), (HYBRID, fitness, True)]

    found = outcome({("op-priority", 0): run(-1.0), ("op-priority", 1): run(-0.5), ("op-priority", 2): run(-0.8),
                     ("random", 0): run(-1.5), ("random", 1): run(-0.7), ("random", 2): run(-1.0)})
    versus = study.opnas_vs_random(found)
    assert versus["seeds"] == [0, 1, 2] and versus["per_seed"] == pytest.approx([0.5, 0.2, 0.2])
    assert versus["difference"] == pytest.approx(0.3) and versus["ci95"][0] < 0.3 < versus["ci95"][1]
    with_start = study.opnas_vs_random(found, proposed_only=False)  # both keep the start: 0 by construction
    assert with_start["per_seed"] == [0.0, 0.0, 0.0] and with_start["ci95"] == [0.0, 0.0]
    one = outcome({("op-priority", 0): run(-1.0), ("random", 0): run(-1.5)})
    assert study.opnas_vs_random(one)["ci95"] is None and study.opnas_vs_random(one)["reason"]


def test_search_curves_track_the_best_feasible_proposed_fitness_so_far():
    found = outcome({("op-priority", 0): [(START, -0.5, True), (OTHER, -0.1, False), (HYBRID, -1.0, True),
                                          (OTHER, -2.0, True), (OTHER, -0.7, True)]})
    curve = study.search_curves(found)
    assert curve["best proposed so far"].tolist()[2:] == [-1.0, -1.0, -0.7]  # the start and the infeasible left out
    assert curve["best proposed so far"].iloc[:2].isna().all()
    assert curve["evaluations"].tolist() == [1, 2, 3, 4, 5]


def test_development_cost_counts_the_search_and_rerank_only_for_the_searched_model(tmp_path):
    train = tmp_path / "models" / "m" / "train"
    train.mkdir(parents=True)
    (train / "log.jsonl").write_text('{"step": 1, "seconds": 1.0, "cpu_seconds": 2.0}\n'
                                     '{"step": 2, "seconds": 1.0, "cpu_seconds": 3.0}\n')
    found = outcome({("op-priority", 0): [(START, -2.0, True), (HYBRID, -1.0, True)],
                     ("random", 0): [(START, -2.0, True)]})
    pick = {"layers": HYBRID, "rerank_seconds": 10.0}
    model_dir = str(train.parent / "final")
    assert study.development_cpu_seconds({"name": study.SEARCHED, "model_dir": model_dir}, found, pick) == 2 + 10 + 5
    assert study.development_cpu_seconds({"name": study.STANDARD, "model_dir": model_dir}, found, pick) == 5.0
    (train / "log.jsonl").write_text('{"step": 1, "seconds": 1.0}\n')  # a log without CPU seconds: unknown
    assert study.development_cpu_seconds({"name": study.STANDARD, "model_dir": model_dir}, found, pick) is None


def test_describe_layers_prints_formulas_and_kernels():
    assert study.describe_layers(HYBRID) == ["conv k=3", "softmax(Q · Kᵀ / √d) · V"]


def test_claim_11_under_the_rerank_pairs_each_searchs_best_proposal_by_seed(monkeypatch):
    found = outcome({("op-priority", 0): [(START, 0.0, True), (HYBRID, -1.0, True)],
                     ("op-priority", 1): [(START, 0.0, True), (OTHER, -0.5, True)],
                     ("random", 0): [(START, 0.0, True), (OTHER, -1.5, True)],
                     ("random", 1): [(START, 0.0, True), (OTHER, -0.7, True), (HYBRID, -0.9, True)]})
    score = {tuple(HYBRID): 80.0, tuple(OTHER): 70.0}
    reranked = []

    def fake_rerank(cfg, layout, supernet, screened, start):
        reranked.append([candidate_strings(c) for c, _ in screened])
        return _reranked(*[(candidate_strings(c), f, score[tuple(candidate_strings(c))]) for c, f in screened])

    monkeypatch.setattr(study, "_rerank", fake_rerank)
    fair = study.opnas_vs_random_reranked(study.AutoBertZeroStudyConfig.load("mini"), None, None, found)
    assert fair["seeds"] == [0, 1] and fair["fitness"] == "rerank"
    assert fair["per_seed"] == [80.0 - 70.0, 70.0 - 70.0]  # seed 1: both rules' best proposal is OTHER
    assert fair["scores"] == {"op-priority": [80.0, 70.0], "random": [70.0, 70.0]}
    assert reranked == [[HYBRID, OTHER]]  # each distinct candidate reranked once, the start never
    assert fair["ci95"] is not None and fair["n"] == 2
