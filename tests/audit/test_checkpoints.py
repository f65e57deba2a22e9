"""Signed checkpoints: created every N records or T seconds, checked by verify_chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoints import Checkpointer
from audit.crypto import KeyFileError, SigningKey
from audit.db import create_db_engine, session_factory
from audit.store import AuditStore, compute_record_hash


def kinds(report: Any) -> list[tuple[int | None, str]]:
    return [(p.seq, p.kind) for p in report.problems]


def test_checkpoint_every_n_records(signed: Any) -> None:
    signed.fill(12)
    rows = signed.sql("SELECT number, head_seq FROM audit_checkpoints ORDER BY number").all()
    assert [tuple(r) for r in rows] == [(1, 5), (2, 10)]
    report = signed.verify()
    assert report.ok, report.problems
    assert (report.checkpoints, report.sealed_seq, report.unsealed) == (2, 10, 2)
    assert signed.sql("SELECT key_id FROM audit_keys").scalar_one() == signed.key.key_id


def test_checkpoint_after_t_seconds(db_url: str, signing_key: SigningKey) -> None:
    from audit.db import Base

    engine = create_db_engine(db_url)
    Base.metadata.create_all(engine)
    # one second: the third append must come sooner than that after the second one, also on a busy
    # two-core CI runner (at 0.05 s it once came later and made a second checkpoint)
    store = AuditStore(session_factory(engine), checkpointer=Checkpointer(signing_key, every=0, seconds=1.0))
    store.append("x", {})
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM audit_checkpoints").scalar() == 0
    time.sleep(1.1)
    store.append("x", {})
    store.append("x", {})  # too soon after the checkpoint
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.exec_driver_sql("SELECT number, head_seq FROM audit_checkpoints")] == [(1, 2)]
    engine.dispose()


def test_explicit_checkpoint_seals_the_head_once(signed: Any) -> None:
    assert signed.store.checkpoint() is None  # empty log
    signed.fill(3)
    cp = signed.store.checkpoint()
    assert cp is not None
    assert (cp.number, cp.head_seq, cp.head_hash) == (1, 3, signed.store.head().record_hash)
    assert signed.store.checkpoint() is None
    assert signed.verify().unsealed == 0


def test_bad_signature_is_reported(signed: Any) -> None:
    signed.fill(10)
    signed.sql("UPDATE audit_checkpoints SET head_hash = :h WHERE number = 1", h="a" * 64)
    report = signed.verify()
    assert not report.ok
    found = kinds(report)
    assert (5, "checkpoint_invalid") in found  # bad signature
    assert (5, "checkpoint_mismatch") in found  # and it no longer names record 5
    assert any("bad signature" in p.message for p in report.problems)


def test_unknown_key_is_reported(signed: Any) -> None:
    signed.fill(5)
    other = SigningKey.generate()
    report = signed.verify(keys={other.key_id: other.public})
    assert not report.ok
    assert kinds(report) == [(5, "checkpoint_invalid")]
    assert "unknown key" in report.problems[0].message


def test_database_keys_are_used_when_none_are_given(signed: Any) -> None:
    signed.fill(5)
    report = signed.verify(keys=None)
    assert report.ok
    assert report.keys_source == "database"


def test_truncation_below_last_checkpoint(signed: Any) -> None:
    signed.fill(12)
    signed.sql("DELETE FROM audit_records WHERE seq >= 8")
    report = signed.verify()
    assert not report.ok
    assert kinds(report) == [(8, "truncated")]
    assert "records 8-10 are missing" in report.problems[0].message


def test_truncation_after_last_checkpoint_only_lowers_unsealed(signed: Any) -> None:
    # documented limit: records after the newest checkpoint are protected only by an external anchor
    signed.fill(12)
    signed.sql("DELETE FROM audit_records WHERE seq >= 11")
    report = signed.verify()
    assert report.ok
    assert report.unsealed == 0


def test_rewritten_chain_is_caught_by_checkpoints(signed: Any) -> None:
    signed.fill(12)
    # rewrite record 3 and re-hash everything after it: the chain is self-consistent again
    signed.sql("UPDATE audit_records SET tenant = 'evil' WHERE seq = 3")
    prev = signed.store.get(2).record_hash
    for seq in range(3, 13):
        r = signed.store.get(seq)
        new_hash = compute_record_hash(
            seq=seq,
            id=r.id,
            event_type=r.event_type,
            request_id=r.request_id,
            tenant=r.tenant,
            created_at=r.created_at,
            payload_digest=r.payload_digest,
            prev_hash=prev,
        )
        signed.sql(
            "UPDATE audit_records SET prev_hash = :p, record_hash = :h WHERE seq = :s", p=prev, h=new_hash, s=seq
        )
        prev = new_hash
    report = signed.verify()
    assert not report.ok
    assert kinds(report) == [(5, "checkpoint_mismatch"), (10, "checkpoint_mismatch")]


def test_deleted_checkpoint_is_reported(signed: Any) -> None:
    signed.fill(15)
    signed.sql("DELETE FROM audit_checkpoints WHERE number = 2")
    report = signed.verify()
    assert not report.ok
    assert (15, "checkpoint_missing") in kinds(report)


def test_edits_under_a_checkpoint_still_reported(signed: Any) -> None:
    signed.fill(10)
    signed.sql("UPDATE audit_records SET payload_json = :p WHERE seq = 4", p='{"n":99}')
    signed.sql("DELETE FROM audit_records WHERE seq = 7")
    assert kinds(signed.verify()) == [(4, "payload_changed"), (7, "deleted")]


def _signing_worker(url: str, key_path: str, worker: str, count: int) -> None:
    engine = create_db_engine(url)
    key = SigningKey.load_or_create(Path(key_path))
    store = AuditStore(session_factory(engine), checkpointer=Checkpointer(key, every=5, seconds=0))
    for i in range(count):
        store.append("request", {"worker": worker, "i": i}, tenant=worker)
    engine.dispose()


def test_two_processes_sign_without_forking(signed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    signed.store.append("gateway.started", {})
    ctx = multiprocessing.get_context("spawn")
    key_path = str(signed.key.path)
    procs = [ctx.Process(target=_signing_worker, args=(signed.url, key_path, name, 100)) for name in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    assert [proc.exitcode for proc in procs] == [0, 0]
    report = signed.verify()
    assert report.ok, report.problems
    assert report.checked == 201
    heads = [r[0] for r in signed.sql("SELECT head_seq FROM audit_checkpoints ORDER BY number")]
    assert heads == list(range(5, 201, 5))


# --- key files ---------------------------------------------------------------------------------


def test_signing_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "signing.pem"
    key = SigningKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load_or_create(path).key_id == key.key_id
    assert key.key_id.startswith("ed25519:")
    assert (tmp_path / "audit" / "public" / f"{key.key_id.replace(':', '-')}.pem").is_file()


def test_broken_key_files_are_refused_with_their_path(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    os.chmod(garbage, 0o600)
    with pytest.raises(KeyFileError, match=r"garbage\.pem: not an unencrypted PEM private key"):
        SigningKey.load_or_create(garbage)
    assert garbage.read_bytes() == b"not a key"  # never replaced

    loose = tmp_path / "loose.pem"
    SigningKey.load_or_create(loose)
    os.chmod(loose, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        SigningKey.load_or_create(loose)
