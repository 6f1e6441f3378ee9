"""Inference backends: onnxruntime runs the cached ONNX export, and openvino that export
converted for its CPU plugin, behind the Translator's own forward call, so padding, tiles
and batches work as on torch, within a grey level (onnxruntime) or two (openvino) of fp32."""

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import EXPORTED
from PIL import Image

from translate.cli import main
from translate.conversion.convert import convert_folder
from translate.conversion.manifest import MANIFEST_NAME
from translate.core.extras import MissingExtra
from translate.core.runtime import cpu_info
from translate.inference import backends, export
from translate.inference.backends import onnx_cache_path, openvino_cache_path, weights_sha256
from translate.inference.translator import Translator
from translate.models.loading import load_model
from translate.models.model_file import save_generators
from translate.networks.eval_mode import EvalMode

pytest.importorskip("onnxruntime")

FP32 = {"device": "cpu", "precision": "fp32"}
pytestmark = pytest.mark.usefixtures("own_home")  # each test its own empty cache


def _grey_levels(a, b):
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


@pytest.mark.slow
def test_the_demo_on_onnxruntime_is_within_a_grey_level_of_torch_fp32(demo, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    ort = Translator(demo, backend="onnxruntime", batch_size=2)
    assert (ort.device.type, ort.precision.name) == ("cpu", "fp32")  # what auto means for it
    reference = Translator(demo, **FP32)(image)
    assert _grey_levels(ort(image), reference) <= 1
    # The graph is cached by the weights' hash, complete, with no temporary file beside it.
    cached = onnx_cache_path(demo, "AtoB", EvalMode())
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]
    assert cached.name.startswith(weights_sha256(ort.generator) + "-")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="the openvino extra")
def test_convert_the_demo_on_openvino_within_two_grey_levels_of_torch_fp32(tmp_path):
    src, out, torch_out = _folder(tmp_path / "in", 2, (45, 70)), tmp_path / "ov", tmp_path / "pt"
    runner = CliRunner()
    for backend, folder in (("openvino", out), ("torch", torch_out)):
        args = [str(src), str(folder), "--backend", backend, "--precision", "fp32"]
        result = runner.invoke(main, ["convert", "demo", *args, "--no-progress"])
        assert result.exit_code == 0, result.output
    options = json.loads((out / MANIFEST_NAME).read_text())["options"]
    assert (options["backend"], options["precision"]) == ("openvino", "fp32")
    for name in ("0.png", "1.png"):
        with Image.open(out / name) as a, Image.open(torch_out / name) as b:
            assert _grey_levels(np.asarray(a), np.asarray(b)) <= 2
    # The OpenVINO model is cached by the weights' hash beside the ONNX graph it came from,
    # whole, with no temporary folder left.
    demo = load_model("demo")
    folder = openvino_cache_path(demo, "AtoB", EvalMode())
    assert folder.name.startswith(weights_sha256(demo.generators["AtoB"]) + "-")
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]
    assert onnx_cache_path(demo, "AtoB", EvalMode()).is_file()


@pytest.mark.parametrize("backend", EXPORTED)
def test_tiles_padding_and_batches_of_a_scaled_model(scaled_model, backend):
    """Sides that are no multiple of 4, smaller than it, tiled and batched: 2x, as on torch."""
    options = {"value_range": (-1, 1), "tile": 12, "overlap": 4, "batch_size": 3}
    ort = Translator(scaled_model, backend=backend, **options)
    torch_ = Translator(scaled_model, **FP32, **options)
    for shape in ((3, 4, 29, 18), (1, 4, 3, 2)):
        x = torch.rand(shape) * 2 - 1
        got = ort(x)
        assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert (got - torch_(x)).abs().max().item() <= 1e-4


def test_the_cache_is_reused_and_a_failed_export_leaves_nothing(scaled_model, monkeypatch):
    real = export._verify

    def mismatch(net, run, inputs, out, fmt):
        raise ValueError(f"{out}: differs")

    monkeypatch.setattr(export, "_verify", mismatch)
    with pytest.raises(ValueError, match="differs"):
        Translator(scaled_model, backend="onnxruntime")
    cached = onnx_cache_path(scaled_model, "AtoB", EvalMode())
    assert not cached.parent.exists() or not list(cached.parent.iterdir())

    monkeypatch.setattr(export, "_verify", real)
    Translator(scaled_model, backend="onnxruntime")
    assert cached.is_file()
    monkeypatch.setattr(export, "export_generator", lambda *a, **k: pytest.fail("exported again"))
    Translator(scaled_model, backend="onnxruntime")  # from the cache
    # Another eval mode is another graph (batch statistics), so another entry.
    assert onnx_cache_path(scaled_model, "AtoB", EvalMode("batch")) != cached


