"""The translator: a generator wrapped for images of any kind and size.

Every input kind (PIL image, numpy array, tensor) is turned into one NCHW float batch and
goes through the same steps: alpha set aside, channels matched to the model, optional resize,
reflect padding to the generator's size multiple (or overlapping tiles), the forward pass,
and the way back to the caller's kind, layout, dtype and size.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from translate.core.runtime import PRECISIONS, resolve_device
from translate.data.images import ImageReadError, image_to_array, label_array, read_image
from translate.inference.backends import backend_runner, check_compile, resolve_backend
from translate.inference.options import TranslatorOptions
from translate.inference.padding import PadToMultiple
from translate.models.model_file import LoadedModel
from translate.networks.eval_mode import EvalMode, set_eval_mode

# ITU-R 601-2 luma, the weights PIL's convert("L") uses when training reads grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _ramp(n: int, overlap: int) -> torch.Tensor:
    """A 1-D blending weight: linear ramps of ``overlap`` pixels at both ends, never zero."""
    i = torch.arange(n, dtype=torch.float32)
    return torch.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1)).clamp(max=1.0)


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    return [*range(0, n - tile, tile - overlap), n - tile]


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """NCHW with 1 or 3 channels -> ``channels`` channels, as training reads images."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] != 1 and channels not in (1, 3):
        raise ValueError(
            f"the model takes {channels} channels, the image has {x.shape[1]}: give it "
            f"{channels}-channel arrays or tensors (RGBA files for 4)"
        )
    if channels == 1:
        weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    return x.expand(-1, channels, -1, -1)


