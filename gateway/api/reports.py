"""The management summary (`GET /v1/reports/summary`): the figures a pilot is judged by.

Per tenant and overall: requests, refusal and escalation rates by category (a request's category is
the rule behind each reason it got, ``prescreen.denylist`` → ``denylist``; none → ``none``), review
turnaround p50/p95 (creation to decision, decided items), and missed deadlines. Read from the
audit chain (``request`` records) and the queue.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter

from gateway.api.deps import ServicesDep, access
from gateway.errors import BadRequest
from gateway.keys import Principal
from gateway.services import Services

router = APIRouter(prefix="/v1/reports", tags=["reports"])
CanReadReports = Annotated[Principal, access("reports.read")]
_PAGE = 5_000
_MAX_RECORDS = 200_000


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _categories(payload: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for decision in payload.get("decisions") or []:
        if not isinstance(decision, dict):
            continue
        for reason in decision.get("reasons") or []:
            code = reason.get("code") if isinstance(reason, dict) else None
            if isinstance(code, str) and code:
                found.add(code.split(".", 1)[-1])
    return found or {"none"}


def _blank() -> dict[str, Any]:
    return {"requests": 0, "refused": 0, "escalated": 0, "released": 0, "by_category": defaultdict(_blank_cat)}


def _blank_cat() -> dict[str, int]:
    return {"requests": 0, "refused": 0, "escalated": 0}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def summary(svc: Services, *, tenant: str | None, days: int) -> dict[str, Any]:
    """The summary over the last `days` days; `tenant=None` covers every tenant (admins)."""
    since = datetime.now(UTC) - timedelta(days=days)
    groups: dict[str, dict[str, Any]] = defaultdict(_blank)
    before: int | None = None
    seen = 0
    while seen < _MAX_RECORDS:
        page = svc.audit.search(tenant=tenant, event_type="request", limit=_PAGE, before_seq=before)
        if not page:
            break
        for record in page:
            if record.created_at < since:
                page = []
                break
            payload = record.payload or {}
            status = payload.get("status") or "refused"
            for key in ("*", record.tenant or "-"):
                g = groups[key]
                g["requests"] += 1
                g["refused"] += status == "refused"
                g["escalated"] += status == "held" or payload.get("decision") == "escalate"
                g["released"] += status == "released"
                for cat in _categories(payload):
                    c = g["by_category"][cat]
                    c["requests"] += 1
                    c["refused"] += status == "refused"
                    c["escalated"] += status == "held" or payload.get("decision") == "escalate"
        seen += _PAGE
        if not page:
            break
        before = page[-1].seq

    turnaround: dict[str, list[float]] = defaultdict(list)
    reviews: dict[str, dict[str, int]] = defaultdict(
        lambda: {"escalations": 0, "approved": 0, "rejected": 0, "expired": 0, "open": 0, "missed_deadlines": 0}
    )
    for e in svc.escalations.all_for_report(tenant=tenant, since=since):
        for key in ("*", e.tenant):
            r = reviews[key]
            r["escalations"] += 1
            r[e.status if e.status in ("approved", "rejected", "expired") else "open"] += 1
            late = e.deadline_missed_at is not None or (
                e.decided_at is not None and e.deadline_at is not None and e.decided_at > e.deadline_at
            )
            r["missed_deadlines"] += late
            if e.status in ("approved", "rejected") and e.decided_at is not None:
                turnaround[key].append((e.decided_at - e.created_at).total_seconds())

    def block(key: str) -> dict[str, Any]:
        g = groups.get(key) or _blank()
        return {
            "requests": g["requests"],
            "released": g["released"],
            "refused": g["refused"],
            "escalated": g["escalated"],
            "refusal_rate": _rate(g["refused"], g["requests"]),
            "escalation_rate": _rate(g["escalated"], g["requests"]),
            "by_category": {
                cat: {
                    **c,
                    "refusal_rate": _rate(c["refused"], c["requests"]),
                    "escalation_rate": _rate(c["escalated"], c["requests"]),
                }
                for cat, c in sorted(g["by_category"].items())
            },
            "review": {
                **reviews[key],
                "turnaround_s": {"p50": percentile(turnaround[key], 50), "p95": percentile(turnaround[key], 95)},
            },
        }

    tenants = sorted({k for k in (*groups, *reviews) if k != "*"})
    return {
        "object": "report.summary",
        "since": since.isoformat(),
        "days": days,
        "scope": tenant or "*",
        "total": block("*"),
        "tenants": {t: block(t) for t in tenants},
        "generated_at": datetime.now(UTC).isoformat(),
    }


def scope_for(principal: Principal, tenant: str | None) -> str | None:
    return tenant if principal.role == "admin" else principal.tenant


@router.get("/summary", summary="Requests, refusal and escalation rates by category, review turnaround, per tenant")
async def get_summary(
    svc: ServicesDep,
    principal: CanReadReports,
    tenant: str | None = None,
    days: int = 30,
) -> dict[str, Any]:
    if not 1 <= days <= 3660:
        raise BadRequest("days must be between 1 and 3660", code="invalid_request", param="days")
    return await asyncio.to_thread(summary, svc, tenant=scope_for(principal, tenant), days=days)
