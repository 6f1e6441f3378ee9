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

``--precision int8`` runs that graph quantized (:mod:`translate.inference.quantize`): the
first :data:`CALIBRATION_IMAGES` images of the ``calibrate`` folder (sorted) set its
ranges. onnxruntime runs onnxruntime's QDQ graph, cached as ``TRANSLATE_HOME/onnx/<weights
SHA-256>-<variant>-int8-<calibration SHA-256>.onnx``; openvino runs NNCF's OpenVINO model
(faster there), cached as ``TRANSLATE_HOME/openvino/<the same name>-nncf/model.xml``
(written as the converted fp32 model is). Each keeps the PSNR it reached against fp32 on
those images (the graph's metadata, the model's runtime info), so a cache hit reports and
checks the same quality without quantizing again. A model under ``min_psnr`` is refused
(and, when first made, not cached).

``auto`` picks onnxruntime where it is installed and the run is one it does as torch would
(the CPU, fp32 or int8, no dropout, a model that does not declare its own precisions): the
fastest fp32 backend measured (docs/benchmarks-backends.md), whose graph was checked
against PyTorch when exported. Anything else, or a model whose export fails (said on
stderr), runs on torch.

Every backend is an ``nn.Module`` the Translator wraps in :class:`PadToMultiple`, so
padding, tiles, batches and the memory budget work the same on all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.core.choices import BACKENDS
from translate.core.download import translate_home
from translate.core.extras import needs_extra
from translate.core.runtime import (
    Precision,
    auto_precision,
    cpu_info,
    resolve_device,
    resolve_precision,
)
from translate.inference.export import export_generator
from translate.inference.quantize import (
    Int8Quality,
    calibration_inputs,
    calibration_sha256,
    quantize_onnx,
    quantize_openvino,
    refuse_under,
    stored_quality,
)
from translate.models.model_file import LoadedModel
from translate.networks.eval_mode import EvalMode

