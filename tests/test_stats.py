"""atb.stats: paired bootstrap over seeds and dev examples, intervals for means and rank correlations, verdicts."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, matthews_corrcoef

from atb.stats import (NOT_TESTABLE, REFUTED, REPRODUCED, Interval, ModelRuns, TaskRuns, kendall_tau_interval,
                       mean_interval, paired_bootstrap, score_interval, shifted, spearman_interval, verdict)


def runs(accuracy_a, accuracy_b, n=400, seeds=3, seed=0, metric=accuracy_score):
    """Binary predictions right with the given probabilities, on the same labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)

    def side(p):
        return [np.where(rng.random(n) < p, labels, 1 - labels) for _ in range(seeds)]
    return TaskRuns(metric, side(accuracy_a), side(accuracy_b), labels)


def test_the_observed_difference_is_the_mean_over_seeds_and_tasks():
    task = runs(0.8, 0.6)
    expected = np.mean([accuracy_score(task.labels, a) for a in task.a]) - np.mean(
        [accuracy_score(task.labels, b) for b in task.b])
    result = paired_bootstrap([task], n_boot=200)
    assert result.difference == pytest.approx(expected) and result.n == 3
    two = paired_bootstrap([task, runs(0.5, 0.5, seed=1)], n_boot=50)
    other = runs(0.5, 0.5, seed=1)
    second = np.mean([accuracy_score(other.labels, a) - accuracy_score(other.labels, b) for a, b in zip(other.a, other.b)])
    assert two.difference == pytest.approx((expected + second) / 2)


def test_a_clear_gap_is_reproduced_the_reverse_refuted_and_noise_undecided():
    assert verdict(paired_bootstrap([runs(0.85, 0.6)], n_boot=300)) == REPRODUCED
    assert verdict(paired_bootstrap([runs(0.6, 0.85)], n_boot=300)) == REFUTED
    same = paired_bootstrap([runs(0.7, 0.7, n=60, seed=3)], n_boot=300)
    assert same.ci95[0] < 0 < same.ci95[1] and verdict(same) == NOT_TESTABLE


def test_identical_models_have_a_zero_width_interval_and_the_metric_is_recomputed_per_draw():
    task = runs(0.7, 0.7, metric=matthews_corrcoef)
    identical = TaskRuns(matthews_corrcoef, task.a, task.a, task.labels)
    result = paired_bootstrap([identical], n_boot=100)
    assert result.difference == 0 and result.ci95 == (0.0, 0.0)


def test_more_seeds_and_examples_narrow_the_interval():
    small = paired_bootstrap([runs(0.75, 0.7, n=100, seeds=2)], n_boot=400)
    large = paired_bootstrap([runs(0.75, 0.7, n=2000, seeds=5)], n_boot=400)
    assert large.ci95[1] - large.ci95[0] < small.ci95[1] - small.ci95[0]


def test_mismatched_runs_are_rejected():
    task = runs(0.7, 0.7)
    with pytest.raises(ValueError, match="same number of seeds"):
        TaskRuns(accuracy_score, task.a, task.b[:2], task.labels)
    with pytest.raises(ValueError, match="dev examples"):
        TaskRuns(accuracy_score, [a[:-1] for a in task.a], task.b, task.labels)


def test_mean_and_kendall_intervals():
    m = mean_interval([1.0, 2.0, 3.0])
    assert m.difference == 2.0 and 1.0 <= m.ci95[0] < 2.0 < m.ci95[1] <= 3.0
    assert mean_interval([5.0, 5.0]).ci95 == (5.0, 5.0)
    x = np.arange(12.0)
    tau = kendall_tau_interval(x, x + np.random.default_rng(0).normal(0, 0.5, 12))
    assert tau.difference > 0.8 and verdict(tau) == REPRODUCED
    unrelated = kendall_tau_interval(x, np.random.default_rng(1).permutation(12).astype(float))
    assert verdict(unrelated) == NOT_TESTABLE
    rho = spearman_interval(x, x + np.random.default_rng(0).normal(0, 0.5, 12))
    assert rho.difference > tau.difference and verdict(rho) == REPRODUCED  # rho >= tau for the same near-agreement
    assert verdict(spearman_interval(x, np.random.default_rng(1).permutation(12).astype(float))) == NOT_TESTABLE
    with pytest.raises(ValueError, match="spearman_interval needs"):
        spearman_interval([1.0, 2.0], [1.0, 2.0])


@pytest.mark.parametrize(("ci", "margin", "expected"), [
    ((0.1, 2.0), 0.0, REPRODUCED), ((0.0, 2.0), 0.0, NOT_TESTABLE), ((-2.0, -0.1), 0.0, REFUTED),
    ((-2.0, 0.0), 0.0, NOT_TESTABLE), ((0.5, 2.0), 1.0, NOT_TESTABLE), ((1.5, 2.0), 1.0, REPRODUCED),
    ((-3.0, -1.5), 1.0, REFUTED)])
def test_verdict_boundaries(ci, margin, expected):
    assert verdict(Interval(sum(ci) / 2, ci, 3, 100), margin=margin) == expected


# ----------------------------------------------------------------- shared dev examples, one model, seeds by value
def mean_metric(predictions, labels):
    return float(np.mean(predictions))


