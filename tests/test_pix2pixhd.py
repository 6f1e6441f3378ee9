"""pix2pixHD: the coarse-to-fine generator's size and stages, and `model: pix2pixhd` trained
across the switch from the global generator to the whole, on label maps and on images."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.models.vgg import cfgs, make_layers
from training_helpers import make_engine, resumed_run, weights

from translate.cli import main
from translate.data.images import write_image
from translate.models.model_file import declared_geometry
from translate.networks import build_generator, count_parameters
from translate.training.configure import from_dict

CLASSES = 4


def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout  # instance norm: biases, and the norms have no weights


def _expected(labels: int, ngf: int, down: int, blocks: int, enhancers: int, local: int) -> int:
    """pix2pixHD's generator counted by hand: the global generator (with its own output
    layer) at ``ngf * 2**enhancers``, then each enhancer's front and back."""
    width = ngf * 2**enhancers
    count = _conv(7, labels, width) + _conv(7, width, 3)  # its stem and its output layer
    for i in range(down):  # each downsampling, and its mirrored transposed convolution
        count += _conv(3, width * 2**i, width * 2 ** (i + 1)) * 2 - width * 2 ** (i + 1)
        count += width * 2**i
    count += blocks * 2 * _conv(3, width * 2**down, width * 2**down)
    for n in range(1, enhancers + 1):
        w = ngf * 2 ** (enhancers - n)
        count += _conv(7, labels, w) + _conv(3, w, 2 * w)  # front: stem, downsampling
        count += local * 2 * _conv(3, 2 * w, 2 * w) + _conv(3, 2 * w, w)  # back
    return count + (_conv(7, ngf, 3) if enhancers else 0)


@pytest.mark.parametrize(
    ("labels", "ngf", "down", "blocks", "enhancers", "local"),
    [(6, 4, 2, 1, 1, 1), (5, 4, 3, 2, 2, 2), (3, 8, 2, 1, 0, 3), (36, 32, 4, 9, 1, 3)],
)
def test_the_parameter_count_is_the_papers_layout(
    labels: int, ngf: int, down: int, blocks: int, enhancers: int, local: int
) -> None:
    with torch.device("meta"):
        net = build_generator(
            "pix2pixhd", in_channels=labels, out_channels=3, ngf=ngf, n_downsample_global=down,
            n_blocks_global=blocks, n_local_enhancers=enhancers, n_blocks_local=local,
        )  # fmt: skip
    expected = _expected(labels, ngf, down, blocks, enhancers, local)
    assert count_parameters(net) == expected
    if labels == 36:  # the paper's defaults on Cityscapes (35 classes and instance edges):
        assert expected == 182_866_470  # the 182.9M the SPADE paper lists for pix2pixHD


def test_64_pixels_give_64_and_the_global_stage_shares_the_whole_networks_modules() -> None:
    torch.manual_seed(0)
    net = build_generator("pix2pixhd", in_channels=CLASSES, out_channels=3, ngf=8).eval()
    assert declared_geometry(net) == {"scale": 1, "input_kind": "labels", "size_multiple": 32}
    x = torch.rand(1, CLASSES, 64, 64)
    with torch.no_grad():
        out, coarse = net(x), net.global_only(net.downsample(x))
        assert out.shape == (1, 3, 64, 64) and coarse.shape == (1, 3, 32, 32)
        assert out.abs().max() <= 1 and coarse.abs().max() <= 1
        net.global_net[1].weight.mul_(2)  # the global generator's stem, in both stages
        assert not torch.equal(net(x), out)
        assert not torch.equal(net.global_only(net.downsample(x)), coarse)
    alone = build_generator("pix2pixhd", in_channels=3, n_local_enhancers=0, input_kind="image")
    assert alone.size_multiple == 16 and alone(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="input_kind must be one of labels, image"):
        build_generator("pix2pixhd", in_channels=3, input_kind="photo")


