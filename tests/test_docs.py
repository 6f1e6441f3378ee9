"""The documentation: generated reference pages current, every public name documented, and a
README short enough to read that points at the site's pages."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from translate.training import config as config_module

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_docs)


def test_generated_pages_are_current() -> None:
    # A fresh interpreter: click caches each command's help option the first time a help is
    # formatted, so in this process the pages would depend on which tests ran before.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    check = [sys.executable, str(ROOT / "tools" / "gen_docs.py"), "--check"]
    result = subprocess.run(check, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@dataclasses.dataclass
class _TrainWithANewKey(config_module.TrainConfig):
    warmup_steps: int = 0  # steps of learning-rate warm-up


def test_a_new_config_field_makes_the_config_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    before = gen_docs.config_page()
    monkeypatch.setattr(config_module, "TrainConfig", _TrainWithANewKey)
    after = gen_docs.config_page()
    assert "`train.warmup_steps` | `int` | `0` | steps of learning-rate warm-up |" in after
    assert "warmup_steps" not in before
    page = gen_docs.REFERENCE / "config.md"
    monkeypatch.setattr(gen_docs, "pages", lambda: {page: after})
    assert gen_docs.stale() == [page]
    assert gen_docs.main(["--check"]) == 1


def test_field_comments_come_from_the_line_or_the_lines_above() -> None:
    comments = gen_docs._field_comments(config_module.DataConfig)
    assert comments["val_size"].startswith("validation images scored")  # same line
    assert comments["val_split"].startswith("auto: val, else test")  # the lines above
    # a comment above a field belongs to that field only
    assert comments["val_split"] != comments["max_dataset_size"]


def test_every_config_key_is_on_the_config_page() -> None:
    from translate.training.specs import TRAINERS

    page = (gen_docs.REFERENCE / "config.md").read_text()

    def keys(cls: type, path: str) -> list[str]:
        out = []
        for f in dataclasses.fields(cls):
            key = f"{path}.{f.name}" if path else f.name
            section = gen_docs._section_of(config_module.typing.get_type_hints(cls)[f.name])
            out += keys(section, key) if section else [key]
        return out

    expected = [k for k in keys(config_module.Config, "") if not k.startswith("loss")]
    for name in gen_docs.own_names(TRAINERS):
        expected += keys(TRAINERS.get(name).Loss, "loss")
    missing = [k for k in expected if f"| `{k}` |" not in page]
    assert not missing, missing


def test_every_public_name_and_method_has_a_docstring() -> None:
    griffe = pytest.importorskip("griffe")
    package = griffe.load("translate", search_paths=[str(ROOT)], resolve_aliases=False)
    missing = []
    for paths in gen_docs.api_names().values():
        for path in paths:
            obj = package[path.removeprefix("translate.")]
            if obj.is_attribute:
                continue
            members = [obj, *(obj.members.values() if obj.is_class else [])]
            for member in members:
                public = not member.name.startswith("_") or member is obj
                documented = member.is_attribute or member.is_alias or member.docstring
                if public and not documented:
                    missing.append(member.path)
    assert not missing, f"public names without a docstring: {missing}"


def test_readme_is_short_and_its_links_reach_pages() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not link.startswith("http")]
    assert any(link.startswith("docs/") and link.endswith(".md") for link in local)
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_every_page_is_in_the_site_navigation() -> None:
    import yaml

    class _Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python tags; we need the nav only
        pass

    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)["nav"]

    def pages(entries: list) -> list[str]:
        out = []
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            out += pages(value) if isinstance(value, list) else [value]
        return out

    listed = set(pages(nav))
    docs = ROOT / "docs"
    present = {str(p.relative_to(docs)) for p in docs.rglob("*.md")}
    assert sorted(present - listed) == [] and sorted(listed - present) == []


def _shell_commands(text: str) -> list[list[str]]:
    """The `translate ...` commands of a page's bash blocks, as argument lists (after
    ``translate`` or ``-m translate.cli``), continuation lines joined, comments dropped."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split, lexer.commenters = True, "#"
            try:
                tokens = list(lexer)
            except ValueError:  # a line of a multi-line quoted script: not a command line
                continue
            starts = [0] + [i + 1 for i, t in enumerate(tokens) if t in ("&&", "|", ";")]
            for start in starts:
                words = tokens[start:]
                for i, word in enumerate(words):
                    if word in ("&&", "|", ";"):
                        break
                    if word == "translate" or (word == "translate.cli" and words[i - 1] == "-m"):
                        end = next((j for j, t in enumerate(words) if t in ("&&", "|", ";")), None)
                        commands.append(words[i + 1 : end])
                        break
    return commands


