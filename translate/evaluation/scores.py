"""Scoring image sets: paired L1/PSNR/SSIM, diversity, FID/KID, from folders or a model;
for a label-to-image model also a segmenter's mIoU and the diversity under its noise.

Images stream through accumulators one at a time, so a folder of any size fits in memory:
:class:`PairedScores` averages the per-image metrics, :class:`SetScores` keeps Inception
features and a spread-out sample of images for the diversity score.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from translate.core import metrics
from translate.core.metrics import PairedScores
from translate.core.runtime import Precision
from translate.data.datasets import HRFolder, LabelFolder, PairedFolder
from translate.data.degradations import bicubic_upscale, build_degradation
from translate.data.images import list_images, read_image
from translate.data.labels import Labels
from translate.data.layout import image_size, match_pairs
from translate.data.transforms import Preprocess, to_tensor
from translate.evaluation.inception import fid, kid
from translate.models.model_file import InputSpec, declared_geometry

# Diversity is the mean pairwise L1 over this many images spread evenly over a set, each
# resized to at most DIVERSITY_SIDE pixels a side: all pairs of a large folder would cost
# quadratic time and a full-size copy of every image.
DIVERSITY_SAMPLES = 128
DIVERSITY_SIDE = 256
FEATURE_BATCH = 16  # images per Inception forward pass

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]
# No autocast, whatever the device: a disabled autocast is the same on every device type.
FP32 = Precision("fp32", "cpu")


def spread_items(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``total`` items (all of them when fewer)."""
    if total <= count:
        return list(range(total))
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


class SetScores:
    """Per image set: Inception features (when an extractor is given) and diversity samples.

    ``total`` (the number of images that will be added) spreads the diversity sample over
    the whole set.
    """

    def __init__(self, total: int, extractor: FeatureExtractor | None = None) -> None:
        self.extractor = extractor
        self.keep = set(spread_items(total, DIVERSITY_SAMPLES))
        self.count = 0
        self.kept: list[torch.Tensor] = []
        self.pending: list[torch.Tensor] = []
        self.feature_batches: list[torch.Tensor] = []

    def add(self, images: torch.Tensor) -> None:
        """Add a batch of images (NCHW in [-1, 1]) to the set."""
        for image in images:
            if self.count in self.keep:
                self.kept.append(self._diversity_copy(image))
            if self.extractor is not None:
                # a batch holds one image size: flush before one of another size joins it
                if self.pending and self.pending[0].shape != image.shape:
                    self._extract()
                self.pending.append(image)
                if len(self.pending) >= FEATURE_BATCH:
                    self._extract()
            self.count += 1

    def _diversity_copy(self, image: torch.Tensor) -> torch.Tensor:
        image = image.detach().float().cpu().expand(3, -1, -1)
        size = tuple(self.kept[0].shape[-2:]) if self.kept else None
        if size is None and max(image.shape[-2:]) > DIVERSITY_SIDE:
            scale = DIVERSITY_SIDE / max(image.shape[-2:])
            size = tuple(max(1, round(s * scale)) for s in image.shape[-2:])
        if size is not None and tuple(image.shape[-2:]) != size:
            image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]
        return image

    def _extract(self) -> None:
        if not self.pending:
            return
        self.feature_batches.append(self.extractor(torch.stack(self.pending)).cpu())
        self.pending = []

    def features(self) -> torch.Tensor:
        """The Inception features of every image added, one row each."""
        self._extract()
        return torch.cat(self.feature_batches)

    def diversity(self) -> float | None:
        """Mean pairwise L1 of the sample (``translate.core.metrics.diversity``); None below 2."""
        return metrics.diversity(torch.stack(self.kept)) if len(self.kept) >= 2 else None


def _read(path: Path) -> torch.Tensor:
    return to_tensor(read_image(path, channels=3))


def paired_folder_images(
    outputs: str | os.PathLike[str], targets: str | os.PathLike[str]
) -> tuple[int, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """Pairs of ``outputs`` and ``targets`` matched by relative path and stem, as [1,3,H,W].

    Unmatched files and pairs of different sizes raise ``ValueError`` naming the files.
    """
    pairs = match_pairs(Path(outputs), Path(targets))

    def generate() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for out_path, tgt_path in pairs:
            out, tgt = _read(out_path), _read(tgt_path)
            if out.shape != tgt.shape:
                raise ValueError(
                    f"{out_path}: {out.shape[2]}x{out.shape[1]} pixels but its target "
                    f"{tgt_path} is {tgt.shape[2]}x{tgt.shape[1]}"
                )
            yield out[None], tgt[None]

    return len(pairs), generate()


def folder_images(folder: str | os.PathLike[str]) -> tuple[int, Iterator[torch.Tensor]]:
    """Every image under ``folder`` as [1,3,H,W] in [-1, 1]."""
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"{folder}: no images found")
    return len(paths), (_read(p)[None] for p in paths)


