"""`translate card RUN OUT_DIR`: the upload folder of a tiny trained run, and its
model.safetensors read back from a Hub cache (laid out as in test_hub, offline)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from translate.cli import main
from translate.models.loading import load_model
from translate.models.model_file import load_generators
from translate.networks import count_parameters

sys.path.insert(0, str(Path(__file__).parent))
from test_hub import REPO, _convert, put_in_cache, write_inputs  # noqa: E402
from training_helpers import tiny


@pytest.fixture(scope="module")
def tiny_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pix2pix run of 2 steps, validated at each, on conftest's 16 px pairs (`data`)."""
    root = request.getfixturevalue("data")
    config = tiny("pix2pix", root, train={"max_steps": 2}, log={"eval_every": 1})
    config_path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path_factory.mktemp("runs") / "facades-tiny"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see conftest.one_thread
    try:
        args = ["train", str(config_path), "--run-dir", str(run_dir), "--no-progress"]
        result = CliRunner().invoke(main, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return run_dir


def _front_matter(card: str) -> dict:
    _, front, _ = card.split("---\n", 2)
    return yaml.safe_load(front)


@pytest.mark.slow  # trains the run it publishes (about 9 s here)
def test_card_writes_an_upload_folder(tiny_run: Path, hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "card"
    result = CliRunner().invoke(main, ["card", str(tiny_run), str(out), "--repo-id", REPO])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "config.json",
        "README.md",
        "sample_grid.png",
    }
    shipped = load_generators(tiny_run / "generator_best.safetensors", "cpu")
    spec, net = shipped.specs["AtoB"], shipped.generators["AtoB"]

    config = json.loads((out / "config.json").read_text())["generators"]["AtoB"]
    assert config == {
        "architecture": spec.name,
        "options": spec.options,
        "in_channels": 3,
        "out_channels": 3,
        "scale": 1,
        "input_kind": "image",
        "size_multiple": net.size_multiple,
    }

    card = (out / "README.md").read_text()
    front = _front_matter(card)
    assert front["library_name"] == "translate"
    assert front["pipeline_tag"] == "image-to-image" and "pix2pix" in front["tags"]
    assert f"| parameters | {count_parameters(net):,} |" in card
    assert "GMAC at 256x256" in card
    best = shipped.training["best_val"]
    assert f"| val_L1 | {best['val_L1']:.4g} |" in card
    assert f"| val_PSNR | {best['val_PSNR']:.4g} |" in card
    assert f"at step {best['step']}" in card
    assert f'Translator.from_pretrained("{REPO}")' in card
    assert f"translate convert {REPO} " in card
    sample = tiny_run / "samples" / f"epoch001_step{best['step']:07d}.png"
    assert (out / "sample_grid.png").read_bytes() == sample.read_bytes()

    # What the upload would push loads back through the cache route with the same outputs.
    put_in_cache(hub_cache, REPO, "c" * 40, out / "model.safetensors")
    images = write_inputs(tmp_path / "in")
    from_hub = _convert(REPO, images, tmp_path / "from_hub")
    from_run = _convert(tiny_run, images, tmp_path / "from_run")
    for name in from_run:
        np.testing.assert_array_equal(from_hub[name], from_run[name])
    assert load_model(REPO).training == shipped.training


def test_card_refuses_a_full_folder_and_a_non_run(
    tiny_generator_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"  # a run that never validated: a generator and its config
    run.mkdir()
    (run / "config.yaml").write_text("model: pix2pix\n")
    shutil.copyfile(tiny_generator_file, run / "generator_latest.safetensors")
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["card", str(run), str(full)])
    assert result.exit_code == 1 and "not empty" in result.output and "--overwrite" in result.output
    result = CliRunner().invoke(main, ["card", str(run), str(full), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (full / "notes.txt").read_text() == "mine"
    assert (full / "model.safetensors").read_bytes() == tiny_generator_file.read_bytes()
    card = (full / "README.md").read_text()
    assert "no validation metrics" in card and "sample_grid.png" not in card
    assert not (full / "sample_grid.png").exists()
    result = CliRunner().invoke(main, ["card", str(tmp_path), str(tmp_path / "x")])
    assert result.exit_code == 1 and "not a run directory" in result.output
