"""Policy decision latency (median and p95): the embedded Rego engine against the OPA REST path, side by side.

The REST side is `OpaServerEngine` (opa-python-client) talking to the bundle served by
`gateway.opa_rest` on loopback, so the ratio shows what the HTTP hop costs (and that no Nagle delay
of ~40 ms creeps in).

    python bench/policy_latency.py [--calls 300]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from typing import Any

import uvicorn

from gateway.opa_rest import create_app
from gateway.policy import OpaServerEngine, RegoEngine, default_bundle_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _input(stage: str, findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "principal": {"key_id": "k1", "tenant": "acme", "role": "requester"},
        "stage": stage,
        "request": {"id": "req-1", "endpoint": "images.generations"},
        "findings": findings,
    }


CASES = {
    "access": _input("access", []),
    "prescreen": _input(
        "prescreen", [{"detector": "pii", "category": "pii", "score": 0.9, "evidence": {"entity_type": "PERSON"}}]
    ),
    "release": {
        "principal": {"key_id": "k2", "tenant": "acme", "role": "supervisor"},
        "stage": "release",
        "request": {"id": "req-1", "requester_key_id": "k1", "review": {"approvals": 1, "category": "sexual"}},
        "approvals": [{"key_id": "k2", "role": "supervisor"}],
        "findings": [{"detector": "image_safety", "category": "sexual", "score": 0.5, "evidence": {}}],
    },
    "output": _input(
        "output",
        [
            {"detector": "image_safety", "category": "sexual", "score": 0.5, "evidence": {}},
            {"detector": "copyright", "category": "protected_work", "score": 0.9, "evidence": {}},
        ],
    ),
}


def _per_call_ms(engine: Any, doc: dict[str, Any], calls: int) -> tuple[float, float]:
    """(median, p95) of `calls` decisions, in milliseconds."""
    engine.decide(doc)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        engine.decide(doc)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    bundle = default_bundle_dir()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(bundle), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    embedded = RegoEngine(bundle)
    remote = OpaServerEngine(f"http://127.0.0.1:{port}", bundle)
    print(f"policy decision latency over {args.calls} calls (ms): median and p95")
    print(f"{'stage':>10} | {'embedded p50':>12} | {'p95':>7} | {'OPA REST p50':>12} | {'p95':>7} | {'p50 ratio':>9}")
    for stage, doc in CASES.items():
        assert embedded.decide(doc).to_dict()["action"] == remote.decide(doc).to_dict()["action"]
        local, local95 = _per_call_ms(embedded, doc, args.calls)
        rest, rest95 = _per_call_ms(remote, doc, args.calls)
        ratio = rest / local
        print(f"{stage:>10} | {local:>12.3f} | {local95:>7.3f} | {rest:>12.3f} | {rest95:>7.3f} | {ratio:>8.1f}x")
    remote.close()
    server.should_exit = True
    thread.join(timeout=10)


if __name__ == "__main__":
    main()
