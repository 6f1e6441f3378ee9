"""The image formats conversion writes, one registered record each.

A record says what ``convert`` needs of a format: the suffixes that name it (the first is
what ``--format NAME`` writes), whether it holds an alpha channel (else alpha is dropped),
whether ``--quality`` applies, whether the input's ICC profile is carried over, and whether
``--format`` offers it (others are only kept by ``--format same``). Adding a format is one
:func:`register` call here; ``--format``'s choices, the output suffix, alpha, quality and
ICC handling all read the records.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputFormat:
    """One image format conversion writes (see the module's docstring)."""

    name: str
    suffixes: tuple[str, ...]
    alpha: bool
    quality: bool
    icc: bool = True
    choosable: bool = True


OUTPUT_FORMATS: dict[str, OutputFormat] = {}
SAME = "same"  # --format same: each output keeps its input's format


def register(fmt: OutputFormat) -> OutputFormat:
    """Add ``fmt`` to :data:`OUTPUT_FORMATS`; a name or suffix taken already is refused."""
    taken = {s for f in OUTPUT_FORMATS.values() for s in f.suffixes}
    if fmt.name in OUTPUT_FORMATS or taken & set(fmt.suffixes):
        raise ValueError(f"output format {fmt.name!r}: its name or a suffix is registered already")
    OUTPUT_FORMATS[fmt.name] = fmt
    return fmt


register(OutputFormat("png", (".png",), alpha=True, quality=False))
register(OutputFormat("jpg", (".jpg", ".jpeg"), alpha=False, quality=True))
register(OutputFormat("webp", (".webp",), alpha=True, quality=True))
register(OutputFormat("tiff", (".tif", ".tiff"), alpha=True, quality=False, choosable=False))
register(OutputFormat("bmp", (".bmp",), alpha=False, quality=False, icc=False, choosable=False))
register(OutputFormat("gif", (".gif",), alpha=False, quality=False, icc=False, choosable=False))


def format_choices() -> tuple[str, ...]:
    """What ``--format`` takes: ``same``, the choosable names, then their other suffixes
    (``jpeg``) as aliases."""
    chosen = [f for f in OUTPUT_FORMATS.values() if f.choosable]
    aliases = [s[1:] for f in chosen for s in f.suffixes if s[1:] != f.name]
    return (SAME, *(f.name for f in chosen), *aliases)


def canonical(name: str) -> str:
    """The format a ``--format`` value names: ``jpeg`` -> ``jpg``; ``same`` stays."""
    name = name.lower()
    for fmt in OUTPUT_FORMATS.values():
        if f".{name}" in fmt.suffixes:
            return fmt.name
    return name


def for_suffix(suffix: str) -> OutputFormat | None:
    """The record of the format a file suffix (``.JPG``) names, None for an unknown one."""
    suffix = suffix.lower()
    return next((f for f in OUTPUT_FORMATS.values() if suffix in f.suffixes), None)
