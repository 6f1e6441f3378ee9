"""pix2pixHD's two comparisons of issue 30 at equal wall time, one core each, scored on data
no run trains or selects on.

    translate prepare worldmaps datasets/worldmaps
    translate prepare worldmaps-labels datasets/worldmaps-labels-512 --tile-size 512 --width 6144
    python tools/pix2pixhd_equal_time.py --out runs/pix2pixhd_equal_time --minutes 10
    python tools/pix2pixhd_equal_time.py --out runs/pix2pixhd_equal_time --score-only

- ``coarse-to-fine`` (``--labels``, 512 px label maps):
  ``configs/worldmaps_labels_pix2pixhd_512.yaml`` as it is (``loss.global_steps``: the
  global generator alone at 256 px first, then the whole network) against the same config
  with ``loss.global_steps=0 loss.fix_global_steps=0`` (the whole network at 512 px from
  the first step). Scored as
  ``tools/labels_equal_time.py`` scores: each run's last generator converts ``val/A``; mIoU
  and pixel accuracy of the data set's cached segmenter on the outputs, PSNR and SSIM
  against ``val/B``.
- ``images`` (``--images``, worldmaps' 128 px satellite -> relief): ``model: pix2pixhd``
  (``configs/worldmaps_pix2pixhd.yaml``: multi-scale discriminator, feature matching)
  against ``model: pix2pix``'s (``configs/worldmaps_pix2pix.yaml``). Scored as
  ``tools/unpaired_equal_time.py`` scores: ``testA`` converted, PSNR and SSIM (and FID/KID
  with Inception weights) against ``testB``.

The two runs of a comparison start together, each pinned to its core with one thread, a
constant learning rate and only the final evaluation (``unpaired_equal_time``'s launcher).
Each comparison's report (``equal_time.md``, ``equal_time.json``) lands in ``--out/NAME``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/ is no package

import labels_equal_time  # noqa: E402
import unpaired_equal_time  # noqa: E402
from unpaired_equal_time import Entry, saved, trained  # noqa: E402

LABELS_512 = "configs/worldmaps_labels_pix2pixhd_512.yaml"
FROM_THE_START = ("loss.global_steps=0", "loss.fix_global_steps=0")  # the whole net at 512 px
COMPARISONS: dict[str, tuple[tuple[Entry, ...], Callable[..., dict[str, Any]]]] = {
    "coarse-to-fine": (
        (
            Entry("coarse-to-fine", LABELS_512),
            Entry("full-resolution", LABELS_512, FROM_THE_START),
        ),
        labels_equal_time.score,
    ),
    "images": (
        (
            Entry("pix2pixHD", "configs/worldmaps_pix2pixhd.yaml"),
            Entry("Pix2Pix", "configs/worldmaps_pix2pix.yaml"),
        ),
        unpaired_equal_time.score,
    ),
}


def compare(name: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train (unless --score-only) and score one comparison; its report lands in out/NAME."""
    entries, score = COMPARISONS[name]
    run = argparse.Namespace(**{**vars(args), "data": data, "out": args.out / name})
    run.out.mkdir(parents=True, exist_ok=True)
    if name == "coarse-to-fine":
        labels_equal_time.segmenter(data, args.segmenter_steps)  # once, before any clock
    report = trained(entries, run)
    rows = {e.name: score(e, run) for e in entries}
    if name == "coarse-to-fine":
        real = data / "val" / "B"
        rows["real images (the ceiling)"] = labels_equal_time.segmentation(
            real, data, args.segmenter_steps
        )
    print(f"## {name}\n\n{saved(report, rows, run.out, labels_equal_time.COLUMNS)}")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=ROOT / "datasets" / "worldmaps-labels-512")
    parser.add_argument("--images", type=Path, default=ROOT / "datasets" / "worldmaps")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=10.0, help="per run")
    parser.add_argument("--cores", default="0,1", help="the two runs' cores")
    parser.add_argument("--inception-weights", dest="weights", type=Path, default=None)
    parser.add_argument("--only", choices=sorted(COMPARISONS), help="one comparison (both)")
    parser.add_argument("--segmenter-steps", type=int, default=None, help="(the default's)")
    parser.add_argument("--score-only", action="store_true", help="score the runs in --out")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    data = {"coarse-to-fine": args.labels.resolve(), "images": args.images.resolve()}
    if not (data["coarse-to-fine"] / "labels.yaml").is_file():
        raise SystemExit(f"{data['coarse-to-fine']}: no labels.yaml; run `translate prepare "
                         "worldmaps-labels --tile-size 512 --width 6144`")  # fmt: skip
    if not (data["images"] / "testA").is_dir():
        raise SystemExit(f"{data['images']}: no testA; run `translate prepare worldmaps`")
    names = [args.only] if args.only else list(COMPARISONS)
    return {name: compare(name, data[name], args) for name in names}


if __name__ == "__main__":
    main()
