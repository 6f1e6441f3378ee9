"""Image quality and diversity measures on tensors in [-1, 1] (NCHW)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import astuple, dataclass

import torch
import torch.nn.functional as F


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def l1(output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error on the [-1, 1] scale the networks work in."""
    return F.l1_loss(output.float(), target.float()).item()


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, with images mapped to [0, 1]; averaged per image."""
    mse = (_to_unit(output) - _to_unit(target)).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().item()


def _ssim(x: torch.Tensor, y: torch.Tensor, **options: object) -> float:
    """kornia's SSIM, its Gaussian 11x11 window cut to an odd side no larger than the image."""
    # kornia (half a second to import) once something is scored, not when training starts
    from kornia.metrics import ssim

    side = min(x.shape[-2:])
    return ssim(x, y, min(11, side if side % 2 else side - 1), **options).mean().item()


def ssim(output: torch.Tensor, target: torch.Tensor) -> float:
    """Structural similarity (Gaussian 11x11 window) with images mapped to [0, 1]."""
    return _ssim(_to_unit(output), _to_unit(target))


# A distance between two NCHW batches, image by image: (N,) distances (LPIPS, say).
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PAIR_BATCH = 32  # pairs a distance measures at a time: memory stays that of 64 images


def diversity(images: torch.Tensor, distance: Distance | None = None) -> float:
    """Mean pairwise distance between the images of a batch (0 when all are equal): L1 per
    pixel on the [-1, 1] scale, or ``distance`` (symmetric) over each pair.

    Compared against the same score of the real targets, it flags mode collapse.
    """
    n = images.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least two images")
    if distance is None:  # all pairs in one cdist: no copy of each pair's images
        flat = images.float().flatten(1)
        dists = torch.cdist(flat, flat, p=1) / flat.shape[1]
        return (dists.sum() / (n * (n - 1))).item()
    pairs = torch.combinations(torch.arange(n), 2)
    found = [distance(images[p[:, 0]], images[p[:, 1]]) for p in pairs.split(PAIR_BATCH)]
    return torch.cat(found).float().mean().item()


# ITU-R BT.601 luma of [0, 1] RGB, as BasicSR's ``rgb2ycbcr(y_only=True)``: Y in [16, 235]/255.
_BT601 = (65.481, 128.553, 24.966)


def luma(images: torch.Tensor) -> torch.Tensor:
    """The BT.601 Y channel (N1HW, in 0-255 levels) of NCHW images in [-1, 1], each image
    first rounded to 8 bits as the saved files the SR papers score; gray images are their
    own Y in the same [16, 235] range."""
    unit = (_to_unit(images) * 255).round() / 255
    if unit.shape[1] == 1:
        return 16 + 219 * unit
    weights = unit.new_tensor(_BT601).view(1, 3, 1, 1)
    return 16 + (unit[:, :3] * weights).sum(1, keepdim=True)


def _crop(images: torch.Tensor, border: int) -> torch.Tensor:
    return images[..., border : images.shape[-2] - border, border : images.shape[-1] - border]


def psnr_y(output: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    """PSNR in dB of the Y channels, ``border`` pixels cropped off each side (the SR papers'
    convention: ``border`` = the scale), averaged per image."""
    y_out, y_target = _crop(luma(output), border), _crop(luma(target), border)
    mse = (y_out - y_target).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255**2 / mse.clamp_min(1e-10))).mean().item()