def test_runs_of_one_key_share_their_resampled_examples():
    """Two pairs on the same dev set whose differences cancel example by example: with the examples resampled once
    for both (one key) every draw is exactly 0; resampled independently, the interval has a width."""
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    first_half, second_half = np.array([1, 1, 1, 1, 1, 1, 1, 1]), np.array([0, 0, 0, 0, 0, 0, 0, 0])
    pair = TaskRuns(accuracy_score, [first_half], [second_half], labels, key="rte")
    reverse = TaskRuns(accuracy_score, [second_half], [first_half], labels, key="rte")
    shared = paired_bootstrap([pair, reverse], n_boot=300)
    assert shared.difference == 0 and shared.ci95 == (0.0, 0.0) and shared.n == 2
    independent = paired_bootstrap([TaskRuns(accuracy_score, pair.a, pair.b, labels),
                                    TaskRuns(accuracy_score, reverse.a, reverse.b, labels)], n_boot=300)
    assert independent.difference == 0 and independent.ci95[0] < 0 < independent.ci95[1]
    one = paired_bootstrap([pair], n_boot=300)  # a keyed task alone draws exactly like a keyless one
    assert one.ci95 == paired_bootstrap([TaskRuns(accuracy_score, pair.a, pair.b, labels)], n_boot=300).ci95
    with pytest.raises(ValueError, match="share their dev examples"):
        paired_bootstrap([pair, TaskRuns(accuracy_score, [first_half[:4]], [second_half[:4]], labels[:4], key="rte")])


def test_score_interval_of_one_model_by_hand():
    # one seed, two examples scored 0 and 100: resampled means are 0, 50, 100 with probabilities 1/4, 1/2, 1/4
    two = score_interval([TaskRuns(mean_metric, [np.array([0.0, 100.0])], None, np.array(["q1", "q2"]))], n_boot=2000)
    assert two.difference == 50.0 and two.ci95 == (0.0, 100.0) and two.n == 1
    # two seeds, one always right, one always wrong: seeds resampled give 100, 50 or 0
    labels = np.array([0, 1, 0, 1])
    seeds = score_interval([TaskRuns(accuracy_score, [labels, 1 - labels], None, labels)], n_boot=2000)
    assert seeds.difference == 0.5 and seeds.ci95 == (0.0, 1.0)
    perfect = score_interval([TaskRuns(accuracy_score, [labels, labels], None, labels)], n_boot=100)
    assert perfect.difference == 1.0 and perfect.ci95 == (1.0, 1.0)
    with pytest.raises(ValueError, match="both models"):
        paired_bootstrap([TaskRuns(accuracy_score, [labels], None, labels)])


def test_model_runs_pair_by_seed_value_on_the_same_examples():
    labels = np.array([0, 1, 1])
    a = ModelRuns(accuracy_score, {0: np.array([0, 1, 1]), 1: np.array([0, 0, 0])}, labels)
    b = ModelRuns(accuracy_score, {1: np.array([1, 1, 1]), 2: np.array([0, 1, 0])}, labels)
    paired = a.against(b, key="cola")
    assert [list(x) for x in paired.a] == [[0, 0, 0]] and [list(x) for x in paired.b] == [[1, 1, 1]]
    assert paired.key == "cola" and a.seeds == [0, 1]
    assert len(a.alone().a) == 2 and a.alone().b is None
    with pytest.raises(ValueError, match="no common seeds"):
        a.against(ModelRuns(accuracy_score, {5: labels}, labels))
    with pytest.raises(ValueError, match="same dev examples"):
        a.against(ModelRuns(accuracy_score, {0: labels}, 1 - labels))


def test_shifted_interval_decides_non_inferiority():
    worse_by_half = Interval(-0.5, (-0.9, -0.1), 6, 100)
    assert verdict(worse_by_half) == REFUTED
    assert verdict(shifted(worse_by_half, 1.0)) == REPRODUCED  # at most 1 point worse
    assert shifted(worse_by_half, 1.0).difference == pytest.approx(0.5) and shifted(worse_by_half, 1.0).n == 6


def test_t_interval_is_the_student_t_interval_and_wider_than_the_bootstrap_for_few_values():
    from scipy import stats as scipy_stats

    from atb.stats import t_interval

    values = [0.5, 1.5, 1.0]
    t = t_interval(values)
    expected = scipy_stats.t.interval(0.95, 2, loc=1.0, scale=scipy_stats.sem(values))
    assert t.difference == 1.0 and t.n == 3 and np.allclose(t.ci95, expected)
    boot = mean_interval(values)
    assert t.ci95[0] < boot.ci95[0] and t.ci95[1] > boot.ci95[1]
    assert t_interval([2.0, 2.0]).ci95 == (2.0, 2.0)
    with pytest.raises(ValueError, match="at least two"):
        t_interval([1.0])


def test_how_many_architectures_a_ranking_study_needs_to_decide_a_kendall_tau():
    from atb.stats import detectable_tau, items_to_detect

    # 8 architectures (the mini study's) decide only tau >= 0.57; 10 decide 0.5
    assert detectable_tau(8) == pytest.approx(0.5657, abs=1e-3)
    assert items_to_detect(0.5) == 10 and detectable_tau(10) < 0.5 <= detectable_tau(9)
    assert detectable_tau(100) < detectable_tau(10) < detectable_tau(3)  # more items, weaker agreements decided
    # the approximation against simulation: unrelated rankings of 12 items reach |tau| >= detectable_tau(12)
    # about 5 % of the time
    from scipy.stats import kendalltau
    rng = np.random.default_rng(0)
    taus = np.array([kendalltau(rng.random(12), rng.random(12)).statistic for _ in range(4000)])
    assert 0.02 < np.mean(np.abs(taus) >= detectable_tau(12)) < 0.08
    with pytest.raises(ValueError, match="tau must be in"):
        items_to_detect(0.0)
