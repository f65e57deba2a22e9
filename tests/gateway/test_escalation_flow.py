"""An output that matches a protected work is held; a supervisor's approval releases it, signed."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from gateway.provenance import DECISION_LABEL

GEN = "/v1/images/generations"


def _protect_output_of(gateway: Any, seed: int, prompt: str) -> None:
    """Generate once, then register that very image as a protected work (admin, all tenants)."""
    first = gateway.client.post(
        GEN, json={"prompt": prompt, "size": "64x64", "seed": seed}, headers=gateway.auth("requester2")
    )
    assert first.status_code == 200, first.text
    png = base64.b64decode(first.json()["data"][0]["b64_json"])
    resp = gateway.client.post(
        "/v1/protected", files={"file": ("work.png", png, "image/png")}, headers=gateway.auth("admin")
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["id"].startswith("pw_")


def _held(gateway: Any, seed: int, prompt: str) -> dict[str, Any]:
    resp = gateway.client.post(
        GEN, json={"prompt": prompt, "size": "64x64", "seed": seed}, headers=gateway.auth("requester")
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["data"] == []
    mamori = body["mamori"]
    assert mamori["status"] == "held"
    assert mamori["decision"] == "escalate"
    assert "output.protected_work" in [r["code"] for r in mamori["reasons"]]
    assert mamori["poll_url"] == f"/v1/requests/{mamori['request_id']}"
    assert mamori["escalation_id"]
    return mamori


def test_protected_match_is_held_then_released_on_approval(gateway: Any) -> None:
    _protect_output_of(gateway, 4242, "a lighthouse at dusk")
    mamori = _held(gateway, 4242, "a lighthouse at dusk")

    poll = gateway.client.get(mamori["poll_url"], headers=gateway.auth("requester"))
    assert poll.status_code == 200
    assert poll.json()["mamori"]["status"] == "held"
    assert poll.json()["data"] == []

    listed = gateway.client.get("/v1/escalations", headers=gateway.auth("supervisor")).json()["data"]
    assert mamori["escalation_id"] in [e["id"] for e in listed]
    # other tenants' supervisors do not see it, requesters may not decide
    other = gateway.client.get("/v1/escalations", headers=gateway.auth("supervisor_globex")).json()["data"]
    assert mamori["escalation_id"] not in [e["id"] for e in other]
    esc = f"/v1/escalations/{mamori['escalation_id']}"
    denied = gateway.client.post(f"{esc}/approve", json={"reason": "mine"}, headers=gateway.auth("requester"))
    assert denied.status_code == 403
    assert (
        gateway.client.post(f"{esc}/approve", json={"reason": ""}, headers=gateway.auth("supervisor")).status_code
        == 400
    )

    approved = gateway.client.post(f"{esc}/approve", json={"reason": "licensed"}, headers=gateway.auth("supervisor"))
    assert approved.status_code == 200, approved.text
    again = gateway.client.post(f"{esc}/approve", json={"reason": "twice"}, headers=gateway.auth("supervisor"))
    assert again.status_code == 409

    done = gateway.client.get(mamori["poll_url"], headers=gateway.auth("requester")).json()
    assert done["mamori"]["status"] == "released"
    png = base64.b64decode(done["data"][0]["b64_json"])
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    report = gateway.services.provenance.read(png, "image/png")
    assert report.validation_state == "Trusted"
    review = report.assertions[DECISION_LABEL]["review"]
    assert review == {
        "action": "approved",
        "reviewer_role": "supervisor",
        "escalation_id": mamori["escalation_id"],
    }
    # someone else's key cannot poll it
    assert gateway.client.get(mamori["poll_url"], headers=gateway.auth("requester2")).status_code == 404
    reviews = [r for r in gateway.services.audit.for_request(mamori["request_id"]) if r.event_type == "review"]
    assert len(reviews) == 1 and reviews[0].payload["action"] == "approved"


def test_rejection_refuses_and_nobody_reviews_their_own_request(gateway: Any) -> None:
    _protect_output_of(gateway, 777, "a red bicycle")
    # an admin requests; the admin cannot approve their own request
    resp = gateway.client.post(
        GEN, json={"prompt": "a red bicycle", "size": "64x64", "seed": 777}, headers=gateway.auth("admin")
    )
    assert resp.status_code == 202, resp.text
    esc = f"/v1/escalations/{resp.json()['mamori']['escalation_id']}"
    own = gateway.client.post(f"{esc}/approve", json={"reason": "looks fine"}, headers=gateway.auth("admin"))
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "self_review"
    rejected = gateway.client.post(f"{esc}/reject", json={"reason": "too close"}, headers=gateway.auth("supervisor"))
    assert rejected.status_code == 200
    poll = gateway.client.get(resp.json()["mamori"]["poll_url"], headers=gateway.auth("admin")).json()
    assert poll["mamori"]["status"] == "refused"
    assert poll["data"] == []
    assert "review.rejected" in [r["code"] for r in poll["mamori"]["reasons"]]


def test_two_held_requests_with_the_same_pixels_are_decided_independently(gateway: Any) -> None:
    _protect_output_of(gateway, 9090, "a green umbrella")
    first = _held(gateway, 9090, "a green umbrella")
    second = _held(gateway, 9090, "a green umbrella")  # same seed and prompt: same pixels, same blob
    reject = gateway.client.post(
        f"/v1/escalations/{first['escalation_id']}/reject", json={"reason": "no"}, headers=gateway.auth("supervisor")
    )
    assert reject.status_code == 200
    approve = gateway.client.post(
        f"/v1/escalations/{second['escalation_id']}/approve", json={"reason": "ok"}, headers=gateway.auth("supervisor")
    )
    assert approve.status_code == 200, approve.text
    done = gateway.client.get(second["poll_url"], headers=gateway.auth("requester")).json()
    assert done["mamori"]["status"] == "released"
    assert len(done["data"]) == 1
