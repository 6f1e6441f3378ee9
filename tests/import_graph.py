"""The import statements of a package as a graph of its modules, read with ``ast``: every
``import``/``from ... import`` counts, including those inside functions (a lazy import hides
a dependency from Python's loader, not from the layering). tests/test_imports.py looks for
circles in it, tests/test_layers.py for imports against the layer order."""

from __future__ import annotations

import ast
from pathlib import Path

import translate

PACKAGE = Path(translate.__file__).parent


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """The dotted name of the module at ``path`` inside the package folder ``package``."""
    parts = (package.name,) + path.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The package module `name` denotes: itself, or its nearest package-module parent."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    """A package's ``_LAZY = {name: module}`` (translate.core.lazy): the module a
    ``from package import name`` really loads."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "_LAZY" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    return {}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (not itself)."""
    files = {module_name(path, package): path for path in package.rglob("*.py")}
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in files.items()}
    lazy = {
        name: _lazy_table(tree) for name, tree in trees.items() if files[name].stem == "__init__"
    }
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        here = name if files[name].name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # `from pkg import name`: the submodule, or pkg
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        targets.add(submodule)
                    else:
                        targets.add(lazy.get(base, {}).get(alias.name, base))
        resolved = {_resolve(target, modules) for target in targets}
        graph[name] = {target for target in resolved if target and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that starts and ends on the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
