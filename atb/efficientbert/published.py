"""The published EfficientBERT beside BERT-base: its size and CPU speed, the paper's "6.9x smaller, 4.4x faster".

    python -m atb.efficientbert.published [--out results/mini/efficientbert_published.json]

Both are measured here, never copied: the parameters are counted on the models themselves (both with BERT's pooler,
neither with EfficientBERT's distillation-only ``fit_dense``), and the latency is timed with the study's protocol
(:class:`atb.latency.Protocol`: the paper's CPU setting, 1 thread, batch 1, sequence 128), the two models in turns
so that a change of the machine's load affects both alike (:func:`atb.latency.time_interleaved`). The weights are
random: size and speed do not depend on them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..latency import Protocol, build_model, example_inputs, machine_info, num_threads, time_interleaved
from ..records import write_json_atomic
from ..zoo import BERT_BASE
from .modeling import EfficientBertModel, published_config

# What the paper reports for the published model against BERT-base (EfficientBERT, Table 1).
PAPER = {"params_ratio": 6.9, "speedup": 4.4}


def measure_published(protocol: Protocol | None = None) -> dict[str, Any]:
    """``{"params", "bert_base_params", "params_ratio", "latency_ms", "bert_base_ms", "speedup", "protocol",
    "machine", "paper"}`` for the published EfficientBERT (:func:`~.modeling.published_config`) against BERT-base,
    latencies summarised over the protocol's runs by its statistic (median or minimum)."""
    protocol = protocol or Protocol()
    models = {"efficientbert": EfficientBertModel(published_config()).eval(),
              "bert-base": build_model(BERT_BASE, "atb", pooler=True).eval()}
    with num_threads(protocol.threads):
        times = time_interleaved(models, example_inputs(protocol), protocol.warmup, protocol.runs)
    ms = {name: protocol.summary(tuple(1000 * s for s in t[protocol.clock])) for name, t in times.items()}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    return {"params": params["efficientbert"], "bert_base_params": params["bert-base"],
            "params_ratio": params["bert-base"] / params["efficientbert"],
            "latency_ms": ms["efficientbert"], "bert_base_ms": ms["bert-base"],
            "speedup": ms["bert-base"] / ms["efficientbert"], "protocol": protocol.as_dict(),
            "machine": machine_info(protocol.threads), "paper": dict(PAPER)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the record here (JSON)")
    args = parser.parse_args(argv)
    record = measure_published()
    print(json.dumps({k: v for k, v in record.items() if k not in ("protocol", "machine")}, indent=1))
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
