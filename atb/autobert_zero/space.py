"""AutoBERT-Zero's search space of whole backbones: each layer an attention graph or a convolution (Gao et al. 2022).

The paper searches the backbone layer by layer: a layer is either an **attention layer**, whose computation is an
attention graph (:mod:`atb.autobert_zero.graph`), or a **convolution layer**, a (depthwise-separable, in the paper)
convolution over the tokens with a kernel size from a small set. The published 12-layer backbone alternates them,
``conv(65), attn1, conv(9), attn2, conv(3), attn3, conv(7), attn3, conv(7), attn4, conv(3), attn5``
(:func:`published_candidate`): convolutions capture local context cheaply, attention the global one.

A **candidate** is a tuple of layer specifications, :class:`AttentionLayer` and :class:`ConvLayer`, written
``attn:<graph>`` / ``conv:<kernel>`` (:func:`parse_layer` reads them back). Two candidates whose graphs are equal up
to :func:`~atb.autobert_zero.graph.canonical` are one candidate (:func:`candidate_key`).

Search moves (:func:`mutate_candidate`) change one random layer: with probability ``switch_prob`` its type (an
attention layer becomes a convolution with a random kernel, a convolution an attention layer with a random valid
graph); otherwise a convolution changes its kernel and an attention layer's graph mutates by
:func:`~atb.autobert_zero.graph.mutate`. The operation a move introduced (inserted or substituted in a graph) is
reported for OP-NAS's credit; a type switch, a kernel change, a deletion or a leaf swap introduces none (``None``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .graph import (
    MAX_NODES, PUBLISHED_ATTENTION, PUBLISHED_KERNELS, STANDARD, ChooseOp, Node, key, mutate, parse,
    problems, random_graph, uniform_op,
)

DEFAULT_KERNELS: tuple[int, ...] = (3, 5, 7, 9, 15, 33, 65)  # includes every published kernel
SWITCH_PROB = 0.2  # probability that a mutation switches the layer's type


@dataclass(frozen=True)
class AttentionLayer:
    """An attention layer computing ``graph`` per head."""

    graph: Node

    def __post_init__(self) -> None:
        if not isinstance(self.graph, Node):
            raise ValueError(f"AttentionLayer.graph must be a graph Node, got {self.graph!r}")

    def __str__(self) -> str:
        return f"attn:{self.graph}"


@dataclass(frozen=True)
class ConvLayer:
    """A convolution layer over the tokens with ``kernel`` taps (odd: the token sits in the middle of its window,
    which BIWS's centre-cropping needs)."""

    kernel: int

    def __post_init__(self) -> None:
        if isinstance(self.kernel, bool) or not isinstance(self.kernel, int) or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"ConvLayer.kernel must be an odd integer >= 1, got {self.kernel!r}")

    def __str__(self) -> str:
        return f"conv:{self.kernel}"


LayerSpec = AttentionLayer | ConvLayer
Candidate = tuple[LayerSpec, ...]  # one specification per layer, bottom first


def parse_layer(text: str) -> LayerSpec:
    """``attn:<graph>`` or ``conv:<kernel>`` (as ``str`` writes them) back to a layer; ``ValueError`` otherwise."""
    kind, sep, rest = text.strip().partition(":")
    if not sep or kind not in ("attn", "conv"):
        raise ValueError(f"layer {text!r}: expected 'attn:<graph>' or 'conv:<kernel>'")
    if kind == "conv":
        if not rest.strip().isdigit():
            raise ValueError(f"layer {text!r}: a convolution's kernel must be a positive integer, got {rest!r}")
        return ConvLayer(int(rest))
    return AttentionLayer(parse(rest))


def candidate_strings(candidate: Sequence[LayerSpec]) -> list[str]:
    return [str(layer) for layer in candidate]


def parse_candidate(texts: Sequence[str]) -> Candidate:
    return tuple(parse_layer(t) for t in texts)


def layer_key(layer: LayerSpec) -> str:
    return f"attn:{key(layer.graph)}" if isinstance(layer, AttentionLayer) else str(layer)


def candidate_key(candidate: Sequence[LayerSpec]) -> str:
    """One string per distinct backbone: the layers with canonical graphs, joined by ``|``."""
    return "|".join(layer_key(layer) for layer in candidate)


def candidate_problems(candidate: Sequence[LayerSpec], max_nodes: int = MAX_NODES) -> list[str]:
    """What makes ``candidate`` invalid (a layer of another type, an invalid graph); empty when valid."""
    if not candidate:
        return ["no layers"]
    found = []
    for i, layer in enumerate(candidate):
        if isinstance(layer, AttentionLayer):
            found += [f"layer {i}: {p}" for p in problems(layer.graph, max_nodes)]
        elif not isinstance(layer, ConvLayer):
            found.append(f"layer {i}: {layer!r} is neither an AttentionLayer nor a ConvLayer")
    return found


