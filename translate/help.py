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

MODELS = Path(__file__).parent / "training" / "models"


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


@cache
def trainer_names() -> tuple[str, ...]:
    """Every name registered in ``TRAINERS`` (``config.model``), sorted."""
    names = []
    for path in sorted(MODELS.glob("*.py")):
        names += _registered(ast.parse(path.read_text(encoding="utf-8")), "TRAINERS")
    return tuple(sorted(names))


def trainers_line() -> str:
    """``cut, cyclegan, ...``: the trainers as a help text lists them."""
    return ", ".join(trainer_names())