class Translator:
    """Translate PIL images, numpy arrays or tensors with one generator of a model file.

    ``options`` (a :class:`~translate.inference.options.TranslatorOptions`), or keywords
    that change its fields (``device``, ``precision``, ``direction``, ``size``, ``tile``,
    ``overlap``, ``batch_size``, ``value_range``, ``norm_stats``, ``dropout``, ``seed``,
    ``style``; each field's help says what it does), say how images are translated.
    ``size`` resizes each image for the model (bicubic, as the reference's test mode) and
    the result back; else images run at their native resolution, reflect-padded to the
    generator's size multiple and cropped back, or in overlapping ``tile`` pieces blended
    with linear ramps. Each image runs through the network on its own, so its output never
    depends on its batch mates.
    The generator is moved to the device in place.

    Values: uint8 inputs are 0-255 and uint16 ones 0-65535; float inputs (tensors and numpy
    arrays) are expected in ``value_range``, ``(0, 1)`` unless given, e.g. ``(-1, 1)`` after
    ``Normalize(0.5, 0.5)``; a float input outside it is an error naming the range found.
    The output has the input's kind, dtype, range and layout (HW stays HW). A gray input to
    a model that maps RGB to RGB comes back gray; only a model whose output has other
    channels than its input (gray to RGB, RGB to gray) changes the channel count.

    ``norm_stats`` and ``dropout`` left None take what the model file records (validation's
    better mode). With dropout on, each image's masks are drawn from ``seed`` and the
    image's pixels, so the same input gives the same output however it is batched, resumed
    or rerun.

    A generator with a noise input (its ``noise_dim``, taken as ``forward(x, z=...)``) gets
    one code for every image: drawn from ``seed`` (default 0, so conversions are reproducible
    unless another seed is asked for), or, with ``style`` (an image file), its
    ``encode_style``; an image given a name (``translate_batch``'s ``names``) gets its own
    code, drawn from ``seed`` and the name. The same seed (or style), name and input give
    the same output.

    ``backend``: ``torch`` (eager), ``onnxruntime`` (the generator's ONNX export, cached
    under ``TRANSLATE_HOME/onnx`` on first use; CPU and fp32 only, no dropout) or
    ``openvino`` (that export converted for OpenVINO's CPU plugin and cached under
    ``TRANSLATE_HOME/openvino``; fp32, or bf16 on a CPU with native bf16; no dropout):
    ``translate.inference.backends``. Padding, tiles and batches are the same on all.
    """

    def __init__(
        self,
        model: LoadedModel,
        options: TranslatorOptions | None = None,
        **changes: Any,
    ) -> None:
        options = replace(options or TranslatorOptions(), **changes)
        if options.direction not in model.generators:
            raise ValueError(
                f"direction {options.direction!r} is not in this model; it has "
                f"{sorted(model.generators)}"
            )
        self.options = options
        low, high = options.value_range
        self.value_range = (float(low), float(high))
        self.eval_mode = model.eval_mode.override(options.norm_stats, options.dropout)
        # Models that declare the precisions they run in (spandrel's) keep auto off the others.
        supported = getattr(model.generators[options.direction], "precisions", None)
        self.backend, self.device, self.precision = resolve_backend(
            options.backend, options.device, options.precision, self.eval_mode, supported
        )
        if options.compile:
            check_compile(self.backend, self.device, bool(self.eval_mode.dropout))
        self.direction = direction = options.direction
        self.spec = model.specs[direction]
        self.in_channels = self.spec.in_channels
        self.out_channels = self.spec.out_channels
        self.size, self.tile, self.batch_size = options.size, options.tile, options.batch_size
        self.overlap = options.tile_overlap()
        self.seed = options.seed
        generator = model.generators[direction].requires_grad_(False)
        self.noise_dim = int(getattr(generator, "noise_dim", 0) or 0)
        _check_code_options(generator, self.noise_dim, options)
        if self.eval_mode != EvalMode():  # the file's module stays as loaded for others
            generator = copy.deepcopy(generator)
        set_eval_mode(generator, self.eval_mode)
        self.size_multiple = self.spec.size_multiple
        self.generator = generator.to(self.device, memory_format=torch.channels_last)
        # What runs the forward pass; the torch module stays for hashing and memory probes.
        self.backend, runner, self.int8 = backend_runner(
            model, direction, self.eval_mode, self.generator, self.backend, self.precision,
            options.calibrate, options.min_psnr, chosen=options.backend == "auto",
        )  # fmt: skip
        if options.compile:
            runner = torch.compile(runner, dynamic=False)
        if self.noise_dim:  # the code goes in beside each image (an exported graph's z)
            runner = _WithCode(runner, self._code(options))
        self.padded = PadToMultiple(runner, self.spec)
        self.model = model
        # What a named image's own code replaces: the seed's (not a style's, which is asked for).
        self._drawn = runner if self.noise_dim and options.style is None else None

    @property
    def per_image_noise(self) -> bool:
        """Whether a named image gets its own code (a noise input, and no ``style``)."""
        return self._drawn is not None

    @property
    def reentrant(self) -> bool:
        """Whether several threads may translate with this translator at once, each pass on
        its calling thread's torch threads (the converter runs one image per CPU thread,
        each on one): on the CPU, on every backend (the onnxruntime and openvino runners
        keep a session or stream per lane), with no dropout (its masks seed the global
        random generator) and no per-image noise code (swapped into the shared module while
        its image runs). Compiled graphs are left to one caller."""
        return (
            self.device.type == "cpu"
            and not self.options.compile
            and not self.eval_mode.dropout
            and not self.per_image_noise
        )

    def int8_record(self) -> dict[str, Any] | None:
        """The manifest's record of an int8 model's calibration: how many images, and the
        PSNR kept against fp32 on them (None unless int8)."""
        if self.int8 is None:
            return None
        return {"images": self.int8.images, "psnr": round(self.int8.psnr, 2)}

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | LoadedModel,
        options: TranslatorOptions | None = None,
        *,
        arch: str | None = None,
        norm: str | None = None,
        **changes: Any,
    ) -> Translator:
        """A translator for a generator file, run directory, bundled name, reference .pth,
        community checkpoint (spandrel's architectures: ESRGAN, SwinIR, ...) or Hugging Face
        Hub repository (``org/name[@revision]``).

        ``arch``/``norm`` override what is inferred from a reference checkpoint; ``options``
        and ``changes`` (``device``, ``precision``, ``direction``, ``size``, ``tile``, ...)
        are the constructor's.
        """
        if not isinstance(model, LoadedModel):
            from translate.models.loading import load_model

            model = load_model(model, device="cpu", arch=arch, norm=norm)
        return cls(model, options, **changes)

    @classmethod
    def from_pretrained(
        cls, repo_id: str, *, revision: str | None = None, **options: Any
    ) -> Translator:
        """A translator for a Hugging Face Hub repository's ``model.safetensors``
        (``org/name``; the ``hub`` extra), fetched into the Hub cache once and read from it
        offline (``HF_HUB_OFFLINE=1``). ``revision`` is a branch, tag or commit (also
        spelt ``org/name@revision``). Anything else :meth:`load` takes works too, and an
        existing local path wins over a repository of the same name; ``options`` are the
        constructor's.
        """
        return cls.load(repo_id if revision is None else f"{repo_id}@{revision}", **options)

    def __repr__(self) -> str:
        return (
            f"Translator({self.spec.name}, {self.direction}, {self.in_channels}->"
            f"{self.out_channels} channels, device={self.device}, size={self.size}, "
            f"tile={self.tile}, norm_stats={self.eval_mode.norm_stats}, "
            f"dropout={self.eval_mode.dropout})"
        )

    # --- public entry points -------------------------------------------------------------

    def __call__(self, image: Any) -> Any:
        """PIL -> PIL, numpy HW/HWC -> numpy, tensor CHW/NCHW -> tensor of the same kind."""
        if isinstance(image, Image.Image):
            return self._translate_pil(image)
        if isinstance(image, np.ndarray):
            return self.translate_batch([image])[0]
        if isinstance(image, torch.Tensor):
            return self.translate_tensor(image)
        raise TypeError(
            f"Translator takes a PIL image, a numpy array or a torch tensor, got {type(image)}"
        )

    def translate_batch(
        self, images: Sequence[np.ndarray], names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """Translate HW or HWC arrays (uint8, uint16 or float in ``value_range``); same-size
        ones of one dtype run together, ``batch_size`` at a time.

        An extra channel after the gray or RGB ones (LA, RGBA) is alpha: it is kept.
        ``names``, one per image: a model with a noise input draws each image's code from
        ``seed`` and its name (convert gives the path under its input folder, so a resumed
        or partial run gives an image the code a full run does); without, every image gets
        the seed's code (serve's paint tab: the look stays as the map changes).
        """
        if names is not None and len(names) != len(images):
            raise ValueError(f"names: {len(names)} for {len(images)} images; give one each")
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, arr in enumerate(images):
            _check_array(arr)
            name = names[i] if names is not None and self.per_image_noise else None
            groups[(arr.shape, arr.dtype, name)].append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(images)
        for (shape, _, name), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = np.stack([images[i] for i in chunk])
                if len(shape) == 2:
                    batch = batch[..., None]
                with self._code_of(name):
                    result = self.translate_tensor(torch.from_numpy(batch).permute(0, 3, 1, 2))
                result = result.permute(0, 2, 3, 1).numpy()
                for i, arr in zip(chunk, result, strict=True):
                    out[i] = arr[..., 0] if len(shape) == 2 and arr.shape[-1] == 1 else arr
        return out

    @torch.inference_mode()
    def translate_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """CHW or NCHW, uint8, uint16 or float in ``value_range`` -> the same layout, dtype,
        range and device."""
        if image.ndim not in (3, 4):
            raise ValueError(f"expected a CHW or NCHW tensor, got shape {tuple(image.shape)}")
        if self.spec.input_kind == "labels":
            return self._translate_labels(image)
        x = image.unsqueeze(0) if image.ndim == 3 else image
        if x.shape[1] not in (1, 2, 3, 4, self.in_channels):
            raise ValueError(
                f"tensors are CHW or NCHW with 1 (gray) or 3 (RGB) channels plus optional "
                f"alpha, or the model's {self.in_channels}; shape {tuple(image.shape)} has "
                f"{x.shape[1]} in the channel dimension (an HWC image: pass "
                "image.permute(2, 0, 1))"
            )
        x, alpha, gray = self._model_input(x)
        y = self._run(x)
        if alpha is not None and self.spec.scale != 1:
            alpha = _enlarge(alpha, self.spec.scale, 0, y.shape[-2], 0, alpha.shape[-2])
        y = self._model_output(y, alpha, gray, image.dtype).to(image.device)
        return y[0] if image.ndim == 3 else y

    def streams(self, height: int, width: int) -> bool:
        """Whether :meth:`translate_rows` cuts a ``height`` x ``width`` image into bands of
        tile rows (``tile`` set and exceeded, no fixed ``size``, an image model); else it
        translates the image whole."""
        return (
            self.tile is not None
            and self.size is None
            and self.spec.input_kind == "image"
            and (height > self.tile or width > self.tile)
        )

    @torch.inference_mode()
    def translate_rows(
        self,
        image: np.ndarray,
        write: Callable[[np.ndarray], None],
        on_tile: Callable[[int, int], None] | None = None,
        name: str | None = None,
    ) -> None:
        """Translate one HW or HWC array (as :meth:`translate_batch` takes) and hand its
        output to ``write`` a band of finished rows at a time, top to bottom: the array
        ``translate_batch`` returns, cut into rows, byte for byte.

        Where the image :meth:`streams`, one row of tiles is translated at a time and the
        float buffers hold that band only (its tiles blended as in memory), so the memory
        follows the tile and the width, not the height; else the image is one pass and one
        band. ``on_tile(done, total)`` is called after each pass. ``name``: the image's, as
        ``translate_batch``'s ``names``.
        """
        _check_array(image)
        height, width = image.shape[:2]
        if not self.streams(height, width):
            write(self.translate_batch([image], None if name is None else [name])[0])
            if on_tile is not None:
                on_tile(1, 1)
            return
        arr = image[..., None] if image.ndim == 2 else image
        s, tile, overlap = self.spec.scale, self.tile, self.overlap
        th, tw = min(tile, height), min(tile, width)
        window = self._window(th, tw)
        tops, lefts = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
        kind = _nchw(arr[:1]).dtype  # the output's, as torch names it
        seed = None
        if self.eval_mode.dropout:  # the masks' seed hashes the whole input, as in memory
            seed = dropout_seed(self._model_input(_nchw(arr))[0], self.seed)
        out = weight = None
        start = 0  # the output row the band's buffers begin at
        with self._masks(seed), self._code_of(name):
            for i, top in enumerate(tops):
                x, _, gray = self._model_input(_nchw(arr[top : top + th]))
                rows = (top + th) * s - start  # the band reaches the bottom of this tile row
                if out is None:
                    out = x.new_zeros(1, self.out_channels, rows, width * s)
                    weight = x.new_zeros(rows, width * s)
                else:
                    grow = rows - out.shape[-2]
                    out = torch.cat([out, out.new_zeros(1, self.out_channels, grow, width * s)], 2)
                    weight = torch.cat([weight, weight.new_zeros(grow, width * s)])
                for j, left in enumerate(lefts):
                    placed = (..., slice(top * s - start, rows), slice(left * s, (left + tw) * s))
                    out[placed] += self._forward(x[..., left : left + tw]) * window
                    weight[placed[1:]] += window
                    if on_tile is not None:
                        on_tile(i * len(lefts) + j + 1, len(tops) * len(lefts))
                # Rows above the next tile row get nothing more: finish and hand them on.
                end = tops[i + 1] * s if i + 1 < len(tops) else height * s
                done = end - start
                y = out[..., :done, :] / weight[:done]
                alpha = self._alpha_rows(arr, start, end)
                band = self._model_output(y, alpha, gray, kind)[0].permute(1, 2, 0)
                band = band.cpu().numpy()
                write(band[..., 0] if image.ndim == 2 and band.shape[-1] == 1 else band)
                out, weight, start = out[..., done:, :], weight[done:], end

    # --- internals -----------------------------------------------------------------------

    @torch.inference_mode()
    def _code(self, options: TranslatorOptions) -> torch.Tensor:
        """The (1, noise_dim) code every image gets: ``style`` encoded by the generator, or
        noise drawn on the CPU from a generator seeded with ``seed`` (so the same seed gives
        the same code on every device)."""
        if options.style is None:
            return self._noise(options.seed)
        try:
            style = read_image(options.style, channels=self.out_channels)
        except ImageReadError as exc:  # its message starts with the path
            raise ValueError(f"style: {exc}") from exc
        x = torch.from_numpy(style).permute(2, 0, 1)[None].to(self.device).float()
        code = self.generator.encode_style(x / 127.5 - 1).float()
        if tuple(code.shape) != (1, self.noise_dim):
            raise ValueError(
                f"style: the model's encode_style gave shape {tuple(code.shape)}, not "
                f"(1, {self.noise_dim}) (its noise_dim)"
            )
        return code

    def _noise(self, seed: int) -> torch.Tensor:
        rng = torch.Generator().manual_seed(seed)
        return torch.randn(1, self.noise_dim, generator=rng).to(self.device)

    @contextlib.contextmanager
    def _code_of(self, name: str | None) -> Iterator[None]:
        """The code of the image ``name`` (drawn from ``seed`` and the name) in place of the
        seed's while it runs; None, or a model without a drawn code: as it is."""
        if name is None or not self.per_image_noise:
            yield
            return
        seed_code = self._drawn.code
        self._drawn.code = self._noise(name_seed(self.seed, name))
        try:
            yield
        finally:
            self._drawn.code = seed_code

    def _model_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """NCHW values (uint8, uint16, float in ``value_range``) -> (the model's input in
        [-1, 1] on the device, the alpha set aside in [0, 1] or None, whether the image was
        gray). Per pixel, so a band of rows gives those rows of the whole image's input."""
        low, high = self._range_of(x.dtype)
        floats = x.is_floating_point()
        # One new tensor, the rest in place: each fresh image-sized tensor costs page faults
        # that took as long as the arithmetic (the converter's profile).
        x = x.to(self.device, torch.float32, non_blocking=True, copy=True)
        if floats:
            _check_range(x, low, high)
        x = x.sub_(low).div_(high - low).clamp_(0, 1)
        alpha = None
        # As training does: composite onto white and keep alpha aside, unless the model
        # takes every channel given (RGBA in: alpha is data).
        if x.shape[1] in (2, 4) and x.shape[1] != self.in_channels:
            x, alpha = x[:, :-1], x[:, -1:]
            x = x * alpha + (1 - alpha)
        gray = x.shape[1] == 1
        matched = _match_channels(x, self.in_channels)
        # Gray expanded to RGB is a view whose channels share memory: written anew.
        return (matched.mul_(2).sub_(1) if matched is x else matched * 2 - 1), alpha, gray

    def _model_output(
        self, y: torch.Tensor, alpha: torch.Tensor | None, gray: bool, dtype: torch.dtype
    ) -> torch.Tensor:
        """The generator's output in [-1, 1] (and the alpha at its size) -> values of
        ``dtype`` in the input's range, gray again where the input was."""
        y = y.add(1).div_(2).clamp_(0, 1)  # a new tensor, then in place (_model_input)
        if gray and self.in_channels == self.out_channels:
            y = _match_channels(y, 1)  # gray in, gray out: the replicated channels go again
        if alpha is not None:
            y = torch.cat([y, alpha], dim=1)
        low, high = self._range_of(dtype)
        y = y.mul_(high - low).add_(low)
        # Integers round half up, as PIL/torchvision pipelines do (torch.round: half to even).
        return y.to(dtype) if dtype.is_floating_point else y.add_(0.5).floor_().to(dtype)

    def _alpha_rows(self, arr: np.ndarray, start: int, end: int) -> torch.Tensor | None:
        """The alpha of output rows ``start:end`` (None without one) as the whole image's
        enlargement gives them, from the input rows they lie between."""
        if arr.shape[2] not in (2, 4) or arr.shape[2] == self.in_channels:
            return None
        s = self.spec.scale
        low, high = max(start // s - 1, 0), min(-(-end // s) + 1, arr.shape[0])
        alpha = self._model_input(_nchw(arr[low:high]))[1]
        return alpha if s == 1 else _enlarge(alpha, s, start, end, low, arr.shape[0])

    def _window(self, th: int, tw: int) -> torch.Tensor:
        """A tile's blending weight at the output's scale: linear ramps over the overlap."""
        s = self.spec.scale
        ramps = _ramp(th * s, self.overlap * s)[:, None], _ramp(tw * s, self.overlap * s)[None, :]
        return (ramps[0] * ramps[1]).to(self.device)

    @contextlib.contextmanager
    def _masks(self, seed: int | None) -> Iterator[None]:
        """Dropout masks drawn from ``seed`` (None: no dropout, nothing to seed), the global
        random state left as it was."""
        if seed is None:
            yield
            return
        devices = [] if self.device.type == "cpu" else [self.device]
        with torch.random.fork_rng(devices, device_type=self.device.type):
            torch.manual_seed(seed)
            yield

    def _translate_labels(self, image: torch.Tensor) -> torch.Tensor:
        """A label map (1HW or N1HW integer class ids) -> its uint8 translation: the ids
        one-hot encoded to ``in_channels`` (0 or 1 each, as pix2pixHD and SPADE feed them)."""
        x = image.unsqueeze(0) if image.ndim == 3 else image
        if x.shape[1] != 1 or image.is_floating_point():
            raise ValueError(
                f"this model takes a label map: one channel of integer class ids; got a "
                f"{image.dtype} tensor of shape {tuple(image.shape)}"
            )
        ids = x[:, 0].to(self.device).long()
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.in_channels:
            bad = low if low < 0 else high
            raise ValueError(
                f"label map: class id {bad} is not one of the model's {self.in_channels} "
                f"classes (ids 0 to {self.in_channels - 1})"
            )
        one_hot = F.one_hot(ids, self.in_channels).permute(0, 3, 1, 2).float()
        y = self._run(one_hot).add(1).div(2).clamp(0, 1)
        y = (y * 255 + 0.5).floor().to(torch.uint8).to(image.device)
        return y[0] if image.ndim == 3 else y

    def _range_of(self, dtype: torch.dtype) -> tuple[float, float]:
        """The values an input of ``dtype`` spans: fixed for integers, ``value_range`` else."""
        if dtype.is_floating_point:
            return self.value_range
        if dtype in _INTEGER_RANGES:
            return _INTEGER_RANGES[dtype]
        raise TypeError(f"expected uint8, uint16 or float values, got {dtype}")

    def _translate_pil(self, image: Image.Image) -> Image.Image:
        if self.spec.input_kind == "labels":
            out = self.translate_batch([label_array(image, self.in_channels)])[0]
        elif image.mode.startswith("I;16"):  # 16-bit gray stays 16-bit
            out = self.translate_batch([np.asarray(image, dtype=np.uint16)])[0]
        else:
            out = self.translate_batch([image_to_array(image, channels=None, alpha="keep")])[0]
        return Image.fromarray(out[..., 0] if out.ndim == 3 and out.shape[-1] == 1 else out)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW in [-1, 1] on the device -> the generator's output, ``spec.scale`` times the
        input's size.

        Images share a pass only where the precision's kernels give each image the same
        result whatever its batch mates (``Precision.batch_invariant``); elsewhere, and with
        seeded dropout, each image is its own pass, so an output never depends on which
        images shared its batch, and a resumed run gives the same bytes.
        """
        height, width = x.shape[-2:]
        scale = self.spec.scale
        if self.size is not None:  # one-hot labels by nearest: no fractional labels
            x = _resize(x, (self.size, self.size), nearest=self.spec.input_kind == "labels")
        shared = self.precision.batch_invariant and not self.eval_mode.dropout
        y = torch.cat(
            [self._one_pass(chunk) for chunk in x.split(self.batch_size if shared else 1)]
        )
        if self.size is not None:
            y = _resize(y, (height * scale, width * scale))
        return y

    def _one_pass(self, x: torch.Tensor) -> torch.Tensor:
        with self._masks(dropout_seed(x, self.seed) if self.eval_mode.dropout else None):
            return self._tiled(x)

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        """Tiles and their overlap are cut in input pixels; each tile's output lands, and is
        blended, at ``scale`` times its position and size."""
        height, width = x.shape[-2:]
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return self._forward(x)
        s = self.spec.scale
        th, tw = min(self.tile, height), min(self.tile, width)
        window = self._window(th, tw)
        out = x.new_zeros(x.shape[0], self.out_channels, height * s, width * s)
        weight = x.new_zeros(height * s, width * s)
        for top in _tile_starts(height, self.tile, self.overlap):
            for left in _tile_starts(width, self.tile, self.overlap):
                region = (..., slice(top, top + th), slice(left, left + tw))
                placed = (..., slice(top * s, (top + th) * s), slice(left * s, (left + tw) * s))
                out[placed] += self._forward(x[region]) * window
                weight[placed[1:]] += window
        return out / weight

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.padded(x).float()


class _WithCode(nn.Module):
    """A generator with a noise input (``forward(x, z)``) fed one fixed code for every
    image, so padding and tiles call it with the image alone, as any other generator."""

    def __init__(self, generator: nn.Module, code: torch.Tensor) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("code", code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x, z=self.code.expand(x.shape[0], -1))


def _check_code_options(generator: nn.Module, noise_dim: int, options: TranslatorOptions) -> None:
    """``ValueError`` in one line for a code the model cannot take or int8 cannot feed."""
    if options.style is not None and not (noise_dim and hasattr(generator, "encode_style")):
        raise ValueError(
            f"style {options.style}: this model has no style encoder; drop the style (a model "
            "with a noise input takes a seed instead)"
        )
    if noise_dim and options.precision == "int8":
        raise ValueError(
            f"precision int8: this model takes a noise code (noise_dim {noise_dim}), which "
            "int8 calibration does not feed; use fp32, bf16 or auto"
        )


def dropout_seed(image: torch.Tensor, seed: int) -> int:
    """The seed of an image's dropout masks: a hash of the run's ``seed`` and its pixels."""
    return _hashed(seed, image.detach().float().cpu().contiguous().numpy().tobytes())


def name_seed(seed: int, name: str) -> int:
    """The seed of a named image's noise code: a hash of the run's ``seed`` and the name."""
    return _hashed(seed, name.encode())


def _hashed(seed: int, data: bytes) -> int:
    digest = hashlib.sha256(seed.to_bytes(8, "little", signed=True))
    digest.update(data)
    return int.from_bytes(digest.digest()[:8], "little")


def _enlarge(
    x: torch.Tensor, scale: int, start: int, end: int, first: int, height: int
) -> torch.Tensor:
    """Rows ``start:end`` of NCHW ``x`` enlarged ``scale`` times, bilinear (the centres of
    F.interpolate's ``align_corners=False``, edges clamped), where ``x`` holds rows
    ``first:`` of an image ``height`` rows high. Element-wise ops only, so a band of rows
    gets the very values the whole image does (the interpolation kernel's vector lanes
    follow the tensor's size, and with them the last bit)."""

    def taps(out: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = ((out.double() + 0.5) / scale - 0.5).clamp(min=0)
        below = src.floor().long().clamp(max=size - 1)
        return below, (below + 1).clamp(max=size - 1), (src - below).float()

    top, bottom, dy = taps(torch.arange(start, end, device=x.device), height)
    rows = x[..., top - first, :] * (1 - dy)[:, None] + x[..., bottom - first, :] * dy[:, None]
    left, right, dx = taps(torch.arange(x.shape[-1] * scale, device=x.device), x.shape[-1])
    return rows[..., left] * (1 - dx) + rows[..., right] * dx


def _nchw(arr: np.ndarray) -> torch.Tensor:
    """An HWC array as a 1CHW tensor sharing its memory."""
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]


def _resize(x: torch.Tensor, size: tuple[int, int], nearest: bool = False) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if nearest:
        return F.interpolate(x, size=size, mode="nearest-exact")
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


_INTEGER_RANGES = {torch.uint8: (0.0, 255.0), torch.uint16: (0.0, 65535.0)}
_NUMPY_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)


def _check_array(arr: np.ndarray) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype not in _NUMPY_DTYPES:
        got = arr.dtype if isinstance(arr, np.ndarray) else type(arr)
        raise TypeError(f"expected a uint8, uint16 or float numpy array, got {got}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an HW or HWC array, got shape {arr.shape}")


def _check_range(x: torch.Tensor, low: float, high: float) -> None:
    """Float input must lie in ``[low, high]`` (with rounding slack): a wrong range would
    give a plausible-looking but wrong result."""
    found_low, found_high = (v.item() for v in torch.aminmax(x))
    slack = 1e-3 * (high - low)
    if found_low >= low - slack and found_high <= high + slack:
        return
    if math.isnan(found_low) or math.isnan(found_high):
        raise ValueError("the input holds NaN values")
    hint = ""
    for candidate in ((0, 1), (-1, 1), (0, 255)):
        if candidate[0] - slack <= found_low and found_high <= candidate[1] + slack:
            hint = f"; pass value_range={candidate} if that is its range"
            break
    raise ValueError(
        f"input values span [{found_low:.4g}, {found_high:.4g}], outside the expected "
        f"value_range ({low:g}, {high:g}){hint}"
    )


__all__ = ["PRECISIONS", "Translator", "resolve_device"]
