"""Warm start: a SuperPLM initialised from a pretrained BERT, rewired so that every slice keeps what matters.

At mini scale a SuperPLM trained from scratch transfers nothing: its sub-models fine-tune like random
initialisations. Starting the SuperPLM from a pretrained model whose shape is the space's largest
architecture (here the offline MiniLM teacher, 6 layers / 384 / FFN 1536 / 12 heads) changes that: every
sub-model starts as a *slice* of a network that already models language.

A slice of a pretrained model is, however, an arbitrary one: the SuperBERT keeps the first ``d_f`` FFN
neurons, the first ``h`` heads (MLM space) or the first ``d_qkv / 12`` dimensions of every head (KD space),
and the first ``d_m`` hidden dimensions, and pretraining put nothing special in front. **Importance-based
rewiring** (DynaBERT, Hou et al., NeurIPS 2020, §2.1) fixes this before the copy: it scores every unit and
permutes the weights so that units come in order of decreasing importance. A permutation of hidden units,
applied to the weights that write them and to those that read them, leaves the network's function
unchanged, so the full rewired model *is* the source model; only what the top-left slices keep changes.

The units and the permutations (per layer ``l``; rows = outputs of a Linear, columns = inputs):

========================  ========================================================================
unit                      weights permuted together
========================  ========================================================================
FFN neuron ``j``          row ``j`` of ``intermediate.dense`` (and its bias), column ``j`` of
                          ``output.dense``
value dimension ``(h,d)`` row of ``value`` (and bias), column of ``attention.output.dense``
query/key dim ``(h,d)``   the same row of ``query`` and of ``key`` (and biases): the score
                          ``q·k = Σ_d q_d k_d`` is a sum over these pairs, so any order of the pairs
                          gives the same scores
head ``h``                its block of rows of Q/K/V and block of columns of ``attention.output.dense``
hidden dimension ``i``    one permutation for the whole residual stream: columns of the three
                          embedding tables, every LayerNorm, columns of every Linear that reads the
                          stream (Q, K, V, ``intermediate.dense``, the MLM transform), rows of every
                          Linear that writes it (``attention.output.dense``, ``output.dense``, the MLM
                          transform). LayerNorm's mean and variance do not depend on the order
                          of the features, so this too leaves the function unchanged
========================  ========================================================================

What is ordered depends on how the SuperBERT slices Q/K/V (``atb.elastic``):

* **KD space** (head-wise slicing, 12 heads always kept): the *dimensions within each head* are ordered
  (query/key pairs and value dimensions separately, since a slice keeps the first ``d_qkv / 12`` of each).
  Heads are **not** reordered: a slice keeps all of them, and head ``i`` of the student is matched to head
  ``i`` of the teacher by the KD attention loss, so moving heads would break that correspondence.
* **MLM space** (contiguous slicing, the first ``h`` heads of fixed size): *heads* are ordered; dimensions
  within a head are never sliced and stay as they are.

**Importance** (:func:`taylor_importance`), DynaBERT's first-order Taylor score: the importance of a unit is
``|∂L/∂m|`` for a gate ``m`` (= 1) on the unit's output, i.e. the first-order estimate of how much the loss
changes when the unit is removed. No gate is needed to compute it: for a unit read by a Linear ``W``,
``∂L/∂m = Σ g ⊙ W`` over the unit's columns of ``W`` (``g`` its gradient) — which is exactly DynaBERT's
``|Σ grad · weight|``. Per unit: FFN neuron = its column of ``output.dense``; value dimension = its column
of ``attention.output.dense``; head = the sum over its value dimensions (= the head-mask gradient of
Michel et al. 2019, which DynaBERT uses); query/key pair = its row of ``query`` with the bias (the
identical number is obtained from ``key``); hidden dimension = ``Σ (g_γ γ + g_β β)`` over every LayerNorm
(a gate on the residual stream after each LayerNorm). Scores are summed over batches as ``|·|`` per batch,
as in DynaBERT's code.

*Which loss.* DynaBERT scores a fine-tuned model on its task loss. Here the goal is that slices keep as
much of the *source's function* as possible, which is what the KD objective measures; but the KD loss of
the source against its own outputs is exactly zero with a zero gradient (the source is its own optimum),
so every first-order score would vanish. The loss used is therefore the KD loss (the MSE of the pre-softmax
attention scores and hidden states, :func:`atb.objectives.masked_mse` over real tokens, ``W_fit`` =
identity) against the source's own outputs **plus seeded Gaussian noise**. Its gradient is a random
projection ``εᵀJ`` of the outputs' Jacobian, so the accumulated ``|∂L/∂m|`` estimates ``‖∂outputs/∂m‖``:
to second order (Gauss–Newton), the square root of how much the KD loss rises when the unit is removed
(the Fisher information of the KD loss). ``draws`` noise draws per batch trade time for less variance
(two seeds' scores of one layer's FFN neurons, 16 batches of 8 x 128 tokens: Spearman 0.64–0.78).
The MLM loss was not used: the offline MiniLM has no trained MLM head (its held-out MLM loss through the
tied decoder is 10.9 nats, no better than a uniform guess), so its gradient says nothing about the encoder.

*Which outputs.* A sub-model of depth ``d`` ends at layer ``d`` and is scored there, so every depth of the
SuperBERT's space is an output: the loss is the sum over those depths of the noisy KD loss of layer
``d``'s hidden state and scores (one forward pass at full width; independent noise per depth), and a
unit's score covers all sub-model depths at once. Scoring the last layer only would rank the units of
layer 4 by what they do for layers 5 and 6, which a 4-layer slice does not have. Everything is
deterministic: fixed batches, noise from a seeded ``torch.Generator``, ties broken by a stable sort.

:func:`magnitude_importance` is the data-free fallback (``importance="magnitude"``): the L2 norm of the
same weights (for query/key pairs the product of the query and key rows' norms). It ignores what the rest
of the network does with a unit; measured below, it helps less than the Taylor scores and, for the
query/key dimensions, not at all.

**The copy** (:func:`warm_start`). The source is converted to a SuperBERT of its own shape
(:func:`source_supernet`), rewired there (its full output is then the source's, tested), and the target's
weights are that SuperBERT's slice at the target's largest architecture, read with the very slicing code
of ``SuperBert.active_state_dict``: the first ``l`` layers, the first ``d_m`` hidden dimensions, ``d_f``
neurons, and Q/K/V sliced head-wise (KD) or by whole heads (MLM). Hence the requirements, each checked with
an error naming the field: ``layers``, ``hidden``, ``ffn`` ≤ the source's; KD space: ``heads`` = the
source's and ``qkv / heads`` ≤ its head size; MLM space: ``qkv / heads`` (the fixed head size) = the
source's head size and ``heads`` ≤ its heads. The paper's MLM spaces fix the head size at 64 while MiniLM's
heads have 32 dimensions; two 32-d heads cannot be merged into one 64-d head without changing the function
(a softmax over the sum of two heads' scores is not the sum of two softmaxes), so such a space is refused:
warm-start MLM spaces need ``head_size = 32`` (heads 1–12 of 32 dims).

What else is copied: the embeddings (word rows all, position / segment rows as many as the target has),
their LayerNorm, every layer's LayerNorms and biases. The **pooler** is dropped: a SuperBERT
(``AtbBertForMaskedLM``) has none, and the fine-tuning heads of this project initialise theirs afresh
for every model alike. The **MLM head**: a source with a trained one (``BertForMaskedLM``) gives it
(rewired); the offline MiniLM has none, so the target keeps its own initialised transform (dense normal(0,
0.02), LayerNorm 1/0, bias 0) and its decoder is, as always in ``atb``, tied to the (copied, rewired) word
embeddings: an MLM SuperPLM warm-started from MiniLM still has to learn its head.

The target's config records the warm start (``config.warm_start``: source, rewiring, importance, seed
and ``hidden_order``, the source hidden dimension each target dimension came from). With a KD objective
whose teacher is the source, :func:`init_fit_from_warm_start` sets ``W_fit`` to the permutation that maps
every student dimension back to its teacher dimension, so that the KD loss of the full warm-started model
starts at zero instead of pulling the copied weights towards a random projection.

**Measured** (held-out KD loss = attention MSE + hidden MSE of ``atb.objectives.KDObjective``, ``W_fit``
inherited as above, WikiText-2 validation, 64 x 128 tokens; a SuperBERT whose largest sub-model is MiniLM;
Taylor scores from the default sample, 8 x 8 x 128 tokens of the pre-training corpus, 24 s on 2 busy cores):

====================  =====  =========  ======  ====================================================
slice                 plain  magnitude  Taylor  compared with
====================  =====  =========  ======  ====================================================
6/256/768/12/192      2.27   2.09       1.49    the teacher (MiniLM) itself
6/192/512/12/96       2.58   2.34       1.96    the teacher
6/128/256/12/96       2.64   2.44       2.15    the teacher
4/256/1024/12/192     4.53   4.60       2.35    MiniLM cut after 4 layers (what the slice is a slice of)
3/272/1440/12/288     4.12   3.58       1.90    MiniLM cut after 3 layers
2/256/768/12/192      10.50  9.39       4.19    MiniLM cut after 2 layers
1/320/1504/12/276     7.92   4.61       4.88    MiniLM cut after 1 layer
====================  =====  =========  ======  ====================================================

Taylor rewiring beat the plain slices on every one; magnitude lost to them once (4/256/1024) and beat
Taylor only on the 1-layer slice. Magnitude has the lower
*hidden* term at depth 6 (0.07–0.10 against Taylor's 0.11–0.14 and plain's 0.17–0.20: it keeps the
hidden dimensions of largest output, which the inherited ``W_fit`` rewards) but the higher attention term.
Slices shallower than the teacher are compared with the cut MiniLM because against the teacher's *last*
layer their attention loss measures the wrong thing: MiniLM's own layer 4 at full width scores 8.0 there,
an arbitrary narrow slice of it 4.4, so the loss rewards destroying layer 4's attention, and rewired
shallow slices, which keep more of it, score *higher* (4/256/1024/12/192: 4.75 plain, 7.40 Taylor). KD
training replaces those last-layer attention maps anyway; what a warm start is for is the rest. It shows in
training: in the mini KD space (1–4 layers, every sub-model shallower than the teacher) the first six steps
of one-shot KD training (``configs/mini.yaml`` settings) logged losses of 3.4–16.4 warm-started against
2.4–2.5 from random weights, whose near-zero scores are the cheaper guess under an MSE.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    BertForMaskedLM,
    BertModel,
    PreTrainedModel,
)

from .extract import _INHERITED, from_bert
from .modeling import AtbBertForMaskedLM, AtbBertModel, attention_mask_to_bool
from .objectives import masked_mse, real_pairs
from .superbert import SuperBert, SuperBertConfig

__all__ = [
    "OFFLINE_SOURCE", "Importance", "Rewiring", "warm_start", "load_source", "source_supernet",
    "taylor_importance", "magnitude_importance", "plan_rewiring", "apply_rewiring", "importance_sample",
    "init_fit_from_warm_start",
]

OFFLINE_SOURCE = "minilm-offline"  # the offline teacher (atb.teacher), a pretrained 6/384/1536/12/384 BERT
Batch = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------- records
@dataclass
class Importance:
    """Per-unit scores of a model (higher = more important), in that model's own unit order.

    ``hidden`` ``[d_m]``; ``ffn`` ``[L, d_f]``; ``heads`` ``[L, H]``; ``qk`` and ``v`` ``[L, H, d_head]``
    (query/key pairs and value dimensions within each head). ``method``: ``"taylor"`` or ``"magnitude"``.
    """

    hidden: torch.Tensor
    ffn: torch.Tensor
    heads: torch.Tensor
    qk: torch.Tensor
    v: torch.Tensor
    method: str


@dataclass
class Rewiring:
    """Permutations as orders: position ``i`` of the rewired model holds unit ``order[i]`` of the source
    (``w_new = w_old[order]``). Shapes as in :class:`Importance`; ``qk[l, h]`` / ``v[l, h]`` order the
    dimensions within *source* head ``h``, which lands at position ``heads[l].tolist().index(h)``."""

    hidden: torch.Tensor
    ffn: torch.Tensor
    heads: torch.Tensor
    qk: torch.Tensor
    v: torch.Tensor

    def qk_rows(self, layer: int) -> torch.Tensor:
        """Order of the rows of Q and K (and of their biases) of ``layer``: head by head, dims within."""
        return self._rows(layer, self.qk)

    def v_rows(self, layer: int) -> torch.Tensor:
        """Order of the rows of V and of the columns of ``attention.output.dense`` of ``layer``."""
        return self._rows(layer, self.v)

    def _rows(self, layer: int, within: torch.Tensor) -> torch.Tensor:
        head_size = within.shape[-1]
        return torch.cat([h * head_size + within[layer, h] for h in self.heads[layer].tolist()])

    @classmethod
    def identity(cls, layers: int, hidden: int, ffn: int, heads: int, head_size: int) -> Rewiring:
        dims = torch.arange(head_size).expand(layers, heads, head_size).clone()
        return cls(torch.arange(hidden), torch.arange(ffn).repeat(layers, 1), torch.arange(heads).repeat(layers, 1),
                   dims, dims.clone())


# ---------------------------------------------------------------------------------------------- source
def load_source(source: str | Path | nn.Module = OFFLINE_SOURCE) -> tuple[AtbBertForMaskedLM, bool]:
    """The source as an ``AtbBertForMaskedLM`` (a copy, on the CPU, in eval mode) and whether its MLM head was
    trained (a ``...ForMaskedLM`` model is taken to have a trained head).

    ``source``: ``"minilm-offline"`` (the bundled MiniLM, a ``BertModel``: no MLM head), a folder or hub
    name of a BERT / ``atb-bert`` checkpoint, or a loaded ``BertModel`` / ``BertForMaskedLM`` /
    ``AtbBertModel`` / ``AtbBertForMaskedLM``.
    """
    if isinstance(source, (str, Path)):
        source = _load_pretrained(str(source))
    if isinstance(source, (BertModel, BertForMaskedLM)):
        has_head = isinstance(source, BertForMaskedLM)
        source = from_bert(source)
    elif isinstance(source, (AtbBertModel, AtbBertForMaskedLM)):
        has_head = isinstance(source, AtbBertForMaskedLM)
        source = copy.deepcopy(source)  # the caller's model keeps its device and mode
    else:
        raise TypeError(f"warm_start: source must be a BERT (BertModel / BertForMaskedLM / atb-bert) or a path to one, "
                        f"got {type(source).__name__}")
    if isinstance(source, AtbBertModel):  # wrap the encoder into the MLM model (its head: initialised, untrained)
        model = AtbBertForMaskedLM(source.config)
        encoder = {k: v for k, v in source.state_dict().items() if not k.startswith("pooler.")}
        model.bert.load_state_dict(encoder, strict=True)
        source = model
    return source.cpu().eval(), has_head


def _load_pretrained(name: str) -> PreTrainedModel:
    """A checkpoint loaded with its MLM head when it has a trained one, as the encoder alone otherwise."""
    if name == OFFLINE_SOURCE:
        from .teacher import offline_teacher_path

        return AutoModel.from_pretrained(offline_teacher_path(), local_files_only=True)
    kwargs = {"local_files_only": True} if Path(name).is_dir() else {}
    architectures = getattr(AutoConfig.from_pretrained(name, **kwargs), "architectures", None) or []
    if any(a.endswith("ForMaskedLM") or a.endswith("ForPreTraining") for a in architectures):
        model, info = AutoModelForMaskedLM.from_pretrained(name, output_loading_info=True, **kwargs)
        if not any(k.startswith("cls.") for k in info["missing_keys"]):
            return model
    return AutoModel.from_pretrained(name, **kwargs)


def source_supernet(source: AtbBertForMaskedLM, qkv_slicing: str) -> SuperBert:
    """A SuperBERT of exactly the source's shape holding the source's weights (MLM head included), sliced
    like the target (``"headwise"`` or ``"contiguous"``): the model that is rewired and then sliced."""
    c = source.config
    config = SuperBertConfig(qkv_slicing=qkv_slicing, num_hidden_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                             intermediate_size=c.intermediate_size, num_attention_heads=c.num_attention_heads,
                             qkv_size=c.qkv_size, **{k: getattr(c, k) for k in _INHERITED})
    model = SuperBert(config)
    model.load_state_dict(source.state_dict(), strict=True)
    return model.eval()


def check_fits(target: SuperBertConfig, source: SuperBertConfig | object) -> None:
    """Raise a ``ValueError`` naming the field when the target SuperBERT's largest architecture is not a
    slice of the source (see the module docstring)."""
    t, s = target, source
    problems = []
    for field, mine, theirs in (("layers", t.num_hidden_layers, s.num_hidden_layers), ("hidden", t.hidden_size, s.hidden_size),
                                ("ffn", t.intermediate_size, s.intermediate_size),
                                ("max_position_embeddings", t.max_position_embeddings, s.max_position_embeddings),
                                ("type_vocab_size", t.type_vocab_size, s.type_vocab_size)):
        if mine > theirs:
            problems.append(f"{field}={mine} exceeds the source's {theirs}")
    if t.vocab_size != s.vocab_size:
        problems.append(f"vocab_size={t.vocab_size} differs from the source's {s.vocab_size} (another vocabulary)")
    if t.layer_norm_eps != s.layer_norm_eps:
        problems.append(f"layer_norm_eps={t.layer_norm_eps} differs from the source's {s.layer_norm_eps}")
    source_head = s.qkv_size // s.num_attention_heads
    target_head = t.qkv_size // t.num_attention_heads
    if t.qkv_slicing == "headwise":
        if t.num_attention_heads != s.num_attention_heads:
            problems.append(f"heads={t.num_attention_heads} differs from the source's {s.num_attention_heads}: the KD "
                            "space keeps every head, so it must have the source's heads")
        elif target_head > source_head:
            problems.append(f"qkv={t.qkv_size} gives {target_head} dims per head, more than the source's {source_head} "
                            f"(qkv <= {s.qkv_size})")
    else:
        if target_head != source_head:
            problems.append(f"head_size={target_head} (qkv/heads) differs from the source's {source_head}: an MLM space "
                            f"keeps whole heads of a fixed size, and heads cannot be merged or split without changing "
                            f"the function; use an MLM space with head_size={source_head}")
        elif t.num_attention_heads > s.num_attention_heads:
            problems.append(f"heads={t.num_attention_heads} exceeds the source's {s.num_attention_heads}")
    if problems:
        raise ValueError("warm_start: the SuperBERT's largest architecture does not fit inside the source "
                         f"{s.num_hidden_layers}/{s.hidden_size}/{s.intermediate_size}/{s.num_attention_heads}/"
                         f"{s.qkv_size}: " + "; ".join(problems))


# ------------------------------------------------------------------------------------------ importance
def importance_sample(corpus: str = "pretrain", *, batches: int = 8, batch_size: int = 8, max_seq_len: int = 128,
                      max_documents: int = 200) -> list[Batch]:
    """Deterministic batches of real text for the importance scores: the first packed examples of the first
    ``max_documents`` documents of ``corpus`` (training text: the held-out text of the search stays unseen),
    padded, not masked."""
    from .data import MLMCollator, build_pretraining_examples, load_corpus, load_tokenizer

    tokenizer = load_tokenizer()
    examples = build_pretraining_examples(load_corpus(corpus, max_documents=max_documents), tokenizer,
                                          max_seq_len=max_seq_len)
    if len(examples) < batches * batch_size:
        raise ValueError(f"importance_sample: {corpus!r} ({max_documents} documents) packs into {len(examples)} "
                         f"examples, fewer than {batches} x {batch_size}")
    pad = MLMCollator(tokenizer).pad
    return [pad([examples[i] for i in range(b * batch_size, (b + 1) * batch_size)]) for b in range(batches)]


def _layer_norms(model: SuperBert) -> list[nn.LayerNorm]:
    """Every LayerNorm whose output is the residual stream (embeddings, then two per layer)."""
    norms = [model.bert.embeddings.LayerNorm]
    for layer in model.bert.encoder.layer:
        norms += [layer.attention.output.LayerNorm, layer.output.LayerNorm]
    return norms


def _unit_scores(model: SuperBert, value) -> dict[str, torch.Tensor]:
    """Per-unit sums of ``value(param)`` (a tensor shaped like the parameter) over each unit's weights, as
    defined in the module docstring; Taylor passes ``g ⊙ w``, magnitude ``w²``."""
    c = model.config
    heads, head_size = c.num_attention_heads, c.qkv_size // c.num_attention_heads
    hidden = sum(value(n.weight) + value(n.bias) for n in _layer_norms(model))
    ffn, qk, v = [], [], []
    for layer in model.bert.encoder.layer:
        ffn.append(value(layer.output.dense.weight).sum(0))  # column j of output.dense
        v.append(value(layer.attention.output.dense.weight).sum(0).view(heads, head_size))
        q = layer.attention.self.query
        qk.append((value(q.weight).sum(1) + value(q.bias)).view(heads, head_size))
    return {"hidden": hidden, "ffn": torch.stack(ffn), "qk": torch.stack(qk), "v": torch.stack(v)}


def taylor_importance(model: SuperBert, batches: Iterable[Batch], *, depths: Sequence[int] | None = None,
                      draws: int = 1, seed: int = 0) -> Importance:
    """DynaBERT's first-order Taylor scores ``Σ |Σ_unit g ⊙ w|`` (summed over batches and noise draws) of the KD
    loss against the model's own outputs plus seeded Gaussian noise, at every depth of ``depths`` (default: the
    model's full depth only) at full width; why the noise and the depths: module docstring. ``model``: a
    SuperBERT. Its weights are not changed; gradients are taken only of the weights the scores read."""
    full = model.config.arch
    depths = [full.layers] if depths is None else sorted(set(depths))
    if not depths or depths[0] < 1 or depths[-1] > full.layers:
        raise ValueError(f"taylor_importance: depths {depths} must lie in 1..{full.layers}")
    was_training, grads_before = model.training, [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    for param in _scored_parameters(model):
        param.requires_grad_(True)
    model.set_active(full)
    generator = torch.Generator().manual_seed(seed)
    totals: dict[str, torch.Tensor] | None = None
    try:
        for batch in batches:
            real = batch["attention_mask"].bool()
            with torch.enable_grad():
                outputs = _outputs_by_depth(model, batch, depths)
                for k in range(draws):
                    loss = sum(masked_mse(scores, scores.detach() + torch.randn(scores.shape, generator=generator),
                                          real_pairs(real))
                               + masked_mse(hidden, hidden.detach() + torch.randn(hidden.shape, generator=generator),
                                            real[..., None])
                               for hidden, scores in outputs)
                    params = _scored_parameters(model)
                    grads = torch.autograd.grad(loss, params, retain_graph=k < draws - 1, allow_unused=True)
                    draw = _draw_scores(model, dict(zip(params, grads)))
                    totals = draw if totals is None else {key: totals[key] + draw[key] for key in totals}
    finally:
        for p, flag in zip(model.parameters(), grads_before):
            p.requires_grad_(flag)
        model.train(was_training)
    if totals is None:
        raise ValueError("taylor_importance: no batches given")
    return Importance(method="taylor", **totals)


def _outputs_by_depth(model: SuperBert, batch: Batch, depths: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(hidden state, pre-softmax attention scores)`` after each layer of ``depths``: what the last layer of a
    sub-model of that depth (at full width) outputs. ``AtbBertModel.forward``'s loop, with every depth scored."""
    bert = model.bert
    x = bert.embeddings(batch["input_ids"], batch["token_type_ids"])
    mask = attention_mask_to_bool(batch["attention_mask"])
    outputs = []
    for depth, layer in enumerate(bert.encoder.layer[: max(depths)], start=1):
        x, scores = layer(x, mask, depth in depths)
        if depth in depths:
            outputs.append((x, scores))
    return outputs


