"""Tests for image reading, preprocessing, datasets and the worldmaps builder."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageFile, PngImagePlugin

from translate.data.cli import data, prepare
from translate.data.datasets import DatasetError, HRFolder, PairedFolder, UnpairedFolder
from translate.data.images import ImageReadError, list_images, read_image, write_image
from translate.data.layout import detect_layouts, find_layout, hold_out, image_size
from translate.data.tools import val_indices
from translate.data.transforms import Preprocess, crop_to, pad_to_multiple, to_tensor
from translate.data.worldmaps import build_worldmaps, tile_grid

SMALL = Preprocess(load_size=24, crop_size=16)


def noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.full((4, 4), 65535 // 2, dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png", channels=1)
    assert out.shape == (4, 4, 1) and abs(int(out[0, 0, 0]) - 128) <= 1


def test_cmyk_jpeg_and_palette_become_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    Image.new("RGB", (8, 6), (0, 0, 255)).convert("P").save(tmp_path / "p.png")
    red = read_image(tmp_path / "c.jpg")
    assert red.shape == (6, 8, 3) and red[0, 0, 0] > 200 and red[0, 0, 1] < 60
    assert tuple(read_image(tmp_path / "p.png")[0, 0]) == (0, 0, 255)


def test_rgba_composite_drop_keep(tmp_path: Path) -> None:
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "a.png")
    assert tuple(read_image(tmp_path / "a.png", background=(0, 255, 0))[0, 0]) == (0, 255, 0)
    assert tuple(read_image(tmp_path / "a.png", alpha="drop")[0, 0]) == (255, 0, 0)
    assert read_image(tmp_path / "a.png", alpha="keep").shape == (4, 4, 4)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (8, 4))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (8, 4, 3)


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_bad_files_raise_with_path(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.png"
    if content is None:  # a truncated JPEG
        buf = io.BytesIO()
        Image.fromarray(noise(32, 32)).save(buf, format="JPEG")
        path = tmp_path / "bad.jpg"
        content = buf.getvalue()[:200]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=str(path)):
        read_image(path)


def test_list_images_skips_hidden_and_non_images(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "x.PNG", noise(4, 4))
    write_image(tmp_path / ".hidden.png", noise(4, 4))
    (tmp_path / "notes.txt").write_text("hi")
    assert [p.name for p in list_images(tmp_path)] == ["x.PNG"]


def _aligned_dataset(root: Path, n: int = 2) -> None:
    for i in range(n):
        a = noise(32, 32, seed=i)
        write_image(root / "train" / f"{i}.png", np.concatenate([a, 255 - a], axis=1))


def test_same_crop_and_flip_on_both_halves(tmp_path: Path) -> None:
    _aligned_dataset(tmp_path)
    cropped = PairedFolder(tmp_path, preprocess=Preprocess(mode="crop", crop_size=16))
    whole = PairedFolder(tmp_path, preprocess=Preprocess(mode="crop", crop_size=32))
    flipped = set()
    for _ in range(20):
        # The target half is 255 - input, which is -input in [-1, 1].
        item = cropped[0]
        a, b = item["input"], item["target"]
        assert a.shape == (3, 16, 16) and torch.allclose(b, -a, atol=1e-6)
        item = whole[0]
        a, b = item["input"], item["target"]
        assert torch.allclose(b, -a, atol=1e-6)
        flipped.add(torch.equal(a, to_tensor(noise(32, 32)[:, ::-1])))
    assert flipped == {True, False}


def test_direction_swaps_input_and_target(tmp_path: Path) -> None:
    _aligned_dataset(tmp_path)
    kw = {"preprocess": Preprocess(mode="none"), "train": False}
    ab, ba = PairedFolder(tmp_path, **kw)[0], PairedFolder(tmp_path, direction="BtoA", **kw)[0]
    assert torch.equal(ab["input"], ba["target"]) and ab["input"].shape == (3, 32, 32)


def test_folders_layout_pairs_by_stem_and_names_missing(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "A" / "train" / f"{i}.png", noise(20, 20, seed=i))
        write_image(tmp_path / "B" / "train" / f"{i}.jpg", noise(20, 20, seed=i))
    ds = PairedFolder(tmp_path, preprocess=SMALL, output_channels=1)
    assert ds.layout == "folders" and len(ds) == 3 and ds[0]["target"].shape == (1, 16, 16)
    write_image(tmp_path / "A" / "train" / "lonely.png", noise(20, 20))
    with pytest.raises(DatasetError, match="lonely.png"):
        PairedFolder(tmp_path, preprocess=SMALL)


def test_corrupt_file_skipped_with_one_warning(tmp_path: Path) -> None:
    _aligned_dataset(tmp_path)
    (tmp_path / "train" / "broken.png").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = PairedFolder(tmp_path, preprocess=SMALL)
    assert len(ds) == 2 and any("broken.png" in str(w.message) for w in caught)


def test_unpaired_epoch_is_larger_domain(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "trainA" / f"{i}.png", noise(20, 30, seed=i))
    write_image(tmp_path / "trainB" / "b.png", noise(40, 20))
    ds = UnpairedFolder(tmp_path, preprocess=SMALL, serial=True)
    assert len(ds) == 3 and ds[2]["B"].shape == (3, 16, 16) and ds[2]["B_path"].endswith("b.png")


def test_preprocess_validation_names_field() -> None:
    with pytest.raises(ValueError, match="preprocess.mode"):
        Preprocess(mode="zoom")
    with pytest.raises(ValueError, match="crop_size"):
        Preprocess(load_size=10, crop_size=20)
    with pytest.raises(ValueError, match="input_augment"):
        Preprocess(input_augment=[{"name": "NoSuchTransform"}])


def test_pad_to_multiple_round_trip() -> None:
    t = torch.rand(3, 13, 18)
    padded, size = pad_to_multiple(t, 4)
    assert padded.shape == (3, 16, 20) and torch.equal(crop_to(padded, size), t)
    # Reflected, not zero: the first padded row mirrors the row above the last one.
    assert torch.equal(padded[:, 13, :18], t[:, 11])
    batch = torch.rand(2, 1, 2, 5, dtype=torch.float64)
    padded, size = pad_to_multiple(batch, 4)  # 2 rows cannot reflect 2 rows: edges repeat
    assert padded.shape == (2, 1, 4, 8) and padded.dtype == torch.float64
    assert torch.equal(padded[..., 3, :5], batch[..., 1, :])
    assert torch.equal(crop_to(padded, size), batch)


def test_worldmaps_split_has_no_overlap(tmp_path: Path) -> None:
    grid = tile_grid(256, 32, 4)
    val_cols = {c for _, c, s in grid if s == "val"}
    train_cols = {c for _, c, s in grid if s == "train"}
    assert val_cols and train_cols and not val_cols & train_cols
    counts = build_worldmaps(tmp_path, tile_size=32, width=256, count=3, progress=False)
    assert counts == {"train": 3, "val": 3}
    ds = PairedFolder(tmp_path, split="val", preprocess=Preprocess(mode="none"), train=False)
    assert len(ds) == 3 and ds[0]["input"].shape == (3, 32, 32)
    assert len(list((tmp_path / "trainA").iterdir())) == 3


def test_worldmaps_refuses_a_bad_geometry_in_one_line(tmp_path: Path) -> None:
    out = str(tmp_path / "w")
    result = CliRunner().invoke(prepare, ["worldmaps", out, "--tile-size", "0"])
    assert result.exit_code == 2 and "Invalid value for '--tile-size'" in result.output
    result = CliRunner().invoke(prepare, ["worldmaps", out, "--tile-size", "4096"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "tile_size 4096 is too large for a map 2048 px wide" in result.output


def test_data_check_reports_problems(tmp_path: Path) -> None:
    _aligned_dataset(tmp_path)
    runner = CliRunner()
    assert runner.invoke(data, ["check", str(tmp_path)]).exit_code == 0
    (tmp_path / "train" / "junk.png").write_text("text")
    result = runner.invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 1 and "junk.png" in result.output


def test_combine_then_split_round_trip(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "p.png", noise(8, 8))
    write_image(tmp_path / "B" / "p.png", noise(8, 8, seed=1))
    runner = CliRunner()
    assert (
        runner.invoke(
            prepare, ["combine", str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "ab")]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(prepare, ["split", str(tmp_path / "ab"), str(tmp_path / "out")]).exit_code
        == 0
    )
    assert np.array_equal(read_image(tmp_path / "out" / "B" / "p.png"), noise(8, 8, seed=1))


def test_diffaugment_same_params_for_real_and_fake() -> None:
    from translate.data.gpu_augment import DiffAugment

    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = real.clone().requires_grad_(True)
    aug_real, aug_fake = DiffAugment()(real, fake)
    assert torch.allclose(aug_real, aug_fake) and not torch.allclose(aug_real, real)
    aug_fake.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="zoom"):
        DiffAugment("zoom")


def _thirds(height: int, width: int) -> np.ndarray:
    """A photo whose left, middle and right thirds are red, green and blue."""
    photo = np.zeros((height, width, 3), np.uint8)
    for i in range(3):
        photo[:, i * width // 3 : (i + 1) * width // 3, i] = 200
    return photo


@pytest.mark.parametrize("kind", ["edges", "grayscale"])
def test_prepare_derived_pairs(tmp_path: Path, kind: str) -> None:
    photo = np.zeros((16, 16, 3), np.uint8)
    photo[:, 8:] = (200, 30, 30)
    write_image(tmp_path / "in" / "p.png", photo)
    args = [kind, str(tmp_path / "in"), str(tmp_path / "out"), "--size", "16"]
    result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 0, result.output
    pair = read_image(tmp_path / "out" / "train" / "p.png")
    assert pair.shape == (16, 32, 3) and np.array_equal(pair[:, 16:], photo)
    a = pair[:, :16]
    assert np.array_equal(a[..., 0], a[..., 1]) and len(np.unique(a)) > 1


@pytest.mark.parametrize("kind", ["edges", "grayscale"])
@pytest.mark.parametrize("fit", ["crop", "resize"])
def test_prepare_makes_square_pairs_of_wide_and_tall_photos(
    tmp_path: Path, kind: str, fit: str
) -> None:
    """Photos of 3:1, 1:3 and 3:2 become 2:1 pairs of --size squares, split by --val,
    which `data check` passes. crop keeps the middle third of a 3:1 photo, resize all."""
    shapes = [(20, 60), (30, 90), (60, 20), (20, 30)]  # (height, width)
    for i, (h, w) in enumerate(shapes):
        write_image(tmp_path / "photos" / f"p{i}.jpg", _thirds(h, w))
    out = tmp_path / "out"
    args = [kind, str(tmp_path / "photos"), str(out), "--size", "24", "--fit", fit]
    result = CliRunner().invoke(prepare, [*args, "--val", "0.5"])
    assert result.exit_code == 0, result.output
    assert f"{out}: 2 train and 2 val aligned pairs" in result.output
    assert sorted(p.name for p in (out / "val").iterdir()) == ["p1.png", "p3.png"]
    check = CliRunner().invoke(data, ["check", str(out)])
    assert check.exit_code == 0, check.output
    assert "train 2, val 2" in check.output and "sizes: 48x24 (4)" in check.output
    photo = read_image(out / "train" / "p0.png")[:, 24:].astype(int)
    strong = [int((photo[..., c] > 100).mean() > 0.2) for c in range(3)]
    assert strong == ([0, 1, 0] if fit == "crop" else [1, 1, 1])


def test_prepare_skips_unreadable_photos_and_refuses_an_empty_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "photos" / "good.png", _thirds(12, 18))
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["grayscale", str(tmp_path / "photos"), str(tmp_path / "out"), "--size", "8"]
    with pytest.warns(UserWarning, match="broken.jpg"):
        result = CliRunner().invoke(prepare, args)
    assert result.exit_code == 0 and "1 train and 0 val aligned pairs" in result.output
    (tmp_path / "none").mkdir()
    result = CliRunner().invoke(prepare, ["edges", str(tmp_path / "none"), str(tmp_path / "x")])
    assert result.exit_code == 1 and f"{tmp_path / 'none'}: no images found" in result.output


def test_val_indices_spread_evenly() -> None:
    assert sorted(val_indices(25, 0.1)) == [9, 19]
    assert sorted(val_indices(10, 0.5)) == [1, 3, 5, 7, 9]
    assert len(val_indices(100, 0.29)) == 29 and not val_indices(9, 0.1)


def test_truncated_jpeg_mid_epoch_is_skipped(tmp_path: Path) -> None:
    _aligned_dataset(tmp_path, n=1)
    buf = io.BytesIO()
    Image.fromarray(noise(32, 64)).save(buf, format="JPEG")
    (tmp_path / "train" / "0_cut.jpg").write_bytes(buf.getvalue()[:-600])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = PairedFolder(tmp_path, preprocess=SMALL)
        items = [ds[i] for i in range(len(ds))]
    assert len(ds) == 2 and all(item["input_path"].endswith("0.png") for item in items)


def test_one_folder_lists_every_layout_it_holds(tmp_path: Path) -> None:
    _aligned_dataset(tmp_path)
    write_image(tmp_path / "val" / "v.png", noise(16, 32))
    for split in ("train", "test"):
        for d in "AB":
            write_image(tmp_path / f"{split}{d}" / "x.png", noise(16, 16))
    layouts = {layout.name: layout for layout in detect_layouts(tmp_path)}
    assert set(layouts) == {"aligned", "unpaired"}
    assert list(layouts["aligned"].splits) == ["train", "val"]
    assert list(layouts["unpaired"].splits) == ["test", "train"]
    assert find_layout(tmp_path, "paired").name == "aligned"
    result = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "paired aligned A|B (paired data" in result.output and "train 2, val 1" in result.output
    assert "unpaired (unpaired data" in result.output and "test 1 A + 1 B" in result.output


def test_folders_layout_splits_and_unknown_split(tmp_path: Path) -> None:
    for split in ("train", "val"):
        write_image(tmp_path / "A" / split / "x.png", noise(8, 8))
        write_image(tmp_path / "B" / split / "x.png", noise(8, 8))
    (layout,) = detect_layouts(tmp_path)
    assert layout.name == "folders" and list(layout.splits) == ["train", "val"]
    with pytest.raises(DatasetError, match=r"no split 'vall'.*'train', 'val'"):
        PairedFolder(tmp_path, split="vall", preprocess=SMALL)
    with pytest.raises(DatasetError, match="holds paired A/ B/; unpaired data needs trainA/"):
        UnpairedFolder(tmp_path)


def test_data_check_flags_size_mismatch_and_empty_split(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "same.png", noise(8, 8))
    write_image(tmp_path / "B" / "same.png", noise(8, 8))
    write_image(tmp_path / "A" / "odd.png", noise(8, 8))
    write_image(tmp_path / "B" / "odd.png", noise(12, 8))
    (tmp_path / "trainA").mkdir()
    write_image(tmp_path / "trainB" / "b.png", noise(8, 8))
    result = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "1 pair(s) whose A and B differ in size" in result.output
    assert "odd.png (8x8) and" in result.output and "same.png (8x8) and" not in result.output
    assert "trainA: split 'train' of the unpaired layout is empty" in result.output
    assert "paired A/ B/ (paired data, e.g. pix2pix): . 2" in result.output


def test_data_check_reads_x4_pairs_as_super_resolution_and_flags_the_odd_one(tmp_path: Path):
    for name in ("a", "b"):
        write_image(tmp_path / "A" / f"{name}.png", noise(8, 6))
        write_image(tmp_path / "B" / f"{name}.png", noise(32, 24))
    ok = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "B is 4x its A: super-resolution pairs (model: sr)" in ok.output
    write_image(tmp_path / "A" / "c.png", noise(8, 6))
    write_image(tmp_path / "B" / "c.png", noise(24, 18))  # 3x
    odd = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert odd.exit_code == 1
    assert "1 pair(s) whose A and B are not B = 4x A" in odd.output and "c.png (6x8)" in odd.output


def test_names_differing_in_case_leave_the_other_pairs_counted(tmp_path: Path) -> None:
    """A/x, A/Y and B/x, B/y: data check counts the one valid pair (the split is not
    called empty) and names both lone files with the fix; training refuses the same way."""
    for folder, names in (("A", ["x", "Y"]), ("B", ["x", "y"])):
        for name in names:
            write_image(tmp_path / folder / f"{name}.png", noise(8, 8))
    result = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "paired A/ B/ (paired data, e.g. pix2pix): . 1 (+2 file(s) without a partner)" in (
        result.output
    )
    assert "is empty" not in result.output and "1 problem(s)" in result.output
    hint = "differs only in case: rename one to match"
    lone_a = f"{tmp_path / 'A' / 'Y.png'} (no partner in {tmp_path / 'B'}; "
    assert f"{lone_a}{tmp_path / 'B' / 'y.png'} {hint})" in result.output
    with pytest.raises(DatasetError, match="2 file\\(s\\) without a partner") as err:
        PairedFolder(tmp_path, split=".", preprocess=SMALL)
    assert f"{lone_a}{tmp_path / 'B' / 'y.png'} {hint})" in str(err.value)


def test_training_without_a_train_split_says_what_data_check_finds(tmp_path: Path) -> None:
    """Photos in photos_in/ and photos_out/ read as two aligned splits, neither `train`:
    `translate train` fails in one line naming the splits, data check's diagnosis (not A|B
    pairs, a file and its size) and the fix, which then works."""
    from translate.cli import main

    for folder in ("photos_in", "photos_out"):
        for i in range(2):
            write_image(tmp_path / "data" / folder / f"{i}.png", noise(10, 15, seed=i))
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{root: {tmp_path / 'data'}, num_workers: 0}}\n")
    args = ["train", str(config), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (error,) = result.stderr.strip().splitlines()
    assert "no split 'train' in its paired aligned A|B layout (splits present: 'photos_in'" in error
    assert f"4 of its 4 images are not A|B pairs, e.g. {tmp_path / 'data' / 'photos_in'}" in error
    fix = "if photos_in/ and photos_out/ hold the A and B of each pair under the same names"
    assert error.endswith(f"{fix}, rename them A/ and B/")
    check = CliRunner().invoke(data, ["check", str(tmp_path / "data")])
    assert "4 image(s) are not A|B pairs" in check.output
    for folder, name in (("photos_in", "A"), ("photos_out", "B")):
        (tmp_path / "data" / folder).rename(tmp_path / "data" / name)
    assert find_layout(tmp_path / "data", "paired").train_split() == "."


@pytest.mark.parametrize(
    ("folders", "fix"),
    [
        (["training"], "rename training/ to train/"),
        (["testA", "testB"], "rename testA/ and testB/ to trainA/ and trainB/"),
        (["A/val", "B/val"], "name the training folders A/train and B/train"),
    ],
)
def test_a_missing_train_split_names_the_fix(tmp_path: Path, folders: list[str], fix: str) -> None:
    for folder in folders:
        write_image(tmp_path / folder / "x.png", noise(8, 16))
    (layout,) = detect_layouts(tmp_path)
    with pytest.raises(DatasetError, match="no split 'train'") as err:
        layout.train_split()
    assert f"; {fix}" in str(err.value)


def test_single_photos_are_not_aligned_pairs(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"photo{i}.png", noise(12, 12, seed=i))
    write_image(tmp_path / "pair.png", noise(12, 24))
    result = CliRunner().invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "3 image(s) are not A|B pairs" in result.output
    assert all(f"photo{i}.png (12x12)" in result.output for i in range(3))
    assert "pair.png" not in result.output.split("not A|B pairs")[1]
    with pytest.raises(DatasetError, match="exactly twice as wide as high") as err:
        PairedFolder(tmp_path, split=".", preprocess=SMALL)
    assert "photo2.png (12x12)" in str(err.value)


def test_dataset_without_splits_trains_on_its_root(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"{i}.png", noise(8, 16, seed=i))
    (layout,) = detect_layouts(tmp_path)
    assert layout.train_split() == "." and layout.val_split("auto") == "holdout"
    with pytest.raises(DatasetError, match=r"no split 'val'.*'\.' \(the folder itself\)"):
        layout.val_split("val")
    rest = PairedFolder(tmp_path, split=".", holdout="rest", preprocess=SMALL)
    held = PairedFolder(tmp_path, split=".", holdout="held", preprocess=SMALL)
    assert [Path(p).name for p, _ in held.pairs] == ["2.png"]
    assert [Path(p).name for p, _ in rest.pairs] == ["0.png", "1.png"]


def test_hold_out_is_every_tenth_file() -> None:
    files = list(range(25))
    assert hold_out(files, held=True) == [9, 19]
    assert len(hold_out(files, held=False)) == 23
    with pytest.raises(DatasetError, match="data.val_split=train"):
        hold_out([1], held=True)


def test_combine_refuses_halves_that_are_not_square(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "p.png", noise(8, 12))
    write_image(tmp_path / "B" / "p.png", noise(8, 12))
    result = CliRunner().invoke(
        prepare, ["combine", str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "ab")]
    )
    assert result.exit_code == 1 and "12x8 is not square" in result.output


@pytest.mark.slow  # 7-10 s on 2 cores, most of it importing the trainer and plotting
def test_prepared_photos_train_at_the_default_preprocessing(tmp_path: Path) -> None:
    """`prepare edges` on non-square photos, then `translate train` with the defaults of
    data.preprocess (resize to 286, crop 256) and pix2pix's unet_256, made tiny by --set
    only; it validates on the val/ split the tool wrote."""
    from translate.cli import main

    for i, (h, w) in enumerate([(30, 90), (40, 120), (60, 40), (30, 45)]):
        write_image(tmp_path / "photos" / f"p{i}.jpg", noise(h, w, seed=i))
    out = tmp_path / "edges"
    prepare_args = ["prepare", "edges", str(tmp_path / "photos"), str(out), "--val", "0.5"]
    result = CliRunner().invoke(main, prepare_args)
    assert result.exit_code == 0, result.output
    config = tmp_path / "edges.yaml"
    config.write_text(f"data: {{root: {out}}}\n")
    tiny = ["generator.options.ngf=2", "discriminator.options.ndf=2", "train.max_steps=2"]
    tiny += ["data.num_workers=0", "log.tensorboard=false"]
    run = tmp_path / "run"
    args = ["train", str(config), "--run-dir", str(run), "--no-progress"]
    result = CliRunner().invoke(main, [*args, *(f"--set={s}" for s in tiny)])
    assert result.exit_code == 0, result.output
    assert (run / "checkpoints" / "state_2.pt").is_file()
    assert "validation: 2 images (val)" in result.output


# --- the symmetries of a square (preprocess.rotate) -----------------------------------------


def _symmetries(image: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of a square HWC image: each quarter turn, unmirrored and mirrored."""
    return [np.rot90(image[:, ::-1] if m else image, k) for m in (False, True) for k in range(4)]


