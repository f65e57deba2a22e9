"""AuditStore and verify_chain on SQLite and (marked ``postgres``) on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from audit.canonical import canonical_json, sha256_hex
from audit.db import Base, create_db_engine, session_factory
from audit.store import GENESIS_HASH, AuditStore, compute_record_hash
from audit.verify import verify_chain


@dataclass
class Db:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    store: AuditStore

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params)

    def verify(self, **kwargs: Any) -> Any:
        return verify_chain(self.sessions, **kwargs)


def open_db(url: str) -> Db:
    engine = create_db_engine(url)
    Base.metadata.create_all(engine)
    sessions = session_factory(engine)
    return Db(url, engine, sessions, AuditStore(sessions))


def _sqlite_db(tmp_path: Path) -> Iterator[Db]:
    yield open_db(f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.fixture
def db(db_url: str) -> Iterator[Db]:
    opened = open_db(db_url)
    yield opened
    opened.engine.dispose()


def fill(db: Db, n: int = 10) -> None:
    for i in range(1, n + 1):
        db.store.append(
            "request.completed",
            {"n": i, "action": "allow", "findings": [{"detector": "pii", "score": 0.5}]},
            request_id=f"req-{i % 3}",
            tenant="acme" if i % 2 else "globex",
        )


def kinds(report: Any) -> list[tuple[int | None, str]]:
    return [(p.seq, p.kind) for p in report.problems]


# --- appending and reading -------------------------------------------------------------------


def test_append_returns_chained_record(db: Db) -> None:
    first = db.store.append("request.received", {"prompt_sha256": "ab", "ünï": "cödé"}, request_id="r1", tenant="acme")
    second = db.store.append("request.completed", {"action": "allow"}, request_id="r1", tenant="acme")

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.record_hash
    assert first.payload == {"prompt_sha256": "ab", "ünï": "cödé"}
    assert first.payload_digest == sha256_hex(canonical_json(first.payload))
    assert first.created_at.tzinfo is not None
    assert first.created_at.utcoffset() == UTC.utcoffset(None)
    assert uuid.UUID(first.id).version == 4
    assert first.record_hash == compute_record_hash(
        seq=1,
        id=first.id,
        event_type="request.received",
        request_id="r1",
        tenant="acme",
        created_at=first.created_at,
        payload_digest=first.payload_digest,
        prev_hash=GENESIS_HASH,
    )
    # what was returned is exactly what was stored (datetimes survive the round trip)
    assert db.store.get(1) == first
    assert db.store.get(2) == second
    assert db.store.get(3) is None
    assert db.store.head() == second


def test_payload_is_stored_as_canonical_json(db: Db) -> None:
    db.store.append("x", {"b": [1, 2.5, None], "a": "é"})
    stored = db.sql("SELECT payload_json FROM audit_records WHERE seq = 1").scalar_one()
    assert stored == '{"a":"é","b":[1,2.5,null]}'


def test_empty_store(db: Db) -> None:
    assert db.store.head() is None
    assert db.store.search() == []
    report = db.verify()
    assert report.ok
    assert report.checked == 0
    assert report.head_hash == GENESIS_HASH


def test_for_request_and_search(db: Db) -> None:
    fill(db, 10)
    db.store.append("escalation.created", {"id": "e1"}, request_id="req-1", tenant="acme")

    req1 = db.store.for_request("req-1")
    assert [r.seq for r in req1] == [1, 4, 7, 10, 11]
    assert db.store.for_request("nope") == []

    newest = db.store.search(limit=3)
    assert [r.seq for r in newest] == [11, 10, 9]
    assert [r.seq for r in db.store.search(tenant="globex")] == [10, 8, 6, 4, 2]
    assert [r.seq for r in db.store.search(event_type="escalation.created")] == [11]
    assert [r.seq for r in db.store.search(tenant="acme", event_type="request.completed")] == [9, 7, 5, 3, 1]
    page2 = db.store.search(limit=3, before_seq=newest[-1].seq)
    assert [r.seq for r in page2] == [8, 7, 6]
    with pytest.raises(ValueError, match="limit"):
        db.store.search(limit=0)


def test_append_rejects_non_json_payload_without_consuming_a_seq(db: Db) -> None:
    with pytest.raises(TypeError):
        db.store.append("x", {"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="nan"):
        db.store.append("x", {"score": float("nan")})
    assert db.store.append("x", {}).seq == 1


# --- verification ------------------------------------------------------------------------------


def test_untouched_chain_verifies(db: Db) -> None:
    fill(db, 25)
    report = db.verify()
    assert report.ok, report.problems
    assert report.checked == 25
    assert report.head_hash == db.store.head().record_hash  # type: ignore[union-attr]
    assert report.problems == []


def test_edited_payload_is_payload_changed(db: Db) -> None:
    fill(db)
    db.sql(
        "UPDATE audit_records SET payload_json = :p WHERE seq = 3",
        p='{"action":"allow","findings":[],"n":3}',
    )
    report = db.verify()
    assert not report.ok
    assert kinds(report) == [(3, "payload_changed")]


def test_edited_payload_and_digest_is_record_changed(db: Db) -> None:
    fill(db)
    forged = '{"action":"allow"}'
    db.sql(
        "UPDATE audit_records SET payload_json = :p, payload_digest = :d WHERE seq = 4",
        p=forged,
        d=sha256_hex(forged.encode()),
    )
    assert kinds(db.verify()) == [(4, "record_changed")]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("tenant", "evil-corp"),
        ("event_type", "request.denied"),
        ("request_id", None),
        ("id", "5f0c7a52-2c55-4c1e-9a7e-1f1f6c1e0b9d"),
    ],
)
def test_edited_record_field_is_record_changed(db: Db, column: str, value: Any) -> None:
    fill(db)
    db.sql(f"UPDATE audit_records SET {column} = :v WHERE seq = 6", v=value)
    report = db.verify()
    assert not report.ok
    assert kinds(report) == [(6, "record_changed")]


def test_edited_timestamp_is_record_changed(db: Db) -> None:
    fill(db)
    db.sql("UPDATE audit_records SET created_at = :t WHERE seq = 2", t=datetime(2020, 1, 1, tzinfo=UTC))
    assert kinds(db.verify()) == [(2, "record_changed")]


def test_deleted_middle_record(db: Db) -> None:
    fill(db)
    db.sql("DELETE FROM audit_records WHERE seq = 5")
    report = db.verify()
    assert not report.ok
    assert kinds(report) == [(5, "deleted")]
    assert report.checked == 9


def test_deleted_records_renumbered_is_detected(db: Db) -> None:
    fill(db)
    db.sql("DELETE FROM audit_records WHERE seq = 5")
    db.sql("UPDATE audit_records SET seq = -seq WHERE seq > 5")
    db.sql("UPDATE audit_records SET seq = -seq - 1 WHERE seq < 0")
    report = db.verify()
    assert not report.ok
    assert (5, "deleted") in kinds(report)
    assert {(s, "record_changed") for s in range(5, 10)} <= set(kinds(report))


def test_deleted_tail_is_caught_by_anchor(db: Db) -> None:
    fill(db)
    anchor = (10, db.store.head().record_hash)  # type: ignore[union-attr]
    assert db.verify(anchor=anchor).ok
    db.sql("DELETE FROM audit_records WHERE seq >= 9")
    assert db.verify().ok  # the tail alone cannot be proven missing without an anchor
    report = db.verify(anchor=anchor)
    assert not report.ok
    assert kinds(report) == [(10, "deleted")]


def test_rewritten_chain_is_caught_by_anchor(db: Db) -> None:
    fill(db, 5)
    anchor = (5, db.store.head().record_hash)  # type: ignore[union-attr]
    db.sql("UPDATE audit_records SET record_hash = :h WHERE seq = 5", h="f" * 64)
    assert (5, "record_changed") in kinds(db.verify(anchor=anchor))


def test_inserted_record(db: Db) -> None:
    fill(db)
    # make room at seq 3 and forge a record whose own hash and link are correct
    db.sql("UPDATE audit_records SET seq = -seq WHERE seq >= 3")
    db.sql("UPDATE audit_records SET seq = -seq + 1 WHERE seq < 0")
    prev = db.store.get(2)
    assert prev is not None
    created = datetime.now(UTC)
    payload_json = '{"action":"allow"}'
    digest = sha256_hex(payload_json.encode())
    forged_id = str(uuid.uuid4())
    record_hash = compute_record_hash(
        seq=3,
        id=forged_id,
        event_type="request.completed",
        request_id="forged",
        tenant="acme",
        created_at=created,
        payload_digest=digest,
        prev_hash=prev.record_hash,
    )
    db.sql(
        "INSERT INTO audit_records (seq, id, event_type, request_id, tenant, created_at, payload_json,"
        " payload_digest, prev_hash, record_hash) VALUES (3, :id, 'request.completed', 'forged', 'acme',"
        " :created, :payload, :digest, :prev, :hash)",
        id=forged_id,
        created=created.replace(tzinfo=None) if db.engine.dialect.name == "sqlite" else created,
        payload=payload_json,
        digest=digest,
        prev=prev.record_hash,
        hash=record_hash,
    )
    report = db.verify()
    assert not report.ok
    found = kinds(report)
    assert found[0] == (3, "inserted")
    assert set(found[1:]) == {(s, "record_changed") for s in range(4, 12)}


def test_swapped_record_contents(db: Db) -> None:
    fill(db)
    columns = "id, event_type, request_id, tenant, created_at, payload_json, payload_digest, prev_hash, record_hash"
    a = db.sql(f"SELECT {columns} FROM audit_records WHERE seq = 3").one()._asdict()
    b = db.sql(f"SELECT {columns} FROM audit_records WHERE seq = 5").one()._asdict()
    assignments = ", ".join(f"{c} = :{c}" for c in a)
    db.sql("UPDATE audit_records SET id = :tmp WHERE seq = 3", tmp=str(uuid.uuid4()))  # unique id
    db.sql(f"UPDATE audit_records SET {assignments} WHERE seq = 5", **a)
    db.sql(f"UPDATE audit_records SET {assignments} WHERE seq = 3", **b)
    report = db.verify()
    assert not report.ok
    found = set(kinds(report))
    assert {(3, "record_changed"), (5, "record_changed")} <= found
    assert any(kind == "reordered" for _, kind in found)
    assert all(kind in {"record_changed", "reordered"} for _, kind in found)


def test_reordered_by_swapping_seq(db: Db) -> None:
    fill(db)
    db.sql("UPDATE audit_records SET seq = -4 WHERE seq = 4")
    db.sql("UPDATE audit_records SET seq = 4 WHERE seq = 7")
    db.sql("UPDATE audit_records SET seq = 7 WHERE seq = -4")
    report = db.verify()
    assert not report.ok
    found = set(kinds(report))
    assert {(4, "record_changed"), (7, "record_changed")} <= found
    assert any(kind == "reordered" for _, kind in found)


def test_deleted_payload_still_verifies(db: Db) -> None:
    fill(db)
    assert db.store.delete_payload(4) is True
    assert db.store.delete_payload(4) is False
    assert db.store.delete_payload(99) is False
    db.sql("UPDATE audit_records SET payload_json = NULL WHERE seq = 7")  # as a raw retention job would
    record = db.store.get(4)
    assert record is not None
    assert record.payload is None
    assert len(record.payload_digest) == 64
    report = db.verify()
    assert report.ok, report.problems
    assert report.checked == 10
    # the digest stays protected after the payload is gone
    db.sql("UPDATE audit_records SET payload_digest = :d WHERE seq = 4", d="0" * 64)
    assert kinds(db.verify()) == [(4, "record_changed")]


def test_problems_are_capped_but_counted(db: Db) -> None:
    fill(db, 20)
    db.sql("UPDATE audit_records SET tenant = 'evil'")
    report = db.verify(max_problems=5)
    assert not report.ok
    assert len(report.problems) == 5
    assert report.problems_total == 20


def test_missing_table_is_unreadable(db: Db) -> None:
    fill(db, 3)
    db.sql("DROP TABLE audit_records")
    report = db.verify()
    assert not report.ok
    assert report.checked == 0
    assert [p.kind for p in report.problems] == ["unreadable"]


def test_garbage_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not a database" * 500)
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        report = verify_chain(session_factory(engine))
    finally:
        engine.dispose()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["unreadable"]


def test_undecodable_timestamp_is_unreadable(tmp_path: Path) -> None:
    db = next(_sqlite_db(tmp_path))
    fill(db, 5)
    db.sql("UPDATE audit_records SET created_at = 'yesterday-ish' WHERE seq = 3")
    report = db.verify()
    assert not report.ok
    assert kinds(report) == [(3, "unreadable")]
    assert report.checked == 5


# --- concurrency ------------------------------------------------------------------------------


def _append_worker(url: str, worker: str, count: int) -> None:
    engine = create_db_engine(url)
    store = AuditStore(session_factory(engine))
    for i in range(count):
        store.append("request.completed", {"worker": worker, "i": i}, request_id=f"{worker}-{i}", tenant=worker)
    engine.dispose()


def test_two_processes_append_without_forking(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    # spawned children import this module by name; make sure they can, however pytest was run
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    db.store.append("gateway.started", {})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_worker, args=(db.url, name, 100)) for name in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    assert [proc.exitcode for proc in procs] == [0, 0]

    report = db.verify()
    assert report.ok, report.problems
    assert report.checked == 201
    assert db.sql("SELECT COUNT(DISTINCT prev_hash) FROM audit_records").scalar_one() == 201
    for name in ("a", "b"):
        records = db.store.search(tenant=name, limit=1000)
        assert sorted(r.payload["i"] for r in records if r.payload) == list(range(100))


def test_threads_append_without_forking(db: Db) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def run(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                db.store.append("t", {"w": worker, "i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = db.verify()
    assert report.ok
    assert report.checked == 200


def test_write_lock_refuses_to_start_late(tmp_path: Path) -> None:
    from audit.db import write_lock

    db = next(_sqlite_db(tmp_path))
    with db.sessions() as session:  # a read began the transaction (deferred), not begin()
        session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="first statement"):
            write_lock(session, "x")


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    db = next(_sqlite_db(tmp_path))
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
