"""Inference backends: what runs a generator's forward pass behind the Translator.

``torch`` runs the module eagerly, under the precision's autocast. ``onnxruntime`` runs the
generator's ONNX export (``translate export``'s graph, checked against PyTorch when it is
written) on onnxruntime's CPU provider, in fp32. The graph is exported on first use and
cached as ``TRANSLATE_HOME/onnx/<weights SHA-256>-<variant>.onnx``: the variant hashes what
else shapes the graph (architecture, options, geometry, eval mode). The export is written
atomically, so processes that start at once each write their own temporary file and the
cache only ever holds complete graphs.

``openvino`` converts that same cached ONNX graph to OpenVINO's model (IR) on first use,
caches it as ``TRANSLATE_HOME/openvino/<weights SHA-256>-<variant>/model.xml`` (and its
``model.bin``), and compiles it for OpenVINO's CPU plugin with dynamic batch, height and
width, in fp32 or (on a CPU with native bf16) bf16. The IR's two files are written into a
private temporary folder that is renamed into place whole, so concurrent first uses never
see half of one.

Every backend is an ``nn.Module`` the Translator wraps in :class:`PadToMultiple`, so
padding, tiles, batches and the memory budget work the same on all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.core.choices import BACKENDS
from translate.core.download import translate_home
from translate.core.extras import needs_extra
from translate.core.runtime import Precision, cpu_info, resolve_device, resolve_precision
from translate.inference.export import export_generator
from translate.models.model_file import LoadedModel
from translate.networks.eval_mode import EvalMode

# Bumped when the cached graphs change for the same weights (another export wrapper).
_CACHE_FORMAT = 1
# The precisions each backend other than torch runs ("auto" is the first).
_PRECISIONS = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}
# OpenVINO's names for them (its CPU plugin picks bf16 by itself on a CPU with native bf16
# unless told otherwise, so fp32 is always asked for by name).
_OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def weights_sha256(module: nn.Module) -> str:
    """A hash of a module's weights: the same for a model however it was loaded."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def resolve_backend(
    backend: str,
    device: str | torch.device,
    precision: str,
    eval_mode: EvalMode,
    supported: Sequence[str] | None = None,
) -> tuple[torch.device, Precision]:
    """The device and precision ``backend`` runs with; ``ValueError`` naming the option
    that does not fit it. ``supported``: the precisions the model declares it runs in
    (see :func:`translate.core.runtime.resolve_precision`).

    onnxruntime and openvino run the exported graph on the CPU: ``auto`` means ``cpu`` and
    ``fp32`` for them, and another device or precision is refused rather than silently not
    used. openvino also runs bf16, asked for only on a CPU with native bf16 (its CPU plugin
    computes bf16 with those instructions; elsewhere the request is refused here rather
    than left to OpenVINO to ignore or reject).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "torch":
        resolved = resolve_device(device)
        return resolved, resolve_precision(precision, resolved, supported=supported)
    if str(device) not in ("auto", "cpu"):
        raise ValueError(
            f"--backend {backend} runs on the CPU; got --device {device} (use --device cpu "
            "or --backend torch)"
        )
    runs = _PRECISIONS[backend]
    if precision != "auto" and precision not in runs:
        raise ValueError(
            f"--precision {precision}: --backend {backend} runs the "
            f"{' or '.join(runs)} graph; use --precision {' or '.join(runs)} (or auto), "
            f"or --backend torch for {precision}"
        )
    if precision == "bf16" and not cpu_info().native_bf16:
        raise ValueError(
            f"--precision bf16: --backend {backend} runs bf16 only on a CPU with native bf16 "
            f"({cpu_info().describe()}); use --precision fp32"
        )
    if eval_mode.dropout:
        raise ValueError(
            f"--dropout: --backend {backend} cannot seed dropout as torch does; use "
            "--no-dropout or --backend torch"
        )
    cpu = torch.device("cpu")
    return cpu, resolve_precision(runs[0] if precision == "auto" else precision, cpu)


def _cache_name(model: LoadedModel, direction: str, eval_mode: EvalMode) -> str:
    """``<weights SHA-256>-<variant>``: what names a generator's cached graphs."""
    variant = json.dumps(
        [_CACHE_FORMAT, asdict(model.specs[direction]), asdict(eval_mode)],
        sort_keys=True,
        default=str,
    )
    key = hashlib.sha256(variant.encode()).hexdigest()[:12]
    return f"{weights_sha256(model.generators[direction])}-{key}"


def onnx_cache_path(model: LoadedModel, direction: str, eval_mode: EvalMode) -> Path:
    """Where the ONNX graph of ``model``'s ``direction`` generator in ``eval_mode`` is cached."""
    return translate_home() / "onnx" / f"{_cache_name(model, direction, eval_mode)}.onnx"


