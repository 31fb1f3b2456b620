"""The package's shape: no module over 400 lines, no import cycle, one exception path."""

from __future__ import annotations

import ast
import pickle
from collections.abc import Iterator
from pathlib import Path

import zimage_async
from zimage_async import _exceptions, _exceptions_base, _exceptions_image, _exceptions_task

PACKAGE = Path(zimage_async.__file__).parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in _modules().values()
    }


def test_no_module_is_over_the_line_limit() -> None:
    """Every module has at most MAX_LINES lines."""
    counts = _line_counts()
    assert len(counts) > 50, "the package's modules were not found"
    over = {name: lines for name, lines in counts.items() if lines > MAX_LINES}
    assert not over, f"split these modules by noun (at most {MAX_LINES} lines): {over}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run on import: none inside a function or an ``if TYPE_CHECKING``."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_time_nodes(node.orelse)
            continue
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)
        for field in ("body", "orelse", "finalbody"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _import_time_nodes(children)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module *name* imports when it is imported."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _import_time_nodes(tree.body):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            targets.update(base for base in bases if base in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            # A module's own packages are being imported already: no edge to them.
            if base in modules and not name.startswith(f"{base}."):
                targets.add(base)
            targets.update(
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules
            )
    targets.discard(name)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
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


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_is_read() -> None:
    """The graph sees relative, absolute and package imports (so the cycle test can fail)."""
    graph = _import_graph()
    assert "zimage_async._exceptions_base" in graph["zimage_async._exceptions"]
    assert "zimage_async._exceptions" in graph["zimage_async._validation"]
    assert "zimage_async.emulator._faults" in graph["zimage_async.emulator"]
    assert "zimage_async._webhooks" not in graph["zimage_async"]  # only under TYPE_CHECKING
    assert "zimage_async._links" in graph["zimage_async._models"]  # from . import _links
    assert "zimage_async" not in graph["zimage_async._models"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    """No module imports, directly or not, a module that imports it back on import."""
    assert _cycles(_import_graph()) == []


def test_every_exception_is_shown_from_one_module() -> None:
    """Each exception class names zimage_async._exceptions, which re-exports and pickles it."""
    public = [getattr(zimage_async, name) for name in zimage_async.__all__]
    classes = [c for c in public if isinstance(c, type) and issubclass(c, (Exception, Warning))]
    assert len(classes) > 25
    for cls in classes:
        assert cls.__module__ == "zimage_async._exceptions", cls
        assert getattr(_exceptions, cls.__name__) is cls
        assert pickle.loads(pickle.dumps(cls)) is cls  # noqa: S301 - our own bytes
    for module in (_exceptions_base, _exceptions_image, _exceptions_task):
        for name in module.__all__:
            if name != "SHOWN_MODULE":
                assert getattr(_exceptions, name) is getattr(module, name), name
