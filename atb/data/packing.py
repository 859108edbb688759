"""Documents of sentences → packed MLM pre-training examples.

AutoTinyBERT pre-trains with MLM only (no next-sentence prediction), so an example is simply
``[CLS] s1 s2 ... [SEP]``: consecutive sentences of one document, as many as fit in ``max_seq_len``.
Packing whole sentences keeps examples natural text; never crossing a document boundary keeps
unrelated texts out of one attention window.  A sentence longer than the budget on its own is cut
into budget-sized pieces (its last piece may be packed with the sentences that follow).
"""

from __future__ import annotations

import datasets
from transformers import PreTrainedTokenizerBase

EXAMPLE_FEATURES = datasets.Features({
    "input_ids": datasets.List(datasets.Value("int32")),
    "token_type_ids": datasets.List(datasets.Value("int8")),
    "attention_mask": datasets.List(datasets.Value("int8")),
})


def pack_document(sentences: list[list[int]], budget: int) -> list[list[int]]:
    """Greedy packing of one document's tokenised sentences into chunks of at most ``budget`` ids.

    A chunk is closed when the next sentence would not fit; over-long sentences are split into
    ``budget``-sized pieces.  Empty sentences are ignored; an empty document gives no chunk.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    for ids in sentences:
        while len(ids) > budget:  # an over-long sentence: emit full pieces, keep its tail
            if current:
                chunks.append(current)
                current = []
            chunks.append(ids[:budget])
            ids = ids[budget:]
        if current and len(current) + len(ids) > budget:
            chunks.append(current)
            current = []
        current = current + ids
    if current:
        chunks.append(current)
    return chunks


def _pack_batch(batch: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_seq_len: int) -> dict[str, list]:
    """``Dataset.map`` function: a batch of documents → its packed examples (any number of rows)."""
    documents = batch["sentences"]
    flat = [s for doc in documents for s in doc]
    ids = tokenizer(flat, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False, verbose=False)["input_ids"] if flat else []
    examples: list[list[int]] = []
    start = 0
    for doc in documents:
        examples += pack_document(ids[start:start + len(doc)], max_seq_len - 2)
        start += len(doc)
    input_ids = [[tokenizer.cls_token_id, *chunk, tokenizer.sep_token_id] for chunk in examples]
    return {
        "input_ids": input_ids,
        "token_type_ids": [[0] * len(x) for x in input_ids],
        "attention_mask": [[1] * len(x) for x in input_ids],
    }


def build_pretraining_examples(documents: datasets.Dataset, tokenizer: PreTrainedTokenizerBase,
                               max_seq_len: int = 128, num_proc: int | None = None) -> datasets.Dataset:
    """Packed, unpadded examples (``input_ids``, ``token_type_ids``, ``attention_mask``) of ``documents``.

    Each example holds at most ``max_seq_len`` ids including [CLS] and [SEP]; padding is left to the
    collator so a batch is only as long as its longest example.  The result is kept in memory: no
    cache file is written, so an interrupted build can never leave a partial dataset that a later run
    would silently reuse (the local corpus packs to ~20 M tokens, ~120 MB as int32/int8).
    """
    if max_seq_len < 3:
        raise ValueError(f"max_seq_len must leave room for [CLS], [SEP] and a token, got {max_seq_len}")
    if "sentences" not in documents.column_names:
        raise ValueError(f"documents need a 'sentences' column, got columns {documents.column_names}")
    return documents.map(
        _pack_batch, batched=True, remove_columns=documents.column_names, keep_in_memory=True,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_len": max_seq_len}, features=EXAMPLE_FEATURES,
        num_proc=num_proc, desc="packing pre-training examples",
    )
