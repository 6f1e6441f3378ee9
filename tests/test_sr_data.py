"""Super-resolution data: the hr layout, `translate prepare sr-photos` and the download of
the SR benchmark sets (translate/data/layout.py, photos.py, public.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_download import Server, _png, _zip, server  # noqa: F401 (a fixture, used by name)

from translate.data import photos
from translate.data.cli import data, prepare
from translate.data.images import read_image, write_image
from translate.data.layout import DatasetError, detect_layouts, find_layout
from translate.data.photos import Source, build_sr_photos, high_resolution


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_photo(w: int, h: int, seed: int) -> np.ndarray:
    """A photo-like image: smooth colour blobs (noise enlarged 8x) with a little grain."""
    small = Image.fromarray(noise(max(1, h // 8), max(1, w // 8), seed))
    base = np.asarray(small.resize((w, h), Image.BICUBIC)).astype(int)
    return (base + noise(h, w, seed + 1) // 32).clip(0, 255).astype(np.uint8)


def _sources(tmp_path: Path) -> list[Source]:
    # a landscape photo larger than --long-side, a portrait one, and one smaller than it
    files = {"wide": (200, 120, "train"), "tall": (90, 150, "val"), "small": (42, 30, "test")}
    sources = []
    for seed, (name, (w, h, split)) in enumerate(files.items()):
        path = tmp_path / "src" / f"{name}.jpg"
        write_image(path, smooth_photo(w, h, seed), quality=95)
        sources.append(Source(path, name, split))
    return sources


def test_sr_photos_writes_lr_hr_pairs_split_by_photo(tmp_path: Path) -> None:
    out = tmp_path / "sr"
    counts = build_sr_photos(out, _sources(tmp_path), long_side=100, train_size=48,
                             progress=False)  # fmt: skip
    # wide: 100x60 HR, cut into 48 px squares about half a square apart, covering it
    corners = [(y, x) for y in (0, 12) for x in (0, 24, 52)]
    assert counts == {"train": (1, 6), "val": (1, 1), "test": (1, 1)}
    train = sorted(p.name for p in (out / "train" / "B").iterdir())
    assert train == [f"wide_{y:04d}_{x:04d}.png" for y, x in corners]
    assert read_image(out / "train" / "B" / train[0]).shape == (48, 48, 3)
    # val: the long side shrunk to 100; test: never enlarged, cut to a multiple of 4
    assert read_image(out / "val" / "B" / "tall.png").shape == (100, 60, 3)
    assert read_image(out / "test" / "B" / "small.png").shape == (28, 40, 3)
    # one name, one photo, one split; A is B shrunk 4x by PIL's bicubic
    for split in ("train", "val", "test"):
        names = sorted(p.name for p in (out / split / "A").iterdir())
        assert names == sorted(p.name for p in (out / split / "B").iterdir())
        for name in names:
            hr = Image.fromarray(read_image(out / split / "B" / name))
            want = hr.resize((hr.width // 4, hr.height // 4), Image.BICUBIC)
            np.testing.assert_array_equal(read_image(out / split / "A" / name), np.asarray(want))
    # a sub-image is the HR photo's own pixels
    whole = high_resolution(tmp_path / "src" / "wide.jpg", 100, 4)
    np.testing.assert_array_equal(
        read_image(out / "train" / "B" / "wide_0012_0052.png"),
        np.asarray(whole)[12:60, 52:100],
    )
    layout = find_layout(out, "paired")
    assert layout.name == "folders" and layout.train_split() == "train"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder
    with pytest.raises(ValueError, match=rf"{out} exists: remove it or name another folder"):
        build_sr_photos(out, _sources(tmp_path), progress=False)


def test_sr_photos_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a photo package: one line naming the apt-get command.
    monkeypatch.setattr(photos, "installed_photos", lambda: ([], sorted(photos.TRAINING_PACKAGES)))
    result = CliRunner().invoke(prepare, ["sr-photos", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: no photo package is installed: apt-get install -y lomiri-wallpapers-16.04 "
        "lomiri-wallpapers-20.04 mate-backgrounds"
    ]
    sources = _sources(tmp_path)
    monkeypatch.setattr(photos, "installed_photos", lambda: (sources, [photos.SKIMAGE]))
    out = tmp_path / "sr"
    args = ["sr-photos", str(out), "--long-side", "64", "--train-size", "0", "--no-progress"]
    result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{out}: train 1 photos (1 pairs), val 1 photos (1 pairs), test 1 photos (1 pairs)",
        'note: scikit-image\'s photos left out: pip install "translate[photos]"',
    ]
    assert read_image(out / "train" / "B" / "wide.png").shape == (36, 64, 3)  # whole


def test_sr_photo_list_finds_installed_files(tmp_path: Path) -> None:
    # Each photo is in one split; plasma-workspace-wallpapers only checks, never trains.
    assert len({p.file for p in photos.PHOTOS}) == len(photos.PHOTOS)
    by_split = {s: [p for p in photos.PHOTOS if p.split == s] for s in photos.SPLITS}
    assert {p.package for p in by_split["check"]} == {"plasma-workspace-wallpapers"}
    assert all(p.package != "plasma-workspace-wallpapers" for p in photos.PHOTOS
               if p.split != "check")  # fmt: skip
    assert 12 <= len(by_split["test"]) <= 15 and by_split["val"] and by_split["train"]
    mate, plasma = (next(p for p in photos.PHOTOS if p.package == name)
                    for name in ("mate-backgrounds", "plasma-workspace-wallpapers"))  # fmt: skip
    for photo in (mate, plasma):
        write_image(tmp_path / photo.file, noise(8, 8))
    debian = [p for p in photos.PHOTOS if p.package != photos.SKIMAGE]  # skimage: its own root
    sources, missing = photos.installed_photos(debian, tmp_path)
    assert [(s.path, s.split) for s in sources] == [
        (tmp_path / mate.file, mate.split),
        (tmp_path / plasma.file, "check"),
    ]
    assert sources[0].name == f"mate-backgrounds_{Path(mate.file).stem}"
    assert sources[1].name == f"plasma-workspace-wallpapers_{Path(plasma.file).parts[1]}"
    assert "lomiri-wallpapers-16.04" in missing and "mate-backgrounds" in missing


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
