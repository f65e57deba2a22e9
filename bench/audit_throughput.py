"""Audit trail throughput on SQLite and PostgreSQL, side by side.

Prints, for each database:
  * append throughput (records/s) with one writer process and with several (each append is one
    transaction under the chain's write lock, with checkpoint signing every 1,000 records);
  * verification speed (records/s) of a chain of --records records (default one million), built by
    bulk insert (same hashes as appends) and then checked by ``verify_chain`` with checkpoints.

    python bench/audit_throughput.py                       # 1,000,000 records to verify; minutes
    python bench/audit_throughput.py --records 100000 --append-records 5000 --writers 4
    python bench/audit_throughput.py --databases sqlite    # skip PostgreSQL

PostgreSQL: --pg-url (default $MAMORI_TEST_PG_URL or postgresql+psycopg://postgres@127.0.0.1:5432/test);
each run uses a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text

import audit.checkpoint_models
from audit.canonical import canonical_json, sha256_hex
from audit.checkpoints import Checkpointer
from audit.crypto import SigningKey
from audit.db import Base, create_db_engine, session_factory
from audit.models import AuditRecordRow
from audit.store import GENESIS_HASH, AuditStore, compute_record_hash
from audit.verify import verify_chain

PG_URL = os.environ.get("MAMORI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PAYLOAD = {
    "endpoint": "images.generations",
    "client": "10.0.0.7",
    "principal": {"tenant": "acme", "role": "requester", "key_id": "k_0123456789abcdef"},
    "decisions": [{"stage": "prescreen", "action": "allow", "revision": "sha256:0123456789abcdef"}],
    "findings": [{"detector": "pii", "category": "pii", "score": 0.1}],
    "timings_ms": {"prescreen": 4.2, "generate": 812.5, "total": 850.1},
}
_ = audit.checkpoint_models  # registers the checkpoint tables on Base


@contextmanager
def database(kind: str, work: Path, pg_url: str) -> Iterator[str]:
    """A fresh database URL: an SQLite file under ``work``, or a new PostgreSQL schema."""
    if kind == "sqlite":
        path = work / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    admin = create_db_engine(pg_url)
    schema = f"mamori_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _writer(url: str, key_path: str, count: int, start: multiprocessing.synchronize.Event) -> None:
    engine = create_db_engine(url)
    store = AuditStore(
        session_factory(engine), checkpointer=Checkpointer(SigningKey.load_or_create(Path(key_path)), every=1000)
    )
    start.wait()
    for i in range(count):
        store.append("request", {**PAYLOAD, "i": i}, request_id=f"req_{os.getpid()}_{i}", tenant="acme")
    engine.dispose()


def append_rate(url: str, key_path: Path, writers: int, total: int) -> float:
    engine = create_db_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    per = total // writers
    procs = [ctx.Process(target=_writer, args=(url, str(key_path), per, start)) for _ in range(writers)]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let the children import and connect
    began = time.perf_counter()
    start.set()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - began
    if any(proc.exitcode != 0 for proc in procs):
        raise SystemExit("a writer process failed")
    report = verify_chain(session_factory(create_db_engine(url)), keys=None)
    if not report.ok or report.checked != per * writers:
        raise SystemExit(f"chain broken after concurrent appends: {report.problems[:3]}")
    return per * writers / elapsed


def build_chain(url: str, key: SigningKey, count: int, batch: int = 20_000) -> float:
    """Insert ``count`` chained records (and a checkpoint every 1,000) in bulk; returns seconds."""
    engine = create_db_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    sessions = session_factory(engine)
    checkpointer = Checkpointer(key, every=1000, seconds=0)
    payload_json = canonical_json(PAYLOAD).decode()
    digest = sha256_hex(payload_json.encode())
    prev = GENESIS_HASH
    began = time.perf_counter()
    t0 = datetime.now(UTC) - timedelta(days=1)
    seq = 0
    while seq < count:
        rows: list[dict[str, Any]] = []
        for _ in range(min(batch, count - seq)):
            seq += 1
            record_id = str(uuid.uuid4())
            created = t0 + timedelta(microseconds=seq * 50)
            record_hash = compute_record_hash(
                seq=seq,
                id=record_id,
                event_type="request",
                request_id=f"req_{seq}",
                tenant="acme",
                created_at=created,
                payload_digest=digest,
                prev_hash=prev,
            )
            rows.append(
                {
                    "seq": seq,
                    "id": record_id,
                    "event_type": "request",
                    "request_id": f"req_{seq}",
                    "tenant": "acme",
                    "created_at": created,
                    "payload_json": payload_json,
                    "payload_digest": digest,
                    "prev_hash": prev,
                    "record_hash": record_hash,
                }
            )
            prev = record_hash
        with sessions() as session, session.begin():
            session.execute(insert(AuditRecordRow), rows)
            for row in rows:
                if row["seq"] % 1000 == 0:
                    checkpointer.create(session, row["seq"], row["record_hash"], row["created_at"])
                    session.flush()
    if engine.dialect.name == "postgresql":  # what autovacuum does to a table this size soon after loading
        with engine.begin() as conn:
            conn.execute(text("ANALYZE audit_records"))
    engine.dispose()
    return time.perf_counter() - began


def verify_rate(url: str, key: SigningKey, count: int) -> tuple[float, float]:
    engine = create_db_engine(url)
    began = time.perf_counter()
    report = verify_chain(session_factory(engine), keys={key.key_id: key.public})
    elapsed = time.perf_counter() - began
    engine.dispose()
    if not report.ok or report.checked != count:
        raise SystemExit(f"verification failed: {report.problems[:3]}")
    return count / elapsed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="chain length to verify")
    parser.add_argument("--append-records", type=int, default=20_000, help="records appended per throughput run")
    parser.add_argument("--writers", type=int, default=4, help="writer processes for the concurrent run")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--sqlite-dir", type=Path, default=None, help="folder for the SQLite file (default: temp)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mamori-bench-") as tmp:
        work = Path(tmp)
        key_path = work / "signing.pem"
        key = SigningKey.load_or_create(key_path)
        print(f"records to verify: {args.records:,}; appended per run: {args.append_records:,}")
        print(f"{'database':<10} {'1 writer':>14} {f'{args.writers} writers':>14} {'build':>10} {'verify':>16}")
        for kind in args.databases.split(","):
            try:
                with database(kind, args.sqlite_dir or work, args.pg_url) as url:
                    one = append_rate(url, key_path, 1, args.append_records)
                    many = append_rate(url, key_path, args.writers, args.append_records)
                    built = build_chain(url, key, args.records)
                    rate, took = verify_rate(url, key, args.records)
            except Exception as exc:  # e.g. no PostgreSQL server: say so and go on
                print(f"{kind:<10} unavailable: {type(exc).__name__}: {exc!s:.200}")
                continue
            print(
                f"{kind:<10} {one:>10,.0f} r/s {many:>10,.0f} r/s {built:>8.1f} s {rate:>9,.0f} r/s ({took:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
