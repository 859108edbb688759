"""AutoBERT-Zero's attention layers: computation graphs over Q, K, V and X (Gao et al., AAAI 2022).

AutoTinyBERT searches the sizes of a BERT and EfficientBERT what its FFN computes; AutoBERT-Zero searches what
each *attention* layer computes, from scratch: a layer's output is any expression built from the per-head tensors
``Q``, ``K``, ``V`` (the usual projections) and ``X`` (the layer input, split into heads the same way) by primitive
operations. BERT's attention is one point of that space, ``softmax(Q · Kᵀ / √d) · V`` (:data:`STANDARD`).

**Shape kinds.** Every leaf is a ``[B, H, T, d]`` tensor (kind ``"td"``: tokens x head dimensions). Operations move
between four kinds, ``"td"``, ``"dt"``, ``"tt"`` and ``"dd"`` (the last two axes; batch and heads are carried):

* unary, kind-preserving (:data:`ELEMENTWISE`): ``neg``, ``scale`` (x 1/√d, d the head dimension: the last
  dimension of the leaves), ``softmax`` (over the last axis), ``logsigmoid``, ``softsign``, ``sigmoid``, ``tanh``,
  ``sqrt`` — the *signed* square root ``sign(x)·(sqrt(|x| + ε) − sqrt(ε))``, ε = 1e-6: odd like the other
  activations, defined, continuous and finite (gradient at most ``1 / (2 sqrt(ε))``) on all of R, where a plain
  square root is NaN for x < 0 and has an infinite gradient at 0 (``sign(x)·sqrt(|x| + ε)`` alone would jump by
  ``2 sqrt(ε)`` at 0; subtracting ``sqrt(ε)`` closes the jump);
* ``transpose``: swaps the last two axes (``"td"`` -> ``"dt"``);
* binary: ``add`` and ``mul`` (elementwise, both operands of one kind), ``matmul`` (``(a, b) x (b, c) -> (a, c)``).

A graph is well-typed when every operation's operands have the kinds it needs (:func:`shape` is ``None`` otherwise).

**Masking.** ``mask`` is a ``[B, T]`` bool tensor (True = a real token) or None. Tokens interact in exactly two
places — a ``softmax`` over a token axis (it normalises across tokens) and a ``matmul`` that contracts over the
token axis (it sums across tokens); every other operation is elementwise or acts within one position. So two rules
keep a padded token from ever influencing a real one:

(a) a ``softmax`` whose last axis is a token axis (input kind ``"tt"`` or ``"dt"``) first fills the padded positions
    of that axis with ``torch.finfo(dtype).min`` (they get weight 0);
(b) a ``matmul`` whose left operand's last axis is a token axis (kind ``"?t"``: the contraction runs over tokens)
    first zeroes the left operand's padded positions on that axis (``masked_fill``, so even a NaN or inf computed at
    a padded token stays out).

What padded tokens *output* is left unspecified (the model ignores it).

**Validity** (:func:`problems` lists what fails; the rules a mutation must keep):

1. well-typed, and the output has kind ``"td"`` (a layer maps each token to a vector, like BERT's attention);
2. at least one ``matmul`` contracts over the token axis: without one, tokens never exchange information (softmax
   over tokens alone only rescales each token by a statistic) and the layer is not attention;
3. it reads ``Q`` or ``K``: a graph of ``V`` and ``X`` alone is a mixing layer with neither of attention's
   query/key roles (the model drops the projections a graph does not read, :func:`inputs_used`);
4. at most ``max_nodes`` operations (leaves are free; default 12, the largest published layer has 11): the search
   space stays finite and a layer's cost bounded.

**Duplicates.** :func:`canonical` rewrites a graph so that equal graphs become one candidate: ``neg(neg(x))`` and
``transpose(transpose(x))`` collapse to ``x``, and the operands of the commutative ``add`` and ``mul`` are sorted
by their canonical string. These rewrites are exact (IEEE addition and multiplication commute), so a canonical
graph computes bit-for-bit what the original does; :func:`key` is the canonical string.

**Mutation** (:func:`mutate`, what OP-NAS evolves with) returns the child and the *operation it introduced* (inserted
or substituted), the arm that OP-NAS credits with the child's reward, or ``None`` when it introduced none (a
deletion, a leaf swap): a change an operation did not make is nobody's merit. ``choose_op(ops, rng)`` picks among
the operations allowed at the mutated point (uniform by default; OP-NAS biases it by operation priority).

A graph is a frozen, hashable :class:`Node` tree (its root); ``str`` writes an exact functional form that
:func:`parse` reads back, :func:`formula` a readable one for notebooks.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LEAVES: tuple[str, ...] = ("Q", "K", "V", "X")
KINDS: tuple[str, ...] = ("td", "dt", "tt", "dd")
ELEMENTWISE: tuple[str, ...] = ("neg", "scale", "softmax", "logsigmoid", "softsign", "sigmoid", "tanh", "sqrt")
UNARY: tuple[str, ...] = (*ELEMENTWISE, "transpose")
BINARY: tuple[str, ...] = ("add", "mul", "matmul")
OPS: tuple[str, ...] = (*UNARY, *BINARY)  # the primitive operations: OP-NAS's arms
COMMUTATIVE = frozenset({"add", "mul"})
MAX_NODES = 12  # operations per graph (the largest published layer has 11)
SQRT_EPS = 1e-6
ChooseOp = Callable[[Sequence[str], random.Random], str]


def uniform_op(ops: Sequence[str], rng: random.Random) -> str:
    """The default ``choose_op``: every allowed operation equally likely (the "random mutation" baseline)."""
    return rng.choice(list(ops))


@dataclass(frozen=True)
class Node:
    """A node of an attention graph: a leaf (``op`` in :data:`LEAVES`, no ``args``) or an operation and its
    operands. A graph is its output node."""

    op: str
    args: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        arity = {**dict.fromkeys(LEAVES, 0), **dict.fromkeys(UNARY, 1), **dict.fromkeys(BINARY, 2)}
        if self.op not in arity:
            raise ValueError(f"unknown operation {self.op!r}; valid: {', '.join(arity)}")
        if len(self.args) != arity[self.op]:
            raise ValueError(f"{self.op} takes {arity[self.op]} operand(s), got {len(self.args)}")
        if not all(isinstance(a, Node) for a in self.args):
            raise ValueError(f"{self.op}'s operands must be Nodes, got {self.args!r}")

    @property
    def is_leaf(self) -> bool:
        return not self.args

    def nodes(self) -> Iterator[Node]:
        """Every node, pre-order (as written)."""
        yield self
        for a in self.args:
            yield from a.nodes()

    def __str__(self) -> str:
        return self.op if self.is_leaf else f"{self.op}({','.join(str(a) for a in self.args)})"


def size(node: Node) -> int:
    """The number of operations (non-leaf nodes, a repeated subtree counted each time): what ``max_nodes`` bounds."""
    return sum(not n.is_leaf for n in node.nodes())


def inputs_used(node: Node) -> frozenset[str]:
    """Which of ``Q``, ``K``, ``V``, ``X`` the graph reads (the model omits the projections it does not)."""
    return frozenset(n.op for n in node.nodes() if n.is_leaf)


# -------------------------------------------------------------------------------------------------- typing
def op_kind(op: str, kinds: Sequence[str]) -> str | None:
    """The kind ``op`` produces from operands of ``kinds`` (``None``: ill-typed)."""
    if op in LEAVES:
        return "td"
    if op in ELEMENTWISE:
        return kinds[0]
    if op == "transpose":
        return kinds[0][::-1]
    if op in COMMUTATIVE:
        return kinds[0] if kinds[0] == kinds[1] else None
    (a, b), (b2, c) = kinds
    return a + c if b == b2 else None


def shape(node: Node) -> str | None:
    """The kind of what ``node`` computes, ``"td"``, ``"dt"``, ``"tt"`` or ``"dd"``; ``None`` when ill-typed."""
    kinds = [shape(a) for a in node.args]
    return None if None in kinds else op_kind(node.op, kinds)


def _mixes_tokens(node: Node) -> bool:
    """A ``matmul`` whose contraction runs over the token axis (its left operand's last axis is t)."""
    return node.op == "matmul" and (shape(node.args[0]) or "")[-1:] == "t"


def problems(node: Node, max_nodes: int = MAX_NODES) -> list[str]:
    """Why ``node`` is not a valid attention graph (the module docstring's rules); empty when it is."""
    found = []
    for n in node.nodes():
        if shape(n) is None and all(shape(a) is not None for a in n.args):
            kinds = " and ".join(shape(a) for a in n.args)
            found.append(f"{n.op} cannot take operands of kinds {kinds}: {n}")
    kind = shape(node)
    if kind is not None and kind != "td":
        found.append(f"the output has kind {kind!r}, not 'td' (one vector per token)")
    if not any(_mixes_tokens(n) for n in node.nodes() if shape(n) is not None):
        found.append("no matmul contracts over the token axis: tokens never interact, so it is not attention")
    if not inputs_used(node) & {"Q", "K"}:
        found.append("reads neither Q nor K")
    if size(node) > max_nodes:
        found.append(f"{size(node)} operations, more than max_nodes={max_nodes}")
    return found


def is_valid(node: Node, max_nodes: int = MAX_NODES) -> bool:
    return not problems(node, max_nodes)


# ------------------------------------------------------------------------------------------- canonical form
def canonical(node: Node) -> Node:
    """The canonical form (see the module docstring): double ``neg`` / ``transpose`` removed, commutative operands
    sorted by their canonical string; computes exactly what ``node`` does."""
    args = tuple(canonical(a) for a in node.args)
    if node.op in ("neg", "transpose") and args[0].op == node.op:
        return args[0].args[0]
    if node.op in COMMUTATIVE:
        args = tuple(sorted(args, key=str))
    return Node(node.op, args)


def key(node: Node) -> str:
    """One string per candidate: ``str(canonical(node))``."""
    return str(canonical(node))


# ------------------------------------------------------------------------------------------------ writing
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[(),])")


