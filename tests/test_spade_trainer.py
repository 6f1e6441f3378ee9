"""`model: spade`: label maps to images with the paper's losses, its style encoder, exact
resume, a run's generator converting label maps, and the config's one-line refusals."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from training_helpers import make_engine, resumed_run

from translate.cli import main
from translate.data.labels import colorize
from translate.training.configure import from_dict
from translate.training.engine import _to_device

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = 3
SIZE = 64
COLORS = np.array([[20, 40, 160], [40, 140, 60], [220, 220, 230]], np.uint8)


def _ids(seed: int) -> np.ndarray:
    """A 64 px map of 8x8 blocks of random classes."""
    coarse = np.random.default_rng(seed).integers(0, CLASSES, (SIZE // 8, SIZE // 8))
    return np.kron(coarse, np.ones((8, 8), np.int64)).astype(np.uint8)


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Label PNGs in train/A and val/A, their images (each class's colour, noisy) in B."""
    root = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for folder in ("A", "B"):
            (root / split / folder).mkdir(parents=True)
        for i in range(count):
            ids = _ids(100 * (split == "val") + i)
            Image.fromarray(ids, "L").save(root / split / "A" / f"m{i}.png")
            noise = rng.integers(-20, 20, (SIZE, SIZE, 3))
            image = np.clip(COLORS[ids].astype(int) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / split / "B" / f"m{i}.png")
    return root


