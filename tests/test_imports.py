"""atb's modules import each other in the order of the pipeline, without cycles.

The graph is read from the source with ``ast`` (nothing is imported): every ``from .x import ...``,
``from . import x``, ``from ..x import ...`` (inside ``atb/data``) and ``import atb.x`` / ``from atb.x import ...``,
at module level or inside a function (a lazy import is still a dependency). ``atb/data/`` is one node.

Fine-tuning (``finetune``, ``metrics``) sits before the search: the paper's own fitness fine-tunes every
candidate (``PaperFitness``), so the search depends on it, and development only calls it from the notebooks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ATB = Path(__file__).resolve().parents[1] / "atb"

# The pipeline, in order. A module may import modules of its own row or of earlier rows, never of later ones.
PIPELINE: list[tuple[str, ...]] = [
    ("space",),                                                    # Arch, SearchSpace: the vocabulary
    ("elastic", "modeling"),                                       # elastic layers, the standalone BERT
    ("superbert", "supernet"),                                     # the SuperPLM; the weight-sharing supernets' interface
    ("extract",),                                                  # sub-model -> standalone model
    ("controls",),                                                 # untrained controls of a shape
    ("objectives", "warmstart", "sampler", "checkpoint", "train", "distill"),  # one-shot, further, layer-wise KD
    ("latency",),                                                  # timing, sweeps, the window
    ("latency_predictor",),                                        # predictors fitted to a sweep
    ("finetune", "metrics"),                                       # GLUE / SQuAD (the paper fitness uses it)
    ("deployment",),                                               # other runtimes: latency, int8's accuracy
    ("search", "fitness"),                                         # latency-constrained search
    ("pareto",),                                                   # one search for the whole front (NSGA-II)
    ("ranking",),                                                  # Kendall-tau studies of the fitness
    ("develop",),                                                  # extraction + further training of the picks
    ("budgets",),                                                  # fine-tuning budgets the teacher can learn from
    ("rerank",),                                                   # screen, then rerank by a short held-out fine-tune
    ("efficientbert", "autobert_zero"),                            # EfficientBERT, AutoBERT-Zero: the same pipeline
    ("comparison",),                                               # the three systems in one table (notebook 10)
    ("report",),                                                   # REPORT.md from the records
    ("reproduce",),                                                # the notebook runner
]
# Utilities: any module may import them; they import only each other and ``space`` (``engine``: precision and
# optimizer of every training loop; ``dropout``: the models' dropout masks; ``progress``: the one progress bar per step
# of the study).
UTILITIES = {"data", "records", "layout", "config", "plots", "zoo", "teacher", "stats", "engine", "dropout", "progress"}
UTILITY_MAY_IMPORT = UTILITIES | {"space"}
PACKAGE = "__init__"  # the package's public names; outside the order, but part of the cycle check

LEVEL = {module: level for level, row in enumerate(PIPELINE) for module in row}


def node(path: Path) -> str:
    """``atb/x.py`` -> ``x``; anything under ``atb/data/`` -> ``data``; ``atb/__init__.py`` -> ``__init__``."""
    parts = path.relative_to(ATB).with_suffix("").parts
    return "data" if parts[0] == "data" else parts[0]


def _target(name: str) -> str:
    """The node of an absolute dotted name inside atb (``atb.x.y`` -> ``x``; ``atb`` -> ``__init__``)."""
    parts = name.split(".")[1:]
    return parts[0] if parts else PACKAGE


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported node, line, lazy)`` for every import of another atb module in ``path``."""
    package = ("atb", *path.relative_to(ATB).parent.parts)  # the package the file's relative imports start from
    found = []

    def visit(tree: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(tree):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    stem = ".".join((*base, *([child.module] if child.module else [])))
                else:
                    stem = child.module or ""
                if stem == "atb" or stem.startswith("atb."):
                    if stem == "atb":  # from . import x, y: submodules if they exist, else the package's names
                        targets = [a.name if (ATB / f"{a.name}.py").exists() or (ATB / a.name).is_dir() else PACKAGE
                                   for a in child.names]
                    else:
                        targets = [_target(stem)]
            elif isinstance(child, ast.Import):
                targets = [_target(a.name) for a in child.names if a.name == "atb" or a.name.startswith("atb.")]
            found.extend((t, child.lineno, lazy) for t in targets)
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def graph() -> dict[str, list[tuple[str, str]]]:
    """node -> [(imported node, where)], ``where`` = ``file:line`` (+ ``lazy``); self-imports left out."""
    edges: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(ATB.rglob("*.py")):
        source = node(path)
        edges.setdefault(source, [])
        for target, line, lazy in imports(path):
            if target != source:
                where = f"{path.relative_to(ATB.parent)}:{line}" + (" (lazy)" if lazy else "")
                edges[source].append((target, where))
    return edges


GRAPH = graph()


def test_the_parser_sees_the_known_imports():
    targets = {s: {t for t, _ in edges} for s, edges in GRAPH.items()}
    assert {"space", "modeling", "records", "zoo"} <= targets["latency"]
    assert "latency" in targets["latency_predictor"] and "data" in targets["finetune"]
    assert "teacher" in targets["train"]  # a lazy import inside a method
    assert "paths" not in targets["data"]  # atb/data/* is one node


def test_every_module_has_a_place_in_the_table():
    placed = set(LEVEL) | UTILITIES | {PACKAGE}
    assert not set(GRAPH) - placed, f"add {sorted(set(GRAPH) - placed)} to PIPELINE or UTILITIES in {__file__}"
    unknown = {t for edges in GRAPH.values() for t, _ in edges} - placed
    assert not unknown, f"imports of modules that do not exist or have no place: {sorted(unknown)}"


def test_no_import_cycle():
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after

    def dfs(module: str, stack: list[str]) -> list[str] | None:
        state[module] = "open"
        for target, _ in GRAPH.get(module, []):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [module, target] if target in stack else [module, target]
            if target not in state and (cycle := dfs(target, stack + [module])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := dfs(module, [])):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def backward_edges(module: str) -> list[str]:
    """The imports of ``module`` that go against the table, described."""
    wrong = []
    for target, where in GRAPH[module]:
        if module in UTILITIES:
            if target not in UTILITY_MAY_IMPORT:
                wrong.append(f"{where}: utility {module} imports {target} (utilities import only {sorted(UTILITY_MAY_IMPORT)})")
        elif module in LEVEL and target in LEVEL and LEVEL[target] > LEVEL[module]:
            wrong.append(f"{where}: {module} (row {LEVEL[module]}) imports {target}, which comes later "
                         f"(row {LEVEL[target]})")
    return wrong


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != PACKAGE))
def test_imports_follow_the_pipeline(module):
    wrong = backward_edges(module)
    assert not wrong, "\n".join(wrong)


SYSTEMS = ("efficientbert", "autobert_zero")  # the two NAS systems built on the shared pipeline


@pytest.mark.parametrize("system", SYSTEMS)
def test_no_system_package_imports_another(system):
    """What EfficientBERT and AutoBERT-Zero share (layer-wise KD, the proxy, candidate development, the supernet
    output) lives in the shared pipeline (``distill``, ``develop``, ``supernet``, ``rerank``), not in one system."""
    others = [f"{where}: {system} imports {target}" for target, where in GRAPH[system]
              if target in SYSTEMS and target != system]
    assert not others, "\n".join(others)


def test_latency_predictor_depends_on_latency_not_the_reverse():
    assert "latency" in {t for t, _ in GRAPH["latency_predictor"]}
    assert "latency_predictor" not in {t for t, _ in GRAPH["latency"]}