def test_the_openvino_model_is_reused_and_a_failed_conversion_leaves_nothing(
    scaled_model, monkeypatch
):
    openvino = pytest.importorskip("openvino")
    real = openvino.save_model

    def full_disk(*args, **kwargs):
        real(*args, **kwargs)  # both files written, then the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(openvino, "save_model", full_disk)
    with pytest.raises(OSError, match="No space left"):
        Translator(scaled_model, backend="openvino")
    folder = openvino_cache_path(scaled_model, "AtoB", EvalMode())
    assert not list(folder.parent.iterdir())  # no half model, no temporary folder

    monkeypatch.setattr(openvino, "save_model", real)
    Translator(scaled_model, backend="openvino")
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]
    monkeypatch.setattr(backends, "_save_openvino", lambda *a: pytest.fail("converted again"))
    Translator(scaled_model, backend="openvino")  # from the cache


def test_openvino_takes_torchs_thread_count_and_runs_fp32(scaled_model, one_thread):
    openvino = pytest.importorskip("openvino")
    compiled = Translator(scaled_model, backend="openvino").padded.generator.compiled.get()
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
    # one model with dynamic sizes serves every shape
    translator = Translator(scaled_model, backend="openvino", **FP32)
    reference = Translator(scaled_model, **FP32)
    rng = np.random.default_rng(5)
    for side in range(8, 28, 4):
        image = rng.integers(0, 256, (side, 12, 4), dtype=np.uint8)
        assert _grey_levels(translator(image), reference(image)) <= 2


@pytest.mark.parametrize("backend", EXPORTED)
def test_the_converters_lanes_give_the_bytes_of_one_lane(
    tiny_generator_file, tmp_path, monkeypatch, backend
):
    """On two torch threads the converter runs two images side by side, each on one
    thread (onnxruntime: a one-thread session; openvino: a model of two one-thread
    streams), and writes what one lane on both threads writes; a single caller still
    runs on both."""
    src = _folder(tmp_path / "in", count=6)
    translator = Translator.load(tiny_generator_file, backend=backend, batch_size=2)
    assert translator.reentrant and torch.get_num_threads() == 2
    threads = set()
    real = Translator.translate_batch

    def recorded(self, images, names=None):
        threads.add(torch.get_num_threads())
        return real(self, images, names)

    monkeypatch.setattr(Translator, "translate_batch", recorded)
    convert_folder(src, tmp_path / "lanes", translator, progress=False)
    assert threads == {1}
    monkeypatch.setattr(Translator, "reentrant", False)
    convert_folder(src, tmp_path / "one", translator, progress=False)
    assert threads == {1, 2}
    for i in range(6):
        lanes, one = (np.asarray(Image.open(tmp_path / d / f"{i}.png")) for d in ("lanes", "one"))
        assert np.array_equal(lanes, one)
    runner = translator.padded.generator
    made = (runner.sessions if backend == "onnxruntime" else runner.compiled).made
    assert sorted(made) == [1, 2]
    if backend == "openvino":
        assert [int(made[t].get_property("NUM_STREAMS")) for t in (1, 2)] == [2, 1]
        assert [int(made[t].get_property("INFERENCE_NUM_THREADS")) for t in (1, 2)] == [2, 2]
    else:
        assert [made[t].get_session_options().intra_op_num_threads for t in (1, 2)] == [1, 2]


@pytest.mark.parametrize(
    ("backend", "entry", "what"),
    [
        ("onnxruntime", lambda model: onnx_cache_path(model, "AtoB", EvalMode()), "ONNX graph"),
        pytest.param(
            "openvino",
            lambda model: openvino_cache_path(model, "AtoB", EvalMode()) / "model.xml",
            "OpenVINO model",
            marks=EXPORTED[1].marks,
        ),
    ],
)
def test_an_unreadable_cache_entry_names_the_file(scaled_model, backend, entry, what):
    cached = entry(scaled_model)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a graph")
    named = cached if backend == "onnxruntime" else cached.parent
    with pytest.raises(ValueError, match=f"{named}: unreadable cached {what}") as info:
        Translator(scaled_model, backend=backend)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"precision": "bf16"},
            "--precision bf16: --backend onnxruntime runs the fp32 or int8 graph",
        ),
        ({"dropout": True}, "--dropout: --backend onnxruntime cannot seed dropout"),
        ({"device": "cuda"}, "--backend onnxruntime runs on the CPU; got --device cuda"),
        (
            {"backend": "tensorrt"},
            "backend: expected torch, onnxruntime, openvino or auto, got 'tensorrt'",
        ),
        (
            {"backend": "openvino", "precision": "fp16"},
            "--precision fp16: --backend openvino runs the fp32, bf16 or int8 graph",
        ),
        ({"backend": "openvino", "dropout": True}, "--dropout: --backend openvino cannot seed"),
        ({"backend": "openvino", "device": "cuda"}, "--backend openvino runs on the CPU"),
    ],
)
def test_options_the_backend_cannot_honour_are_refused(scaled_model, options, message):
    with pytest.raises(ValueError, match=message):
        Translator(scaled_model, **{"backend": "onnxruntime", **options})


