"""The append-only, hash-chained audit store.

Every event is one row of ``audit_records``. A record's hash covers its position (``seq``), its
metadata, the digest of its payload and the previous record's hash, so editing, deleting,
inserting or reordering records breaks the chain (see :mod:`audit.verify`). Payloads are hashed
separately so they can be deleted for retention without breaking verification.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.canonical import canonical_json, sha256_hex
from audit.db import write_lock
from audit.models import AuditRecordRow

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "AuditStore",
    "compute_record_hash",
    "format_timestamp",
]

GENESIS_HASH = "0" * 64
_CHAIN_LOCK = "mamori.audit_records.append"
_MAX_LIMIT = 10_000


def format_timestamp(value: datetime) -> str:
    """The form ``created_at`` takes inside the hash: ISO 8601, UTC, microseconds, ``+00:00``."""
    if value.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def compute_record_hash(
    *,
    seq: int,
    id: str,
    event_type: str,
    request_id: str | None,
    tenant: str | None,
    created_at: datetime,
    payload_digest: str,
    prev_hash: str,
) -> str:
    """sha256 hex of the RFC 8785 JSON of the record's chained fields (same on every backend)."""
    return sha256_hex(
        canonical_json(
            {
                "seq": seq,
                "id": id,
                "event_type": event_type,
                "request_id": request_id,
                "tenant": tenant,
                "created_at": format_timestamp(created_at),
                "payload_digest": payload_digest,
                "prev_hash": prev_hash,
            }
        )
    )


@dataclass(frozen=True)
class AuditRecord:
    """One audit event as stored. ``payload`` is None once deleted for retention."""

    seq: int
    id: str
    event_type: str
    request_id: str | None
    tenant: str | None
    created_at: datetime
    payload: dict[str, Any] | None
    payload_digest: str
    prev_hash: str
    record_hash: str

    @classmethod
    def from_row(cls, row: AuditRecordRow) -> AuditRecord:
        return cls(
            seq=row.seq,
            id=row.id,
            event_type=row.event_type,
            request_id=row.request_id,
            tenant=row.tenant,
            created_at=row.created_at,
            payload=None if row.payload_json is None else json.loads(row.payload_json),
            payload_digest=row.payload_digest,
            prev_hash=row.prev_hash,
            record_hash=row.record_hash,
        )


class AuditStore:
    """Append and read audit records. Safe to share between threads and between processes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def append(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        request_id: str | None = None,
        tenant: str | None = None,
    ) -> AuditRecord:
        """Append one record at the head of the chain and return it.

        Appends are serialized in the database (SQLite ``BEGIN IMMEDIATE``, PostgreSQL advisory
        lock) and the head is read inside that transaction, so concurrent writers, also in other
        processes, never fork the chain.
        """
        if not event_type:
            raise ValueError("event_type must not be empty")
        payload_bytes = canonical_json(payload)  # fails before any lock is taken
        payload_digest = sha256_hex(payload_bytes)
        record_id = str(uuid.uuid4())
        with self._sessions() as session, session.begin():
            write_lock(session, _CHAIN_LOCK)
            head = session.execute(
                select(AuditRecordRow.seq, AuditRecordRow.record_hash).order_by(AuditRecordRow.seq.desc()).limit(1)
            ).first()
            seq, prev_hash = (1, GENESIS_HASH) if head is None else (head.seq + 1, head.record_hash)
            created_at = datetime.now(UTC)
            row = AuditRecordRow(
                seq=seq,
                id=record_id,
                event_type=event_type,
                request_id=request_id,
                tenant=tenant,
                created_at=created_at,
                payload_json=payload_bytes.decode("utf-8"),
                payload_digest=payload_digest,
                prev_hash=prev_hash,
                record_hash=compute_record_hash(
                    seq=seq,
                    id=record_id,
                    event_type=event_type,
                    request_id=request_id,
                    tenant=tenant,
                    created_at=created_at,
                    payload_digest=payload_digest,
                    prev_hash=prev_hash,
                ),
            )
            session.add(row)
            return AuditRecord.from_row(row)

    def get(self, seq: int) -> AuditRecord | None:
        with self._sessions() as session:
            row = session.get(AuditRecordRow, seq)
            return None if row is None else AuditRecord.from_row(row)

    def for_request(self, request_id: str) -> list[AuditRecord]:
        """All records of one request, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(AuditRecordRow).where(AuditRecordRow.request_id == request_id).order_by(AuditRecordRow.seq)
            )
            return [AuditRecord.from_row(row) for row in rows]

    def search(
        self,
        *,
        tenant: str | None = None,
        event_type: str | None = None,
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[AuditRecord]:
        """Records newest first. Page with ``before_seq`` = the last seq of the previous page."""
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}")
        query = select(AuditRecordRow)
        if tenant is not None:
            query = query.where(AuditRecordRow.tenant == tenant)
        if event_type is not None:
            query = query.where(AuditRecordRow.event_type == event_type)
        if before_seq is not None:
            query = query.where(AuditRecordRow.seq < before_seq)
        query = query.order_by(AuditRecordRow.seq.desc()).limit(limit)
        with self._sessions() as session:
            return [AuditRecord.from_row(row) for row in session.scalars(query)]

    def head(self) -> AuditRecord | None:
        """The newest record, or None for an empty chain."""
        with self._sessions() as session:
            row = session.scalars(select(AuditRecordRow).order_by(AuditRecordRow.seq.desc()).limit(1)).first()
            return None if row is None else AuditRecord.from_row(row)

    def delete_payload(self, seq: int) -> bool:
        """Drop a record's payload for retention; its digest stays so the chain still verifies.

        Returns False if no record has this ``seq`` or its payload was already deleted.
        """
        with self._sessions() as session, session.begin():
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(AuditRecordRow)
                    .where(AuditRecordRow.seq == seq, AuditRecordRow.payload_json.is_not(None))
                    .values(payload_json=None)
                    .execution_options(synchronize_session=False)
                ),
            )
            return result.rowcount == 1
