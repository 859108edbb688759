"""AutoBERT-Zero (Gao et al., AAAI 2022) on atb's pipeline: the backbone searched from primitive operations.

* ``graph``: attention computation graphs of primitive operations (typing, validity, canonical form, formulas,
  evaluation with padding masks, random graphs and mutation);
* ``space``: whole backbones: one attention graph or convolution kernel per layer; the standard and published ones;
* ``conv``: lightweight / dynamic convolutions, and BIWS kernel sharing by centre-cropping;
* ``modeling``: the standalone AutoBERT-Zero, registered with the ``transformers`` Auto classes on import;
* ``supernet``: the bi-branch weight-sharing (BIWS) supernet (``extract`` cuts a candidate out), its warm start;
* ``latency``: the search's latency constraint, a table of layer latencies timed with the study's protocol;
* ``search``: OP-NAS (evolution with UCB operation priorities) and plain random mutation, resumable;
* ``study``: notebook 09's steps (warm-up, searches, development with untrained controls, the published pattern).
"""

from .modeling import (
    AutoBertZeroConfig,
    AutoBertZeroForQuestionAnswering,
    AutoBertZeroForSequenceClassification,
    AutoBertZeroModel,
    published_config,
    register_auto_classes,
)

register_auto_classes()

__all__ = ["AutoBertZeroConfig", "AutoBertZeroModel", "AutoBertZeroForSequenceClassification",
           "AutoBertZeroForQuestionAnswering", "published_config"]