def openvino_cache_path(model: LoadedModel, direction: str, eval_mode: EvalMode) -> Path:
    """The folder of the OpenVINO model (``model.xml``, ``model.bin``) made from that graph."""
    return translate_home() / "openvino" / _cache_name(model, direction, eval_mode)


def cached_onnx(model: LoadedModel, direction: str, eval_mode: EvalMode) -> Path:
    """The cached ONNX graph of ``model``'s ``direction`` generator, exported if missing."""
    path = onnx_cache_path(model, direction, eval_mode)
    if not path.is_file():
        # Seconds to a minute (the export is checked against torch at three sizes): say
        # why the first use waits.
        print(f"exporting the generator to ONNX, once: {path}", file=sys.stderr)
        mode = {"norm_stats": eval_mode.norm_stats, "dropout": eval_mode.dropout}
        export_generator(model, path, "onnx", direction, **mode)
    return path


class OnnxRuntimeGenerator(nn.Module):
    """A generator's cached ONNX graph on onnxruntime, called like the generator: NCHW
    float in [-1, 1] to its output, on the input's device, with as many threads as torch.

    The Translator wraps it in :class:`PadToMultiple` with the generator's spec, as the
    torch module, so it pads the input before it (the graph's own padding then has none to
    add, and inputs smaller than the multiple are edge-padded as on torch).
    """

    def __init__(self, model: LoadedModel, direction: str, eval_mode: EvalMode) -> None:
        super().__init__()
        with needs_extra("onnx", "--backend onnxruntime"):
            import onnxruntime
        self.path = cached_onnx(model, direction, eval_mode)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own classes: InvalidProtobuf, Fail, ...
            raise _unreadable(self.path, "ONNX graph", exc) from exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = {"input": x.detach().float().cpu().contiguous().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0]).to(x.device)


def _unreadable(path: Path, what: str, exc: Exception) -> ValueError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ValueError(
        f"{path}: unreadable cached {what} ({message}); remove it and it is made again on "
        "the next use"
    )


class OpenVinoGenerator(nn.Module):
    """A generator's cached OpenVINO model on OpenVINO's CPU plugin, called like the
    generator (as :class:`OnnxRuntimeGenerator`), with as many threads as torch
    (``INFERENCE_NUM_THREADS``) and ``precision``'s inference precision.

    Each thread that calls it gets its own infer request (the server translates in
    worker threads; a request runs one inference at a time).
    """

    def __init__(
        self, model: LoadedModel, direction: str, eval_mode: EvalMode, precision: Precision
    ) -> None:
        super().__init__()
        with needs_extra("openvino", "--backend openvino"):
            import openvino
        self.path = openvino_cache_path(model, direction, eval_mode) / "model.xml"
        if not self.path.is_file():
            onnx_path = cached_onnx(model, direction, eval_mode)
            print(f"converting the ONNX graph to OpenVINO, once: {self.path}", file=sys.stderr)
            _save_openvino(openvino, onnx_path, self.path.parent)
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": _OPENVINO_PRECISION[precision.name],
            # One image at a time as fast as it goes: the Translator batches for itself.
            "PERFORMANCE_HINT": "LATENCY",
        }
        core = openvino.Core()
        try:
            self.compiled = core.compile_model(core.read_model(self.path), "CPU", config)
        except RuntimeError as exc:  # OpenVINO raises its parse errors as RuntimeError
            raise _unreadable(self.path.parent, "OpenVINO model", exc) from exc
        self._requests = threading.local()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        array = x.detach().float().cpu().contiguous().numpy()
        # The result is a copy (share_outputs is off): the request's buffer is reused.
        return torch.from_numpy(request.infer({0: array})[0]).to(x.device)


def _save_openvino(openvino: Any, onnx_path: Path, folder: Path) -> None:
    """Convert ``onnx_path`` to an OpenVINO model in ``folder``, all or nothing: both files
    are written and fsynced in a temporary folder beside it, which is renamed into place.
    When another process renamed its own first, that one (the same model) is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        # fp32 weights as the graph has them: the inference precision is chosen at compile.
        openvino.save_model(
            openvino.convert_model(onnx_path), tmp / "model.xml", compress_to_fp16=False
        )
        for written in tmp.iterdir():
            with open(written, "rb") as file:
                os.fsync(file.fileno())
        try:
            os.rename(tmp, folder)
        except OSError:  # ENOTEMPTY/EEXIST: a concurrent first use finished first
            if not (folder / "model.xml").is_file():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
