"""EscalationStore on SQLite and (marked ``postgres``) on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.db import Base, create_db_engine, session_factory
from audit.escalations import (
    Escalation,
    EscalationError,
    EscalationNotFound,
    EscalationStateError,
    EscalationStore,
    SelfApprovalError,
)


@pytest.fixture
def store(db_url: str) -> Iterator[EscalationStore]:
    engine = create_db_engine(db_url)
    Base.metadata.create_all(engine)
    yield EscalationStore(session_factory(engine))
    engine.dispose()


REASONS = [{"code": "pii.email", "detector": "pii", "message": "an e-mail address in the prompt"}]


def make(store: EscalationStore, *, tenant: str = "acme", requester: str = "key-req") -> Escalation:
    return store.create(
        request_id=f"req-{uuid.uuid4().hex[:8]}",
        tenant=tenant,
        requester_key_id=requester,
        reasons=REASONS,
        obligations={"watermark": True},
    )


def test_create_and_get(store: EscalationStore) -> None:
    esc = make(store)
    assert esc.status == "pending"
    assert esc.reasons == REASONS
    assert esc.obligations == {"watermark": True}
    assert esc.created_at.tzinfo is not None
    assert (esc.decided_at, esc.decided_by, esc.decision_reason) == (None, None, None)
    assert store.get(esc.id) == esc
    with pytest.raises(EscalationNotFound):
        store.get(str(uuid.uuid4()))


def test_create_rejects_non_json(store: EscalationStore) -> None:
    with pytest.raises(TypeError):
        store.create(
            request_id="r",
            tenant="acme",
            requester_key_id="k",
            reasons=[],
            obligations={"until": datetime.now(UTC)},
        )


def test_list_filters_and_orders_oldest_first(store: EscalationStore) -> None:
    a = make(store, tenant="acme")
    b = make(store, tenant="globex")
    c = make(store, tenant="acme")
    store.decide(b.id, approve=False, decided_by="key-sup", reason="no")

    assert [e.id for e in store.list()] == [a.id, c.id]
    assert [e.id for e in store.list(tenant="acme")] == [a.id, c.id]
    assert store.list(tenant="globex") == []
    assert [e.id for e in store.list(status="rejected")] == [b.id]
    assert [e.id for e in store.list(status=None)] == [a.id, b.id, c.id]
    assert [e.id for e in store.list(limit=1)] == [a.id]
    with pytest.raises(ValueError, match="status"):
        store.list(status="bogus")


def test_decide_approve(store: EscalationStore) -> None:
    esc = make(store)
    decided = store.decide(esc.id, approve=True, decided_by="key-sup", reason="legitimate use")
    assert decided.status == "approved"
    assert decided.decided_by == "key-sup"
    assert decided.decision_reason == "legitimate use"
    assert decided.decided_at is not None
    assert decided.decided_at >= esc.created_at
    assert store.get(esc.id) == decided
    assert store.list() == []


def test_decide_reject(store: EscalationStore) -> None:
    esc = make(store)
    assert store.decide(esc.id, approve=False, decided_by="key-sup", reason="no").status == "rejected"


def test_second_decision_raises(store: EscalationStore) -> None:
    esc = make(store)
    store.decide(esc.id, approve=True, decided_by="key-sup", reason="ok")
    with pytest.raises(EscalationStateError, match="approved"):
        store.decide(esc.id, approve=False, decided_by="key-other", reason="changed my mind")
    after = store.get(esc.id)
    assert (after.status, after.decided_by, after.decision_reason) == ("approved", "key-sup", "ok")


def test_self_approval_raises(store: EscalationStore) -> None:
    esc = make(store, requester="key-req")
    with pytest.raises(SelfApprovalError):
        store.decide(esc.id, approve=True, decided_by="key-req", reason="trust me")
    assert store.get(esc.id).status == "pending"
    assert issubclass(SelfApprovalError, EscalationError)


def test_decide_unknown_raises(store: EscalationStore) -> None:
    with pytest.raises(EscalationNotFound):
        store.decide(str(uuid.uuid4()), approve=True, decided_by="key-sup", reason="?")


def test_expire_pending(store: EscalationStore) -> None:
    esc = make(store)
    assert store.expire_pending(older_than=esc.created_at) == 0
    assert store.expire_pending(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert store.get(esc.id).status == "expired"
    with pytest.raises(EscalationStateError):
        store.decide(esc.id, approve=True, decided_by="key-sup", reason="late")


def _race_two_threads(store: EscalationStore, esc_id: str) -> list[Any]:
    barrier = threading.Barrier(2)
    outcomes: list[Any] = [None, None]

    def decide(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = store.decide(esc_id, approve=i == 0, decided_by=f"key-sup{i}", reason=str(i))
        except EscalationError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_decide_from_two_threads_one_wins(store: EscalationStore) -> None:
    for _ in range(10):
        esc = make(store)
        outcomes = _race_two_threads(store, esc.id)
        wins = [o for o in outcomes if isinstance(o, Escalation)]
        losses = [o for o in outcomes if isinstance(o, EscalationStateError)]
        assert (len(wins), len(losses)) == (1, 1), outcomes
        assert store.get(esc.id) == wins[0]


def _decide_worker(url: str, esc_id: str, who: str, start: Any, results: Any) -> None:
    engine = create_db_engine(url)
    store = EscalationStore(session_factory(engine))
    start.wait()
    try:
        store.decide(esc_id, approve=True, decided_by=who, reason=who)
        results.put((who, "won"))
    except EscalationStateError:
        results.put((who, "lost"))
    finally:
        engine.dispose()


def test_concurrent_decide_from_two_processes_one_wins(
    store: EscalationStore, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    esc = make(store)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_decide_worker, args=(db_url, esc.id, who, start, results)) for who in ("s1", "s2")]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    outcome = sorted(results.get(timeout=5)[1] for _ in procs)
    assert outcome == ["lost", "won"]
    assert store.get(esc.id).status == "approved"
