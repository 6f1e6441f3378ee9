"""Two conversions into one folder: the manifest stops a silent mix of models or options."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.convert import ConvertOptions, convert_folder
from translate.conversion.manifest import MANIFEST_NAME
from translate.inference.translator import Translator
from translate.models.model_file import GeneratorSpec, save_generators


def _model(path, seed):
    torch.manual_seed(seed)
    spec = GeneratorSpec("resnet_6blocks", 3, 3, {"ngf": 4, "n_blocks": 1})
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return _model(root / "a.safetensors", 0), _model(root / "b.safetensors", 1)


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        arr = np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def _cli(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args), "--no-progress"])


def test_other_options_into_the_same_folder_refuse_without_overwrite(models, src, tmp_path):
    dst = tmp_path / "out"
    assert _cli(models[0], src, dst, "--tile", "16", "--overlap", "4").exit_code == 0
    record = json.loads((dst / MANIFEST_NAME).read_text())
    assert record["model"]["architecture"] == "resnet_6blocks"
    assert len(record["model"]["weights_sha256"]) == 64
    assert record["options"]["tile"] == 16 and record["options"]["format"] == "same"
    before = {p.name: p.read_bytes() for p in dst.glob("*.png")}

    refused = _cli(models[0], src, dst)
    assert refused.exit_code == 1
    assert "holds outputs of another conversion (" in refused.output
    assert "tile None here, 16 there" in refused.output
    assert "--overwrite" in refused.output and "Traceback" not in refused.output
    assert {p.name: p.read_bytes() for p in dst.glob("*.png")} == before

    other_model = _cli(models[1], src, dst, "--tile", "16", "--overlap", "4")
    assert other_model.exit_code == 1 and "weights_sha256" in other_model.output

    same_again = _cli(models[0], src, dst, "--tile", "16", "--overlap", "4")
    assert same_again.exit_code == 0 and "skipped 3" in same_again.output

    redone = _cli(models[1], src, dst, "--overwrite")
    assert redone.exit_code == 0 and "converted 3" in redone.output
    assert json.loads((dst / MANIFEST_NAME).read_text())["options"]["tile"] is None


def test_test_time_normalisation_is_part_of_the_record(models, src, tmp_path):
    dst = tmp_path / "out"
    assert _cli(models[0], src, dst).exit_code == 0
    record = json.loads((dst / MANIFEST_NAME).read_text())["options"]
    assert (record["norm_stats"], record["dropout"]) == ("running", False)
    refused = _cli(models[0], src, dst, "--norm-stats", "batch")
    assert refused.exit_code == 1
    assert "norm_stats 'batch' here, 'running' there" in refused.output
    assert "dropout" not in refused.output  # only what differs is named


def test_convert_folder_takes_a_translator_and_an_options_object(models, src, tmp_path):
    translator = Translator.load(models[0], device="cpu", batch_size=2)
    options = ConvertOptions(format="jpg", quality=80, progress=False)
    assert convert_folder(src, tmp_path / "out", translator, options).converted == 3
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg"]
    with pytest.raises(ValueError, match="format 'png' here, 'jpg' there"):
        convert_folder(src, tmp_path / "out", translator, options, format="png")
    with pytest.raises(TypeError):
        convert_folder(src, tmp_path / "x", translator, device="cpu")  # a Translator option
