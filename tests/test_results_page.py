"""``translate convert --report``: index.html with input | output | target and scores."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from translate.cli import main
from translate.core import metrics
from translate.data.images import read_image, write_image
from translate.data.transforms import to_tensor
from translate.models.model_file import GeneratorSpec, InputSpec, save_generators


@pytest.fixture
def model(tmp_path: Path) -> Path:
    spec = GeneratorSpec("resnet_6blocks", options={"ngf": 4, "n_blocks": 1})
    path = tmp_path / "g.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build().eval())}, InputSpec())
    return path


def test_report_shows_inputs_outputs_targets_and_scores(model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "sub/b", "c"):
        write_image(tmp_path / "in" / f"{name}.png", rng.integers(0, 256, (16, 16, 3), np.uint8))
    for name in ("a", "sub/b"):  # c has no target; b's target is a JPEG
        suffix = "jpg" if name == "sub/b" else "png"
        target = rng.integers(0, 256, (16, 16, 3), np.uint8)
        write_image(tmp_path / "truth" / f"{name}.{suffix}", target)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["convert", str(model), str(tmp_path / "in"), str(out), "--device", "cpu"]
        + ["--no-progress", "--report", "--targets", str(tmp_path / "truth")],
    )
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert str(out / "index.html") in result.output
    rows = page.split("<tr>")[2:]
    assert len(rows) == 3 and "no target" in rows[1]  # in path order: a, c, sub/b
    for row in rows:  # every picture the page shows is a file on disk
        for src in re.findall(r'src="([^"]+)"', row):
            assert (out / urllib.parse.unquote(src)).resolve().is_file()
    assert "truth/sub/b.jpg" in rows[2]
    output = to_tensor(read_image(out / "a.png"))[None]
    target = to_tensor(read_image(tmp_path / "truth" / "a.png"))[None]
    assert f"<td>{metrics.l1(output, target):.4f}</td>" in rows[0]
    assert f"<td>{metrics.ssim(output, target):.4f}</td>" in rows[0]
    assert "mean over the 2 image(s) with a target" in page


def test_targets_need_report(model: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(
        main, ["convert", str(model), str(tmp_path / "in"), str(tmp_path / "o")]
        + ["--targets", str(tmp_path / "in")],
    )  # fmt: skip
    assert result.exit_code == 2 and "--targets is for --report" in result.output
