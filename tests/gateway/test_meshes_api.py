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


# ---------------------------------------------------------------- held for review

HELD_PROMPT, HELD_SEED = "a lantern hanging from a hook", 4711


@pytest.fixture(scope="module")
def protected_view(gateway: Gateway) -> None:
    """One rendered view of the GLB that HELD_PROMPT and HELD_SEED make is a protected work of tenant globex
    (so other tests' tenants are untouched): the job's copyright screening of that view escalates."""
    from gateway.mesh_pipeline import VIEW_SIZE, VIEWS, mesh_generator
    from gateway.pipeline import png_bytes
    from generators.diffusers_3d import render_views

    svc = gateway.services
    glb = mesh_generator(svc).generate(HELD_PROMPT, seed=HELD_SEED).glb
    view = render_views(glb, size=VIEW_SIZE, views=VIEWS)[1]
    svc.protected.add(name="held-mesh-view.png", image=view, data=png_bytes(view), tenant="globex")


def _held(gateway: Gateway, who: str, prompt: str, seed: int) -> dict[str, Any]:
    """Create a mesh and wait until it is held for review (or ends, which fails the caller's checks)."""
    resp = gateway.client.post(
        "/v1/3d", json={"prompt": prompt, "model": "shap-e-tiny", "seed": seed}, headers=gateway.auth(who)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] in ("queued", "in_progress") or resp.json()["mamori"].get("status") == "held"
    mesh_id = resp.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        mesh: dict[str, Any] = gateway.client.get(f"/v1/3d/{mesh_id}", headers=gateway.auth(who)).json()
        if mesh["mamori"].get("status") == "held" or mesh["status"] in ("completed", "failed"):
            return mesh
        assert time.monotonic() < deadline, mesh
        time.sleep(0.05)


def _nothing_served(gateway: Gateway, mesh_id: str, who: str) -> None:
    for path in ("/content", "/manifest"):
        resp = gateway.client.get(f"/v1/3d/{mesh_id}{path}", headers=gateway.auth(who))
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_ready", (path, resp.text)


def test_escalated_mesh_is_held_then_released_with_a_sidecar_manifest(gateway: Gateway, protected_view: None) -> None:
    import hashlib

    from gateway.provenance_sidecar import read_sidecar

    svc = gateway.services
    held = _held(gateway, "other_tenant", HELD_PROMPT, HELD_SEED)
    assert held["status"] == "in_progress", held
    mamori = held["mamori"]
    assert (mamori["status"], mamori["decision"]) == ("held", "escalate")
    assert "output.protected_work" in [r["code"] for r in mamori["reasons"]]
    assert mamori["escalation_id"] and mamori["poll_url"] == f"/v1/requests/{mamori['request_id']}"
    assert "_job" not in mamori and held["content_url"] is None and held["error"] is None
    _nothing_served(gateway, held["id"], "other_tenant")
    poll = gateway.client.get(mamori["poll_url"], headers=gateway.auth("other_tenant")).json()
    assert (poll["mamori"]["status"], poll["data"]) == ("held", [])
    [held_asset] = _record(gateway, mamori["request_id"], "mesh.held").payload["assets"]
    assert held_asset["status"] == "held" and held_asset["mime"] == "model/gltf-binary"
    assert "manifest_id" not in held_asset  # unsigned while held

    esc = f"/v1/escalations/{mamori['escalation_id']}"
    mine = gateway.client.post(f"{esc}/approve", json={"reason": "mine"}, headers=gateway.auth("other_tenant"))
    assert mine.status_code == 403
    approved = gateway.client.post(
        f"{esc}/approve", json={"reason": "our own lantern design"}, headers=gateway.auth("supervisor_globex")
    )
    assert approved.status_code == 200, approved.text

    done = _wait(gateway, held["id"], "other_tenant")
    assert done["status"] == "completed", done
    assert done["mamori"]["review"]["action"] == "approved"
    content = gateway.client.get(done["content_url"], headers=gateway.auth("other_tenant"))
    manifest = gateway.client.get(done["manifest_url"], headers=gateway.auth("other_tenant"))
    assert content.status_code == 200 and manifest.status_code == 200
    assert hashlib.sha256(content.content).hexdigest() == held_asset["held_sha256"]  # the GLB is released as held
    report = read_sidecar(svc.provenance, content.content, "model/gltf-binary", manifest.content)
    assert report.validation_state == "Trusted"
    assert report.manifest_id == done["mamori"]["manifest_ids"][-1] == content.headers["x-mamori-manifest-id"]
    decision = report.assertions[DECISION_LABEL]
    assert decision["review"]["action"] == "approved" and decision["request_id"] == mamori["request_id"]
    [reviewed] = _record(gateway, mamori["request_id"], "review").payload["assets"]
    assert reviewed["manifest_binding"] == "sidecar"
    assert reviewed["sha256"] == hashlib.sha256(content.content).hexdigest()
    assert reviewed["manifest_sha256"] == hashlib.sha256(manifest.content).hexdigest()

    # the same prompt and seed make the same GLB (the same blob): held again, and rejected this time;
    # dropping the rejected copy must not take away the GLB released above
    again = _held(gateway, "other_tenant", HELD_PROMPT, HELD_SEED)
    assert again["mamori"]["status"] == "held", again
    rejected = gateway.client.post(
        f"/v1/escalations/{again['mamori']['escalation_id']}/reject",
        json={"reason": "once is enough"},
        headers=gateway.auth("supervisor_globex"),
    )
    assert rejected.status_code == 200, rejected.text
    assert _wait(gateway, again["id"], "other_tenant")["status"] == "failed"
    still = gateway.client.get(done["content_url"], headers=gateway.auth("other_tenant"))
    assert still.status_code == 200 and still.content == content.content


def test_mesh_escalated_at_prescreen_is_held_and_a_rejection_releases_nothing(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detectors.protected_names import ProtectedNames

    names = ProtectedNames(names=[{"name": "Kettlewave", "kind": "brand"}])
    names.load()
    monkeypatch.setattr(gateway.services, "prescreen_detectors", [*gateway.services.prescreen_detectors, names])
    held = _held(gateway, "requester", "a Kettlewave kettle", 12)
    assert held["mamori"]["status"] == "held", held
    assert "prescreen.protected_name" in [r["code"] for r in held["mamori"]["reasons"]]
    state = gateway.services.requests.get(held["mamori"]["request_id"])
    assert state is not None and state.status == "held"
    [asset] = state.assets
    assert asset.held_blob is not None and gateway.services.blobs.exists(asset.held_blob)

    esc = f"/v1/escalations/{held['mamori']['escalation_id']}"
    rejected = gateway.client.post(
        f"{esc}/reject", json={"reason": "not our brand"}, headers=gateway.auth("supervisor")
    )
    assert rejected.status_code == 200, rejected.text
    done = _wait(gateway, held["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "content_policy_violation", done
    assert "review.rejected" in [r["code"] for r in done["mamori"]["reasons"]]
    assert done["content_url"] is None and done["manifest_url"] is None
    _nothing_served(gateway, held["id"], "requester")
    poll = gateway.client.get(held["mamori"]["poll_url"], headers=gateway.auth("requester")).json()
    assert (poll["mamori"]["status"], poll["data"]) == ("refused", [])
    assert not gateway.services.blobs.exists(asset.held_blob)  # rejected_retention_s = 0: dropped at once