def parse(text: str) -> Node:
    """The functional form ``str`` writes, e.g. ``matmul(softmax(scale(matmul(Q,transpose(K)))),V)``. Raises
    ``ValueError`` naming the offending token and its character position."""
    tokens, pos, end = [], 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"attention graph {text!r}: cannot read character {pos} ({text[pos]!r})")
        tokens.append((m.group(1), m.start(1)))
        pos = m.end()
    i = 0

    def expect(token: str) -> None:
        nonlocal i
        if i >= len(tokens) or tokens[i][0] != token:
            got = f"{tokens[i][0]!r} at character {tokens[i][1]}" if i < len(tokens) else "the end"
            raise ValueError(f"attention graph {text!r}: expected {token!r}, got {got}")
        i += 1

    def node() -> Node:
        nonlocal i
        if i >= len(tokens):
            raise ValueError(f"attention graph {text!r} ends early")
        name, at = tokens[i]
        i += 1
        if name in LEAVES:
            return Node(name)
        if name not in UNARY and name not in BINARY:
            raise ValueError(f"attention graph {text!r}: unknown operation {name!r} at character {at}")
        expect("(")
        args = [node()]
        if name in BINARY:
            expect(",")
            args.append(node())
        expect(")")
        return Node(name, tuple(args))

    root = node()
    if i != len(tokens):
        raise ValueError(f"attention graph {text!r}: unexpected {tokens[i][0]!r} at character {tokens[i][1]}")
    return root


