"""The data layer: tokenizer, pre-training corpus, GLUE, SQuAD and the MLM collator.

Every loader returns a ``datasets.Dataset`` with the Hugging Face Hub's schema, read from the hub or,
when ``ATB_DATA_DIR`` is set, from the local copy described in ``shared/data/README.md`` (nothing is
downloaded then; missing data raises :class:`DataUnavailableOffline`).  Without ``ATB_DATA_DIR``, a hub
that cannot be reached raises :class:`HubUnavailable`, which says to set it (README, "Data").
"""

from .collator import MLMCollator
from .corpus import CORPORA, load_corpus, split_sentences
from .glue import GLUE_TASK_INFO, GLUE_TASKS, GlueTaskInfo, load_glue
from .packing import build_pretraining_examples
from .paths import DataFormatError, DataUnavailableOffline, HubUnavailable, data_dir
from .squad import SQUAD_VERSIONS, load_squad
from .tokenizer import load_tokenizer

__all__ = [
    "data_dir", "DataUnavailableOffline", "DataFormatError", "HubUnavailable",
    "load_tokenizer",
    "GLUE_TASKS", "GLUE_TASK_INFO", "GlueTaskInfo", "load_glue",
    "SQUAD_VERSIONS", "load_squad",
    "CORPORA", "load_corpus", "split_sentences", "build_pretraining_examples",
    "MLMCollator",
]
