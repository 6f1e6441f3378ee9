"""Help text that names what the registries hold, without importing them.

``translate --help`` must answer without torch, and the trainers' registry imports it, so
the trainers' names are read from their registration decorators
(``@TRAINERS.register("name")``) in the source of ``translate/training/models``: a new
trainer module appears in the help by itself, and tests/test_cli.py keeps this list equal to
the imported ``TRAINERS``.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

MODELS = Path(__file__).parent / "models"


def _registered(tree: ast.AST, registry: str) -> list[str]:
    """The string arguments of every ``@<registry>.register(...)`` decorator in ``tree``."""
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "register"
                and isinstance(decorator.func.value, ast.Name)
                and decorator.func.value.id == registry
            ):
                names += [a.value for a in decorator.args if isinstance(a, ast.Constant)]
    return names


def _data_kind(node: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> str:
    """The class's ``data = "paired" | "unpaired"``, else its base's in the same file."""
    for statement in node.body:
        if (
            isinstance(statement, ast.Assign)
            and [getattr(t, "id", None) for t in statement.targets] == ["data"]
            and isinstance(statement.value, ast.Constant)
        ):
            return str(statement.value.value)
    bases = [classes[b.id] for b in node.bases if isinstance(b, ast.Name) and b.id in classes]
    return next((kind for kind in (_data_kind(b, classes) for b in bases) if kind), "")


@cache
def trainers() -> dict[str, str]:
    """Every name registered in ``TRAINERS`` (``config.model``), sorted, and the data its
    class declares (``paired`` or ``unpaired``)."""
    found = {}
    for path in sorted(MODELS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        for node in classes.values():
            for name in _registered(ast.Module(body=[node], type_ignores=[]), "TRAINERS"):
                found[name] = _data_kind(node, classes)
    return dict(sorted(found.items()))


def trainer_names() -> tuple[str, ...]:
    """Every name registered in ``TRAINERS``, sorted."""
    return tuple(trainers())


def trainers_by_data() -> str:
    """``Trainers by data: paired pix2pix, ...; unpaired cut, ...``: an epilog for the
    commands whose models or datasets come from any trainer."""
    kinds = sorted(set(trainers().values()))
    groups = [
        f"{kind} {', '.join(n for n, k in trainers().items() if k == kind)}" for kind in kinds
    ]
    return f"Trainers by data: {'; '.join(groups)}."


def trainers_line() -> str:
    """``cut, cyclegan, ...``: the trainers as a help text lists them."""
    return ", ".join(trainer_names())
