"""Supervisors list held requests and approve or reject them (`/v1/escalations`)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter, Request

from audit.escalations import Escalation
from gateway.api.deps import CanDecideEscalations, CanListEscalations, ServicesDep
from gateway.errors import BadRequest
from gateway.keys import Principal
from gateway.review import decide_escalation, visible_escalation
from gateway.schemas import DecisionBody

router = APIRouter(prefix="/v1/escalations", tags=["escalations"])


def _view(e: Escalation) -> dict[str, Any]:
    out = dataclasses.asdict(e)
    for key in ("created_at", "decided_at"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    return out


@router.get("", summary="Held items, newest first")
async def list_escalations(svc: ServicesDep, principal: CanListEscalations, status: str = "pending") -> dict[str, Any]:
    if status not in ("pending", "approved", "rejected", "expired", "all"):
        raise BadRequest("status must be pending, approved, rejected, expired or all", code="invalid_status")
    tenant = None if principal.role == "admin" else principal.tenant
    items = await asyncio.to_thread(svc.escalations.list, tenant=tenant, status=None if status == "all" else status)
    return {"object": "list", "data": [_view(e) for e in items]}


@router.get("/{escalation_id}", summary="One held item")
async def get_escalation(escalation_id: str, svc: ServicesDep, principal: CanListEscalations) -> dict[str, Any]:
    return _view(await asyncio.to_thread(visible_escalation, svc, principal, escalation_id))


async def _decide(request: Request, svc: ServicesDep, principal: Principal, escalation_id: str, approve: bool) -> Any:
    try:
        body = DecisionBody.model_validate_json(await request.body())
    except ValueError as exc:
        raise BadRequest('send {"reason": "..."} (a non-empty reason)', code="reason_required", param="reason") from exc
    payload = await asyncio.to_thread(
        decide_escalation, svc, principal, escalation_id, approve=approve, reason=body.reason
    )
    return {"id": escalation_id, "status": "approved" if approve else "rejected", "request_id": payload["request_id"]}


@router.post("/{escalation_id}/approve", summary="Approve: the held assets are signed and released")
async def approve(escalation_id: str, request: Request, svc: ServicesDep, principal: CanDecideEscalations) -> Any:
    return await _decide(request, svc, principal, escalation_id, True)


@router.post("/{escalation_id}/reject", summary="Reject: the request ends refused")
async def reject(escalation_id: str, request: Request, svc: ServicesDep, principal: CanDecideEscalations) -> Any:
    return await _decide(request, svc, principal, escalation_id, False)
