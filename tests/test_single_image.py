"""Single-image training (SinCUT's idea): crops of one A and one B image, their zoom range,
determinism, resume, validation on the whole A image and the errors naming key and file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_cut import cut
from training_helpers import make_engine, tiny

from translate import Translator
from translate.cli import main
from translate.data.datasets import SingleImagePair
from translate.data.images import read_image, write_image
from translate.data.transforms import Preprocess
from translate.models.model_file import load_generators
from translate.training.configure import from_dict, load_config
from translate.training.sampling import SeededItems

CROP = 16

pytestmark = pytest.mark.usefixtures("one_thread")


def _gradient(height: int, width: int, third: int, reverse: bool = False) -> np.ndarray:
    """R counts columns (down from 255 when ``reverse``), G rows, B is ``third``: a crop's
    value spans tell where it was cut and at which zoom."""
    y, x = np.mgrid[0:height, 0:width]
    red = 255 - x if reverse else x
    return np.stack([red, y, np.full_like(x, third)], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("single")
    paths = {"a": root / "a.png", "b": root / "b.png"}
    write_image(paths["a"], _gradient(38, 42, 0))  # not a multiple of 4: validation pads
    write_image(paths["b"], _gradient(30, 34, 200, reverse=True))
    return paths


def single(model: str, images: dict[str, Path], **sections: dict[str, Any]) -> dict[str, Any]:
    """A tiny config for ``model`` on the two images, without a data.root."""
    config = cut(Path("unused"), "fastcut") if model == "cut" else tiny(model, Path("unused"))
    del config["data"]["root"]
    config["data"]["preprocess"] = {"mode": "crop", "crop_size": CROP}
    config["data"]["single_image"] = {
        "a": str(images["a"]),
        "b": str(images["b"]),
        "scale": [0.6, 1.0],  # the zooms the small test images allow
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def test_crops_come_from_the_images_within_the_zoom_range(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, _gradient(80, 96, 0))
    write_image(b, _gradient(70, 90, 200, reverse=True))
    crop, scale = 32, (0.5, 1.0)
    pre = Preprocess(mode="crop", crop_size=crop, flip=True)
    items = SeededItems(SingleImagePair(a, b, pre, scale=scale, length=40), seed=3)
    sides = []
    for i in range(40):
        item = items[(0, i)]
        assert item["A_path"] == str(a) and item["B_path"] == str(b)
        for domain, third in (("A", 0), ("B", 200)):
            pixels = ((item[domain] + 1) * 127.5).round().permute(1, 2, 0).numpy()
            assert pixels.shape == (crop, crop, 3)
            assert np.all(pixels[:, :, 2] == third), domain  # from its own image only
            # A square of side s shrunk to `crop` px spans s * (crop - 1) / crop values
            # of the column and of the row gradient (pixel averaging at the edges).
            span_x = np.ptp(pixels[:, :, 0]) * crop / (crop - 1)
            span_y = np.ptp(pixels[:, :, 1]) * crop / (crop - 1)
            assert abs(span_x - span_y) <= 2.5
            assert crop / scale[1] - 2 <= span_x <= crop / scale[0] + 2, (domain, span_x)
            sides.append(span_x)
    assert min(sides) < 40 and max(sides) > 56  # zooms spread over the range
    # the same item of the same epoch again, another epoch differs
    assert torch.equal(items[(0, 5)]["A"], items[(0, 5)]["A"])
    assert not torch.equal(items[(0, 5)]["A"], items[(1, 5)]["A"])


def test_zooms_the_image_cannot_give_are_narrowed_with_a_warning(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    write_image(a, _gradient(40, 50, 0))
    pre = Preprocess(mode="crop", crop_size=32)
    with pytest.warns(
        UserWarning, match=r"a\.png \(50x40\) allows zooms down to 0\.8.*\[0\.8, 1\]"
    ):
        data = SingleImagePair(a, a, pre, scale=(0.5, 1.0))
    assert data.scales["A"] == (0.8, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SingleImagePair(a, a, pre, scale=(0.9, 1.5))


def test_validation_is_the_whole_a_image_padded(images: dict[str, Path]) -> None:
    pre = Preprocess(mode="crop", crop_size=CROP, size_multiple=4)
    val = SingleImagePair(images["a"], images["b"], pre, scale=(0.5, 1.0), train=False)
    assert len(val) == 1
    item = val[0]
    assert item["A"].shape == item["B"].shape == (3, 40, 44)  # 38 x 42 padded to 4
    whole = torch.from_numpy(read_image(images["a"])).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(item["A"][:, :38, :42], whole)
    with pytest.raises(IndexError):
        val[1]


@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_resume_is_exact(images: dict[str, Path], tmp_path: Path, model: str) -> None:
    """Any trainer of unpaired data takes single images; crops come back on resume."""

    def config(steps: int) -> dict[str, Any]:
        out = single(model, images, train={"batch_size": 2, "max_steps": steps})
        out["data"]["single_image"]["steps_per_epoch"] = 4  # the resume crosses an epoch
        return out

    full = make_engine(config(6), tmp_path / "full")
    full.fit()
    make_engine(config(3), tmp_path / "half").fit()
    again = make_engine(config(6), tmp_path / "half", resume=True)
    again.fit()
    assert (again.epoch, again.epoch_batches) == (1, 2)
    a, b = full.model.state_dict(), again.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_short_run_writes_a_generator_that_converts_the_a_image(
    images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = single(
        "cut",
        images,
        train={"batch_size": 2, "max_steps": 6},
        log={"every": 2, "eval_every": 3, "checkpoint_every": 1000, "tensorboard": False},
    )
    config["data"]["single_image"]["steps_per_epoch"] = 4
    t = make_engine(config, tmp_path)
    summary = t.fit()
    err = capsys.readouterr().err
    assert "validation: 1 images" in err and "nothing held out" in err
    assert summary["steps"] == 6 and summary["epochs"] == 2
    assert summary["val_split"] == "train" and summary["val_images"] == 1
    assert summary["dataset"] == f"single images A {images['a']}, B {images['b']}"
    samples = sorted((tmp_path / "samples").glob("*.png"))
    assert len(samples) == 2 and read_image(samples[-1]).shape[1] > 3 * 44  # whole A, 3 columns

    model = load_generators(tmp_path / "generator_latest.safetensors")
    assert model.training["dataset"] == summary["dataset"]
    assert model.preprocess.transforms.crop_size == CROP
    a = read_image(images["a"])
    out = Translator.load(tmp_path / "generator_latest.safetensors").translate_batch([a])[0]
    assert out.shape == a.shape and out.dtype == np.uint8
    reloaded = load_config(tmp_path / "config.yaml")  # what --resume reads
    assert reloaded.data.single_image == t.config.data.single_image


def test_bad_images_and_paired_trainers_are_refused_naming_key_and_file(
    images: dict[str, Path], tmp_path: Path
) -> None:
    def refused(config: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            make_engine(config, tmp_path / "run")

    missing = single("cut", images)
    missing["data"]["single_image"]["a"] = str(tmp_path / "nowhere.png")
    refused(missing, r"config key 'data\.single_image\.a': .*nowhere\.png does not exist")
    small = tmp_path / "small.png"
    write_image(small, _gradient(12, 20, 0))
    too_small = single("cut", images)
    too_small["data"]["single_image"]["b"] = str(small)
    refused(
        too_small,
        r"'data\.single_image\.b': .*small\.png is 20x12, smaller than "
        r"data\.preprocess\.crop_size 16",
    )
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    unreadable = single("cut", images)
    unreadable["data"]["single_image"]["a"] = str(broken)
    refused(unreadable, r"'data\.single_image\.a': .*broken\.png")

    pix2pix = single("pix2pix", images)
    with pytest.raises(
        ValueError,
        match=r"'data\.single_image': model 'pix2pix' trains on paired data.*\(cut, cyclegan[,)]",
    ):
        from_dict(pix2pix)
    without_b = single("cut", images)
    del without_b["data"]["single_image"]["b"]
    with pytest.raises(ValueError, match=r"'data\.single_image': needs 'b'"):
        from_dict(without_b)
    for key, value, match in (
        ("scale", [1.0, 0.5], r"scale: needs 0 < min <= max"),
        ("steps_per_epoch", 0, r"steps_per_epoch: must be at least 1"),
    ):
        bad = single("cut", images)
        bad["data"]["single_image"][key] = value
        with pytest.raises(ValueError, match=r"'data\.single_image': " + match):
            from_dict(bad)
    resized = single("cut", images)
    resized["data"]["preprocess"]["mode"] = "resize_and_crop"
    with pytest.raises(ValueError, match=r"'data\.preprocess\.mode'.*set mode: crop"):
        from_dict(resized)
    held_out = single("cut", images, data={"val_split": "val"})
    with pytest.raises(ValueError, match=r"'data\.val_split'.*no held-out images"):
        from_dict(held_out)
    for key, value in (("max_dataset_size", 10), ("serial", True)):  # refused, not ignored
        with pytest.raises(ValueError, match=rf"'data\.{key}': .* applies to a dataset folder"):
            from_dict(single("cyclegan", images, data={key: value}))


def test_cli_error_is_one_line(images: dict[str, Path], tmp_path: Path) -> None:
    """Given with --set on a config file; a missing image is one line, no traceback."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: cut\ndata: {preprocess: {mode: crop, crop_size: 16}}\n", encoding="utf-8"
    )
    args = ["train", str(config), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    args += ["--set", f"data.single_image.a={tmp_path / 'gone.png'}"]
    args += ["--set", f"data.single_image.b={images['b']}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "config key 'data.single_image.a'" in lines[0]
    assert "gone.png does not exist" in lines[0]


def test_sincut_config_loads() -> None:
    configs = Path(__file__).resolve().parent.parent / "configs"
    config = load_config(configs / "sincut_worldmaps.yaml")
    s = config.data.single_image
    assert config.model == "cut" and s is not None and s.a.endswith("trainA/r02_c09.jpg")
    assert s.scale == [0.5, 1.0] and config.data.preprocess.crop_size == 64
    assert config.data.source() == f"single images A {s.a}, B {s.b}"


def test_data_check_describes_one_image_file(images: dict[str, Path], tmp_path: Path) -> None:
    from translate.data.cli import data

    result = CliRunner().invoke(data, ["check", str(images["a"])])
    assert result.exit_code == 0, result.output
    assert f"{images['a']}: one image, 42x38, mode RGB" in result.output
    assert "data.single_image.a or .b" in result.output and "crop_size up to 38" in result.output
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    result = CliRunner().invoke(data, ["check", str(broken)])
    assert result.exit_code == 1 and f"problem: {broken}: not a readable image" in result.output
