"""The audit trail, read-only: search, one record, chain status, evidence export (issue 6).

Every route needs ``audit.read``. Admins see every tenant; every other role only its own. There is
deliberately no route that writes, edits or deletes a record: history cannot be rewritten through
Mamori, by anyone.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import FileResponse

from gateway.api.deps import ServicesDep, access
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.keys import Principal

router = APIRouter(prefix="/v1/audit", tags=["audit"])
CanReadAudit = Annotated[Principal, access("audit.read")]


def _tenant_scope(principal: Principal, tenant: str | None) -> str | None:
    """The tenant a query is limited to: admins may pick any (or all), others only their own."""
    if principal.role == "admin":
        return tenant
    if tenant is not None and tenant != principal.tenant:
        raise Forbidden(f"role {principal.role!r} may only read tenant {principal.tenant!r}", code="forbidden_tenant")
    return principal.tenant


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an ISO 8601 date or time", code="invalid_time", param=name) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@router.get("/records", summary="Search audit records (newest first), scoped to the caller's tenant")
async def search_records(
    svc: ServicesDep,
    principal: CanReadAudit,
    tenant: str | None = None,
    event_type: str | None = None,
    request_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    scope = _tenant_scope(principal, tenant)
    if request_id is not None:
        records = await asyncio.to_thread(svc.audit.for_request, request_id)
        records = [r for r in reversed(records) if scope is None or r.tenant == scope]
        records = [r for r in records if (event_type is None or r.event_type == event_type)]
        records = [r for r in records if before_seq is None or r.seq < before_seq][:limit]
    else:
        records = await asyncio.to_thread(
            svc.audit.search, tenant=scope, event_type=event_type, limit=limit, before_seq=before_seq
        )
    next_before = records[-1].seq if len(records) == limit else None
    return {"records": [r.to_dict() for r in records], "next_before_seq": next_before}


@router.get("/records/{seq}", summary="One audit record by its seq")
async def get_record(seq: int, svc: ServicesDep, principal: CanReadAudit) -> dict[str, Any]:
    record = await asyncio.to_thread(svc.audit.get, seq)
    if record is None or (principal.role != "admin" and record.tenant != principal.tenant):
        raise NotFound(f"no audit record {seq}", code="record_not_found")
    return record.to_dict()


@router.get("/verify", summary="Verify the whole chain and its signed checkpoints")
async def verify(svc: ServicesDep, principal: CanReadAudit) -> dict[str, Any]:
    from audit.verify import verify_chain
    from gateway.audit_tools import trusted_keys

    keys = await asyncio.to_thread(trusted_keys, svc.settings)
    report = await asyncio.to_thread(verify_chain, svc.sessions, keys=keys, max_problems=100)
    return {
        "ok": report.ok,
        "checked": report.checked,
        "head_hash": report.head_hash,
        "checkpoints": report.checkpoints,
        "sealed_seq": report.sealed_seq,
        "unsealed": report.unsealed,
        "problems_total": report.problems_total,
        "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in report.problems],
    }


@router.get("/export", summary="Download an evidence export (zip) for a time range, scoped to the caller's tenant")
async def export(
    svc: ServicesDep,
    principal: CanReadAudit,
    background: BackgroundTasks,
    tenant: str | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> FileResponse:
    from gateway.audit_tools import export as write

    scope = _tenant_scope(principal, tenant)
    start_at, end_at = _time(start, "from"), _time(end, "to")
    fd, name = tempfile.mkstemp(prefix="mamori-evidence-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    background.add_task(path.unlink, missing_ok=True)
    await asyncio.to_thread(
        write,
        path,
        settings=svc.settings,
        store=svc.audit,
        sessions=svc.sessions,
        blobs=svc.blobs,
        provenance=svc.provenance,
        start=start_at,
        end=end_at,
        tenant=scope,
        revision=svc.policy.revision,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"mamori-evidence-{scope or 'all'}-{stamp}.zip"
    return FileResponse(path, media_type="application/zip", filename=filename)
