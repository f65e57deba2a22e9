"""httpx against the live server: `POST /v1/3d`, poll, download the GLB and its sidecar C2PA manifest,
validated with c2pa and the served trust anchor; and a refused prompt.

The session's one live server (tests/conftest.py `live_server`) runs jobs in Huey's immediate mode,
so `create` already answers a finished job; the test still polls like a client would.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_httpx_creates_polls_and_downloads_a_signed_glb(live_server: Any) -> None:
    import c2pa
    import httpx
    import trimesh

    headers = {"Authorization": f"Bearer {live_server.keys['requester']}"}
    with httpx.Client(base_url=live_server.root, headers=headers, timeout=60) as client:
        created = client.post("/v1/3d", json={"prompt": "a teapot with a round lid", "seed": 5})
        assert created.status_code == 200, created.text
        mesh = created.json()
        assert mesh["object"] == "mesh" and mesh["id"].startswith("mesh_")
        deadline = time.monotonic() + 120
        while mesh["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            mesh = client.get(f"/v1/3d/{mesh['id']}").json()
        assert mesh["status"] == "completed", mesh
        glb = client.get(mesh["content_url"])
        manifest = client.get(mesh["manifest_url"])
        anchor = client.get("/v1/provenance/trust-anchor").text
    assert glb.headers["content-type"] == "model/gltf-binary"
    assert manifest.headers["content-type"] == "application/c2pa"
    loaded = trimesh.load(io.BytesIO(glb.content), file_type="glb", force="mesh")
    assert len(loaded.faces) > 0

    # validated independently of the gateway's own reader: c2pa with the anchor the gateway serves
    context = c2pa.Context(settings=c2pa.Settings.from_dict({"trust": {"trust_anchors": anchor}}))
    with c2pa.Reader("model/gltf-binary", io.BytesIO(glb.content), manifest.content, context=context) as reader:
        assert reader.get_validation_state() == "Trusted"
        store = json.loads(reader.json())
    assert store["active_manifest"] == mesh["mamori"]["manifest_ids"][0]
    active = store["manifests"][store["active_manifest"]]
    labels = {a["label"] for a in active["assertions"]}
    assert "mamori.decision" in labels
    records = live_server.services.audit.for_request(mesh["mamori"]["request_id"])
    assert [r.event_type for r in records].count("mesh.completed") == 1


def test_httpx_gets_a_policy_refusal(live_server: Any) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {live_server.keys['requester']}"}
    resp = httpx.post(f"{live_server.root}/v1/3d", json={"prompt": "a forbidden-zebra figurine"}, headers=headers)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert body["mamori"]["decision"] == "block"


def test_httpx_held_glb_is_released_with_a_sidecar_manifest_after_approval(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt naming a protected brand holds the GLB for review: nothing downloadable until a supervisor
    approves; then the GLB and a sidecar manifest recording the review, validated with c2pa and the anchor."""
    import c2pa
    import httpx

    from detectors.protected_names import ProtectedNames

    names = ProtectedNames(names=[{"name": "Kettlewave", "kind": "brand"}])
    names.load()
    services = live_server.services
    monkeypatch.setattr(services, "prescreen_detectors", [*services.prescreen_detectors, names])
    headers = {"Authorization": f"Bearer {live_server.keys['requester']}"}
    supervisor = {"Authorization": f"Bearer {live_server.keys['supervisor']}"}
    with httpx.Client(base_url=live_server.root, headers=headers, timeout=60) as client:
        mesh = client.post("/v1/3d", json={"prompt": "a Kettlewave teapot", "seed": 6}).json()
        deadline = time.monotonic() + 120
        while mesh["mamori"].get("status") != "held" and mesh["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, mesh
            time.sleep(0.1)
            mesh = client.get(f"/v1/3d/{mesh['id']}").json()
        assert (mesh["status"], mesh["mamori"]["status"]) == ("in_progress", "held"), mesh
        assert client.get(f"/v1/3d/{mesh['id']}/content").status_code == 404
        assert client.get(f"/v1/3d/{mesh['id']}/manifest").status_code == 404
        approved = client.post(
            f"/v1/escalations/{mesh['mamori']['escalation_id']}/approve",
            json={"reason": "our own brand"},
            headers=supervisor,
        )
        assert approved.status_code == 200, approved.text
        mesh = client.get(f"/v1/3d/{mesh['id']}").json()
        assert mesh["status"] == "completed", mesh
        glb = client.get(mesh["content_url"])
        manifest = client.get(mesh["manifest_url"])
        anchor = client.get("/v1/provenance/trust-anchor").text
    context = c2pa.Context(settings=c2pa.Settings.from_dict({"trust": {"trust_anchors": anchor}}))
    with c2pa.Reader("model/gltf-binary", io.BytesIO(glb.content), manifest.content, context=context) as reader:
        assert reader.get_validation_state() == "Trusted"
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    [decision] = [a["data"] for a in active["assertions"] if a["label"] == "mamori.decision"]
    assert decision["review"]["action"] == "approved" and decision["review"]["reviewer_role"] == "supervisor"
