"""EfficientBERT's search space: the feed-forward network written as a math expression (Dong et al., 2021).

AutoTinyBERT searches the *sizes* of a BERT; EfficientBERT searches what each layer's FFN *computes*. BERT's FFN
is the expression ``linear(gelu(linear(x, wb1)), wb2)``: a linear map up to the inner width, gelu, a linear map
back. EfficientBERT lets a search rewrite that tree with

* unary **activations**: gelu, sigmoid, tanh, relu, leaky_relu, elu, swish;
* **binary** operations: add, mul, max (when the two widths differ, both are cut to the smaller one, as the
  official code does with ``sel_min``);
* the two **linear** maps, ``wb1`` (hidden -> inner) and ``wb2`` (inner -> hidden), each used exactly once.

and picks a **size** per layer, written into the linear's name as in the official code: ``linear{i}_{j}`` stacks
``i`` (1-4) FFN blocks, each computing the expression with its own weights and residual + LayerNorm, at inner
width ``d_f / j`` (j in 1-4). So ``tanh(linear4_2(gelu(linear4_2(x,wb1)),wb2))`` is four stacked blocks of a
tanh-gated FFN at half the inner width.

A candidate is valid (``problems`` lists what is not) when, as in the official ``check_individual``:

* its height is within bounds (3-7; BERT's FFN has height 3: linear -> gelu -> linear -> x);
* it reads the input ``x``; ``wb1`` and ``wb2`` each appear once, ``wb1`` first when written out;
* no linear is applied directly to a linear, no activation directly to an activation;
* no binary operation has two identical arguments (``add(x, x)`` is ``2x``: no new function);
* the widths fit at every size: ``wb2`` reads something computed from ``wb1`` (the inner width), and the output has
  the hidden width (the residual adds it to ``x``). The official code finds these out by running the candidate at
  its size and discarding it on a shape error; checked here on the tree, a candidate stays valid when stage 3
  changes its size.

Two expressions that compute the same function are the same candidate: :func:`function_hash` evaluates one on
fixed random inputs and weights and hashes the rounded output, as the official code does (``mul(a, b)`` and
``mul(b, a)`` share a hash; so do ``max(a, b)`` and ``max(b, a)``).

An expression is a frozen, hashable :class:`Expr` tree; :func:`parse` reads the official string form and
``str`` writes it back, so the published EfficientBERT's six expressions (:data:`PUBLISHED`) are plain strings.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu,
    "leaky_relu": F.leaky_relu, "elu": F.elu, "swish": F.silu,  # swish(x) = x * sigmoid(x) = silu
}
BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add, "mul": torch.mul, "max": torch.maximum,
}
LINEAR, INPUT, WEIGHTS = "linear", "x", ("wb1", "wb2")
STACKS = (1, 2, 3, 4)  # i of linear{i}_{j}: FFN blocks stacked in one layer
RATIOS = (1, 2, 3, 4)  # j of linear{i}_{j}: inner width d_f / j
MIN_HEIGHT, MAX_HEIGHT = 3, 7  # the official search's --min_height / --max_height

# The published EfficientBERT, one expression per layer (official nas_finetune.sh, FFN_EXPR).
PUBLISHED: tuple[str, ...] = (
    "tanh(linear4_2(gelu(linear4_2(x,wb1)),wb2))",
    "elu(linear2_1(gelu(linear2_1(x,wb1)),wb2))",
    "sigmoid(linear1_2(relu(linear1_2(x,wb1)),wb2))",
    "linear2_2(gelu(linear2_2(max(x,tanh(x)),wb1)),wb2)",
    "linear1_2(relu(mul(linear1_2(x,wb1),x)),wb2)",
    "leaky_relu(linear2_3(gelu(linear2_3(x,wb1)),wb2))",
)
BERT_FFN = "linear1_1(gelu(linear1_1(x,wb1)),wb2)"  # the search's starting point (stage 1)


@dataclass(frozen=True)
class Expr:
    """A node of an FFN expression: ``op`` is ``"x"`` (the layer's input), an activation, a binary operation, or
    ``"linear"``; ``args`` its operands; ``weight`` (linear only) 1 for ``wb1``, 2 for ``wb2``."""

    op: str
    args: tuple[Expr, ...] = ()
    weight: int = 0

    def __post_init__(self) -> None:
        arity = {INPUT: 0, LINEAR: 1, **dict.fromkeys(ACTIVATIONS, 1), **dict.fromkeys(BINARY, 2)}
        if self.op not in arity:
            raise ValueError(f"unknown operation {self.op!r}; valid: {', '.join(arity)}")
        if len(self.args) != arity[self.op]:
            raise ValueError(f"{self.op} takes {arity[self.op]} operand(s), got {len(self.args)}")
        if (self.op == LINEAR) != (self.weight in (1, 2)):
            raise ValueError(f"a linear node needs weight 1 or 2 (wb1 / wb2); {self.op!r} got {self.weight}")

    @property
    def height(self) -> int:
        """The official (deap) height: edges on the longest root-to-leaf path. A linear's ``wb`` leaf sits beside
        its operand, one level down, so it never deepens the tree."""
        return 1 + max(a.height for a in self.args) if self.args else 0

    def nodes(self) -> Iterator[Expr]:
        """Every node, in the order the expression is written (pre-order)."""
        yield self
        for a in self.args:
            yield from a.nodes()

    def format(self, linear_name: str = LINEAR) -> str:
        if self.op == INPUT:
            return INPUT
        inner = ",".join(a.format(linear_name) for a in self.args)
        if self.op == LINEAR:
            return f"{linear_name}({inner},{WEIGHTS[self.weight - 1]})"
        return f"{self.op}({inner})"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class LayerFFN:
    """One layer's FFN: its expression and its size, ``stacks`` blocks at inner width ``d_f / ratio``."""

    expr: Expr
    stacks: int = 1
    ratio: int = 1

    def __post_init__(self) -> None:
        if self.stacks not in STACKS or self.ratio not in RATIOS:
            raise ValueError(f"LayerFFN: stacks must be in {STACKS} and ratio in {RATIOS}, got "
                             f"{self.stacks} and {self.ratio}")

    @property
    def linear_name(self) -> str:
        return f"linear{self.stacks}_{self.ratio}"

    def __str__(self) -> str:
        return self.expr.format(self.linear_name)


# ----------------------------------------------------------------------------------------- parsing
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[(),])")


