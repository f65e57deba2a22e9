"""The append-only, hash-chained audit store.

Every event is one row of ``audit_records``. A record's hash covers its position (``seq``), the
previous record's hash and the *entry digest*: the hash of its metadata and of its payload's
digest. Editing, deleting, inserting or reordering records breaks the chain (see
:mod:`audit.verify`). Payloads are hashed separately so they can be deleted for retention without
breaking verification, and the entry digest lets an evidence export prove the chain through
another tenant's records without revealing anything about them.

With a :class:`~audit.checkpoints.Checkpointer`, appends also sign the chain head now and then
(same transaction, same lock). With a :class:`~audit.crypto.PromptCipher`, ``seal_prompt``
encrypts raw prompts for the record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.canonical import canonical_json, sha256_hex
from audit.checkpoints import Checkpoint, Checkpointer
from audit.crypto import PromptCipher
from audit.db import write_lock
from audit.models import AuditRecordRow

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "AuditStore",
    "asset_entries",
    "compute_entry_digest",
    "compute_link_hash",
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


def compute_entry_digest(
    *,
    id: str,
    event_type: str,
    request_id: str | None,
    tenant: str | None,
    created_at: datetime,
    payload_digest: str,
) -> str:
    """sha256 hex of the RFC 8785 JSON of a record's own fields (everything but its place in the chain)."""
    return sha256_hex(
        canonical_json(
            {
                "id": id,
                "event_type": event_type,
                "request_id": request_id,
                "tenant": tenant,
                "created_at": format_timestamp(created_at),
                "payload_digest": payload_digest,
            }
        )
    )


def compute_link_hash(*, seq: int, prev_hash: str, entry_digest: str) -> str:
    """The record hash from its position, its predecessor's hash and its entry digest."""
    return sha256_hex(canonical_json({"seq": seq, "prev_hash": prev_hash, "entry_digest": entry_digest}))


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
    """sha256 hex of RFC 8785 ``{seq, prev_hash, entry_digest}`` (same on every backend)."""
    entry = compute_entry_digest(
        id=id,
        event_type=event_type,
        request_id=request_id,
        tenant=tenant,
        created_at=created_at,
        payload_digest=payload_digest,
    )
    return compute_link_hash(seq=seq, prev_hash=prev_hash, entry_digest=entry)


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

    @property
    def entry_digest(self) -> str:
        return compute_entry_digest(
            id=self.id,
            event_type=self.event_type,
            request_id=self.request_id,
            tenant=self.tenant,
            created_at=self.created_at,
            payload_digest=self.payload_digest,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (as exported and served by the API)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "event_type": self.event_type,
            "request_id": self.request_id,
            "tenant": self.tenant,
            "created_at": format_timestamp(self.created_at),
            "payload": self.payload,
            "payload_deleted": self.payload is None,
            "payload_digest": self.payload_digest,
            "prev_hash": self.prev_hash,
            "record_hash": self.record_hash,
        }


def asset_entries(
    record: AuditRecord, *, sha256: str | None = None, manifest_id: str | None = None
) -> list[dict[str, Any]]:
    """The asset entries of a record's payload (``assets`` of a request, of a review) matching either key."""
    payload = record.payload or {}
    found = []
    for entry in payload.get("assets") or ():
        if not isinstance(entry, dict):
            continue
        wanted = sha256 is None and manifest_id is None
        wanted = wanted or bool(sha256 and entry.get("sha256") == sha256)
        wanted = wanted or bool(manifest_id and entry.get("manifest_id") == manifest_id)
        if wanted:
            found.append(entry)
    return found


class AuditStore:
    """Append and read audit records. Safe to share between threads and between processes."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        checkpointer: Checkpointer | None = None,
        prompt_cipher: PromptCipher | None = None,
    ) -> None:
        self._sessions = sessions
        self.checkpointer = checkpointer
        self.prompt_cipher = prompt_cipher

    def seal_prompt(self, prompt: str) -> dict[str, str] | None:
        """The raw prompt encrypted for the audit record, or None when prompts are not stored."""
        return None if self.prompt_cipher is None else self.prompt_cipher.encrypt(prompt)

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
            if self.checkpointer is not None:
                session.flush()
                self.checkpointer.maybe(session, seq, row.record_hash, created_at)
            return AuditRecord.from_row(row)

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (None if the chain is empty or the head is already signed)."""
        if self.checkpointer is None:
            raise RuntimeError("no audit signing key is configured")
        with self._sessions() as session, session.begin():
            write_lock(session, _CHAIN_LOCK)
            head = session.execute(
                select(AuditRecordRow.seq, AuditRecordRow.record_hash).order_by(AuditRecordRow.seq.desc()).limit(1)
            ).first()
            if head is None:
                return None
            return self.checkpointer.create(session, head.seq, head.record_hash, datetime.now(UTC))

    def find_asset(self, *, sha256: str | None = None, manifest_id: str | None = None) -> list[AuditRecord]:
        """Records whose payload names an asset with this SHA-256 or C2PA manifest id, oldest first.

        A text search over payloads narrowed by parsing: slow on huge logs, but independent of any
        gateway table (and it finds nothing once a record's payload was deleted for retention).
        """
        needles = [n for n in (sha256, manifest_id) if n]
        if not needles:
            raise ValueError("give a sha256 or a manifest id")
        escaped = [n.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for n in needles]
        query = (
            select(AuditRecordRow)
            .where(or_(*(AuditRecordRow.payload_json.like(f"%{e}%", escape="\\") for e in escaped)))
            .order_by(AuditRecordRow.seq)
        )
        with self._sessions() as session:
            records = [AuditRecord.from_row(row) for row in session.scalars(query)]
        return [r for r in records if asset_entries(r, sha256=sha256, manifest_id=manifest_id)]

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

    def between(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        tenant: str | None = None,
        batch: int = 5_000,
    ) -> Iterator[AuditRecord]:
        """Records with ``start <= created_at < end`` (and of ``tenant``), oldest first, streamed."""
        query = select(AuditRecordRow)
        if start is not None:
            query = query.where(AuditRecordRow.created_at >= start)
        if end is not None:
            query = query.where(AuditRecordRow.created_at < end)
        if tenant is not None:
            query = query.where(AuditRecordRow.tenant == tenant)
        query = query.order_by(AuditRecordRow.seq).execution_options(yield_per=batch)
        with self._sessions() as session:
            for row in session.scalars(query):
                yield AuditRecord.from_row(row)

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
