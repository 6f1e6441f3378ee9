"""One option schema: the click options, the serve parameters, the manifest and the checks
come from the dataclass fields, so a new option is one field."""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from translate.cli import main
from translate.conversion.cli import convert
from translate.conversion.convert import IMAGES, convert_folder, output_path
from translate.conversion.manifest import MANIFEST_NAME
from translate.data.images import write_image
from translate.inference import formats
from translate.inference.options import (
    ConvertOptions,
    OneOf,
    OptionError,
    Range,
    TranslatorOptions,
    click_options,
    meta,
    option,
    query_values,
)
from translate.inference.translator import Translator


@dataclass(frozen=True)
class WithEngine(TranslatorOptions):
    """A new option, as ``backend`` was added: one field, and nothing else."""

    engine: str = option(
        "plain", "Inference engine.", check=OneOf(("plain", "other")), serve=True, record=True
    )


def _command(*groups):
    @click.command()
    @click_options(*groups)
    def command(**options):
        click.echo(json.dumps(options, sort_keys=True))

    return command


def test_a_new_field_is_a_flag_with_its_default_check_and_help():
    command = _command(WithEngine)
    given = CliRunner().invoke(command, ["--engine", "other", "--tile", "64"])
    assert given.exit_code == 0, given.output
    values = json.loads(given.output)
    assert (values["engine"], values["tile"], values["batch_size"]) == ("other", 64, 4)
    assert json.loads(CliRunner().invoke(command, []).output)["engine"] == "plain"
    refused = CliRunner().invoke(command, ["--engine", "onnx"])
    assert refused.exit_code == 2 and "'onnx' is not one of 'plain', 'other'" in refused.output
    assert "Inference engine." in CliRunner().invoke(command, ["--help"]).output
    # not a flag: value_range is for the API only
    assert "value_range" not in values and "--value-range" not in given.output


def test_convert_has_a_flag_for_every_cli_field_and_no_other_option_flags():
    names = {p.name for p in convert.params}
    fields = [*dataclasses.fields(TranslatorOptions), *dataclasses.fields(ConvertOptions)]
    schema = {f.name for f in fields if meta(f).cli}
    assert schema <= names
    # what convert takes besides the schema: its arguments and the command's own flags (the
    # report, reference checkpoints' overrides, which inputs (a list, a glob) and where the
    # run goes: Ray)
    own = {"model", "input", "output", "report", "targets", "arch", "norm"}
    assert names - schema == own | {"files_from", "pattern", "ray_address", "actors"}


def test_evaluate_and_serve_declare_the_schemas_options():
    from translate.apps.evaluate import evaluate
    from translate.apps.serve.cli import serve

    fields = {f.name: f for f in dataclasses.fields(TranslatorOptions)}
    uses = {evaluate: ("batch_size", "device", "precision"), serve: ("device", "backend")}
    for command, names in uses.items():
        params = {p.name: p for p in command.params}
        for name in names:
            param, field = params[name], fields[name]
            assert param.help == meta(field).help, (command.name, name)
            # evaluate scores in fp32 unless asked; every other default is the schema's
            own = "fp32" if (command, name) == (evaluate, "precision") else field.default
            assert param.default == own, (command.name, name)


def test_checks_name_the_field_in_the_api_and_the_flag_on_the_command_line():
    with pytest.raises(OptionError, match=r"^batch_size: must be at least 1, got 0$"):
        TranslatorOptions(batch_size=0)
    with pytest.raises(OptionError, match=r"^quality: must be at most 100, got 101$"):
        ConvertOptions(quality=101)
    with pytest.raises(OptionError, match=r"^crf: must be at most 63, got 64$"):
        ConvertOptions(crf=64)
    listed = "same, png, jpg, webp or jpeg"
    with pytest.raises(OptionError, match=f"^format: expected {listed}, got 'bmp'$") as refused:
        ConvertOptions(format="bmp")  # kept by 'same', never chosen
    assert refused.value.for_cli().startswith("--format: expected")
    with pytest.raises(OptionError) as both:
        TranslatorOptions(size=64, tile=32)
    assert str(both.value).startswith("size and tile exclude each other: size resizes")
    assert both.value.for_cli().startswith("--size and --tile exclude each other: --size")
    assert Range(1, 3).problem(True) == "expected a whole number, got True"


