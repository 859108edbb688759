"""The model zoo of the paper: BERT-base, the eight released AutoTinyBERTs and the default-rule baselines.

One table, written once, that every notebook reads (notes §8). Architectures are in the paper's notation
L / d_m / d_f / h / d_qkv. ``paper_speedup`` is the CPU speedup over BERT-base published in the official
README; the default-rule baselines come from comments in the official code and have no published
speedup (``None``).

S1's d_f = 1054 lies off the paper grid (step 4): it is still a valid :class:`Arch`, just not a member of
``SearchSpace.preset("paper", "mlm")``. S3's d_f = 384 is marked uncertain in the notes. BERT-base is not a
row: it is the reference (:data:`BERT_BASE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .space import Arch, Objective

Kind = Literal["searched", "baseline"]


@dataclass(frozen=True)
class ZooModel:
    """One row of the zoo: a name, its architecture, which SuperPLM objective it belongs to."""

    name: str
    arch: Arch
    objective: Objective
    kind: Kind
    paper_speedup: float | None = None
    paper_squad_f1: float | None = None  # SQuAD v1.1 dev F1 (official README)
    paper_glue: float | None = None  # GLUE dev average (official README)
    paper_glue_tasks: Mapping[str, float] | None = None  # per-task GLUE dev, where quoted (AutoDistil)


BERT_BASE = Arch(12, 768, 3072, 12, 768)
"""The reference of every speedup. Always measured, never a hard-coded latency (pitfall 7)."""

_ROWS: list[tuple[str, str, Objective, Kind, float | None]] = [
    # name,             L/d_m/d_f/h/d_qkv,      objective, kind,       paper speedup
    ("S1",              "5/564/1054/8/512",     "mlm",     "searched",  7.2),
    ("S2",              "4/396/624/6/384",      "mlm",     "searched",  15.7),
    ("S3",              "4/432/384/4/256",      "mlm",     "searched",  20.2),
    ("S4",              "3/320/608/4/256",      "mlm",     "searched",  27.2),
    ("KD-S1",           "5/564/1024/12/528",    "kd",      "searched",  4.6),
    ("KD-S2",           "5/324/600/12/324",     "kd",      "searched",  9.0),
    ("KD-S3",           "5/280/512/12/276",     "kd",      "searched",  10.7),
    ("KD-S4",           "4/256/480/12/192",     "kd",      "searched",  17.0),
    ("BERT-MLM-512",    "4/512/2048/8/512",     "mlm",     "baseline",  None),
    ("BERT-MLM-320",    "4/320/1280/5/320",     "mlm",     "baseline",  None),
    ("BERT-MLM-256",    "4/256/1024/4/256",     "mlm",     "baseline",  None),
    ("BERT-MLM-192",    "4/192/768/3/192",      "mlm",     "baseline",  None),
    ("BERT-KD-512",     "4/512/2048/12/516",    "kd",      "baseline",  None),
    ("BERT-KD-312",     "4/312/1200/12/312",    "kd",      "baseline",  None),
    ("BERT-KD-264",     "4/264/1056/12/264",    "kd",      "baseline",  None),
    ("BERT-KD-192",     "4/192/768/12/192",     "kd",      "baseline",  None),
]

# Per-task GLUE dev of KD-S1 and KD-S4 as AutoDistil quotes them (notes §8); no STS-B or WNLI.
_PAPER_TASKS: dict[str, dict[str, float]] = {
    "KD-S1": {"mnli_m": 82.3, "qnli": 89.7, "qqp": 89.9, "sst2": 91.4, "cola": 47.3, "mrpc": 88.5, "rte": 71.1},
    "KD-S4": {"mnli_m": 76.0, "qnli": 85.5, "qqp": 86.9, "sst2": 86.8, "cola": 20.4, "mrpc": 81.4, "rte": 64.9},
}
# SQuAD v1.1 F1 and GLUE average of the released models (official README, notes §8).
_PAPER_SCORES: dict[str, tuple[float, float]] = {
    "S1": (83.3, 78.3), "S2": (78.1, 76.4), "S3": (75.8, 75.3), "S4": (71.9, 73.0),
    "KD-S1": (87.6, 81.2), "KD-S2": (84.6, 77.5), "KD-S3": (83.3, 76.2), "KD-S4": (78.7, 73.5),
}

ZOO: dict[str, ZooModel] = {
    name: ZooModel(name, Arch.parse(arch), objective, kind, speedup, *_PAPER_SCORES.get(name, (None, None)),
                   _PAPER_TASKS.get(name))
    for name, arch, objective, kind, speedup in _ROWS
}


def models(kind: Kind | None = None, objective: Objective | None = None) -> list[ZooModel]:
    """The zoo rows of one kind and/or objective, in table order, e.g. ``models("searched", "kd")``."""
    return [m for m in ZOO.values()
            if (kind is None or m.kind == kind) and (objective is None or m.objective == objective)]


def published() -> list[ZooModel]:
    """The eight released AutoTinyBERTs (S1–S4, KD-S1–KD-S4)."""
    return models("searched")


def baselines() -> list[ZooModel]:
    """The eight default-rule BERTs (d_f ≈ 4·d_m, d_qkv = d_m) of similar latency, as the official code has them.

    Two deviate slightly: BERT-KD-512 has d_qkv = 516, the nearest size its 12 heads divide (the one
    baseline a plain ``BertConfig`` cannot hold), and BERT-KD-312 has d_f = 1200 rather than 1248.
    """
    return models("baseline")
