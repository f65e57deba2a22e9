"""Shared fixtures: tiny config-built models, and a whole gateway on a temporary data folder."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEST_SIZES = ["64x64", "64x128"]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from generators.tiny import ensure_tiny_models

    return ensure_tiny_models(tmp_path_factory.mktemp("models"))


def gateway_settings(data_dir: Path, tiny_models: Any, **overrides: Any) -> Any:
    from gateway.settings import Settings

    options = {
        "model": str(tiny_models.text2img),
        "edit_model": str(tiny_models.edit),
        "inpaint_model": str(tiny_models.inpaint),
    }
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "extra_sizes": TEST_SIZES,
        "generator_options": options,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Gateway:
    client: Any
    services: Any
    settings: Any
    keys: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Iterator[Gateway]:
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.bootstrap import build_services

    settings = gateway_settings(tmp_path_factory.mktemp("gateway-data"), tiny_models)
    services = build_services(settings)
    keys = {}
    for who, role, tenant in [
        ("requester", "requester", "acme"),
        ("requester2", "requester", "acme"),
        ("other_tenant", "requester", "globex"),
        ("supervisor", "supervisor", "acme"),
        ("supervisor_globex", "supervisor", "globex"),
        ("auditor", "auditor", "acme"),
        ("admin", "admin", "acme"),
    ]:
        _, keys[who] = services.keys.create(role=role, tenant=tenant, name=who)
    app = create_app(settings, services)
    with TestClient(app) as client:
        yield Gateway(client=client, services=services, settings=settings, keys=keys)
    services.close()


@dataclass
class LiveServer:
    """A uvicorn server on a loopback port sharing the session gateway's services (one per session)."""

    url: str  # ends in /v1, as the openai client wants base_url
    root: str
    services: Any
    keys: dict[str, str]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(gateway: Gateway) -> Iterator[LiveServer]:
    """One live server per test session for real-client tests (openai, httpx, browsers).

    It shares the session gateway's settings and services (loaded models, database, policy, keys and
    the queue storage): its lifespan attaches a queue over the same settings, so a test that changes
    a setting on `gateway.settings` changes it for both, whichever consumer runs the task.
    """
    import threading
    import time

    import uvicorn

    from gateway.app import create_app

    services = gateway.services
    settings = services.settings
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    root = f"http://127.0.0.1:{port}"
    try:
        yield LiveServer(url=f"{root}/v1", root=root, services=services, keys=gateway.keys)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="session")
def loopback() -> Iterator[Any]:
    """Serve an ASGI app (an upstream double, e.g. an OpenAI-style API) on a loopback port in a thread.

    `loopback(app)` returns `http://127.0.0.1:PORT`; every server stops at the end of the session.
    """
    import socket
    import threading
    import time

    import uvicorn

    running: list[tuple[Any, threading.Thread, socket.socket]] = []

    def serve(app: Any) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the loopback server did not start")
            time.sleep(0.01)
        running.append((server, thread, sock))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield serve
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def screen_random_words_with_lexicons(services: Any, patch: pytest.MonkeyPatch) -> None:
    """Let the text rails read the tiny chat model's words with `unsafe_text`'s lexicons only.

    The tiny model has random weights and says random words ("late below sell follow"). Whether the
    prompt head reads such a phrase as unsafe is noise of its training: the shipped head and a
    retrain each flag about 4 % of random four-word strings, and a phrase can sit at 0.4985 for one
    head and 0.585 for the next. Chat flow tests that expect the rails to pass or a named rail to
    fire would then ride on that noise, so they swap in the same detector without its model (a
    supported configuration; the deny-list, PII, jailbreak and toxicity rails stay as they are).
    The head's reading of text is tested in tests/detectors/test_unsafe_text.py.
    """
    from detectors.unsafe_text import UnsafeText

    lexicons = UnsafeText(model=None)
    lexicons.load()
    detectors = [lexicons if d.name == "unsafe_text" else d for d in services.prescreen_detectors]
    assert lexicons in detectors, "the gateway screens text without unsafe_text"
    patch.setattr(services, "prescreen_detectors", detectors)


def brightness_safety(services: Any, patch: pytest.MonkeyPatch, seen: list[Any] | None = None) -> None:
    """image_safety replaced by a stand-in that scores each image's mean brightness (0 black, 1 white)
    as "sexual", so a test can tell which picture (frame, composite, mask) a detector was given;
    `seen` collects every item it scores."""
    import numpy as np

    from detectors.base import Finding

    detector = next(d for d in services.image_detectors if d.name == "image_safety")

    def detect(item: Any, _ctx: Any) -> list[Finding]:
        if seen is not None:
            seen.append(item)
        score = float(np.asarray(item.image.convert("L"), dtype=np.float64).mean() / 255)
        evidence = {"role": item.role, "index": item.index}
        return [Finding(detector="image_safety", category="sexual", score=score, evidence=evidence)]

    patch.setattr(detector, "detect", detect)
    patch.setattr(detector, "detect_batch", lambda items, ctx: [detect(it, ctx) for it in items])
