"""The reference code's pretrained generators, by name (``translate convert horse2zebra ...``).

Each is fetched once into ``TRANSLATE_HOME/models/<kind>/<name>.pth`` and then read by the
reference import like any other reference checkpoint. ``translate models``
(:mod:`translate.conversion.cli`) lists them.
"""

from __future__ import annotations

from pathlib import Path

from translate.core.download import fetch, server, translate_home

# The names the reference's download scripts know.
CYCLEGAN = (
    "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite",
    "horse2zebra", "zebra2horse", "monet2photo", "style_monet", "style_cezanne",
    "style_ukiyoe", "style_vangogh", "sat2map", "map2sat", "cityscapes_photo2label",
    "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
)  # fmt: skip
PIX2PIX = ("facades_label2photo", "sat2map", "map2sat", "edges2shoes", "day2night")
PIX2PIX_PREFIX = "pix2pix_"  # pix2pix_sat2map: the pix2pix model where CycleGAN has the name


def _catalogue() -> dict[str, tuple[str, str]]:
    """Model name -> (kind, the reference's file name without .pth)."""
    names = {name: ("cyclegan", name) for name in CYCLEGAN}
    for name in PIX2PIX:
        # One name per model: the prefix only where CycleGAN has a model of the same name.
        names[PIX2PIX_PREFIX + name if name in names else name] = ("pix2pix", name)
    return names


PRETRAINED = _catalogue()


def url(name: str) -> str:
    kind, file = PRETRAINED[name]
    folder = "cyclegan/pretrained_models" if kind == "cyclegan" else "pix2pix/models-pytorch"
    return f"{server()}/{folder}/{file}.pth"


def cache_path(name: str) -> Path:
    kind, file = PRETRAINED[name]
    return translate_home() / "models" / kind / f"{file}.pth"


def pretrained_path(name: str, progress: bool = True) -> Path:
    """The local checkpoint of a pretrained model, downloaded on first use.

    Raises :class:`translate.core.download.DownloadError` (a ``FileNotFoundError``) naming the
    URL and the file to put it at when it cannot be fetched.
    """
    return fetch(url(name), cache_path(name), progress)
