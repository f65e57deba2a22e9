"""Signed checkpoints over the audit chain head.

Every ``every`` records or ``seconds`` seconds (whichever comes first, checked on append), the
store signs ``{number, head_seq, head_hash, created_at, key_id, prev_digest}`` with the Ed25519
audit key, inside the append's own transaction and under the same write lock, so two writer
processes can never create two checkpoints with the same number or over different heads.

A checkpoint proves the chain up to ``head_seq`` existed with that head hash when it was signed.
Whoever can write the database but does not hold the key cannot rewrite the records a checkpoint
covers, nor truncate the log below the newest checkpoint, without verification noticing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.canonical import canonical_json
from audit.checkpoint_models import AuditCheckpointRow, AuditKeyRow
from audit.crypto import SigningKey, public_key_from_raw, verify_signature
from audit.models import AuditRecordRow

__all__ = [
    "CHECKPOINT_TYPE",
    "Checkpoint",
    "CheckpointIssue",
    "Checkpointer",
    "check_checkpoint_sequence",
    "checkpoint_message",
    "database_keys",
    "load_checkpoints",
]

CHECKPOINT_TYPE = "mamori.audit.checkpoint.v1"
GENESIS_DIGEST = "0" * 64


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Checkpoint:
    number: int
    head_seq: int
    head_hash: str
    created_at: str  # ISO 8601 UTC, as signed
    key_id: str
    prev_digest: str
    signature: str

    def message(self) -> bytes:
        return checkpoint_message(
            number=self.number,
            head_seq=self.head_seq,
            head_hash=self.head_hash,
            created_at=self.created_at,
            key_id=self.key_id,
            prev_digest=self.prev_digest,
        )

    @property
    def digest(self) -> str:
        """What the next checkpoint names as ``prev_digest``: sha256 of the signed message."""
        return hashlib.sha256(self.message()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": CHECKPOINT_TYPE,
            "number": self.number,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
            "key_id": self.key_id,
            "prev_digest": self.prev_digest,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """From an exported JSON object; ``ValueError`` saying which field is wrong."""
        fields: dict[str, Any] = {}
        for name, kind in (
            ("number", int),
            ("head_seq", int),
            ("head_hash", str),
            ("created_at", str),
            ("key_id", str),
            ("prev_digest", str),
            ("signature", str),
        ):
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"checkpoint field {name!r} is missing or not a {kind.__name__}")
            fields[name] = value
        return cls(**fields)

    @classmethod
    def from_row(cls, row: AuditCheckpointRow) -> Checkpoint:
        return cls(
            number=row.number,
            head_seq=row.head_seq,
            head_hash=row.head_hash,
            created_at=_ts(row.created_at),
            key_id=row.key_id,
            prev_digest=row.prev_digest,
            signature=row.signature,
        )


def checkpoint_message(
    *, number: int, head_seq: int, head_hash: str, created_at: str, key_id: str, prev_digest: str
) -> bytes:
    """The exact bytes an audit checkpoint signature covers (RFC 8785 JSON)."""
    return canonical_json(
        {
            "type": CHECKPOINT_TYPE,
            "number": number,
            "head_seq": head_seq,
            "head_hash": head_hash,
            "created_at": created_at,
            "key_id": key_id,
            "prev_digest": prev_digest,
        }
    )


class Checkpointer:
    """Decides when a checkpoint is due and writes it. Call only with the chain's write lock held."""

    def __init__(self, key: SigningKey, *, every: int = 1000, seconds: float = 300.0) -> None:
        if every < 0 or seconds < 0:
            raise ValueError("checkpoint intervals must not be negative (0 turns a trigger off)")
        self.key = key
        self.every = every
        self.seconds = seconds

    def _last(self, session: Session) -> AuditCheckpointRow | None:
        return session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.number.desc()).limit(1)).first()

    def maybe(self, session: Session, head_seq: int, head_hash: str, now: datetime) -> Checkpoint | None:
        """Sign the head if a threshold is crossed (called by ``AuditStore.append`` after adding a record)."""
        last = self._last(session)
        last_seq = last.head_seq if last is not None else 0
        due = self.every > 0 and head_seq - last_seq >= self.every
        if not due and self.seconds > 0 and head_seq > last_seq:
            if last is not None:
                since = last.created_at
            else:
                first = session.get(AuditRecordRow, 1)
                since = first.created_at if first is not None else now
            due = now - since >= timedelta(seconds=self.seconds)
        return self.create(session, head_seq, head_hash, now, last=last) if due else None

    def create(
        self,
        session: Session,
        head_seq: int,
        head_hash: str,
        now: datetime,
        *,
        last: AuditCheckpointRow | None = None,
    ) -> Checkpoint | None:
        """Sign ``head_seq`` unless the newest checkpoint already covers it."""
        last = last if last is not None else self._last(session)
        if last is not None and last.head_seq >= head_seq:
            return None
        number = 1 if last is None else last.number + 1
        prev_digest = GENESIS_DIGEST if last is None else Checkpoint.from_row(last).digest
        created = _ts(now)
        message = checkpoint_message(
            number=number,
            head_seq=head_seq,
            head_hash=head_hash,
            created_at=created,
            key_id=self.key.key_id,
            prev_digest=prev_digest,
        )
        signature = self.key.sign(message)
        session.add(
            AuditCheckpointRow(
                number=number,
                head_seq=head_seq,
                head_hash=head_hash,
                created_at=datetime.fromisoformat(created),
                key_id=self.key.key_id,
                prev_digest=prev_digest,
                signature=signature,
            )
        )
        if session.get(AuditKeyRow, self.key.key_id) is None:
            session.add(
                AuditKeyRow(
                    key_id=self.key.key_id, algorithm="ed25519", public_key=self.key.public_raw_b64, created_at=now
                )
            )
        return Checkpoint(number, head_seq, head_hash, created, self.key.key_id, prev_digest, signature)


