"""Replay: re-evaluate the decision inputs stored in the audit log with a candidate bundle.

Each `request` audit record keeps `decisions: [{stage, action, reasons, obligations, input, ...}]`,
where `input` is the decision input exactly as evaluated. Replay feeds every stored input to a
candidate engine and reports which decisions would change: by action transition, by reason code
(added or dropped), and the list. It only reads the audit log (a plain SELECT): nothing is
appended, so the chain and its head stay as they were.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.models import AuditRecordRow
from gateway.policy import PolicyEngine, PolicyError

_BATCH = 500


@dataclass
class Change:
    seq: int
    request_id: str | None
    tenant: str | None
    created_at: str
    stage: str
    before: dict[str, Any]
    after: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "request_id": self.request_id,
            "tenant": self.tenant,
            "created_at": self.created_at,
            "stage": self.stage,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class ReplayReport:
    revision: str
    records: int = 0
    decisions: int = 0
    skipped: int = 0  # decisions stored without an input (older records, retention)
    changes: list[Change] = field(default_factory=list)
    by_action: Counter[str] = field(default_factory=Counter)
    reasons_added: Counter[str] = field(default_factory=Counter)
    reasons_removed: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> int:
        return len(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "records": self.records,
            "decisions": self.decisions,
            "skipped": self.skipped,
            "changed": self.changed,
            "by_action": dict(sorted(self.by_action.items())),
            "reasons_added": dict(sorted(self.reasons_added.items())),
            "reasons_removed": dict(sorted(self.reasons_removed.items())),
            "changes": [c.to_dict() for c in self.changes],
        }


def _summary(decision: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": decision.get("action"),
        "codes": [r.get("code") for r in decision.get("reasons") or [] if isinstance(r, dict)],
        "obligations": decision.get("obligations") or {},
    }


def _records(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None, tenant: str | None
) -> Iterator[AuditRecordRow]:
    last = 0
    while True:
        query = select(AuditRecordRow).where(AuditRecordRow.event_type == "request", AuditRecordRow.seq > last)
        if since is not None:
            query = query.where(AuditRecordRow.created_at >= since)
        if until is not None:
            query = query.where(AuditRecordRow.created_at < until)
        if tenant is not None:
            query = query.where(AuditRecordRow.tenant == tenant)
        with sessions() as session:
            rows = list(session.scalars(query.order_by(AuditRecordRow.seq).limit(_BATCH)))
            session.expunge_all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def replay(
    sessions: sessionmaker[Session],
    candidate: PolicyEngine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tenant: str | None = None,
) -> ReplayReport:
    """Re-evaluate stored decision inputs (request records in [since, until), of one tenant if given)."""
    import json

    report = ReplayReport(revision=candidate.revision)
    for row in _records(sessions, _utc(since), _utc(until), tenant):
        if row.payload_json is None:
            continue
        payload = json.loads(row.payload_json)
        report.records += 1
        for stored in payload.get("decisions") or []:
            if not isinstance(stored, dict) or not isinstance(stored.get("input"), dict):
                report.skipped += 1
                continue
            report.decisions += 1
            try:
                after = _summary(candidate.decide(stored["input"]).to_dict())
            except PolicyError as exc:  # the gateway would have failed closed
                after = {"action": "block", "codes": ["system.policy_error"], "obligations": {}, "error": str(exc)}
            before = _summary(stored)
            if before == after:
                continue
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            report.changes.append(
                Change(
                    seq=row.seq,
                    request_id=row.request_id,
                    tenant=row.tenant,
                    created_at=created.isoformat(),
                    stage=str(stored.get("stage", stored["input"].get("stage"))),
                    before=before,
                    after=after,
                )
            )
            report.by_action[f"{before['action']}->{after['action']}"] += 1
            for code in sorted(set(after["codes"]) - set(before["codes"])):
                report.reasons_added[code] += 1
            for code in sorted(set(before["codes"]) - set(after["codes"])):
                report.reasons_removed[code] += 1
    return report


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


__all__ = ["Change", "ReplayReport", "replay"]
