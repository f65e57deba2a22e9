"""`/v1/3d` (issue 7): prescreen, Shap-E on the job queue, rendered views screened, GLB with a sidecar manifest."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.provenance import DECISION_LABEL, TRAINED_ALGORITHMIC_MEDIA
from tests.conftest import Gateway


def _create(gateway: Gateway, prompt: str, who: str = "requester", **extra: Any) -> Any:
    body = {"prompt": prompt, "model": "shap-e-tiny", "seed": 11, **extra}
    return gateway.client.post("/v1/3d", json=body, headers=gateway.auth(who))


def _wait(gateway: Gateway, mesh_id: str, who: str = "requester", timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = gateway.client.get(f"/v1/3d/{mesh_id}", headers=gateway.auth(who))
        assert resp.status_code == 200, resp.text
        mesh: dict[str, Any] = resp.json()
        if mesh["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return mesh
        time.sleep(0.05)


def _events(gateway: Gateway, request_id: str) -> list[str]:
    return [r.event_type for r in gateway.services.audit.for_request(request_id)]


def _record(gateway: Gateway, request_id: str, event: str) -> Any:
    [record] = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == event]
    return record


@pytest.fixture(scope="module")
def released(gateway: Gateway) -> dict[str, Any]:
    resp = _create(gateway, "a blue ceramic vase")
    assert resp.status_code == 200, resp.text
    created = resp.json()
    assert created["object"] == "mesh" and created["id"].startswith("mesh_")
    assert created["status"] in ("queued", "in_progress", "completed")
    assert created["mamori"]["decision"] == "allow"
    done = _wait(gateway, created["id"])
    assert done["status"] == "completed", done
    return done


def test_released_glb_and_sidecar_manifest_validate(gateway: Gateway, released: dict[str, Any]) -> None:
    from gateway.provenance_sidecar import read_sidecar

    mesh_id = released["id"]
    content = gateway.client.get(f"/v1/3d/{mesh_id}/content", headers=gateway.auth("requester"))
    assert content.status_code == 200
    assert content.headers["content-type"] == "model/gltf-binary"
    assert content.content[:4] == b"glTF"
    manifest = gateway.client.get(f"/v1/3d/{mesh_id}/manifest", headers=gateway.auth("requester"))
    assert manifest.status_code == 200
    assert manifest.headers["content-type"] == "application/c2pa"

    provenance = gateway.services.provenance
    report = read_sidecar(provenance, content.content, "model/gltf-binary", manifest.content)
    assert report.validation_state == "Trusted"
    assert report.manifest_id == released["mamori"]["manifest_ids"][0] == content.headers["x-mamori-manifest-id"]
    assert report.assertions[DECISION_LABEL]["decision"] == "allow"
    [made] = report.assertions["c2pa.actions.v2"]["actions"]
    assert made["action"] == "c2pa.created" and made["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA

    tampered = bytearray(content.content)
    tampered[len(tampered) // 2] ^= 0x01
    broken = read_sidecar(provenance, bytes(tampered), "model/gltf-binary", manifest.content)
    assert broken.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in broken.failure_codes


def test_create_and_completion_are_audited_with_the_glb_hash(gateway: Gateway, released: dict[str, Any]) -> None:
    import hashlib

    request_id = released["mamori"]["request_id"]
    events = _events(gateway, request_id)
    assert events.count("request") == 1 and events.count("mesh.completed") == 1
    [asset] = _record(gateway, request_id, "mesh.completed").payload["assets"]
    content = gateway.client.get(f"/v1/3d/{released['id']}/content", headers=gateway.auth("requester")).content
    assert asset["sha256"] == hashlib.sha256(content).hexdigest()
    assert asset["manifest_id"] == released["mamori"]["manifest_ids"][0]
    assert asset["mime"] == "model/gltf-binary" and asset["manifest_binding"] == "sidecar"
    decisions = _record(gateway, request_id, "mesh.completed").payload["decisions"]
    assert any(d["stage"] == "output" for d in decisions)  # the rendered views went through the policy


def test_denied_term_is_refused_at_create(gateway: Gateway) -> None:
    resp = _create(gateway, "a forbidden-zebra statue")
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert body["mamori"]["decision"] == "block"
    assert _events(gateway, body["mamori"]["request_id"]) == ["request"]


@pytest.mark.parametrize(
    "body", [{"prompt": ""}, {"prompt": "a cup", "seed": -1}, {"prompt": "a cup", "guidance": "lots"}, {}]
)
def test_invalid_bodies_are_400(gateway: Gateway, body: dict[str, Any]) -> None:
    resp = gateway.client.post("/v1/3d", json=body, headers=gateway.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] in ("invalid_request", "invalid_json")


def test_another_key_or_tenant_cannot_read(gateway: Gateway, released: dict[str, Any]) -> None:
    mesh_id = released["id"]
    for who in ("requester2", "other_tenant"):
        for path in ("", "/content", "/manifest"):
            resp = gateway.client.get(f"/v1/3d/{mesh_id}{path}", headers=gateway.auth(who))
            assert resp.status_code == 404, (who, path)
    supervisor = gateway.client.post("/v1/3d", json={"prompt": "a cup"}, headers=gateway.auth("supervisor"))
    assert supervisor.status_code == 403


def test_backend_fault_fails_closed_and_is_audited(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.mesh_pipeline import mesh_generator

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(mesh_generator(gateway.services), "generate", broken)
    resp = _create(gateway, "a windmill")
    assert resp.status_code == 200, resp.text
    done = _wait(gateway, resp.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "mamori_fault"
    assert any(r["code"] == "system.backend_error" for r in done["mamori"]["reasons"])
    for path in ("/content", "/manifest"):
        assert gateway.client.get(f"/v1/3d/{done['id']}{path}", headers=gateway.auth("requester")).status_code == 404
    record = _record(gateway, done["mamori"]["request_id"], "mesh.failed")
    assert record.payload["mamori"]["decision"] == "fault"


def test_signing_fault_releases_nothing(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.provenance_sidecar as sidecar
    from gateway.provenance import ProvenanceError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ProvenanceError("signer unavailable")

    monkeypatch.setattr(sidecar, "sign_sidecar", refuse)
    done = _wait(gateway, _create(gateway, "a small boat").json()["id"])
    assert done["status"] == "failed"
    assert any(r["code"] == "system.signing_error" for r in done["mamori"]["reasons"])
    assert gateway.client.get(f"/v1/3d/{done['id']}/content", headers=gateway.auth("requester")).status_code == 404
    assert _record(gateway, done["mamori"]["request_id"], "mesh.failed")
