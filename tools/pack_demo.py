"""Ship a trained generator as the bundled ``demo`` model: fp16 weights, metadata kept.

    python tools/pack_demo.py runs/demo [--out translate/assets/demo.safetensors]

RUN is a run directory (its best generator, else its latest) or a generator file. The
architecture, preprocessing, training summary (best val L1/PSNR/SSIM) and eval mode travel
along; the file stores its parameter and MAC counts, which `translate info` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from translate.models.loading import load_model
from translate.models.model_file import save_generators

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 5_000_000  # what a bundled model may weigh in the package


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a generator as the fp16 demo model.")
    parser.add_argument("run", help="run directory or generator file")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "translate" / "assets" / "demo.safetensors"
    )
    args = parser.parse_args(argv)
    model = load_model(args.run)
    generators = {d: (model.specs[d], net) for d, net in model.generators.items()}
    save_generators(
        args.out,
        generators,
        model.preprocess,
        model.training,
        dtype=torch.float16,
        eval_mode=model.eval_mode,
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    print(json.dumps(model.training, indent=2))
    if size > MAX_BYTES:
        raise SystemExit(
            f"{args.out}: {size} bytes is over the {MAX_BYTES}-byte limit for the demo"
        )


if __name__ == "__main__":
    main()
