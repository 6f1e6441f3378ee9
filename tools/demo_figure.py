"""Draw the README's before/after picture of the bundled demo model.

    python tools/demo_figure.py [--model demo] [--out docs/demo.png] [--count 6]

One column per sample tile; rows: the satellite input, the model's output and the real shaded
relief (from ``tests/data/demo_targets``, matched by name).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from translate import Translator
from translate.data.images import list_images, read_image, write_image

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("satellite", "demo model", "real relief")
# Tiles with land, coast and ice, so one picture shows the range of the val split.
DEFAULT_TILES = ("r01_c07", "r02_c03", "r02_c07", "r02_c11", "r03_c11", "r05_c15")


def figure(
    translator: Translator, samples: list[Path], targets: Path, gap: int = 4, label_width: int = 96
) -> np.ndarray:
    """The grid as an HWC uint8 array: a label column, then one column per sample."""
    inputs = [read_image(p) for p in samples]
    outputs = translator.translate_batch(inputs)
    truths = [read_image(targets / p.name) for p in samples]
    side = inputs[0].shape[0]
    width = label_width + len(samples) * (side + gap)
    canvas = Image.new("RGB", (width, len(ROWS) * (side + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    for row, (label, images) in enumerate(zip(ROWS, (inputs, outputs, truths), strict=True)):
        y = row * (side + gap)
        draw.text((6, y + side // 2), label, fill="black", font=font, anchor="lm")
        for col, image in enumerate(images):
            canvas.paste(Image.fromarray(image), (label_width + col * (side + gap), y))
    return np.asarray(canvas)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Before/after grid of the demo model.")
    parser.add_argument("--model", default="demo", help="bundled name, generator file or run dir")
    parser.add_argument("--samples", type=Path, default=ROOT / "datasets" / "samples")
    parser.add_argument("--targets", type=Path, default=ROOT / "tests" / "data" / "demo_targets")
    parser.add_argument("--tiles", nargs="*", default=DEFAULT_TILES, help="sample names (stems)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = parser.parse_args(argv)
    by_stem = {p.stem: p for p in list_images(args.samples)}
    missing = [t for t in args.tiles if t not in by_stem]
    if missing:
        parser.error(f"{args.samples}: no sample image named {', '.join(missing)}")
    translator = Translator.load(args.model, device="cpu", precision="fp32")
    write_image(args.out, figure(translator, [by_stem[t] for t in args.tiles], args.targets))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
