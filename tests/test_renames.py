"""Issue 19's renames: the old names resolve, warning, for one release, and nothing of the
project's own uses them any more."""

import ast
import importlib
import warnings
from pathlib import Path

import pytest

import translate

ROOT = Path(translate.__file__).parent.parent
# old module, old name -> new module, new name
RENAMED = {
    ("translate.model_file", "GeneratorFile"): ("translate.model_file", "LoadedModel"),
    ("translate.model_file", "Preprocessing"): ("translate.model_file", "InputSpec"),
    ("translate.networks.test_mode", "TestMode"): ("translate.networks.eval_mode", "EvalMode"),
    ("translate.networks.test_mode", "set_test_mode"): (
        "translate.networks.eval_mode",
        "set_eval_mode",
    ),
    # the module moved whole: its unrenamed names resolve from the old path too
    ("translate.networks.test_mode", "has_batch_norm"): (
        "translate.networks.eval_mode",
        "has_batch_norm",
    ),
    ("translate.networks.test_mode", "NORM_STATS"): ("translate.networks.eval_mode", "NORM_STATS"),
}
OLD_NAMES = {name for _, name in RENAMED if name not in {"has_batch_norm", "NORM_STATS"}}
OLD_MODULE = "translate.networks.test_mode"
SHIM = ROOT / "translate" / "networks" / "test_mode.py"


@pytest.mark.parametrize(("old", "new"), RENAMED.items(), ids=lambda key: ".".join(key))
def test_an_old_name_is_the_new_object_and_warns_naming_it(old, new):
    with pytest.warns(DeprecationWarning) as record:
        value = getattr(importlib.import_module(old[0]), old[1])
    assert value is getattr(importlib.import_module(new[0]), new[1])
    assert f"use {new[0]}.{new[1]}" in str(record[0].message)
    assert record[0].filename == __file__  # the warning points at the caller


def test_the_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from translate.model_file import InputSpec, LoadedModel  # noqa: F401
        from translate.networks.eval_mode import EvalMode, set_eval_mode  # noqa: F401


@pytest.mark.parametrize("module", ["translate.model_file", OLD_MODULE])
def test_a_name_neither_old_nor_new_is_still_an_attribute_error(module):
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        importlib.import_module(module).NoSuchName  # noqa: B018


def _old_uses(path: Path) -> list[str]:
    """Each use of an old name or of the old module path in ``path``'s code."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Name) and node.id in OLD_NAMES:
            uses.append(f"{node.id} (line {node.lineno})")
        elif isinstance(node, ast.Attribute) and node.attr in OLD_NAMES:
            uses.append(f".{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Import):
            uses += [f"import {a.name}" for a in node.names if a.name.endswith(".test_mode")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module.endswith("test_mode") or names & (OLD_NAMES | {"test_mode"}):
                uses.append(f"from {module} import {sorted(names)} (line {node.lineno})")
    return uses


def test_nothing_of_the_project_uses_an_old_name():
    files = [
        path
        for folder in ("translate", "tools", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in (SHIM, Path(__file__))
    ]
    assert len(files) > 50
    found = {str(p.relative_to(ROOT)): uses for p in files if (uses := _old_uses(p))}
    assert not found, f"old names still used (rename them): {found}"
