"""Benchmark the SuperBERT against the obvious alternatives, measured side by side in one run on CPU.

(a) One-shot training step of a SuperBERT sub-model (fwd + bwd + AdamW over the whole SuperBERT, MLM
    logits only at masked positions) against ``transformers.BertForMaskedLM`` of the same shape, batch
    and sequence length (full-vocabulary logits at every position). Goal: >= 1.5x faster.
(b) Inference latency of a sliced sub-model inside the paper-size SuperBERT against its extracted
    standalone model, with the paper's protocol (1 thread, batch 1, sequence 128). Goal: <= 1.10x.

Timings are interleaved (A, B, A, B, ...) so drift of the machine affects both sides alike; medians
are reported. Usage: ``python benchmarks/bench_superbert.py [--quick] [--out results/mini/bench_superbert.json]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from atb.records import write_json_atomic
from atb import Arch, SearchSpace, SuperBert, SuperBertConfig, extract


def interleaved_medians(fns: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def mlm_batch(batch: int, seq: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, 30000, (batch, seq), generator=g)
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(batch, seq, generator=g) < 0.15
    labels[chosen] = ids[chosen]
    ids[chosen] = 103  # [MASK]
    return ids, torch.ones_like(ids), labels


def bench_training_step(arch: Arch, space: SearchSpace, batch: int, seq: int, repeats: int) -> dict:
    torch.manual_seed(0)
    supernet = SuperBert(SuperBertConfig.from_space(space, hidden_dropout_prob=0.0,
                                                    attention_probs_dropout_prob=0.0)).train()
    hf = BertForMaskedLM(BertConfig(hidden_size=arch.hidden, num_hidden_layers=arch.layers,
                                    num_attention_heads=arch.heads, intermediate_size=arch.ffn,
                                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).train()
    ids, mask, labels = mlm_batch(batch, seq)
    opt_super = torch.optim.AdamW(supernet.parameters(), lr=1e-4, weight_decay=0.01)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.01)

    def step_super():
        opt_super.zero_grad(set_to_none=True)
        supernet(ids, attention_mask=mask, labels=labels, arch=arch, output_attention_scores=False).loss.backward()
        opt_super.step()

    def step_hf():
        opt_hf.zero_grad(set_to_none=True)
        hf(ids, attention_mask=mask, labels=labels).loss.backward()
        opt_hf.step()

    t = interleaved_medians({"superbert": step_super, "hf_bert": step_hf}, repeats=repeats, warmup=2)
    tokens = batch * seq
    return {
        "arch": str(arch), "batch": batch, "seq_len": seq, "threads": torch.get_num_threads(),
        "superbert_tokens_per_s": tokens / t["superbert"], "hf_bert_tokens_per_s": tokens / t["hf_bert"],
        "speedup": t["hf_bert"] / t["superbert"],
    }


def bench_sliced_vs_extracted(archs: dict[str, Arch], repeats: int) -> list[dict]:
    torch.manual_seed(0)
    rows = []
    ids = torch.randint(999, 30000, (1, 128))
    mask = torch.ones_like(ids)
    for objective, arch in archs.items():
        supernet = SuperBert(SuperBertConfig.from_space(SearchSpace.preset("paper", objective))).eval()
        standalone = extract(supernet, arch).eval()
        with torch.inference_mode():
            t = interleaved_medians({
                "sliced": lambda: supernet(ids, attention_mask=mask, arch=arch, output_attention_scores=False),
                "extracted": lambda: standalone.bert(ids, attention_mask=mask),
            }, repeats=repeats, warmup=5)
        rows.append({"objective": objective, "arch": str(arch), "sliced_ms": 1e3 * t["sliced"],
                     "extracted_ms": 1e3 * t["extracted"], "ratio": t["sliced"] / t["extracted"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for a smoke check)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    repeats = 3 if args.quick else 15

    train = bench_training_step(Arch(4, 256, 1024, 4, 256), SearchSpace.preset("mini", "mlm"),
                                batch=16, seq=128, repeats=repeats)
    torch.set_num_threads(1)
    latency = bench_sliced_vs_extracted({"mlm": Arch(3, 320, 608, 4, 256), "kd": Arch(4, 256, 480, 12, 192)},
                                        repeats=10 * repeats)

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"\n(a) one-shot training step, arch {train['arch']}, batch {train['batch']} x {train['seq_len']}, "
          f"{train['threads']} threads (goal >= 1.5x)")
    print("| model | tokens/s |\n|---|---|")
    print(f"| SuperBERT sub-model (mini space) | {train['superbert_tokens_per_s']:.0f} |")
    print(f"| transformers BertForMaskedLM | {train['hf_bert_tokens_per_s']:.0f} |")
    print(f"speedup: {train['speedup']:.2f}x")
    print("\n(b) inference latency, paper-size SuperBERT, 1 thread, batch 1, seq 128 (goal <= 1.10x)")
    print("| space | arch | sliced ms | extracted ms | ratio |\n|---|---|---|---|---|")
    for r in latency:
        print(f"| {r['objective']} | {r['arch']} | {r['sliced_ms']:.2f} | {r['extracted_ms']:.2f} | {r['ratio']:.3f} |")
    if args.out:
        write_json_atomic(args.out, {"training_step": train, "sliced_vs_extracted": latency,
                                   "machine": platform.processor() or platform.machine(),
                                   "torch": torch.__version__})


if __name__ == "__main__":
    main()