def standard_candidate(n_layers: int) -> Candidate:
    """BERT: ``n_layers`` standard attention layers."""
    return (AttentionLayer(STANDARD),) * _layers(n_layers, 10 ** 9)


PUBLISHED_PATTERN: Candidate = tuple(
    layer for kernel, graph in zip(PUBLISHED_KERNELS, PUBLISHED_ATTENTION)
    for layer in (ConvLayer(kernel), AttentionLayer(graph)))


def published_candidate(n_layers: int = 12) -> Candidate:
    """The published backbone's first ``n_layers`` layers (``n_layers <= 12``); for 6: conv65, attn1, conv9, attn2,
    conv3, attn3."""
    return PUBLISHED_PATTERN[: _layers(n_layers, len(PUBLISHED_PATTERN))]


def _layers(n_layers: int, most: int) -> int:
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 1 <= n_layers <= most:
        raise ValueError(f"n_layers must be an integer in [1, {most}], got {n_layers!r}")
    return n_layers


def _kernels(kernels: Sequence[int]) -> tuple[int, ...]:
    kernels = tuple(kernels)
    if not kernels:
        raise ValueError("kernels must list at least one convolution kernel size")
    for k in kernels:
        ConvLayer(k)  # validates
    return kernels


def random_layer(rng: random.Random, kernels: Sequence[int], *, conv_prob: float = 0.5,
                 choose_op: ChooseOp = uniform_op, max_nodes: int = MAX_NODES) -> LayerSpec:
    """A convolution (probability ``conv_prob``, a random kernel) or an attention layer with a random valid graph."""
    kernels = _kernels(kernels)
    if rng.random() < conv_prob:
        return ConvLayer(rng.choice(kernels))
    return AttentionLayer(random_graph(rng, choose_op, max_nodes))


def random_candidate(n_layers: int, rng: random.Random, kernels: Sequence[int] = DEFAULT_KERNELS, *,
                     conv_prob: float = 0.5, choose_op: ChooseOp = uniform_op, max_nodes: int = MAX_NODES) -> Candidate:
    """``n_layers`` independent random layers (:func:`random_layer`)."""
    return tuple(random_layer(rng, kernels, conv_prob=conv_prob, choose_op=choose_op, max_nodes=max_nodes)
                 for _ in range(_layers(n_layers, 10 ** 9)))


def mutate_layer(layer: LayerSpec, rng: random.Random, *, kernels: Sequence[int], choose_op: ChooseOp = uniform_op,
                 max_nodes: int = MAX_NODES, switch_prob: float = SWITCH_PROB) -> tuple[LayerSpec, str | None]:
    """A different layer, and the graph operation the change introduced (``None``: none, e.g. a kernel change or a
    type switch — a fresh random graph is not one operation's doing, so it is drawn with uniform operation choice:
    a priority-biased draw would also rarely produce the token-mixing matmul a valid graph needs). Raises
    :class:`~atb.autobert_zero.graph.MutationFailed` when a graph has no valid mutation."""
    kernels = _kernels(kernels)
    if isinstance(layer, ConvLayer):
        others = [k for k in kernels if k != layer.kernel]
        if not others or rng.random() < switch_prob:
            return AttentionLayer(random_graph(rng, uniform_op, max_nodes)), None
        return ConvLayer(rng.choice(others)), None
    if rng.random() < switch_prob:
        return ConvLayer(rng.choice(kernels)), None
    graph, op = mutate(layer.graph, rng, choose_op, max_nodes=max_nodes)
    return AttentionLayer(graph), op


def mutate_candidate(candidate: Sequence[LayerSpec], rng: random.Random, *, kernels: Sequence[int],
                     choose_op: ChooseOp = uniform_op, max_nodes: int = MAX_NODES,
                     switch_prob: float = SWITCH_PROB) -> tuple[Candidate, str | None]:
    """``candidate`` with one random layer mutated (:func:`mutate_layer`), and the operation introduced."""
    candidate = tuple(candidate)
    if not candidate:
        raise ValueError("mutate_candidate: the candidate has no layers")
    i = rng.randrange(len(candidate))
    layer, op = mutate_layer(candidate[i], rng, kernels=kernels, choose_op=choose_op, max_nodes=max_nodes,
                             switch_prob=switch_prob)
    return (*candidate[:i], layer, *candidate[i + 1:]), op

