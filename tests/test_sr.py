"""The super-resolution trainer (``model: sr``): HR-only and paired data, its losses, its
validation (PSNR/SSIM on Y, the bicubic baseline), the two-stage recipe and exact resume."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from spandrel import ModelLoader
from torchvision.models.vgg import cfgs, make_layers
from training_helpers import make_engine, resumed_run, tiny

from translate.apps.evaluate import evaluate
from translate.cli import main
from translate.core import metrics
from translate.data.degradations import build_degradation
from translate.data.images import read_image, write_image
from translate.data.transforms import Preprocess, to_tensor
from translate.models.model_file import GeneratorSpec, InputSpec, load_generators, save_generators
from translate.training.configure import from_dict, load_config
from translate.training.engine import Engine, _to_device
from translate.training.models.sr import bicubic_upscale, usm_sharpen
from translate.training.perceptual import PerceptualLoss, vgg19_layer_names

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_G = {"name": "srvgg_compact", "options": {"num_feat": 8, "num_conv": 2}}

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random colours (upscaled noise): there is detail for bicubic to lose."""
    small = rng.integers(0, 256, (height // 6, width // 6, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def hr_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HR images in train/ only (validation holds every 10th out: here the last of six)."""
    root = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_image(root / "train" / f"{i}.png", _photo(rng, 72, 80))
    return root


@pytest.fixture(scope="module")
def paired_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LR images in A/, their HR originals (4x) in B/."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(1)
    for i in range(6):
        hr = _photo(rng, 64, 80)
        write_image(root / "B" / f"{i}.png", hr)
        write_image(root / "A" / f"{i}.png", cv2.resize(hr, (20, 16), interpolation=cv2.INTER_AREA))
    return root


def sr_config(root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The issue's config (``model: sr``, HR folder, bicubic, 64 px HR crops) with a tiny
    network and run (training_helpers' ``tiny``); ``sections`` update it."""
    data = {"degradation": "bicubic", "preprocess": {"mode": "crop", "crop_size": 64}}
    config = tiny("sr", root, data=data, generator=copy.deepcopy(TINY_G), train={"max_steps": 2})
    config["discriminator"] = {"name": "unet_sn", "options": {"num_feat": 4}}
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# --- metrics ------------------------------------------------------------------------------


def _basicsr_psnr_ssim(a: np.ndarray, b: np.ndarray, border: int) -> tuple[float, float]:
    """BasicSR's calculate_psnr/calculate_ssim(..., crop_border, test_y_channel=True) on
    uint8 RGB images, written out with numpy and OpenCV."""

    def y(img: np.ndarray) -> np.ndarray:
        return img.astype(np.float64) / 255 @ np.array([65.481, 128.553, 24.966]) + 16

    ya, yb = (y(x)[border:-border, border:-border] for x in (a, b))
    psnr = 10 * np.log10(255**2 / np.mean((ya - yb) ** 2))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu_a, mu_b = blur(ya), blur(yb)
    var_a, var_b = blur(ya**2) - mu_a**2, blur(yb**2) - mu_b**2
    cov = blur(ya * yb) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return psnr, ssim.mean()


def test_psnr_and_ssim_on_y_match_basicsr_with_the_border_cropped() -> None:
    rng = np.random.default_rng(2)
    a = _photo(rng, 48, 60)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    b[:4] = 0  # a border the crop removes: scored only without it
    want_psnr, want_ssim = _basicsr_psnr_ssim(a, b, border=4)
    out, target = to_tensor(b)[None], to_tensor(a)[None]
    assert metrics.psnr_y(out, target, border=4) == pytest.approx(want_psnr, abs=1e-3)
    assert metrics.ssim_y(out, target, border=4) == pytest.approx(want_ssim, abs=1e-4)
    assert metrics.psnr_y(out, target, border=0) < want_psnr - 1
    scores = metrics.SRScores(border=4)
    scores.add(out, target)
    assert scores.result()["psnr_y"] == pytest.approx(want_psnr, abs=1e-3)


# --- data and config ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hr_run(hr_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, Path]:
    """The issue's config trained 2 steps from train/ HR images alone, evaluated each step."""
    run_dir = tmp_path_factory.mktemp("run")
    config = sr_config(hr_root, log={"every": 1, "eval_every": 1, "tensorboard": False})
    t = make_engine(config, run_dir)
    t.fit()
    return t, run_dir


def test_the_issues_config_trains_from_train_hr_images_alone(hr_run) -> None:
    t, run_dir = hr_run
    assert t.model.scale == 4 and t.config.data.val_split == "holdout"
    batch = next(iter(t.loader))
    assert batch["target"].shape == (2, 3, 64, 64) and batch["seed"].dtype == torch.int64
    evals = [r for r in records(run_dir) if "val_PSNR_Y" in r]
    assert len(evals) == 2 and evals[0]["val_PSNR_Y"] != evals[1]["val_PSNR_Y"]
    # generator_best is the highest PSNR-Y (higher is better), not the lowest
    best = max(evals, key=lambda r: r["val_PSNR_Y"])
    assert t.summary()["best_val"]["step"] == best["step"]
    model = load_generators(run_dir / "generator_best.safetensors")
    assert model.specs["AtoB"].scale == 4
    x = torch.zeros(1, 3, 10, 12)
    assert model.generators["AtoB"](x).shape == (1, 3, 40, 48)


def test_the_first_evaluation_scores_the_bicubic_baseline(hr_run) -> None:
    t, run_dir = hr_run
    first, second = [r for r in records(run_dir) if "val_PSNR_Y" in r]
    assert "baseline_val_PSNR_Y" in first and "baseline_val_PSNR_Y" not in second
    # bicubic upscaling of the bicubic LR of the held-out image, scored here independently
    hr = t.evaluator.val_set[0]["target"][None]
    lr = build_degradation("bicubic", 4)((hr + 1) / 2, torch.zeros(1, dtype=torch.int64)) * 2 - 1
    want = metrics.psnr_y(bicubic_upscale(lr, 4), hr, border=4)
    assert first["baseline_val_PSNR_Y"] == pytest.approx(want, abs=1e-4)
    assert t.summary()["baseline_val"]["val_PSNR_Y"] == first["baseline_val_PSNR_Y"]
    # an untrained x4 network is far from bicubic: the row shows what is still to beat
    assert first["val_PSNR_Y"] < first["baseline_val_PSNR_Y"]


def test_the_runs_generator_converts_at_4x_and_loads_in_spandrel(hr_run, tmp_path) -> None:
    _, run_dir = hr_run
    write_image(tmp_path / "in" / "a.png", _photo(np.random.default_rng(6), 30, 20))
    result = CliRunner().invoke(
        main, ["convert", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "a.png").shape == (120, 80, 3)
    # the file training wrote loads in spandrel (the community loader) with the same output
    path = run_dir / "generator_best.safetensors"
    theirs = ModelLoader().load_from_file(path)
    assert (theirs.architecture.id, theirs.scale) == ("Compact", 4)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        ours = (load_generators(path).generators["AtoB"](x * 2 - 1) + 1) / 2
        assert torch.allclose(theirs.model.eval()(x), ours, atol=1e-5)


def test_paired_lr_hr_folders_train(paired_root: Path, tmp_path: Path) -> None:
    config = sr_config(  # HR pixels, as on HR images alone: 16 px LR crops
        paired_root,
        data={"degradation": None, "preprocess": {"mode": "crop", "crop_size": 64}},
        loss={"lambda_gan": 0.1},  # the GAN stage: D and G both step
    )
    t = make_engine(config, tmp_path)
    batch = _to_device(next(iter(t.loader)), t.device, False)
    assert batch["input"].shape == (2, 3, 16, 16) and batch["target"].shape == (2, 3, 64, 64)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    losses = t.model.train_step(batch, t.stepper)
    assert set(losses) == {"D", "G_L1", "G_GAN"}
    after = t.model.state_dict()
    for net in ("G", "D"):
        keys = [k for k in before if k.startswith(f"{net}.") and k.endswith("weight")]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys), net
    t.fit()
    assert (tmp_path / "generator_best.safetensors").is_file()


def test_paired_crops_count_hr_pixels_and_are_never_padded(paired_root, tmp_path) -> None:
    """`translate train` refuses a crop larger than the HR images (64x80 here) before any
    step, naming the key and a file, as it refuses one that is no whole LR crop."""
    too_large = f"{paired_root / 'B' / '0.png'} (80x64) (and 4 more); lower it to at most 64"
    for crop, message in (
        (128, f"'data.preprocess.crop_size': 128 HR pixels is larger than {too_large}"),
        (66, "'data.preprocess.crop_size': 66 HR pixels is not a multiple of 4"),
    ):
        preprocess = {"mode": "crop", "crop_size": crop}
        config = sr_config(paired_root, data={"degradation": None, "preprocess": preprocess})
        path = tmp_path / f"sr_{crop}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        args = ["train", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_hr_crops_larger_than_an_image_are_refused(hr_root: Path, tmp_path: Path) -> None:
    config = sr_config(hr_root, data={"preprocess": {"mode": "crop", "crop_size": 96}})
    with pytest.raises(ValueError, match=r"96 HR pixels is larger than \S+0\.png \(80x72\)"):
        make_engine(config, tmp_path)


def test_sr_turns_its_crops_by_default_and_says_where_it_cannot(tmp_path: Path) -> None:
    """model sr trains on the 8 symmetries of a square crop (rotate and flip); mode none
    keeps whole images, which a quarter turn would reshape: refused, naming the fix."""
    assert from_dict(sr_config(tmp_path)).data.preprocess.rotate is True
    assert from_dict(tiny("pix2pix", tmp_path)).data.preprocess.rotate is False
    whole = {"preprocess": {"mode": "none"}}
    with pytest.raises(ValueError, match="preprocess.rotate: .*model sr turns it on by default"):
        from_dict(sr_config(tmp_path, data=whole))
    whole["preprocess"]["rotate"] = False
    assert from_dict(sr_config(tmp_path, data=whole)).data.preprocess.mode == "none"


def test_a_short_l1_run_lowers_the_loss(hr_root: Path, tmp_path: Path) -> None:
    config = sr_config(
        hr_root,
        loss={"lambda_gan": 0},
        optim={"lr_g": 2e-3},
        train={"batch_size": 2, "max_steps": 12},
        log={"every": 4, "eval_every": 1000, "tensorboard": False},
    )
    t = make_engine(config, tmp_path)
    assert t.model.D is None and set(t.stepper.optimizers) == {"G"}
    t.fit()
    l1 = [r["G_L1"] for r in records(tmp_path) if "G_L1" in r]
    assert l1[-1] < l1[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"preprocess": {"mode": "crop", "crop_size": 66}},
            "'data.preprocess.crop_size': 66 HR pixels is not a multiple of 4",
        ),
        (
            {"preprocess": {"mode": "resize_and_crop"}},
            "'data.preprocess.mode': 'resize_and_crop' would resize",
        ),
    ],
)
def test_hr_crops_refuse_what_breaks_the_lr_side(hr_root, tmp_path, change, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_engine(sr_config(hr_root, data=change), tmp_path)


def test_rrdbnet_x2_trains_on_hr_crops_a_multiple_of_its_unshuffle(hr_root, tmp_path) -> None:
    """x2 RRDB unshuffles its input by 2: HR crops must divide by 4, not just by the scale."""
    rrdb = {
        "name": "rrdbnet",
        "options": {"scale": 2, "num_feat": 4, "num_block": 1, "num_grow_ch": 4},
    }
    crop = {"mode": "crop", "crop_size": 62}
    with pytest.raises(ValueError, match="crop_size': 62 HR pixels is not a multiple of 4"):
        make_engine(sr_config(hr_root, generator=rrdb, data={"preprocess": crop}), tmp_path / "a")
    t = make_engine(sr_config(hr_root, generator=rrdb), tmp_path / "b")
    batch = _to_device(next(iter(t.loader)), t.device, False)
    assert t.model.G(t.model.low_resolution(batch)).shape == (2, 3, 64, 64)
    assert torch.isfinite(t.model.train_step(batch, t.stepper)["G_L1"])


def test_degradation_keys_are_checked_before_any_data_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="'data.degradation': unknown degradation 'blurry'"):
        from_dict(sr_config(missing, data={"degradation": "blurry"}))
    with pytest.raises(ValueError, match="'data.degradation_options': sigma: unknown option"):
        from_dict(sr_config(missing, data={"degradation_options": {"sigma": 2}}))
    with pytest.raises(ValueError, match="'data.degradation': model 'pix2pix' trains on paired"):
        from_dict({"model": "pix2pix", "data": {"root": str(missing), "degradation": "bicubic"}})


def test_hr_seeds_follow_the_run_seed_epoch_and_index(hr_root: Path, tmp_path: Path) -> None:
    """What makes resume exact: item (epoch, index) has one seed, whoever reads it."""
    t = make_engine(sr_config(hr_root), tmp_path)
    items = t.loader.dataset
    assert items[(0, 1)]["seed"] == items[(0, 1)]["seed"]
    assert len({items[key]["seed"] for key in ((0, 1), (1, 1), (0, 2))}) == 3
    assert t.evaluator.val_set[0]["seed"] == 0  # the same LR inputs at every evaluation


@pytest.mark.slow
def test_resume_is_exact_with_the_realesrgan_degradation(hr_root: Path, tmp_path: Path):
    config = sr_config(
        hr_root,
        data={"degradation": "realesrgan"},
        train={"batch_size": 2, "max_steps": 4},
    )
    resumed_run(config, tmp_path, half=2)


def test_usm_sharpening_matches_basicsrs_usmsharp() -> None:
    rng = np.random.default_rng(5)
    image = _photo(rng, 64, 64).astype(np.float32) / 255
    # BasicSR's USMSharp (radius 50, weight 0.5, threshold 10), written with OpenCV
    kernel = cv2.getGaussianKernel(51, 0) @ cv2.getGaussianKernel(51, 0).T  # radius 50 -> 51
    residual = image - cv2.filter2D(image, -1, kernel)
    mask = cv2.filter2D((np.abs(residual) * 255 > 10).astype(np.float32), -1, kernel)
    want = mask * np.clip(image + 0.5 * residual, 0, 1) + (1 - mask) * image
    got = (usm_sharpen(to_tensor((image * 255).round().astype(np.uint8))[None]) + 1) / 2
    assert np.abs(got[0].permute(1, 2, 0).numpy() - want).max() < 1e-4


def test_usm_target_sharpens_the_targets_it_names(hr_root: Path, tmp_path: Path) -> None:
    l1 = {}
    for terms in ([], ["l1"]):
        torch.manual_seed(0)
        t = make_engine(sr_config(hr_root, loss={"usm_target": terms}), tmp_path / str(len(terms)))
        batch = _to_device(next(iter(t.loader)), t.device, False)
        l1[len(terms)] = t.model.train_step(batch, t.stepper)["G_L1"].item()
    assert l1[0] != pytest.approx(l1[1])
    with pytest.raises(ValueError, match="'loss': usm_target: pixel is no loss term"):
        from_dict(sr_config(hr_root, loss={"usm_target": ["pixel"]}))


# --- the two stages -----------------------------------------------------------------------


def test_the_docs_smallest_config_is_the_psnr_stage(hr_root: Path, tmp_path: Path) -> None:
    """docs/super-resolution.md's smallest config, copied as is, trains the PSNR-oriented
    stage: L1 only, no discriminator (the trainer's default lambda_gan is 0)."""
    page = (CONFIGS.parent / "docs" / "super-resolution.md").read_text()
    block = page.split("The smallest config")[1].split("```yaml\n")[1].split("```")[0]
    config = yaml.safe_load(block)
    assert config["model"] == "sr" and "lambda_gan" not in config.get("loss", {})
    config["data"]["root"] = str(hr_root)
    t = make_engine(config, tmp_path)
    assert t.config.loss.lambda_gan == 0
    assert t.model.D is None and set(t.stepper.optimizers) == {"G"}


def test_the_two_stage_configs_load_as_the_recipe() -> None:
    psnr = load_config(CONFIGS / "sr_psnr.yaml")
    gan = load_config(CONFIGS / "sr_gan.yaml")
    assert psnr.model == gan.model == "sr"
    assert psnr.loss.lambda_gan == 0 and psnr.loss.lambda_l1 == 1
    assert gan.loss.lambda_gan == 0.1 and gan.loss.gan_mode == "vanilla"
    assert gan.loss.pretrained and gan.generator == psnr.generator
    assert gan.discriminator.name == psnr.discriminator.name == "unet_sn"


def test_gan_fine_tuning_starts_from_the_psnr_run(hr_root: Path, tmp_path: Path) -> None:
    make_engine(sr_config(hr_root, loss={"lambda_gan": 0}), tmp_path / "psnr").fit()
    fine = make_engine(
        sr_config(hr_root, loss={"pretrained": str(tmp_path / "psnr")}), tmp_path / "gan"
    )
    stage1 = load_generators(tmp_path / "psnr" / "generator_best.safetensors").generators["AtoB"]
    for key, value in stage1.state_dict().items():
        assert torch.equal(fine.model.G.state_dict()[key], value), key
    other = sr_config(hr_root, loss={"pretrained": str(tmp_path / "psnr")})
    other["generator"]["options"]["num_feat"] = 4
    with pytest.raises(ValueError, match="'loss.pretrained': .*set generator: to the file's"):
        make_engine(other, tmp_path / "other")
    missing = tmp_path / "missing.safetensors"
    other = sr_config(hr_root, loss={"pretrained": str(missing)})
    with pytest.raises(ValueError) as refused:  # the path once, as the loader names it
        make_engine(other, tmp_path / "missing")
    assert (
        str(refused.value) == f"config key 'loss.pretrained': {missing}: no such file or directory"
    )


# --- perceptual loss ----------------------------------------------------------------------


def test_asking_for_the_perceptual_loss_names_the_file_to_provide(hr_root, tmp_path) -> None:
    with pytest.raises(
        ValueError, match=r"'loss.lambda_perceptual'.*loss.perceptual_weights.*vgg19-dcbb9e9d\.pth"
    ):
        from_dict(sr_config(hr_root, loss={"lambda_perceptual": 1.0}))
    absent = tmp_path / "vgg19.pth"
    config = sr_config(hr_root, loss={"lambda_perceptual": 1.0, "perceptual_weights": str(absent)})
    with pytest.raises(ValueError, match=f"'loss.perceptual_weights': {absent}: no such"):
        make_engine(config, tmp_path / "run")


def _vgg_file(path: Path, seed: int, layers: int = 4) -> Path:
    """torchvision-style keys (features.<i>.*) of VGG19's first ``layers`` entries, random."""
    torch.manual_seed(seed)
    features = torch.nn.Sequential(*list(make_layers(cfgs["E"]))[:layers])
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_vgg19_layer_names_follow_torchvisions_features() -> None:
    names, layers = vgg19_layer_names(), list(make_layers(cfgs["E"]))
    assert len(names) == len(layers)
    for name, layer in zip(names, layers, strict=True):
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
        assert isinstance(layer, kind[name.rstrip("0123456789_")]), name
    assert names.index("conv5_4") == 34 and names.index("conv3_4") == 16


def test_the_perceptual_loss_uses_the_files_weights(tmp_path: Path) -> None:
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    one = PerceptualLoss(_vgg_file(tmp_path / "a.pth", 0), {"conv1_2": 1.0})
    two = PerceptualLoss(_vgg_file(tmp_path / "b.pth", 1), {"conv1_2": 1.0})
    assert one(x, x).item() == 0 and one(x, y).item() > 0
    assert one(x, y).item() != pytest.approx(two(x, y).item())
    with pytest.raises(
        ValueError, match=r"a\.pth: not torchvision's VGG19 weights: features\.5\.weight is missing"
    ):
        PerceptualLoss(tmp_path / "a.pth", {"conv2_1": 1.0})
    with pytest.raises(ValueError, match="perceptual_layers: conv1_2's weight 'high' is not"):
        PerceptualLoss(tmp_path / "a.pth", {"conv1_2": "high"})


def test_training_with_a_local_vgg_file_adds_the_perceptual_term(hr_root, tmp_path) -> None:
    weights = _vgg_file(tmp_path / "vgg.pth", 0)
    loss = {
        "lambda_perceptual": 1.0,
        "perceptual_weights": str(weights),
        "perceptual_layers": {"conv1_2": 1.0},
    }
    t = make_engine(sr_config(hr_root, loss=loss), tmp_path / "run")
    batch = _to_device(next(iter(t.loader)), t.device, False)
    losses = t.model.train_step(batch, t.stepper)
    assert losses["G_perceptual"] > 0
    assert not any("perceptual" in k for k in t.model.state_dict())  # frozen, not saved
    loss["perceptual_layers"] = {"conv9_9": 1.0}
    with pytest.raises(ValueError, match="'loss.perceptual_layers': conv9_9; VGG19 layers are"):
        make_engine(sr_config(hr_root, loss=loss), tmp_path / "bad")


# --- translate evaluate -------------------------------------------------------------------


def test_evaluate_scores_an_sr_model_on_y_over_whole_images(tmp_path: Path) -> None:
    spec = GeneratorSpec.declared("srvgg_compact", 3, 3, {"num_feat": 4, "num_conv": 1})
    generator = spec.build().eval()
    # a training crop the scores must not use: SR is scored on whole images
    preprocess = InputSpec(Preprocess(mode="crop", crop_size=8))
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, generator)}, preprocess)
    rng = np.random.default_rng(3)
    want_psnr, want_ssim, want_bicubic = [], [], []
    for name, (h, w) in (("x", (12, 16)), ("y", (16, 12))):  # sizes differ
        hr = _photo(rng, 4 * h, 4 * w)
        lr = cv2.resize(hr, (w, h), interpolation=cv2.INTER_AREA)
        write_image(tmp_path / "data" / "A" / "val" / f"{name}.png", lr)
        write_image(tmp_path / "data" / "B" / "val" / f"{name}.png", hr)
        with torch.no_grad():
            out = generator(to_tensor(lr)[None]).clamp(-1, 1)
        want_psnr.append(metrics.psnr_y(out, to_tensor(hr)[None], border=4))
        want_ssim.append(metrics.ssim_y(out, to_tensor(hr)[None], border=4))
        bicubic = bicubic_upscale(to_tensor(lr)[None], 4)
        want_bicubic.append(metrics.psnr_y(bicubic, to_tensor(hr)[None], border=4))
    args = ["--model", str(tmp_path / "g.safetensors"), "--data", str(tmp_path / "data")]
    result = CliRunner().invoke(evaluate, [*args, "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["images"] == 2 and "psnr" not in scores
    assert scores["psnr_y"] == pytest.approx(np.mean(want_psnr), rel=1e-5)
    assert scores["ssim_y"] == pytest.approx(np.mean(want_ssim), rel=1e-5)
    # the baseline row, as training's first evaluation prints it: bicubic on the same inputs
    assert scores["bicubic_psnr_y"] == pytest.approx(np.mean(want_bicubic), rel=1e-5)
    assert scores["bicubic_psnr_y"] > scores["psnr_y"]  # an untrained network is below it
    table = CliRunner().invoke(evaluate, [*args, "--device", "cpu"])
    assert "PSNR-Y (dB)" in table.output and "SSIM-Y" in table.output
    row = next(line for line in table.output.splitlines() if line.startswith("bicubic PSNR-Y"))
    assert f"{scores['bicubic_psnr_y']:.4f}" in row


def test_the_documented_commands_train_and_resume(hr_root: Path, tmp_path: Path) -> None:
    """docs/super-resolution.md: configs/sr_psnr.yaml on a folder of photos, then --resume
    (the run's config.yaml, with the SR keys, read back)."""
    run = tmp_path / "sr_psnr"
    tiny_run = [
        f"data.root={hr_root}", "data.preprocess.crop_size=64", "data.num_workers=0",
        "generator.options.num_feat=8", "generator.options.num_conv=2",
        "train.batch_size=2", "train.max_steps=2", "log.tensorboard=false",
    ]  # fmt: skip
    args = ["train", str(CONFIGS / "sr_psnr.yaml"), "--run-dir", str(run), "--no-progress"]
    result = CliRunner().invoke(main, [*args, *(f"--set={s}" for s in tiny_run)])
    assert result.exit_code == 0, result.output
    assert "baseline (bicubic): val_L1" in result.output
    resume = ["train", "--resume", str(run), "--no-progress", "--set", "train.max_steps=3"]
    result = CliRunner().invoke(main, resume)
    assert result.exit_code == 0, result.output
    assert load_generators(run / "generator_latest.safetensors").training["steps"] == 3


def test_evaluate_makes_the_lr_of_an_hr_set_with_the_degradation(tmp_path: Path) -> None:
    """Set5-style: HR images alone in test/, their LR made by bicubic, whole images cut to a
    multiple of the scale."""
    spec = GeneratorSpec.declared("srvgg_compact", 3, 3, {"num_feat": 4, "num_conv": 1})
    generator = spec.build().eval()
    save_generators(tmp_path / "g.safetensors", {"AtoB": (spec, generator)})
    rng = np.random.default_rng(4)
    bicubic, want = build_degradation("bicubic", 4), []
    for name, (h, w) in (("img_001", (50, 64)), ("img_002", (64, 42))):
        hr = _photo(rng, h, w)
        write_image(tmp_path / "set5" / "test" / f"{name}.png", hr)
        target = to_tensor(hr[: h // 4 * 4, : w // 4 * 4])[None]
        lr = bicubic((target + 1) / 2, torch.zeros(1, dtype=torch.int64)) * 2 - 1
        with torch.no_grad():
            want.append(metrics.psnr_y(generator(lr).clamp(-1, 1), target, border=4))
    args = ["--model", str(tmp_path / "g.safetensors"), "--data", str(tmp_path / "set5")]
    args += ["--split", "test", "--degradation", "bicubic", "--device", "cpu", "--json"]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["images"] == 2
    assert scores["psnr_y"] == pytest.approx(np.mean(want), rel=1e-5)
    result = CliRunner().invoke(evaluate, [a if a != "bicubic" else "blurry" for a in args])
    assert result.exit_code == 1 and "unknown degradation 'blurry'" in result.output
