"""What does governance cost? Mamori's added time per image request, measured side by side in one run.

Baseline: the same diffusers pipeline called in-process (`DiffusersImageGenerator.generate`).
Governed: a real HTTP request to a live uvicorn server running the whole path (auth, prescreen,
policy, generation, output detectors, policy, C2PA signing, audit). Both at concurrency 1 and 8.

    python bench/overhead.py [--requests 24] [--size 64x64] [--steps 2] [--device auto]

Prints milliseconds per request (mean and p50/p95), throughput, and the ratios governed/baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
import uvicorn

from gateway.app import create_app
from gateway.bootstrap import build_services
from gateway.settings import Settings
from generators.base import ImageRequest
from generators.tiny import ensure_tiny_models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "mean_ms": statistics.fmean(ordered) * 1000,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p95_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000,
        "rps": len(ordered) / wall,
    }


def bench_baseline(
    generator: Any, width: int, height: int, steps: int, n_requests: int, concurrency: int
) -> dict[str, float]:
    def one(i: int) -> float:
        start = time.perf_counter()
        generator.generate(
            ImageRequest(prompt=f"a catalog photo of item {i}", width=width, height=height, seed=i, steps=steps)
        )
        return time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # warm-up
        start = time.perf_counter()
        latencies = list(pool.map(one, range(n_requests)))
        wall = time.perf_counter() - start
    return _stats(latencies, wall)


async def _governed(url: str, key: str, size: str, n_requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(i: int, record: bool) -> None:
            async with sem:
                start = time.perf_counter()
                resp = await client.post(
                    "/v1/images/generations",
                    json={"prompt": f"a catalog photo of item {i}", "size": size, "seed": i},
                    headers=headers,
                )
                if resp.status_code != 200:
                    raise RuntimeError(f"governed request failed: {resp.status_code} {resp.text[:200]}")
                if record:
                    latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(one(i, False) for i in range(concurrency)))  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(one(i, True) for i in range(n_requests)))
        wall = time.perf_counter() - start
    return _stats(latencies, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory(prefix="mamori-bench-") as tmp:
        data_dir = Path(tmp)
        tiny = ensure_tiny_models(data_dir / "models")
        levels = [int(c) for c in args.concurrency.split(",")]
        settings = Settings(
            data_dir=data_dir,
            extra_sizes=[args.size],
            default_steps=args.steps,
            generator_concurrency=max(levels),
            log_level="WARNING",
            generator_options={
                "model": str(tiny.text2img),
                "edit_model": str(tiny.edit),
                "inpaint_model": str(tiny.inpaint),
                "device": args.device,
                "steps": args.steps,
            },
        )
        services = build_services(settings)
        _, key = services.keys.create(role="requester", tenant="bench")
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        device = getattr(services.generator, "device", args.device)
        print(
            f"Mamori overhead benchmark: size {args.size}, {args.steps} steps, "
            f"{args.requests} requests, device {device}"
        )
        print(
            f"{'concurrency':>11} | {'baseline mean':>13} {'p50':>8} {'p95':>8} {'rps':>6} | "
            f"{'governed mean':>13} {'p50':>8} {'p95':>8} {'rps':>6} | {'added ms':>8} {'ratio':>6}"
        )
        for concurrency in levels:
            base = bench_baseline(services.generator, width, height, args.steps, args.requests, concurrency)
            gov = asyncio.run(_governed(url, key, args.size, args.requests, concurrency))
            added = gov["mean_ms"] - base["mean_ms"]
            ratio = gov["mean_ms"] / base["mean_ms"]
            print(
                f"{concurrency:>11} | {base['mean_ms']:>11.1f}ms {base['p50_ms']:>6.1f}ms {base['p95_ms']:>6.1f}ms "
                f"{base['rps']:>6.1f} | {gov['mean_ms']:>11.1f}ms {gov['p50_ms']:>6.1f}ms {gov['p95_ms']:>6.1f}ms "
                f"{gov['rps']:>6.1f} | {added:>6.1f}ms {ratio:>5.2f}x"
            )
        timings = [r.payload.get("timings_ms", {}) for r in services.audit.search(event_type="request", limit=50)]
        stages: dict[str, list[float]] = {}
        for t in timings:
            for stage, ms in t.items():
                stages.setdefault(stage, []).append(ms)
        print(
            "governed stage medians (ms): "
            + ", ".join(f"{s}={statistics.median(v):.1f}" for s, v in sorted(stages.items()))
        )
        server.should_exit = True
        thread.join(timeout=10)
        services.close()


if __name__ == "__main__":
    main()
