"""`translate prepare ...` and `translate data check`."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
import numpy as np
from PIL import Image

from translate.core.errors import user_errors
from translate.data.images import ImageReadError, is_image_path, read_label_map, scan_files
from translate.data.labels import (
    INSTANCE_IDS,
    MAX_ID,
    Labels,
    count_classes,
    describe_counts,
    instance_folder,
    instance_maps,
    instance_size_problem,
    read_labels_file,
)
from translate.data.layout import (
    ALIGNED_RULE,
    FITS,
    HR,
    PAIRED,
    UNPAIRED,
    DatasetError,
    Layout,
    detect_layouts,
    image_size,
    name_some,
    not_aligned,
    without_partner,
)
from translate.data.public import NAMES
from translate.data.worldmaps import LAYOUTS, MAPS, build_worldmaps, build_worldmaps_labels


def tile_grid_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The world maps' tile grid: ``--tile-size`` and ``--width``."""
    command = click.option(
        "--width", default=2048, show_default=True, type=click.IntRange(min=2),
        help="World map width before tiling.",
    )(command)  # fmt: skip
    return click.option(
        "--tile-size", default=128, show_default=True, type=click.IntRange(min=1),
        help="Tile side in pixels.",
    )(command)  # fmt: skip


val_every_option = click.option(
    "--val-every", default=4, show_default=True, type=click.IntRange(min=2),
    help="Every Nth longitude column is val.",
)  # fmt: skip


@click.group()
def prepare() -> None:
    """Build and reshape datasets."""


@prepare.command("worldmaps")
@click.argument("out", type=click.Path(file_okay=False), default="datasets/worldmaps")
@tile_grid_options
@click.option("--target", type=click.Choice([m for m in MAPS if m != "satellite"]),
              default="relief", show_default=True)  # fmt: skip
@click.option("--layout", "layouts", type=click.Choice(LAYOUTS), multiple=True,
              default=("aligned", "unpaired"), show_default=True)  # fmt: skip
@val_every_option
def worldmaps(
    out: str, tile_size: int, width: int, target: str, layouts: tuple[str, ...], val_every: int
) -> None:
    """Build the worldmaps dataset (satellite -> relief/elevation tiles) in OUT."""
    with user_errors():
        counts = build_worldmaps(out, tile_size, width, target, layouts, val_every)
    click.echo(f"{out}: {counts['train']} train and {counts['val']} val tiles")


@prepare.command("worldmaps-labels")
@click.argument("out", type=click.Path(file_okay=False), default="datasets/worldmaps-labels")
@tile_grid_options
@val_every_option
def worldmaps_labels(out: str, tile_size: int, width: int, val_every: int) -> None:
    """Build worldmaps-labels in OUT: label maps of six classes read from the elevation map
    (deep sea, shelf, lowland, upland, mountains, ice) in {train,val}/A, the satellite image
    in {train,val}/B, and OUT/labels.yaml, the data section of a config for it."""
    with user_errors():
        counts = build_worldmaps_labels(out, tile_size, width, val_every)
    click.echo(
        f"{out}: {counts['train']} train and {counts['val']} val tiles; classes in "
        f"{Path(out) / 'labels.yaml'}"
    )


@prepare.command("sr-photos")
@click.argument("out", type=click.Path(file_okay=False), default="datasets/sr-photos")
@click.option("--long-side", default=1024, show_default=True, type=click.IntRange(min=16),
              help="HR photos shrunk to this long side (never enlarged).")  # fmt: skip
@click.option("--scale", default=4, show_default=True, type=click.IntRange(min=2),
              help="A (LR) is B (HR) shrunk this many times, PIL bicubic.")  # fmt: skip
@click.option("--train-size", default=480, show_default=True, type=click.IntRange(min=0),
              help="Train photos cut into squares of this many HR px (0: whole).")  # fmt: skip
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def sr_photos(out: str, long_side: int, scale: int, train_size: int, no_progress: bool) -> None:
    """Paired x4 super-resolution data from real photographs that Debian packages and
    scikit-image ship: OUT/{train,val,test}/{A,B} (A: LR, B: HR), and OUT/check/{A,B} from
    plasma-workspace-wallpapers when it is installed (never trained nor selected on)."""
    from translate.data.photos import APT_HINT, SKIMAGE, build_sr_photos, installed_photos

    sources, missing = installed_photos()
    with user_errors():
        counts = build_sr_photos(out, sources, long_side, scale, train_size or None,
                                 progress=not no_progress)  # fmt: skip
    click.echo(f"{out}: " + ", ".join(
        f"{split} {photos} photos ({pairs} pairs)" for split, (photos, pairs) in counts.items()
    ))  # fmt: skip
    debian = [p for p in missing if p not in (SKIMAGE, "plasma-workspace-wallpapers")]
    if debian:
        click.echo(f"note: {', '.join(debian)} not installed, their photos left out "
                   f"(the full set: {APT_HINT})", err=True)  # fmt: skip
    if SKIMAGE in missing:
        click.echo('note: scikit-image\'s photos left out: pip install "translate[photos]"',
                   err=True)  # fmt: skip