def _config_key_known(key: str) -> bool:
    from translate.training.specs import TRAINERS

    parts = key.split(".")
    if parts[:1] in (["generator"], ["discriminator"]) and parts[1:2] == ["options"]:
        return len(parts) == 3  # options are the network's; build_generator checks them
    roots = {"loss": [TRAINERS.get(n).Loss for n in TRAINERS.names()]}
    classes = roots.get(parts[0]) or [config_module.Config]
    names = parts[1:] if parts[0] in roots else parts
    for name in names:
        found = []
        for cls in classes:
            hints = config_module.typing.get_type_hints(cls)
            if name in hints:
                found.append(gen_docs._section_of(hints[name]) or object)
        if not found:
            return False
        classes = [c for c in found if c is not object]
    return True


def test_every_command_on_the_pages_uses_real_options() -> None:
    import click

    from translate.cli import main

    pages = [ROOT / "README.md", *(p for p in (ROOT / "docs").rglob("*.md"))]
    checked, wrong = 0, []
    for page in pages:
        if "reference" in page.parts:
            continue
        for words in _shell_commands(page.read_text()):
            command, ctx, rest = main, click.Context(main), list(words)
            while isinstance(command, click.Group) and rest[:1] in (
                [[name] for name in command.list_commands(ctx)]
            ):
                command = command.get_command(ctx, rest.pop(0))
            if command is main:
                wrong.append(f"{page.name}: translate {' '.join(words)}: no such command")
                continue
            opts = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for i, word in enumerate(rest):
                name = word.split("=", 1)[0]
                if word.startswith("--") and name not in opts | {"--help"}:
                    wrong.append(f"{page.name}: {command.name} has no option {name}")
                if word == "--set" and not _config_key_known(rest[i + 1].split("=", 1)[0]):
                    wrong.append(f"{page.name}: --set {rest[i + 1]}: no such config key")
            checked += 1
    assert checked > 50 and not wrong, wrong