def ssim_y(output: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    """SSIM of the Y channels (11x11 Gaussian window, sigma 1.5, valid positions only, as
    BasicSR computes it), ``border`` pixels cropped off each side."""
    y_out, y_target = _crop(luma(output), border), _crop(luma(target), border)
    return _ssim(y_out, y_target, max_val=255.0, padding="valid")


# Smooth cells change by SMOOTH_LEVELS (from, to) grey levels of 8-bit Y from their
# neighbours: a sky, a blurred background, where a grid shows most. Below the floor, 8-bit
# rounding alone makes steps, and a symmetric interpolator (bicubic) puts them midway
# between LR pixels, on the block edges: flatter cells would score bicubic 3-4x, not the
# 1.2x it scores here.
SMOOTH_LEVELS = (2.0, 8.0)


def smooth_areas(
    reference: torch.Tensor, block: int = 4, levels: tuple[float, float] = SMOOTH_LEVELS
) -> torch.Tensor:
    """The smooth pixels of ``reference`` (CHW or 1CHW in [-1, 1]) as an HxW bool mask.

    The Y channel (:func:`luma`, 0-255) is averaged over ``block`` x ``block`` cells (for an
    SR image: one cell per LR pixel, so a grid inside the cells averages out); a cell's
    change is its largest absolute difference from its four neighbours. Cells whose change
    lies within ``levels`` (grey levels, both ends included) are smooth; pixels past the
    last whole cell are not.
    """
    y = luma(reference.reshape(1, *reference.shape[-3:]))
    cells = F.avg_pool2d(y, block)
    if cells.numel() == 0:
        raise ValueError(f"a {y.shape[-1]}x{y.shape[-2]} image has no whole {block}x{block} block")
    padded = F.pad(cells, (1, 1, 1, 1), mode="replicate")
    neighbours = (padded[..., :-2, 1:-1], padded[..., 2:, 1:-1], padded[..., 1:-1, :-2],
                  padded[..., 1:-1, 2:])  # fmt: skip
    change = torch.stack([(cells - n).abs() for n in neighbours]).amax(0)[0, 0]
    smooth = (change >= levels[0]) & (change <= levels[1])
    mask = torch.zeros(y.shape[-2:], dtype=torch.bool)
    smooth = smooth.repeat_interleave(block, 0).repeat_interleave(block, 1)
    mask[: smooth.shape[0], : smooth.shape[1]] = smooth
    return mask


@dataclass
class BlockEdges:
    """Sums of the absolute change of Y between neighbouring pixels of smooth areas: of the
    pairs across block edges and of the pairs within blocks (:func:`block_edges`). Sums of
    several images add up (``+``), so a set of images has one ratio, pooled over its pairs."""

    across: float = 0.0
    across_pairs: int = 0
    within: float = 0.0
    within_pairs: int = 0

    def __add__(self, other: BlockEdges) -> BlockEdges:
        return BlockEdges(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def ratio(self) -> float:
        """The mean change across edges over the mean within blocks: inf when nothing
        changes within blocks but something across, NaN without pairs or without change."""
        if not self.across_pairs or not self.within_pairs:
            return math.nan
        across, within = self.across / self.across_pairs, self.within / self.within_pairs
        if within == 0:
            return math.inf if across > 0 else math.nan
        return across / within


def block_edges(
    image: torch.Tensor, block: int = 4, smooth_mask: torch.Tensor | None = None
) -> BlockEdges:
    """The :class:`BlockEdges` sums of ``image`` (CHW or 1CHW in [-1, 1], rounded to 8 bits
    first, as the saved files that show a grid are): pairs of neighbouring pixels both in
    ``smooth_mask`` (HxW bool; default :func:`smooth_areas` of the image itself), across the
    edges of ``block`` x ``block`` blocks (between rows or columns ``k * block - 1`` and
    ``k * block``) or within them."""
    y = luma(image.reshape(1, *image.shape[-3:]))[0, 0]
    mask = smooth_areas(image, block) if smooth_mask is None else smooth_mask.to(torch.bool)
    if mask.shape != y.shape:
        raise ValueError(f"smooth_mask is {tuple(mask.shape)}, the image {tuple(y.shape)}")
    sums = BlockEdges()
    for dim in (0, 1):  # pairs one above the other, then side by side
        n = y.shape[dim]
        first, second = (torch.arange(n - 1), torch.arange(1, n))
        diff = (y.index_select(dim, second) - y.index_select(dim, first)).abs()
        both = mask.index_select(dim, second) & mask.index_select(dim, first)
        edge = (second % block == 0).view((-1, 1) if dim == 0 else (1, -1)).expand_as(both)
        across, within = both & edge, both & ~edge
        sums += BlockEdges(diff[across].sum().item(), int(across.sum()),
                           diff[within].sum().item(), int(within.sum()))  # fmt: skip
    return sums


def block_edge_ratio(
    image: torch.Tensor, block: int = 4, smooth_mask: torch.Tensor | None = None
) -> float:
    """How strongly ``image`` (CHW or 1CHW in [-1, 1]) shows a ``block``-pixel grid: the mean
    absolute difference of the Y channel between neighbouring pixels across block edges
    (columns and rows at multiples of ``block``) over the mean within blocks, counting only
    pairs whose two pixels are in ``smooth_mask`` (HxW bool; default
    :func:`smooth_areas` of the image itself; to compare models, pass the mask of their
    common HR target). :func:`block_edges` has the sums.

    About 1 for an image without a grid (PIL's bicubic x4 on real photos: 1.2); an x4
    upscaler that repeats its LR pixels scores far above (a plain nearest-neighbour upscale:
    infinite, as nothing changes within its blocks). Scaling the brightness, the mask kept,
    leaves it unchanged up to 8-bit rounding. NaN when the mask holds no pair or the image
    is flat there.
    """
    return block_edges(image, block, smooth_mask).ratio()


class PairedScores:
    """Mean per-image L1, PSNR and SSIM of outputs against targets (NCHW in [-1, 1]),
    accumulated batch by batch (validation during training, ``translate evaluate``)."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: dict[str, float] = {}

    def scores(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """The batch's mean of each score."""
        return {
            "l1": l1(output, target),
            "psnr": psnr(output, target),
            "ssim": ssim(output, target),
        }

    def add(
        self, output: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> None:
        """Score a batch of outputs against their targets (NCHW in [-1, 1]); ``labels``: a
        label model's input ids (NHW), which only :class:`LabelScores` reads."""
        # The images of a batch share one size, so a batch mean is the mean of per-image scores.
        n = output.shape[0]
        for key, value in self.scores(output, target).items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.count += n

    def result(self) -> dict[str, float]:
        """The mean ``l1``, ``psnr`` and ``ssim`` over every image added."""
        if self.count == 0:
            raise ValueError("no image pairs were scored")
        return {k: v / self.count for k, v in self.sums.items()}


class SRScores(PairedScores):
    """Super-resolution's scores: L1, and PSNR and SSIM on the Y channel with ``border``
    pixels (the scale) cropped off each side, as BasicSR's ``test_y_channel`` /
    ``crop_border`` (``psnr_y``, ``ssim_y``), and the grid an upscaler draws on smooth areas:
    ``block_edge_ratio`` with blocks of ``border`` (the scale) pixels, over the smooth areas
    of the targets."""

    def __init__(self, border: int) -> None:
        super().__init__()
        self.border = border
        self.edges = BlockEdges()

    def scores(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        b = self.border
        return {
            "l1": l1(output, target),
            "psnr_y": psnr_y(output, target, b),
            "ssim_y": ssim_y(output, target, b),
        }

    def add(
        self, output: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> None:
        super().add(output, target)
        for out, tgt in zip(output, target, strict=True):
            self.edges += block_edges(out, self.border, smooth_areas(tgt, self.border))

    def result(self) -> dict[str, float]:
        """The means of :class:`PairedScores` and ``block_edge_ratio``, pooled over the
        smooth pixel pairs of every image (a small crop may have none)."""
        return {**super().result(), "block_edge_ratio": self.edges.ratio()}


def confusion_matrix(
    predicted: torch.Tensor, labels: torch.Tensor, classes: int, ignore: int | None = None
) -> torch.Tensor:
    """``classes`` x ``classes`` pixel counts (int64, on the CPU): row = the true id in
    ``labels``, column = the id in ``predicted`` (both integer, same shape). Pixels whose
    true id is ``ignore`` or outside 0 to ``classes - 1`` are not counted."""
    truth, guess = labels.reshape(-1).long(), predicted.reshape(-1).long()
    keep = (truth >= 0) & (truth < classes)
    if ignore is not None:
        keep &= truth != ignore
    pairs = truth[keep] * classes + guess[keep]
    return torch.bincount(pairs.cpu(), minlength=classes * classes).reshape(classes, classes)


def segmentation_scores(confusion: torch.Tensor) -> dict[str, float]:
    """``miou``: the mean over the classes present in the truth (a row with pixels) of
    intersection / union; ``pixel_accuracy``: the share of counted pixels predicted right.
    A class absent from the truth is left out of the mean, even where it was predicted
    (its false positives still lower the IoU of the classes they were taken from). NaN
    for both when no pixel was counted."""
    confusion = confusion.double()
    hits, truth, guessed = confusion.diagonal(), confusion.sum(1), confusion.sum(0)
    total = truth.sum().item()
    if total == 0:
        return {"miou": math.nan, "pixel_accuracy": math.nan}
    present = truth > 0
    iou = hits[present] / (truth + guessed - hits)[present]
    return {"miou": iou.mean().item(), "pixel_accuracy": hits.sum().item() / total}


class LabelScores(PairedScores):
    """The scores of a label-to-image model (SPADE, OASIS, pix2pixHD, as their papers give
    them): :class:`PairedScores` against the real images, plus ``miou`` and
    ``pixel_accuracy`` of a segmenter run on the outputs against the input label ids. With
    ``real``, also ``miou_real`` and ``pixel_accuracy_real``: the segmenter on the real
    images, the ceiling the outputs' scores are read against.

    ``segmenter`` maps NCHW images in [-1, 1] to NKHW logits of ``classes`` classes
    (:func:`translate.models.segmenter.load_or_train`); it is moved to the images' device.
    A label trainer returns this from ``validation_scores()`` and sets ``labels`` (the
    batch's ``labels`` item) in the :class:`~translate.training.base.Validation` it makes.
    """

    def __init__(
        self,
        segmenter: torch.nn.Module,
        classes: int,
        ignore: int | None = None,
        real: bool = False,
    ) -> None:
        super().__init__()
        self.segmenter, self.classes, self.ignore = segmenter, classes, ignore
        self.confusion = {"": torch.zeros(classes, classes, dtype=torch.int64)}
        if real:
            self.confusion["_real"] = torch.zeros(classes, classes, dtype=torch.int64)

    @torch.no_grad()
    def _predict(self, images: torch.Tensor) -> torch.Tensor:
        net = self.segmenter.to(images.device)
        return net(images.float()).argmax(1)

    def add(
        self, output: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> None:
        if labels is None:
            raise ValueError(
                "LabelScores scores outputs against their input label ids: pass labels "
                "(a label trainer's Validation.labels)"
            )
        super().add(output, target)
        for suffix, images in (("", output), ("_real", target)):
            if suffix in self.confusion:
                self.confusion[suffix] += confusion_matrix(
                    self._predict(images), labels, self.classes, self.ignore
                )

    def result(self) -> dict[str, float]:
        """The means of :class:`PairedScores`, then ``miou`` and ``pixel_accuracy`` (and
        their ``_real`` ceiling), pooled over every pixel added."""
        found = super().result()
        for suffix, confusion in self.confusion.items():
            found.update({k + suffix: v for k, v in segmentation_scores(confusion).items()})
        return found
