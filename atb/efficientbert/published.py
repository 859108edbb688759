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

import torch

from ..latency import Protocol, build_model, example_inputs, machine_info, num_threads, time_interleaved
from ..records import write_json_atomic
from ..zoo import BERT_BASE
from .modeling import EfficientBertModel, published_config

# What the paper reports for the published model against BERT-base (EfficientBERT, Table 1).
PAPER = {"params_ratio": 6.9, "speedup": 4.4}


def measure_beside_bert_base(models: dict[str, torch.nn.Module], protocol: Protocol | None = None
                             ) -> dict[str, dict[str, float]]:
    """Each model's parameters, latency and speedup over BERT-base, all timed in turns in one run with the study's
    protocol (the same measurement for the published model and for the models notebook 08 develops):
    ``{name: {"params", "latency_ms", "speedup", "params_ratio"}}`` plus ``"bert-base"``, and ``"protocol"`` /
    ``"machine"``."""
    protocol = protocol or Protocol()
    timed = {**models, "bert-base": build_model(BERT_BASE, "atb", pooler=True).eval()}
    with num_threads(protocol.threads):
        times = time_interleaved(timed, example_inputs(protocol), protocol.warmup, protocol.runs)
    ms = {name: protocol.summary(tuple(1000 * s for s in t[protocol.clock])) for name, t in times.items()}
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in timed.items()}
    out: dict[str, Any] = {name: {"params": params[name], "latency_ms": ms[name],
                                  "speedup": ms["bert-base"] / ms[name],
                                  "params_ratio": params["bert-base"] / params[name]} for name in timed}
    return {**out, "protocol": protocol.as_dict(), "machine": machine_info(protocol.threads)}


def measure_published(protocol: Protocol | None = None) -> dict[str, Any]:
    """``{"params", "bert_base_params", "params_ratio", "latency_ms", "bert_base_ms", "speedup", "protocol",
    "machine", "paper"}`` for the published EfficientBERT (:func:`~.modeling.published_config`) against BERT-base,
    latencies summarised over the protocol's runs by its statistic (median or minimum)."""
    m = measure_beside_bert_base({"efficientbert": EfficientBertModel(published_config()).eval()}, protocol)
    e, b = m["efficientbert"], m["bert-base"]
    return {"params": e["params"], "bert_base_params": b["params"], "params_ratio": e["params_ratio"],
            "latency_ms": e["latency_ms"], "bert_base_ms": b["latency_ms"], "speedup": e["speedup"],
            "protocol": m["protocol"], "machine": m["machine"], "paper": dict(PAPER)}


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
