"""The bundled x4 super-resolution demo: small, loadable by name, exactly 4x, better than
bicubic upscaling on held-out photos and without a block grid (centre crops of the test
split of the photo data it was trained on, which neither training nor model selection saw:
tests/data/sr_heldout/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from translate import Translator
from translate.cli import main
from translate.core.metrics import BlockEdges, block_edges, psnr_y, smooth_areas
from translate.data.degradations import build_degradation
from translate.data.images import list_images, read_image, write_image
from translate.models.loading import resolve_model_path
from translate.models.model_file import read_metadata
from translate.training.configure import load_config
from translate.training.models.sr import bicubic_upscale

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = Path(__file__).parent / "data" / "sr_heldout"
SCALE = 4


def test_demo_sr_file_is_small_x4_and_names_its_recipe() -> None:
    path = resolve_model_path("demo-sr")
    assert path.stat().st_size <= 5_000_000
    weights = load_file(str(path))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    meta = read_metadata(path)
    config = load_config(ROOT / "configs" / "demo_sr.yaml")  # the recipe that trained it
    spec = meta.specs["AtoB"]
    assert (spec.name, spec.options) == (config.generator.name, config.generator.options)
    assert spec.scale == SCALE
    assert meta.training["model"] == "sr" and meta.training["steps"] > 0


def test_quickstart_convert_demo_sr_writes_4x_outputs(tmp_path: Path) -> None:
    source = tmp_path / "in"
    image = read_image(next(iter(list_images(HELD_OUT))))
    write_image(source / "odd.png", image[:23, :37])  # odd sizes: no padding to a multiple
    result = CliRunner().invoke(main, ["convert", "demo-sr", str(source), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "odd.png").shape == (23 * SCALE, 37 * SCALE, 3)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC uint8 images as one NCHW batch in [-1, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_demo_sr_beats_bicubic_on_held_out_photos_without_a_grid() -> None:
    hr = to_tensor([read_image(p) for p in list_images(HELD_OUT)])
    assert len(hr) >= 4
    lr = build_degradation("bicubic", SCALE)((hr + 1) / 2, torch.arange(len(hr))) * 2 - 1
    lr_images = [(np.asarray(x) * 127.5 + 127.5).round().astype(np.uint8)
                 for x in lr.permute(0, 2, 3, 1)]  # fmt: skip
    translator = Translator.load("demo-sr", device="cpu", precision="fp32")
    sr = to_tensor(translator.translate_batch(lr_images))
    bicubic = bicubic_upscale(to_tensor(lr_images), SCALE)
    ours = psnr_y(sr, hr, border=SCALE)
    baseline = psnr_y(bicubic, hr, border=SCALE)
    assert ours > baseline, f"demo-sr {ours:.2f} dB vs bicubic {baseline:.2f} dB"
    # The grid the first demo drew on smooth areas (7.8 on the test photos): at most 1.5x
    # bicubic's ratio, on the same smooth areas of the targets.
    masks = [smooth_areas(target, SCALE) for target in hr]

    def grid(images: torch.Tensor) -> float:
        edges = [block_edges(x, SCALE, mask) for x, mask in zip(images, masks, strict=True)]
        return sum(edges, BlockEdges()).ratio()

    assert grid(sr) <= 1.5 * grid(bicubic), f"demo-sr {grid(sr):.2f} vs {grid(bicubic):.2f}"
