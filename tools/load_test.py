"""A bounded load test of `translate serve`: CLIENTS concurrent clients, each sending
REQUESTS image translations one after another, on 127.0.0.1.

    python tools/load_test.py                      # 8 clients x 20 requests, demo, own server
    python tools/load_test.py --url http://127.0.0.1:7860/ --clients 4

Without --url it starts its own server (the demo model, the default queue) on an ephemeral
port and stops it at the end. It prints p50/p95 latency, throughput and the answers by
status, and exits 1 when any request was lost (no answer) or answered 5xx. Every request has
a timeout, so the run always ends.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "datasets" / "samples" / "r00_c03.png"


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    statuses: Counter[int] = field(default_factory=Counter)
    lost: int = 0  # no answer: connection errors and timeouts
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.lost + sum(n for status, n in self.statuses.items() if status >= 500)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def report(self) -> str:
        total = sum(self.statuses.values()) + self.lost
        return (
            f"{total} requests in {self.seconds:.1f} s ({total / self.seconds:.1f}/s): "
            f"p50 {self.percentile(50) * 1000:.0f} ms, p95 {self.percentile(95) * 1000:.0f} ms, "
            f"max {max(self.latencies) * 1000:.0f} ms, mean "
            f"{statistics.fmean(self.latencies) * 1000:.0f} ms; status "
            f"{dict(sorted(self.statuses.items()))}, lost {self.lost}"
        )


async def run_load(
    url: str,
    body: bytes,
    clients: int = 8,
    requests: int = 20,
    model: str = "demo",
    name: str = "tile.png",
    timeout: float = 120,
) -> LoadResult:
    """``clients`` concurrent clients, ``requests`` each, one at a time per client."""
    result = LoadResult()
    params = {"model": model, "name": name}

    async def client(http: httpx.AsyncClient) -> None:
        for _ in range(requests):
            start = time.perf_counter()
            try:
                response = await http.post("api/translate", params=params, content=body)
            except httpx.HTTPError:
                result.lost += 1
                continue
            result.latencies.append(time.perf_counter() - start)
            result.statuses[response.status_code] += 1

    limits = httpx.Limits(max_connections=clients)
    # The server takes an upload only with an image or binary Content-Type (not a form's).
    headers = {"content-type": "application/octet-stream"}
    async with httpx.AsyncClient(
        base_url=url, timeout=timeout, limits=limits, headers=headers
    ) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        result.seconds = time.perf_counter() - start
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one with demo)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="per client")
    parser.add_argument("--image", type=Path, default=SAMPLE, help="the image every request sends")
    args = parser.parse_args()
    body = args.image.read_bytes()

    def go(url: str) -> LoadResult:
        return asyncio.run(run_load(url, body, args.clients, args.requests, name=args.image.name))

    if args.url:
        result = go(args.url)
    else:
        from translate.apps.serve.app import create_app
        from translate.apps.serve.models import Models
        from translate.apps.serve.server import BackgroundServer

        with BackgroundServer(create_app(Models(["demo"]))) as url:
            result = go(url)
    print(
        f"{args.clients} clients x {args.requests} requests, {args.image.name}: {result.report()}"
    )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
