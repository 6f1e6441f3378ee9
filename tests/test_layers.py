"""The top-level subpackages are layers: a module imports its own subpackage and the layers
below it, never a layer above nor a sibling of its own layer (CONTRIBUTING.md, "Layers")."""

from __future__ import annotations

from pathlib import Path

from import_graph import PACKAGE, import_graph

# Lowest first. Packages in one tuple are siblings: neither imports the other. The root
# package holds `__version__` and its lazy names (which import nothing until used).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("translate.core",),
    ("translate",),
    ("translate.networks",),
    ("translate.data",),
    ("translate.models",),
    ("translate.training", "translate.inference"),
    ("translate.conversion", "translate.evaluation"),
    ("translate.apps",),
    ("translate.cli",),
)


def layer_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> tuple[int, str]:
    """The layer index and the listed package that hold ``module`` (its nearest listed
    parent: ``translate.models.loading`` is in ``translate.models``)."""
    rank = {package: index for index, tier in enumerate(layers) for package in tier}
    name = module
    while name not in rank:
        if "." not in name:
            raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
        name = name.rpartition(".")[0]
    if name == module.split(".")[0] and module != name:  # a loose module of the root
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return rank[name], name


def layer_violations(
    graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...] = LAYERS
) -> list[str]:
    """Each import of a layer above the importer's, or of a sibling package of its layer."""
    found = []
    for module, targets in sorted(graph.items()):
        rank, package = layer_of(module, layers)
        for target in sorted(targets):
            target_rank, target_package = layer_of(target, layers)
            if target_package != package and target_rank >= rank:
                kind = "a sibling" if target_rank == rank else "a higher layer"
                found.append(f"{module} imports {target} ({kind}: {target_package})")
    return found


def test_every_module_is_in_a_layer() -> None:
    for module in import_graph():
        layer_of(module)  # raises, naming the module, for one that is in none


def test_no_layer_imports_a_higher_one_or_a_sibling() -> None:
    found = layer_violations(import_graph())
    assert not found, "imports against the layer order:\n" + "\n".join(found)


def test_at_most_four_modules_sit_loose_at_the_top() -> None:
    loose = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert len(loose) <= 4, sorted(loose)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "translate"


def test_a_wrong_import_fails_the_check(tmp_path: Path) -> None:
    """A package laid out like ours where a core module imports an app inside a function
    (relatively), training imports inference (its sibling) and an app imports the root's lazy
    name of a higher layer: the check names each; the imports down are accepted."""
    package = _write(
        tmp_path,
        {
            "translate/__init__.py": '_LAZY = {"Translator": "translate.inference.run"}\n',
            "translate/core/__init__.py": "",
            "translate/core/atomic.py": "def f():\n    from ..apps import card\n",
            "translate/models/__init__.py": "",
            "translate/models/loading.py": "from translate.core import atomic\n",
            "translate/training/__init__.py": "",
            "translate/training/engine.py": (
                "from translate.models.loading import x\nimport translate.inference.run\n"
            ),
            "translate/inference/__init__.py": "",
            "translate/inference/run.py": "from translate.models import loading\n",
            "translate/apps/__init__.py": "",
            "translate/apps/card.py": "from translate.inference import run\n",
            "translate/cli.py": "from translate.apps import card\n",
        },
    )
    layers = (
        ("translate.core",),
        ("translate",),
        ("translate.models",),
        ("translate.training", "translate.inference"),
        ("translate.apps",),
        ("translate.cli",),
    )
    graph = import_graph(package)
    assert layer_violations(graph, layers) == [
        "translate.core.atomic imports translate.apps.card (a higher layer: translate.apps)",
        "translate.training.engine imports translate.inference.run "
        "(a sibling: translate.inference)",
    ]
    # the root's lazy name counts as the module it loads
    (package / "models" / "loading.py").write_text("from translate import Translator\n")
    assert (
        "translate.models.loading imports translate.inference.run "
        "(a higher layer: translate.inference)"
    ) in layer_violations(import_graph(package), layers)