def _label_set(root: Path, count: int = 3) -> None:
    """``root/{train,val}/A`` 64 px class-id maps in 8 px blocks and ``B`` their colours."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (CLASSES, 3)).astype(np.uint8)
    for split in ("train", "val"):
        for i in range(count):
            ids = np.kron(rng.integers(0, CLASSES, (8, 8)), np.ones((8, 8), np.int64))
            for folder in ("A", "B"):
                (root / split / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(ids.astype(np.uint8), "L").save(root / split / "A" / f"{i}.png")
            write_image(root / split / "B" / f"{i}.png", colours[ids])


def _config(root: Path, labels: bool = True, **loss: Any) -> dict[str, Any]:
    """64 px crops, ngf 8 with a short global generator; two global steps, one with it
    frozen, unless ``loss`` says otherwise."""
    return {
        "model": "pix2pixhd",
        "data": {
            "root": str(root),
            **({"label_nc": CLASSES, "segmenter_steps": 2} if labels else {}),
            "preprocess": {"mode": "crop", "crop_size": 64},
            "num_workers": 0,
            "val_size": 2,
        },
        "generator": {
            "options": {
                "ngf": 8,
                "n_downsample_global": 2,
                "n_blocks_global": 1,
                "n_blocks_local": 1,
                "residual": True,  # the whole starts from the global image: zero-started out
            },
        },  # fmt: skip
        "discriminator": {"options": {"ndf": 4, "n_layers": 2, "num_scales": 2}},
        "loss": {"global_steps": 2, "fix_global_steps": 1, **loss},
        "schedule": {"epochs": 2, "decay_epochs": 2},
        "train": {"batch_size": 2, "max_steps": 4},
        "log": {"every": 1, "eval_every": 1000, "checkpoint_every": 1, "tensorboard": False},
    }


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    """Which parts of G (global_net, global_out, front, back, out) any step changed."""
    return {
        key.split(".")[1]
        for key in before
        if key.startswith("G.") and not torch.equal(before[key], after[key])
    }


def test_each_stage_trains_its_part_and_a_resumed_run_lands_in_its_stage(tmp_path: Path) -> None:
    _label_set(tmp_path / "data")
    config = _config(tmp_path / "data", fix_global_steps=2)
    engine = make_engine(config, tmp_path / "run")
    parts = [weights(engine)]
    for steps in (2, 4, 5):  # the global stage, the global frozen, the whole
        staged = copy.deepcopy(config)
        staged["train"]["max_steps"] = steps
        engine = make_engine(staged, tmp_path / "run", resume=steps > 2)
        engine.fit()
        assert engine.model.steps == steps
        parts.append(weights(engine))
        # validation scores the whole network; the grid shows the global's own output too
        # while it trains alone
        images = engine.model.validate(next(iter(engine.loader))).images
        assert images["output"].shape[-1] == 64
        if steps == 2:
            assert images["global"].shape[-1] == 32
        else:
            assert "global" not in images
    assert _changed(parts[0], parts[1]) == {"global_net", "global_out"}
    # two steps: the first moves only the enhancers' output layer, which starts at zero
    assert _changed(parts[1], parts[2]) == {"front", "back", "out"}
    assert _changed(parts[2], parts[3]) == {"global_net", "global_out", "front", "back", "out"}


def test_the_whole_network_starts_from_the_global_generators_image() -> None:
    """``residual``: before any step after the switch, the whole network's image is the global
    stage's, upsampled; the paper's layout (``residual=False``) starts from a random one."""
    torch.manual_seed(0)
    x = torch.rand(1, CLASSES, 64, 64)
    for residual in (True, False):
        net = build_generator("pix2pixhd", in_channels=CLASSES, ngf=8, residual=residual)
        with torch.no_grad():
            logits = net.global_out(net.global_net(net.downsample(x)))
            upsampled = torch.tanh(
                torch.nn.functional.interpolate(logits, size=(64, 64), mode="bilinear")
            )
            assert torch.allclose(net(x), upsampled, atol=1e-6) == residual


# a checkpoint in the global stage, and one after the switch (the global generator frozen)
@pytest.mark.parametrize("half", [1, 3])
def test_resume_is_exact_across_the_switch(tmp_path: Path, half: int) -> None:
    _label_set(tmp_path / "data")
    full, resumed = resumed_run(_config(tmp_path / "data"), tmp_path / "runs", half)
    assert full.model.steps == resumed.model.steps == 4


def test_the_brief_config_trains_across_the_switch_and_converts_label_maps(tmp_path: Path) -> None:
    """ngf 8 at the network's other defaults, 64 px crops; convert writes an image a map."""
    _label_set(tmp_path / "data")
    config = _config(tmp_path / "data", global_steps=1, fix_global_steps=0)
    config["generator"] = {"options": {"ngf": 8}}
    config["train"]["max_steps"] = 2
    engine = make_engine(config, tmp_path / "run")
    engine.fit()
    batch = next(iter(engine.loader))
    shown = engine.model.validate(batch).images["input"]  # the sample grid's label maps
    palette = torch.tensor(engine.config.data.labels.palette(CLASSES)) / 127.5 - 1
    ids = batch["labels"][0, 0, 0]
    assert shown.shape == (2, 3, 64, 64) and torch.allclose(shown[0, :, 0, 0], palette[ids])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["convert", str(tmp_path / "run"), str(tmp_path / "data" / "val" / "A"), str(out)]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["0.png", "1.png", "2.png"]
    assert Image.open(out / "0.png").size == (64, 64) and Image.open(out / "0.png").mode == "RGB"


