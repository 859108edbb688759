"""Fitness functions of the search: how good is a sub-model whose weights are inherited from the SuperPLM?

Higher is better. Each fitness is a top-level dataclass built from ``(supernet_dir, settings)``, so it
pickles to worker processes as its settings only; the SuperPLM (and data, teacher) are loaded lazily,
once per process, on the first call. ``supernet_dir`` is what ``SuperBert.from_pretrained`` reads, i.e.
``run_dir / "final"``, which also holds the objective the SuperPLM was trained with (``objective.json``,
and for KD ``objective.safetensors``, see :mod:`atb.objectives`); nothing else of the run is read.

* ``"paper"`` (notes §6): the sub-model is extracted (not further trained), fine-tuned on MNLI and SQuAD
  v1.1 with :mod:`atb.finetune`, and its fitness is mean(MNLI accuracy, SQuAD F1). A task whose data is
  not available (offline: MNLI) is replaced by the configured substitute (e.g. SST-2) and every result
  says which task was actually used. Budgets come from the ``finetune`` section of ``configs/<finetune_scale>.yaml``
  with the search's own overrides (``budgets``), since a search fine-tunes hundreds of candidates.
* ``"mlm_loss"`` / ``"kd_loss"`` (:class:`HeldOutMLMFitness` / :class:`HeldOutKDFitness`): cheap proxies,
  the negated loss of the SuperPLM's own objective on a fixed held-out sample (WikiText-2 validation by
  default), with masks drawn once from a seeded generator, so every candidate sees the same tokens. The
  loss is computed by the training objective itself (:class:`atb.objectives.MLMObjective` /
  :class:`~atb.objectives.KDObjective`). The sub-model is run as a slice of the SuperPLM, whose outputs
  equal the extracted model's (tested in ``tests/test_superbert.py``) and which scores the vocabulary only
  at masked positions: much cheaper than extracting.
  ``kd_loss`` is the training loss itself: last-layer attention-score MSE plus hidden-state MSE through
  the **trained** ``W_fit``, read with the teacher's name from ``final/`` (``KDObjective.load``). Dropping
  the hidden term instead (``hidden_term=False``) would rank sub-models by attention alone; it is offered
  for SuperPLMs saved without ``objective.safetensors``, and recorded in ``describe()``.
* ``"proxy"`` in a config means whichever of the two is the SuperPLM's own objective.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from .controls import export_control
from .extract import export, extract
from .objectives import IGNORE_INDEX, KDObjective, MLMObjective
from .space import Arch, SearchSpace
from .superbert import SuperBert, SuperBertConfig


def supernet_objective(supernet_dir: str | Path) -> str:
    """``"mlm"`` or ``"kd"``: the objective a saved SuperPLM was trained with (from its config only)."""
    config = SuperBertConfig.from_pretrained(supernet_dir)
    space = config.search_space()
    if space is not None:
        return space.objective
    return "kd" if config.qkv_slicing == "headwise" else "mlm"


def _device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


@dataclass
class Fitness:
    """``fitness(arch) -> float``; ``evaluate(arch)`` -> ``{"fitness": float, ...details}``."""

    name: ClassVar[str] = ""
    supernet_dir: str | Path

    def __post_init__(self) -> None:
        self.supernet_dir = Path(self.supernet_dir)
        self._loaded: dict | None = None  # this process's models and data; never pickled

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}

    def __call__(self, arch: Arch) -> float:
        return self.evaluate(arch)["fitness"]

    def evaluate(self, arch: Arch) -> dict:
        raise NotImplementedError

    def describe(self) -> dict:
        """The name and every setting (what a search log's header records)."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        settings["supernet_dir"] = str(self.supernet_dir.resolve())
        return {"name": self.name, **settings}

    def loaded(self) -> dict:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> dict:
        raise NotImplementedError

    def _supernet(self, device: torch.device) -> SuperBert:
        return SuperBert.from_pretrained(self.supernet_dir).to(device).eval()


# -------------------------------------------------------------------------------------- proxies
@functools.lru_cache(maxsize=4)  # fitness objects of one process (one per speedup, say) share the sample
def heldout_batches(corpus: str, max_examples: int, max_seq_len: int, batch_size: int,
                    seed: int, mlm_probability: float = 0.15) -> list[dict[str, torch.Tensor]]:
    """A seeded sample of packed held-out examples, collated with fixed MLM masks (batch ``b`` masked
    by a generator seeded from ``(seed, b)``, as :meth:`atb.train.Trainer.batch` does); unmasked text
    with ``mlm_probability=0`` (the KD proxy, as KD trains)."""
    from .data import MLMCollator, build_pretraining_examples, load_corpus, load_tokenizer

    tokenizer = load_tokenizer()
    examples = build_pretraining_examples(load_corpus(corpus), tokenizer, max_seq_len=max_seq_len)
    chosen = sorted(random.Random(seed).sample(range(len(examples)), min(max_examples, len(examples))))
    rows = [examples[i] for i in chosen]
    batches = []
    for b, start in enumerate(range(0, len(rows), batch_size)):
        collate = MLMCollator(tokenizer, mlm_probability=mlm_probability,
                              generator=torch.Generator().manual_seed(seed * 1_000_003 + b))
        batches.append(collate(rows[start:start + batch_size]))
    return batches


@dataclass
class HeldOutFitness(Fitness):
    """Shared settings of the two held-out-loss proxies: which held-out text, how much of it, how it is batched."""

    corpus: str = "wikitext-2-valid"
    max_examples: int = 256
    max_seq_len: int = 128
    batch_size: int = 32
    seed: int = 0  # of the example sample and of the masks
    device: str | None = None  # None: CUDA if available

    mlm_probability: ClassVar[float] = 0.15  # the held-out text is corrupted as the objective trains on it

    def _batches(self, device: torch.device) -> list[dict[str, torch.Tensor]]:
        batches = heldout_batches(self.corpus, self.max_examples, self.max_seq_len, self.batch_size, self.seed,
                                  self.mlm_probability)
        return [{k: v.to(device) for k, v in b.items()} for b in batches]  # (read-only: shared by the cache)


@dataclass
class HeldOutMLMFitness(HeldOutFitness):
    """Fitness = -(masked-token cross-entropy of the sub-model on the held-out sample): ``MLMObjective``."""

    name: ClassVar[str] = "mlm_loss"

    def _load(self) -> dict:
        if supernet_objective(self.supernet_dir) != "mlm":
            raise ValueError(f"{self.supernet_dir} is a KD SuperPLM: its MLM head was never trained, so its MLM "
                             "loss ranks nothing; use kd_loss")
        device = _device(self.device)
        return {"model": self._supernet(device), "objective": MLMObjective(), "batches": self._batches(device)}

    @torch.no_grad()  # not inference_mode: tensors loaded inside it would be inference tensors for good
    def evaluate(self, arch: Arch) -> dict:
        state = self.loaded()
        total, tokens = 0.0, 0
        for batch in state["batches"]:
            out = state["objective"](state["model"], batch, arch)
            n = int((batch["labels"] != IGNORE_INDEX).sum())  # weight each batch by its masked tokens
            total, tokens = total + out.loss.item() * n, tokens + n
        loss = total / tokens
        return {"fitness": -loss, "loss": loss, "tokens": tokens}


@dataclass
class HeldOutKDFitness(HeldOutFitness):
    """Fitness = -(the KD training loss of the sub-model on the held-out sample): ``KDObjective`` as saved in
    ``final/`` (teacher and trained ``W_fit``), see the module docstring."""

    name: ClassVar[str] = "kd_loss"
    mlm_probability: ClassVar[float] = 0.0  # KD distils on unmasked text (atb.train.TrainConfig.mask_probability)
    teacher: str | None = None  # None: the teacher named in final/objective.json
    hidden_term: bool = True  # include MSE(W_fit h_student, h_teacher) with the trained W_fit

    def _load(self) -> dict:
        device = _device(self.device)
        try:  # before the SuperPLM is loaded: a missing file is the likeliest error
            objective = KDObjective.load(self.supernet_dir, device=device, teacher=self.teacher,
                                         trained_fit=self.hidden_term)
        except FileNotFoundError as err:
            hint = " Pass hidden_term=False to score attention scores only." if self.hidden_term else ""
            raise FileNotFoundError(f"kd_loss: {err}.{hint}") from None
        model = self._supernet(device)
        batches = self._batches(device)
        targets = [objective.targets(b) for b in batches]  # the teacher runs once per batch, not per candidate
        return {"model": model, "objective": objective.eval(), "batches": batches, "targets": targets}

    @torch.no_grad()  # not inference_mode: tensors loaded inside it would be inference tensors for good
    def evaluate(self, arch: Arch) -> dict:
        state = self.loaded()
        attention = hidden = 0.0
        tokens = 0
        for batch, target in zip(state["batches"], state["targets"]):
            out = state["objective"](state["model"], batch, arch, target)
            n = int(batch["attention_mask"].sum())  # weight each batch by its real tokens
            attention += out.attention.item() * n
            hidden += out.hidden.item() * n
            tokens += n
        attention, hidden = attention / tokens, hidden / tokens
        loss = attention + hidden if self.hidden_term else attention
        return {"fitness": -loss, "loss": loss, "attention": attention,
                "hidden": hidden if self.hidden_term else None, "tokens": tokens}


# ---------------------------------------------------------------------------------------- paper
@dataclass
class PaperFitness(Fitness):
    """mean(score of each task) of the extracted sub-model fine-tuned on each of ``tasks`` (notes §6).

    ``untrained``: fine-tune the sub-model's **untrained control** instead (:func:`atb.controls.export_control`:
    its shape and settings at random initialisation), under the same budgets: a ranking study scores both, and a
    sub-model that does not beat its control was ranked by the budget, not by what it inherited.
    ``keep_predictions``: keep each task's per-example dev predictions in the details (``"dev"``), which a paired
    bootstrap against the control needs; a search of hundreds of candidates leaves them out of its log."""

    name: ClassVar[str] = "paper"
    finetune_scale: str = "mini"  # whose configs/<scale>.yaml `finetune` section gives the base budgets
    tasks: tuple[str, ...] = ("mnli", "squad_v1.1")
    substitute_tasks: dict[str, str] = field(default_factory=lambda: {"mnli": "sst2"})  # used when data is absent
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> FinetuneConfig overrides
    workdir: str | None = None  # where the temporary exported sub-models go (None: the system's temp dir)
    untrained: bool = False  # score the architecture's untrained control (atb.controls) instead of the sub-model
    keep_predictions: bool = False  # per task, the dev predictions ("dev") beside the score

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tasks = tuple(self.tasks)

    def _load(self) -> dict:
        return {"model": SuperBert.from_pretrained(self.supernet_dir).eval()}

    def evaluate(self, arch: Arch) -> dict:
        supernet = self.loaded()["model"]
        results = {}
        with tempfile.TemporaryDirectory(prefix="atb-candidate-", dir=self.workdir) as tmp:
            model_dir = Path(tmp) / "sub-model"
            export(extract(supernet, arch), model_dir)
            if self.untrained:  # the same shape and settings, never pre-trained
                model_dir = export_control(arch, Path(tmp) / "control", like=model_dir)
            for task in self.tasks:
                results[task] = self._score(str(model_dir), task)
        return {"fitness": statistics.fmean(r["score"] for r in results.values()), "tasks": results}

    def _score(self, model_dir: str, task: str) -> dict:
        """Fine-tune on ``task`` or, if its data is unavailable, on its substitute; say which was used."""
        result = self._finetune(model_dir, task)
        if result["score"] is None and task in self.substitute_tasks:
            unavailable = result.get("reason")
            result = {**self._finetune(model_dir, self.substitute_tasks[task]), "substitutes": task,
                      "unavailable": unavailable}
        if result["score"] is None:
            raise RuntimeError(f"no score for {task!r} ({result.get('reason')}) and no substitute task for it")
        kept = ("substitutes", "unavailable", *(("dev",) if self.keep_predictions else ()))
        return {"task_used": result["task"], "score": result["score"], "metrics": result["metrics"],
                "seconds": result["seconds"], **{k: result[k] for k in kept if k in result}}

    def _finetune(self, model_dir: str, task: str) -> dict:
        from .finetune import SQUAD_TASKS, FinetuneConfig, finetune_glue, finetune_squad

        cfg = dataclasses.replace(FinetuneConfig.load(self.finetune_scale, task), **self.budgets.get(task, {}))
        if task in SQUAD_TASKS:
            return finetune_squad(model_dir, task.removeprefix("squad_"), cfg)
        return finetune_glue(model_dir, task, cfg)


# ------------------------------------------------------------------------------------- registry
FITNESSES: dict[str, type[Fitness]] = {f.name: f for f in (HeldOutMLMFitness, HeldOutKDFitness, PaperFitness)}


def make_fitness(name: str, supernet_dir: str | Path, **settings) -> Fitness:
    """The fitness ``name`` of the SuperPLM in ``supernet_dir``; ``"proxy"`` is the loss of its own objective."""
    if name == "proxy":
        name = {"mlm": "mlm_loss", "kd": "kd_loss"}[supernet_objective(supernet_dir)]
    if name not in FITNESSES:
        raise ValueError(f"unknown fitness {name!r}; choose 'proxy' or one of {sorted(FITNESSES)}")
    return FITNESSES[name](supernet_dir, **settings)


def checkpoint_losses(supernet_dirs: dict[str, str | Path], archs: list[Arch], **settings) -> list[dict]:
    """The held-out proxy loss of the same sub-models in several SuperPLMs of one objective, e.g. the warm start
    before one-shot training and the trained SuperPLM (``{"warm start": ..., "trained": ...}``): one row per
    architecture, ``{"arch": ..., <label>: loss, ...}``. A one-shot run that *raises* these losses damaged what
    it started from; one that lowers them for small sub-models taught them something the slice did not hold."""
    losses = {label: [make_fitness("proxy", d, **settings).evaluate(a)["loss"] for a in archs]
              for label, d in supernet_dirs.items()}
    return [{"arch": str(a), **{label: values[i] for label, values in losses.items()}} for i, a in enumerate(archs)]


def probe_archs(space: SearchSpace, n_random: int = 3, seed: int = 0) -> list[Arch]:
    """A few sub-models that span a space: its smallest, ``n_random`` seeded uniform samples, its largest."""
    rng = random.Random(seed)
    return list(dict.fromkeys([space.smallest(), *(space.sample(rng) for _ in range(n_random)), space.largest()]))
