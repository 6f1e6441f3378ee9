"""`translate prepare ...` and `translate data check`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click
from PIL import Image

from translate.data.datasets import DatasetError, match_pairs
from translate.data.images import list_images
from translate.data.worldmaps import LAYOUTS, MAPS, build_worldmaps


@click.group()
def prepare() -> None:
    """Build and reshape datasets."""


@prepare.command("worldmaps")
@click.argument("out", type=click.Path(file_okay=False), default="datasets/worldmaps")
@click.option("--tile-size", default=128, show_default=True, help="Tile side in pixels.")
@click.option("--width", default=2048, show_default=True, help="World map width before tiling.")
@click.option(
    "--target",
    type=click.Choice([m for m in MAPS if m != "satellite"]),
    default="relief",
    show_default=True,
)
@click.option(
    "--layout",
    "layouts",
    type=click.Choice(LAYOUTS),
    multiple=True,
    default=("aligned", "unpaired"),
    show_default=True,
)
@click.option(
    "--val-every", default=4, show_default=True, help="Every Nth longitude column is val."
)
def worldmaps(
    out: str, tile_size: int, width: int, target: str, layouts: tuple[str, ...], val_every: int
) -> None:
    """Build the worldmaps dataset (satellite -> relief/elevation tiles) in OUT."""
    counts = build_worldmaps(out, tile_size, width, target, layouts, val_every)
    click.echo(f"{out}: {counts['train']} train and {counts['val']} val tiles")


@prepare.command("combine")
@click.argument("dir_a", type=click.Path(exists=True, file_okay=False))
@click.argument("dir_b", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def combine(dir_a: str, dir_b: str, out: str) -> None:
    """Combine matching files of DIR_A and DIR_B into aligned images (A left) in OUT."""
    from translate.data.tools import combine_pairs

    try:
        n = combine_pairs(dir_a, dir_b, out)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out}: {n} aligned images")


@prepare.command("split")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def split(src: str, out: str) -> None:
    """Split aligned images of SRC into OUT/A and OUT/B."""
    from translate.data.tools import split_aligned

    click.echo(f"{out}: {split_aligned(src, out)} pairs")


@click.group()
def data() -> None:
    """Inspect datasets."""


def detect_layout(root: Path) -> str:
    names = {p.name for p in root.iterdir() if p.is_dir()}
    if {"trainA", "trainB"} <= names or {"testA", "testB"} <= names:
        return "unpaired"
    if {"A", "B"} <= names or any(
        {"A", "B"} <= {q.name for q in (root / n).iterdir() if q.is_dir()} for n in names
    ):
        return "folders"
    return "aligned"


@data.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
def check(root: str) -> None:
    """Validate a dataset folder: counts, sizes, modes, layout and every problem found."""
    base = Path(root)
    layout = detect_layout(base)
    click.echo(f"{base}: layout {layout}")
    problems: list[str] = []
    files = list_images(base)
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    per_folder: Counter[str] = Counter()
    for path in files:
        per_folder[str(path.parent.relative_to(base))] += 1
        try:
            with Image.open(path) as img:
                sizes[img.size] += 1
                modes[img.mode] += 1
                img.load()
        except Exception as exc:
            problems.append(f"{path}: not a readable image ({exc})")
    if layout == "folders":
        for a_dir in sorted(base.rglob("A")):
            if (a_dir.parent / "B").is_dir():
                try:
                    match_pairs(a_dir, a_dir.parent / "B")
                except DatasetError as exc:
                    problems.append(str(exc))
    if layout == "aligned":
        problems += [
            f"{base}: image {w}x{h} has an odd width for A|B halves" for (w, h) in sizes if w % 2
        ]
    if not files:
        problems.append(f"{base}: no images found")
    for folder, n in sorted(per_folder.items()):
        click.echo(f"  {folder or '.'}: {n} images")
    click.echo("  sizes: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5)))
    click.echo("  modes: " + ", ".join(f"{m} ({n})" for m, n in modes.most_common()))
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    click.echo(f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


def _derived_command(kind: str, doc: str) -> None:
    @prepare.command(kind, help=doc)
    @click.argument("src", type=click.Path(exists=True, file_okay=False))
    @click.argument("out", type=click.Path(file_okay=False))
    def command(src: str, out: str) -> None:
        from translate.data.tools import make_paired

        click.echo(f"{out}: {make_paired(src, out, kind)} aligned pairs")


_derived_command("edges", "Aligned pairs (Canny edges -> photo) from the photos in SRC.")
_derived_command("grayscale", "Aligned pairs (grayscale -> colour) from the photos in SRC.")