def test_openvino_bf16_is_refused_on_a_cpu_without_native_bf16(scaled_model, monkeypatch):
    emulated = replace(cpu_info(), flags=frozenset(), capability="AVX2")
    monkeypatch.setattr(backends, "cpu_info", lambda: emulated)
    with pytest.raises(ValueError, match="--backend openvino runs bf16 only on a CPU with nat"):
        Translator(scaled_model, backend="openvino", precision="bf16")


@pytest.mark.parametrize(
    ("backend", "module", "extra"),
    [("onnxruntime", "onnxruntime", "onnx"), ("openvino", "openvino", "openvino")],
)
def test_a_missing_backend_names_its_extra(scaled_model, monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra, match=rf'--backend {backend} needs the {extra} extra .*"'):
        Translator(scaled_model, backend=backend)


def test_convert_without_the_openvino_extra_is_one_line(tiny_generator_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    src, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    args = ["convert", str(tiny_generator_file), str(src), str(out), "--backend", "openvino"]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code != 0
    assert result.output == (
        "Error: --backend openvino needs the openvino extra (openvino is missing): "
        'pip install "translate[openvino]"\n'
    )
    assert not list(out.glob("*.png"))


def _folder(root, count=3, size=(20, 28)):
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(count):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{i}.png")
    return root


@pytest.mark.slow
def test_convert_records_the_backend_and_a_rerun_on_another_refuses(tiny_generator_file, tmp_path):
    src, out = _folder(tmp_path / "in"), tmp_path / "out"
    runner = CliRunner()
    args = ["convert", str(tiny_generator_file), str(src), str(out), "--no-progress"]
    result = runner.invoke(main, [*args, "--backend", "onnxruntime"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / MANIFEST_NAME).read_text())["options"]["backend"] == "onnxruntime"
    torch_out = tmp_path / "torch"
    convert_folder(src, torch_out, Translator.load(tiny_generator_file, **FP32), progress=False)
    for name in ("0.png", "1.png", "2.png"):
        with Image.open(out / name) as a, Image.open(torch_out / name) as b:
            assert _grey_levels(np.asarray(a), np.asarray(b)) <= 1
    again = runner.invoke(main, [*args, "--backend", "torch", "--precision", "fp32"])
    assert again.exit_code == 1
    assert "backend 'torch' here, 'onnxruntime' there" in again.output


@pytest.mark.parametrize("backend", EXPORTED)
def test_serve_translates_an_upload_on_an_exported_backend(scaled_model, tmp_path, backend):
    pytest.importorskip("fastapi", reason="translate serve needs the serve extra")
    from translate.apps.serve.models import Models  # noqa: PLC0415  (the serve extra)

    path = tmp_path / "toy.safetensors"
    save_generators(path, {"AtoB": (scaled_model.specs["AtoB"], scaled_model.generators["AtoB"])})
    translator = Models([str(path)], device="cpu", backend=backend).translator(
        str(path), "AtoB", None
    )
    assert translator.backend == backend
    rgba = np.random.default_rng(4).integers(0, 256, (10, 14, 4), dtype=np.uint8)
    assert translator(rgba).shape == (20, 28, 3)


@pytest.mark.slow
@pytest.mark.parametrize("backend", EXPORTED)
def test_concurrent_first_uses_leave_one_complete_graph(tiny_generator_file, own_home, backend):
    """Two processes export at once: each writes its own temporary file (or, for openvino,
    folder) and renames it."""
    script = (
        "import sys, numpy as np; from translate import Translator; "
        "t = Translator.load(sys.argv[1], backend=sys.argv[2]); "
        "print(t(np.zeros((20, 20, 3), np.uint8)).shape)"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tiny_generator_file), backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert out.strip() == "(20, 20, 3)"
    (cached,) = (own_home / "onnx").iterdir()
    assert cached.suffix == ".onnx"
    if backend == "openvino":
        (folder,) = (own_home / "openvino").iterdir()  # no temporary folder left
        assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]
    Translator.load(tiny_generator_file, backend=backend)  # the graph is whole
