"""Super-resolution data: the hr layout, `translate prepare sr-photos` and the download of
the SR benchmark sets (translate/data/layout.py, worldmaps.py, public.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_download import Server, _png, _zip, server  # noqa: F401 (a fixture, used by name)

from translate.data.cli import data, prepare
from translate.data.images import read_image, write_image
from translate.data.layout import DatasetError, detect_layouts, find_layout
from translate.data.worldmaps import build_sr_photos, tile_detail


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
    detailed = build_sr_photos(tmp_path / "some", 32, 256, progress=False)
    assert 0 < sum(detailed.values()) < sum(every.values())
    kept = {p.name for p in (tmp_path / "some").rglob("*.png")}
    for path in (tmp_path / "all").rglob("*.png"):
        assert (path.name in kept) is (tile_detail(read_image(path)) >= 8.0), path.name
    # A flat sea has no detail whatever its colour; noise has plenty.
    assert tile_detail(np.full((8, 8, 3), (10, 40, 90), np.uint8)) == 0
    assert tile_detail(noise(32, 32)) > 60
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


@pytest.fixture
def mirror(request: pytest.FixtureRequest) -> Server:
    """test_download's local server, with TRANSLATE_MIRROR and TRANSLATE_HOME set to it."""
    return request.getfixturevalue("server")


DIV2K = "/cvl/DIV2K/DIV2K_{}_HR.zip"
SET5 = "/shared/static/kfahv87nfe8ax910l85dksyl2q212voc.zip"


def _div2k(mirror: Server) -> None:
    for part, first in (("train", 1), ("valid", 801)):
        mirror.files[DIV2K.format(part)] = _zip(
            {f"DIV2K_{part}_HR/{i:04d}.png": _png(noise(24, 20, i)) for i in (first, first + 1)}
        )


def test_div2k_is_laid_out_as_hr_and_resumes(mirror: Server, tmp_path: Path) -> None:
    _div2k(mirror)
    valid = DIV2K.format("valid")
    mirror.cut.add(valid)
    args = ["download", "div2k", "--root", str(tmp_path / "d"), "--no-progress"]
    first = CliRunner().invoke(prepare, args)
    half = len(mirror.files[valid]) // 2
    assert first.exit_code == 1 and f"broke off after {half} of" in first.output
    out = tmp_path / "d" / "div2k"
    assert sorted(p.name for p in (out / "train").iterdir()) == ["0001.png", "0002.png"]
    again = CliRunner().invoke(prepare, args)
    assert again.exit_code == 0, again.output
    # The train split was complete: only the valid archive's rest is asked for.
    assert mirror.requests[-1] == (valid, f"bytes={half}-")
    assert [r for r in mirror.requests if r[0] == DIV2K.format("train")] == [
        (DIV2K.format("train"), None)
    ]
    layout = find_layout(out, "hr")
    assert [p.name for p in layout.images("val")] == ["0801.png", "0802.png"]
    assert read_image(out / "val" / "0802.png").shape == (24, 20, 3)
    assert not list((tmp_path / "home" / "downloads").iterdir())  # archives cleaned up
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".")]


def test_set5_keeps_the_x4_hr_images(mirror: Server, tmp_path: Path) -> None:
    members = {
        f"Set5/image_SRF_{k}/img_00{i}_SRF_{k}_{kind}.png": _png(noise(8 * k, 8 * k, i))
        for k in (2, 4) for i in (1, 2) for kind in ("HR", "LR", "bicubic")
    }  # fmt: skip
    mirror.files[SET5] = _zip({**members, "readme.txt": b"x"})
    result = CliRunner().invoke(prepare, ["download", "set5", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = find_layout(tmp_path / "set5", "hr").images("test")
    assert [p.name for p in files] == ["img_001.png", "img_002.png"]
    expected = noise(32, 32, 2)
    np.testing.assert_array_equal(read_image(files[1]), expected)


def test_sr_archive_checks(mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A corrupt archive is deleted and named; one without the expected files says so;
    # offline names the URL and where to put the file.
    _div2k(mirror)
    train = DIV2K.format("train")
    mirror.files[train] = mirror.files[train][:-30] + bytes(30)
    args = ["download", "div2k", "--root", str(tmp_path / "d")]
    result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 1 and "corrupt archive" in result.output
    assert not (tmp_path / "home" / "downloads" / "DIV2K_train_HR.zip").exists()
    mirror.files[train] = _zip({"other/0001.png": _png(noise(8, 8))})
    result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 1 and "no files matching DIV2K_train_HR/*.png" in result.output
    assert not (tmp_path / "d" / "div2k" / "train").exists()
    monkeypatch.setenv("TRANSLATE_MIRROR", "http://127.0.0.1:9")
    result = CliRunner().invoke(prepare, ["download", "set14", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "cannot reach http://127.0.0.1:9/shared/static/igsnfieh4lz68l926l8xbklwsnnk8we9.zip"
        in result.output
    )
    unpaired = CliRunner().invoke(prepare, ["download", "set5", "--unpaired"])
    assert unpaired.exit_code == 1 and "(HR images only); drop --unpaired" in unpaired.output


def test_missing_hr_folder_names_the_download(tmp_path: Path) -> None:
    from translate.data.public import missing_data_hint

    assert (
        missing_data_hint("datasets/div2k", "hr") == "get it with: translate prepare download div2k"
    )
    hint = missing_data_hint(tmp_path / "set14", "hr")
    assert hint == f"get it with: translate prepare download set14 --root {tmp_path}"
    assert "describes the layouts" in missing_data_hint(tmp_path / "photos", "hr")
