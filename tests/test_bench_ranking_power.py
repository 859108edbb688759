"""benchmarks/bench_ranking_power.py compares the ranking study's committed paper budget with the study's own GLUE
budget at each candidate learning rate, and finds the candidates notebook 03 ranks."""

import pytest

from atb.finetune import FinetuneConfig
from atb.layout import Layout
from atb.ranking import RankingConfig
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_ranking_power")


def test_the_budgets_are_the_committed_one_and_the_study_budget_at_each_candidate_rate(bench):
    ranking = RankingConfig.load("mini")
    budgets = bench.budgets("mini", ranking)
    assert budgets["committed"] == ranking.paper_settings()["budgets"]["sst2"]
    study = FinetuneConfig.load("mini", "sst2")
    assert set(budgets) == {"committed", "study_0.0001", "study_0.0003"}
    for lr in (1e-4, 3e-4):
        budget = budgets[f"study_{lr:g}"]
        assert budget["lr"] == lr and budget["shuffle_batches"] is True
        assert (budget["epochs"], budget["batch_size"], budget["max_train_examples"]) == (
            study.epochs, study.batch_size, study.max_train_examples)


def test_without_search_logs_it_says_what_to_run_first(bench, tmp_path):
    with pytest.raises(SystemExit, match="run notebook 03 first"):
        bench.candidates(Layout("mini", runs_root=tmp_path), [15.0])