def parse(text: str) -> LayerFFN:
    """The official string form, e.g. ``linear2_2(gelu(linear2_2(max(x,tanh(x)),wb1)),wb2)``, as a
    :class:`LayerFFN` (a plain ``linear`` means size 1_1). Raises ``ValueError`` naming the position of a syntax
    error, or a linear without its ``wb``, or two linears of different sizes."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"cannot parse FFN expression {text!r} at character {pos}")
        tokens.append((m.group(1), m.start(1)))
        pos = m.end()
    sizes: set[tuple[int, int]] = set()
    i = 0

    def expect(token: str) -> None:
        nonlocal i
        if i >= len(tokens) or tokens[i][0] != token:
            where = tokens[i][1] if i < len(tokens) else len(text)
            raise ValueError(f"FFN expression {text!r}: expected {token!r} at character {where}")
        i += 1

    def node() -> Expr:
        nonlocal i
        if i >= len(tokens):
            raise ValueError(f"FFN expression {text!r} ends early")
        name, at = tokens[i]
        i += 1
        if name == INPUT:
            return Expr(INPUT)
        linear = re.fullmatch(r"linear(?:(\d)_(\d))?", name)
        if linear:
            sizes.add((int(linear.group(1) or 1), int(linear.group(2) or 1)))
            expect("(")
            operand = node()
            expect(",")
            weight = tokens[i][0] if i < len(tokens) else None
            if weight not in WEIGHTS:
                raise ValueError(f"FFN expression {text!r}: {name} at character {at} needs wb1 or wb2 as its "
                                 "second operand")
            i += 1
            expect(")")
            return Expr(LINEAR, (operand,), WEIGHTS.index(weight) + 1)
        if name in ACTIVATIONS or name in BINARY:
            expect("(")
            args = [node()]
            if name in BINARY:
                expect(",")
                args.append(node())
            expect(")")
            return Expr(name, tuple(args))
        raise ValueError(f"FFN expression {text!r}: unknown operation {name!r} at character {at}")

    expr = node()
    if i != len(tokens):
        raise ValueError(f"FFN expression {text!r}: unexpected {tokens[i][0]!r} at character {tokens[i][1]}")
    if len(sizes) > 1:
        raise ValueError(f"FFN expression {text!r}: its linears have different sizes {sorted(sizes)}")
    stacks, ratio = sizes.pop() if sizes else (1, 1)
    return LayerFFN(expr, stacks, ratio)


# ---------------------------------------------------------------------------------------- validity
def problems(ffn: LayerFFN | Expr, min_height: int = MIN_HEIGHT, max_height: int = MAX_HEIGHT) -> list[str]:
    """Why ``ffn`` is not a valid candidate (the official ``check_individual``'s rules); empty when it is."""
    expr = ffn.expr if isinstance(ffn, LayerFFN) else ffn
    found = []
    if not min_height <= expr.height <= max_height:
        found.append(f"height {expr.height} outside [{min_height}, {max_height}]")
    nodes = list(expr.nodes())
    if not any(n.op == INPUT for n in nodes):
        found.append("does not read the input x")
    weights = _weights_as_written(expr)
    if weights != [1, 2]:
        found.append(f"needs wb1 then wb2, each once, when written out; has {[WEIGHTS[w - 1] for w in weights]}")
    if weights == [1, 2]:
        if _width(expr) != "hidden":
            found.append("its output is not of the hidden width (a binary operation cuts to the narrower operand)")
        second = next(n for n in nodes if n.op == LINEAR and n.weight == 2)
        if _width(second.args[0]) != "inner":
            found.append("wb2 reads a tensor not computed from wb1 (of the hidden width, not the inner one)")
    for n in nodes:
        child = n.args[0] if n.args else None
        if n.op == LINEAR and child.op == LINEAR:
            found.append(f"a linear applied directly to a linear: {n}")
        if n.op in ACTIVATIONS and child.op in ACTIVATIONS:
            found.append(f"an activation applied directly to an activation: {n}")
        if n.op in BINARY and n.args[0] == n.args[1]:
            found.append(f"{n.op} of two identical operands: {n}")
    return found


def _weights_as_written(expr: Expr) -> list[int]:
    """The ``wb`` leaves in the order the expression is written: a linear's operand comes before its own ``wb``."""
    inner = [w for a in expr.args for w in _weights_as_written(a)]
    return [*inner, expr.weight] if expr.op == LINEAR else inner


def _width(expr: Expr) -> str:
    """``"inner"`` or ``"hidden"``: the width of what ``expr`` computes at a size whose inner width is smaller."""
    if expr.op == INPUT:
        return "hidden"
    if expr.op == LINEAR:
        return "inner" if expr.weight == 1 else "hidden"
    widths = {_width(a) for a in expr.args}
    return "inner" if "inner" in widths else "hidden"  # binary operations cut to the narrower operand


def is_valid(ffn: LayerFFN | Expr, min_height: int = MIN_HEIGHT, max_height: int = MAX_HEIGHT) -> bool:
    return not problems(ffn, min_height, max_height)


# -------------------------------------------------------------------------------------- evaluation
def _cut(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both operands cut to the smaller width (the official ``sel_min``)."""
    width = min(a.shape[-1], b.shape[-1])
    return a[..., :width], b[..., :width]


def evaluate(expr: Expr, x: torch.Tensor, linear1: Callable[[torch.Tensor], torch.Tensor],
             linear2: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The expression applied to ``x`` with ``linear1`` (``wb1``: hidden -> inner) and ``linear2`` (``wb2``: inner ->
    hidden); binary operations cut both operands to the narrower one."""
    if expr.op == INPUT:
        return x
    args = [evaluate(a, x, linear1, linear2) for a in expr.args]
    if expr.op == LINEAR:
        return (linear1 if expr.weight == 1 else linear2)(args[0])
    if expr.op in ACTIVATIONS:
        return ACTIVATIONS[expr.op](args[0])
    return BINARY[expr.op](*_cut(*args))


# ---------------------------------------------------------------------------------- canonical hash
def function_hash(ffns: Sequence[LayerFFN], hidden: int = 64, seq_len: int = 8, seed: int = 0,
                  decimals: int = 2) -> str:
    """One hash per function: the layers' blocks (expression, residual, LayerNorm) applied in turn to a fixed random
    input with fixed random weights per (layer, size), the output projected on a fixed random direction, summed and
    rounded (the official ``get_hash_key_acc`` sums the bare expressions' output). Expressions that
    are the same function up to operand order or rewriting share a hash; the size is part of the function.
    Computed in float64 so the rounding, not the summation order, decides."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, seq_len, hidden, generator=generator, dtype=torch.float64)
    weights = {}
    for layer in range(len(ffns)):
        for stacks in STACKS:
            for ratio in RATIOS:
                w = torch.randn(2, hidden, hidden, generator=generator, dtype=torch.float64) / hidden ** 0.5
                b = torch.randn(2, hidden, generator=generator, dtype=torch.float64)
                weights[(layer, stacks, ratio)] = (w, b)
    for layer, ffn in enumerate(ffns):
        if not is_valid(ffn, 0, 10 ** 6):
            raise ValueError(f"function_hash: layer {layer}'s {ffn} is not a valid FFN: {problems(ffn, 0, 10 ** 6)}")
        (w, b), inner = weights[(layer, ffn.stacks, ffn.ratio)], max(1, hidden // ffn.ratio)
        up = lambda t: t @ w[0][:, :inner] + b[0][:inner]  # noqa: E731
        down = lambda t: t @ w[1][:inner] + b[1]  # noqa: E731
        for _ in range(ffn.stacks):
            x = F.layer_norm(x + evaluate(ffn.expr, x, up, down), (hidden,))  # a block: residual + LayerNorm
    probe = torch.randn(hidden, generator=generator, dtype=torch.float64)  # (LayerNorm zeroes a plain sum)
    value = round(float((x * probe).sum()), decimals) + 0.0  # (+0.0: -0.0 and 0.0 are one function)
    return hashlib.sha1(f"{value:.{decimals}f}".encode()).hexdigest()[:16]


# -------------------------------------------------------------------------------- sampling / mutation
def _random_tree(rng: random.Random, depth: int) -> Expr:
    """A random tensor-valued tree of at most ``depth`` levels over x, activations and binary operations."""
    if depth <= 0 or rng.random() < 0.3:
        return Expr(INPUT)
    if rng.random() < 0.6:
        return Expr(rng.choice(list(ACTIVATIONS)), (_random_tree(rng, depth - 1),))
    return Expr(rng.choice(list(BINARY)), (_random_tree(rng, depth - 1), _random_tree(rng, depth - 1)))


def _paths(expr: Expr, prefix: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    yield prefix
    for k, a in enumerate(expr.args):
        yield from _paths(a, (*prefix, k))


def _at(expr: Expr, path: tuple[int, ...]) -> Expr:
    for k in path:
        expr = expr.args[k]
    return expr


def _replace(expr: Expr, path: tuple[int, ...], new: Expr) -> Expr:
    if not path:
        return new
    args = list(expr.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return Expr(expr.op, tuple(args), expr.weight)


def _mutate_once(expr: Expr, rng: random.Random) -> Expr:
    """One of the official mutations at a random node that is not a linear: replace its subtree by a random one
    (``mutUniform``), swap it for another operation of the same arity (``mutNodeReplacement``), or wrap it in a new
    activation or binary operation (``mutInsert``)."""
    paths = [p for p in _paths(expr) if _at(expr, p).op != LINEAR]
    path = rng.choice(paths)
    node = _at(expr, path)
    kind = rng.choice(("subtree", "replace", "insert"))
    if kind == "subtree":
        return _replace(expr, path, _random_tree(rng, 3))
    if kind == "replace" and node.op != INPUT:
        pool = ACTIVATIONS if node.op in ACTIVATIONS else BINARY
        return _replace(expr, path, Expr(rng.choice(list(pool)), node.args))
    if rng.random() < 0.5:
        return _replace(expr, path, Expr(rng.choice(list(ACTIVATIONS)), (node,)))
    other = _random_tree(rng, 2)
    pair = (node, other) if rng.random() < 0.5 else (other, node)
    return _replace(expr, path, Expr(rng.choice(list(BINARY)), pair))


def mutate(ffn: LayerFFN, rng: random.Random, *, sizes: bool = True, min_height: int = MIN_HEIGHT,
           max_height: int = MAX_HEIGHT, tries: int = 1000) -> LayerFFN:
    """A valid random neighbour of ``ffn`` (its expression mutated, and with ``sizes`` its size redrawn with
    probability 1/2: search stage 1 moves both, stage 2 the expression only). Linears are never created or
    deleted, so ``wb1`` and ``wb2`` keep appearing once each. After ``tries`` invalid draws, ``ffn`` itself, as
    the official sampler does."""
    for _ in range(tries):
        expr = _mutate_once(ffn.expr, rng)
        stacks, ratio = ffn.stacks, ffn.ratio
        if sizes and rng.random() < 0.5:
            stacks, ratio = rng.choice(STACKS), rng.choice(RATIOS)
        candidate = LayerFFN(expr, stacks, ratio)
        if candidate != ffn and is_valid(candidate, min_height, max_height):
            return candidate
    return ffn
