"""Ranking studies: Kendall's τ, stratified picks, per-architecture caching and resume, the per-scale config,
and end to end on a random smoke SuperBert (further training for real, MLM and KD; those need ``ATB_DATA_DIR``).
"""

import dataclasses
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from scipy.stats import kendalltau
from transformers import AutoModelForMaskedLM

from atb import Arch, SearchSpace, SuperBert
from atb import ranking, train
from atb.latency import num_threads
from atb.fitness import PaperFitness, make_fitness
from atb.ranking import (
    RankingConfig, arch_slug, claim_study, field_defaults, kendall, kendall_inherited_vs_trained,
    kendall_proxy_vs_paper, pick_archs,
)
from atb.records import write_json_atomic
from atb.search import Candidate, SearchConfig
from conftest import save_supernet, write_scale_config


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Toy models: one thread is faster than two fighting over a shared machine (restored afterwards)."""
    with num_threads(1):
        yield


# ---------------------------------------------------------------------------------------------- tau
def test_kendall_tau_is_one_for_any_monotone_relation_and_minus_one_reversed():
    x = [0.3, 1.0, 2.5, 4.0, 7.0]
    tau, p = kendall(x, [math.exp(v) for v in x])  # monotone, far from linear
    assert tau == pytest.approx(1.0) and 0 < p < 0.05
    assert kendall(x, [-v for v in x])[0] == pytest.approx(-1.0)
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4])[0] == pytest.approx(2 / 3)  # one discordant pair of six
    assert all(math.isnan(v) for v in kendall([1.0], [2.0]) + kendall([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError):
        kendall([1, 2], [1, 2, 3])


# --------------------------------------------------------------------------------------- pick_archs
def candidates(n=40, seed=1):
    rng = random.Random(seed)
    space = SearchSpace.preset("mini", "kd")
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(3 * n)))[:n]
    return [Candidate(a, rng.uniform(-5, 0), 0, i, 1.0, 0.1, 0.1) for i, a in enumerate(archs)]


def test_pick_archs_takes_one_per_fitness_stratum_deterministically():
    pool = candidates()
    ranked = [c.arch for c in sorted(pool, key=lambda c: c.fitness)]
    picks = pick_archs(pool, 5, seed=0)
    assert len(set(picks)) == 5 and [ranked.index(a) // 8 for a in picks] == [0, 1, 2, 3, 4]  # 40 / 5 per stratum
    assert picks == pick_archs(list(reversed(pool)), 5, seed=0)  # order of the candidates does not matter
    assert any(pick_archs(pool, 5, seed=s) != picks for s in range(1, 5))  # the seed draws within strata
    assert pick_archs(pool, 40) == ranked  # all of them: lowest fitness first
    with pytest.raises(ValueError, match="cannot pick 41"):
        pick_archs(pool, 41)


def test_pick_archs_reads_candidates_log_records_pairs_and_tables():
    import pandas as pd

    pool = candidates(12)
    records = [c.record() for c in pool]
    expected = pick_archs(pool, 4, seed=3)
    assert pick_archs(records, 4, seed=3) == expected
    assert pick_archs([(str(c.arch), c.fitness) for c in pool], 4, seed=3) == expected
    assert pick_archs(pd.DataFrame(records), 4, seed=3) == expected
    assert pick_archs({c.arch: c.fitness for c in pool}, 4, seed=3) == expected
    assert pick_archs(pool + pool[:3], 4, seed=3) == expected  # duplicates (e.g. two searches) count once


# -------------------------------------------------------------------------------- caching, resume
@dataclasses.dataclass
class Counting:
    """A fitness that records its calls; ``tag`` is part of its settings (``describe``)."""

    scale: float = 1.0
    tag: str = "a"
    calls: list = dataclasses.field(default_factory=list)

    def evaluate(self, arch: Arch) -> dict:
        self.calls.append(arch)
        tasks = {"mnli": {"task_used": "sst2", "score": 0.0}}
        return {"fitness": self.scale * arch.encoder_parameters() / 1e4, "tasks": tasks}

    def describe(self) -> dict:
        return {"name": "counting", "scale": self.scale, "tag": self.tag}


def test_proxy_vs_paper_caches_each_arch_and_refuses_a_different_study(tmp_path):
    archs = pick_archs(candidates(20), 4)
    proxy, paper = Counting(scale=-1.0), Counting(scale=2.0)
    result = kendall_proxy_vs_paper(tmp_path / "sp", archs, proxy, paper, tmp_path / "study", progress=False)
    assert result["kendall_tau"] == pytest.approx(-1.0) and result["archs"] == [str(a) for a in archs]
    assert result["tasks_used"] == {"mnli": ["sst2"]} and len(proxy.calls) == len(paper.calls) == 4
    assert json.loads((tmp_path / "study" / "result.json").read_text())["paper"] == result["paper"]
    again = kendall_proxy_vs_paper(tmp_path / "sp", archs, proxy, paper, tmp_path / "study", progress=False)
    assert len(proxy.calls) == len(paper.calls) == 4 and again["paper"] == result["paper"]  # all from the cache
    extra = Arch(1, 128, 128, 12, 96)
    kendall_proxy_vs_paper(tmp_path / "sp", archs + ["1/128/128/12/96"], proxy, paper, tmp_path / "study",
                           progress=False)
    assert proxy.calls[4:] == paper.calls[4:] == [extra]  # only the new architecture
    assert (tmp_path / "study" / "paper" / f"{arch_slug(extra)}.json").exists()
    with pytest.raises(ValueError, match="other settings"):
        kendall_proxy_vs_paper(tmp_path / "sp", archs, proxy, Counting(tag="b"), tmp_path / "study", progress=False)


# ---------------------------------------------------------------------------------------- controls
LABELS = [i % 2 for i in range(200)]


def _predictions(accuracy: float) -> list[int]:
    """Predictions of ``LABELS`` right on the first ``accuracy`` of them, wrong on the rest."""
    right = round(accuracy * len(LABELS))
    return [y if i < right else 1 - y for i, y in enumerate(LABELS)]


@dataclasses.dataclass
class ScriptedPaper(PaperFitness):
    """The paper fitness without fine-tuning: a sub-model's dev accuracy is ``accuracies[arch]``, an untrained
    control's 0.5 (the constant prediction), each with its per-example predictions when kept."""

    accuracies: dict = dataclasses.field(default_factory=dict)

    def evaluate(self, arch: Arch) -> dict:
        accuracy = 0.5 if self.untrained else self.accuracies[str(arch)]
        predictions = [0] * len(LABELS) if self.untrained else _predictions(accuracy)
        task = {"task_used": "sst2", "score": 100 * accuracy, "metrics": {"accuracy": 100 * accuracy}, "seconds": 0.0,
                **({"dev": {"validation": {"predictions": predictions, "labels": LABELS}}}
                   if self.keep_predictions else {})}
        return {"fitness": task["score"], "tasks": {"mnli": task}}


