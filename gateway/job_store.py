"""The state of orchestrated jobs (issue 8) in the database: one `jobs` row, and `job_events` in order.

The job row holds the status, the validated plan (with its step prompts: the runner needs them to
go on after a held step; the audit trail only gets their digests), the per-step state and the
assets. `job_events` is the progress log that `GET /v1/jobs/{id}/events` streams: every state
change appends one event in the same transaction that makes it, so any gateway process can serve
the stream from the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from audit.db import Base, UTCDateTime

FINAL = frozenset({"completed", "failed", "cancelled", "refused"})
STATUSES = ("queued", "planning", "running", "paused", *sorted(FINAL))


class JobRow(Base):
    """One orchestrated job: queued → planning → running (⇄ paused) → completed | failed | cancelled | refused."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    max_steps: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    options_json: Mapped[str] = mapped_column(Text, default="{}")  # the request's limits (modalities...)
    plan_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    steps_json: Mapped[str] = mapped_column(Text, default="[]")
    assets_json: Mapped[str] = mapped_column(Text, default="[]")
    error_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    held_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(32))
    data_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass
class Job:
    """A job row as plain values."""

    id: str
    request_id: str
    tenant: str
    key_id: str
    status: str
    max_steps: int
    seed: int
    options: dict[str, Any]
    plan: dict[str, Any] | None
    plan_sha256: str | None
    steps: list[dict[str, Any]]
    assets: list[dict[str, Any]]
    error: dict[str, Any] | None
    held_request_id: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in FINAL


def _job(row: JobRow) -> Job:
    error = json.loads(row.error_json) if row.error_json else None
    return Job(
        id=row.id,
        request_id=row.request_id,
        tenant=row.tenant,
        key_id=row.key_id,
        status=row.status,
        max_steps=row.max_steps,
        seed=row.seed,
        options=json.loads(row.options_json or "{}"),
        plan=json.loads(row.plan_json) if row.plan_json else None,
        plan_sha256=row.plan_sha256,
        steps=json.loads(row.steps_json or "[]"),
        assets=json.loads(row.assets_json or "[]"),
        error=error,
        held_request_id=row.held_request_id,
        cancel_requested=bool(row.cancel_requested),
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        reasons=list((error or {}).get("reasons", [])),
    )


@dataclass(frozen=True)
class JobEvent:
    id: int
    job_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


class JobStore:
    """Reads and writes jobs and their events. Each change is one transaction with its event."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self,
        *,
        job_id: str,
        request_id: str,
        tenant: str,
        key_id: str,
        max_steps: int,
        seed: int,
        options: dict[str, Any],
    ) -> Job:
        now = datetime.now(UTC)
        row = JobRow(
            id=job_id,
            request_id=request_id,
            tenant=tenant,
            key_id=key_id,
            status="queued",
            max_steps=max_steps,
            seed=seed,
            options_json=json.dumps(options),
            steps_json="[]",
            assets_json="[]",
            cancel_requested=False,
            created_at=now,
            updated_at=now,
        )
        with self._sessions() as session, session.begin():
            session.add(row)
            session.add(_event(job_id, "job.queued", {"status": "queued"}, now))
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._sessions() as session:
            row = session.get(JobRow, job_id)
            return _job(row) if row is not None else None

    def by_held_request(self, request_id: str) -> Job | None:
        with self._sessions() as session:
            row = session.execute(select(JobRow).where(JobRow.held_request_id == request_id)).scalars().first()
            return _job(row) if row is not None else None

    def update(
        self,
        job_id: str,
        event: str | None = None,
        data: dict[str, Any] | None = None,
        *,
        expect: tuple[str, ...] | None = None,
        **values: Any,
    ) -> Job | None:
        """Change the row (JSON fields by their plain name: plan, steps, assets, error) and append `event`.

        With `expect`, the change happens only while the status is one of those (compare-and-set);
        otherwise nothing changes and None is returned.
        """
        now = datetime.now(UTC)
        columns: dict[str, Any] = {"updated_at": now}
        for key, value in values.items():
            if key in ("plan", "steps", "assets", "error", "options"):
                columns[f"{key}_json"] = None if value is None else json.dumps(value)
            else:
                columns[key] = value
        if columns.get("status") in FINAL:
            columns.setdefault("completed_at", now)
        with self._sessions() as session, session.begin():
            stmt = update(JobRow).where(JobRow.id == job_id)
            if expect is not None:
                stmt = stmt.where(JobRow.status.in_(expect))
            changed = session.execute(stmt.values(**columns)).rowcount  # type: ignore[attr-defined]
            if not changed:
                return None
            if event is not None:
                session.add(_event(job_id, event, data or {}, now))
        return self.get(job_id)

    def request_cancel(self, job_id: str) -> Job | None:
        """Mark the job for cancelling; a queued or paused job is cancelled at once. None if already final.

        A cancelled paused job keeps its `held_request_id`, so the caller can withdraw that request's
        review item (`gateway.orchestration.withdraw_held`); a review decision wakes only paused jobs.
        """
        now = datetime.now(UTC)
        with self._sessions() as session, session.begin():
            row = session.execute(select(JobRow).where(JobRow.id == job_id).with_for_update()).scalar_one_or_none()
            if row is None or row.status in FINAL:
                return None
            row.cancel_requested = True
            row.updated_at = now
            if row.status in ("queued", "paused"):
                row.status = "cancelled"
                row.completed_at = now
                session.add(_event(job_id, "job.cancelled", {"status": "cancelled"}, now))
            else:
                session.add(_event(job_id, "job.cancel_requested", {"status": row.status}, now))
        return self.get(job_id)

    def events(self, job_id: str, *, after: int = 0, limit: int = 200) -> list[JobEvent]:
        with self._sessions() as session:
            rows = session.execute(
                select(JobEventRow)
                .where(JobEventRow.job_id == job_id, JobEventRow.id > after)
                .order_by(JobEventRow.id)
                .limit(limit)
            ).scalars()
            return [JobEvent(r.id, r.job_id, r.type, json.loads(r.data_json), r.created_at) for r in rows]


def _event(job_id: str, type_: str, data: dict[str, Any], at: datetime) -> JobEventRow:
    return JobEventRow(job_id=job_id, type=type_, data_json=json.dumps(data), created_at=at)
