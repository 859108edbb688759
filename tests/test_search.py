"""The search: mutation stays in the space and the window, determinism, resume without re-evaluation, no
duplicates, Fast proposes only efficient archs, evolution beats random on a structured fitness, workers,
the config; and the fitness functions on a tiny SuperBert (those need ``ATB_DATA_DIR``).

No training and no timing: the search tests use a synthetic latency (proportional to the encoder's
parameters) and synthetic fitness functions.
"""

import dataclasses
import json
import math
import pickle
import random
import shutil
import time

import numpy as np
import pytest
import torch

from atb import Arch, SearchSpace, SuperBert, export, extract, zoo
from atb.finetune import FinetuneConfig, finetune_glue
from conftest import save_supernet
from atb.fitness import FITNESSES, HeldOutKDFitness, HeldOutMLMFitness, PaperFitness, heldout_batches, make_fitness
from atb.latency import latency_window, num_threads
from atb.search import (
    METHODS, CandidatePool, Candidate, Evolution, SearchConfig, SearchExhausted, arch_of_genes, gene_field, mutate,
    read_search_log, roulette, run_search,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Toy models: one thread is faster than two fighting over a shared machine (restored afterwards)."""
    with num_threads(1):
        yield


def synthetic_latency(archs):
    """'Latency' (ms) proportional to the encoder's parameters: monotone in every field, no timing."""
    return np.array([a.encoder_parameters() for a in archs], dtype=float) / 1e5


BERT_BASE_MS = float(synthetic_latency([zoo.BERT_BASE])[0])
CFG = SearchConfig(population=10, generations=4)


@dataclasses.dataclass
class PeakedFitness:
    """Structured like the paper's finding: best at d_f/d_m = 1.75 and d_qkv/d_m = 0.85, deeper slightly better.

    ``fail_on`` (1-based call count) makes the N-th call raise, to interrupt a search; ``calls`` records
    every scored architecture (in-process only); ``burn_cpu`` spins the CPU in each call. None is part of
    ``describe()``, so a failing, a slow and a working instance count as the same fitness in a log header.
    """

    fail_on: int | None = None
    calls: list = dataclasses.field(default_factory=list)
    burn_cpu: float = 0.0  # CPU-seconds each call spins for, so that its measured cost is known from below

    def __call__(self, arch: Arch) -> float:
        self.calls.append(arch)
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KeyboardInterrupt("interrupted")
        until = time.process_time() + self.burn_cpu
        while time.process_time() < until:
            pass
        return (-abs(math.log(arch.ffn / arch.hidden / 1.75)) - abs(math.log(arch.qkv / arch.hidden / 0.85))
                + 0.05 * arch.layers)

    def describe(self) -> dict:
        return {"name": "peaked"}


def search(tmp_path, method="evolved", seed=0, cfg=CFG, fitness=None, space="kd", speedup=25.0, log="log.jsonl"):
    return run_search(SearchSpace.preset("mini", space), fitness or PeakedFitness(), synthetic_latency, speedup,
                      BERT_BASE_MS, cfg, tmp_path / log, method=method, seed=seed, progress=False)


def key(result):
    return [(str(c.arch), c.fitness, c.generation) for c in result.candidates]


# --------------------------------------------------------------------------------------- mutation
@pytest.mark.parametrize("objective", ["mlm", "kd"])
def test_mutation_stays_in_the_space_and_moves_at_most_its_offset(objective):
    space = SearchSpace.preset("mini", objective)
    rng = random.Random(0)
    attention = "heads" if objective == "mlm" else "qkv"
    for _ in range(2000):
        parent = space.sample(rng)
        child = mutate(parent, space, rng, CFG)
        assert space.contains(child)
        for gene, name in (("layers", "layers"), ("hidden", "hidden"), ("ffn", "ffn"), ("attention", attention)):
            step = getattr(space, name).step
            assert abs(getattr(child, name) - getattr(parent, name)) <= CFG.mutation_offset[gene] * step


@pytest.mark.parametrize("objective", ["mlm", "kd"])
def test_genes_map_to_the_architecture_each_space_searches(objective):
    """The attention gene is the head count in the MLM space (d_qkv follows at the head size) and d_qkv in the KD space
    (heads stay at the space's one value): the mapping mutation and the Pareto search both go through."""
    space = SearchSpace.preset("mini", objective)
    arch = space.sample(random.Random(1))
    genes = {g: getattr(arch, gene_field(space, g)) for g in ("layers", "hidden", "ffn", "attention")}
    assert arch_of_genes(space, **genes) == arch
    if objective == "mlm":
        assert gene_field(space, "attention") == "heads" and arch.qkv == arch.heads * space.head_size
    else:
        assert gene_field(space, "attention") == "qkv" and arch.heads == space.heads.low


@pytest.mark.parametrize("objective", ["mlm", "kd"])
def test_offspring_are_feasible_unseen_and_in_the_space(objective):
    space = SearchSpace.preset("mini", objective)
    pool = CandidatePool.build(space, synthetic_latency, BERT_BASE_MS, 25.0)
    low, high = latency_window(BERT_BASE_MS, 25.0)
    evolution = Evolution(space, pool, CFG, "evolved", seed=0)
    rng = random.Random(1)
    first = [pool.draw(rng, set()) for _ in range(10)]
    evolution.add([Candidate(a, PeakedFitness()(a), 0, i, pool.latency_ms[a], 0.0, 0.0) for i, a in enumerate(first)])
    taken = set(evolution.seen)
    for _ in range(300):
        child = evolution.offspring(evolution.parents(), rng, taken)
        assert child is not None and space.contains(child) and child not in taken
        assert low <= synthetic_latency([child])[0] <= high
        taken.add(child)


def test_roulette_never_picks_the_worst_and_follows_fitness_minus_min():
    parents = [Candidate(Arch(1, 128, 128, 12, 96 + 12 * i), f, 0, i, 1.0, 0.0, 0.0)
               for i, f in enumerate([1.0, 2.0, 4.0])]
    rng = random.Random(0)
    picks = [roulette(parents, rng).fitness for _ in range(4000)]
    assert 1.0 not in picks
    assert picks.count(4.0) / len(picks) == pytest.approx(3 / 4, abs=0.03)
    tied = [dataclasses.replace(p, fitness=0.5) for p in parents]
    assert {roulette(tied, rng).index for _ in range(200)} == {0, 1, 2}  # all tie: uniform


# ---------------------------------------------------------------------------------------- searches
@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_search_and_no_duplicates(tmp_path, method):
    a = search(tmp_path, method, log="a.jsonl")
    b = search(tmp_path, method, log="b.jsonl")
    assert key(a) == key(b) and a.history == b.history
    archs = [c.arch for c in a.candidates]
    assert len(archs) == len(set(archs)) == CFG.population * CFG.generations_for(method)
    assert all(a.window_ms[0] <= c.latency_ms <= a.window_ms[1] for c in a.candidates)
    assert a.history == sorted(a.history) and a.best_fitness == max(c.fitness for c in a.candidates)
    assert a.predicted_latency_ms == pytest.approx(synthetic_latency([a.best_arch])[0])
    assert key(search(tmp_path, method, seed=1, log="c.jsonl")) != key(a)


def test_random_and_evolved_share_the_first_generation(tmp_path):
    random_, evolved = search(tmp_path, "random", log="r.jsonl"), search(tmp_path, "evolved", log="e.jsonl")
    first = lambda r: [c.arch for c in r.candidates if c.generation == 0]  # noqa: E731
    assert first(random_) == first(evolved)


def test_resume_replays_the_log_and_ends_like_an_uninterrupted_run(tmp_path):
    reference = search(tmp_path, log="full.jsonl")
    interrupted = PeakedFitness(fail_on=24)  # dies in generation 2 (population 10)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, fitness=interrupted, log="resumed.jsonl")
    _, logged = read_search_log(tmp_path / "resumed.jsonl")
    assert len(logged) == 23
    with open(tmp_path / "resumed.jsonl", "a") as f:
        f.write('{"generation": 2, "arch": "4/2')  # a line cut off by the kill
    with pytest.warns(UserWarning, match="cut-off"):
        resumed_fitness = PeakedFitness()
        resumed = search(tmp_path, fitness=resumed_fitness, log="resumed.jsonl")
    assert not {Arch.parse(r["arch"]) for r in logged} & set(resumed_fitness.calls)  # nothing re-evaluated
    assert len(resumed_fitness.calls) == 40 - 23 and resumed.replayed == 23
    assert key(resumed) == key(reference) and resumed.history == reference.history
    assert resumed.best_arch == reference.best_arch
    again = PeakedFitness()
    assert key(search(tmp_path, fitness=again, log="resumed.jsonl")) == key(reference) and again.calls == []


def test_more_generations_extend_a_finished_search(tmp_path):
    longer = dataclasses.replace(CFG, generations=6)
    search(tmp_path, log="grow.jsonl")
    fitness = PeakedFitness()
    extended = search(tmp_path, cfg=longer, fitness=fitness, log="grow.jsonl")
    assert len(fitness.calls) == 20 and key(extended) == key(search(tmp_path, cfg=longer, log="fresh.jsonl"))


def test_a_log_of_another_search_is_refused(tmp_path):
    search(tmp_path, log="log.jsonl")
    with pytest.raises(ValueError, match="differs in.*seed"):
        search(tmp_path, seed=3, log="log.jsonl")


def test_fast_only_proposes_efficient_archs(tmp_path):
    cfg = dataclasses.replace(CFG, fast_generations=3)
    result = search(tmp_path, "fast", cfg=cfg)
    assert len(result.candidates) == 30 and len({c.generation for c in result.candidates}) == 3
    assert all(c.arch.is_efficient() for c in result.candidates)
    assert search(tmp_path, "fast", log="fast1.jsonl").history[0] == result.history[0]  # default: 1 generation


def test_evolution_beats_random_search_on_a_structured_fitness(tmp_path):
    cfg = dataclasses.replace(CFG, generations=8)
    evolved, random_ = search(tmp_path, "evolved", cfg=cfg, log="e.jsonl"), search(tmp_path, "random", cfg=cfg)
    assert evolved.best_fitness > random_.best_fitness
    assert evolved.best_arch.ffn / evolved.best_arch.hidden == pytest.approx(1.75, abs=0.2)


def test_an_exhausted_window_is_a_clear_error(tmp_path):
    smoke = SearchSpace.preset("smoke", "kd")  # 72 architectures
    pool = CandidatePool.build(smoke, synthetic_latency, BERT_BASE_MS, 2000.0)
    assert 0 < len(pool) < 72
    cfg = dataclasses.replace(CFG, population=len(pool) // 2 + 1, generations=3)
    with pytest.raises(SearchExhausted, match="window .* already evaluated"):
        run_search(smoke, PeakedFitness(), synthetic_latency, 2000.0, BERT_BASE_MS, cfg, tmp_path / "x.jsonl",
                   progress=False)
    with pytest.raises(SearchExhausted, match="fewer than one population"):
        run_search(smoke, PeakedFitness(), synthetic_latency, 2000.0, BERT_BASE_MS,
                   dataclasses.replace(cfg, population=len(pool) + 1), tmp_path / "y.jsonl", progress=False)


@pytest.mark.slow  # spawns worker processes, each importing torch
def test_worker_processes_give_the_same_search(tmp_path):
    cfg = dataclasses.replace(CFG, population=6, generations=2, workers=2, threads_per_worker=1)
    burn = 0.3  # evaluations must outweigh the search's own overhead (~1 CPU-s on a loaded machine) for the last check
    parallel = search(tmp_path, cfg=cfg, fitness=PeakedFitness(burn_cpu=burn), log="p.jsonl")
    serial = search(tmp_path, cfg=dataclasses.replace(cfg, workers=1), fitness=PeakedFitness(burn_cpu=burn),
                    log="s.jsonl")
    assert key(parallel) == key(serial)
    for result in (parallel, serial):  # CPU time is counted in the process that ran each evaluation, once
        each = [c.cpu_seconds for c in result.candidates]
        assert len(each) == 12 and min(each) >= burn and max(each) < burn + 0.5
        assert result.evaluation_cpu_seconds == pytest.approx(sum(each))
        assert result.cpu_seconds == pytest.approx(result.evaluation_cpu_seconds + result.overhead_cpu_seconds)
    # in process, the search's own overhead excludes the evaluations (counting them twice would put it above)
    assert serial.overhead_cpu_seconds < serial.evaluation_cpu_seconds


def test_the_log_holds_every_evaluation(tmp_path):
    result = search(tmp_path)
    header, rows = read_search_log(tmp_path / "log.jsonl")
    assert header["method"] == "evolved" and header["fitness"] == {"name": "peaked"}
    assert {"arch", "fitness", "generation", "latency_ms", "seconds", "cpu_seconds"} <= set(rows[0])
    # every evaluation, once, with the values recomputed here: the fitness, the latency, the generation
    peaked, by_arch = PeakedFitness(), {r["arch"]: r for r in rows}
    assert len(rows) == len(by_arch) == len(result.candidates) == 40
    for c in result.candidates:
        row = by_arch[str(c.arch)]
        assert (row["fitness"], row["generation"]) == (peaked(c.arch), c.generation)
        assert row["latency_ms"] == pytest.approx(synthetic_latency([c.arch])[0])
    # the JSON summary and the table agree with the log
    summary = json.loads(json.dumps(result.to_dict()))
    best = max(r["fitness"] for r in rows)
    assert summary["best_fitness"] == by_arch[summary["best_arch"]]["fitness"] == best and summary["evaluated"] == 40
    assert summary["history"] == [max(r["fitness"] for r in rows if r["generation"] <= g) for g in range(4)]
    table = result.table()
    fields = table[["layers", "hidden", "ffn", "heads", "qkv"]].itertuples(index=False)
    assert [str(Arch(*map(int, f))) for f in fields] == list(table["arch"])
    assert dict(zip(table["arch"], table["fitness"])) == {a: r["fitness"] for a, r in by_arch.items()}


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("scale", ["smoke", "mini", "base", "paper"])
def test_every_scale_loads(scale):
    cfg = SearchConfig.load(scale)
    assert cfg.scale == scale and cfg.explore_rate == 0.5
    assert cfg.mutation_prob == {"layers": 0.25, "hidden": 0.5, "ffn": 0.5, "attention": 0.25}
    assert cfg.mutation_offset == {"layers": 1, "hidden": 1, "ffn": 2, "attention": 2}
    assert cfg.speedups is not None or cfg.speedup_quantiles is not None
    assert cfg.fitness_settings("paper")["finetune_scale"] == scale


def test_config_defaults_are_the_paper_and_errors_are_named(tmp_path):
    assert SearchConfig.load("paper").population == 25 and SearchConfig.load("paper").steps == {"hidden": 16, "ffn": 32}
    with pytest.raises(ValueError, match=r"search overrides.*populaton"):
        SearchConfig.load("mini", populaton=3)
    with pytest.raises(ValueError, match="mutation_prob"):
        SearchConfig(mutation_prob={"layers": 0.5})
    with pytest.raises(ValueError, match="fitness"):
        SearchConfig(fitness="accuracy")


def test_quantile_constraints_lie_inside_the_space(tmp_path):
    cfg = SearchConfig.load("smoke")
    space = SearchSpace.preset("smoke", "mlm")
    (speedup,) = cfg.constraints("mlm", space, synthetic_latency, BERT_BASE_MS)
    assert len(CandidatePool.build(space, synthetic_latency, BERT_BASE_MS, speedup)) >= cfg.population
    assert SearchConfig.load("mini").constraints("kd") == [15.0, 20.0, 25.0]


# ----------------------------------------------------------------------------------------- fitness
PROXY = dict(max_examples=6, max_seq_len=32, batch_size=4)


def test_fitness_objects_pickle_without_their_models(tmp_path):
    fitness = HeldOutMLMFitness(save_supernet(tmp_path, "mlm"), **PROXY)
    fitness._loaded = {"model": "pretend"}
    clone = pickle.loads(pickle.dumps(fitness))
    assert clone._loaded is None and clone.describe() == fitness.describe()
    assert set(FITNESSES) == {"mlm_loss", "kd_loss", "paper"}
    assert isinstance(make_fitness("proxy", tmp_path / "final"), HeldOutMLMFitness)


@pytest.mark.requires_data
def test_mlm_proxy_scores_sub_models_deterministically(tmp_path):
    fitness = make_fitness("proxy", save_supernet(tmp_path, "mlm"), **PROXY)
    small, large = Arch(1, 32, 32, 1, 16), Arch(2, 64, 128, 2, 32)
    a = fitness.evaluate(small)
    # the expected loss computed another way, on the same held-out sample: the *extracted* model's logits over
    # the whole vocabulary at every position, cross-entropy summed over the masked ones, divided by their count
    model = extract(SuperBert.from_pretrained(tmp_path / "final"), small).eval()
    total, masked = 0.0, 0
    for b in heldout_batches(fitness.corpus, fitness.max_examples, fitness.max_seq_len, fitness.batch_size,
                             fitness.seed):
        with torch.no_grad():
            logits = model(b["input_ids"], attention_mask=b["attention_mask"],
                           token_type_ids=b["token_type_ids"]).logits
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["labels"].flatten(), ignore_index=-100,
                                                   reduction="sum").item()
        masked += int((b["labels"] != -100).sum())
    assert a["tokens"] == masked and a["loss"] == pytest.approx(total / masked, rel=1e-5)
    assert a["fitness"] == -a["loss"]
    assert fitness(small) == a["fitness"] and fitness(large) != a["fitness"]
    assert HeldOutMLMFitness(tmp_path / "final", **PROXY)(small) == a["fitness"]  # a fresh process-like copy: same masks
    space = SearchSpace.preset("smoke", "mlm")
    (speedup,) = SearchConfig.load("smoke").constraints("mlm", space, synthetic_latency, BERT_BASE_MS)
    result = run_search(space, fitness, synthetic_latency, speedup, BERT_BASE_MS,
                        dataclasses.replace(CFG, population=3, generations=2), tmp_path / "s.jsonl", progress=False)
    assert len(result.candidates) == 6 and result.fitness["name"] == "mlm_loss"
    assert "loss" in result.candidates[0].details


@pytest.mark.requires_data
def test_kd_proxy_uses_the_trained_w_fit_or_attention_only(tmp_path):
    final = save_supernet(tmp_path, "kd")
    arch = Arch(2, 48, 64, 12, 36)
    full = make_fitness("proxy", final, **PROXY).evaluate(arch)
    assert isinstance(make_fitness("proxy", final), HeldOutKDFitness)
    attention_only = HeldOutKDFitness(final, hidden_term=False, **PROXY).evaluate(arch)
    assert full["loss"] == pytest.approx(full["attention"] + full["hidden"])
    assert attention_only["loss"] == pytest.approx(full["attention"]) and attention_only["hidden"] is None
    with pytest.raises(ValueError, match="KD SuperPLM"):
        HeldOutMLMFitness(final, **PROXY)(arch)
    (final / "objective.safetensors").unlink()  # no trained W_fit: an error naming the file, or attention only
    with pytest.raises(FileNotFoundError, match=r"final/objective\.safetensors.*hidden_term=False"):
        HeldOutKDFitness(final, **PROXY)(arch)
    assert HeldOutKDFitness(final, hidden_term=False, **PROXY).evaluate(arch) == attention_only
    bare = save_supernet(tmp_path / "bare", "kd", with_objective=False)
    with pytest.raises(FileNotFoundError, match=r"bare/final/objective\.json"):
        HeldOutKDFitness(bare, **PROXY)(arch)


@pytest.mark.requires_data
def test_kd_fitness_reads_w_fit_and_teacher_from_final_only(tmp_path):
    """The SuperPLM's final/ carries what the fitness needs: the run's checkpoints, config and log can go."""
    from safetensors.torch import load_file

    from atb.train import TrainConfig, Trainer

    cfg = TrainConfig(scale="smoke", space="smoke", objective="kd", max_documents=40, max_seq_len=64, batch_size=8,
                      steps=3, lr=2e-3, warmup_steps=1, checkpoint_every=3)
    trainer = Trainer(cfg, tmp_path / "run")
    initial = {k: v.clone() for k, v in trainer.objective.state_dict().items()}
    trainer.run()
    saved = load_file(tmp_path / "run" / "final" / "objective.safetensors")
    trained = trainer.objective.state_dict()
    assert saved.keys() == initial.keys() and all(torch.equal(saved[k], trained[k]) for k in saved)
    assert not torch.equal(saved["fit_dense.weight"], initial["fit_dense.weight"])  # W_fit as trained, not as drawn
    arch = Arch(1, 48, 64, 12, 36)
    with_run = make_fitness("kd_loss", tmp_path / "run" / "final", **PROXY).evaluate(arch)
    shutil.copytree(tmp_path / "run" / "final", tmp_path / "elsewhere" / "final")
    shutil.rmtree(tmp_path / "run")  # checkpoints/, config.json, log.jsonl: gone
    alone = make_fitness("kd_loss", tmp_path / "elsewhere" / "final", **PROXY).evaluate(arch)
    assert alone == with_run and alone["hidden"] > 0


@pytest.mark.requires_data
def test_paper_fitness_substitutes_an_unavailable_task_and_says_so(tmp_path):
    fitness = PaperFitness(save_supernet(tmp_path, "mlm"), finetune_scale="smoke", tasks=("mnli",),
                           substitute_tasks={"mnli": "rte"}, budgets={"rte": {"max_train_examples": 16}})
    arch = Arch(1, 32, 32, 1, 16)
    result = fitness.evaluate(arch)
    task = result["tasks"]["mnli"]
    assert task["task_used"] == "rte" and task["substitutes"] == "mnli" and "MNLI" in task["unavailable"]
    # the same run by hand: the extracted sub-model, exported and fine-tuned on RTE with the overridden budget
    exported = export(extract(SuperBert.from_pretrained(tmp_path / "final"), arch), tmp_path / "by-hand")
    by_hand = finetune_glue(exported, "rte", dataclasses.replace(FinetuneConfig.load("smoke", "rte"),
                                                                 max_train_examples=16))
    assert by_hand["train_examples"] == 16
    assert (task["score"], task["metrics"]) == (by_hand["score"], by_hand["metrics"])
    assert result["fitness"] == task["score"]  # one task: the mean is its score


def test_quantile_constraint_avoids_a_gap_between_latency_clusters():
    """Bimodal latencies (1 vs 2 layers, 10x apart): the median falls in the gap, the window must not be empty."""
    from atb.search import speedups_at_quantiles

    def bimodal(archs):
        return np.array([1.0 if a.layers == 1 else 10.0 for a in archs]) * (1 + np.array([a.hidden for a in archs]) / 1e4)

    space = SearchSpace.preset("smoke", "kd")
    (speedup,) = speedups_at_quantiles(space, bimodal, 100.0, [0.5])
    assert len(CandidatePool.build(space, bimodal, 100.0, speedup)) >= 4


# ---------------------------------------------------------------------------------------- results
def test_shape_summary_counts_the_efficient_rule_at_its_boundaries():
    from atb.search import shape_summary

    inside = Arch(3, 100, 160, 7, 70)  # d_f/d_m = 1.6, d_qkv/d_m = 0.7: both lower bounds
    edge = Arch(5, 100, 190, 4, 100)  # 1.9 and 1.0: both upper bounds
    outside = Arch(1, 100, 400, 4, 100)  # BERT's rule, d_f = 4 d_m
    summary = shape_summary([inside, edge, outside])
    assert (summary["n"], summary["efficient"]) == (3, 2) and summary["efficient_share"] == pytest.approx(2 / 3)
    assert summary["ffn_ratio"] == pytest.approx({"min": 1.6, "max": 4.0, "mean": (1.6 + 1.9 + 4.0) / 3})
    assert summary["qkv_ratio"]["min"] == pytest.approx(0.7) and summary["layers"] == [1, 5]
    assert shape_summary([Arch(3, 100, 159, 7, 70)])["efficient"] == 0  # just below 1.6
    assert shape_summary([])["efficient_share"] is None
