"""The escalation (review) queue: requests held until enough reviewers approve, one rejects, or they expire.

States: ``pending`` → ``claimed`` (a lease that runs out) → ``approved``, ``rejected`` or ``expired``.
A ``claimed`` item whose lease has run out counts as pending: anyone may claim it, and the periodic
sweep (:meth:`EscalationStore.sweep`) puts it back. Every change happens in one transaction behind
one write lock (SQLite ``BEGIN IMMEDIATE`` / a PostgreSQL advisory lock), so two reviewers acting at
once, in threads or processes, are serialized and the second sees the first one's result.

Claims, approvals, comments and reassignments are rows of ``escalation_events``. Approvals count
by reviewer *identity*: the display name given at key creation (the key id when it has none), so
one person holding two keys still counts once. Nobody decides a request they made.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, cast, get_args

from sqlalchemy import JSON, CursorResult, ForeignKey, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from audit.canonical import canonical_json
from audit.db import Base, UTCDateTime, write_lock
from audit.models import EscalationRow

__all__ = [
    "OPEN",
    "PRIORITIES",
    "AlreadyApproved",
    "DuplicateSubmission",
    "Escalation",
    "EscalationError",
    "EscalationEvent",
    "EscalationEventRow",
    "EscalationNotFound",
    "EscalationStateError",
    "EscalationStatus",
    "EscalationStore",
    "LeaseExpired",
    "LeaseHeld",
    "Reviewer",
    "SelfApprovalError",
    "SweepResult",
    "raised_priority",
]

EscalationStatus = Literal["pending", "claimed", "approved", "rejected", "expired"]
_STATUSES: frozenset[str] = frozenset(get_args(EscalationStatus))
OPEN: tuple[str, ...] = ("pending", "claimed")
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
_DECIDE_LOCK = "mamori.escalations.decide"
_MAX_LIMIT = 10_000
T = TypeVar("T")
EventList = list["EscalationEvent"]
EscalationList = list["Escalation"]


class EscalationError(Exception):
    """Base class of escalation errors."""


class EscalationNotFound(EscalationError):
    """No escalation has this id."""


class EscalationStateError(EscalationError):
    """The escalation is no longer open (already decided or expired)."""


class SelfApprovalError(EscalationError):
    """The requester tried to decide their own escalation."""


class LeaseHeld(EscalationError):
    """Another reviewer holds a live claim on the item."""


class LeaseExpired(EscalationError):
    """The caller's lease ran out (or was replaced); claim the item again."""


class AlreadyApproved(EscalationError):
    """This reviewer already approved the item; another reviewer must give the next approval."""


class DuplicateSubmission(EscalationError):
    """A form with this one-time token was already handled (a replayed post)."""


def raised_priority(priority: str) -> str:
    """The next priority up (``urgent`` stays ``urgent``)."""
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 1
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]


class EscalationEventRow(Base):
    """One thing that happened to a queue item: claim, release, approval, comment, reassignment…"""

    __tablename__ = "escalation_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    escalation_id: Mapped[str] = mapped_column(String(36), ForeignKey("escalations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    actor_key_id: Mapped[str | None] = mapped_column(String(128))
    actor_name: Mapped[str | None] = mapped_column(String(200))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


@dataclass(frozen=True)
class Reviewer:
    """Who acts on the queue. ``identity`` is what makes two approvals distinct."""

    key_id: str
    role: str
    name: str = ""

    @property
    def identity(self) -> str:
        return self.name.strip().casefold() or self.key_id


SYSTEM = Reviewer(key_id="system", role="system", name="")


