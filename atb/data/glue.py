"""GLUE, as ``datasets.Dataset``s with the schema of the hub's ``nyu-mll/glue``.

Downstream code (fine-tuning, metrics, notebooks) is written once against the hub schema: the same
column names, the same ``ClassLabel`` order (e.g. QNLI/RTE ``entailment=0``, MNLI ``entailment=0,
neutral=1, contradiction=2``) and an ``idx`` column.  Offline, the same datasets are rebuilt from the
original GLUE TSVs under ``$ATB_DATA_DIR/glue/<Folder>/{train,dev}.tsv``.

The TSVs are read line by line with quoting disabled, as the official GLUE and HF scripts do: the
files contain bare ``"`` characters that a quoting CSV reader would treat as field delimiters and
silently merge rows.  ``idx`` is the 0-based position of the row in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from .paths import DataFormatError, data_dir, load_hub, local_file, unavailable

HUB_GLUE = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTaskInfo:
    """What a GLUE task looks like: its columns, labels, splits and local folder.

    ``label_names`` is ``None`` for the regression task (STS-B, ``num_labels == 1``).
    ``tsv_header`` is the header of the local TSV files (CoLA has none: its layout is given here and
    ``tsv_has_header`` is False); ``tsv_text``/``tsv_label`` name the fields that become the text
    columns and the label.
    """

    name: str
    folder: str
    text_columns: tuple[str, ...]
    num_labels: int
    label_names: tuple[str, ...] | None
    validation_splits: tuple[str, ...]
    test_splits: tuple[str, ...]
    tsv_text: tuple[str, ...]
    tsv_label: str
    tsv_header: tuple[str, ...] | None = None  # the fixed layout of a header-less file (CoLA)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split the hub has for this task."""
        return ("train", *self.validation_splits, *self.test_splits)

    def features(self) -> datasets.Features:
        """The hub's features: text columns, ``label`` (ClassLabel, or float32 for STS-B), ``idx``."""
        label = (datasets.Value("float32") if self.label_names is None
                 else datasets.ClassLabel(names=list(self.label_names)))
        columns = {c: datasets.Value("string") for c in self.text_columns}
        return datasets.Features({**columns, "label": label, "idx": datasets.Value("int32")})


def _task(name: str, folder: str, text: tuple[str, ...], labels: tuple[str, ...] | None,
          tsv_text: tuple[str, ...], tsv_label: str, tsv_header: tuple[str, ...] | None = None,
          mnli: bool = False) -> GlueTaskInfo:
    """One table row: every task has train/validation/test splits except MNLI's matched/mismatched."""
    return GlueTaskInfo(
        name=name, folder=folder, text_columns=text,
        num_labels=1 if labels is None else len(labels), label_names=labels,
        validation_splits=("validation_matched", "validation_mismatched") if mnli else ("validation",),
        test_splits=("test_matched", "test_mismatched") if mnli else ("test",),
        tsv_text=tsv_text, tsv_label=tsv_label, tsv_header=tsv_header,
    )


_PAIR = ("sentence1", "sentence2")
_ENTAILMENT = ("entailment", "not_entailment")
GLUE_TASK_INFO: dict[str, GlueTaskInfo] = {
    t.name: t for t in (
        _task("cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), ("sentence",), "label",
              tsv_header=("source", "label", "original_label", "sentence")),
        _task("sst2", "SST-2", ("sentence",), ("negative", "positive"), ("sentence",), "label"),
        _task("mrpc", "MRPC", _PAIR, ("not_equivalent", "equivalent"), ("#1 String", "#2 String"), "Quality"),
        _task("stsb", "STS-B", _PAIR, None, _PAIR, "score"),
        _task("qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"),
              ("question1", "question2"), "is_duplicate"),
        _task("mnli", "MNLI", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
              _PAIR, "gold_label", mnli=True),
        _task("qnli", "QNLI", ("question", "sentence"), _ENTAILMENT, ("question", "sentence"), "label"),
        _task("rte", "RTE", _PAIR, _ENTAILMENT, _PAIR, "label"),
        _task("wnli", "WNLI", _PAIR, ("not_entailment", "entailment"), _PAIR, "label"),
    )
}
GLUE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
assert tuple(GLUE_TASK_INFO) == GLUE_TASKS

