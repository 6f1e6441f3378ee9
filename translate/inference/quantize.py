"""int8 models: a generator's ONNX export quantized after training with calibration images
the user gives, and kept only if its outputs stay close to fp32's.

onnxruntime's static quantizer writes the graph in QDQ form (QuantizeLinear and
DequantizeLinear around each quantized operator), which onnxruntime runs with int8 kernels
(VNNI where the CPU has it) and OpenVINO also reads: weights int8 per output channel,
activations uint8 with ranges measured on the calibration images (min/max). For OpenVINO,
NNCF (its own quantizer) quantizes the OpenVINO model instead, symmetric int8 weights and
activations (its performance preset), which OpenVINO's CPU plugin fuses into int8
convolutions: on the demo it ran 1.4x the QDQ graph on OpenVINO and 2x onnxruntime's
fp32 graph (docs/benchmarks-backends.md). How much the quantization cost is measured on the same
images: the PSNR of the int8 model's outputs against the fp32 graph's on the same runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.core.atomic import atomic_write_bytes
from translate.core.extras import needs_extra
from translate.core.metrics import psnr
from translate.data.images import FILE_CHANNELS, list_images, read_image
from translate.inference.export import export_generator
from translate.inference.options import MIN_PSNR
from translate.models.model_file import LoadedModel


@dataclass(frozen=True)
class Int8Quality:
    """How close the int8 graph's outputs are to the fp32 graph's on the calibration images:
    PSNR in dB with outputs mapped to [0, 1], the mean over the images and the lowest."""

    psnr: float
    lowest: float
    images: int

    def describe(self) -> str:
        return (
            f"{self.psnr:.1f} dB PSNR against fp32 on {self.images} calibration images "
            f"(lowest {self.lowest:.1f} dB)"
        )


def export_int8(
    model: LoadedModel,
    out: str | os.PathLike[str],
    calibrate: str | os.PathLike[str],
    direction: str = "AtoB",
    min_psnr: float = MIN_PSNR,
    opset: int | None = None,
    norm_stats: str | None = None,
    dropout: bool | None = None,
) -> Int8Quality:
    """Write ``model``'s ``direction`` generator to ``out`` as an int8 ONNX graph (dynamic
    batch, height and width, as :func:`~translate.inference.export.export_generator`'s,
    whose ``opset``, ``norm_stats`` and ``dropout`` these are), calibrated on the images
    under ``calibrate`` at their own sizes; return its quality.

    Nothing is written (``ValueError``, one line) when the mean PSNR against fp32 falls
    under ``min_psnr`` dB.
    """
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="translate-int8-") as folder:
        fp32 = Path(folder) / "fp32.onnx"
        # Checked against PyTorch like any export (which refuses dropout for ONNX).
        mode = {"opset": opset, "norm_stats": norm_stats, "dropout": dropout}
        export_generator(model, fp32, "onnx", direction, **mode)
        inputs = calibration_inputs(calibrate, model.specs[direction].in_channels)
        return quantize_onnx(fp32, inputs, out, min_psnr, str(out))


def quantize_onnx(
    fp32: Path, inputs: list[np.ndarray], out: Path, min_psnr: float, what: str
) -> Int8Quality:
    """Quantize the fp32 ONNX graph ``fp32`` with the calibration ``inputs`` and write it
    atomically to ``out``, its quality kept in the graph's metadata (:func:`stored_quality`
    reads it back); ``ValueError`` naming ``what``, and nothing written, when its mean PSNR
    against fp32 is under ``min_psnr`` dB."""
    with needs_extra("onnx", "--int8"):
        import onnx
        import onnxruntime
        from onnxruntime import quantization
    with tempfile.TemporaryDirectory(prefix="translate-int8-") as folder:
        int8 = Path(folder) / "int8.onnx"

        class Reader(quantization.CalibrationDataReader):
            """The calibration images, one at a time (their sizes may differ)."""

            def __init__(self) -> None:
                self.left: Iterator[np.ndarray] = iter(inputs)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return {"input": x} if (x := next(self.left, None)) is not None else None

        with _quiet():
            quantization.quantize_static(
                str(fp32),
                str(int8),
                Reader(),
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
            )
        fp32_run, int8_run = (
            _runs(onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
            for path in (fp32, int8)
        )
        quality = measure_quality(fp32_run, int8_run, inputs)
        refuse_under(quality, min_psnr, what, "nothing written")
        graph = onnx.load(str(int8))
        onnx.helper.set_model_props(graph, {**_props(graph), **_recorded(quality)})
        atomic_write_bytes(out, graph.SerializeToString())
    return quality


def _runs(session: Any) -> Callable[[np.ndarray], np.ndarray]:
    """An onnxruntime session as a function of the graph's image input."""
    return lambda x: session.run(None, {"input": x})[0]