@dataclass(frozen=True)
class EscalationEvent:
    id: str
    escalation_id: str
    created_at: datetime
    kind: str
    actor_key_id: str | None
    actor_name: str | None
    actor_role: str | None
    text: str | None
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: EscalationEventRow) -> EscalationEvent:
        return cls(
            id=row.id,
            escalation_id=row.escalation_id,
            created_at=row.created_at,
            kind=row.kind,
            actor_key_id=row.actor_key_id,
            actor_name=row.actor_name,
            actor_role=row.actor_role,
            text=row.text,
            data=dict(row.data or {}),
        )


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
    requester_name: str | None = None
    priority: str = "normal"
    category: str | None = None
    approvals_required: int = 1
    deadline_at: datetime | None = None
    expires_at: datetime | None = None
    deadline_missed_at: datetime | None = None
    claimed_by: str | None = None
    claimed_by_name: str | None = None
    lease_id: str | None = None
    lease_expires_at: datetime | None = None
    assigned_to: str | None = None
    callback_url: str | None = None
    prompt_masked: str | None = None
    approvals: tuple[EscalationEvent, ...] = field(default=())

    @classmethod
    def from_row(cls, row: EscalationRow, approvals: Sequence[EscalationEvent] = ()) -> Escalation:
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
            requester_name=row.requester_name,
            priority=row.priority or "normal",
            category=row.category,
            approvals_required=int(row.approvals_required or 1),
            deadline_at=row.deadline_at,
            expires_at=row.expires_at,
            deadline_missed_at=row.deadline_missed_at,
            claimed_by=row.claimed_by,
            claimed_by_name=row.claimed_by_name,
            lease_id=row.lease_id,
            lease_expires_at=row.lease_expires_at,
            assigned_to=row.assigned_to,
            callback_url=row.callback_url,
            prompt_masked=row.prompt_masked,
            approvals=tuple(approvals),
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def lease_live(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.status == "claimed" and self.lease_expires_at is not None and self.lease_expires_at > now

    def effective_status(self, now: datetime | None = None) -> str:
        """``claimed`` only while the lease is live; a lapsed claim reads ``pending``."""
        if self.status == "claimed" and not self.lease_live(now):
            return "pending"
        return self.status

    def approver_identities(self) -> list[str]:
        return [Reviewer(e.actor_key_id or "", e.actor_role or "", e.actor_name or "").identity for e in self.approvals]


@dataclass(frozen=True)
class SweepResult:
    """What one pass of :meth:`EscalationStore.sweep` changed."""

    leases_lapsed: list[Escalation]
    deadlines_missed: list[Escalation]
    expired: list[Escalation]


def _json_safe(value: Any) -> Any:
    canonical_json(value)  # raises TypeError/ValueError for anything JSON cannot hold exactly
    return value


def _review_obligations(obligations: Mapping[str, Any]) -> dict[str, Any]:
    review = obligations.get("review")
    return dict(review) if isinstance(review, Mapping) else {}


class EscalationStore:
    """Create, list, claim and decide escalations. Safe to share between threads and processes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ------------------------------------------------------------------ create and read
    def create(
        self,
        *,
        request_id: str,
        tenant: str,
        requester_key_id: str,
        reasons: Sequence[Mapping[str, Any]],
        obligations: Mapping[str, Any],
        requester_name: str | None = None,
        deadline_at: datetime | None = None,
        expires_at: datetime | None = None,
        callback_url: str | None = None,
        prompt_masked: str | None = None,
    ) -> Escalation:
        """Open an item. Priority, category and approvals come from ``obligations["review"]``."""
        review = _review_obligations(obligations)
        priority = str(review.get("priority") or "normal")
        if priority not in PRIORITIES:
            priority = "normal"
        approvals = review.get("approvals", 1)
        approvals_required = approvals if isinstance(approvals, int) and 1 <= approvals <= 10 else 1
        category = review.get("category")
        if not isinstance(category, str):
            category = next((str(r["category"]) for r in reasons if isinstance(r.get("category"), str)), None)
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
            requester_name=requester_name or None,
            priority=priority,
            category=category[:64] if category else None,
            approvals_required=approvals_required,
            deadline_at=deadline_at,
            expires_at=expires_at,
            callback_url=callback_url,
            prompt_masked=prompt_masked,
        )
        with self._sessions() as session, session.begin():
            session.add(row)
            session.flush()
            return Escalation.from_row(row)

    def get(self, escalation_id: str) -> Escalation:
        with self._sessions() as session:
            row = session.get(EscalationRow, escalation_id)
            if row is None:
                raise EscalationNotFound(escalation_id)
            return Escalation.from_row(row, self._approvals(session, escalation_id))

    def events(self, escalation_id: str) -> EventList:
        """Everything that happened to the item, oldest first."""
        query = (
            select(EscalationEventRow)
            .where(EscalationEventRow.escalation_id == escalation_id)
            .order_by(EscalationEventRow.created_at, EscalationEventRow.id)
        )
        with self._sessions() as session:
            return [EscalationEvent.from_row(r) for r in session.scalars(query)]

    def list(
        self,
        *,
        tenant: str | None = None,
        status: str | None = "pending",
        priority: str | None = None,
        category: str | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> EscalationList:
        """Items oldest first (a queue); ``status="open"`` is pending and claimed, ``None`` every status."""
        if status is not None and status != "open" and status not in _STATUSES:
            raise ValueError(f"unknown escalation status {status!r}")
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}")
        query = select(EscalationRow)
        if tenant is not None:
            query = query.where(EscalationRow.tenant == tenant)
        if status == "open":
            query = query.where(EscalationRow.status.in_(OPEN))
        elif status is not None:
            query = query.where(EscalationRow.status == status)
        if priority is not None:
            query = query.where(EscalationRow.priority == priority)
        if category is not None:
            query = query.where(EscalationRow.category == category)
        if created_before is not None:
            query = query.where(EscalationRow.created_at < created_before)
        query = query.order_by(EscalationRow.created_at, EscalationRow.id).limit(limit)
        with self._sessions() as session:
            rows = list(session.scalars(query))
            return [Escalation.from_row(row, self._approvals(session, row.id)) for row in rows]

    def counts(self, *, tenant: str | None = None) -> dict[str, dict[str, int]]:
        """Counts by status, and of open items by priority and by category."""
        out: dict[str, dict[str, int]] = {"status": {}, "priority": {}, "category": {}}
        base = select(EscalationRow.status, func.count()).group_by(EscalationRow.status)
        if tenant is not None:
            base = base.where(EscalationRow.tenant == tenant)
        with self._sessions() as session:
            for status, n in session.execute(base):
                out["status"][str(status)] = int(n)
            for column, key in ((EscalationRow.priority, "priority"), (EscalationRow.category, "category")):
                query = select(column, func.count()).where(EscalationRow.status.in_(OPEN)).group_by(column)
                if tenant is not None:
                    query = query.where(EscalationRow.tenant == tenant)
                for value, n in session.execute(query):
                    out[key][str(value or "-")] = int(n)
        return out

    def all_for_report(self, *, tenant: str | None = None, since: datetime | None = None) -> EscalationList:
        query = select(EscalationRow)
        if tenant is not None:
            query = query.where(EscalationRow.tenant == tenant)
        if since is not None:
            query = query.where(EscalationRow.created_at >= since)
        with self._sessions() as session:
            return [Escalation.from_row(row) for row in session.scalars(query.order_by(EscalationRow.created_at))]

    # ------------------------------------------------------------------ queue actions
    def claim(
        self,
        escalation_id: str,
        reviewer: Reviewer,
        *,
        lease_s: int,
        lease_id: str | None = None,
        nonce: str | None = None,
    ) -> Escalation:
        """Take (or, with the current ``lease_id``, renew) the lease on an open item."""

        def change(session: Session, row: EscalationRow, now: datetime) -> None:
            self._check_actor(row, reviewer)
            live = row.status == "claimed" and row.lease_expires_at is not None and row.lease_expires_at > now
            if lease_id is not None and (not live or row.lease_id != lease_id or row.claimed_by != reviewer.key_id):
                raise LeaseExpired(f"lease {lease_id} on {escalation_id} has run out or was replaced")
            if live and row.claimed_by != reviewer.key_id:
                raise LeaseHeld(f"{escalation_id} is claimed by another reviewer until {row.lease_expires_at}")
            self._take(row, reviewer, now, lease_s, renew=live)
            self._event(session, row, "claim", reviewer, now, nonce=nonce, data={"lease_id": row.lease_id})

        return self._mutate(escalation_id, change, nonce=nonce)

    def release(
        self, escalation_id: str, reviewer: Reviewer, *, lease_id: str | None = None, nonce: str | None = None
    ) -> Escalation:
        """Give a claim back; the item returns to pending."""

        def change(session: Session, row: EscalationRow, now: datetime) -> None:
            self._check_open(row)
            live = row.status == "claimed" and row.lease_expires_at is not None and row.lease_expires_at > now
            if not live or row.claimed_by != reviewer.key_id or (lease_id is not None and lease_id != row.lease_id):
                raise LeaseExpired(f"you hold no live lease on {escalation_id}")
            self._drop_claim(row)
            self._event(session, row, "release", reviewer, now, nonce=nonce)

        return self._mutate(escalation_id, change, nonce=nonce)

    def comment(self, escalation_id: str, reviewer: Reviewer, text: str, *, nonce: str | None = None) -> Escalation:
        text = text.strip()
        if not text:
            raise ValueError("a comment needs text")

        def change(session: Session, row: EscalationRow, now: datetime) -> None:
            self._event(session, row, "comment", reviewer, now, text=text[:4000], nonce=nonce)

        return self._mutate(escalation_id, change, nonce=nonce)

    def reassign(
        self,
        escalation_id: str,
        by: Reviewer,
        to: Reviewer,
        *,
        lease_s: int,
        reason: str = "",
        nonce: str | None = None,
    ) -> Escalation:
        """Hand an open item to another reviewer: they hold a fresh lease on it."""

        def change(session: Session, row: EscalationRow, now: datetime) -> None:
            self._check_actor(row, by)
            self._check_actor(row, to)
            live = row.status == "claimed" and row.lease_expires_at is not None and row.lease_expires_at > now
            if live and row.claimed_by not in (by.key_id, to.key_id) and by.role != "admin":
                raise LeaseHeld(f"{escalation_id} is claimed by another reviewer")
            self._take(row, to, now, lease_s, renew=False)
            row.assigned_to = to.key_id
            self._event(
                session, row, "reassign", by, now, text=reason.strip()[:2000] or None, nonce=nonce,
                data={"to_key_id": to.key_id, "to_name": to.name},
            )  # fmt: skip

        return self._mutate(escalation_id, change, nonce=nonce)

    def approve(
        self,
        escalation_id: str,
        reviewer: Reviewer,
        *,
        reason: str,
        expect_final: bool | None = None,
        required: int | None = None,
        nonce: str | None = None,
    ) -> tuple[Escalation, bool]:
        """Record one approval (claiming the item implicitly). Returns (item, final).

        ``final`` is True when this approval brings the distinct approvers to the number required;
        the item is then ``approved``. Otherwise it goes back to ``pending`` for the next reviewer.
        ``required``: the number of approvals the release policy asks for now (raises, never lowers).
        ``expect_final``: the caller prepared for this outcome (signed the asset, say); when the
        outcome differs (someone else approved meanwhile) nothing changes and
        :class:`EscalationStateError` is raised, so the caller can look again.
        """
        reason = reason.strip()
        if not reason:
            raise ValueError("an approval needs a reason")
        final_box: list[bool] = []

        def change(session: Session, row: EscalationRow, now: datetime) -> None:
            self._check_actor(row, reviewer)
            self._check_lease(row, reviewer, now)
            approvals = self._approvals(session, row.id)
            identities = {Reviewer(e.actor_key_id or "", e.actor_role or "", e.actor_name or "").identity
                          for e in approvals}  # fmt: skip
            if reviewer.identity in identities or reviewer.key_id in {e.actor_key_id for e in approvals}:
                raise AlreadyApproved(f"{reviewer.key_id} already approved {escalation_id}")
            if required is not None and 1 <= required <= 10:  # the release policy may ask for more, never fewer
                row.approvals_required = max(int(row.approvals_required or 1), required)
            final = len(identities) + 1 >= int(row.approvals_required or 1)
            if expect_final is not None and final != expect_final:
                raise EscalationStateError(f"escalation {escalation_id} changed meanwhile; look again")
            self._event(session, row, "approval", reviewer, now, text=reason[:2000], nonce=nonce)
            if final:
                row.status = "approved"
                row.decided_at = now
                row.decided_by = reviewer.key_id
                row.decision_reason = reason[:2000]
            self._drop_claim(row)
            final_box.append(final)

        escalation = self._mutate(escalation_id, change, nonce=nonce)
        return escalation, final_box[0]

    def reject(self, escalation_id: str, reviewer: Reviewer, *, reason: str, nonce: str | None = None) -> Escalation:
        """Reject an open item (claiming it implicitly). One rejection ends it."""
        reason = reason.strip()
        if not reason:
            raise ValueError("a rejection needs a reason")

        def change(session: Session, row: EscalationRow, now: datetime) -> None:
            self._check_actor(row, reviewer)
            self._check_lease(row, reviewer, now)
            self._event(session, row, "rejection", reviewer, now, text=reason[:2000], nonce=nonce)
            row.status = "rejected"
            row.decided_at = now
            row.decided_by = reviewer.key_id
            row.decision_reason = reason[:2000]
            self._drop_claim(row)

        return self._mutate(escalation_id, change, nonce=nonce)

    def decide(self, escalation_id: str, *, approve: bool, decided_by: str, reason: str) -> Escalation:
        """Approve or reject an open escalation outright, exactly once (no approval counting).

        Kept for callers that decide by key id alone; the review flow uses :meth:`approve` and
        :meth:`reject`. The requester can never decide their own escalation.
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
                    .where(EscalationRow.id == escalation_id, EscalationRow.status.in_(OPEN))
                    .values(
                        status="approved" if approve else "rejected",
                        decided_at=datetime.now(UTC),
                        decided_by=decided_by,
                        decision_reason=reason,
                        claimed_by=None,
                        claimed_by_name=None,
                        lease_id=None,
                        lease_expires_at=None,
                    )
                    .execution_options(synchronize_session=False)
                ),
            )
            if result.rowcount != 1:
                session.refresh(row)
                raise EscalationStateError(f"escalation {escalation_id} is already {row.status}")
            session.refresh(row)
            return Escalation.from_row(row)

    # ------------------------------------------------------------------ time-driven changes
    def sweep(self, *, now: datetime | None = None, ids: Iterable[str] | None = None) -> SweepResult:
        """Lapse run-out leases, mark missed deadlines (raising the priority) and expire old items.

        Idempotent: each change is made once, so the periodic job and a job scheduled for one item
        may both run it. Expired items end ``expired`` with a system reason; the caller refuses the
        held request and audits it.
        """
        now = now or datetime.now(UTC)
        lapsed: list[Escalation] = []
        missed: list[Escalation] = []
        expired: list[Escalation] = []
        with self._sessions() as session, session.begin():
            write_lock(session, _DECIDE_LOCK)
            query = select(EscalationRow).where(EscalationRow.status.in_(OPEN))
            if ids is not None:
                query = query.where(EscalationRow.id.in_(list(ids)))
            for row in session.scalars(query):
                if row.expires_at is not None and row.expires_at <= now:
                    self._drop_claim(row)
                    row.status = "expired"
                    row.decided_at = now
                    row.decided_by = SYSTEM.key_id
                    row.decision_reason = "review.expired: no decision before the configured expiry"
                    self._event(session, row, "expired", SYSTEM, now)
                    expired.append(Escalation.from_row(row))
                    continue
                if row.status == "claimed" and (row.lease_expires_at is None or row.lease_expires_at <= now):
                    self._drop_claim(row)
                    self._event(session, row, "lease_lapsed", SYSTEM, now)
                    lapsed.append(Escalation.from_row(row))
                if row.deadline_at is not None and row.deadline_at <= now and row.deadline_missed_at is None:
                    before = row.priority
                    row.priority = raised_priority(row.priority or "normal")
                    row.deadline_missed_at = now
                    self._event(session, row, "deadline_missed", SYSTEM, now, data={"from": before, "to": row.priority})
                    missed.append(Escalation.from_row(row))
        return SweepResult(leases_lapsed=lapsed, deadlines_missed=missed, expired=expired)

    def expire_pending(self, *, older_than: datetime) -> int:
        """Mark open escalations created before ``older_than`` as expired; returns how many."""
        with self._sessions() as session, session.begin():
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(EscalationRow)
                    .where(EscalationRow.status.in_(OPEN), EscalationRow.created_at < older_than)
                    .values(status="expired", decided_at=datetime.now(UTC), lease_id=None, lease_expires_at=None)
                    .execution_options(synchronize_session=False)
                ),
            )
            return int(result.rowcount)

    # ------------------------------------------------------------------ helpers
    def _mutate(
        self, escalation_id: str, change: Callable[[Session, EscalationRow, datetime], None], *, nonce: str | None
    ) -> Escalation:
        with self._sessions() as session, session.begin():
            write_lock(session, _DECIDE_LOCK)  # one writer at a time, across threads and processes
            row = session.get(EscalationRow, escalation_id)
            if row is None:
                raise EscalationNotFound(escalation_id)
            if nonce is not None:
                seen = session.scalars(
                    select(EscalationEventRow.id).where(
                        EscalationEventRow.escalation_id == escalation_id, EscalationEventRow.nonce == nonce
                    )
                ).first()
                if seen is not None:
                    raise DuplicateSubmission(f"this form was already submitted for {escalation_id}")
            now = datetime.now(UTC)
            change(session, row, now)
            session.flush()
            return Escalation.from_row(row, self._approvals(session, escalation_id))

    @staticmethod
    def _approvals(session: Session, escalation_id: str) -> EventList:
        query = (
            select(EscalationEventRow)
            .where(EscalationEventRow.escalation_id == escalation_id, EscalationEventRow.kind == "approval")
            .order_by(EscalationEventRow.created_at, EscalationEventRow.id)
        )
        return [EscalationEvent.from_row(r) for r in session.scalars(query)]

    @staticmethod
    def _check_open(row: EscalationRow) -> None:
        if row.status not in OPEN:
            raise EscalationStateError(f"escalation {row.id} is already {row.status}")

    def _check_actor(self, row: EscalationRow, reviewer: Reviewer) -> None:
        self._check_open(row)
        same_name = bool(reviewer.name.strip()) and (row.requester_name or "").strip().casefold() == reviewer.identity
        if reviewer.key_id == row.requester_key_id or same_name:
            raise SelfApprovalError(f"{reviewer.key_id} requested escalation {row.id}")

    @staticmethod
    def _check_lease(row: EscalationRow, reviewer: Reviewer, now: datetime) -> None:
        live = row.status == "claimed" and row.lease_expires_at is not None and row.lease_expires_at > now
        if live and row.claimed_by != reviewer.key_id:
            raise LeaseHeld(f"{row.id} is claimed by another reviewer until {row.lease_expires_at}")

    @staticmethod
    def _take(row: EscalationRow, reviewer: Reviewer, now: datetime, lease_s: int, *, renew: bool) -> None:
        row.status = "claimed"
        row.claimed_by = reviewer.key_id
        row.claimed_by_name = reviewer.name or None
        if not renew or not row.lease_id:
            row.lease_id = "lease_" + secrets.token_hex(12)
        row.lease_expires_at = now + timedelta(seconds=lease_s)

    @staticmethod
    def _drop_claim(row: EscalationRow) -> None:
        if row.status == "claimed":
            row.status = "pending"
        row.claimed_by = None
        row.claimed_by_name = None
        row.lease_id = None
        row.lease_expires_at = None

    @staticmethod
    def _event(
        session: Session,
        row: EscalationRow,
        kind: str,
        actor: Reviewer,
        now: datetime,
        *,
        text: str | None = None,
        nonce: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            EscalationEventRow(
                id=str(uuid.uuid4()),
                escalation_id=row.id,
                created_at=now,
                kind=kind,
                actor_key_id=actor.key_id,
                actor_name=actor.name or None,
                actor_role=actor.role,
                text=text,
                nonce=nonce,
                data=_json_safe(data or {}),
            )
        )