# Local file of each split; test labels are hidden by GLUE, so the test splits are hub-only.
_LOCAL_FILES = {"train": "train.tsv", "validation": "dev.tsv",
                "validation_matched": "dev_matched.tsv", "validation_mismatched": "dev_mismatched.tsv"}


def glue_task_info(task: str) -> GlueTaskInfo:
    """The task's info, or a ValueError listing the valid task names."""
    if task not in GLUE_TASK_INFO:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks: {', '.join(GLUE_TASKS)}")
    return GLUE_TASK_INFO[task]


def load_glue(task: str, split: str) -> datasets.Dataset:
    """One split of a GLUE task, with the hub ``nyu-mll/glue`` schema.

    Local (``ATB_DATA_DIR`` set): read from the original TSVs; a task/split that is not there (MNLI,
    QQP, QNLI train, every test split) raises :class:`DataUnavailableOffline`.  Otherwise the hub.
    """
    info = glue_task_info(task)
    if split not in info.splits:
        raise ValueError(f"unknown split {split!r} for GLUE {task}; valid splits: {', '.join(info.splits)}")
    root = data_dir()
    if root is None:
        return load_hub(HUB_GLUE, task, split=split)
    hub_hint = f'datasets.load_dataset("{HUB_GLUE}", "{task}", split="{split}")'
    if split in info.test_splits:
        raise unavailable(f"GLUE {task} {split}", hub_hint, "GLUE test labels are hidden, so "
                          f"{root / 'glue' / info.folder} holds train.tsv and dev.tsv only")
    path = local_file(root, f"glue/{info.folder}/{_LOCAL_FILES[split]}", f"GLUE {task} {split}", hub_hint)
    return datasets.Dataset.from_dict(read_glue_tsv(path, info), features=info.features(), split=split)


def read_glue_tsv(path: Path, info: GlueTaskInfo) -> dict[str, list]:
    """The columns (hub names, hub label ids) of one GLUE TSV file.

    Every row must have as many fields as the header (or as CoLA's fixed layout); a row that does not,
    or an unknown label, raises :class:`DataFormatError` with the file and the 1-based line number.
    Completely empty lines are skipped (the HF/GLUE csv readers skip them too).
    """
    columns: dict[str, list] = {c: [] for c in (*info.text_columns, "label", "idx")}
    # utf-8-sig: MRPC's header starts with a byte-order mark that would otherwise stick to "Quality".
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = (line.rstrip("\r\n") for line in f)
        numbered = enumerate(lines, start=1)
        header = info.tsv_header or _read_header(path, numbered, info)
        text_at = [header.index(name) for name in info.tsv_text]
        label_at = header.index(info.tsv_label)
        for lineno, line in numbered:
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise DataFormatError(f"{path}, line {lineno}: expected {len(header)} tab-separated fields "
                                      f"({', '.join(header)}), found {len(fields)}")
            for column, at in zip(info.text_columns, text_at):
                columns[column].append(fields[at])
            columns["label"].append(_label(fields[label_at], info, path, lineno))
            columns["idx"].append(len(columns["idx"]))
    return columns


def _read_header(path: Path, numbered, info: GlueTaskInfo) -> tuple[str, ...]:
    """The header line's field names, checked to hold the fields this task needs."""
    lineno, line = next(numbered, (1, ""))
    header = tuple(line.split("\t"))
    missing = [name for name in (*info.tsv_text, info.tsv_label) if name not in header]
    if missing:
        raise DataFormatError(f"{path}, line {lineno}: the header lacks the field(s) {', '.join(missing)} "
                              f"of GLUE {info.name} (header: {', '.join(header) or 'empty'})")
    return header


def _label(value: str, info: GlueTaskInfo, path: Path, lineno: int) -> int | float:
    """The hub label of a TSV label field: a float (STS-B), a class name or a class id as text."""
    try:
        if info.label_names is None:
            return float(value)
        if value in info.label_names:
            return info.label_names.index(value)
        if int(value) in range(info.num_labels):
            return int(value)
    except ValueError:
        pass
    expected = "a number" if info.label_names is None else (
        f"one of {', '.join(info.label_names)} or 0..{info.num_labels - 1}")
    raise DataFormatError(f"{path}, line {lineno}: label field {info.tsv_label!r} is {value!r}, expected {expected}")
