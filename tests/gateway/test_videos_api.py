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
