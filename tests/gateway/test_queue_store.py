"""Queue semantics on the store alone: leases, distinct approvers, self-approval, replays, sweeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from audit.escalations import (
    AlreadyApproved,
    DuplicateSubmission,
    EscalationNotFound,
    EscalationStateError,
    EscalationStore,
    LeaseExpired,
    LeaseHeld,
    Reviewer,
    SelfApprovalError,
)
from audit.models import EscalationRow

ANN = Reviewer("k-ann", "supervisor", "Ann")
ANN2 = Reviewer("k-ann-2", "supervisor", "ann")  # the same person with a second key
BOB = Reviewer("k-bob", "supervisor", "Bob")


@pytest.fixture
def store(tmp_path: Path) -> EscalationStore:
    from audit.db import create_db_engine, session_factory
    from gateway.bootstrap import migrate

    engine = create_db_engine(f"sqlite:///{tmp_path / 'q.db'}")
    migrate(engine)
    return EscalationStore(session_factory(engine))


def _item(store: EscalationStore, approvals: int = 1, **kw: object) -> str:
    e = store.create(
        request_id="req_" + str(approvals),
        tenant="acme",
        requester_key_id="k-req",
        requester_name="Rita",
        reasons=[{"code": "output.protected_work"}],
        obligations={"review": {"approvals": approvals, "priority": "normal", "category": "protected_work"}},
        **kw,  # type: ignore[arg-type]
    )
    assert (e.status, e.priority, e.category, e.approvals_required) == (
        "pending",
        "normal",
        "protected_work",
        approvals,
    )
    return e.id


def _set(store: EscalationStore, escalation_id: str, **values: object) -> None:
    with store._sessions.begin() as session:
        session.execute(update(EscalationRow).where(EscalationRow.id == escalation_id).values(**values))


def test_claim_lease_release_and_lapse(store: EscalationStore) -> None:
    eid = _item(store)
    claimed = store.claim(eid, ANN, lease_s=60)
    assert claimed.status == "claimed" and claimed.claimed_by == "k-ann" and claimed.lease_id
    with pytest.raises(LeaseHeld):
        store.claim(eid, BOB, lease_s=60)
    with pytest.raises(LeaseHeld):
        store.approve(eid, BOB, reason="ok")  # an implicit claim respects a live lease
    with pytest.raises(LeaseExpired):
        store.release(eid, BOB)
    renewed = store.claim(eid, ANN, lease_s=60, lease_id=claimed.lease_id)
    assert renewed.lease_id == claimed.lease_id
    assert store.release(eid, ANN).status == "pending"

    # a lease that ran out: the holder can neither renew nor release it, anyone may claim
    again = store.claim(eid, ANN, lease_s=60)
    _set(store, eid, lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert store.get(eid).effective_status() == "pending"
    with pytest.raises(LeaseExpired):
        store.claim(eid, ANN, lease_s=60, lease_id=again.lease_id)
    with pytest.raises(LeaseExpired):
        store.release(eid, ANN, lease_id=again.lease_id)
    assert store.claim(eid, BOB, lease_s=60).claimed_by == "k-bob"
    kinds = [e.kind for e in store.events(eid)]
    assert kinds.count("claim") == 4 and "release" in kinds


def test_two_distinct_reviewers_and_no_self_approval(store: EscalationStore) -> None:
    eid = _item(store, approvals=2)
    with pytest.raises(SelfApprovalError):
        store.approve(eid, Reviewer("k-req", "admin", "Rita"), reason="mine")
    with pytest.raises(SelfApprovalError):  # same display name, another key: still the requester
        store.approve(eid, Reviewer("k-other", "supervisor", "rita"), reason="mine")
    with pytest.raises(ValueError, match="reason"):
        store.reject(eid, ANN, reason="  ")
    first, final = store.approve(eid, ANN, reason="fine", expect_final=False)
    assert not final and first.status == "pending" and len(first.approvals) == 1
    with pytest.raises(AlreadyApproved):
        store.approve(eid, ANN, reason="again")
    with pytest.raises(AlreadyApproved):
        store.approve(eid, ANN2, reason="my other key")
    with pytest.raises(EscalationStateError):  # the caller expected a different outcome: nothing changes
        store.approve(eid, BOB, reason="ok", expect_final=False)
    assert len(store.get(eid).approvals) == 1
    second, final = store.approve(eid, BOB, reason="ok", expect_final=True)
    assert final and second.status == "approved" and second.decided_by == "k-bob"
    with pytest.raises(EscalationStateError):
        store.reject(eid, Reviewer("k-cy", "supervisor", "Cy"), reason="late")
    with pytest.raises(EscalationStateError):
        store.claim(eid, ANN, lease_s=60)


def test_replayed_form_and_unknown_ids_change_nothing(store: EscalationStore) -> None:
    eid = _item(store)
    store.comment(eid, ANN, "looks like the reference", nonce="n-1234567")
    with pytest.raises(DuplicateSubmission):
        store.comment(eid, ANN, "looks like the reference", nonce="n-1234567")
    with pytest.raises(DuplicateSubmission):
        store.reject(eid, ANN, reason="no", nonce="n-1234567")
    assert [e.kind for e in store.events(eid)] == ["comment"]
    assert store.get(eid).status == "pending"
    with pytest.raises(EscalationNotFound):
        store.claim("nope", ANN, lease_s=60)


def test_reassign_hands_over_the_lease(store: EscalationStore) -> None:
    eid = _item(store)
    store.claim(eid, ANN, lease_s=60)
    moved = store.reassign(eid, ANN, BOB, lease_s=60, reason="Bob knows this artist")
    assert (moved.claimed_by, moved.assigned_to, moved.status) == ("k-bob", "k-bob", "claimed")
    with pytest.raises(LeaseHeld):
        store.reassign(eid, Reviewer("k-cy", "supervisor", "Cy"), ANN, lease_s=60)
    event = store.events(eid)[-1]
    assert event.kind == "reassign" and event.data["to_key_id"] == "k-bob"


def test_sweep_deadline_then_expiry(store: EscalationStore) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    eid = _item(store, deadline_at=past, expires_at=datetime.now(UTC) + timedelta(hours=1))
    store.claim(eid, ANN, lease_s=60)
    _set(store, eid, lease_expires_at=past)
    result = store.sweep()
    assert [e.id for e in result.deadlines_missed] == [eid]
    assert [e.id for e in result.leases_lapsed] == [eid]
    after = store.get(eid)
    assert (after.priority, after.status) == ("high", "pending") and after.deadline_missed_at is not None
    again = store.sweep()  # idempotent: the priority is raised once
    assert again.deadlines_missed == [] and store.get(eid).priority == "high"
    _set(store, eid, expires_at=past)
    expired = store.sweep(ids=[eid]).expired
    assert [e.id for e in expired] == [eid]
    final = store.get(eid)
    assert (final.status, final.decided_by) == ("expired", "system")
    assert final.decision_reason is not None and final.decision_reason.startswith("review.expired")
    with pytest.raises(EscalationStateError):
        store.approve(eid, ANN, reason="too late")


def test_counts_and_filters(store: EscalationStore) -> None:
    a = _item(store)
    b = _item(store, approvals=2)
    store.reject(b, ANN, reason="no")
    _set(store, a, priority="urgent")
    counts = store.counts(tenant="acme")
    assert counts["status"] == {"pending": 1, "rejected": 1}
    assert counts["priority"] == {"urgent": 1}
    assert [e.id for e in store.list(status="open", priority="urgent")] == [a]
    assert store.list(status="open", category="other") == []
    assert store.list(status="open", created_before=datetime.now(UTC) - timedelta(hours=1)) == []
