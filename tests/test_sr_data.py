"""Super-resolution data: the hr layout, `translate prepare sr-photos` and the download of
the SR benchmark sets (translate/data/layout.py, worldmaps.py, public.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from translate.data.cli import data, prepare
from translate.data.images import read_image, write_image
from translate.data.layout import DatasetError, detect_layouts, find_layout
from translate.data.worldmaps import build_sr_photos


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_sr_photos_is_an_hr_folder(tmp_path: Path) -> None:
    out = tmp_path / "sr"
    result = CliRunner().invoke(
        prepare,
        ["sr-photos", str(out), "--size", "32", "--width", "256", "--test", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    train, val, test = (sorted((out / s).glob("*.png")) for s in ("train", "val", "test"))
    assert train and val and test
    assert (
        result.output.strip()
        == f"{out}: {len(train)} train, {len(val)} val, {len(test)} test tiles"
    )
    assert read_image(train[0]).shape == (32, 32, 3)
    # Whole longitude columns per split (8 columns, val every 4th, test the one before).
    column = {s: {int(p.stem.split("_c")[1]) % 4 for p in f} for s, f in
              (("train", train), ("val", val), ("test", test))}  # fmt: skip
    assert column == {"train": {0, 1}, "val": {3}, "test": {2}}
    assert {p.name.split("_")[0] for p in train} == {"satellite", "relief"}
    layout = find_layout(out, "hr")
    assert layout.train_split() == "train" and layout.val_split("auto") == "val"
    assert layout.images("train") == train
    check = CliRunner().invoke(data, ["check", str(out)])
    assert check.exit_code == 0, check.output
    assert "high-resolution (hr data, e.g. sr): test " in check.output
    assert "1 layout(s)" in check.output and "0 problem(s)" in check.output


def test_sr_photos_skips_flat_tiles(tmp_path: Path) -> None:
    every = build_sr_photos(tmp_path / "all", 32, 256, min_std=0.0, progress=False)
    detailed = build_sr_photos(tmp_path / "some", 32, 256, min_std=30.0, progress=False)
    assert 0 < sum(detailed.values()) < sum(every.values())
    for path in (tmp_path / "some").rglob("*.png"):
        assert read_image(path).std() >= 30.0
    assert build_sr_photos(tmp_path / "few", 32, 256, count=2, progress=False) == {
        "train": 2, "val": 2,
    }  # fmt: skip


def test_hr_layout_is_asked_for(tmp_path: Path) -> None:
    # Photos in train/ read as aligned files unless the hr layout is asked for, so the
    # paired trainers' errors stay as they were; unpaired domains are no hr data.
    for i in range(2):
        write_image(tmp_path / "train" / f"{i}.png", noise(12, 16, i))
    assert [x.name for x in detect_layouts(tmp_path)] == ["aligned"]
    assert [x.name for x in detect_layouts(tmp_path, hr=True)] == ["aligned", "hr"]
    assert find_layout(tmp_path, "hr").val_split("auto") == "holdout"
    domains = tmp_path / "domains"
    for folder in ("trainA", "trainB"):
        write_image(domains / folder / "x.png", noise(8, 8))
    with pytest.raises(DatasetError, match=r"hr data needs images in train/"):
        find_layout(domains, "hr")
    with pytest.raises(DatasetError, match=r"no single images"):
        find_layout(domains, "unpaired").images("train")


def test_hr_layout_without_train_names_the_fix(tmp_path: Path) -> None:
    write_image(tmp_path / "photos" / "x.png", noise(8, 8))
    with pytest.raises(
        DatasetError, match=r"no split 'train'.*name the folder of training images train/"
    ):
        find_layout(tmp_path, "hr").train_split()


def test_data_check_keeps_flagging_mixed_aligned_folders(tmp_path: Path) -> None:
    # One A|B pair among photos: an aligned dataset with broken files, not hr data.
    write_image(tmp_path / "train" / "pair.png", noise(8, 16))
    write_image(tmp_path / "train" / "photo.png", noise(8, 8))
    result = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "1 image(s) are not A|B pairs" in result.output and "high-resolution" not in result.output
    )