def test_paired_images_train_across_the_switch_as_an_image_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for i in range(2):
            a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            write_image(tmp_path / "data" / split / "A" / f"{i}.png", a)
            write_image(tmp_path / "data" / split / "B" / f"{i}.png", 255 - a)
    config = _config(tmp_path / "data", labels=False, global_steps=1, fix_global_steps=0)
    config["train"]["max_steps"] = 2
    engine = make_engine(config, tmp_path / "run")
    engine.fit()
    assert engine.model.G.input_kind == "image" and engine.model.steps == 2
    conv = next(m for m in engine.model.D.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.in_channels == 6  # conditional: A beside B


def test_the_config_is_checked_before_any_data(tmp_path: Path) -> None:
    base = _config(tmp_path)
    with pytest.raises(ValueError, match=r"^config key 'loss.global_steps': 2 steps .* 'resnet'"):
        from_dict({**base, "generator": {"name": "resnet"}})
    with pytest.raises(ValueError, match=r"'loss.fix_global_steps': 1 steps .*n_local_enhancers"):
        from_dict({**base, "generator": {"name": "unet"}}, ["loss.global_steps=0"])
    with pytest.raises(
        ValueError, match=r"config key 'generator.options.input_kind': 'image', but"
    ):
        from_dict(base, ["generator.options.input_kind=image"])
    with pytest.raises(ValueError, match=r"global_steps: must be 0 or more"):
        from_dict(base, ["loss.global_steps=-1"])
    with pytest.raises(
        ValueError, match=r"'data.label_nc': model 'pix2pix' .*read by: .*pix2pixhd"
    ):
        from_dict({"model": "pix2pix", "data": base["data"]})
    config = from_dict(base)
    assert config.loss.gan_mode == "lsgan" and config.loss.feature_matching == 10
    assert config.discriminator.name == "multiscale"


def test_images_too_small_for_the_discriminator_stop_in_one_line(tmp_path: Path) -> None:
    _label_set(tmp_path / "data", count=1)
    config = _config(tmp_path / "data")
    config["discriminator"]["options"]["num_scales"] = 3  # 64 px crops, 32 px in the global stage
    with pytest.raises(ValueError, match=r"^config key 'data.preprocess.crop_size': .* 32x32 px"):
        make_engine(config, tmp_path / "run")


def test_a_local_vgg_file_adds_the_perceptual_term_and_none_trains_without(tmp_path: Path) -> None:
    _label_set(tmp_path / "data", count=1)
    features = torch.nn.Sequential(*list(make_layers(cfgs["E"]))[:2])  # conv1_1, relu1_1
    vgg = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg)
    config = _config(tmp_path / "data", global_steps=0, fix_global_steps=0)
    engine = make_engine(config, tmp_path / "plain")
    losses = engine.model.train_step(next(iter(engine.loader)), engine.stepper)
    assert engine.model.perceptual is None and losses.keys() == {"D", "G_GAN"}
    config["loss"].update(perceptual_weights=str(vgg), perceptual_layers={"relu1_1": 1.0})
    engine = make_engine(config, tmp_path / "vgg")
    losses = engine.model.train_step(next(iter(engine.loader)), engine.stepper)
    assert losses["G_VGG"] > 0
    assert not any("perceptual" in k for k in engine.model.state_dict())  # frozen, not saved
    config["loss"]["perceptual_layers"] = {"relu2_1": 1.0}  # deeper than the file holds
    with pytest.raises(ValueError, match=r"'loss.perceptual_weights': .*features.2.weight"):
        make_engine(config, tmp_path / "deep")
