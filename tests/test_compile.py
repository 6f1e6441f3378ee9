"""--compile: the torch module through torch.compile, refused in one line where it cannot run."""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.manifest import MANIFEST_NAME
from translate.inference import backends
from translate.inference.translator import Translator
from translate.models.loading import load_model


def _cli(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args), "--no-progress"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend": "onnxruntime"}, "--backend onnxruntime runs its own graph"),
        ({"dropout": True}, "--compile: dropout is seeded per image eagerly"),
    ],
)
def test_compile_where_it_cannot_run_is_refused(tiny_generator_file, changes, message):
    with pytest.raises(ValueError, match=message) as refused:
        Translator(load_model(tiny_generator_file), compile=True, device="cpu", **changes)
    assert "\n" not in str(refused.value)


def test_compile_without_a_compiler_is_one_line(tiny_generator_file, tmp_path, monkeypatch):
    monkeypatch.setattr(backends.shutil, "which", lambda name: None)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    result = _cli(tiny_generator_file, tmp_path / "a.png", tmp_path / "out", "--compile")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--compile needs a C++ compiler on the CPU (g++)" in result.output


@pytest.mark.slow  # inductor compiles the network: about 20 s on 2 cores
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile needs g++ on the CPU")
@pytest.mark.skipif("CI" in os.environ, reason="CI's 2 cores: compiling costs its time budget")
def test_compiled_conversion_matches_eager_and_is_recorded(tiny_generator_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        arr = np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(arr).save(src / f"{i}.png")
    common = [tiny_generator_file, src, "--precision", "fp32", "--device", "cpu"]
    assert _cli(common[0], src, tmp_path / "eager", *common[2:]).exit_code == 0
    result = _cli(common[0], src, tmp_path / "compiled", *common[2:], "--compile")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "compiled" / MANIFEST_NAME).read_text())
    assert record["options"]["compile"] is True
    for i in range(2):
        eager = np.asarray(Image.open(tmp_path / "eager" / f"{i}.png"), dtype=int)
        compiled = np.asarray(Image.open(tmp_path / "compiled" / f"{i}.png"), dtype=int)
        assert np.abs(eager - compiled).max() <= 1  # fused kernels round apart, by a level
