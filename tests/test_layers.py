"""The house rules, read from the source: every import runs downward, no module cycle, and the
lower layers type what they take.

The layers (docs in ``docs/architecture.md``), bottom first. A package may import its own layer's
packages (``models`` reads ``features``' frames) and any layer below, never one above; cycles
between modules are refused at any distance. Imports inside functions and under
``TYPE_CHECKING`` count: a function-local import that dodges a cycle is still the cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parents[1]

LAYER = {
    "core": 0,
    "features": 1,
    "models": 1,
    "synthetic": 1,
    "sales_import": 1,
    "prediction_types": 2,
    "webhooks": 2,
    "reporting": 2,
    "worker": 3,
    "tasks": 4,
    "migrations": 5,
    "bench": 6,
    "tests": 6,
}
TYPED_PACKAGES = ("core", "features", "models")


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYER:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """Project modules imported by one module, with the line of each import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, node.lineno))
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    return LAYER[module.split(".")[0]]


def test_every_import_runs_downward() -> None:
    upward = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target} (layer {_layer(target)} above {_layer(name)})"
        for name, edges in GRAPH.items()
        for target, line in edges
        if _layer(target) > _layer(name)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in GRAPH:
        if root in index:
            continue
        work = [(root, iter([t for t, _ in GRAPH[root]]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter([t for t, _ in GRAPH[child]])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_cycle() -> None:
    described = []
    for component in _cycles():
        members = set(component)
        edges = [
            f"  {MODULES[name].relative_to(ROOT)}:{line} imports {target}"
            for name in component
            for target, line in GRAPH[name]
            if target in members
        ]
        described.append(" <-> ".join(component) + "\n" + "\n".join(edges))
    assert not described, "module cycles:\n" + "\n".join(described)


def test_cycle_finder_finds_a_planted_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk above would pass vacuously if it never saw an edge: plant a cycle and see it."""
    planted = {name: list(edges) for name, edges in GRAPH.items()}
    planted["core.units"] = [*planted["core.units"], ("core.replica", 1)]
    planted["core.replica"] = [*planted["core.replica"], ("core.units", 1)]
    monkeypatch.setattr(__import__(__name__, fromlist=["GRAPH"]), "GRAPH", planted)
    assert ["core.replica", "core.units"] in _cycles()
    assert any(t.startswith("core.") for t, _ in GRAPH["features.demand"])


# A SQL reader module: a ``features`` module that imports the replica reader. ``models`` takes
# frames and the types beside them (``features.*_frames``, ``features.model_frames``), never these.
SQL_READERS = {name for name, edges in GRAPH.items()
               if name.startswith("features.") and any(t == "core.replica" for t, _ in edges)}
# Modules being rewritten in the same change set (issue 27): each must still import a reader,
# so the entry goes the moment its import does.
READER_IMPORTS_PENDING: set[str] = set()


def test_no_models_module_imports_a_sql_reader_module() -> None:
    assert {"features.demand", "features.inventory", "features.kitchen", "features.customers"} <= SQL_READERS
    found = {
        name: [f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}" for target, line in edges
               if target in SQL_READERS]
        for name, edges in GRAPH.items() if name.startswith("models.")
    }
    found = {name: lines for name, lines in found.items() if lines}
    strays = [line for name, lines in found.items() if name not in READER_IMPORTS_PENDING for line in lines]
    assert not strays, "models/ imports a SQL reader module (move the type to a frames module or core/):\n" + \
        "\n".join(strays)
    assert READER_IMPORTS_PENDING <= set(found), f"no longer pending: {READER_IMPORTS_PENDING - set(found)}"


def test_public_functions_of_lower_layers_type_their_parameters() -> None:
    untyped = []
    for name, path in MODULES.items():
        if name.split(".")[0] not in TYPED_PACKAGES:
            continue
        tree = ast.parse(path.read_text())
        scopes = [(tree, "")] + [
            (node, node.name + ".") for node in tree.body if isinstance(node, ast.ClassDef)
            and not node.name.startswith("_")
        ]
        for scope, prefix in scopes:
            for node in scope.body:
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
                    continue
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                if prefix and args and args[0].arg in {"self", "cls"}:
                    args = args[1:]
                args += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
                missing = [a.arg for a in args if a.annotation is None]
                if missing:
                    untyped.append(f"{path.relative_to(ROOT)}:{node.lineno} {prefix}{node.name}({', '.join(missing)})")
    assert not untyped, "untyped parameters:\n" + "\n".join(untyped)


# The house's size rule (docs/architecture.md): a module over this many lines, or a function over
# the second figure, mixes concerns; tests/ and synthetic/ (the generator's tables) are exempt.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 90


def test_no_module_or_function_outgrows_the_size_rule() -> None:
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {"tests", "synthetic"} or rel.parts[0].startswith("."):
            continue
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "split these (docs/architecture.md, the size rule):\n" + "\n".join(too_long)
