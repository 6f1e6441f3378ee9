"""Export a generator to TorchScript or ONNX, and describe a model for ``translate info``.

Exports take any batch size, height and width: the graph reflect-pads to the generator's
``size_multiple`` and crops back, with the converter's own module (:class:`PadToMultiple`).
A generator that declares a ``scale`` outputs ``scale`` times its input's sides (the ONNX
graph names them ``2*height`` and ``2*width`` for 2x), and any channel counts it declares.
They are checked against PyTorch at sizes that need padding before they are written: an
export that does not match is never left on disk. A generator with a noise input
(``noise_dim``) exports to ONNX with its code as the graph's second input, ``z``
(``batch x noise_dim``).
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from translate.core.atomic import atomic_path
from translate.core.extras import needs_extra
from translate.core.torch_file import torchscript_allowed
from translate.inference.padding import PadToMultiple, PadToMultipleWithCode
from translate.models.describe import describe
from translate.models.model_file import GeneratorSpec, LoadedModel, generator_counts
from translate.networks.eval_mode import set_eval_mode

FORMATS = ("torchscript", "onnx")
TOLERANCE = 1e-4


def export_generator(
    model: LoadedModel,
    out: str | os.PathLike[str],
    fmt: str = "torchscript",
    direction: str = "AtoB",
    opset: int | None = None,
    norm_stats: str | None = None,
    dropout: bool | None = None,
) -> Path:
    """Write ``model``'s ``direction`` generator to ``out`` as ``fmt``; return the path.

    The export runs on the CPU in fp32 and takes any height and width (padded inside as the
    converter pads). Its outputs are compared with PyTorch's at three input sizes and two
    batch sizes; a difference above 1e-4 raises and writes nothing. ``norm_stats`` and
    ``dropout`` as for :class:`Translator` (None: what the model file records).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if direction not in model.generators:
        raise ValueError(
            f"direction {direction!r} is not in this model; it has {sorted(model.generators)}"
        )
    if opset is not None and fmt != "onnx":
        raise ValueError("--opset only applies to --format onnx")
    noise_dim = int(getattr(model.generators[direction], "noise_dim", 0) or 0)
    if noise_dim and fmt != "onnx":
        raise ValueError(
            f"this model takes a noise code (noise_dim {noise_dim}): export it with --format "
            "onnx, whose graph takes the code as its second input (z)"
        )
    mode = model.eval_mode.override(norm_stats, dropout)
    if mode.dropout and fmt == "onnx":
        raise ValueError(
            "dropout at test time exports to TorchScript only (onnxruntime's dropout cannot "
            "be checked against PyTorch's); pass --no-dropout or --format torchscript"
        )
    generator = model.generators[direction]
    copied = (
        _baked(model.specs[direction], generator) if fmt == "onnx" else copy.deepcopy(generator)
    )
    wrapper = PadToMultipleWithCode if noise_dim else PadToMultiple
    copied = copied.cpu().float()
    net = wrapper(copied, model.specs[direction])
    # The graph is traced from a copy with ONNX's faster equivalents, and checked against net.
    traced = (
        wrapper(_onnx_equivalents(copy.deepcopy(copied)), model.specs[direction])
        if fmt == "onnx"
        else net
    )
    for module in (net, traced):  # the wrapper too: the ONNX exporter restores modes from it
        set_eval_mode(module, mode)
    inputs = _check_inputs(net.multiple, model.specs[direction].in_channels, noise_dim)
    out = Path(out)
    with atomic_path(out) as tmp:
        if fmt == "torchscript":
            try:
                run = _export_torchscript(net, tmp)
            except (RuntimeError, torch.jit.frontend.FrontendError) as exc:
                # Community architectures (spandrel's) are written for eager PyTorch.
                reason = str(exc).strip().splitlines()[0]
                raise ValueError(
                    f"{out}: {model.specs[direction].name} cannot be compiled to TorchScript "
                    f"({reason}); export it with --format onnx"
                ) from exc
        else:
            try:
                run = _export_onnx(traced, inputs[0], tmp, opset)
            except torch.onnx.errors.OnnxExporterError as exc:  # an operator it cannot trace
                reason = str(exc).strip().splitlines()[0]
                raise ValueError(
                    f"{out}: {model.specs[direction].name} cannot be exported to ONNX "
                    f"({reason}); translate it on torch"
                ) from exc
        _verify(net, run, inputs, out, fmt)
    return out


def _baked(spec: GeneratorSpec, generator: nn.Module) -> nn.Module:
    """A copy of ``generator`` whose parametrized weights (spectral norm) are plain weights
    of the values they have now: ONNX has no operator (vdot) to compute them in the graph.
    Built anew from ``spec``: a deep copy would share each parametrized module's class with
    the original, which removing the parametrization edits. In eval mode: in training mode
    spectral norm would take one more power iteration, and its weights would no longer be
    the ones the model computes."""
    if not any(parametrize.is_parametrized(m) for m in generator.modules()):
        return copy.deepcopy(generator)
    baked = spec.build().eval()
    baked.load_state_dict(generator.state_dict())
    for module in baked.modules():
        for name in list(getattr(module, "parametrizations", {})):
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return baked


