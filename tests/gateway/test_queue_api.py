"""The review queue over HTTP: claims, implicit claims, two approvers, comments, reassignment,
missed deadlines and expiry, and bad input that must change nothing."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from audit.models import EscalationRow
from gateway.provenance import DECISION_LABEL

GEN = "/v1/images/generations"


def held(gateway: Any, seed: int, prompt: str, who: str = "requester", **extra: Any) -> dict[str, Any]:
    """A request held for review: its output is registered as a protected work first."""
    first = gateway.client.post(
        GEN, json={"prompt": prompt, "size": "64x64", "seed": seed}, headers=gateway.auth("requester2")
    )
    assert first.status_code == 200, first.text
    png = base64.b64decode(first.json()["data"][0]["b64_json"])
    added = gateway.client.post(
        "/v1/protected", files={"file": ("work.png", png, "image/png")}, headers=gateway.auth("admin")
    )
    assert added.status_code == 200, added.text
    resp = gateway.client.post(
        GEN, json={"prompt": prompt, "size": "64x64", "seed": seed, **extra}, headers=gateway.auth(who)
    )
    assert resp.status_code == 202, resp.text
    return dict(resp.json()["mamori"])


def set_row(gateway: Any, escalation_id: str, **values: Any) -> None:
    with gateway.services.sessions.begin() as session:
        session.execute(update(EscalationRow).where(EscalationRow.id == escalation_id).values(**values))


@pytest.fixture(scope="module")
def reviewers(gateway: Any) -> dict[str, str]:
    """Two more supervisors of acme: a distinct person, and the first supervisor's second key."""
    extra = {}
    for who, name in (("supervisor_b", "Beatrice"), ("supervisor_again", "supervisor")):
        info, extra[who] = gateway.services.keys.create(role="supervisor", tenant="acme", name=name)
        gateway.keys[who] = extra[who]
        extra[who + "_id"] = info.id
    return extra


def post(gateway: Any, path: str, who: str, body: dict[str, Any] | None = None) -> Any:
    return gateway.client.post(path, json=body if body is not None else {}, headers=gateway.auth(who))