def quantize_openvino(fp32: Path, inputs: list[np.ndarray], min_psnr: float, what: str) -> Any:
    """The fp32 ONNX graph ``fp32`` as an OpenVINO model quantized by NNCF with the
    calibration ``inputs`` (all of them), its quality kept in the model's runtime info
    (:func:`stored_quality` reads it back once the caller saved it); ``ValueError`` naming
    ``what`` when its mean PSNR against the fp32 model on OpenVINO is under ``min_psnr``."""
    with needs_extra("openvino", "--backend openvino --precision int8"):
        import nncf
        import openvino
    core = openvino.Core()
    with _quiet("nncf"):
        int8 = nncf.quantize(
            core.read_model(fp32),
            nncf.Dataset(inputs),
            # Symmetric activations: the mixed preset's asymmetric ones ran no faster and
            # kept a lowest PSNR of 34 dB on the demo's samples against 40.
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(inputs),
        )
    # fp32 named: OpenVINO's CPU plugin would otherwise run bf16 where the CPU has it.
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32"}
    fp32_run, int8_run = (
        _infers(core.compile_model(model, "CPU", config).create_infer_request())
        for model in (core.read_model(fp32), int8)
    )
    quality = measure_quality(fp32_run, int8_run, inputs)
    refuse_under(quality, min_psnr, what, "nothing written")
    for key, value in _recorded(quality).items():
        int8.set_rt_info(value, key)
    return int8


def _infers(request: Any) -> Callable[[np.ndarray], np.ndarray]:
    """An OpenVINO infer request as a function of the model's image input."""
    return lambda x: request.infer({0: x})[0].copy()  # a copy: the request reuses its buffer


def measure_quality(
    fp32: Callable[[np.ndarray], np.ndarray],
    int8: Callable[[np.ndarray], np.ndarray],
    inputs: list[np.ndarray],
) -> Int8Quality:
    """How close ``int8``'s outputs are to ``fp32``'s on ``inputs``."""
    scores = [psnr(torch.from_numpy(int8(x)), torch.from_numpy(fp32(x))) for x in inputs]
    return Int8Quality(float(np.mean(scores)), min(scores), len(scores))


# The metadata keys an int8 graph keeps its quality under (``translate.int8.psnr``, ...):
# an ONNX graph's metadata properties, an OpenVINO model's runtime info.
_PROP = "translate.int8."


def _recorded(quality: Int8Quality) -> dict[str, str]:
    return {f"{_PROP}{key}": str(value) for key, value in asdict(quality).items()}


def _props(graph: Any) -> dict[str, str]:
    return {prop.key: prop.value for prop in graph.metadata_props}


def stored_quality(path: Path) -> Int8Quality:
    """The quality :func:`quantize_onnx` recorded in the int8 graph at ``path`` (``.onnx``),
    or :func:`quantize_openvino` in the OpenVINO model (``model.xml``)."""
    if path.suffix == ".xml":
        with needs_extra("openvino", "--backend openvino --precision int8"):
            import openvino
        model = openvino.Core().read_model(path)
        keys = [f"{_PROP}{key}" for key in ("psnr", "lowest", "images")]
        props = {key: model.get_rt_info(key).astype(str) for key in keys if model.has_rt_info(key)}
    else:
        with needs_extra("onnx", "--precision int8"):
            import onnx
        props = _props(onnx.load(str(path), load_external_data=False))
    try:
        return Int8Quality(
            float(props[f"{_PROP}psnr"]),
            float(props[f"{_PROP}lowest"]),
            int(props[f"{_PROP}images"]),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"{path}: an int8 graph without its recorded quality ({exc}); remove it and it "
            "is quantized again on the next use"
        ) from exc


def refuse_under(quality: Int8Quality, min_psnr: float, what: str, outcome: str) -> None:
    """``ValueError`` naming ``what`` when ``quality`` is under ``min_psnr`` dB."""
    if not quality.psnr >= min_psnr:
        raise ValueError(
            f"{what}: the int8 model keeps {quality.describe()}, under --min-psnr "
            f"{min_psnr:g}; {outcome} (calibrate on images like those it will convert, "
            "lower --min-psnr, or keep fp32)"
        )


def calibration_sha256(inputs: list[np.ndarray]) -> str:
    """A hash of the calibration inputs (shapes and values): what else names an int8 graph."""
    digest = hashlib.sha256()
    for x in inputs:
        digest.update(str(x.shape).encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet(logger: str | None = None) -> Iterator[None]:
    """A quantizer's advice and progress hushed: onnxruntime's logs on the root logger (run
    its pre-processing first; a bias it expected as an initializer), NNCF's on its own
    (``"nncf"``) and draws progress bars on stdout. The PSNR measured after it is what says
    whether the model is good, so they would only bury the one line printed."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def calibration_inputs(
    folder: str | os.PathLike[str], channels: int, limit: int | None = None
) -> list[np.ndarray]:
    """The images under ``folder`` (the first ``limit`` in sorted order, if given) as the
    exported graph takes them: NCHW float32 in [-1, 1] with the model's ``channels``, one
    array per image at its own size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"--calibrate {folder}: not a folder of images")
    if channels not in FILE_CHANNELS:
        raise ValueError(
            f"--calibrate: the model takes {channels} channels, which image files cannot "
            "hold; quantize it in Python with onnxruntime.quantization and arrays"
        )
    paths = list_images(folder)[:limit]
    if not paths:
        raise ValueError(f"--calibrate {folder}: no images found (PNG, JPEG, ...)")
    return [
        (read_image(path, channels).transpose(2, 0, 1)[None] / 127.5 - 1).astype(np.float32)
        for path in paths
    ]
