"""The latency constraint of AutoBERT-Zero's search: a lookup table of layer latencies.

A candidate's encoder costs the sum of its layers' costs. Each distinct layer spec (an attention graph, a
convolution kernel) is timed once, alone, with the study's protocol (:class:`atb.latency.Protocol`: the paper's
CPU setting, 1 thread, batch 1, 128 tokens), **in turns with BERT's standard attention layer**, and stored as its
ratio to that layer: a ratio measured in turns does not move when the machine's load does (the interleaving of
:func:`atb.latency.time_interleaved`). A candidate's latency is then ``sum of ratios x the standard layer's ms``,
and the search's constraint is ``latency <= budget x the standard-attention backbone's`` (``budget`` 1: no slower
than the BERT-style backbone of the same shape, the baseline the searched hybrid is compared with).

The table lives in a JSON file next to the search logs (written atomically after every new entry), so a
resumed search sees the same latencies. A table measured on another machine or with another protocol is not
reused. Embeddings and pooler are the same for every candidate and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..latency import Protocol, machine_info, num_threads, same_machine, time_interleaved
from ..records import write_json_atomic
from .modeling import AutoBertZeroConfig, AutoBertZeroLayer
from .space import AttentionLayer, LayerSpec, parse_layer
from .graph import STANDARD

REFERENCE = str(AttentionLayer(STANDARD))  # every layer is timed in turns with BERT's attention layer


class _LayerAlone(nn.Module):
    """One layer on fixed hidden states, called like a model (``ids, attention_mask=``) by the timing loop."""

    def __init__(self, layer: AutoBertZeroLayer, hidden: torch.Tensor):
        super().__init__()
        self.layer, self.hidden = layer.eval(), hidden

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.layer(self.hidden, attention_mask.bool())


class LayerLatencyTable:
    """``table(spec)``: the latency (ms) of one layer of ``spec`` at ``config``'s width; ``table.candidate(c)``: a
    candidate's encoder. Entries are measured on first use and kept in ``path``."""

    def __init__(self, config: AutoBertZeroConfig, protocol: Protocol | None = None, path: str | Path | None = None):
        self.config, self.protocol = config, protocol or Protocol()
        self.path = Path(path) if path is not None else None
        self.header = {"hidden": config.hidden_size, "heads": config.num_attention_heads,
                       "ffn": config.intermediate_size, "conv_type": config.conv_type,
                       "protocol": self.protocol.as_dict()}
        self.machine = machine_info(self.protocol.threads)
        self.ratios: dict[str, float] = {}
        self.reference_ms: float | None = None
        if self.path is not None and self.path.exists():
            saved = json.loads(self.path.read_text())
            if saved.get("header") == self.header and same_machine(saved.get("machine", {}), self.machine):
                self.ratios, self.reference_ms = saved["ratios"], saved["reference_ms"]

    def _time(self, spec: str) -> None:
        g = torch.Generator().manual_seed(0)
        p = self.protocol
        hidden = torch.randn(p.batch_size, p.seq_len, self.config.hidden_size, generator=g)
        mask = torch.ones(p.batch_size, p.seq_len, dtype=torch.long)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            models = {name: _LayerAlone(AutoBertZeroLayer(self.config, parse_layer(name)), hidden)
                      for name in dict.fromkeys((REFERENCE, spec))}
        with num_threads(p.threads):
            times = time_interleaved(models, (mask, mask), p.warmup, p.runs)
        ms = {name: p.summary(tuple(1000 * s for s in t[p.clock])) for name, t in times.items()}
        if self.reference_ms is None:
            self.reference_ms = ms[REFERENCE]
            self.ratios[REFERENCE] = 1.0
        self.ratios[spec] = ms[spec] / ms[REFERENCE]
        if self.path is not None:
            write_json_atomic(self.path, {"header": self.header, "machine": self.machine,
                                          "reference": REFERENCE, "reference_ms": self.reference_ms,
                                          "ratios": self.ratios})

    def __call__(self, spec: LayerSpec | str) -> float:
        key = str(spec)
        if key not in self.ratios:
            self._time(key)
        return self.ratios[key] * self.reference_ms

    def candidate(self, candidate: Sequence[LayerSpec | str]) -> float:
        """The encoder's latency (ms): the sum of its layers'."""
        return sum(self(spec) for spec in candidate)

    def describe(self) -> dict:
        return {"name": "layer-latency-table", **self.header}
