"""Progress bars a reader of an executed notebook can live with: one bar per step of the study.

Every long loop of ``atb`` reports through :func:`bar` (``tqdm.auto``: a widget in Jupyter, text elsewhere). Three
rules keep executed notebooks short without hiding anything of value:

* **Nested bars stay silent.** A loop that runs inside another one's bar (the fine-tunings of a rerank, the warm-up
  of a candidate) does not open a second bar: the outer bar is the step of the study the reader follows.
* **Library bars stay silent inside a step.** ``datasets``' ``map`` and ``transformers``' weight loading and
  saving draw a bar each time (hundreds per notebook); :func:`libraries_quiet` turns them off around such work.
* **Worker processes stay silent.** Parallel fine-tunings report to the parent's single bar
  (:func:`atb.finetune.run_jobs`); their own bars would reach the notebook as text interleaved mid-line from
  several processes. :func:`silence_this_process` is the workers' initializer.

Errors and warnings are not progress and are never silenced here.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

_open = 0  # bars of this process that are open now
_silenced = False  # a worker process: never draws bars


class _Bar(tqdm):
    """A ``tqdm`` that counts itself open (so bars opened inside it stay silent) until it is closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        global _open
        super().__init__(*args, **kwargs)
        self._counted = not self.disable
        _open += self._counted

    def close(self) -> None:
        global _open
        if getattr(self, "_counted", False):
            self._counted = False
            _open -= 1
        super().close()


def bar(iterable: Iterable | None = None, *, desc: str, disable: bool = False, **kwargs: Any) -> tqdm:
    """A progress bar for ``iterable`` (or ``total=``) named ``desc``, disabled when asked, in a worker process, or
    inside another open bar of this process (see the module docstring)."""
    return _Bar(iterable, desc=desc, disable=disable or _silenced or _open > 0, **kwargs)


def _library_bars(datasets_on: bool, transformers_on: bool) -> tuple[bool, bool]:
    """Switch ``datasets``' and ``transformers``' own progress bars (their global switches); returns how they were."""
    import datasets
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    were = ds_logging.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    (datasets.enable_progress_bars if datasets_on else datasets.disable_progress_bars)()
    (hf_logging.enable_progress_bar if transformers_on else hf_logging.disable_progress_bar)()
    return were


def silence_this_process() -> None:
    """Draw no bar in this process from now on, ours or the libraries' (``datasets``' ``map``, ``transformers``'
    weight loading): parallel workers, whose jobs the parent's bar counts."""
    global _silenced
    _silenced = True
    _library_bars(False, False)


@contextlib.contextmanager
def libraries_quiet() -> Iterator[None]:
    """``datasets``' and ``transformers``' progress bars off inside, restored as they were afterwards."""
    were = _library_bars(False, False)
    try:
        yield
    finally:
        _library_bars(*were)


class _DropLoadReport(logging.Filter):
    """Drops ``transformers``' load report and lets every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def no_load_report() -> Iterator[None]:
    """``transformers``' load report (a table of every key the checkpoint and the model do not share) dropped inside,
    for loads whose differing keys are expected: the caller asks for ``output_loading_info`` and warns on the rest. A
    filter, not the logger's level, which ``transformers`` reads for other checks."""
    loader, no_report = logging.getLogger("transformers.modeling_utils"), _DropLoadReport()
    loader.addFilter(no_report)
    try:
        yield
    finally:
        loader.removeFilter(no_report)


def is_drawing() -> bool:
    """Whether a new bar would be drawn here (no bar open, not a silenced worker)."""
    return not _silenced and _open == 0