def _number_free(line: str) -> str:
    return " ".join(re.sub(r"\d+(\.\d+)?", "#", line).split())


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `translate` command of docs/walkthrough.md, in order, at the smallest settings
    (6 training steps: 2 epochs of the 9 pairs); each shown output matches what the command
    prints: exactly where nothing depends on training, in shape where the scores do."""
    from click.testing import CliRunner

    from translate.cli import main

    text = (ROOT / "docs" / "walkthrough.md").read_text()
    assert "cp -r datasets/samples photos" in text  # the step the test does itself
    shutil.copytree(ROOT / "datasets" / "samples", tmp_path / "photos")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    shown = dict(re.findall(r"```bash\n(.*?)```\n\n```text\n(.*?)```", text, flags=re.S))
    commands = _shell_commands(text)
    assert [c[:2] for c in commands[:5]] == [
        ["prepare", "grayscale"], ["data", "check"], ["train", "configs/walkthrough_colorize.yaml"],
        ["convert", "runs/colorize"], ["evaluate", "--model"],
    ]  # fmt: skip
    for args in commands:
        small = ["--set", "train.max_steps=6"] if args[0] == "train" else []
        result = CliRunner().invoke(main, args + small)
        assert result.exit_code == 0, (args, result.output)
        block = next((out for cmd, out in shown.items() if " ".join(args) in cmd), None)
        if block is None:
            continue
        # tqdm's bars (`name: 42%|###   | 5/12 [00:00<00:00, 16.29it/s]`), then the lines
        unbarred = re.sub(r"[^\s:]+: +\d+%\|[^|]*\|[^\]]*\]", "", result.output)
        printed = [x for x in re.split(r"[\r\n]", unbarred) if x.strip()]
        if args[0] == "train":  # fewer steps: the first two lines (stdout and stderr, in
            want = block.splitlines()  # either order) and the last stay
            assert set(want[:2]) <= set(printed), (want[:2], printed)
            assert _number_free(want[-1]) in [_number_free(x) for x in printed]
        elif args[0] == "evaluate":
            assert [_number_free(x) for x in block.splitlines()] == [
                _number_free(x) for x in printed
            ]
        else:
            assert block.splitlines() == printed, args


def _package_with_roles_rewritten():  # noqa: ANN202 (griffe is an optional import)
    griffe = pytest.importorskip("griffe")
    extension = griffe.load_extensions(f"{ROOT / 'tools' / 'docstring_roles.py'}:SphinxRoles")
    return griffe.load(
        "translate", search_paths=[str(ROOT)], extensions=extension, resolve_aliases=False
    )


def test_every_sphinx_role_in_a_docstring_becomes_a_reference_to_a_real_object() -> None:
    package = _package_with_roles_rewritten()
    roles_spec = importlib.util.spec_from_file_location(
        "roles", ROOT / "tools" / "docstring_roles.py"
    )
    roles = importlib.util.module_from_spec(roles_spec)
    roles_spec.loader.exec_module(roles)
    docstrings = [(o.path, o.docstring.value) for o in roles._objects(package) if o.docstring]
    raw = [path for path, text in docstrings if re.search(r":[a-z]+:`", text)]
    assert not raw, f"Sphinx roles tools/docstring_roles.py left as text in {raw}"
    targets = {
        (path, target)
        for path, text in docstrings
        for target in re.findall(r'<autoref identifier="([^"]+)" optional>', text)
    }
    assert len(targets) > 100  # the package's docstrings hold some 150 roles
    missing = []
    for path, target in sorted(targets):
        try:
            package[target.removeprefix("translate.")]
        except KeyError:
            missing.append(f"{path}: {target}")
    assert not missing, f"roles naming no object of the package: {missing}"


def test_role_names_resolve_as_sphinx_does() -> None:
    package = _package_with_roles_rewritten()
    convert = package["inference.options.ConvertOptions"].docstring.value
    # `~` shows the last part; the link is the full path
    assert (
        '<autoref identifier="translate.conversion.convert.convert_folder" optional>'
        "<code>convert_folder</code></autoref>"
    ) in convert
    # a name of the docstring's own module, and a method named through its imported class
    options = package["inference.options"].docstring.value
    assert 'identifier="translate.inference.options.RunOptions" optional><code>RunOptions<' in (
        options
    )
    tiled = package["conversion.convert.convert_folder"].docstring.value
    assert 'identifier="translate.inference.translator.Translator.load"' in tiled
    # a name the module does not import at its top: the one object of the package so named
    assert 'identifier="translate.inference.translator.Translator"' in options
    # Sphinx's relative `.module`: a sibling of the docstring's module
    hub = package["models.hub"].docstring.value
    assert 'identifier="translate.models.loading" optional><code>.loading<' in hub
    # a name griffe sees no object for (`A, B = ...`) stays code, not a dead link
    hr_folder = package["data.datasets.HRFolder"].docstring.value
    assert "<code>HR</code>" in hr_folder and 'identifier="translate.data.layout.HR"' not in (
        hr_folder
    )


def test_no_sphinx_role_shows_as_text_on_a_generated_page() -> None:
    shown = [
        f"{path.name}: {role}"
        for path in gen_docs.REFERENCE.glob("*.md")
        for role in re.findall(r":[a-z]+:`[^`]*`", path.read_text())
    ]
    assert not shown
    assert gen_docs.as_code("see :func:`~a.b.f` and :class:`C`") == "see `f` and `C`"


@pytest.mark.slow
def test_the_api_reference_has_a_heading_per_object_and_links_for_roles(tmp_path: Path) -> None:
    pytest.importorskip("mkdocstrings_handlers.python")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)]
    result = subprocess.run(build, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "reference" / "api" / "index.html").read_text()
    headings = set(re.findall(r'<h[2-6] id="([^"]+)" class="doc doc-heading"', page))
    paths = [path for paths in gen_docs.api_names().values() for path in paths]
    assert [path for path in paths if path not in headings] == []
    assert not re.search(r":(func|class|meth|mod|attr|data):", page)
    assert 'href="#translate.conversion.convert.convert_folder"><code>convert_folder</code>' in page


def _setup_extras() -> dict[str, set[str]]:
    """Extra -> the extras it names of this package itself (``test`` names the others)."""
    import configparser

    from packaging.requirements import Requirement

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    out = {}
    for name, value in cfg["options.extras_require"].items():
        lines = [x for x in value.splitlines() if x.strip() and not x.startswith("#")]
        own = [Requirement(x) for x in lines if Requirement(x).name == "translate"]
        out[name] = own[0].extras if own else set()
    return out


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_install_section_names_every_extra_of_setup_cfg(page: str) -> None:
    text = (ROOT / page).read_text()
    start = text.index("## Install")
    install = text[start : text.index("\n## ", start)]
    extras = _setup_extras()
    missing = [name for name in extras if f'pip install -e ".[{name}]"' not in install]
    assert not missing, f"{page}'s Install has no line for the extras {missing}"
    said = re.search(r"`translate\[([\w,]+)\]`", install)[1].split(",")
    assert set(said) == extras["test"]


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_quickstart_offers_cpu_only_torch_before_the_default_one(page: str) -> None:
    text = (ROOT / page).read_text()
    quickstart = text[text.index("## Quickstart") :]
    blocks = re.findall(r"```bash\n(.*?)```", quickstart, flags=re.S)
    cpu, default = blocks[0], blocks[1]
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu
    # fails fast where the index cannot be reached; then the toolkit and the same demo
    assert "--retries 1 --timeout 10" in cpu
    assert (
        cpu.split("--index-url https://download.pytorch.org/whl/cpu")[1]
        == (default.split("activate")[1])
    )
    assert "download.pytorch.org" not in default
