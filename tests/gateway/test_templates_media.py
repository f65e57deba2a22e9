"""Templates of the queued and audio modalities (issue 8): 3D, sound and video fills are governed and signed.

Each runs the governed path of its direct route: a 3D fill answers the queued mesh object (a GLB
with a sidecar C2PA manifest once the job completes, as `POST /v1/3d`), a sound fill the signed WAV
(as `POST /v1/audio/generations`), and a video fill the queued video object (as `POST /v1/videos`).
The session gateway's queue runs the 3D and video jobs on its consumer threads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.provenance import DECISION_LABEL
from tests.conftest import Gateway

STARTERS = Path(__file__).resolve().parents[2] / "gateway" / "starter_templates"
SOUND_SPEC: dict[str, Any] = {
    "name": "Product jingle",
    "modality": "audio",
    "pattern": "a short {mood} jingle for the {product}",
    "slots": [
        {"name": "mood", "type": "choice", "choices": ["calm", "cheerful"]},
        {"name": "product", "type": "text", "max_length": 40},
    ],
    "params": {"seconds": 1, "seed_policy": "per-request"},
}


@pytest.fixture(scope="module")
def compliance(gateway: Gateway) -> dict[str, str]:
    _, secret = gateway.services.keys.create(role="compliance", tenant="acme", name="carla")
    return {"Authorization": f"Bearer {secret}"}


def _approved(gateway: Gateway, compliance: dict[str, str], spec: dict[str, Any]) -> str:
    c = gateway.client
    created = c.post("/v1/templates", json=spec, headers=gateway.auth("admin"))
    assert created.status_code == 201, created.text
    tid = str(created.json()["id"])
    assert c.post(f"/v1/templates/{tid}/submit", headers=gateway.auth("admin")).status_code == 200
    approved = c.post(f"/v1/templates/{tid}/approve", headers=compliance)
    assert approved.status_code == 200, approved.text
    return tid


def _starter(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((STARTERS / name).read_text())
    return spec


def _request_record(gateway: Gateway, request_id: str) -> dict[str, Any]:
    [record] = [r.payload for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    return record


def _wait(gateway: Gateway, url: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = gateway.client.get(url, headers=gateway.auth("requester"))
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_a_3d_template_gives_a_queued_governed_glb_with_a_signed_sidecar_manifest(
    gateway: Gateway, compliance: dict[str, str]
) -> None:
    from gateway.provenance_sidecar import read_sidecar

    tid = _approved(gateway, compliance, _starter("3d-mockup.yaml"))
    slots = {"product": "blue kettle", "material": "ceramic"}
    resp = gateway.client.post(
        f"/v1/templates/{tid}/generate", json={"slots": slots, "seed": 7}, headers=gateway.auth("requester")
    )
    assert resp.status_code == 200, resp.text
    mesh = resp.json()
    assert mesh["object"] == "mesh" and mesh["id"].startswith("mesh_")
    assert mesh["mamori"]["template"] == {"id": tid, "version": 1, "name": "3D mock-up"}
    assert mesh["mamori"]["decision"] == "allow" and mesh["seed"] == 7

    done = _wait(gateway, f"/v1/3d/{mesh['id']}")
    assert done["status"] == "completed", done
    glb = gateway.client.get(done["content_url"], headers=gateway.auth("requester"))
    sidecar = gateway.client.get(done["manifest_url"], headers=gateway.auth("requester"))
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    assert sidecar.status_code == 200 and sidecar.headers["content-type"] == "application/c2pa"
    report = read_sidecar(gateway.services.provenance, glb.content, "model/gltf-binary", sidecar.content)
    assert report.validation_state == "Trusted" and report.manifest_id == done["mamori"]["manifest_ids"][0]
    assert report.assertions[DECISION_LABEL]["request_id"] == mesh["mamori"]["request_id"]

    record = _request_record(gateway, mesh["mamori"]["request_id"])
    assert record["endpoint"] == "templates.generate" and record["status"] == "queued"
    assert record["request"]["template"]["id"] == tid and record["request"]["mesh_id"] == mesh["id"]
    assert set(record["request"]["slots_sha256"]) == {"product", "material", "style"}
    assert "blue kettle" not in str(record)
    prescreen = next(d for d in record["decisions"] if d["stage"] == "prescreen")
    assert prescreen["input"]["request"]["template"]["id"] == tid
    events = [r.event_type for r in gateway.services.audit.for_request(mesh["mamori"]["request_id"])]
    assert events == ["request", "mesh.completed"]


def test_a_sound_template_gives_a_signed_wav_and_audits_the_template(
    gateway: Gateway, compliance: dict[str, str]
) -> None:
    tid = _approved(gateway, compliance, SOUND_SPEC)
    body = {"slots": {"mood": "calm", "product": "blue kettle"}, "seed": 3}
    resp = gateway.client.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("requester"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/wav" and resp.content[:4] == b"RIFF"
    report = gateway.services.provenance.read(resp.content, "audio/wav")
    assert report.validation_state == "Trusted" and report.manifest_id == resp.headers["x-mamori-manifest-id"]
    request_id = resp.headers["x-mamori-request-id"]
    assert report.assertions[DECISION_LABEL]["request_id"] == request_id
    record = _request_record(gateway, request_id)
    assert record["endpoint"] == "templates.generate" and record["status"] == "released"
    assert record["request"]["template"]["id"] == tid
    assert record["request"]["kind"] == "sound" and record["request"]["duration_s"] == 1.0
    assert record["assets"][0]["manifest_id"] == report.manifest_id


def test_a_sound_template_longer_than_the_gateway_allows_is_a_clear_400(
    gateway: Gateway, compliance: dict[str, str]
) -> None:
    tid = _approved(gateway, compliance, {**SOUND_SPEC, "name": "Long jingle", "params": {"seconds": 60}})
    body = {"slots": {"mood": "calm", "product": "kettle"}}
    resp = gateway.client.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "template_duration_unavailable"
    record = _request_record(gateway, resp.headers["x-request-id"])
    assert record["error"]["code"] == "template_duration_unavailable" and record["assets"] == []


def test_a_video_template_gives_a_queued_video_that_completes_signed(
    gateway: Gateway, compliance: dict[str, str]
) -> None:
    spec = {**_starter("safety-training-clip.yaml"), "params": {"size": "64x64", "seconds": 4, "seed_policy": "random"}}
    tid = _approved(gateway, compliance, spec)
    slots = {"action": "lifts a box", "setting": "warehouse", "ppe": "gloves and goggles"}
    resp = gateway.client.post(
        f"/v1/templates/{tid}/generate", json={"slots": slots}, headers=gateway.auth("requester")
    )
    assert resp.status_code == 200, resp.text
    video = resp.json()
    assert video["object"] == "video" and video["mamori"]["template"]["id"] == tid
    done = _wait(gateway, f"/v1/videos/{video['id']}")
    assert done["status"] == "completed", done  # the prompt reached the queue sealed, as POST /v1/videos sends it
    mp4 = gateway.client.get(f"/v1/videos/{video['id']}/content", headers=gateway.auth("requester"))
    assert mp4.status_code == 200
    report = gateway.services.provenance.read(mp4.content, "video/mp4")
    assert report.validation_state == "Trusted"
    assert report.assertions[DECISION_LABEL]["request_id"] == video["mamori"]["request_id"]