def _pixels(t: torch.Tensor) -> np.ndarray:
    return ((t + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def _variant(image: np.ndarray, out: np.ndarray) -> int:
    """Which of the 8 symmetries of ``image`` ``out`` is (noise: exactly one)."""
    (found,) = [i for i, v in enumerate(_symmetries(image)) if np.array_equal(v, out)]
    return found


TURNED = Preprocess(mode="crop", crop_size=32, rotate=True)  # flip: on by default


@pytest.mark.parametrize("scale", [1, 4])
def test_the_8_symmetries_keep_pairs_aligned(tmp_path: Path, scale: int) -> None:
    """B is A upscaled by exact nearest x4 (SR; scale 1: B is A inverted, pix2pix): so it
    stays after the augmentation, whichever of the 8 symmetries an item gets, and all occur.
    The crop is the whole of B, so the variant shows."""
    a = noise(32 // scale, 32 // scale)
    b = np.repeat(np.repeat(a, 4, 0), 4, 1) if scale == 4 else 255 - a
    write_image(tmp_path / "A" / "train" / "0.png", a)
    write_image(tmp_path / "B" / "train" / "0.png", b)
    ds = PairedFolder(tmp_path, preprocess=TURNED, scale=scale)
    ds.transform.set_random_state(np.random.default_rng(0), random.Random(0))
    seen = set()
    for _ in range(64):
        item = ds[0]
        lr, hr = _pixels(item["input"]), _pixels(item["target"])
        if scale == 4:
            assert np.array_equal(hr, np.repeat(np.repeat(lr, 4, 0), 4, 1))
        else:
            assert np.array_equal(hr, 255 - lr)
        seen.add(_variant(a, lr))
        assert _variant(b, hr) == _variant(a, lr)
    assert seen == set(range(8))


def test_hr_images_are_turned_before_their_lr_is_made(tmp_path: Path) -> None:
    hr = noise(32, 32)
    write_image(tmp_path / "train" / "0.png", hr)
    random.seed(0)
    ds = HRFolder(tmp_path, preprocess=TURNED)
    assert {_variant(hr, _pixels(ds[0]["target"])) for _ in range(64)} == set(range(8))
    val = HRFolder(tmp_path, preprocess=TURNED, train=False)
    assert all(torch.equal(val[0]["target"], to_tensor(hr)) for _ in range(8))  # unturned


def test_flip_alone_never_turns(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "0.png", noise(32, 32))
    ds = HRFolder(tmp_path, preprocess=Preprocess(mode="crop", crop_size=32))
    random.seed(0)
    assert {_variant(noise(32, 32), _pixels(ds[0]["target"])) for _ in range(32)} == {0, 4}


@pytest.mark.parametrize("mode", ["none", "scale_width"])
def test_rotate_is_refused_where_crops_are_not_square(mode: str) -> None:
    with pytest.raises(ValueError, match=f"preprocess.rotate: .*mode '{mode}' keeps whole"):
        Preprocess(mode=mode, rotate=True)
    with pytest.raises(ValueError, match="preprocess.rotate: must be true or false"):
        Preprocess(rotate="yes")  # type: ignore[arg-type]
    Preprocess(mode="scale_width_and_crop", rotate=True)  # square crops: turned


# --- image sizes from the headers ------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _exif_after_the_pixels(path: Path, exif: bytes) -> None:
    """Move a PNG's chunks so that an eXIf chunk follows the IDAT, as some writers place it
    (PIL writes it before): PIL then reads it only by decoding the whole image."""
    raw = path.read_bytes()
    end = raw.rindex(b"IEND") - 4
    path.write_bytes(raw[:end] + _chunk(b"eXIf", exif) + raw[end:])


def test_image_size_turns_by_exif_without_decoding(tmp_path, monkeypatch) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise on display
    image = Image.fromarray(noise(4, 8))  # 8 wide, 4 high
    image.save(tmp_path / "r.jpg", exif=exif)
    image.save(tmp_path / "before.png", exif=exif)
    image.save(tmp_path / "after.png")
    _exif_after_the_pixels(tmp_path / "after.png", exif.tobytes())
    xmp = '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    image.save(tmp_path / "xmp.png", pnginfo=info)
    image.save(tmp_path / "plain.png")
    for name in ("r.jpg", "before.png", "after.png", "xmp.png"):
        assert read_image(tmp_path / name).shape[:2] == (8, 4), name  # as read_image turns
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    for name in ("r.jpg", "before.png", "after.png"):
        assert image_size(tmp_path / name) == (4, 8), name
    assert image_size(tmp_path / "plain.png") == (8, 4) and not decoded
    # XMP in a PNG text chunk only PIL parses, decoding the file: rare, so still honoured
    assert image_size(tmp_path / "xmp.png") == (4, 8) and decoded


def test_truncated_and_non_images_are_named_at_start_up(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "0.png", noise(64, 64))
    buf = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buf, format="PNG")
    (tmp_path / "train" / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "train" / "text.png").write_text("not an image")
    with pytest.raises(OSError, match="cut.png: truncated PNG"):
        image_size(tmp_path / "train" / "cut.png")
    with pytest.raises(OSError, match="cannot identify image file"):
        image_size(tmp_path / "train" / "text.png")
    with pytest.warns(UserWarning, match="skipping 2 unreadable file") as caught:
        ds = HRFolder(tmp_path, preprocess=Preprocess(mode="crop", crop_size=32))
    assert "cut.png" in str(caught[0].message) and "text.png" in str(caught[0].message)
    assert [p.name for p in ds.paths] == ["0.png"]