def load_checkpoints(session: Session) -> list[Checkpoint]:
    return [
        Checkpoint.from_row(row)
        for row in session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.number))
    ]


def database_keys(session: Session) -> dict[str, Ed25519PublicKey]:
    """Public keys recorded in ``audit_keys`` (self-asserted: prefer key files from the operator)."""
    out: dict[str, Ed25519PublicKey] = {}
    for row in session.scalars(select(AuditKeyRow)):
        out[row.key_id] = public_key_from_raw(row.public_key)
    return out


@dataclass(frozen=True)
class CheckpointIssue:
    number: int
    kind: str  # "checkpoint_invalid" | "checkpoint_missing"
    message: str


def check_checkpoint_sequence(
    checkpoints: Iterable[Checkpoint],
    keys: Mapping[str, Ed25519PublicKey],
    *,
    first_number: int = 1,
    first_prev_digest: str | None = GENESIS_DIGEST,
) -> list[CheckpointIssue]:
    """Signatures, numbering and the ``prev_digest`` links of checkpoints given oldest first.

    ``first_prev_digest`` None: the first checkpoint's link is not checked (a sub-range export).
    """
    issues: list[CheckpointIssue] = []
    expected_number = first_number
    prev_digest = first_prev_digest
    prev_head = -1
    for cp in checkpoints:
        if cp.number != expected_number:
            if cp.number > expected_number:
                span = (
                    str(expected_number) if cp.number == expected_number + 1 else f"{expected_number}-{cp.number - 1}"
                )
                issues.append(CheckpointIssue(cp.number, "checkpoint_missing", f"checkpoint(s) {span} missing"))
            else:
                issues.append(CheckpointIssue(cp.number, "checkpoint_invalid", f"checkpoint {cp.number} out of order"))
        elif prev_digest is not None and cp.prev_digest != prev_digest:
            issues.append(
                CheckpointIssue(
                    cp.number, "checkpoint_invalid", f"checkpoint {cp.number} does not follow the one before"
                )
            )
        key = keys.get(cp.key_id)
        if key is None:
            issues.append(
                CheckpointIssue(
                    cp.number, "checkpoint_invalid", f"checkpoint {cp.number} is signed by unknown key {cp.key_id}"
                )
            )
        elif not verify_signature(key, cp.message(), cp.signature):
            issues.append(
                CheckpointIssue(
                    cp.number, "checkpoint_invalid", f"checkpoint {cp.number} has a bad signature (key {cp.key_id})"
                )
            )
        if cp.head_seq <= prev_head:
            issues.append(
                CheckpointIssue(
                    cp.number, "checkpoint_invalid", f"checkpoint {cp.number} does not move the head forward"
                )
            )
        prev_head = max(prev_head, cp.head_seq)
        expected_number = cp.number + 1
        prev_digest = cp.digest
    return issues