def test_with_controls_tau_counts_only_the_architectures_that_beat_their_untrained_controls(tmp_path):
    archs = ["1/64/64/2/32", "1/96/96/2/48", "1/128/128/2/64", "2/128/128/2/64", "2/160/160/2/80"]
    accuracies = dict(zip(archs, [0.5, 0.52, 0.7, 0.8, 0.9]))  # two at the constant, three that learned
    proxy = Counting(scale=1.0)
    paper = ScriptedPaper(tmp_path / "sp", tasks=("mnli",), accuracies=accuracies)
    result = kendall_proxy_vs_paper(tmp_path / "sp", archs, proxy, paper, tmp_path / "study", controls=True,
                                    progress=False)
    assert result["control"] == [50.0] * 5 and result["n_learned"] == 3
    assert result["learned"] == [False, False, True, True, True]  # +2 points on 200 examples: not above 0
    assert result["vs_control"][4]["difference"] == pytest.approx(40.0) and result["vs_control"][4]["ci95"][0] > 0
    expected, _ = kendall([result["proxy"][i] for i in (2, 3, 4)], [70.0, 80.0, 90.0])
    assert result["learned_kendall_tau"] == pytest.approx(expected)
    assert (tmp_path / "study" / "control" / f"{arch_slug(Arch.parse(archs[0]))}.json").exists()
    assert json.loads((tmp_path / "study" / "study.json").read_text())["control"]["untrained"] is True
    with pytest.raises(ValueError, match="controls need the paper fitness"):
        kendall_proxy_vs_paper(tmp_path / "sp", archs, proxy, Counting(), tmp_path / "other", controls=True,
                               progress=False)


