"""SQuAD v1.1 / v2.0 as ``datasets.Dataset``s with the schema of ``rajpurkar/squad(_v2)``.

One row per question: ``id, title, context, question, answers`` with
``answers = {"text": [...], "answer_start": [...]}`` (an unanswerable v2.0 question has empty lists),
exactly what the hub gives, so the QA pre-/post-processing is written once.  Offline the rows are
flattened from the official nested JSON (``data[i].paragraphs[j].qas[k]``), with the same rules as
the hub's loading script: the context is not stripped, a missing title becomes ``""``, extra keys
(``is_impossible``, ``plausible_answers``) are dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from .paths import DataFormatError, data_dir, load_hub, local_file

SQUAD_VERSIONS: dict[str, str] = {"v1.1": "rajpurkar/squad", "v2.0": "rajpurkar/squad_v2"}
SQUAD_SPLITS: tuple[str, ...] = ("train", "validation")
_LOCAL_FILES = {"train": "train-{version}.json", "validation": "dev-{version}.json"}

SQUAD_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "title": datasets.Value("string"),
    "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
})


def load_squad(version: str = "v1.1", split: str = "validation") -> datasets.Dataset:
    """One split of SQuAD ``version`` ("v1.1" or "v2.0"), local if ``ATB_DATA_DIR`` is set, else the hub.

    Offline there is no v2.0 train set: it raises :class:`DataUnavailableOffline`.
    """
    if version not in SQUAD_VERSIONS:
        raise ValueError(f"unknown SQuAD version {version!r}; valid versions: {', '.join(SQUAD_VERSIONS)}")
    if split not in SQUAD_SPLITS:
        raise ValueError(f"unknown SQuAD split {split!r}; valid splits: {', '.join(SQUAD_SPLITS)}")
    root = data_dir()
    if root is None:
        return load_hub(SQUAD_VERSIONS[version], split=split)
    hub_hint = f'datasets.load_dataset("{SQUAD_VERSIONS[version]}", split="{split}")'
    path = local_file(root, "squad/" + _LOCAL_FILES[split].format(version=version),
                      f"SQuAD {version} {split}", hub_hint)
    # Built from an Arrow table: from_dict would re-validate every nested answer (~2 s on train).
    table = pa.Table.from_pydict(read_squad_json(path), schema=SQUAD_FEATURES.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=SQUAD_FEATURES), split=split)


def read_squad_json(path: Path) -> dict[str, list]:
    """The columns of an official-format SQuAD JSON file, one row per question.

    Anything that is not SQuAD raises :class:`DataFormatError` naming the file and the place: the
    line/column of a JSON syntax error, or the JSON path of the offending node (``data[3].paragraphs[2]
    .qas[0]``).
    """
    try:
        with open(path, encoding="utf-8") as f:
            squad = json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    columns: dict[str, list] = {name: [] for name in SQUAD_FEATURES}
    if not isinstance(squad, dict):
        raise DataFormatError(f"{path}: the top level is a {type(squad).__name__}, expected an object with \"data\"")
    for i, article in enumerate(_get(squad, "data", list, path, "")):
        where = f"data[{i}]"
        title = _get(article, "title", str, path, where, default="")
        for j, paragraph in enumerate(_get(article, "paragraphs", list, path, where)):
            where_p = f"{where}.paragraphs[{j}]"
            context = _get(paragraph, "context", str, path, where_p)
            for k, qa in enumerate(_get(paragraph, "qas", list, path, where_p)):
                where_q = f"{where_p}.qas[{k}]"
                columns["id"].append(_get(qa, "id", str, path, where_q))
                columns["title"].append(title)
                columns["context"].append(context)
                columns["question"].append(_get(qa, "question", str, path, where_q))
                columns["answers"].append(_answers(_get(qa, "answers", list, path, where_q), path, where_q))
    return columns


def _answers(answers: list, path: Path, where: str) -> dict[str, list]:
    """The hub's ``{"text": [...], "answer_start": [...]}`` of one question's answer list."""
    text, start = [], []
    for n, answer in enumerate(answers):
        here = f"{where}.answers[{n}]"
        text.append(_get(answer, "text", str, path, here))
        start.append(_get(answer, "answer_start", int, path, here))
    return {"text": text, "answer_start": start}


_MISSING = object()


def _get(node: Any, key: str, kind: type, path: Path, where: str, default: Any = _MISSING) -> Any:
    """``node[key]`` checked to be a ``kind``; DataFormatError naming the file and JSON path if not."""
    if not isinstance(node, dict):
        raise DataFormatError(f"{path}: {where or 'the top level'} is a {type(node).__name__}, expected an object")
    value = node.get(key, _MISSING)
    if value is _MISSING:
        if default is not _MISSING:
            return default
        raise DataFormatError(f"{path}: {_join(where, key)} is missing; this does not look like a SQuAD file")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataFormatError(f"{path}: {_join(where, key)} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
