"""atb: a readable reproduction of AutoTinyBERT (Yin et al., ACL 2021).

Importing the package registers the standalone ``atb-bert`` model family with the ``transformers``
Auto classes, so exported sub-models load with ``AutoModel*.from_pretrained``.
"""

from .modeling import (
    AtbBertConfig,
    AtbBertForMaskedLM,
    AtbBertForQuestionAnswering,
    AtbBertForSequenceClassification,
    AtbBertModel,
    register_auto_classes,
)
from .space import Arch, Range, SearchSpace
from .superbert import SuperBert, SuperBertConfig, SuperBertOutput
from .extract import export, extract, from_bert, to_bert

register_auto_classes()

from . import autobert_zero, efficientbert  # noqa: E402, F401  (register atb-autobert-zero, atb-efficientbert too)

__all__ = [
    "Arch", "Range", "SearchSpace",
    "SuperBert", "SuperBertConfig", "SuperBertOutput",
    "AtbBertConfig", "AtbBertModel", "AtbBertForMaskedLM", "AtbBertForSequenceClassification",
    "AtbBertForQuestionAnswering",
    "extract", "export", "to_bert", "from_bert",
]
__version__ = "0.1.0"