def test_vs_control_needs_the_dev_predictions_of_both():
    record = {"arch": "1/64/64/2/32", "details": {"tasks": {"mnli": {"task_used": "sst2", "score": 70.0}}}}
    with pytest.raises(ValueError, match="keep_predictions"):
        ranking.vs_control(record, record)


def test_the_untrained_paper_fitness_fine_tunes_a_random_model_of_the_same_shape(tmp_path, monkeypatch):
    """What ``untrained=True`` fine-tunes: the sub-model's shape and settings at random initialisation (the control of
    :mod:`atb.controls`), not the weights inherited from the SuperPLM."""
    seen = {}

    def fake_finetune(self, model_dir, task):
        seen[self.untrained] = {k: v.clone() for k, v in AutoModelForMaskedLM.from_pretrained(model_dir).state_dict()
                                .items()}
        seen[f"control.json {self.untrained}"] = (Path(model_dir) / "control.json").exists()
        return {"task": task, "score": 1.0, "metrics": {}, "seconds": 0.0}

    monkeypatch.setattr(PaperFitness, "_finetune", fake_finetune)
    arch = Arch(1, 32, 32, 1, 16)
    sub_model = PaperFitness(save_supernet(tmp_path, "mlm"), finetune_scale="smoke", tasks=("sst2",))
    sub_model.evaluate(arch)
    dataclasses.replace(sub_model, untrained=True).evaluate(arch)
    assert seen["control.json True"] and not seen["control.json False"]
    assert seen[True].keys() == seen[False].keys()
    assert all(seen[True][k].shape == v.shape for k, v in seen[False].items())
    word = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(seen[True][word], seen[False][word])  # other weights, same shape


# ------------------------------------------------------------------------------------------ config
def test_ranking_config_per_scale_and_search_config_unaffected(tmp_path):
    smoke, mini = RankingConfig.load("smoke"), RankingConfig.load("mini")
    assert 3 <= smoke.archs <= 4 and smoke.steps <= 3 and mini.archs == 12 and mini.controls
    # mini's paper fitness: MNLI (SST-2 offline) only, the ranking's own budget merged over the search's
    paper = mini.paper_settings()
    assert paper["tasks"] == ["mnli"] and paper["budgets"]["sst2"]["batch_size"] == 16
    assert paper["budgets"]["sst2"]["lr"] == 3e-4 and "squad_v1.1" in paper["budgets"]  # the search's, kept
    for scale in ("base", "paper"):
        assert RankingConfig.load(scale).archs >= 10 and RankingConfig.load(scale).steps >= 1000
        SearchConfig.load(scale)  # the ranking block does not disturb the search's own loader
    search = SearchConfig.load("smoke")
    assert smoke.proxy_settings() == search.proxy and smoke.paper_settings() == search.fitness_settings("paper")
    assert smoke.fitness_settings() == search.proxy and smoke.paper_settings()["finetune_scale"] == "smoke"
    assert RankingConfig.load("smoke", archs=4, proxy={"max_examples": 4}).proxy_settings()["max_examples"] == 4
    bad = write_scale_config(tmp_path / "bad.yaml", ranking={"archs": 3, "stepz": 2})
    with pytest.raises(ValueError, match=r"bad.yaml: ranking.*stepz"):
        RankingConfig.load(bad)
    with pytest.raises(ValueError, match="no such config file"):
        RankingConfig.load("huge")


# -------------------------------------------------------------------------------------- end to end
def study(supernet, archs, run_dir, objective=None):
    cfg = RankingConfig.load("smoke")
    return kendall_inherited_vs_trained(supernet, archs, objective, cfg.scale, cfg.steps, run_dir,
                                        cfg.fitness, cfg.fitness_settings(), train_overrides=cfg.train,
                                        progress=False)


class CountingTrainer(train.Trainer):
    runs: list = []

    def run(self, *args, **kwargs):
        CountingTrainer.runs.append(self.cfg.arch)
        return super().run(*args, **kwargs)