_FUNCTIONS = ("softmax", "logsigmoid", "softsign", "sigmoid", "tanh", "sqrt")
_INFIX = {"add": (" + ", 1), "mul": (" ⊙ ", 2), "matmul": (" · ", 2)}
_ATOM = 5


def _precedence(node: Node) -> int:
    if node.op in _INFIX:
        return _INFIX[node.op][1]
    return {"scale": 2, "neg": 3, "transpose": 4}.get(node.op, _ATOM)


def formula(node: Node) -> str:
    """Readable math, e.g. ``softmax(Q · Kᵀ / √d) · V`` (``⊙``: elementwise product; ``·``: matrix product)."""

    def wrap(child: Node, below: bool) -> str:
        return f"({formula(child)})" if below else formula(child)

    if node.is_leaf:
        return node.op
    prec, x = _precedence(node), node.args[0]
    if node.op in _FUNCTIONS:
        return f"{node.op}({formula(x)})"
    if node.op == "neg":
        return "−" + wrap(x, _precedence(x) < prec)
    if node.op == "transpose":
        return wrap(x, _precedence(x) < prec) + "ᵀ"
    if node.op == "scale":
        return wrap(x, _precedence(x) < prec) + " / √d"
    symbol, y = _INFIX[node.op][0], node.args[1]
    associative = node.op in COMMUTATIVE and y.op == node.op
    right = _precedence(y) < prec or (_precedence(y) == prec and not associative)
    return wrap(x, _precedence(x) < prec) + symbol + wrap(y, right)


