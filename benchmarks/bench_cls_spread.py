"""How much does a model's [CLS] vector vary between inputs? A diagnostic for why the cut loses STS-B (issue #23,
item 5).

The developed sub-models of notebook 04 learn SST-2 but collapse on STS-B: fine-tuned at the mini budget they predict
nearly the mean similarity for every pair, while the teacher they were cut from reaches 70-80 Spearman. BERT's
sequence heads read the final-layer [CLS] vector (through the pooler), so a [CLS] that is nearly the same vector for
every input leaves the regression head little to work with. This benchmark encodes STS-B dev pairs with each model,
fine-tuning nothing, and reports per model

* ``cls_cosine``: the mean cosine similarity between the final-layer [CLS] vectors of different inputs (1: the same
  direction for every input);
* ``cls_spread``: the mean distance of a [CLS] vector from their mean, relative to the mean's norm;
* the same two for the mean of the final layer over real tokens (``mean_cosine``, ``mean_spread``);

for the teacher, the developed models and their untrained controls. Usage: ``python benchmarks/bench_cls_spread.py
[--scale mini] [--pairs 200] [--out results/mini/bench_cls_spread.json]``
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from transformers import AutoModel

from atb.controls import CONTROL_SEED
from atb.data import load_glue, load_tokenizer
from atb.develop import teacher_model
from atb.layout import Layout
from atb.records import machine_info, write_json_atomic


def spread(vectors: np.ndarray) -> dict[str, float]:
    """``{"cosine", "spread"}`` of a set of vectors (one per row): the mean cosine similarity over distinct pairs, and
    the mean distance from their mean relative to the mean's norm."""
    if len(vectors) < 2:
        raise ValueError(f"spread needs at least two vectors, got {len(vectors)}")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = (unit @ unit.T)[np.triu_indices(len(vectors), 1)].mean()
    centre = vectors.mean(0)
    return {"cosine": float(cosine),
            "spread": float(np.linalg.norm(vectors - centre, axis=1).mean() / np.linalg.norm(centre))}


@torch.no_grad()
def encode(model_dir: str, batch: dict) -> dict[str, float]:
    """The [CLS] and mean-pooled spreads of ``model_dir``'s final layer over ``batch`` (fp32, eval mode)."""
    hidden = AutoModel.from_pretrained(model_dir).eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    cls, pooled = spread(hidden[:, 0].numpy()), spread(mean.numpy())
    return {"cls_cosine": cls["cosine"], "cls_spread": cls["spread"],
            "mean_cosine": pooled["cosine"], "mean_spread": pooled["spread"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--pairs", type=int, default=200, help="STS-B dev pairs encoded (the first ones)")
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    layout = Layout(args.scale)
    developed = layout.read_record("04_further_training.json")["models"]
    dev = load_glue("stsb", "validation").select(range(args.pairs))
    batch = load_tokenizer()(list(dev["sentence1"]), list(dev["sentence2"]), truncation=True, max_length=128,
                             padding=True, return_tensors="pt")
    teacher = teacher_model(args.scale)
    rows = {"teacher": {"arch": teacher["arch"], **encode(teacher["model_dir"], batch)}}
    for name, model in developed.items():
        rows[name] = {"arch": model["arch"], **encode(model["model_dir"], batch)}
        control = layout.control(model["arch"], CONTROL_SEED)
        if (control / "config.json").exists():
            rows[f"control {model['arch']}"] = {"arch": model["arch"], **encode(str(control), batch)}
    record = {"scale": args.scale, "pairs": args.pairs, "split": "stsb validation (first pairs)",
              "machine": machine_info(), "models": rows}
    for name, r in rows.items():
        print(f"{name:32s} {r['arch']:18s} CLS cosine {r['cls_cosine']:.3f} spread {r['cls_spread']:.3f} | "
              f"mean-pooled cosine {r['mean_cosine']:.3f} spread {r['mean_spread']:.3f}")
    if args.out:
        write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()
