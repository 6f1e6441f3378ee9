"""int8 for OpenVINO: NNCF's quantizer against onnxruntime's QDQ graph (issue 31).

    python tools/int8_quantizers.py prepare OUT       # the project's venv (torch, onnxruntime)
    VENV/bin/python tools/int8_quantizers.py measure OUT [--rounds 30] [--calls 5]

``prepare`` writes, for the bundled ``demo`` and the real-time student (``shuffle_resnet``
ngf 8, random weights, seed 0): the fp32 ONNX export and the int8 QDQ graph the project makes
today (:func:`translate.inference.quantize.quantize_onnx`, calibrated on the first 8 of
``datasets/samples``), and the samples as the graphs take them. ``measure`` needs only numpy,
onnxruntime, openvino and nncf (no torch, no translate: OpenVINO is kept out of the project's
venv, see docs/backends.md), so it runs in a venv of its own::

    python3 -m venv VENV && VENV/bin/pip install openvino nncf onnx onnxruntime numpy

It quantizes the fp32 graph with NNCF (``nncf.quantize`` on the OpenVINO model, the same
8 calibration images) per preset and bias correction, then times at 256x256, batch 1, one
thread, each model's runners in turn (onnxruntime fp32 and int8, OpenVINO fp32, OpenVINO on
the QDQ graph, OpenVINO on each NNCF model), interleaved round by round so that load on the
machine falls on all of them alike; it prints each one's median ms a call and its ratio to
onnxruntime fp32, and the PSNR each int8 model keeps against its runtime's fp32 on all 12
samples (the 8 calibration ones and the 4 others), outputs mapped to [0, 1] as
:func:`translate.core.metrics.psnr` maps them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "samples"
CALIBRATION_IMAGES = 8  # as tools/benchmark.py's int8 rows
SIZE = 256
MODELS = ("demo", "student")


def prepare(out: Path) -> None:
    """Write each model's fp32 and QDQ int8 graphs and the samples under ``out``."""
    import torch

    from translate.inference.export import export_generator
    from translate.inference.quantize import calibration_inputs, quantize_onnx
    from translate.models.loading import load_model
    from translate.models.model_file import GeneratorSpec, save_generators

    out.mkdir(parents=True, exist_ok=True)
    samples = calibration_inputs(SAMPLES, 3)
    np.savez(out / "samples.npz", *samples)
    torch.manual_seed(0)
    student = GeneratorSpec("shuffle_resnet", 3, 3, {"ngf": 8})
    save_generators(out / "student.safetensors", {"AtoB": (student, student.build())})
    for name in MODELS:
        model = load_model("demo" if name == "demo" else out / "student.safetensors")
        fp32 = export_generator(model, out / f"{name}-fp32.onnx", "onnx")
        # No PSNR floor: the student's weights are random (the measure step reports it).
        quality = quantize_onnx(
            fp32, samples[:CALIBRATION_IMAGES], out / f"{name}-qdq.onnx", 0.0, name
        )
        print(f"{name}: onnxruntime QDQ int8 keeps {quality.describe()}")


def psnr(got: np.ndarray, expected: np.ndarray) -> float:
    """PSNR in dB of outputs in [-1, 1], mapped to [0, 1] and clipped there."""
    unit = [np.clip((x.astype(np.float64) + 1) / 2, 0, 1) for x in (got, expected)]
    return float(10 * np.log10(1 / max(float(np.mean((unit[0] - unit[1]) ** 2)), 1e-10)))


def measure(folder: Path, rounds: int, calls: int) -> None:
    """Quantize with NNCF, then time and score every runner of every model."""
    import nncf
    import onnxruntime
    import openvino

    stored = np.load(folder / "samples.npz")
    samples = [stored[key] for key in stored.files]
    calibration = samples[:CALIBRATION_IMAGES]
    # A 256x256 input from the first sample (128x128), each pixel repeated 2x2.
    frame = np.ascontiguousarray(samples[0].repeat(2, axis=2).repeat(2, axis=3))
    assert frame.shape[-2:] == (SIZE, SIZE), frame.shape
    core = openvino.Core()
    config = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    config["PERFORMANCE_HINT"] = "LATENCY"  # as translate.inference.backends compiles

    def ort(path: Path) -> Callable[[np.ndarray], np.ndarray]:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        return lambda x: session.run(None, {"input": x})[0]

    def ov(model: Any) -> Callable[[np.ndarray], np.ndarray]:
        request = core.compile_model(model, "CPU", config).create_infer_request()
        return lambda x: request.infer({0: x})[0].copy()

    for name in MODELS:
        fp32 = folder / f"{name}-fp32.onnx"
        runners = {
            "onnxruntime fp32": ort(fp32),
            "onnxruntime int8 (QDQ)": ort(folder / f"{name}-qdq.onnx"),
            "openvino fp32": ov(core.read_model(fp32)),
            "openvino int8 (QDQ)": ov(core.read_model(folder / f"{name}-qdq.onnx")),
        }
        quantize_s = {}
        for preset in ("performance", "mixed"):
            for fast in (True, False):
                label = f"openvino int8 (NNCF {preset}, {'fast' if fast else 'full'} bias corr.)"
                start = time.perf_counter()
                quantized = nncf.quantize(
                    core.read_model(fp32),
                    nncf.Dataset(calibration),
                    preset=getattr(nncf.QuantizationPreset, preset.upper()),
                    fast_bias_correction=fast,
                    subset_size=len(calibration),
                )
                quantize_s[label] = time.perf_counter() - start
                runners[label] = ov(quantized)
        for run in runners.values():  # warm up: first calls compile kernels per shape
            run(frame)
            run(samples[0])
        seconds: dict[str, list[float]] = {label: [] for label in runners}
        for _ in range(rounds):
            for label, run in runners.items():
                start = time.perf_counter()
                for _ in range(calls):
                    run(frame)
                seconds[label].append((time.perf_counter() - start) / calls)
        reference = {"onnxruntime": runners["onnxruntime fp32"]}
        reference["openvino"] = runners["openvino fp32"]
        expected = {runtime: [run(x) for x in samples] for runtime, run in reference.items()}
        base = statistics.median(seconds["onnxruntime fp32"])
        print(f"\n{name}: {SIZE}x{SIZE}, batch 1, 1 thread, {rounds} rounds x {calls} calls")
        print("| runner | ms a call (median) | speed vs onnxruntime fp32 | PSNR dB vs fp32 "
              "(mean / lowest; calibration 8, others 4) | quantize s |")  # fmt: skip
        print("|---|---|---|---|---|")
        for label, run in runners.items():
            ms = statistics.median(seconds[label]) * 1000
            cells = [label, f"{ms:.1f}", f"{base * 1000 / ms:.2f}", "", ""]
            if "int8" in label:
                runtime = label.split()[0]
                scores = [psnr(run(x), y) for x, y in zip(samples, expected[runtime], strict=True)]
                calib, others = scores[:CALIBRATION_IMAGES], scores[CALIBRATION_IMAGES:]
                cells[3] = (
                    f"{np.mean(scores):.1f} / {min(scores):.1f}; "
                    f"{np.mean(calib):.1f}, {np.mean(others):.1f}"
                )
            if label in quantize_s:
                cells[4] = f"{quantize_s[label]:.1f}"
            print("| " + " | ".join(cells) + " |")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "measure"))
    parser.add_argument("folder", type=Path, help="where prepare writes and measure reads")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (measure)")
    parser.add_argument("--calls", type=int, default=5, help="calls a runner per round")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.folder)
    else:
        measure(args.folder, args.rounds, args.calls)


if __name__ == "__main__":
    main()
