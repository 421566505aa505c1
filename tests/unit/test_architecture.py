"""The package's shape: no import circles, no import that runs back up a floor, every package shipped."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"cascade.router": "router", "cascade.storage": "storage", "cascade.migrations": "migrations", "cascade.workers": "workers"}

# Lower floors never import higher ones. Within a floor, only the circle check applies.
FLOORS = [
    ("cascade.router",),  # pure decision logic: no I/O, no Celery, no SQL
    ("cascade.storage", "cascade.migrations"),  # the database
    ("cascade.workers.backends",),  # models
    ("cascade.workers.runtime",),  # Celery app, tier task, scoring, settings
    ("cascade.workers.client",),  # the API applications import
    ("cascade.workers.batch",),  # dataset runs
    ("cascade.workers.api",),  # the HTTP service
    ("cascade.workers.lab",),  # probes, calibration, evaluation, demo, reports
    ("cascade.workers.cli",),  # commands
    ("cascade.workers.__main__",),
]


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (inside functions too: they bind just the same)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in known:
                out.add(name)
    # `from a.b import c` where c is a module names a.b.c; drop the package a.b then.
    return {m for m in out if not any(other.startswith(m + ".") for other in out)} or out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, known) - {name} for name, path in found.items()}


def floor(module: str) -> int | None:
    for index, prefixes in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def test_there_is_no_import_circle():
    edges = graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_no_module_imports_a_higher_floor():
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if floor(module) is not None and floor(target) is not None and floor(target) > floor(module)
    ]
    assert upward == []


def test_every_module_sits_on_a_floor():
    loose = [m for m in modules() if floor(m) is None and m not in ("cascade.workers", "cascade.workers.data")]
    assert loose == []


def test_no_private_name_is_imported_from_another_module():
    private = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cascade"):
                private += [f"{name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


def test_no_two_modules_share_a_name():
    seen: dict[str, list[str]] = {}
    for name, path in modules().items():
        if path.name != "__init__.py" and "versions" not in path.parts:
            seen.setdefault(path.stem, []).append(name)
    assert {stem: names for stem, names in seen.items() if len(names) > 1 and stem not in ("__main__",)} == {}


def test_every_package_folder_is_installed():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {m for m, path in modules().items() if path.name == "__init__.py"}
    assert folders == declared
