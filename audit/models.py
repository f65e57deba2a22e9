"""ORM tables of the audit package: the hash-chained ``audit_records`` and ``escalations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.db import Base, UTCDateTime

__all__ = ["AuditRecordRow", "EscalationRow"]


class AuditRecordRow(Base):
    """One event in the single append-only chain. ``seq`` runs 1, 2, 3… without gaps.

    ``payload_json`` holds the RFC 8785 canonical JSON of the payload; it may be set to NULL for
    retention while ``payload_digest`` (and therefore the chain) stays intact.
    """

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    tenant: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload_json: Mapped[str | None] = mapped_column(Text)
    payload_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))


class EscalationRow(Base):
    """A request held for a human decision: the review queue's item.

    ``status`` is the stored state; a ``claimed`` row whose lease has run out counts as pending (the
    periodic sweep also puts it back). Approvals, comments and claims are rows of
    ``escalation_events`` (``audit.escalations.EscalationEventRow``).
    """

    __tablename__ = "escalations"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'claimed', 'approved', 'rejected', 'expired')", name="status"),
        Index("ix_escalations_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    requester_key_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    obligations: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    # the queue (migration 0003)
    requester_name: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(16), server_default="normal")
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    approvals_required: Mapped[int] = mapped_column(Integer, server_default="1")
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_by_name: Mapped[str | None] = mapped_column(String(200))
    lease_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    assigned_to: Mapped[str | None] = mapped_column(String(128))
    callback_url: Mapped[str | None] = mapped_column(Text)
    prompt_masked: Mapped[str | None] = mapped_column(Text)
