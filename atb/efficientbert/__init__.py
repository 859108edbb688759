"""EfficientBERT (Dong et al., Findings of EMNLP 2021) on atb's pipeline: the FFN searched as a math expression.

* ``expression``: the search space (expressions, sizes, validity, canonical hashing, mutation);
* ``ffn``: the elastic expression FFN a supernet layer holds, and the standalone one cut out of it;
* ``modeling``: the standalone EfficientBERT, registered with the ``transformers`` Auto classes on import;
* ``supernet``: the weight-sharing supernet (every candidate a sub-network; ``extract`` cuts it out), its warm start,
  and the fixed supernet the warm-up trains;
* ``search``: the three-stage search (LaNAS-style sampler or evolution) under a parameter range, resumable;
* ``study``: notebook 08's steps (warm start, warm-up, search, rerank, development with untrained controls).
  Warm-up distillation and the KD proxy are the shared :mod:`atb.distill`, the rerank :mod:`atb.rerank`;
* ``published``: the published model's size and speed beside BERT-base.
"""

from .expression import BERT_FFN, PUBLISHED, Expr, LayerFFN, function_hash, is_valid, mutate, parse, problems
from .ffn import ExpressionFFN
from .modeling import (
    EfficientBertConfig,
    EfficientBertForQuestionAnswering,
    EfficientBertForSequenceClassification,
    EfficientBertModel,
    published_config,
    register_auto_classes,
)

register_auto_classes()

__all__ = [
    "BERT_FFN", "PUBLISHED", "Expr", "LayerFFN", "function_hash", "is_valid", "mutate", "parse", "problems",
    "ExpressionFFN", "EfficientBertConfig", "EfficientBertModel", "EfficientBertForSequenceClassification",
    "EfficientBertForQuestionAnswering", "published_config",
]
