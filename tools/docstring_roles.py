"""A griffe extension (mkdocs.yml loads it for mkdocstrings) that turns the Sphinx roles of
the package's docstrings (``:func:`~translate.conversion.convert.convert_folder```,
``:class:`Translator```) into cross-references, so the API reference shows links, not the
raw role.

The docstrings keep Sphinx's spelling, which ``help()`` shows readably; only the site's copy
is rewritten. A name is resolved as Sphinx does: from the docstring's own object outwards
(its class, its module, the names it imports), else as a full dotted path, else as the one
object of the package so named. Each becomes an *optional* autorefs reference: a link where
the site renders the target, plain code where it does not (a private helper), instead of a
broken link that fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

# ``:role:`target``` and ``:role:`~target```, the roles the package's docstrings use.
ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)`")


def _find(package: griffe.Module, path: str) -> griffe.Object | griffe.Alias | None:
    """The object at the full ``path`` in ``package``; None if the package has none."""
    try:
        return package[path.removeprefix(f"{package.path}.")]
    except KeyError:
        return None


def resolve(obj: griffe.Object, target: str, by_name: dict[str, list[str]]) -> str | None:
    """The full path of ``target`` as named in ``obj``'s docstring: from ``obj``'s scope
    outwards, else a full path, else the one object of the package with that name (a name the
    module imports only where it is used); None when none of these finds an object."""
    if target.startswith("."):  # Sphinx's relative form: a sibling of obj's module
        target = f"{obj.module.parent.path}{target}" if obj.module.parent else target[1:]
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        if head in scope.members:
            try:
                base = scope.resolve(head)
            except griffe.NameResolutionError:
                break
            target = f"{base}.{rest}" if rest else base
            break
        scope = scope.parent
    if _find(obj.package, target) is not None:
        return target
    found = by_name.get(head, [])
    if len(found) == 1 and _find(obj.package, f"{found[0]}.{rest}" if rest else found[0]):
        return f"{found[0]}.{rest}" if rest else found[0]
    return None


def _shown(match: re.Match[str]) -> str:
    """What a role shows: its target, or with ``~`` the target's last part."""
    _role, short, target = match.groups()
    return target.rsplit(".", 1)[-1] if short else target


def as_code(text: str) -> str:
    """``text`` with each role as Markdown code, for pages written from docstrings outside
    mkdocstrings (the model zoo's table, tools/gen_docs.py)."""
    return ROLE.sub(lambda m: f"`{_shown(m)}`", text)


def link(obj: griffe.Object, match: re.Match[str], by_name: dict[str, list[str]]) -> str:
    """The autorefs reference that replaces one role, or the name as code when the package
    has no such object to link to (a name griffe does not see, such as ``A, B = ...``)."""
    title = f"<code>{_shown(match)}</code>"
    path = resolve(obj, match[3], by_name)
    if path is None:
        return title
    return f'<autoref identifier="{html.escape(path)}" optional>{title}</autoref>'


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """``obj`` and every object defined in it, depth first (not aliases: an imported name is
    handled where it is defined)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _objects(member)
    return found


def rewrite(package: griffe.Module) -> None:
    """Rewrite the roles of every docstring in ``package``."""
    objects = _objects(package)
    by_name: dict[str, list[str]] = {}
    for obj in objects:
        by_name.setdefault(obj.name, []).append(obj.path)
    for obj in objects:
        if obj.docstring is not None:
            text = obj.docstring.value
            obj.docstring.value = ROLE.sub(lambda m, o=obj: link(o, m, by_name), text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of a package once griffe has loaded all of it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        rewrite(pkg)