def _scored_parameters(model: SuperBert) -> list[nn.Parameter]:
    """The weights whose ``g ⊙ w`` the scores read (module docstring, *Importance*)."""
    params = [p for norm in _layer_norms(model) for p in (norm.weight, norm.bias)]
    for layer in model.bert.encoder.layer:
        params += [layer.output.dense.weight, layer.attention.output.dense.weight,
                   layer.attention.self.query.weight, layer.attention.self.query.bias]
    return params


@torch.no_grad()
def _draw_scores(model: SuperBert, grads: dict[nn.Parameter, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``|∂L/∂m|`` of every unit from one gradient (layers deeper than the depths scored get none: 0)."""
    draw = _unit_scores(model, lambda p: torch.zeros_like(p) if grads[p] is None else grads[p] * p)
    draw["heads"] = draw["v"].sum(-1)  # a head's gate = the sum of its value dimensions' gates
    return {key: value.abs() for key, value in draw.items()}


@torch.no_grad()
def magnitude_importance(model: SuperBert) -> Importance:
    """The data-free fallback: the L2 norm of each unit's weights (query/key pairs: query row norm times key
    row norm; heads: the Frobenius norm of their columns of ``attention.output.dense``)."""
    squares = _unit_scores(model, lambda p: p.pow(2))
    c = model.config
    heads, head_size = c.num_attention_heads, c.qkv_size // c.num_attention_heads
    keys = torch.stack([(layer.attention.self.key.weight.pow(2).sum(1) + layer.attention.self.key.bias.pow(2))
                        .view(heads, head_size) for layer in model.bert.encoder.layer])
    return Importance(hidden=squares["hidden"].sqrt(), ffn=squares["ffn"].sqrt(), heads=squares["v"].sum(-1).sqrt(),
                      qk=(squares["qk"] * keys).sqrt(), v=squares["v"].sqrt(), method="magnitude")


# ------------------------------------------------------------------------------------------- rewiring
def _descending(scores: torch.Tensor) -> torch.Tensor:
    """Indices of ``scores`` (last dim) from most to least important; ties keep their original order."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices


def plan_rewiring(importance: Importance, qkv_slicing: str) -> Rewiring:
    """The permutations that put units in order of decreasing importance, for the given Q/K/V slicing:
    head-wise (KD) orders dimensions within every head and keeps heads in place; contiguous (MLM) orders
    heads and keeps dimensions within a head in place (module docstring)."""
    layers, heads, head_size = importance.qk.shape
    if importance.ffn.shape[0] != layers or importance.heads.shape != (layers, heads) or importance.v.shape != importance.qk.shape:
        raise ValueError("plan_rewiring: the importance scores' shapes do not agree with each other")
    identity = Rewiring.identity(layers, importance.hidden.numel(), importance.ffn.shape[1], heads, head_size)
    plan = dataclasses.replace(identity, hidden=_descending(importance.hidden), ffn=_descending(importance.ffn))
    if qkv_slicing == "headwise":
        return dataclasses.replace(plan, qk=_descending(importance.qk), v=_descending(importance.v))
    if qkv_slicing == "contiguous":
        return dataclasses.replace(plan, heads=_descending(importance.heads))
    raise ValueError(f"qkv_slicing must be 'headwise' or 'contiguous', got {qkv_slicing!r}")


@torch.no_grad()
def apply_rewiring(model: SuperBert, rewiring: Rewiring) -> SuperBert:
    """Permute ``model``'s weights in place (its function is unchanged); returns it."""
    hidden = rewiring.hidden

    def permute(param: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> None:
        value = param
        if rows is not None:
            value = value.index_select(0, rows)
        if cols is not None:
            value = value.index_select(1, cols)
        param.copy_(value)

    embeddings = model.bert.embeddings
    for table in (embeddings.word_embeddings, embeddings.position_embeddings, embeddings.token_type_embeddings):
        permute(table.weight, cols=hidden)
    for norm in _layer_norms(model):
        permute(norm.weight, hidden)
        permute(norm.bias, hidden)
    for index, layer in enumerate(model.bert.encoder.layer):
        attention, qk, v, ffn = layer.attention, rewiring.qk_rows(index), rewiring.v_rows(index), rewiring.ffn[index]
        for linear, rows in ((attention.self.query, qk), (attention.self.key, qk), (attention.self.value, v)):
            permute(linear.weight, rows, hidden)
            permute(linear.bias, rows)
        permute(attention.output.dense.weight, hidden, v)
        permute(attention.output.dense.bias, hidden)
        permute(layer.intermediate.dense.weight, ffn, hidden)
        permute(layer.intermediate.dense.bias, ffn)
        permute(layer.output.dense.weight, hidden, ffn)
        permute(layer.output.dense.bias, hidden)
    transform = model.cls.predictions.transform  # its output is compared with the (permuted) word embeddings
    permute(transform.dense.weight, hidden, hidden)
    permute(transform.dense.bias, hidden)
    permute(transform.LayerNorm.weight, hidden)
    permute(transform.LayerNorm.bias, hidden)
    return model


# ----------------------------------------------------------------------------------------------- copy
def warm_start(
    supernet: SuperBert,
    source: str | Path | nn.Module = OFFLINE_SOURCE,
    *,
    rewire: bool = True,
    importance: str | Importance = "taylor",
    importance_batches: Sequence[Batch] | None = None,
    draws: int = 1,
    seed: int = 0,
) -> SuperBert:
    """Copy the pretrained ``source`` into ``supernet`` (in place; returned), rewired by importance first.

    ``rewire=False`` copies the plain top-left slices (the control). ``importance``: ``"taylor"`` (scores
    from ``importance_batches``, default :func:`importance_sample` of the pre-training corpus, with
    ``draws`` noise draws per batch and depth from ``seed``; the depths scored are those of the
    SuperBERT's space), ``"magnitude"`` (no data), or an :class:`Importance` computed beforehand on the
    source (e.g. by :func:`taylor_importance` on :func:`source_supernet`). Errors naming the field when the
    SuperBERT's largest architecture is not a slice of the source. The global RNG is left as it was.
    ``supernet.config.warm_start`` records what was done (module docstring).
    """
    if not isinstance(importance, Importance) and importance not in ("taylor", "magnitude"):
        raise ValueError(f"warm_start: importance must be 'taylor', 'magnitude' or an Importance, got {importance!r}")
    with torch.random.fork_rng(devices=[]):  # building models draws initial weights: leave the caller's RNG alone
        model, has_head = load_source(source)
        check_fits(supernet.config, model.config)
        big = source_supernet(model, supernet.config.qkv_slicing)
        c = big.config
        if rewire:
            scores = (importance if isinstance(importance, Importance) else
                      magnitude_importance(big) if importance == "magnitude" else
                      taylor_importance(big, importance_sample() if importance_batches is None else importance_batches,
                                        depths=_space_depths(supernet.config), draws=draws, seed=seed))
            shapes = (scores.hidden.numel(), *scores.ffn.shape, *scores.qk.shape)
            expected = (c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.num_hidden_layers,
                        c.num_attention_heads, c.qkv_size // c.num_attention_heads)
            if shapes != expected:
                raise ValueError(f"warm_start: importance scores of shape (hidden, layers, ffn, layers, heads, head size) "
                                 f"{shapes} are not the source's {expected}")
            rewiring = plan_rewiring(scores, supernet.config.qkv_slicing)
            apply_rewiring(big, rewiring)
        else:
            rewiring = Rewiring.identity(c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
                                         c.qkv_size // c.num_attention_heads)
    state = big.active_state_dict(supernet.config.arch)  # the target's largest architecture, sliced as it slices
    t = supernet.config
    embeddings = "bert.embeddings."
    state[embeddings + "position_embeddings.weight"] = state[embeddings + "position_embeddings.weight"][:t.max_position_embeddings]
    state[embeddings + "token_type_embeddings.weight"] = state[embeddings + "token_type_embeddings.weight"][:t.type_vocab_size]
    if not has_head:  # nothing trained to copy: keep the target's own (initialised) transform and bias
        state = {k: v for k, v in state.items() if not k.startswith("cls.")}
    device = next(supernet.parameters()).device
    missing, unexpected = supernet.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=False)
    if unexpected or any(not k.startswith("cls.") for k in missing):
        raise RuntimeError(f"warm_start: state dict mismatch, missing={missing}, unexpected={unexpected}")
    supernet.config.warm_start = {
        "source": source if isinstance(source, str) else str(source) if isinstance(source, Path) else type(source).__name__,
        "rewire": rewire, "importance": (importance.method if isinstance(importance, Importance) else importance)
        if rewire else None, "seed": seed if rewire else None,
        "mlm_head": "copied" if has_head else "initialised (the source has no trained MLM head)",
        "hidden_order": rewiring.hidden[: t.hidden_size].tolist(),
    }
    return supernet


def _space_depths(config: SuperBertConfig) -> list[int]:
    """The depths of the SuperBERT's sub-models (its space's layer grid; without a space, 1..its layers)."""
    space = config.search_space()
    return list(space.layers.values()) if space is not None else list(range(1, config.num_hidden_layers + 1))


def init_fit_from_warm_start(fit_dense: nn.Linear, student: SuperBert) -> bool:
    """Set ``W_fit`` (student hidden → teacher hidden) to the permutation that sends every student dimension
    back to the source dimension it was copied from, when ``student`` was warm-started (from the teacher:
    the caller checks). Returns whether it did. Student dimension ``i`` came from source dimension
    ``hidden_order[i]``, so ``W_fit[hidden_order[i], i] = 1``; any slice of the first ``d_m`` columns is then
    the right map for the sliced student too."""
    record = getattr(student.config, "warm_start", None)
    if not record:
        return False
    order = torch.as_tensor(record["hidden_order"])
    if fit_dense.in_features < order.numel() or int(order.max()) >= fit_dense.out_features:
        raise ValueError(f"init_fit_from_warm_start: W_fit {fit_dense.in_features}->{fit_dense.out_features} cannot "
                         f"hold the warm start's {order.numel()} dims")
    with torch.no_grad():
        fit_dense.weight.zero_()
        fit_dense.bias.zero_()
        fit_dense.weight[order, torch.arange(order.numel())] = 1.0
    return True

