"""The layering stays as docs/architecture.md draws it: no package imports one it may not, and
no new import circle appears.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a circle a
type checker needs is still a circle a reader has to untangle. An exception to the rules would
have to be listed by name below, with its reason; there is none, and a listed one that has gone
fails the test too, so the lists can only shrink.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "vatsim_collector"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# The exception tree imports nothing of the package, so any module may derive from it.
LEAF = "errors.exceptions"

_ENTRY_POINT = frozenset(
    {
        "config",
        "logsetup",
        "errors",
        "feed",
        "simulator",
        "airspace",
        "airports",
        "movements",
        "events",
        "store",
        "cluster",
        "brokers",
        "pipeline",
    }
)

# Which parts of the package each part may import (besides itself); an entry with a dot names
# one module of a part (config's only import is the leaf exception tree).
ALLOWED: dict[str, frozenset[str]] = {
    "config": frozenset({LEAF}),
    "logsetup": frozenset({"config"}),
    "errors": frozenset({"config"}),
    "feed": frozenset({"config", "errors"}),
    "simulator": frozenset({"config", "feed"}),
    "tracking": frozenset({"feed"}),
    "airspace": frozenset({"config", "errors", "feed", "tracking"}),
    "events": frozenset({"config", "errors"}),
    # The airport reference and the nearest-airport lookup; pipeline, api and store may use it.
    "airports": frozenset({"config", "errors", "feed"}),
    # Movement detection: pure, over samples and the airport index.
    "movements": frozenset({"config", "errors", "airports"}),
    # The store implements the event and error layers' sinks, so it knows their types.
    "store": frozenset(
        {"config", "errors", "feed", "tracking", "airspace", "events", "airports", "movements"}
    ),
    # Several nodes: leadership, fencing, the node registry (cluster); one package per message
    # broker (brokers.nats), carrying the event layer's events.
    "cluster": frozenset({"config", "errors", "store"}),
    "brokers": frozenset({"config", "errors", "events", "store"}),
    "pipeline": frozenset(
        {
            "config",
            "errors",
            "feed",
            "tracking",
            "airspace",
            "airports",
            "movements",
            "events",
            "store",
            "cluster",
            "brokers",
        }
    ),
    "api": frozenset(
        {
            "config",
            "errors",
            "feed",
            "tracking",
            "airspace",
            "airports",
            "movements",
            "events",
            "store",
            "cluster",
            "brokers",
            "pipeline",
        }
    ),
    # The two entry points wire everything (the command also starts the service).
    "service": _ENTRY_POINT | {"api"},
    "cli": _ENTRY_POINT | {"service"},
    "__main__": frozenset({"cli"}),
}

# Imports that break the rules (module -> module), each with its reason.
KNOWN_FORBIDDEN: frozenset[tuple[str, str]] = frozenset()

# Import circles, each as the set of modules in it.
KNOWN_CIRCLES: frozenset[frozenset[str]] = frozenset()


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SOURCE.rglob("*.py")}


def imported(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package's own modules that ``path`` imports, anywhere in it."""
    prefix = PACKAGE + "."
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            # ``from pkg import module`` imports the module; ``from module import name`` not.
            names = [
                f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}"[len(prefix) :] in known
            ]
            names = names or [base]
        for name in names:
            if name.startswith(prefix) and name[len(prefix) :] in known:
                yield name[len(prefix) :]


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for target in imported(path, known):
            if target != name:
                edges[name].add(target)
    return edges


def part(module: str) -> str:
    return module.split(".")[0] or module


def forbidden(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    found = set()
    for source, targets in edges.items():
        allowed = ALLOWED.get(part(source))
        assert allowed is not None, f"{source}: a new part of the package; add it to ALLOWED"
        for target in targets:
            if part(target) != part(source) and not {part(target), target} & allowed:
                found.add((source, target))
    return found


def circles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_part_imports_one_it_may_not() -> None:
    found = forbidden(graph())
    assert found - KNOWN_FORBIDDEN == set(), "imports against the layering"
    assert KNOWN_FORBIDDEN - found == set(), "fixed: take them off KNOWN_FORBIDDEN"


def test_the_exception_tree_is_a_leaf() -> None:
    assert graph().get(LEAF, set()) == set()


def test_no_new_import_circle() -> None:
    found = circles(graph())
    assert found - KNOWN_CIRCLES == set(), "a new import circle"
    assert KNOWN_CIRCLES - found == set(), "fixed: take it off KNOWN_CIRCLES"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("events/bus.py", "from vatsim_collector.store.database import DatabaseService"),
        ("feed/models.py", "from vatsim_collector.pipeline.ingest import Ingestor"),
        ("config.py", "from vatsim_collector.feed.client import FeedClient"),
        ("config.py", "from vatsim_collector.errors.taxonomy import classify"),
    ],
)
def test_the_check_sees_a_forbidden_import(source: str, line: str, tmp_path: Path) -> None:
    """The rules bite: the same walk over a copy of a module with one more import."""
    path = SOURCE / source
    known = modules()
    name = module_name(path)
    copy = tmp_path / path.name
    copy.write_text(path.read_text() + "\n" + line + "\n")
    edges = graph()
    edges[name] = {t for t in imported(copy, known) if t != name}
    assert forbidden(edges) - KNOWN_FORBIDDEN, f"{line!r} in {source} went unnoticed"


# Outside the store, SQLAlchemy may be named in types and exceptions, never to build SQL.
SQLALCHEMY_OUTSIDE_STORE = frozenset({"Connection", "Engine", "Row", "exc"})


def sql_imports_outside_store() -> set[tuple[str, str]]:
    found = set()
    for name, path in modules().items():
        if part(name) == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {(name, a.name) for a in node.names if a.name.startswith("sqlalchemy")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                if node.module == "sqlalchemy.exc":
                    continue  # translating the store's errors at a boundary is allowed
                found |= {
                    (name, f"{node.module}.{a.name}")
                    for a in node.names
                    if node.module != "sqlalchemy" or a.name not in SQLALCHEMY_OUTSIDE_STORE
                }
    return found


def test_every_sql_statement_is_built_in_the_store() -> None:
    assert sql_imports_outside_store() == set()
