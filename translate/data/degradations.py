"""Synthetic degradations: the low-resolution inputs a super-resolution trainer makes from
high-resolution images alone.

A :class:`Degradation` maps a batch of HR images ``(B, C, H, W)`` in [0, 1] to LR images
``(B, C, H // scale, W // scale)`` in [0, 1] on the same device. Every random choice for
item ``i`` comes from a ``torch.Generator`` seeded with ``seeds[i]``, so an item's LR image
depends only on its HR image and its seed, never on the batch it is in or on the global
RNG: a resumed run sees the same inputs as an uninterrupted one.

``DEGRADATIONS`` maps names to classes; :func:`build_degradation` builds one by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.core.options import check_options

__all__ = [
    "DEGRADATIONS", "KERNELS", "Bicubic", "Degradation", "RealESRGAN", "add_gaussian_noise",
    "add_poisson_noise", "bicubic_upscale", "blur_kernel", "build_degradation",
    "degradation_class", "imresize_matrix", "jpeg", "sinc_kernel",
]  # fmt: skip


class Degradation(nn.Module):
    """HR batch in [0, 1] and one int64 seed per item -> LR batch, ``scale`` times smaller."""

    scale: int
    defaults: ClassVar[dict[str, Any]] = {}  # the options a subclass takes, with their defaults

    def __init__(self, scale: int, **options: Any) -> None:
        super().__init__()
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale: expected an integer >= 1, got {scale!r}")
        check_options(options, self.defaults, f"degradation {self.name!r}")
        self.scale = scale
        self.options = {**self.defaults, **options}

    @property
    def name(self) -> str:
        """The name this class is registered under in ``DEGRADATIONS``."""
        return next(k for k, v in DEGRADATIONS.items() if v is type(self))

    def check_input(self, hr: Tensor, seeds: Tensor) -> None:
        """Refuse a batch this contract does not cover, naming what is wrong."""
        if hr.ndim != 4:
            raise ValueError(f"hr: expected a (B, C, H, W) batch, got shape {tuple(hr.shape)}")
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"hr: {h}x{w} is not a multiple of the scale {self.scale}")
        if seeds.shape != (hr.shape[0],):
            raise ValueError(
                f"seeds: expected one per item, shape ({hr.shape[0]},), got {tuple(seeds.shape)}"
            )

    def forward(self, hr: Tensor, seeds: Tensor) -> Tensor:
        """The LR batch of ``hr``, item ``i`` degraded as ``seeds[i]`` says."""
        self.check_input(hr, seeds)
        # Full precision even inside a trainer's autocast region: the LR inputs of a bf16
        # run are the same as those of an fp32 one.
        with torch.autocast(hr.device.type, enabled=False):
            return self.degrade(hr, seeds)

    def degrade(self, hr: Tensor, seeds: Tensor) -> Tensor:
        """What a subclass does, on a batch :meth:`check_input` accepted."""
        raise NotImplementedError


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and PIL's bicubic)."""
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    near = 1.5 * ax3 - 2.5 * ax2 + 1
    far = -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def imresize_matrix(size: int, out_size: int, device: torch.device | None = None) -> Tensor:
    """The ``(out_size, size)`` matrix of MATLAB ``imresize(..., 'bicubic')`` along one axis.

    When shrinking, the kernel is stretched by the factor (antialiasing) and each row's
    weights are normalised; taps outside the image are mirrored back in (MATLAB's
    symmetric border), which is where PIL and ``F.interpolate(antialias=True)`` differ.
    """
    factor = out_size / size
    stretch = min(factor, 1.0)  # only a downscale widens the kernel
    width = 4.0 / stretch
    # Output pixel j (1-based) is centred on input coordinate u (1-based), as in MATLAB.
    x = torch.arange(1, out_size + 1, dtype=torch.float64, device=device)
    u = x / factor + 0.5 * (1 - 1 / factor)
    left = torch.floor(u - width / 2)
    taps = left[:, None] + torch.arange(math.ceil(width) + 2, device=device)[None, :]
    weights = stretch * _cubic(stretch * (u[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Mirror out-of-range taps: index k (0-based) reflects with the edge pixel repeated.
    k = (taps - 1).long() % (2 * size)
    k = torch.where(k < size, k, 2 * size - 1 - k)
    matrix = torch.zeros(out_size, size, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, k, weights)
    return matrix


def bicubic_upscale(images: Tensor, scale: int) -> Tensor:
    """NCHW images ``scale`` times larger by MATLAB's bicubic ``imresize`` (the SR papers'
    baseline: training's first evaluation and ``translate evaluate`` score it), in [-1, 1]."""
    h, w = images.shape[-2:]
    rows = imresize_matrix(h, h * scale, images.device).float()
    cols = imresize_matrix(w, w * scale, images.device).float()
    # in fp32 whatever the run's autocast: a baseline rounded to bf16 would score below itself
    with torch.autocast(images.device.type, enabled=False):
        return (rows @ images.float() @ cols.T).clamp(-1, 1)


class Bicubic(Degradation):
    """Clean bicubic downscaling, exactly MATLAB's ``imresize(hr, 1/scale, 'bicubic')``
    (antialiased; the LR inputs of the SR benchmarks and of BasicSR's ``imresize``), on
    float values clamped to [0, 1] instead of rounded to uint8. Takes no options; the seeds
    are unused."""

    def degrade(self, hr: Tensor, seeds: Tensor) -> Tensor:
        h, w = hr.shape[-2:]
        rows = imresize_matrix(h, h // self.scale, hr.device)
        cols = imresize_matrix(w, w // self.scale, hr.device)
        # Separable: rows @ image @ cols^T; weights built in float64, applied in float32 at
        # least, so half-precision images lose nothing more than their own rounding.
        dtype = torch.float32 if hr.dtype in (torch.float16, torch.bfloat16) else hr.dtype
        lr = rows.to(dtype) @ hr.to(dtype) @ cols.to(dtype).T
        return lr.clamp(0, 1).to(hr.dtype)


KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")
MIN_KERNEL = 7  # Real-ESRGAN draws odd kernel sizes from 7 up to blur_kernel_size


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (y, x) pixel offsets from the centre of a ``size`` x ``size`` kernel.

    Kernels are built with NumPy: a few hundred values, where torch's float64 exp and sqrt
    took tens of milliseconds each (denormals, thread start-up) and dominated a batch.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    r = np.arange(size, dtype=np.float64) - size // 2
    y, x = np.meshgrid(r, r, indexing="ij")
    return y, x


def _normalised(k: np.ndarray) -> Tensor:
    return torch.from_numpy(k / k.sum()).float()


def blur_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float = 0.0, family: str = "gaussian",
    beta: float = 1.0,
) -> Tensor:  # fmt: skip
    """A normalised ``(size, size)`` blur kernel over the quadratic form ``d = x^T S^-1 x``,
    ``S`` the covariance with standard deviations ``sigma_x``, ``sigma_y`` along axes rotated by
    ``theta`` (radians, from the x axis towards +y, i.e. down the rows).

    ``family``: ``gaussian`` ``exp(-d / 2)``; ``generalized`` ``exp(-d**beta / 2)`` (flatter
    top and sharper fall for beta > 1, heavier tails below); ``plateau`` ``1 / (1 + d**beta)``.
    """
    y, x = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    # The offsets in the kernel's own (rotated) axes, where S is diagonal.
    u, v = c * x + s * y, -s * x + c * y
    d = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    if family == "gaussian":
        k = np.exp(-0.5 * d)
    elif family == "generalized":
        k = np.exp(-0.5 * d**beta)
    elif family == "plateau":
        k = 1 / (d**beta + 1)
    else:
        raise ValueError(f"unknown kernel family {family!r}; choose gaussian, generalized, plateau")
    return _normalised(k)


def sinc_kernel(size: int, cutoff: float, pad_to: int = 0) -> Tensor:
    """The normalised ``(size, size)`` ideal circular low-pass filter (a 2-D sinc: the jinc
    ``cutoff * J1(cutoff * r) / (2 pi r)``) with ``cutoff`` in radians per pixel, zero-padded
    to ``pad_to`` when larger: the ringing and overshoot artifacts of real photos."""
    y, x = _grid(size)
    rho = np.sqrt(x**2 + y**2)
    safe = np.where(rho > 0, rho, 1.0)  # J1(c r) / r -> c / 2 at r = 0
    j1 = torch.special.bessel_j1(torch.from_numpy(cutoff * safe)).numpy()
    k = np.where(rho > 0, cutoff * j1 / (2 * math.pi * safe), cutoff**2 / (4 * math.pi))
    return _pad_kernel(_normalised(k), pad_to)


def _pad_kernel(kernel: Tensor, size: int) -> Tensor:
    pad = max(0, (size - kernel.shape[-1]) // 2)
    return F.pad(kernel, (pad, pad, pad, pad))


def _blur(x: Tensor, kernels: Tensor) -> Tensor:
    """Each item convolved with its own kernel (``(B, k, k)``), mirrored at the border as
    Real-ESRGAN does; an image no larger than the kernel's radius repeats its edge instead
    (a mirror needs more pixels than it reflects)."""
    # kornia (half a second to import) only for the degradations that blur, add Poisson
    # noise or JPEG-compress: bicubic alone does without it
    from kornia.filters import filter2d

    small = min(x.shape[-2:]) <= kernels.shape[-1] // 2
    return filter2d(
        x, kernels.to(x.device, x.dtype), border_type="replicate" if small else "reflect"
    )


def add_gaussian_noise(img: Tensor, sigma: float, gray: bool, generator: torch.Generator) -> Tensor:
    """``img`` plus zero-mean Gaussian noise of standard deviation ``sigma`` (in [0, 1] units),
    one draw for all channels when ``gray``, clamped to [0, 1]."""
    shape = (img.shape[0], 1, *img.shape[2:]) if gray else img.shape
    noise = torch.randn(shape, generator=generator, device=img.device, dtype=img.dtype) * sigma
    return (img + noise).clamp(0, 1)


def _poisson_noise(img: Tensor, generator: torch.Generator) -> Tensor:
    """Shot noise of ``img`` quantised to 8 bits, as a photon count with as many levels as the
    image uses (rounded up to a power of two): a flat image is noisier than a detailed one."""
    img = (img * 255).round().clamp(0, 255) / 255
    levels = 2 ** math.ceil(math.log2(max(1, torch.unique(img).numel())))
    return torch.poisson(img * levels, generator=generator) / levels - img


def add_poisson_noise(img: Tensor, scale: float, gray: bool, generator: torch.Generator) -> Tensor:
    """``img`` (one item) plus ``scale`` times its Poisson noise, the noise of its luminance
    for all channels when ``gray``, clamped to [0, 1]."""
    from kornia.color import rgb_to_grayscale  # as in _blur: kornia only where it is used

    source = rgb_to_grayscale(img) if gray and img.shape[1] == 3 else img
    return (img + scale * _poisson_noise(source, generator)).clamp(0, 1)


def jpeg(img: Tensor, quality: Tensor) -> Tensor:
    """JPEG-compress and decode each item at its ``quality`` (``(B,)``, 1-100) with kornia's
    differentiable codec (4:2:0 chroma, standard tables; a soft rounding, so it stays within
    about 1.5 grey levels mean absolute difference of libjpeg's output). A one-channel image
    is coded as grey RGB."""
    from kornia.enhance import jpeg_codec_differentiable  # as in _blur

    img, quality = img.clamp(0, 1), quality.to(img.device, img.dtype)
    if img.shape[1] == 1:
        return jpeg_codec_differentiable(img.expand(-1, 3, -1, -1), quality).mean(1, keepdim=True)
    return jpeg_codec_differentiable(img, quality)


class _Draws:
    """The random draws of one item, from its own generator (on the CPU: a handful of
    scalars; the noise pixels come from a device generator seeded from it)."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def uniform(self, low: float, high: float) -> float:
        u = torch.rand((), generator=self.generator, dtype=torch.float64).item()
        return low + (high - low) * u

    def chance(self, p: float) -> bool:
        return self.uniform(0, 1) < p

    def choice(self, options: Sequence[Any], weights: Sequence[float] | None = None) -> Any:
        w = torch.tensor(weights if weights is not None else [1.0] * len(options))
        return options[int(torch.multinomial(w.double(), 1, generator=self.generator))]

    def seed(self) -> int:
        return int(torch.randint(2**62, (), generator=self.generator))


@dataclass(frozen=True)
class Stage:
    """One order of the pipeline: blur, random resize, noise, JPEG (Real-ESRGAN's options of
    that order, without the ``2`` suffix of the second)."""

    kernel_list: tuple[str, ...]
    kernel_prob: tuple[float, ...]
    sinc_prob: float
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    resize_prob: tuple[float, float, float]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_range: tuple[float, float]
    poisson_scale_range: tuple[float, float]
    gray_noise_prob: float
    jpeg_range: tuple[float, float]

    def kernel(self, d: _Draws, max_size: int) -> Tensor:
        """A random blur kernel of a random odd size, zero-padded to ``max_size``."""
        size = d.choice(range(MIN_KERNEL, max_size + 1, 2))
        if d.chance(self.sinc_prob):
            # Real-ESRGAN's cutoffs for kernels of 7-21 px: smaller ones cannot go as low.
            low = math.pi / 3 if size < 13 else math.pi / 5
            return sinc_kernel(size, d.uniform(low, math.pi), pad_to=max_size)
        name = d.choice(self.kernel_list, self.kernel_prob)
        sigma_x = d.uniform(*self.blur_sigma)
        sigma_y, theta = sigma_x, 0.0
        if name.endswith("aniso"):
            sigma_y, theta = d.uniform(*self.blur_sigma), d.uniform(-math.pi, math.pi)
        family, beta = "gaussian", 1.0
        if name.startswith(("generalized", "plateau")):
            family = name.split("_")[0]
            low, high = self.betag_range if family == "generalized" else self.betap_range
            # Half the time below 1 (heavier tails), half above (flatter top), as upstream.
            beta = d.uniform(low, 1) if d.chance(0.5) else d.uniform(1, high)
        kernel = blur_kernel(size, sigma_x, sigma_y, theta, family, beta)
        return _pad_kernel(kernel, max_size)

    def resize(self, d: _Draws) -> tuple[float, str]:
        """A random scale factor (up, down or kept, with ``resize_prob``) and mode."""
        way = d.choice(("up", "down", "keep"), self.resize_prob)
        factor = {"up": lambda: d.uniform(1, self.resize_range[1]),
                  "down": lambda: d.uniform(self.resize_range[0], 1),
                  "keep": lambda: 1.0}[way]()  # fmt: skip
        return factor, d.choice(RESIZE_MODES)

    def noise(self, d: _Draws) -> tuple[str, float, bool]:
        """(kind, amount, gray): Gaussian with ``gaussian_noise_prob`` (sigma in [0, 1] units),
        else Poisson (its scale)."""
        if d.chance(self.gaussian_noise_prob):
            kind, amount = "gaussian", d.uniform(*self.noise_range) / 255
        else:
            kind, amount = "poisson", d.uniform(*self.poisson_scale_range)
        return kind, amount, d.chance(self.gray_noise_prob)


def _range(key: str, value: Any, low: float = 0.0) -> tuple[float, float]:
    if (
        not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not low <= value[0] <= value[1]
    ):  # fmt: skip
        raise ValueError(f"{key}: expected [low, high] with {low:g} <= low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def _prob(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{key}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def _weights(key: str, value: Any, n: int) -> tuple[float, ...]:
    if (
        not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n
        or not all(isinstance(v, (int, float)) and v >= 0 for v in value) or sum(value) <= 0
    ):  # fmt: skip
        raise ValueError(f"{key}: expected {n} non-negative weights, not all 0, got {value!r}")
    return tuple(float(v) for v in value)


def _stage(suffix: str, options: dict[str, Any]) -> Stage:
    """The :class:`Stage` of the options named with ``suffix`` ('' or '2'), checked."""

    def get(name: str) -> tuple[str, Any]:
        key = name + suffix
        return key, options[key]

    key, kernels = get("kernel_list")
    if isinstance(kernels, str) or not kernels or set(kernels) - set(KERNELS):
        raise ValueError(f"{key}: expected a list of {', '.join(KERNELS)}, got {kernels!r}")
    return Stage(
        kernel_list=tuple(kernels),
        kernel_prob=_weights(*get("kernel_prob"), len(kernels)),
        sinc_prob=_prob(*get("sinc_prob")),
        blur_sigma=_range(*get("blur_sigma"), low=1e-3),
        betag_range=_range(*get("betag_range"), low=1e-3),
        betap_range=_range(*get("betap_range"), low=1e-3),
        resize_prob=_weights(*get("resize_prob"), 3),
        resize_range=_range(*get("resize_range"), low=1e-3),
        gaussian_noise_prob=_prob(*get("gaussian_noise_prob")),
        noise_range=_range(*get("noise_range")),
        poisson_scale_range=_range(*get("poisson_scale_range")),
        gray_noise_prob=_prob(*get("gray_noise_prob")),
        jpeg_range=_range(*get("jpeg_range"), low=1),
    )


# Real-ESRGAN's published options (train_realesrgan_x4plus.yml) of the first order, and where
# the second order differs (its options end in "2": blur_sigma2 ...).
FIRST_ORDER: dict[str, Any] = {
    "kernel_list": KERNELS,
    "kernel_prob": (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    "sinc_prob": 0.1,
    "blur_sigma": (0.2, 3.0),
    "betag_range": (0.5, 4.0),
    "betap_range": (1.0, 2.0),
    "resize_prob": (0.2, 0.7, 0.1),  # up, down, keep
    "resize_range": (0.15, 1.5),
    "gaussian_noise_prob": 0.5,
    "noise_range": (1.0, 30.0),
    "poisson_scale_range": (0.05, 3.0),
    "gray_noise_prob": 0.4,
    "jpeg_range": (30.0, 95.0),
}
SECOND_ORDER: dict[str, Any] = {
    **FIRST_ORDER,
    "blur_sigma": (0.2, 1.5),
    "resize_prob": (0.3, 0.4, 0.3),
    "resize_range": (0.3, 1.2),
    "noise_range": (1.0, 25.0),
    "poisson_scale_range": (0.05, 2.5),
}


@dataclass(frozen=True)
class _Plan:
    """Every random choice for one item, drawn before any pixel is touched."""

    kernel1: Tensor
    resize1: tuple[float, str]
    noise1: tuple[str, float, bool]
    quality1: float
    kernel2: Tensor | None
    resize2: tuple[float, str]
    noise2: tuple[str, float, bool]
    jpeg_first: bool  # the final JPEG before [resize to the target + sinc], else after
    final_mode: str
    sinc: Tensor
    quality2: float
    noise_seed: int


class RealESRGAN(Degradation):
    """Real-ESRGAN's second-order degradation (Wang et al. 2021, ``train_realesrgan_x4plus.yml``):
    blur, random resize, Gaussian or Poisson noise (colour or grey) and JPEG, twice, then a
    resize to the target size with an optional sinc filter, and a last JPEG before or after
    it; the result rounded to 8 bits.

    Options and defaults are the published ones, named as in that file; the second order's
    end in ``2``. Kernel sizes are odd, from 7 to ``blur_kernel_size``.

    Unlike upstream, which draws one resize (and noise kind) per batch, every choice is per
    item, from a generator seeded by the item's seed, so an item's LR image does not depend
    on its batch. Resized items differ in size, so the steps between the first resize and the
    resize to the target run item by item; the first blur and the final sinc and JPEG run on
    the batch. The unsharp-masked target Real-ESRGAN trains against is the trainer's choice.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "blur_kernel_size": 21,
        **FIRST_ORDER,
        "second_blur_prob": 0.8,
        **{f"{k}2": v for k, v in SECOND_ORDER.items()},
        "final_sinc_prob": 0.8,
    }

    def __init__(self, scale: int, **options: Any) -> None:
        super().__init__(scale, **options)
        size = self.options["blur_kernel_size"]
        if not isinstance(size, int) or size < MIN_KERNEL or size % 2 == 0:
            raise ValueError(f"blur_kernel_size: expected an odd integer >= 7, got {size!r}")
        self.kernel_size = size
        self.first, self.second = _stage("", self.options), _stage("2", self.options)
        self.second_blur_prob = _prob("second_blur_prob", self.options["second_blur_prob"])
        self.final_sinc_prob = _prob("final_sinc_prob", self.options["final_sinc_prob"])

    def plan(self, seed: int) -> _Plan:
        """Every random choice for the item seeded with ``seed``, in a fixed order."""
        d, first, second = _Draws(seed), self.first, self.second
        kernel1, resize1, noise1 = (
            first.kernel(d, self.kernel_size),
            first.resize(d),
            first.noise(d),
        )
        quality1 = d.uniform(*first.jpeg_range)
        blur2 = d.chance(self.second_blur_prob)
        kernel2 = second.kernel(d, self.kernel_size)  # drawn either way: later draws stay put
        resize2, noise2 = second.resize(d), second.noise(d)
        jpeg_first, final_mode = d.chance(0.5), d.choice(RESIZE_MODES)
        if d.chance(self.final_sinc_prob):
            size = d.choice(range(MIN_KERNEL, self.kernel_size + 1, 2))
            sinc = sinc_kernel(size, d.uniform(math.pi / 3, math.pi), pad_to=self.kernel_size)
        else:
            sinc = _pad_kernel(torch.ones(1, 1), self.kernel_size)  # identity
        return _Plan(
            kernel1, resize1, noise1, quality1, kernel2 if blur2 else None, resize2, noise2,
            jpeg_first, final_mode, sinc, d.uniform(*second.jpeg_range), d.seed(),
        )  # fmt: skip

    def degrade(self, hr: Tensor, seeds: Tensor) -> Tensor:
        if hr.shape[1] not in (1, 3):
            raise ValueError(
                f"hr: the realesrgan degradation takes 1 or 3 channels, got {hr.shape[1]}"
            )
        plans = [self.plan(int(s)) for s in seeds.tolist()]
        h, w = hr.shape[-2:]
        target = (h // self.scale, w // self.scale)
        x = _blur(hr.float(), torch.stack([p.kernel1 for p in plans]))
        x = torch.cat([self._item(x[i : i + 1], p, target) for i, p in enumerate(plans)])
        x = _blur(x, torch.stack([p.sinc for p in plans]))
        late = [i for i, p in enumerate(plans) if not p.jpeg_first]
        if late:
            x[late] = jpeg(x[late], torch.tensor([plans[i].quality2 for i in late]))
        return ((x * 255).round().clamp(0, 255) / 255).to(hr.dtype)

    def _item(self, x: Tensor, p: _Plan, target: tuple[int, int]) -> Tensor:
        """One item from the first blur to the resize to ``target`` (its sizes are its own)."""
        generator = torch.Generator(device=x.device).manual_seed(p.noise_seed)
        h, w = x.shape[-2:]
        x = _resize(x, (h * p.resize1[0], w * p.resize1[0]), p.resize1[1])
        x = _noise(x, p.noise1, generator)
        x = jpeg(x, torch.tensor([p.quality1]))
        if p.kernel2 is not None:
            x = _blur(x, p.kernel2[None])
        factor = p.resize2[0] / self.scale  # relative to the original size, as upstream
        x = _resize(x, (h * factor, w * factor), p.resize2[1])
        x = _noise(x, p.noise2, generator)
        if p.jpeg_first:
            x = jpeg(x, torch.tensor([p.quality2]))
        return _resize(x, target, p.final_mode)


def _resize(x: Tensor, size: tuple[float, float], mode: str) -> Tensor:
    """``x`` resized to ``size`` (rounded down, at least 1 pixel) with ``mode``."""
    out = (max(1, int(size[0])), max(1, int(size[1])))
    corners = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=out, mode=mode, **corners)


def _noise(x: Tensor, noise: tuple[str, float, bool], generator: torch.Generator) -> Tensor:
    kind, amount, gray = noise
    add = add_gaussian_noise if kind == "gaussian" else add_poisson_noise
    return add(x, amount, gray, generator)


DEGRADATIONS: dict[str, type[Degradation]] = {"bicubic": Bicubic, "realesrgan": RealESRGAN}


def degradation_class(name: str) -> type[Degradation]:
    """The class registered as ``name``; an unknown name raises ``ValueError`` listing them."""
    if name not in DEGRADATIONS:
        raise ValueError(
            f"unknown degradation {name!r}; valid names: {', '.join(sorted(DEGRADATIONS))}"
        )
    return DEGRADATIONS[name]


def build_degradation(name: str, scale: int, **options: Any) -> Degradation:
    """The degradation ``name`` for an x``scale`` model; ``options`` override its
    ``defaults``. An unknown name or option raises ``ValueError`` naming it and the valid ones.
    """
    return degradation_class(name)(scale, **options)
