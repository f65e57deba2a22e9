"""Webhooks: HMAC signatures, refused callback addresses, retries with backoff on a real consumer
(embedded SQLite and Redis), and the gateway's events for a held request."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    CallbackRefused,
    check_callback_url,
    sign,
    verify_signature,
    webhook_secret,
)

GEN = "/v1/images/generations"


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    hits: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, headers, body in self.hits if headers.get("_status") == "200"]

    def wait(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver saw only {[h[1].get('_status') for h in self.hits]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = 500 if len(box.hits) < box.fail_first else 200
            headers = {k.lower(): v for k, v in self.headers.items()} | {"_status": str(status)}
            box.hits.append((time.monotonic(), headers, body))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


def test_signature_round_trip() -> None:
    body = b'{"a":1}'
    header = sign(b"secret", body)
    assert verify_signature(b"secret", body, header)
    assert not verify_signature(b"secret", b'{"a":2}', header)
    assert not verify_signature(b"other", body, header)
    assert not verify_signature(b"secret", body, sign(b"secret", body, timestamp=int(time.time()) - 3600))
    assert not verify_signature(b"secret", body, "garbage")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://172.16.5.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
        "http://user:pw@203.0.114.1/x",
        "/relative",
    ],
)
def test_callback_urls_refused(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(url, allow_private=False)


def test_callback_urls_allowed() -> None:
    assert check_callback_url("https://93.184.216.34/hook", allow_private=False)
    assert check_callback_url("http://127.0.0.1:9/hook", allow_private=True)  # only when the config says so


def test_generation_with_a_private_callback_is_refused_before_any_work(gateway: Any) -> None:
    resp = gateway.client.post(
        GEN,
        json={"prompt": "a cat", "size": "64x64", "callback_url": "http://169.254.169.254/"},
        headers=gateway.auth("requester"),
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_callback_url"


def _queue(tmp_path: Path, backend: str, receiver: Receiver) -> Any:
    from gateway.jobs import JobQueue, worker_context

    settings = Settings(
        data_dir=tmp_path,
        jobs_backend=backend,
        jobs_queue_name="t" + uuid.uuid4().hex[:12],
        webhook_urls=[receiver.url],
        webhook_retry_delay_s=0.2,
        webhook_retries=4,
        webhook_secret="test-secret",
        allow_private_callbacks=True,
    )
    return JobQueue(settings, worker_context(settings))


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_delivery_is_retried_with_backoff_until_it_lands(tmp_path: Path, receiver: Receiver, backend: str) -> None:
    if backend == "redis" and not _redis_up():
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    receiver.fail_first = 2
    queue = _queue(tmp_path, backend, receiver)
    queue.start()
    try:
        (event_id,) = queue.notify("escalation.created", {"escalation_id": "e1"}, callback_url=None)
        receiver.wait(lambda: len(receiver.events()) == 1)
    finally:
        queue.stop()
    assert [h[1]["_status"] for h in receiver.hits] == ["500", "500", "200"]
    assert {h[1][EVENT_ID_HEADER.lower()] for h in receiver.hits} == {event_id}  # one event, at least once
    for _, headers, body in receiver.hits:
        assert verify_signature(b"test-secret", body, headers[SIGNATURE_HEADER.lower()])
    gaps = [b[0] - a[0] for a, b in zip(receiver.hits, receiver.hits[1:], strict=False)]
    assert all(gap >= 0.2 for gap in gaps)  # retried later, not at once
    assert receiver.events()[0]["type"] == "escalation.created"


def test_the_gateway_notifies_admins_and_the_requesters_callback(
    gateway: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway.settings, "allow_private_callbacks", True)
    monkeypatch.setattr(gateway.settings, "webhook_urls", [receiver.url])
    first = gateway.client.post(
        GEN, json={"prompt": "a grey whale", "size": "64x64", "seed": 6161}, headers=gateway.auth("requester2")
    )
    png = base64.b64decode(first.json()["data"][0]["b64_json"])
    gateway.client.post("/v1/protected", files={"file": ("w.png", png, "image/png")}, headers=gateway.auth("admin"))
    callback = receiver.url + "?who=requester"
    resp = gateway.client.post(
        GEN,
        json={"prompt": "a grey whale", "size": "64x64", "seed": 6161, "callback_url": callback},
        headers=gateway.auth("requester"),
    )
    assert resp.status_code == 202, resp.text
    eid = resp.json()["mamori"]["escalation_id"]
    ok = gateway.client.post(
        f"/v1/escalations/{eid}/reject", json={"reason": "too close"}, headers=gateway.auth("supervisor")
    )
    assert ok.status_code == 200
    receiver.wait(lambda: len([e for e in receiver.events() if e["data"].get("escalation_id") == eid]) >= 3)
    mine = [(e["type"]) for e in receiver.events() if e["data"].get("escalation_id") == eid]
    assert sorted(mine) == ["escalation.created", "escalation.decided", "escalation.decided"]
    decided = [e for e in receiver.events() if e["type"] == "escalation.decided" and e["data"]["escalation_id"] == eid]
    assert decided[0]["data"]["status"] == "rejected"
    assert "reason" not in decided[0]["data"] and "prompt" not in json.dumps(decided[0])
    secret = webhook_secret(gateway.settings)
    for _, headers, body in receiver.hits:
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER.lower()])