# Bumped when the cached graphs change for the same weights (another export wrapper;
# 3: PixelUnshuffle exported as SpaceToDepth).
_CACHE_FORMAT = 3
# The precisions each backend other than torch runs ("auto" is the first).
_PRECISIONS = {"onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}
# OpenVINO's names for them (its CPU plugin picks bf16 by itself on a CPU with native bf16
# unless told otherwise, so fp32 is always asked for by name; an int8 graph's quantized
# operators run in int8 whatever the hint, the rest in fp32).
_OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
# The package each backend other than torch imports, and the extra that installs it.
_EXTRAS = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}
# Calibration images an int8 model is quantized with: the first ones of the folder, enough
# for stable min/max ranges without reading a whole data set each time the model loads.
CALIBRATION_IMAGES = 16


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
) -> tuple[str, torch.device, Precision]:
    """The backend (``auto`` resolved, see the module's docstring), device and precision
    ``backend`` runs with; ``ValueError`` naming the option that does not fit it.
    ``supported``: the precisions the model declares it runs in (see
    :func:`translate.core.runtime.resolve_precision`).

    onnxruntime and openvino run the exported graph on the CPU: ``auto`` means ``cpu`` and
    ``fp32`` for them, and another device or precision is refused rather than silently not
    used. openvino also runs bf16, asked for only on a CPU with native bf16 (its CPU plugin
    computes bf16 with those instructions; elsewhere the request is refused here rather
    than left to OpenVINO to ignore or reject). int8 runs on those two only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "auto":
        backend = _auto_backend(device, precision, eval_mode, supported)
    if backend == "torch":
        if precision == "int8":
            raise ValueError(
                "--precision int8 runs a quantized ONNX graph: use --backend onnxruntime, "
                "openvino or auto"
            )
        resolved = resolve_device(device)
        return backend, resolved, resolve_precision(precision, resolved, supported=supported)
    if str(device) not in ("auto", "cpu"):
        raise ValueError(
            f"--backend {backend} runs on the CPU; got --device {device} (use --device cpu "
            "or --backend torch)"
        )
    runs = _PRECISIONS[backend]
    if precision != "auto" and precision not in runs:
        listed = f"{', '.join(runs[:-1])} or {runs[-1]}"
        raise ValueError(
            f"--precision {precision}: --backend {backend} runs the {listed} graph; use "
            f"--precision {listed} (or auto), or --backend torch for {precision}"
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
    if precision == "int8":  # no autocast: the graph itself is quantized
        return backend, cpu, Precision("int8", "cpu")
    return backend, cpu, resolve_precision(runs[0] if precision == "auto" else precision, cpu)


def check_compile(backend: str, device: torch.device, dropout: bool) -> None:
    """Refuse ``--compile`` (``ValueError`` naming it) where it cannot run. It runs the torch
    module through ``torch.compile``, whose inductor fuses the small operators between the
    convolutions that eager mode runs one by one; it compiles at each input size's first
    call."""
    if backend != "torch":
        raise ValueError(
            f"--compile compiles the torch module; --backend {backend} runs its own graph: "
            "use --backend torch, or leave --compile out"
        )
    if dropout:
        raise ValueError("--compile: dropout is seeded per image eagerly; use --no-dropout")
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++")):
        raise ValueError(
            "--compile needs a C++ compiler on the CPU (g++): install one, or leave --compile out"
        )


def _auto_backend(
    device: str | torch.device,
    precision: str,
    eval_mode: EvalMode,
    supported: Sequence[str] | None,
) -> str:
    """What ``--backend auto`` runs (the rule in the module's docstring)."""
    if importlib.util.find_spec("onnxruntime") is None or eval_mode.dropout:
        return "torch"
    if precision == "int8":
        return "onnxruntime"
    if supported is not None or resolve_device(device).type != "cpu":
        return "torch"
    if precision == "auto":
        precision = auto_precision(torch.device("cpu"), "inference")
    return "onnxruntime" if precision == "fp32" else "torch"


def backend_runner(
    model: LoadedModel,
    direction: str,
    eval_mode: EvalMode,
    generator: nn.Module,
    backend: str,
    precision: Precision,
    calibrate: str | os.PathLike[str] | None = None,
    min_psnr: float = 0.0,
    chosen: bool = False,
) -> tuple[str, nn.Module, Int8Quality | None]:
    """(backend, what runs the forward pass, the int8 graph's quality or None) for a
    resolved ``backend`` and ``precision``: ``generator`` (the torch module, ready to run),
    or the cached graph of ``model``'s ``direction`` generator on
    onnxruntime or openvino (int8: quantized with ``calibrate``'s images, refused under
    ``min_psnr`` dB). ``chosen``: ``auto`` picked ``backend``, so a model whose graph
    cannot be made runs on torch instead."""
    if backend == "torch":
        return backend, generator, None
    package, extra = _EXTRAS[backend]
    with needs_extra(extra, f"--backend {backend}"):  # before any export: the one error
        importlib.import_module(package)
    quality = None
    try:
        if precision.name == "int8":
            if calibrate is None:
                raise ValueError(
                    "--precision int8 needs --calibrate FOLDER: images like those it will "
                    "translate, to set the int8 ranges with and measure the quality kept"
                )
            path, quality = cached_int8(model, direction, eval_mode, calibrate, min_psnr, backend)
        else:
            path = cached_onnx(model, direction, eval_mode)
    except Exception as exc:  # auto falls back on any failure to export
        if not chosen or precision.name == "int8":
            raise
        print(f"--backend auto: running on torch ({exc})", file=sys.stderr)
        return "torch", generator, None
    if backend == "onnxruntime":
        return backend, OnnxRuntimeGenerator(path), quality
    if quality is None:  # fp32 or bf16: the ONNX graph converted
        path = cached_openvino(path)
    return backend, OpenVinoGenerator(path, precision), quality


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
    return _openvino_folder(onnx_cache_path(model, direction, eval_mode))


def _openvino_folder(onnx_path: Path) -> Path:
    """Where the OpenVINO model converted from the cached graph ``onnx_path`` is cached."""
    return translate_home() / "openvino" / onnx_path.stem


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


def int8_cache_path(
    model: LoadedModel, direction: str, eval_mode: EvalMode, inputs: list[Any], backend: str
) -> Path:
    """Where ``backend``'s int8 model of ``model``'s ``direction`` generator calibrated on
    ``inputs`` is cached: onnxruntime's QDQ graph, or NNCF's OpenVINO ``model.xml``."""
    name = f"{_cache_name(model, direction, eval_mode)}-int8-{calibration_sha256(inputs)[:12]}"
    if backend == "openvino":
        return translate_home() / "openvino" / f"{name}-nncf" / "model.xml"
    return translate_home() / "onnx" / f"{name}.onnx"


def cached_int8(
    model: LoadedModel,
    direction: str,
    eval_mode: EvalMode,
    calibrate: str | os.PathLike[str],
    min_psnr: float,
    backend: str,
) -> tuple[Path, Int8Quality]:
    """``backend``'s cached int8 model of ``model``'s ``direction`` generator calibrated on
    the first :data:`CALIBRATION_IMAGES` images of ``calibrate`` (:func:`int8_cache_path`),
    quantized if missing, and its quality (said on stderr); ``ValueError`` when that is
    under ``min_psnr`` dB."""
    channels = model.specs[direction].in_channels
    inputs = calibration_inputs(calibrate, channels, CALIBRATION_IMAGES)
    path = int8_cache_path(model, direction, eval_mode, inputs, backend)
    what = f"--calibrate {calibrate}"
    if path.is_file():
        quality = stored_quality(path)
        refuse_under(quality, min_psnr, what, "not used")
    else:
        fp32 = cached_onnx(model, direction, eval_mode)
        if backend == "openvino":
            print(f"quantizing the model to int8 with NNCF, once: {path}", file=sys.stderr)
            _save_openvino(path.parent, quantize_openvino(fp32, inputs, min_psnr, what))
            quality = stored_quality(path)
        else:
            print(f"quantizing the ONNX graph to int8, once: {path}", file=sys.stderr)
            quality = quantize_onnx(fp32, inputs, path, min_psnr, what)
    print(f"int8 model: {quality.describe()}", file=sys.stderr)
    return path, quality


def cached_openvino(onnx_path: Path) -> Path:
    """The cached OpenVINO model (``model.xml``) converted from the graph ``onnx_path``,
    converted if missing."""
    path = _openvino_folder(onnx_path) / "model.xml"
    if not path.is_file():
        with needs_extra("openvino", "--backend openvino"):
            import openvino
        print(f"converting the ONNX graph to OpenVINO, once: {path}", file=sys.stderr)
        # fp32 weights as the graph has them: the inference precision is chosen at compile.
        _save_openvino(path.parent, openvino.convert_model(onnx_path))
    return path


class OnnxRuntimeGenerator(nn.Module):
    """A generator's cached ONNX graph (``path``: fp32 or int8) on onnxruntime, called like
    the generator: NCHW float in [-1, 1] to its output, on the input's device, on as many
    threads as the calling thread's torch (as the torch module runs).

    A session's intra-op thread count is fixed when it is made, so there is one session per
    thread count that calls (made on first use): the converter's lanes, each on one torch
    thread, share the one-thread session (``run`` is thread-safe) and each runs its image
    on its own thread, where one session on every thread would run one image at a time
    (two threads per small convolution wait on each other at every layer).

    The Translator wraps it in :class:`PadToMultiple` with the generator's spec, as the
    torch module, so it pads the input before it (the graph's own padding then has none to
    add, and inputs smaller than the multiple are edge-padded as on torch). A noise model's
    graph takes its code as ``z``, as the generator does.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        with needs_extra("onnx", "--backend onnxruntime"):
            import onnxruntime
        self.path = path

        def session(threads: int) -> Any:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            try:
                return onnxruntime.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime's own classes: InvalidProtobuf, Fail, ...
                raise _unreadable(self.path, "ONNX graph", exc) from exc

        self.sessions = _PerThreadCount(session)
        self.sessions.get()  # an unreadable graph fails here, not at the first image

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        feed = {"input": x.detach().float().cpu().contiguous().numpy()}
        if z is not None:
            feed["z"] = z.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.sessions.get().run(None, feed)[0]).to(x.device)


class _PerThreadCount:
    """What ``make(threads)`` returns, made once per torch thread count of the threads that
    ask (:meth:`get`), under a lock: the converter's lanes ask at once."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        self.make = make
        self.made: dict[int, Any] = {}
        self.lock = threading.Lock()

    def get(self) -> Any:
        threads = torch.get_num_threads()
        with self.lock:
            if threads not in self.made:
                self.made[threads] = self.make(threads)
            return self.made[threads]


def _unreadable(path: Path, what: str, exc: Exception) -> ValueError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ValueError(
        f"{path}: unreadable cached {what} ({message}); remove it and it is made again on "
        "the next use"
    )


class OpenVinoGenerator(nn.Module):
    """The cached OpenVINO model at ``path`` (``model.xml``: converted from the ONNX graph,
    or NNCF's int8 model) on OpenVINO's CPU plugin, called like the generator (as
    :class:`OnnxRuntimeGenerator`), with ``precision``'s inference precision, on as many
    threads as the calling thread's torch.

    The model is compiled once per thread count that calls it, with dynamic sizes, so one
    compiled model serves every shape. It is built for torch's thread count when it is
    made: a caller on that many threads or more gets one stream of them, as fast as one
    image goes (the Translator batches for itself); callers on fewer threads, such as the
    converter's lanes on one thread each, share a model of ``that count // theirs``
    streams, one per lane, each running its own image on its own threads. Each calling
    thread keeps its own infer request per compiled model (a request runs one inference
    at a time; the server translates in worker threads too). Static models per input shape
    and a shared input array were tried: they corrupted the heap of a process that went on
    to other work (a test suite crashed later in unrelated code), so they are left out.
    """

    def __init__(self, path: Path, precision: Precision) -> None:
        super().__init__()
        with needs_extra("openvino", "--backend openvino"):
            import openvino
        self.path = path
        total = torch.get_num_threads()  # the threads the lanes' streams share
        core = openvino.Core()
        try:
            model = core.read_model(self.path)
        except RuntimeError as exc:  # OpenVINO raises its parse errors as RuntimeError
            raise _unreadable(self.path.parent, "OpenVINO model", exc) from exc

        def compiled(threads: int) -> Any:
            streams = max(1, total // threads)
            config: dict[str, Any] = {
                "INFERENCE_NUM_THREADS": streams * threads,
                "INFERENCE_PRECISION_HINT": _OPENVINO_PRECISION[precision.name],
            }
            # An explicit stream count overrides what a performance hint would choose.
            config.update(
                {"NUM_STREAMS": streams} if streams > 1 else {"PERFORMANCE_HINT": "LATENCY"}
            )
            try:
                return core.compile_model(model, "CPU", config)
            except RuntimeError as exc:
                raise _unreadable(self.path.parent, "OpenVINO model", exc) from exc

        self.compiled = _PerThreadCount(compiled)
        self.compiled.get()  # an unreadable model fails here, not at the first image
        self._requests = threading.local()

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        compiled = self.compiled.get()
        requests = self._requests.__dict__.setdefault("by_model", {})  # id -> its request
        request = requests.get(id(compiled))
        if request is None:
            request = requests[id(compiled)] = compiled.create_infer_request()
        feed = {0: x.detach().float().cpu().contiguous().numpy()}
        if z is not None:  # a noise model's code: the graph's second input
            feed[1] = z.detach().float().cpu().contiguous().numpy()
        # The result is a copy (share_outputs is off): the request's buffer is reused.
        return torch.from_numpy(request.infer(feed)[0]).to(x.device)


def _save_openvino(folder: Path, model: Any) -> None:
    """Save the OpenVINO ``model`` in ``folder``, all or nothing: both files are written
    and fsynced in a temporary folder beside it, which is renamed into place. When another
    process renamed its own first, that one (the same model) is kept."""
    import openvino  # installed: the caller made ``model`` with it

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        openvino.save_model(model, tmp / "model.xml", compress_to_fp16=False)
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
