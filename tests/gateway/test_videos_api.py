"""`/v1/videos` (issue 7): prescreen at create, generation as a job on the queue, signed MP4 download."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.provenance import DECISION_LABEL
from tests.conftest import Gateway


def _create(gateway: Gateway, prompt: str, who: str = "requester") -> Any:
    body = {"model": "wan-2.1-tiny", "prompt": prompt, "seconds": "4", "size": "32x32", "seed": 7}
    return gateway.client.post("/v1/videos", json=body, headers=gateway.auth(who))


def _wait(gateway: Gateway, video_id: str, who: str = "requester", timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = gateway.client.get(f"/v1/videos/{video_id}", headers=gateway.auth(who))
        assert resp.status_code == 200, resp.text
        video: dict[str, Any] = resp.json()
        if video["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return video
        time.sleep(0.05)


def _records(gateway: Gateway, event: str, video: dict[str, Any]) -> list[Any]:
    records = gateway.services.audit.for_request(video["mamori"]["request_id"])
    return [r for r in records if r.event_type == event]


def test_create_complete_and_download_signed_mp4(gateway: Gateway) -> None:
    resp = _create(gateway, "a red lighthouse on a rocky coast")
    assert resp.status_code == 200, resp.text
    video = resp.json()
    assert video["object"] == "video" and video["status"] in ("queued", "in_progress", "completed")
    assert video["id"].startswith("video_"), video
    assert video["mamori"]["decision"] == "allow", video["mamori"]

    done = _wait(gateway, video["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["seconds"] == "4" and done["size"] == "32x32"
    content = gateway.client.get(f"/v1/videos/{video['id']}/content", headers=gateway.auth("requester"))
    assert content.status_code == 200
    assert content.headers["content-type"] == "video/mp4"
    assert content.content[4:8] == b"ftyp"

    report = gateway.services.provenance.read(content.content, "video/mp4")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == done["mamori"]["manifest_ids"][0]
    assert report.assertions[DECISION_LABEL]["decision"] == "allow"
    [record] = _records(gateway, "video.completed", done)
    assert record.payload["assets"][0]["manifest_id"] == report.manifest_id
    assert len(record.payload["assets"][0]["sha256"]) == 64


def test_denied_term_is_refused_at_create(gateway: Gateway) -> None:
    resp = _create(gateway, "a forbidden-zebra running")
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert body["mamori"]["decision"] == "block"


def test_another_key_cannot_read_the_video(gateway: Gateway) -> None:
    video_id = _create(gateway, "a quiet harbour").json()["id"]
    _wait(gateway, video_id)
    assert gateway.client.get(f"/v1/videos/{video_id}", headers=gateway.auth("requester2")).status_code == 404
    other = gateway.client.get(f"/v1/videos/{video_id}/content", headers=gateway.auth("other_tenant"))
    assert other.status_code == 404


def test_backend_fault_fails_closed(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.video_pipeline import video_generator

    generator = video_generator(gateway.services)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(generator, "generate", broken)
    video_id = _create(gateway, "a windmill").json()["id"]
    done = _wait(gateway, video_id)
    assert done["status"] == "failed"
    assert done["error"] is not None
    assert any(r["code"] == "system.backend_error" for r in done["mamori"]["reasons"])
    content = gateway.client.get(f"/v1/videos/{video_id}/content", headers=gateway.auth("requester"))
    assert content.status_code == 404
    assert _records(gateway, "video.failed", done)


def _events(
    url: str, key: str, video_id: str, into: list[tuple[str, dict[str, Any]]] | None = None, timeout: float = 60.0
) -> list[tuple[str, dict[str, Any]]]:
    """Read `GET /v1/videos/{id}/events` to its end; (event name, video object) pairs, appended as they come."""
    import json

    import httpx

    events: list[tuple[str, dict[str, Any]]] = [] if into is None else into
    name = ""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("GET", f"{url}/videos/{video_id}/events", headers=headers, timeout=timeout) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def test_events_stream_follows_the_job_to_its_end(gateway: Gateway, live_server: Any) -> None:
    video_id = _create(gateway, "a slow river at dawn").json()["id"]
    events = _events(live_server.url, gateway.keys["requester"], video_id)
    names = [n for n, _ in events]
    assert names[-1] == "video.completed", names
    assert set(names) <= {"video.queued", "video.in_progress", "video.progress", "video.completed"}
    progress = [v["progress"] for _, v in events]
    assert progress == sorted(progress) and progress[-1] == 100
    assert events[-1][1]["id"] == video_id and events[-1][1]["mamori"]["manifest_ids"]
    # owner-scoped like retrieve: another key of the tenant, and another tenant, get 404 before any event
    import httpx

    for who in ("requester2", "other_tenant"):
        other = httpx.get(f"{live_server.url}/videos/{video_id}/events", headers=gateway.auth(who))
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_escalated_video_is_held_then_released_by_a_supervisor(gateway: Gateway, live_server: Any) -> None:
    """A sampled frame matches a protected work (registered for tenant globex only, so other tests are
    untouched): the video is held, a supervisor approves, and the MP4's manifest records the review."""
    import threading

    from gateway.pipeline import png_bytes
    from gateway.video_pipeline import video_generator

    svc = gateway.services
    prompt, seed = "a lantern swinging in the wind", 31337
    frames = video_generator(svc).generate(prompt, width=32, height=32, num_frames=9, seed=seed).frames
    from PIL import Image

    frame = Image.fromarray(frames[0])
    svc.protected.add(name="held-video-frame.png", image=frame, data=png_bytes(frame), tenant="globex")

    body = {"model": "wan-2.1-tiny", "prompt": prompt, "seconds": "4", "size": "32x32", "seed": seed}
    created = gateway.client.post("/v1/videos", json=body, headers=gateway.auth("other_tenant"))
    assert created.status_code == 200, created.text
    video_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        held = gateway.client.get(f"/v1/videos/{video_id}", headers=gateway.auth("other_tenant")).json()
        if held["mamori"].get("status") == "held" or held["status"] in ("completed", "failed"):
            break
        assert time.monotonic() < deadline, held
        time.sleep(0.05)
    assert held["status"] == "in_progress", held
    mamori = held["mamori"]
    assert "output.protected_work" in [r["code"] for r in mamori["reasons"]]
    assert mamori["escalation_id"] and mamori["poll_url"] == f"/v1/requests/{mamori['request_id']}"
    assert "_job" not in mamori
    content = gateway.client.get(f"/v1/videos/{video_id}/content", headers=gateway.auth("other_tenant"))
    assert content.status_code == 404 and content.json()["error"]["code"] == "not_ready"

    streamed: list[tuple[str, dict[str, Any]]] = []
    reader = threading.Thread(
        target=_events, args=(live_server.url, gateway.keys["other_tenant"], video_id, streamed), daemon=True
    )
    reader.start()
    deadline = time.monotonic() + 30
    while not streamed:  # the stream has said "held" before the supervisor decides
        assert time.monotonic() < deadline and reader.is_alive()
        time.sleep(0.05)
    esc = f"/v1/escalations/{mamori['escalation_id']}"
    mine = gateway.client.post(f"{esc}/approve", json={"reason": "mine"}, headers=gateway.auth("other_tenant"))
    assert mine.status_code == 403
    approved = gateway.client.post(
        f"{esc}/approve", json={"reason": "licensed footage"}, headers=gateway.auth("supervisor_globex")
    )
    assert approved.status_code == 200, approved.text
    reader.join(timeout=30)
    assert streamed[0][0] == "video.held" and streamed[-1][0] == "video.completed", streamed

    done = gateway.client.get(f"/v1/videos/{video_id}", headers=gateway.auth("other_tenant")).json()
    assert done["status"] == "completed" and done["mamori"]["review"]["action"] == "approved", done
    content = gateway.client.get(f"/v1/videos/{video_id}/content", headers=gateway.auth("other_tenant"))
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    report = svc.provenance.read(content.content, "video/mp4")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == done["mamori"]["manifest_ids"][-1]
    assert report.assertions[DECISION_LABEL]["review"]["action"] == "approved"
    events = [r.event_type for r in svc.audit.for_request(mamori["request_id"])]
    assert "video.held" in events and "review" in events