# --------------------------------------------------------------------------------------------- evaluation
def signed_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)·(sqrt(|x| + ε) − sqrt(ε))``: odd, continuous, finite with a finite gradient everywhere."""
    return torch.sign(x) * (torch.sqrt(x.abs() + SQRT_EPS) - math.sqrt(SQRT_EPS))


_ELEMENTWISE_FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg": torch.neg, "logsigmoid": F.logsigmoid, "softsign": F.softsign, "sigmoid": torch.sigmoid,
    "tanh": torch.tanh, "sqrt": signed_sqrt,
}


def evaluate(node: Node, inputs: Mapping[str, torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
    """What the graph computes from ``inputs`` (``{"Q": [B, H, T, d], ...}``, the leaves it reads), with ``mask``
    (``[B, T]`` bool, True = real token) applied by the module docstring's rules. Identical subtrees are computed
    once per call."""
    missing = sorted(inputs_used(node) - set(inputs))
    if missing:
        raise ValueError(f"evaluate {node}: inputs lack {missing}")
    if shape(node) is None:
        raise ValueError(f"evaluate {node}: ill-typed: {problems(node, max_nodes=10 ** 9)}")
    d = next(inputs[n.op] for n in node.nodes() if n.is_leaf).shape[-1]
    keep = None if mask is None else mask.to(torch.bool)[:, None, None, :]
    memo: dict[Node, tuple[torch.Tensor, str]] = {}

    def run(n: Node) -> tuple[torch.Tensor, str]:
        if n not in memo:
            args = [run(a) for a in n.args]
            memo[n] = (_apply(n.op, args, d, keep, inputs), op_kind(n.op, [k for _, k in args]))
        return memo[n]

    return run(node)[0]


def _apply(op: str, args: list[tuple[torch.Tensor, str]], d: int, keep: torch.Tensor | None,
           inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if op in LEAVES:
        return inputs[op]
    x, kind = args[0]
    if op in _ELEMENTWISE_FN:
        return _ELEMENTWISE_FN[op](x)
    if op == "scale":
        return x / math.sqrt(d)
    if op == "transpose":
        return x.transpose(-1, -2)
    if op == "softmax":
        if keep is not None and kind[-1] == "t":  # rule (a)
            x = x.masked_fill(~keep, torch.finfo(x.dtype).min)
        return torch.softmax(x, dim=-1)
    y = args[1][0]
    if op == "add":
        return x + y
    if op == "mul":
        return x * y
    if keep is not None and kind[-1] == "t":  # rule (b): the contraction runs over tokens
        x = x.masked_fill(~keep, 0.0)
    return x @ y


# ------------------------------------------------------------------------------------------------ constants
STANDARD = parse("matmul(softmax(scale(matmul(Q,transpose(K)))),V)")  # BERT: softmax(Q · Kᵀ / √d) · V


def _attention(keys: str, values: str) -> Node:
    """``softmax(Q · (keys)ᵀ / √d) · values``: the frame of every published layer."""
    return parse(f"matmul(softmax(scale(matmul(Q,transpose({keys})))),{values})")


_PUBLISHED_DISTINCT = (
    _attention("neg(logsigmoid(neg(K)))", "add(Q,K)"),
    _attention("neg(logsigmoid(add(add(logsigmoid(Q),Q),K)))", "Q"),
    _attention("neg(logsigmoid(K))", "Q"),
    _attention("add(add(scale(K),softsign(scale(softsign(K)))),V)", "V"),
    _attention("add(scale(K),V)", "V"),
)
# The published 12-layer backbone's attention layers in pattern order (the third formula is used twice).
PUBLISHED_ATTENTION: tuple[Node, ...] = (*_PUBLISHED_DISTINCT[:3], *_PUBLISHED_DISTINCT[2:])
PUBLISHED_KERNELS: tuple[int, ...] = (65, 9, 3, 7, 7, 3)  # its convolution layers' kernels, in pattern order


# ------------------------------------------------------------------------------------------ random graphs
_MIN_COST = {"td": 0, "dt": 1, "tt": 2, "dd": 2}  # fewest operations that produce a kind from leaves


def _producers(kind: str, budget: int) -> list[str]:
    """The operations that can produce ``kind`` within ``budget`` operations (themselves included)."""
    found = [op for op in ELEMENTWISE if _MIN_COST[kind] <= budget - 1]
    if _MIN_COST[kind[::-1]] <= budget - 1:
        found.append("transpose")
    if 2 * _MIN_COST[kind] <= budget - 1:
        found += ["add", "mul"]
    if any(_MIN_COST[kind[0] + b] + _MIN_COST[b + kind[1]] <= budget - 1 for b in "td"):
        found.append("matmul")
    return [op for op in OPS if op in found]


def grow(kind: str, rng: random.Random, choose_op: ChooseOp = uniform_op, budget: int = 4, depth: int = 0) -> Node:
    """A random well-typed tree of ``kind`` with at most ``budget`` operations (``budget >= _MIN_COST[kind]``); the
    deeper, the likelier a leaf where one fits."""
    if kind == "td" and (budget == 0 or rng.random() < 0.25 + 0.2 * depth):
        return Node(rng.choice(LEAVES))
    op = choose_op(_producers(kind, budget), rng)
    rest = budget - 1
    if op in ELEMENTWISE:
        return Node(op, (grow(kind, rng, choose_op, rest, depth + 1),))
    if op == "transpose":
        return Node(op, (grow(kind[::-1], rng, choose_op, rest, depth + 1),))
    if op in COMMUTATIVE:
        left, right = kind, kind
    else:
        middle = rng.choice([b for b in "td" if _MIN_COST[kind[0] + b] + _MIN_COST[b + kind[1]] <= rest])
        left, right = kind[0] + middle, middle + kind[1]
    share = rng.randint(_MIN_COST[left], rest - _MIN_COST[right])
    return Node(op, (grow(left, rng, choose_op, share, depth + 1),
                     grow(right, rng, choose_op, rest - share, depth + 1)))


class MutationFailed(RuntimeError):
    """No valid graph was found within the allowed number of draws."""


def random_graph(rng: random.Random, choose_op: ChooseOp = uniform_op, max_nodes: int = MAX_NODES,
                 tries: int = 2000) -> Node:
    """A random valid graph: random well-typed trees of kind ``"td"`` with at most ``max_nodes`` operations, drawn
    until one is valid (raises :class:`MutationFailed` after ``tries`` draws)."""
    for _ in range(tries):
        node = grow("td", rng, choose_op, rng.randint(3, max(3, max_nodes)))
        if is_valid(node, max_nodes):
            return node
    raise MutationFailed(f"no valid attention graph of at most {max_nodes} operations in {tries} draws")


# -------------------------------------------------------------------------------------------------- mutation
NodePath = tuple[int, ...]
MUTATIONS: tuple[str, ...] = ("replace-op", "insert-unary", "delete-unary", "replace-leaf", "replace-subtree")


def _paths(node: Node, prefix: NodePath = ()) -> Iterator[NodePath]:
    yield prefix
    for k, a in enumerate(node.args):
        yield from _paths(a, (*prefix, k))


def _at(node: Node, path: NodePath) -> Node:
    for k in path:
        node = node.args[k]
    return node


def _replace(node: Node, path: NodePath, new: Node) -> Node:
    if not path:
        return new
    args = list(node.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return Node(node.op, tuple(args))


def op_counts(node: Node) -> Counter[str]:
    """How many times each operation occurs in ``canonical(node)`` (leaves left out)."""
    return Counter(n.op for n in canonical(node).nodes() if not n.is_leaf)


def introduced(parent: Node, child: Node, ops: Iterable[str]) -> str | None:
    """The first of ``ops`` (the operations a mutation placed, top-down) that ``child`` holds more often than
    ``parent``, both in canonical form; ``None`` when none does. So an operation is credited only when the child
    really gained one: inserting ``neg`` above a ``neg`` (which cancels it: a deletion) or regrowing a subtree with
    the operation it already had (``scale(K)`` -> ``scale(Q)``: a leaf swap) introduces nothing."""
    before, after = op_counts(parent), op_counts(child)
    return next((op for op in ops if after[op] > before[op]), None)


def _mutate_once(root: Node, rng: random.Random, choose_op: ChooseOp, max_nodes: int,
                 kinds: Sequence[str] = MUTATIONS) -> tuple[Node, str | None] | None:
    """One random mutation (``None`` when the drawn kind has nothing to act on); see :func:`mutate`."""
    paths = list(_paths(root))
    kind = rng.choice(kinds)
    if kind == "replace-op":
        path = rng.choice([p for p in paths if not _at(root, p).is_leaf])
        node = _at(root, path)
        kinds = [shape(a) for a in node.args]
        ops = [op for op in (UNARY if len(kinds) == 1 else BINARY)
               if op != node.op and op_kind(op, kinds) == shape(node)]
        if not ops:
            return None
        op = choose_op(ops, rng)
        child = _replace(root, path, Node(op, node.args))
        return child, introduced(root, child, [op])
    if kind == "insert-unary":
        path = rng.choice(paths)
        node = _at(root, path)
        op = choose_op([op for op in UNARY if op_kind(op, [shape(node)]) == shape(node)], rng)
        child = _replace(root, path, Node(op, (node,)))
        return child, introduced(root, child, [op])
    if kind == "delete-unary":  # introduces no operation
        options = [p for p in paths if _at(root, p).op in UNARY and shape(_at(root, p).args[0]) == shape(_at(root, p))]
        if not options:
            return None
        path = rng.choice(options)
        return _replace(root, path, _at(root, path).args[0]), None
    if kind == "replace-leaf":  # introduces no operation
        path = rng.choice([p for p in paths if _at(root, p).is_leaf])
        leaf = rng.choice([name for name in LEAVES if name != _at(root, path).op])
        return _replace(root, path, Node(leaf)), None
    if len(paths) < 2:
        return None
    path = rng.choice(paths[1:])  # replace-subtree (never the root: that is a new random graph)
    old = _at(root, path)
    budget = min(3, max_nodes - size(root) + size(old))
    if budget < _MIN_COST[shape(old)]:
        return None
    new = grow(shape(old), rng, choose_op, budget, depth=1)
    child = _replace(root, path, new)
    return child, introduced(root, child, [n.op for n in new.nodes() if not n.is_leaf])


def mutate(node: Node, rng: random.Random, choose_op: ChooseOp = uniform_op, *, max_nodes: int = MAX_NODES,
           tries: int = 200, kinds: Sequence[str] = MUTATIONS) -> tuple[Node, str | None]:
    """A valid child of ``node`` that differs from it by :func:`key`, and the operation the mutation introduced.

    The kind is drawn uniformly among ``kinds`` (default: all of :data:`MUTATIONS`): replace an operation by another
    of the same arity whose typing fits (``choose_op`` among those); insert a unary operation on an edge
    (``choose_op`` among the unary ones that keep the kind there); delete a unary node that does not change the
    kind; replace a leaf by another leaf; replace a non-root subtree by a random one of the same kind with at most 3
    operations (``choose_op`` at each of its nodes). The reported operation is the one placed (a replacement's or
    an insertion's; for a new subtree its topmost operation the child gained, :func:`introduced`), or ``None`` when
    the mutation introduced none: a deletion, a leaf replacement, and a replacement or insertion that canonical form
    cancels (``neg`` inserted above a ``neg``). Draws repeat until the child is valid and new; after ``tries`` draws
    :class:`MutationFailed` is raised (a caller counts it as a rejected proposal). Deterministic given ``rng``'s
    state."""
    unknown = set(kinds) - set(MUTATIONS)
    if unknown or not kinds:
        raise ValueError(f"mutate: kinds must be among {MUTATIONS}, got {list(kinds)}")
    parent_key = key(node)
    for _ in range(tries):
        drawn = _mutate_once(node, rng, choose_op, max_nodes, kinds)
        if drawn is not None and is_valid(drawn[0], max_nodes) and key(drawn[0]) != parent_key:
            return drawn
    raise MutationFailed(f"no valid mutation of {node} within {tries} draws (max_nodes={max_nodes})")
