"""The paint tab's redraw time: the round trip of `translate serve`'s /api/paint at SIZE px.

    python tools/paint_benchmark.py              # an untrained spade of the demo's size
    python tools/paint_benchmark.py --ngf 16 --hidden 32 --format png
    python tools/paint_benchmark.py --model runs/spade/ --size 256 --requests 50

It serves MODEL (default: a `spade` generator of --classes, --ngf and --hidden, untrained:
the cost of a pass does not depend on the weights; the defaults, ngf 10 and hidden 22,
give 2,341,593 parameters, the demo's unet_128 has 2,345,235) on 127.0.0.1 in a background
thread, then sends --requests label maps one after another, each the last with one more
brush stroke, as the page does while you paint: a gray PNG of ids, the image back (JPEG,
as the page asks, or --format png). It prints the model's parameters, the round trip (p50,
p95, max) and the model's own time (the server's X-Model-Ms); the goal is under 100 ms a
stroke at 256 px on the CPU with a model of the demo's size. Every request has a timeout,
so the run always ends. An untrained model's flat image encodes faster than a trained
one's, as PNG (JPEG's time hardly depends on the image).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from translate.apps.serve.app import create_app
from translate.apps.serve.models import Models
from translate.apps.serve.server import BackgroundServer
from translate.models.model_file import GeneratorSpec, save_generators
from translate.networks import count_parameters

TIMEOUT = 60  # seconds a request may take


def stroke_maps(size: int, classes: int, count: int, seed: int = 0) -> list[bytes]:
    """``count`` gray PNGs of ids, each the one before with a disk more, of a class other
    than the background's 0, at a random place."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    maps = []
    for i in range(count):
        x, y, r = rng.integers(0, size), rng.integers(0, size), size // 16
        ids[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = i % max(1, classes - 1) + 1
        buffer = io.BytesIO()
        Image.fromarray(ids, "L").save(buffer, "PNG")
        maps.append(buffer.getvalue())
    return maps


def untrained_spade(folder: Path, classes: int, ngf: int, hidden: int) -> Path:
    spec = GeneratorSpec.declared("spade", classes, 3, {"ngf": ngf, "hidden": hidden})
    path = folder / f"spade_{classes}c_ngf{ngf}_hidden{hidden}.safetensors"
    save_generators(path, {"AtoB": (spec, spec.build())})
    return path


def run(
    model: str, size: int, requests: int, device: str = "cpu", reply: str = "jpeg"
) -> dict[str, Any]:
    """Round trips and model times, in ms, of ``requests`` paint requests at ``size`` px,
    answered as ``reply`` (jpeg or png), and the model's parameter count."""
    models = Models([model], device=device)
    classes = models.info()[0].in_channels
    generator = next(iter(models.files[model].generators.values()))
    maps = stroke_maps(size, classes, requests + 1)
    trips, model_ms = [], []
    with BackgroundServer(create_app(models)) as url, httpx.Client(timeout=TIMEOUT) as client:
        headers = {"content-type": "image/png"}
        for i, body in enumerate(maps):
            start = time.perf_counter()
            answer = client.post(
                f"{url}api/paint",
                params={"model": model, "format": reply},
                content=body,
                headers=headers,
            )
            answer.raise_for_status()
            if i:  # the first request warms the model up
                trips.append((time.perf_counter() - start) * 1000)
                model_ms.append(float(answer.headers["x-model-ms"]))
    trips.sort()
    return {
        "size": size,
        "requests": requests,
        "parameters": count_parameters(generator),
        "format": reply,
        "p50_ms": statistics.median(trips),
        "p95_ms": trips[min(len(trips) - 1, round(0.95 * (len(trips) - 1)))],
        "max_ms": trips[-1],
        "model_p50_ms": statistics.median(model_ms),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a label model; default: an untrained spade")
    parser.add_argument("--classes", type=int, default=6, help="the default model's classes")
    parser.add_argument("--ngf", type=int, default=10, help="the default model's width")
    parser.add_argument(
        "--hidden", type=int, default=22, help="the default model's SPADE hidden channels"
    )
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg", help="the reply's")
    parser.add_argument("--size", type=int, default=256, help="the map's side in pixels")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(untrained_spade(Path(tmp), args.classes, args.ngf, args.hidden))
        result = run(model, args.size, args.requests, args.device, args.format)
    print(
        f"paint at {result['size']} px, {result['requests']} strokes, a model of "
        f"{result['parameters']:,} parameters, {result['format']} replies: round trip p50 "
        f"{result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f}, max {result['max_ms']:.1f}; "
        f"model p50 {result['model_p50_ms']:.1f} ms"
    )
    return result


if __name__ == "__main__":
    main()
