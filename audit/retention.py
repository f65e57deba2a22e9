"""Retention per tenant: delete the payloads of expired audit records, keep the chain verifiable.

An expired record keeps every chained field (its seq, id, type, request id, tenant, time, payload
digest and hashes): only ``payload_json`` becomes NULL. That row is the tombstone: the chain still
verifies, and the record still proves *that* something happened and when. Each run that deletes
anything appends a ``retention.applied`` record saying which policy deleted what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditRecordRow
from audit.store import AuditStore, format_timestamp

__all__ = ["DEFAULT_TENANT", "RetentionReport", "TenantRetention", "run_retention", "validate_policy"]

DEFAULT_TENANT = "*"
_BATCH = 1_000


@dataclass(frozen=True)
class TenantRetention:
    tenant: str  # "*" = every tenant without a rule of its own (and records without a tenant)
    days: int
    cutoff: datetime
    records: int
    first_seq: int | None
    last_seq: int | None


@dataclass(frozen=True)
class RetentionReport:
    applied: bool
    now: datetime
    tenants: list[TenantRetention] = field(default_factory=list)
    record_seq: int | None = None  # the retention.applied record, when one was written

    @property
    def total(self) -> int:
        return sum(t.records for t in self.tenants)


def validate_policy(days: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for tenant, value in days.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"retention for tenant {tenant!r} must be a whole number of days >= 1, not {value!r}")
        out[str(tenant)] = value
    return out


def _scope(tenant: str, explicit: list[str], cutoff: datetime) -> ColumnElement[bool]:
    if tenant == DEFAULT_TENANT:
        who: ColumnElement[bool] = or_(AuditRecordRow.tenant.is_(None), not_(AuditRecordRow.tenant.in_(explicit)))
    else:
        who = AuditRecordRow.tenant == tenant
    return and_(who, AuditRecordRow.created_at < cutoff, AuditRecordRow.payload_json.is_not(None))


def _measure(session: Session, condition: ColumnElement[bool]) -> tuple[int, int | None, int | None]:
    row = session.execute(
        select(func.count(), func.min(AuditRecordRow.seq), func.max(AuditRecordRow.seq)).where(condition)
    ).one()
    return int(row[0]), row[1], row[2]


def run_retention(
    store: AuditStore,
    sessions: sessionmaker[Session],
    days: Mapping[str, int],
    *,
    apply: bool = False,
    now: datetime | None = None,
) -> RetentionReport:
    """Find (and with ``apply``, delete) the payloads that the per-tenant ``days`` policy expires."""
    policy = validate_policy(days)
    now = now or datetime.now(UTC)
    explicit = sorted(t for t in policy if t != DEFAULT_TENANT)
    tenants: list[TenantRetention] = []
    with sessions() as session:
        for tenant in sorted(policy):
            cutoff = now - timedelta(days=policy[tenant])
            count, first, last = _measure(session, _scope(tenant, explicit, cutoff))
            tenants.append(TenantRetention(tenant, policy[tenant], cutoff, count, first, last))
    if not apply or not any(t.records for t in tenants):
        return RetentionReport(applied=apply, now=now, tenants=tenants)

    for item in tenants:
        condition = _scope(item.tenant, explicit, item.cutoff)
        while True:
            with sessions() as session, session.begin():
                seqs = list(session.scalars(select(AuditRecordRow.seq).where(condition).limit(_BATCH)))
                if not seqs:
                    break
                session.execute(
                    update(AuditRecordRow)
                    .where(AuditRecordRow.seq.in_(seqs), AuditRecordRow.payload_json.is_not(None))
                    .values(payload_json=None)
                    .execution_options(synchronize_session=False)
                )
    payload: dict[str, Any] = {
        "policy": policy,
        "at": format_timestamp(now),
        "tenants": [
            {
                "tenant": t.tenant,
                "days": t.days,
                "cutoff": format_timestamp(t.cutoff),
                "payloads_deleted": t.records,
                "first_seq": t.first_seq,
                "last_seq": t.last_seq,
            }
            for t in tenants
            if t.records
        ],
    }
    record = store.append("retention.applied", payload)
    return RetentionReport(applied=True, now=now, tenants=tenants, record_seq=record.seq)