@prepare.command("download")
@click.argument("name", type=click.Choice(NAMES))
@click.option(
    "--root", default="datasets", show_default=True, type=click.Path(file_okay=False),
    help="The dataset goes to ROOT/NAME.",
)  # fmt: skip
@click.option(
    "--unpaired", is_flag=True,
    help="The CycleGAN version of facades, maps or cityscapes (trainA/ ... testB/).",
)  # fmt: skip
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def download(name: str, root: str, unpaired: bool, no_progress: bool) -> None:
    """Download a public pix2pix or CycleGAN dataset (the reference's archives), or a
    super-resolution set (div2k: train/ and val/ HR images; set5, set14: test/), to ROOT/NAME.

    An interrupted download resumes; TRANSLATE_MIRROR replaces the servers (a mirror serves
    each file at its path on its own server).
    """
    from translate.data.public import download_dataset

    with user_errors():
        out = download_dataset(name, root, unpaired, progress=not no_progress)
    click.echo(out)


@prepare.command("combine")
@click.argument("dir_a", type=click.Path(exists=True, file_okay=False))
@click.argument("dir_b", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def combine(dir_a: str, dir_b: str, out: str) -> None:
    """Combine matching files of DIR_A and DIR_B into aligned images (A left) in OUT."""
    from translate.data.tools import combine_pairs

    with user_errors():
        n = combine_pairs(dir_a, dir_b, out)
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


# which trainers read each kind of data, for people reading `data check`
TRAINERS = {PAIRED: "pix2pix", UNPAIRED: "cyclegan", HR: "sr"}


def _split_counts(layout: Layout, problems: list[str]) -> tuple[str, dict[Path, Path]]:
    """Per split the image count (A + B when unpaired), and the pairs to check, as
    {A file: B file}; missing partners and empty splits go to ``problems``."""
    counts, pairs = [], {}
    for split, (dir_a, dir_b) in layout.splits.items():
        if layout.data == HR:
            images = layout.images(split)
            counts.append(f"{split} {len(images)}")
            empty = [] if images else [dir_a]
        elif layout.data == UNPAIRED:
            files_a, files_b = layout.domains(split)
            counts.append(f"{split} {len(files_a)} A + {len(files_b)} B")
            empty = [d for d, f in ((dir_a, files_a), (dir_b, files_b)) if not f]
        else:
            try:
                found, alone = layout.some_pairs(split)
            except DatasetError as exc:
                problems.append(str(exc))
                found, alone = [], []
            if alone:
                problems.append(without_partner(alone))
            lone = f" (+{len(alone)} file(s) without a partner)" if alone else ""
            counts.append(f"{split} {len(found)}{lone}")
            pairs.update(found)
            empty = [] if found else [dir_a]
        problems += [f"{d}: split {split!r} of the {layout.title} layout is empty" for d in empty]
    return ", ".join(counts), pairs


def _inspect(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode of an image file, decoding it all (truncation shows)."""
    size = image_size(path)
    with Image.open(path) as img:
        img.load()
        return size, img.mode


def _report(problems: list[str]) -> NoReturn:
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    click.echo(f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


def _check_single_image(path: Path) -> None:
    """One file: what ``data.single_image`` needs to know of it."""
    try:
        (width, height), mode = _inspect(path)
    except Exception as exc:
        _report([f"{path}: not a readable image ({exc})"])
    click.echo(
        f"{path}: one image, {width}x{height}, mode {mode}; as data.single_image.a or .b "
        f"(unpaired data, e.g. {TRAINERS[UNPAIRED]}) it takes data.preprocess.crop_size up "
        f"to {min(width, height)}"
    )
    _report([])


def _aligned_or_hr(layouts: list[Layout], sizes: dict[Path, tuple[int, int]]) -> list[Layout]:
    """The folders of single images read one way: aligned pairs when any image there is an
    A|B pair (the others then a problem), else high-resolution images (super-resolution
    data), said in a note so that who meant pairs sees why."""
    aligned = next((x for x in layouts if x.name == "aligned"), None)
    if aligned is None:
        return layouts
    files = [f for split in aligned.splits for f in aligned.images(split) if f in sizes]
    wrong = not_aligned({f: sizes[f] for f in files})
    if files and len(wrong) == len(files):
        click.echo(
            f"note: all {len(wrong)} image(s) are not A|B pairs (twice as wide as high): "
            "read as high-resolution images (super-resolution data), not aligned pairs"
        )
        return [x for x in layouts if x is not aligned]
    return [x for x in layouts if x.name != "hr"]


@data.command("check")
@click.argument("root", type=click.Path(exists=True))
@click.option(
    "--label-nc", type=click.IntRange(min=1), default=None,
    help="The A files are label maps of this many classes (data.label_nc): report the "
    "classes present, their frequencies and the files with ids out of range.",
)  # fmt: skip
@click.option(
    "--ignore-id", type=click.IntRange(0, MAX_ID), default=None,
    help="With --label-nc: the id of unlabelled pixels (data.labels.ignore), allowed beyond "
    "the classes and not counted.",
)  # fmt: skip
@click.option(
    "--labels", "labels_file", type=click.Path(exists=True, dir_okay=False), default=None,
    help="Instead of --label-nc and --ignore-id: data.label_nc and data.labels (ignore id, "
    "names) from this YAML, a training config or the labels.yaml of worldmaps-labels.",
)  # fmt: skip
@click.option(
    "--instances", is_flag=True,
    help="Each A file has an instance map in inst/ (data.instances): report the missing and "
    "mis-sized ones and the instances per map. On by itself where an inst/ folder exists.",
)  # fmt: skip
def check(
    root: str, label_nc: int | None, ignore_id: int | None, labels_file: str | None,
    instances: bool,
) -> None:  # fmt: skip
    """Validate a dataset folder: every layout it holds (so every kind of trainer it can
    feed), counts, sizes, modes and every problem found. ROOT may also be one image file,
    checked as a data.single_image. With --label-nc or --labels, the A files of its A/ B/
    folders are read as label maps (class ids); with --instances (or an inst/ folder), their
    instance maps are checked too."""
    labels = Labels(ignore=ignore_id)
    if labels_file is not None:
        if label_nc is not None or ignore_id is not None:
            raise click.UsageError(
                "--labels sets the classes: leave out --label-nc and --ignore-id"
            )
        try:
            label_nc, labels = read_labels_file(labels_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--labels") from None
    base = Path(root)
    if base.is_file():
        _check_single_image(base)
    scan = scan_files(base, is_image_path)
    problems = [f"{path}: {kind}, not an image file (not read)" for path, kind in scan.not_files]
    files = scan.files
    sizes: dict[Path, tuple[int, int]] = {}
    modes: Counter[str] = Counter()
    for path in files:
        try:
            sizes[path], mode = _inspect(path)
            modes[mode] += 1
        except Exception as exc:
            problems.append(f"{path}: not a readable image ({exc})")
    layouts = _aligned_or_hr(detect_layouts(base, hr=True), sizes)
    click.echo(f"{base}: {len(layouts)} layout(s)")
    to_check: dict[str, dict[Path, Path]] = {}
    for layout in layouts:
        counts, to_check[layout.name] = _split_counts(layout, problems)
        trainers = f"{layout.data} data, e.g. {TRAINERS[layout.data]}"
        click.echo(f"  {layout.title} ({trainers}): {counts}")
    aligned = {a: sizes[a] for a in to_check.get("aligned", {}) if a in sizes}
    wrong = not_aligned(aligned)
    if wrong:
        problems.append(
            f"{len(wrong)} image(s) are not A|B pairs; {ALIGNED_RULE}:" + name_some(wrong)
        )
    pairs = {a: b for a, b in to_check.get("folders", {}).items() if a in sizes and b in sizes}
    scales = {a: _scale_of(sizes[a], sizes[b]) for a, b in pairs.items()}
    # The pairs' common scale: 1 for translation pairs, e.g. 4 for x4 super-resolution ones.
    whole = Counter(k for k in scales.values() if k is not None).most_common(1)
    scale = whole[0][0] if whole else 1
    if scale > 1:
        click.echo(f"  B is {scale}x its A: super-resolution pairs (model: sr)")
    different = [
        f"{a} ({sizes[a][0]}x{sizes[a][1]}) and {b} ({sizes[b][0]}x{sizes[b][1]})"
        for a, b in pairs.items()
        if scales[a] != scale
    ]
    if different:
        rule = "differ in size" if scale == 1 else f"are not B = {scale}x A"
        problems.append(f"{len(different)} pair(s) whose A and B {rule}:" + name_some(different))
    if not files:
        problems.append(f"{base}: no images found")
    elif not layouts:
        problems.append(f"{base}: no layout found (datasets/README.md lists them)")
    if label_nc is not None:
        key = "data.label_nc" if labels_file else "--label-nc"
        _check_labels(base, layouts, label_nc, labels, key, problems)
    _check_instances(base, layouts, instances, sizes, problems)
    shown = Counter(sizes.values()).most_common(5)
    click.echo("  sizes: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in shown))
    click.echo("  modes: " + ", ".join(f"{m} ({n})" for m, n in modes.most_common()))
    _report(problems)


def _check_labels(
    base: Path, layouts: list[Layout], classes: int, labels: Labels, key: str, problems: list[str]
) -> None:
    """Per split of the A/ B/ folders: the classes present and their frequencies; label
    maps of another mode or with ids out of range go to ``problems``."""
    folders = next((x for x in layouts if x.name == "folders"), None)
    if folders is None:
        problems.append(f"{base}: --label-nc reads label maps from A/ and B/ folders; none found")
        return
    for split in folders.splits:
        try:
            files = [a for a, _ in folders.some_pairs(split)[0]]
        except DatasetError:  # already a problem of the split counts
            continue
        counts, wrong = count_classes(files, classes, labels, key)
        problems += wrong
        click.echo(f"  label maps of {split} ({len(files)}): {describe_counts(counts, labels)}")


def _check_instances(
    base: Path, layouts: list[Layout], asked: bool, sizes: dict[Path, tuple[int, int]],
    problems: list[str],
) -> None:  # fmt: skip
    """Per split of the A/ B/ folders, when ``asked`` or an ``inst/`` folder exists: the
    instances per map; a missing, unreadable or mis-sized instance map goes to ``problems``."""
    folders = next((x for x in layouts if x.name == "folders"), None)
    if folders is None:
        if asked:
            problems.append(
                f"{base}: --instances reads instance maps beside A/ folders; none found"
            )
        return
    if not asked and not any(instance_folder(folders.dirs(s)[0]).is_dir() for s in folders.splits):
        return
    for split in folders.splits:
        dir_a = folders.dirs(split)[0]
        try:
            label_maps = [a for a, _ in folders.some_pairs(split)[0]]
        except DatasetError:  # already a problem of the split counts
            continue
        found, missing = instance_maps(dir_a, label_maps)
        problems += missing
        count, maps = 0, 0
        for a, inst in zip(label_maps, found, strict=True):
            if inst is None or inst not in sizes or a not in sizes:
                continue  # missing, or unreadable: already a problem
            wrong = instance_size_problem(inst, sizes[inst], a, sizes[a])
            if wrong is not None:
                problems.append(wrong)
                continue
            try:
                ids = read_label_map(inst, INSTANCE_IDS, key="16-bit ids")
            except ImageReadError as exc:  # a colour file: no instance ids
                problems.append(str(exc))
                continue
            count += len(np.unique(ids))
            maps += 1
        per_map = f", {count / maps:.1f} per map" if maps else ""
        click.echo(
            f"  instance maps of {split} ({maps} of {len(label_maps)}): {count} instances{per_map}"
        )


def _scale_of(a: tuple[int, int], b: tuple[int, int]) -> int | None:
    """How many times A's size B is, as a whole number on both sides; None if it is not."""
    scale = b[0] // a[0] if a[0] else 0
    return scale if scale >= 1 and b == (a[0] * scale, a[1] * scale) else None


def _derived_command(kind: str, doc: str) -> None:
    @prepare.command(kind, help=doc)
    @click.argument("src", type=click.Path(exists=True, file_okay=False))
    @click.argument("out", type=click.Path(file_okay=False))
    @click.option(
        "--size", default=256, show_default=True, type=click.IntRange(min=1),
        help="Side of each square half in pixels (the training default crops 256 of 286).",
    )  # fmt: skip
    @click.option(
        "--fit", type=click.Choice(FITS), default="crop", show_default=True,
        help="Make each photo square by cutting its centre square, or by squeezing all of it.",
    )  # fmt: skip
    @click.option(
        "--val", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True),
        help="Fraction of the photos (spread evenly, in path order) written to OUT/val.",
    )  # fmt: skip
    def command(src: str, out: str, size: int, fit: str, val: float) -> None:
        from translate.data.tools import make_paired

        with user_errors():
            counts = make_paired(src, out, kind, size, fit, val)
        click.echo(f"{out}: {counts['train']} train and {counts['val']} val aligned pairs")


_derived_command(
    "edges", "Aligned pairs (Canny edges -> photo) in OUT/train and OUT/val from the photos in SRC."
)
_derived_command(
    "grayscale",
    "Aligned pairs (grayscale -> colour) in OUT/train and OUT/val from the photos in SRC.",
)
