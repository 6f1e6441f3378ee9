"""Inference backends: what runs a generator's forward pass behind the Translator.

``torch`` runs the module eagerly, under the precision's autocast. ``onnxruntime`` runs the
generator's ONNX export (``translate export``'s graph, checked against PyTorch when it is
written) on onnxruntime's CPU provider, in fp32. The graph is exported on first use and
cached as ``TRANSLATE_HOME/onnx/<weights SHA-256>-<variant>.onnx``: the variant hashes what
else shapes the graph (architecture, options, geometry, eval mode). The export is written
atomically, so processes that start at once each write their own temporary file and the
cache only ever holds complete graphs.

Either way the backend is an ``nn.Module`` the Translator wraps in :class:`PadToMultiple`,
so padding, tiles, batches and the memory budget work the same on both.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from translate.core.choices import BACKENDS
from translate.core.download import translate_home
from translate.core.extras import needs_extra
from translate.core.runtime import Precision, resolve_device, resolve_precision
from translate.inference.export import export_generator
from translate.models.model_file import LoadedModel
from translate.networks.eval_mode import EvalMode

# Bumped when the cached graphs change for the same weights (another export wrapper).
_CACHE_FORMAT = 1


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

    onnxruntime runs the fp32 graph on the CPU: ``auto`` means ``cpu`` and ``fp32`` for it,
    and another device or precision is refused rather than silently not used.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "torch":
        resolved = resolve_device(device)
        return resolved, resolve_precision(precision, resolved, supported=supported)
    if str(device) not in ("auto", "cpu"):
        raise ValueError(
            f"--backend onnxruntime runs on the CPU; got --device {device} (use --device cpu "
            "or --backend torch)"
        )
    if precision not in ("auto", "fp32"):
        raise ValueError(
            f"--precision {precision}: --backend onnxruntime runs the fp32 graph; use "
            "--precision fp32 (or auto), or --backend torch for bf16/fp16"
        )
    if eval_mode.dropout:
        raise ValueError(
            "--dropout: --backend onnxruntime cannot seed dropout as torch does; use "
            "--no-dropout or --backend torch"
        )
    cpu = torch.device("cpu")
    return cpu, resolve_precision("fp32", cpu)


def onnx_cache_path(model: LoadedModel, direction: str, eval_mode: EvalMode) -> Path:
    """Where the ONNX graph of ``model``'s ``direction`` generator in ``eval_mode`` is cached."""
    variant = json.dumps(
        [_CACHE_FORMAT, asdict(model.specs[direction]), asdict(eval_mode)],
        sort_keys=True,
        default=str,
    )
    key = hashlib.sha256(variant.encode()).hexdigest()[:12]
    sha = weights_sha256(model.generators[direction])
    return translate_home() / "onnx" / f"{sha}-{key}.onnx"


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
        self.path = onnx_cache_path(model, direction, eval_mode)
        if not self.path.is_file():
            # Seconds to a minute (the export is checked against torch at three sizes): say
            # why the first use waits.
            print(f"exporting the generator to ONNX, once: {self.path}", file=sys.stderr)
            mode = {"norm_stats": eval_mode.norm_stats, "dropout": eval_mode.dropout}
            export_generator(model, self.path, "onnx", direction, **mode)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own classes: InvalidProtobuf, Fail, ...
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"{self.path}: unreadable cached ONNX graph ({message}); remove it and it is "
                "exported again on the next use"
            ) from exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = {"input": x.detach().float().cpu().contiguous().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0]).to(x.device)