def spade(root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The issue's config: ``ngf: 16`` and 64 px crops; a thinner D and SPADE convolutions
    to stay fast on two cores."""
    config: dict[str, Any] = {
        "model": "spade",
        "data": {
            "root": str(root),
            "label_nc": CLASSES,
            "segmenter_steps": 2,
            "preprocess": {"mode": "crop", "crop_size": SIZE},
            "num_workers": 0,
            "val_size": 2,
        },
        "generator": {"options": {"ngf": 16, "hidden": 16}},
        "discriminator": {"options": {"ndf": 8}},
        "train": {"batch_size": 2, "max_steps": 2},
        "log": {"every": 1, "eval_every": 2, "checkpoint_every": 1000, "tensorboard": False},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def test_the_defaults_are_the_papers(labels: Path) -> None:
    config = from_dict({"model": "spade", "data": {"root": str(labels), "label_nc": CLASSES}})
    assert config.generator.name == "spade"
    d = config.discriminator
    assert d.name == "multiscale"
    assert d.options == {"norm": "instance", "num_scales": 2, "spectral_norm": True}
    loss = config.loss
    assert (loss.gan_mode, loss.feature_matching, loss.lambda_vgg, loss.lambda_kld) == (
        "hinge", 10.0, 10.0, 0.05,
    )  # fmt: skip
    assert loss.perceptual_weights is None  # no VGG term without a local file
    o = config.optim
    assert (o.lr_g, o.lr_d, o.beta1, o.beta2) == (1e-4, 4e-4, 0.0, 0.9)


def test_two_steps_then_convert_writes_one_image_per_label_map(
    labels: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    engine = make_engine(spade(labels), run)
    assert engine.model.D.scales[0].model[0].in_channels == CLASSES + 3  # map beside image
    engine.fit()
    assert engine.step == 2
    metrics = (run / "metrics.jsonl").read_text()
    for key in ("G_GAN", "D", "val_L1", "val_PSNR"):
        assert f'"{key}"' in metrics, key
    assert "G_VGG" not in metrics and "G_KLD" not in metrics
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["convert", str(run), str(labels / "val" / "A"), str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert written == ["m0.png", "m1.png"]
    assert Image.open(out / "m0.png").size == (SIZE, SIZE)


def test_validation_shows_the_map_in_its_palette_colours(labels: Path, tmp_path: Path) -> None:
    engine = make_engine(
        spade(labels, data={"labels": {"colors": COLORS.tolist()}}), tmp_path / "run"
    )
    batch = _to_device(next(iter(engine.loader)), engine.device, False)
    shown = engine.model.validate(batch).images["input"]
    ids = batch["labels"]
    want = torch.from_numpy(COLORS).float()[ids].permute(0, 3, 1, 2) / 127.5 - 1
    assert torch.allclose(shown, want, atol=1e-5)
    hot = batch["input"].clone()
    hot[:, :, :2] = 0  # unlabelled pixels are black
    assert (colorize(hot, COLORS.tolist())[:, :, :2] == -1).all()


def test_instance_boundaries_are_one_more_input_channel(labels: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(labels, root)
    for split in ("train", "val"):
        (root / split / "inst").mkdir()
        for path in (root / split / "A").iterdir():  # each 8x8 block its own object
            inst = np.arange(SIZE)[:, None] // 8 * 8 + np.arange(SIZE) // 8
            Image.fromarray(inst.astype(np.uint8)).save(root / split / "inst" / path.name)
    engine = make_engine(spade(root, data={"instances": True}), tmp_path / "run")
    assert engine.model.spec.in_channels == CLASSES + 1
    assert engine.model.D.scales[0].model[0].in_channels == CLASSES + 1 + 3
    engine.fit()
    assert engine.step == 2


def test_the_style_encoder_trains_and_encodes_images(labels: Path, tmp_path: Path) -> None:
    config = spade(labels, generator={"options": {"ngf": 16, "hidden": 16, "style_dim": 8}})
    engine = make_engine(config, tmp_path / "run")
    G = engine.model.G
    encoder_before = {k: v.clone() for k, v in G.encoder.state_dict().items()}
    engine.fit()
    assert '"G_KLD"' in (tmp_path / "run" / "metrics.jsonl").read_text()
    # the encoder is part of the generator, trained with it and saved in its file
    after = G.encoder.state_dict()
    assert any(not torch.equal(encoder_before[k], after[k]) for k in after)
    G.eval()
    images = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        style = G.encode_style(images)
        assert style.shape == (3, G.noise_dim) == (3, 8)
        hot = torch.nn.functional.one_hot(torch.from_numpy(_ids(7)).long(), CLASSES)
        hot = hot.permute(2, 0, 1)[None].float().expand(3, -1, -1, -1)
        a, b = G(hot, style), G(hot, style.flip(0))
    assert torch.equal(a[0], b[2]) and not torch.allclose(a[0], a[1])  # the style decides
    from translate.models.model_file import load_generators

    loaded = load_generators(tmp_path / "run" / "generator_latest.safetensors", "cpu")
    with torch.no_grad():
        assert torch.allclose(loaded.generators["AtoB"].encode_style(images), style, atol=1e-5)


def test_resume_is_exact(labels: Path, tmp_path: Path) -> None:
    config = spade(labels, generator={"options": {"ngf": 16, "hidden": 16, "style_dim": 8}})
    config["train"]["max_steps"] = 3
    config["log"]["eval_every"] = 1000
    resumed_run(config, tmp_path, half=1)


def test_a_local_vgg_file_adds_the_vgg_term(labels: Path, tmp_path: Path) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    features = torch.nn.Sequential(*list(make_layers(cfgs["E"]))[:2])
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "v.pth")
    loss = {"perceptual_weights": str(tmp_path / "v.pth"), "perceptual_layers": {"relu1_1": 1}}
    engine = make_engine(spade(labels, loss=loss), tmp_path / "run")
    batch = _to_device(next(iter(engine.loader)), engine.device, False)
    assert engine.model.train_step(batch, engine.stepper)["G_VGG"] > 0
    assert not any("perceptual" in k for k in engine.model.state_dict())  # frozen, not saved


def test_a_config_without_label_nc_is_refused_in_one_line(labels: Path, tmp_path: Path) -> None:
    config = spade(labels)
    del config["data"]["label_nc"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(
        main, ["train", str(tmp_path / "bad.yaml"), "--run-dir", str(tmp_path / "run")]
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert "bad.yaml: config key 'data.label_nc': model 'spade' trains on label maps" in (
        result.output
    )
    assert not (tmp_path / "run").exists()  # refused before any run starts
    with pytest.raises(ValueError, match=r"'data.label_nc': model 'pix2pix' .*\(read by: .*spade"):
        from_dict({"model": "pix2pix", "data": {"root": str(labels), "label_nc": CLASSES}})
    with pytest.raises(ValueError, match=r"'loss': lambda_kld: must be 0 or more, got -1"):
        from_dict(spade(labels, loss={"lambda_kld": -1}))
