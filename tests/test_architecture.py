"""The shape of `app/`: no import cycles, the gateway does not reach into the store, and reviewer
channels use the approvals service alone.

Provenance: Airlock-defined (issue 11, items 4 and 10: "a composition root instead of a service
locator"; docs/architecture.md, "Layers" and "Composition"). The import graph is read from the
source with `ast`, not by importing: every `import` counts, including those under
`TYPE_CHECKING` and inside functions, because a cycle hidden from the interpreter is still two
modules that cannot be understood, tested or replaced apart.

A submodule import (`from app.slack.channel import SlackChannel`) is an edge to that module only,
not to its package's `__init__`: otherwise every package whose `__init__` wires its own submodules
would count as a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

APP: Final = Path(__file__).resolve().parent.parent / "app"


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(APP.rglob("*.py"))}


def _imported(node: ast.AST, here: str, is_package: bool, modules: Mapping[str, Path]) -> Iterator[str]:
    """The `app` modules one import statement names (for `from X import y`, `X.y` when it is a module)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = here.split(".") if is_package else here.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def import_graph() -> dict[str, set[str]]:
    """Each module of `app/` and the `app` modules it imports, anywhere in its source."""
    modules = app_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {
            target
            for node in ast.walk(tree)
            for target in _imported(node, name, path.name == "__init__.py", modules)
            if target in modules and target != name
        }
        graph[name] = targets
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_through_three_modules_and_ignores_a_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_imports_under_type_checking_and_inside_functions() -> None:
    graph = import_graph()
    assert "app.runtime" in graph["app.asgi"], "a plain top-level import"
    assert "app.store.audit" in graph["app.cli"], "an import under TYPE_CHECKING"
    assert "app.store.migrate" in graph["app.cli"], "an import inside a function"
    assert "app.approvals.channels" in graph["app.slack"], "a from-import of a module's name"


def test_app_has_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_only_the_entry_points_import_the_composition_root() -> None:
    """Components get narrow collaborators from `app/runtime.py`; none reaches back for the root."""
    graph = import_graph()
    assert {name for name, targets in graph.items() if "app.runtime" in targets} <= {"app.asgi", "app.cli"}


def test_the_gateway_imports_nothing_from_the_store() -> None:
    graph = import_graph()
    reaching = {
        name: sorted(target for target in targets if target.startswith("app.store"))
        for name, targets in graph.items()
        if name.startswith("app.gateway")
    }
    assert {name: targets for name, targets in reaching.items() if targets} == {}


LIFECYCLE_INTERNALS: Final = frozenset({"app.approvals.ledger", "app.approvals.decisions", "app.store.approvals"})
"""What only the approvals service and the modules below it import: the ledger (the one way state
changes), the decision path, and the approvals table's queries."""


def reviewer_channel(name: str) -> bool:
    """The web inbox, Slack, the reviewers' JSON API and the CLI (whose `approvals` commands are one).

    The CLI is one module, so the rule covers all of it: its other commands have no business with
    the lifecycle's internals either.
    """
    return name.split(".")[:2] in (["app", "inbox"], ["app", "slack"]) or name in {"app.approvals.api", "app.cli"}


def test_reviewer_channels_reach_approvals_only_through_the_service() -> None:
    """Each channel reads, searches and decides through `app/approvals/service.py`, never around it."""
    graph = import_graph()
    reaching = {
        name: sorted(targets & LIFECYCLE_INTERNALS) for name, targets in graph.items() if reviewer_channel(name)
    }
    assert {"app.inbox.routes", "app.slack.interactions", "app.approvals.api", "app.cli"} <= reaching.keys()
    assert {name: targets for name, targets in reaching.items() if targets} == {}
