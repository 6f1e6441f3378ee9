"""docs/domain-adaptation.md: its commands run as written (smallest settings) and its script's
land masks, task model and table."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "domain_adaptation", ROOT / "tools" / "domain_adaptation.py"
)
assert _spec is not None and _spec.loader is not None
da = importlib.util.module_from_spec(_spec)
sys.modules["domain_adaptation"] = da
_spec.loader.exec_module(da)

# Each command of the page at the smallest settings (the last of a repeated option wins).
SMALL = {
    "prepare": ["--width", "256"],  # 8 x 4 tiles of 32 px
    "task-model": ["--steps", "5"],
    "train": ["--set", "train.max_steps=4"],
    "score": ["--steps", "5", "--seeds", "1"],
}


def test_land_mask_tells_the_elevation_maps_sea_from_its_land() -> None:
    # Colours of the elevation map: mid-Pacific, Sahara, Amazon lowland (green), Antarctic ice.
    pixels = np.array([[[11, 105, 199], [237, 199, 162], [40, 150, 60], [250, 250, 250]]], np.uint8)
    assert da.land_mask(pixels).tolist() == [[0, 1, 1, 1]]


def test_a_tile_without_its_mask_is_an_error_naming_it(tmp_path: Path) -> None:
    da.write_image(tmp_path / "tiles" / "r00_c00.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "masks").mkdir()
    with pytest.raises(SystemExit, match="no mask in .*masks for r00_c00.png"):
        da.load_tiles(tmp_path / "tiles", tmp_path / "masks")


def test_the_task_model_takes_the_generators_range_and_loads_as_loss_task_model(
    tmp_path: Path,
) -> None:
    from translate.training.semantic import load_task_model

    images = torch.rand(8, 3, 16, 16)
    labels = (images[:, :1] > 0.5).float()
    net = da.train_segmenter(images, labels, steps=2, batch=4, seed=0, desc="test").eval()
    da.save_task_model(net, tmp_path / "segmenter.pt")
    task_model = load_task_model(str(tmp_path / "segmenter.pt"))
    with torch.no_grad():
        assert torch.allclose(task_model(images * 2 - 1), net(images), atol=1e-5)


def test_a_translation_without_its_name_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        da.main(["score", "data/da", "--translated", "out/da_translated"])
    assert "give NAME=FOLDER" in capsys.readouterr().err


def commands_of(text: str, language: str) -> list[str]:
    """The command lines of the page's code blocks in ``language``, comments left out."""
    return [
        line.strip()
        for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.slow
def test_the_domain_adaptation_tutorial_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command of the page in order: prepare, the task model, the translator with the
    semantic loss and without it, their conversions, score; the score prints the page's
    table with a row per training set and scores in [0, 1]."""
    from click.testing import CliRunner

    from translate.cli import main

    text = (ROOT / "docs" / "domain-adaptation.md").read_text()
    lines = commands_of(text, "bash")
    # the page's "repeat the table" block is the same commands in one go
    assert [line for line in commands_of(text, "shell") if line.split()[0] != "export"] == lines
    commands = [shlex.split(line, comments=True) for line in lines]
    tool = ["python", "tools/domain_adaptation.py"]
    assert [c[:2] if c[0] == "translate" else c[:3] for c in commands] == [
        [*tool, "prepare"], [*tool, "task-model"],
        ["translate", "train"], ["translate", "convert"],
        ["translate", "train"], ["translate", "convert"],
        [*tool, "score"],
    ]  # fmt: skip
    # the ablation is the same translator with the semantic loss off
    semantic, ablation = [c[2:] for c in commands if c[:2] == ["translate", "train"]]
    assert semantic[0] == ablation[0] == "configs/domain_adaptation_semantic.yaml"
    assert "loss.lambda_semantic=0" in ablation
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    for words in commands:
        if words[0] == "translate":
            args = words[1:] + SMALL.get(words[1], [])
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, (args, result.output)
        else:
            capsys.readouterr()
            da.main(words[2:] + SMALL[words[2]])
    table = capsys.readouterr().out.strip().splitlines()
    assert table[:2] == da.TABLE_HEAD.splitlines()
    assert table[0] in text  # the page shows the same table
    rows = [row.strip("|").split("|") for row in table[2:]]
    labels = [r[0].strip() for r in rows]
    assert labels[0] == da.SOURCE[0] and labels[-1] == da.CEILING[0]
    assert len(labels) == 4 and all(x.startswith("source translated by ") for x in labels[1:3])
    for r in rows:
        iou, (low, high), accuracy = float(r[1]), map(float, r[2].split("-")), float(r[3])
        assert 0 <= low <= iou <= high <= 1 and 0 <= accuracy <= 1
