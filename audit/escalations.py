"""The escalation queue: requests held until a supervisor approves or rejects them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.canonical import canonical_json
from audit.db import write_lock
from audit.models import EscalationRow

__all__ = [
    "Escalation",
    "EscalationError",
    "EscalationNotFound",
    "EscalationStateError",
    "EscalationStatus",
    "EscalationStore",
    "SelfApprovalError",
]

EscalationStatus = Literal["pending", "approved", "rejected", "expired"]
_STATUSES: frozenset[str] = frozenset(get_args(EscalationStatus))
_DECIDE_LOCK = "mamori.escalations.decide"
_MAX_LIMIT = 10_000


class EscalationError(Exception):
    """Base class of escalation errors."""


class EscalationNotFound(EscalationError):
    """No escalation has this id."""


class EscalationStateError(EscalationError):
    """The escalation is no longer pending (already decided or expired)."""


class SelfApprovalError(EscalationError):
    """The requester tried to decide their own escalation."""


@dataclass(frozen=True)
class Escalation:
    id: str
    request_id: str
    tenant: str
    requester_key_id: str
    status: EscalationStatus
    reasons: list[dict[str, Any]]
    obligations: dict[str, Any]
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None

    @classmethod
    def from_row(cls, row: EscalationRow) -> Escalation:
        return cls(
            id=row.id,
            request_id=row.request_id,
            tenant=row.tenant,
            requester_key_id=row.requester_key_id,
            status=cast(EscalationStatus, row.status),
            reasons=[dict(reason) for reason in row.reasons],
            obligations=dict(row.obligations),
            created_at=row.created_at,
            decided_at=row.decided_at,
            decided_by=row.decided_by,
            decision_reason=row.decision_reason,
        )


def _json_safe(value: Any) -> Any:
    canonical_json(value)  # raises TypeError/ValueError for anything JSON cannot hold exactly
    return value


class EscalationStore:
    """Create, list and decide escalations. Safe to share between threads and processes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self,
        *,
        request_id: str,
        tenant: str,
        requester_key_id: str,
        reasons: Sequence[Mapping[str, Any]],
        obligations: Mapping[str, Any],
    ) -> Escalation:
        row = EscalationRow(
            id=str(uuid.uuid4()),
            request_id=request_id,
            tenant=tenant,
            requester_key_id=requester_key_id,
            status="pending",
            reasons=_json_safe([dict(reason) for reason in reasons]),
            obligations=_json_safe(dict(obligations)),
            created_at=datetime.now(UTC),
            decided_at=None,
            decided_by=None,
            decision_reason=None,
        )
        with self._sessions() as session, session.begin():
            session.add(row)
            return Escalation.from_row(row)

    def get(self, escalation_id: str) -> Escalation:
        with self._sessions() as session:
            row = session.get(EscalationRow, escalation_id)
            if row is None:
                raise EscalationNotFound(escalation_id)
            return Escalation.from_row(row)

    def list(self, *, tenant: str | None = None, status: str | None = "pending", limit: int = 100) -> list[Escalation]:
        """Escalations oldest first (a queue); ``status=None`` lists every status."""
        if status is not None and status not in _STATUSES:
            raise ValueError(f"unknown escalation status {status!r}")
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}")
        query = select(EscalationRow)
        if tenant is not None:
            query = query.where(EscalationRow.tenant == tenant)
        if status is not None:
            query = query.where(EscalationRow.status == status)
        query = query.order_by(EscalationRow.created_at, EscalationRow.id).limit(limit)
        with self._sessions() as session:
            return [Escalation.from_row(row) for row in session.scalars(query)]

    def decide(self, escalation_id: str, *, approve: bool, decided_by: str, reason: str) -> Escalation:
        """Approve or reject a pending escalation, exactly once.

        The state change is a compare-and-set (``UPDATE … WHERE status = 'pending'``) so of two
        concurrent deciders, in threads or processes, one wins and the other gets
        :class:`EscalationStateError`. The requester can never decide their own escalation.
        """
        if not decided_by:
            raise ValueError("decided_by must not be empty")
        with self._sessions() as session, session.begin():
            write_lock(session, _DECIDE_LOCK)  # SQLite: take the write lock before reading
            row = session.get(EscalationRow, escalation_id)
            if row is None:
                raise EscalationNotFound(escalation_id)
            if decided_by == row.requester_key_id:
                raise SelfApprovalError(f"{decided_by} requested escalation {escalation_id}")
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(EscalationRow)
                    .where(EscalationRow.id == escalation_id, EscalationRow.status == "pending")
                    .values(
                        status="approved" if approve else "rejected",
                        decided_at=datetime.now(UTC),
                        decided_by=decided_by,
                        decision_reason=reason,
                    )
                    .execution_options(synchronize_session=False)
                ),
            )
            if result.rowcount != 1:
                session.refresh(row)
                raise EscalationStateError(f"escalation {escalation_id} is already {row.status}")
            session.refresh(row)
            return Escalation.from_row(row)

    def expire_pending(self, *, older_than: datetime) -> int:
        """Mark pending escalations created before ``older_than`` as expired; returns how many."""
        with self._sessions() as session, session.begin():
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(EscalationRow)
                    .where(EscalationRow.status == "pending", EscalationRow.created_at < older_than)
                    .values(status="expired", decided_at=datetime.now(UTC))
                    .execution_options(synchronize_session=False)
                ),
            )
            return int(result.rowcount)