def test_claim_then_implicit_claim_and_clear_errors(gateway: Any, reviewers: dict[str, str]) -> None:
    m = held(gateway, 5101, "a blue teapot")
    esc = f"/v1/escalations/{m['escalation_id']}"
    item = gateway.client.get(esc, headers=gateway.auth("supervisor")).json()
    assert item["status"] == "pending" and item["priority"] in ("normal", "high") and item["deadline_at"]
    assert item["prompt_masked"] == "a blue teapot"
    assert "callback_url" not in item

    claimed = post(gateway, f"{esc}/claim", "supervisor")
    assert claimed.status_code == 200, claimed.text
    lease = claimed.json()["lease_id"]
    other = post(gateway, f"{esc}/approve", "supervisor_b", {"reason": "fine"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "claimed"
    assert post(gateway, f"{esc}/claim", "supervisor_b").json()["error"]["code"] == "claimed"
    assert post(gateway, f"{esc}/claim", "requester").status_code == 403  # requesters may not claim
    assert post(gateway, f"{esc}/comments", "supervisor", {"text": "checking the licence"}).status_code == 200

    # the lease runs out: the old lease id is refused, nothing changes, and another reviewer may act
    set_row(gateway, m["escalation_id"], lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    stale = post(gateway, f"{esc}/claim", "supervisor", {"lease_id": lease})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "lease_expired"
    assert post(gateway, f"{esc}/release", "supervisor").json()["error"]["code"] == "lease_expired"
    assert post(gateway, f"{esc}/approve", "supervisor_b", {"reason": ""}).status_code == 400
    approved = post(gateway, f"{esc}/approve", "supervisor_b", {"reason": "licensed"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"

    again = post(gateway, f"{esc}/reject", "supervisor", {"reason": "too late"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "escalation_decided"
    assert post(gateway, f"{esc}/claim", "supervisor").status_code == 409
    detail = gateway.client.get(esc, headers=gateway.auth("supervisor")).json()
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds[:2] == ["claim", "comment"] and "approval" in kinds
    assert detail["events"][1]["text"] == "checking the licence"

    # unknown ids and other tenants' items: 404, indistinguishable
    for who, path in (("supervisor", "/v1/escalations/nope"), ("supervisor_globex", esc)):
        assert gateway.client.get(path, headers=gateway.auth(who)).status_code == 404
        resp = post(gateway, f"{path}/claim", who)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "escalation_not_found"


def test_two_distinct_approvers_release_and_the_manifest_records_both_roles(
    gateway: Any, reviewers: dict[str, str]
) -> None:
    m = held(gateway, 5202, "a yellow kite")
    set_row(gateway, m["escalation_id"], approvals_required=2)
    esc = f"/v1/escalations/{m['escalation_id']}"
    first = post(gateway, f"{esc}/approve", "supervisor", {"reason": "ok by me"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending" and first.json()["approvals"] == {"given": 1, "required": 2}
    poll = gateway.client.get(m["poll_url"], headers=gateway.auth("requester")).json()
    assert poll["mamori"]["status"] == "held" and poll["data"] == []
    same_person = post(gateway, f"{esc}/approve", "supervisor_again", {"reason": "me again"})
    assert same_person.status_code == 409 and same_person.json()["error"]["code"] == "already_approved"
    second = post(gateway, f"{esc}/approve", "supervisor_b", {"reason": "agreed"})
    assert second.status_code == 200 and second.json()["status"] == "approved"
    done = gateway.client.get(m["poll_url"], headers=gateway.auth("requester")).json()
    assert done["mamori"]["status"] == "released"
    report = gateway.services.provenance.read(base64.b64decode(done["data"][0]["b64_json"]), "image/png")
    review = report.assertions[DECISION_LABEL]["review"]
    assert review["action"] == "approved" and review["approvals"] == 2
    assert review["reviewer_roles"] == ["supervisor", "supervisor"]
    assert "Beatrice" not in str(report.assertions)
    actions = [
        r.payload["action"] for r in gateway.services.audit.for_request(m["request_id"]) if r.event_type == "review"
    ]
    assert actions == ["approval_recorded", "approved"]


def test_reassign_and_filters(gateway: Any, reviewers: dict[str, str]) -> None:
    m = held(gateway, 5303, "a purple owl")
    esc = f"/v1/escalations/{m['escalation_id']}"
    bad = post(gateway, f"{esc}/reassign", "supervisor", {"to": "k0000000000000000"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_assignee"
    moved = post(gateway, f"{esc}/reassign", "supervisor", {"to": reviewers["supervisor_b_id"], "reason": "yours"})
    assert moved.status_code == 200 and moved.json()["assigned_to"] == reviewers["supervisor_b_id"]
    assert post(gateway, f"{esc}/approve", "supervisor", {"reason": "mine now"}).json()["error"]["code"] == "claimed"
    listed = gateway.client.get("/v1/escalations?status=claimed", headers=gateway.auth("supervisor")).json()["data"]
    assert m["escalation_id"] in [e["id"] for e in listed]
    assert gateway.client.get("/v1/escalations?status=bogus", headers=gateway.auth("supervisor")).status_code == 400
    counts = gateway.client.get("/v1/escalations/counts", headers=gateway.auth("supervisor")).json()
    assert counts["status"]["claimed"] >= 1
    assert post(gateway, f"{esc}/reject", "supervisor_b", {"reason": "too close"}).status_code == 200


def test_missed_deadline_raises_priority_and_expiry_rejects(gateway: Any) -> None:
    from gateway.review import run_sweep

    m = held(gateway, 5404, "an orange tram")
    eid = m["escalation_id"]
    past = datetime.now(UTC) - timedelta(seconds=1)
    before = gateway.services.escalations.get(eid)
    set_row(gateway, eid, deadline_at=past)
    assert run_sweep(gateway.services, ids=[eid])["deadlines_missed"] == 1
    after = gateway.services.escalations.get(eid)
    assert after.priority != before.priority and after.status == "pending"
    set_row(gateway, eid, expires_at=past)
    assert run_sweep(gateway.services, ids=[eid])["expired"] == 1
    poll = gateway.client.get(m["poll_url"], headers=gateway.auth("requester")).json()
    assert poll["mamori"]["status"] == "refused"
    assert "review.expired" in [r["code"] for r in poll["mamori"]["reasons"]]
    review = [r for r in gateway.services.audit.for_request(m["request_id"]) if r.event_type == "review"]
    assert review[-1].payload["action"] == "expired" and review[-1].payload["reviewer"]["role"] == "system"
    queue_events = [r.payload["action"] for r in gateway.services.audit.for_request(m["request_id"])
                    if r.event_type == "escalation"]  # fmt: skip
    assert "deadline_missed" in queue_events
    late = post(gateway, f"/v1/escalations/{eid}/approve", "supervisor", {"reason": "late"})
    assert late.status_code == 409