def test_overlap_without_tile_is_refused_in_the_api_and_the_cli(tiny_generator_file, tmp_path):
    with pytest.raises(OptionError, match=r"^overlap is the pixels neighbouring tiles share"):
        TranslatorOptions(overlap=8)
    assert TranslatorOptions(tile=32, overlap=8).tile_overlap() == 8
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = ["convert", str(tiny_generator_file), str(tmp_path / "in"), str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--overlap", "8"])
    assert result.exit_code == 2
    assert "--overlap is the pixels neighbouring tiles share: give --tile too" in result.output
    assert not (tmp_path / "out").exists()


def test_size_with_resize_shorter_is_one_usage_error(tiny_generator_file, tmp_path):
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = ["convert", str(tiny_generator_file), str(tmp_path / "in"), str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--size", "16", "--resize-shorter", "8"])
    assert result.exit_code == 2
    assert "--size and --resize-shorter both resize the input; give one" in result.output
    assert not (tmp_path / "out").exists()  # refused before the model loads
    translator = Translator.load(tiny_generator_file, device="cpu", size=16)
    with pytest.raises(ValueError, match="^size and resize_shorter both resize"):
        convert_folder(tmp_path / "in", tmp_path / "o", translator, resize_shorter=8)


def test_serve_parameters_are_the_serve_fields_typed():
    query = {"tile": "none", "direction": "BtoA", "batch_size": "9", "engine": "other"}
    assert query_values(TranslatorOptions, query) == {"tile": None, "direction": "BtoA"}
    assert query_values(WithEngine, query)["engine"] == "other"
    assert query_values(TranslatorOptions, {"tile": "48"}) == {"tile": 48}
    with pytest.raises(OptionError, match=r"^tile: expected a whole number or none, got 'x'$"):
        query_values(TranslatorOptions, {"tile": "x"})


def test_the_manifest_records_a_new_field_and_the_resolved_values(tiny_generator_file, tmp_path):
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    translator = Translator.load(
        tiny_generator_file, WithEngine(engine="other"), device="cpu", tile=8
    )
    convert_folder(tmp_path / "in", tmp_path / "out", translator, format="JPEG", progress=False)
    record = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())["options"]
    assert record["engine"] == "other"
    assert (record["tile"], record["overlap"], record["format"]) == (8, 2, "jpg")
    assert record["precision"] in ("fp32", "bf16")  # what auto became, never "auto"
    recorded = {
        f.name
        for f in [*dataclasses.fields(WithEngine), *dataclasses.fields(ConvertOptions)]
        if meta(f).record
    }
    assert set(record) == recorded


def test_output_formats_are_records():
    assert formats.format_choices() == ("same", "png", "jpg", "webp", "jpeg")
    assert output_path(Path("a/b.tif"), Path("out"), "jpeg").as_posix() == "out/a/b.jpg"
    tiff = formats.for_suffix(".TIFF")
    assert tiff is not None and tiff.name == "tiff" and tiff.alpha and not tiff.quality
    with pytest.raises(ValueError, match="registered already"):
        formats.register(formats.OutputFormat("jpeg2", (".jpeg",), alpha=False, quality=True))


def test_a_registered_format_is_chosen_written_and_keeps_alpha(
    tiny_generator_file, tmp_path, monkeypatch
):
    """A format added by one record: ``--format`` offers it, outputs take its suffix, and its
    alpha flag decides whether an RGBA input's alpha survives."""
    monkeypatch.setitem(
        formats.OUTPUT_FORMATS,
        "tga",
        formats.OutputFormat("tga", (".tga",), alpha=True, quality=False, icc=False),
    )
    assert "tga" in formats.format_choices()
    rgba = np.full((8, 8, 4), 200, np.uint8)
    rgba[..., 3] = 7
    write_image(tmp_path / "in" / "a.png", rgba)
    summary = convert_folder(
        tmp_path / "in", tmp_path / "out", tiny_generator_file, format="tga", progress=False
    )
    assert summary.converted == 1 and not summary.failed
    with Image.open(tmp_path / "out" / "a.tga") as written:
        assert written.mode == "RGBA" and written.getchannel("A").getextrema() == (7, 7)
    assert IMAGES.accepts(tmp_path / "x.png")
