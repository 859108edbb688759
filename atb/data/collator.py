"""Dynamic padding and BERT's masked-language-model corruption, in one collator.

``transformers.DataCollatorForLanguageModeling`` does the same 80/10/10 corruption, but draws its
random numbers from the global RNG or from its own seed only; the search and the tests need to pass
an explicit ``torch.Generator`` so that a batch's masks are a pure function of a seed.  The
corruption itself is a few tensor operations, written out here so the rule is visible and tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # the label of unselected positions; torch's cross-entropy ignores it
_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


@dataclass
class MLMCollator:
    """Pads a list of examples and masks them for MLM: ``input_ids, token_type_ids, attention_mask,
    labels`` as LongTensors.

    ``mlm_probability`` of the real (non-special, non-padding) tokens are selected; of those, 80 %
    become [MASK], 10 % a uniformly random vocabulary id and 10 % stay unchanged (BERT's rule: the
    model cannot tell which inputs are corrupted, so it must model every position).  ``labels`` is
    the original id at selected positions and -100 elsewhere.

    ``mlm_probability=0`` leaves the text as it is (every label -100): the inputs of knowledge distillation,
    which the official AutoTinyBERT code feeds unmasked (``masked_lm_prob 0``), so that the student and
    the teacher see real text, as they will when fine-tuned.

    ``generator`` (optional) makes the masks reproducible; ``None`` uses torch's global RNG (which is
    what you want with ``DataLoader(num_workers > 0)``: each worker process would otherwise copy the
    same generator state and mask identically).
    """

    tokenizer: PreTrainedTokenizerBase
    mlm_probability: float = 0.15
    pad_to_multiple_of: int | None = None
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1), got {self.mlm_probability}")
        if self.tokenizer.mask_token_id is None or self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs a [MASK] and a [PAD] token for MLM")
        self._special_ids = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)

    def __call__(self, examples: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        batch = self.pad(examples)
        batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], batch["attention_mask"])
        return batch

    def pad(self, examples: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest example (rounded up to ``pad_to_multiple_of``) with the tokenizer."""
        features = [{k: list(ex[k]) for k in _INPUTS if k in ex} for ex in examples]
        for f in features:
            f.setdefault("token_type_ids", [0] * len(f["input_ids"]))
            f.setdefault("attention_mask", [1] * len(f["input_ids"]))
        padded = self.tokenizer.pad(features, padding="longest", pad_to_multiple_of=self.pad_to_multiple_of,
                                    return_tensors="pt")
        return {k: padded[k].long() for k in _INPUTS}

    def mask_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(corrupted input ids, labels) of a padded batch; ``input_ids`` itself is not modified."""
        if self.mlm_probability == 0.0:
            return input_ids.clone(), torch.full_like(input_ids, IGNORE_INDEX)
        g = self.generator
        maskable = (attention_mask == 1) & ~torch.isin(input_ids, self._special_ids)
        probability = torch.full(input_ids.shape, self.mlm_probability) * maskable
        selected = torch.bernoulli(probability, generator=g).bool()
        labels = torch.where(selected, input_ids, IGNORE_INDEX)

        action = torch.rand(input_ids.shape, generator=g)  # < 0.8: [MASK]; 0.8-0.9: random; else keep
        random_ids = torch.randint(len(self.tokenizer), input_ids.shape, generator=g)
        corrupted = torch.where(selected & (action < 0.8), self.tokenizer.mask_token_id, input_ids)
        corrupted = torch.where(selected & (action >= 0.8) & (action < 0.9), random_ids, corrupted)
        return corrupted, labels