class _SpaceToDepth(torch.autograd.Function):
    """PixelUnshuffle's rearrangement with the channels in ONNX SpaceToDepth's order, a
    block's pixels outer and the image's channels inner (pixel_unshuffle: the other way
    round), exported as that one operator."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: int) -> torch.Tensor:  # type: ignore[override]
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // block, block, w // block, block).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(n, block * block * c, h // block, w // block)

    @staticmethod
    def symbolic(g: Any, x: Any, block: int) -> Any:
        return g.op("SpaceToDepth", x, blocksize_i=block)


class _SpaceToDepthConv(nn.Module):
    """PixelUnshuffle(``block``) then ``conv``, as SpaceToDepth then ``conv`` with its input
    channels reordered to SpaceToDepth's order (``conv`` is changed in place)."""

    def __init__(self, block: int, conv: nn.Conv2d) -> None:
        super().__init__()
        self.block, self.conv = block, conv
        weight = conv.weight.detach()
        by_pixel = weight.view(weight.shape[0], -1, block, block, *weight.shape[2:])
        with torch.no_grad():
            conv.weight.copy_(by_pixel.permute(0, 2, 3, 1, 4, 5).reshape(weight.shape).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_SpaceToDepth.apply(x, self.block))


def _onnx_equivalents(generator: nn.Module) -> nn.Module:
    """``generator`` (a copy, changed in place) with each PixelUnshuffle that feeds a
    convolution replaced by ONNX's SpaceToDepth: torch exports pixel_unshuffle as a 6-D
    transpose, which took 8 % of the real-time student's time on onnxruntime; with
    SpaceToDepth its graph ran at 1.11-1.23x the frames/s, the outputs the same."""
    for sequential in [m for m in generator.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequential) - 1):
            unshuffle, conv = sequential[i], sequential[i + 1]
            if isinstance(unshuffle, nn.PixelUnshuffle) and type(conv) is nn.Conv2d:
                sequential[i] = _SpaceToDepthConv(unshuffle.downscale_factor, conv)
                sequential[i + 1] = nn.Identity()
    return generator


def _check_inputs(
    multiple: int, channels: int, noise_dim: int = 0
) -> list[tuple[torch.Tensor, ...]]:
    """The trace input and two more of other batch sizes and shapes; the last two are no
    multiple of ``multiple``, so the padding inside the export is checked too. Each with a
    code per image where the generator takes one (``noise_dim``). The trace input is two
    multiples a side at least: at one, the deepest layers are 1x1, where an instance norm
    (or a batch norm on the input's statistics) has nothing to normalise and refuses."""
    side = multiple * max(2, math.ceil(32 / multiple))
    generator = torch.Generator().manual_seed(0)
    shapes = [(1, channels, side, side), (2, channels, side + multiple + 1, side - 1)]
    shapes.append((1, channels, side + 3, side + multiple // 2 + 2))
    inputs = []
    for shape in shapes:
        x = torch.rand(shape, generator=generator) * 2 - 1
        z = torch.randn(shape[0], noise_dim, generator=generator)
        inputs.append((x, z) if noise_dim else (x,))
    return inputs


def _export_torchscript(net: nn.Module, path: Path) -> Callable[..., torch.Tensor]:
    with torchscript_allowed():
        # Scripting, not tracing: the module keeps no sizes from an example input.
        torch.jit.save(torch.jit.script(net), str(path))
        return torch.jit.load(str(path), map_location="cpu")


def _export_onnx(
    net: nn.Module, example: tuple[torch.Tensor, ...], path: Path, opset: int | None
) -> Callable[..., torch.Tensor]:
    with needs_extra("onnx", "ONNX export"):
        import onnx
        import onnxruntime
    # The output's sides are named for what they are, ``scale`` times the input's: a shared
    # name would declare them equal, which a scaled generator's are not.
    axes = {0: "batch", 2: "height", 3: "width"}
    scale = int(getattr(net, "scale", 1))
    out_axes = axes if scale == 1 else {0: "batch", 2: f"{scale}*height", 3: f"{scale}*width"}
    names = ["input", "z"][: len(example)]  # z: a noise model's code
    # The TorchScript-based exporter takes dynamic_axes and works with every supported
    # torch; the dynamo exporter would also need onnxscript.
    legacy = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    with warnings.catch_warnings():
        # The tracer warns that shape checks become constants and that instance norm
        # exports in training mode (it always normalises by the input's statistics); the
        # check at a second size below catches an export that does not generalise.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        torch.onnx.export(
            net,
            example,
            str(path),
            input_names=names,
            output_names=["output"],
            dynamic_axes={"input": axes, "z": {0: "batch"}, "output": out_axes}
            if len(example) > 1
            else {"input": axes, "output": out_axes},
            opset_version=opset,
            **legacy,
        )
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(*args: torch.Tensor) -> torch.Tensor:
        feed = {name: arg.numpy() for name, arg in zip(names, args, strict=True)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run


def _verify(
    net: nn.Module,
    run: Callable[..., torch.Tensor],
    inputs: list[tuple[torch.Tensor, ...]],
    out: Path,
    fmt: str,
) -> None:
    for args in inputs:
        x = args[0]
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same dropout masks, when dropout is on
            expected = net(*args)
            torch.manual_seed(0)
            got = run(*args)
        diff = (got - expected).abs().max().item() if got.shape == expected.shape else float("inf")
        if not diff <= TOLERANCE:
            raise ValueError(
                f"{out}: the {fmt} export differs from PyTorch by {diff:.2e} on an input of "
                f"shape {tuple(x.shape)} (tolerance {TOLERANCE}); nothing written"
            )


def describe_model(model: LoadedModel, source: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``translate info`` prints: per direction the architecture, parameter count and
    expected input, plus the preprocessing and training summary stored with the model (the
    networks counted here: :func:`~translate.models.describe.describe_file` reads the
    counts a generator file stores)."""
    transforms = model.preprocess.transforms
    counts = {
        d: generator_counts(model.specs[d], net, transforms) for d, net in model.generators.items()
    }
    specs = {d: vars(model.specs[d]) for d in model.generators}
    training, eval_mode = model.training, vars(model.eval_mode)
    return describe(source, specs, counts, model.preprocess.to_dict(), training, eval_mode)