@pytest.mark.requires_data
def test_inherited_vs_trained_end_to_end_resumes_without_retraining(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "Trainer", CountingTrainer)  # ranking trains through train.further_train
    CountingTrainer.runs = []
    supernet = save_supernet(tmp_path / "superplm", "mlm")
    archs = ["1/32/32/1/16", "2/48/64/2/32", "2/64/128/3/48"]
    # through the notebook's entry point: 3 candidates, all picked (lowest fitness first)
    both = ranking.run_ranking_studies("smoke", supernet, [(a, i) for i, a in enumerate(archs)], tmp_path,
                                       studies=("inherited_vs_trained",), progress=False)
    result = both["inherited_vs_trained"]
    assert both["archs"] == archs and "proxy_vs_paper" not in both
    assert result["archs"] == archs and CountingTrainer.runs == archs and result["objective"] == "mlm"
    # both sides are the study's fitness of the right weights, recomputed here: the SuperPLM's slice, and the
    # further-trained run's one-point SuperBERT; tau and p are scipy's on exactly these values
    cfg = RankingConfig.load("smoke")
    score = lambda weights, arch: make_fitness(cfg.fitness, weights, **cfg.fitness_settings())(Arch.parse(arch))  # noqa: E731
    runs = tmp_path / "inherited_vs_trained"
    assert result["inherited"] == pytest.approx([score(supernet, a) for a in archs], rel=1e-6, abs=0)
    assert result["trained"] == pytest.approx([score(runs / arch_slug(Arch.parse(a)) / "train" / "superbert", a)
                                               for a in archs], rel=1e-6, abs=0)
    tau, p = kendalltau(result["inherited"], result["trained"])
    assert (result["kendall_tau"], result["p_value"]) == pytest.approx((tau, p)) and result["n"] == 3
    assert all(t != i for t, i in zip(result["trained"], result["inherited"]))  # further training changed each model
    assert [t["steps"] for t in result["further_training"]] == [2, 2, 2]

    # the scored one-point SuperBERT is exactly the exported further-trained model
    run = tmp_path / "inherited_vs_trained" / arch_slug(Arch.parse(archs[1])) / "train"
    final = AutoModelForMaskedLM.from_pretrained(run / "final").eval()
    scored = SuperBert.from_pretrained(run / "superbert").eval()
    ids = torch.randint(1000, 5000, (2, 12))
    labels = ids.clone()
    with torch.no_grad():
        expected = final(ids).logits.reshape(-1, final.config.vocab_size)
        got = scored(ids, arch=Arch.parse(archs[1]), labels=labels).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    again = study(supernet, archs, tmp_path / "inherited_vs_trained")  # resume: nothing is trained or scored again
    assert CountingTrainer.runs == archs and again["trained"] == result["trained"]
    more = study(supernet, archs + ["1/64/96/2/32"], tmp_path / "inherited_vs_trained")
    assert CountingTrainer.runs == archs + ["1/64/96/2/32"] and more["trained"][:3] == result["trained"]
    with pytest.raises(ValueError, match="MLM SuperPLM"):
        study(supernet, archs, tmp_path / "other", objective="kd")


@pytest.mark.requires_data
def test_inherited_vs_trained_kd_scores_with_each_runs_own_w_fit(tmp_path):
    supernet = save_supernet(tmp_path / "superplm", "kd")
    result = study(supernet, ["1/32/32/12/24", "2/64/128/12/48"], tmp_path / "study")
    for side in ("inherited", "trained"):
        assert all(d[side]["hidden"] is not None and d[side]["attention"] > 0 for d in result["details"])
    assert result["objective"] == "kd" and result["trained"] != result["inherited"]


def test_a_study_recorded_before_a_setting_existed_resumes_as_its_default_and_refuses_another_value(tmp_path):
    @dataclass
    class Settings:
        steps: int = 10
        layers: str = "last"  # a setting added after the study was recorded
        extra: dict = dataclasses.field(default_factory=dict)

    defaults = {"further_training": field_defaults(Settings)}
    assert defaults["further_training"] == {"steps": 10, "layers": "last", "extra": {}}
    write_json_atomic(tmp_path / "study.json", {"study": "s", "further_training": {"steps": 10, "extra": {}}})
    claim_study(tmp_path, {"study": "s", "further_training": {"steps": 10, "layers": "last", "extra": {}}},
                defaults=defaults)  # the old record ran as the default does: it resumes
    with pytest.raises(ValueError, match=r"other settings \(differs in \['further_training.layers'\]\)"):
        claim_study(tmp_path, {"study": "s", "further_training": {"steps": 10, "layers": "uniform", "extra": {}}},
                    defaults=defaults)
    with pytest.raises(ValueError, match="other settings"):  # without the defaults, any new key is a difference
        claim_study(tmp_path, {"study": "s", "further_training": {"steps": 10, "layers": "last", "extra": {}}})
