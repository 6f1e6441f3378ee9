"""The package declares what it imports, uses only public APIs and keeps its version once."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.version import Version

import translate
from translate.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "translate"


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _requirements(text: str) -> list[Requirement]:
    return [Requirement(line) for line in text.strip().splitlines() if line.strip()]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _extras() -> dict[str, list[Requirement]]:
    section = _setup_cfg()["options.extras_require"]
    return {name: _requirements(section[name]) for name in section}


def _install_requires() -> list[Requirement]:
    return _requirements(_setup_cfg()["options"]["install_requires"])


def _imports() -> dict[str, set[str]]:
    """Top-level module imported -> the package files that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared() -> None:
    declared = {_normalize(r.name) for r in _install_requires()}
    declared |= {_normalize(r.name) for reqs in _extras().values() for r in reqs}
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(_imports().items()):
        top = module.split(".")[0]
        if top == "translate" or top in sys.stdlib_module_names or top == "__future__":
            continue
        # a module of an extra not installed here (openvino, which the test extra leaves
        # out) is taken to come from the distribution of its own name
        dists = {_normalize(d) for d in distributions.get(top, [])} or {_normalize(top)}
        if not dists & declared:
            problems.append(
                f"{top} (from {sorted(dists) or 'no installed distribution'}) in {sorted(files)}"
            )
    assert not problems, "imported but not declared in setup.cfg: " + "; ".join(problems)


def test_no_private_modules_of_other_packages() -> None:
    private = {
        module: files
        for module, files in _imports().items()
        if not module.startswith("translate")
        and any(part.startswith("_") for part in module.split(".") if part != "__future__")
    }
    assert not private, f"private modules imported: {private}"


def test_test_extra_is_built_from_every_other_extra() -> None:
    extras = _extras()
    own = [r for r in extras["test"] if _normalize(r.name) == "translate"]
    assert len(own) == 1, "the test extra names translate[...] once"
    # openvino aside: with it loaded, a long test process crashed later (setup.cfg)
    assert own[0].extras == set(extras) - {"test", "openvino"}
    others = {_normalize(r.name) for name, reqs in extras.items() if name != "test" for r in reqs}
    copied = {_normalize(r.name) for r in extras["test"]} & others
    assert not copied, f"listed in the test extra and in another extra: {copied}"
    assert "ruff" in {_normalize(r.name) for r in extras["dev"]}


def test_minimum_versions_have_the_apis_we_call() -> None:
    # name -> (first version with what we call, what we call)
    needed = {
        "albumentations": ("1.4.21", "Compose.set_random_state"),
        "torch": ("2.4", "torch.optim.Adam(fused=True) on the CPU"),
    }
    floors = {}
    for req in _install_requires():
        for spec in req.specifier:
            if spec.operator == ">=":
                floors[_normalize(req.name)] = Version(spec.version)
    for name, (version, api) in needed.items():
        assert floors[name] >= Version(version), f"{name}>={floors[name]} lacks {api}"


def test_version_is_kept_in_one_place() -> None:
    assert _setup_cfg()["metadata"]["version"] == "attr: translate.__version__"
    assert "version" not in (ROOT / "pyproject.toml").read_text().split("[tool")[0]
    result = CliRunner().invoke(main, ["--version"])
    assert (
        result.exit_code == 0
        and result.output.strip() == f"translate, version {translate.__version__}"
    )


def test_the_readme_install_section_names_every_extra() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Install")
    install = readme[start : readme.index("\n## ", start)]
    extras = _extras()
    for name in extras:
        assert f'pip install -e ".[{name}]"' in install, f"README Install: no line for [{name}]"
    # The README's account of what the test extra names is the extra itself.
    [own] = [r for r in extras["test"] if _normalize(r.name) == "translate"]
    said = re.search(r"`translate\[([\w,]+)\]`", install)[1].split(",")
    assert set(said) == own.extras