def model_images(
    generator: torch.nn.Module,
    data_root: str | os.PathLike[str],
    preprocess: InputSpec,
    split: str = "val",
    direction: str = "AtoB",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    precision: Precision = FP32,
) -> tuple[int, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """(output, target) batches of ``generator`` run over a paired dataset's ``split``.

    ``preprocess`` is a generator file's preprocessing, applied without random crop or flip;
    ``precision``: the autocast the generator runs under (default fp32).
    """
    dataset = PairedFolder(
        data_root,
        split=split,
        direction=direction,
        preprocess=preprocess.transforms,
        input_channels=preprocess.input_channels,
        output_channels=preprocess.output_channels,
        train=False,
        scale=declared_geometry(generator)["scale"],  # targets at the output's size
    )
    check_scaled_targets(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)

    def generate() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        with torch.inference_mode():
            for batch in loader:
                with precision.autocast():
                    output = generator(batch["input"].to(device))
                output = output.float().clamp(-1, 1).cpu()
                yield output, batch["target"]

    return len(dataset), generate()


def label_dataset(
    data_root: str | os.PathLike[str],
    preprocess: InputSpec,
    classes: int,
    labels: Labels,
    instances: bool = False,
    split: str = "val",
) -> LabelFolder:
    """A label data set's ``split`` as a label model's file says its inputs were prepared,
    without random crop or flip."""
    return LabelFolder(
        data_root, classes, labels, split, preprocess.transforms, preprocess.output_channels,
        train=False, instances=instances,
    )  # fmt: skip


def label_model_images(
    generator: torch.nn.Module,
    dataset: LabelFolder,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    precision: Precision = FP32,
) -> tuple[int, Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """(output, image, label ids) batches of a label ``generator`` run over ``dataset``
    (:func:`label_dataset`). A generator with ``noise_dim`` draws its z from torch's RNG,
    seeded here with 0 (and restored after), so the scores repeat."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    devices = [device] if torch.device(device).type == "cuda" else []

    def generate() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            for batch in loader:
                with precision.autocast():
                    output = generator(batch["input"].to(device))
                yield output.float().clamp(-1, 1).cpu(), batch["target"], batch["labels"]

    return len(dataset), generate()


def noise_diversity(
    generator: torch.nn.Module,
    inputs: Iterable[torch.Tensor],
    samples: int = 4,
    device: str | torch.device = "cpu",
    precision: Precision = FP32,
    distance: metrics.Distance | None = None,
) -> float:
    """How much the outputs of one input differ under different noise: the mean pairwise
    ``distance`` (default L1 in [-1, 1] pixel units; :func:`translate.core.metrics.diversity`)
    of each input's :func:`noise_outputs`, averaged over the inputs. 0 for a generator that
    ignores z."""
    return mean_diversity(noise_outputs(generator, inputs, samples, device, precision), distance)


def noise_outputs(
    generator: torch.nn.Module,
    inputs: Iterable[torch.Tensor],
    samples: int = 4,
    device: str | torch.device = "cpu",
    precision: Precision = FP32,
) -> list[torch.Tensor]:
    """For each input (CHW, a one-hot label map), ``samples`` outputs of ``generator(x, z)``
    under z drawn from a generator seeded by the input's index (float, in [-1, 1], on the
    CPU): the same inputs give the same outputs. The generator declares ``noise_dim``."""
    if samples < 2:
        raise ValueError(f"diversity samples: expected 2 or more, got {samples}")
    noise_dim = int(getattr(generator, "noise_dim", 0))
    if noise_dim < 1:
        raise ValueError(f"{type(generator).__name__} declares no noise_dim: it takes no noise")
    found = []
    with torch.inference_mode():
        for index, x in enumerate(inputs):
            z = torch.randn(samples, noise_dim, generator=torch.Generator().manual_seed(index))
            batch = x[None].expand(samples, *x.shape).to(device)
            with precision.autocast():
                outputs = generator(batch, z.to(device))
            found.append(outputs.float().clamp(-1, 1).cpu())
    return found


def mean_diversity(outputs: list[torch.Tensor], distance: metrics.Distance | None = None) -> float:
    """The mean over ``outputs`` (batches, one per input) of each one's diversity."""
    if not outputs:
        raise ValueError("diversity needs at least one input")
    return sum(metrics.diversity(batch, distance) for batch in outputs) / len(outputs)


def check_scaled_targets(dataset: PairedFolder) -> None:
    """Refuse a pair whose target is not ``dataset.scale`` times its input (header sizes
    only): the dataset would resize it to fit, and the scores would be of that resize."""
    scale = dataset.scale
    if scale == 1:
        return
    for a, b in dataset.pairs:
        source, target = (a, b) if dataset.direction == "AtoB" else (b, a)
        (sw, sh), (tw, th) = image_size(source), image_size(target)
        if (tw, th) != (sw * scale, sh * scale):
            raise ValueError(
                f"{target}: the target is {tw}x{th}, but its input {source} is {sw}x{sh} and "
                f"the model upscales {scale}x ({sw * scale}x{sh * scale}); give targets "
                f"{scale}x their inputs"
            )


def degraded_images(
    generator: torch.nn.Module,
    data_root: str | os.PathLike[str],
    degradation: str,
    split: str = "val",
    channels: int = 3,
    device: str | torch.device = "cpu",
    precision: Precision = FP32,
) -> tuple[int, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """(output, HR) of a super-resolution ``generator`` over the whole HR images of an
    ``hr`` folder's ``split`` (Set5, Set14: ``test``), each LR input made from its image by
    the ``degradation`` (``bicubic``: the benchmarks' LR), seeded by the image's index as in
    training's validation. Images are cut to a multiple of the scale times the generator's
    size multiple, as the benchmarks crop them to the scale."""
    scale = declared_geometry(generator)["scale"]
    multiple = scale * getattr(generator, "size_multiple", 1)
    dataset = HRFolder(data_root, split, Preprocess(mode="none"), channels, multiple, train=False)
    degrade = build_degradation(degradation, scale).to(device)

    def generate() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        with torch.inference_mode():
            for index in range(len(dataset)):
                item = dataset[index]
                hr = item["target"][None].to(device)
                seed = torch.tensor([item["seed"]], device=device)
                lr = degrade((hr + 1) / 2, seed) * 2 - 1
                with precision.autocast():
                    output = generator(lr)
                yield output.float().clamp(-1, 1).cpu(), hr.cpu()

    return len(dataset), generate()


class BicubicUpscaler(torch.nn.Module):
    """Bicubic upscaling (MATLAB's ``imresize``) as a generator with ``model``'s geometry:
    run through :func:`model_images` or :func:`degraded_images` in place of an SR model, it
    sees the model's LR inputs and targets, so its scores are the baseline the model's are
    compared with (as training's first evaluation scores it)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        geometry = declared_geometry(model)
        self.scale, self.size_multiple = geometry["scale"], geometry["size_multiple"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return bicubic_upscale(images, self.scale)


def whole_images(preprocess: InputSpec, generator: torch.nn.Module) -> InputSpec:
    """``preprocess`` for scoring a super-resolution generator on whole images, as the SR
    benchmarks are (not the training crop): mode ``none`` at the generator's size multiple,
    unturned (a training crop's ``rotate`` does not apply to whole images)."""
    multiple = getattr(generator, "size_multiple", 1)
    transforms = replace(preprocess.transforms, mode="none", size_multiple=multiple, rotate=False)
    return replace(preprocess, transforms=transforms)


def score_pairs(
    total: int,
    pairs: Iterator[tuple[torch.Tensor, ...]],
    extractor: FeatureExtractor | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    paired: PairedScores | None = None,
) -> dict[str, float]:
    """L1/PSNR/SSIM (or the scores ``paired`` keeps, e.g. SR's ``SRScores``, a label
    model's ``LabelScores``), diversity of outputs and targets, and FID/KID with an
    extractor. ``pairs``: (output, target) or, for ``LabelScores``, (output, target, ids)."""
    paired = paired or PairedScores()
    outputs, targets = SetScores(total, extractor), SetScores(total, extractor)
    with tqdm(total=total, desc="scoring", unit="img") as bar:
        for output, target, *labels in pairs:
            paired.add(output, target, *labels)
            outputs.add(output)
            targets.add(target)
            bar.update(output.shape[0])
    result: dict[str, float] = {"images": paired.count, **paired.result()}
    result.update(_set_comparison(outputs, targets, extractor, kid_subsets, kid_subset_size))
    return result


def score_sets(
    outputs: tuple[int, Iterator[torch.Tensor]],
    targets: tuple[int, Iterator[torch.Tensor]] | None = None,
    extractor: FeatureExtractor | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, float]:
    """Diversity of ``outputs`` and, against an unpaired ``targets`` set, FID/KID."""
    scored = []
    for name, source in (("outputs", outputs), ("targets", targets)):
        if source is None:
            continue
        total, images = source
        scores = SetScores(total, extractor if targets is not None else None)
        for image in tqdm(images, total=total, desc=name, unit="img"):
            scores.add(image)
        scored.append(scores)
    result: dict[str, float] = {"images": scored[0].count}
    if len(scored) == 1:
        result["diversity_outputs"] = _or_nan(scored[0].diversity())
        return result
    result["images_targets"] = scored[1].count
    result.update(_set_comparison(*scored, extractor, kid_subsets, kid_subset_size))
    return result


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _set_comparison(
    outputs: SetScores,
    targets: SetScores,
    extractor: FeatureExtractor | None,
    kid_subsets: int,
    kid_subset_size: int,
) -> dict[str, float]:
    div_out, div_tgt = outputs.diversity(), targets.diversity()
    result = {"diversity_outputs": _or_nan(div_out), "diversity_targets": _or_nan(div_tgt)}
    if div_out is not None and div_tgt:
        result["diversity_ratio"] = div_out / div_tgt
    if extractor is not None:
        feats_out, feats_tgt = outputs.features(), targets.features()
        result["fid"] = fid(feats_out, feats_tgt)
        result["kid"], result["kid_std"] = kid(
            feats_out, feats_tgt, subsets=kid_subsets, subset_size=kid_subset_size
        )
    return result
