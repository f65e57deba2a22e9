"""The review queue over HTTP (`/v1/escalations`): list, counts, one item, claim, release, comment,
reassign, approve and reject. Approve and reject claim the item implicitly."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.escalations import OPEN, PRIORITIES, Escalation, EscalationEvent
from gateway import review
from gateway.api.deps import CanDecideEscalations, CanListEscalations, ServicesDep, access
from gateway.errors import BadRequest
from gateway.keys import Principal
from gateway.schemas import DecisionBody

router = APIRouter(prefix="/v1/escalations", tags=["escalations"])
STATUS_FILTERS = ("open", "pending", "claimed", "approved", "rejected", "expired", "all")
CanClaimEscalations = Annotated[Principal, access("escalations.claim")]


class LeaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease_id: str | None = Field(default=None, max_length=64)


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class ReassignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=128, description="key id of the reviewer who takes the item")
    reason: str = Field(default="", max_length=2000)


def view(e: Escalation, *, now: datetime | None = None) -> dict[str, Any]:
    out = dataclasses.asdict(e)
    out.pop("callback_url", None)  # the requester's, not the reviewers'
    out["status"] = e.effective_status(now)
    out["approvals"] = [
        {"role": a.actor_role, "name": a.actor_name, "at": a.created_at.isoformat()} for a in e.approvals
    ]
    out["approvals_given"] = len(e.approvals)
    for key, value in list(out.items()):
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    if out["status"] != "claimed":
        out.update(claimed_by=None, claimed_by_name=None, lease_id=None, lease_expires_at=None)
    return out


def event_view(e: EscalationEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "at": e.created_at.isoformat(),
        "actor": {"key_id": e.actor_key_id, "name": e.actor_name, "role": e.actor_role},
        "text": e.text,
        "data": {k: v for k, v in e.data.items() if k != "lease_id"},
    }


def list_filters(
    principal: Principal,
    *,
    status: str,
    priority: str | None,
    category: str | None,
    tenant: str | None,
    older_than_s: int | None,
) -> dict[str, Any]:
    """Validated store filters; non-admins only ever see their own tenant."""
    if status not in STATUS_FILTERS:
        raise BadRequest(f"status must be one of {', '.join(STATUS_FILTERS)}", code="invalid_status")
    if priority is not None and priority not in PRIORITIES:
        raise BadRequest(f"priority must be one of {', '.join(PRIORITIES)}", code="invalid_priority")
    if older_than_s is not None and older_than_s < 0:
        raise BadRequest("older_than_s must not be negative", code="invalid_request")
    store_status = None if status == "all" else status
    return {
        "tenant": tenant if principal.role == "admin" else principal.tenant,
        "status": store_status,
        "priority": priority,
        "category": category,
        "created_before": datetime.now(UTC) - timedelta(seconds=older_than_s) if older_than_s else None,
    }


@router.get("", summary="The queue, oldest first (status=open: pending and claimed)")
async def list_escalations(
    svc: ServicesDep,
    principal: CanListEscalations,
    status: str = "open",
    priority: str | None = None,
    category: str | None = None,
    tenant: str | None = None,
    older_than_s: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000", code="invalid_request", param="limit")
    filters = list_filters(
        principal, status=status, priority=priority, category=category, tenant=tenant, older_than_s=older_than_s
    )
    items = await asyncio.to_thread(lambda: svc.escalations.list(**filters, limit=limit))
    return {"object": "list", "data": [view(e) for e in items]}


@router.get("/counts", summary="Counts by status, and open items by priority and category")
async def counts(svc: ServicesDep, principal: CanListEscalations, tenant: str | None = None) -> dict[str, Any]:
    scope = tenant if principal.role == "admin" else principal.tenant
    return await asyncio.to_thread(lambda: {"object": "counts", **svc.escalations.counts(tenant=scope)})


@router.get("/{escalation_id}", summary="One item with its history (claims, approvals, comments)")
async def get_escalation(escalation_id: str, svc: ServicesDep, principal: CanListEscalations) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        e = review.visible_escalation(svc, principal, escalation_id)
        out = view(e)
        out["events"] = [event_view(ev) for ev in svc.escalations.events(e.id)]
        out["open"] = e.status in OPEN
        return out

    return await asyncio.to_thread(load)


async def _body(request: Request, model: type[BaseModel], hint: str) -> Any:
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"{}")
    except (ValidationError, ValueError) as exc:
        raise BadRequest(f"send {hint}", code="invalid_request") from exc


@router.post("/{escalation_id}/claim", summary="Claim (or renew with lease_id) a lease on the item")
async def claim(escalation_id: str, request: Request, svc: ServicesDep, principal: CanClaimEscalations) -> Any:
    body = await _body(request, LeaseBody, '{} or {"lease_id": "..."}')
    e = await asyncio.to_thread(review.claim, svc, principal, escalation_id, lease_id=body.lease_id)
    assert e.lease_expires_at is not None
    return {"id": e.id, "status": "claimed", "lease_id": e.lease_id, "lease_expires_at": e.lease_expires_at.isoformat()}


@router.post("/{escalation_id}/release", summary="Give the claim back; the item is pending again")
async def release(escalation_id: str, request: Request, svc: ServicesDep, principal: CanClaimEscalations) -> Any:
    body = await _body(request, LeaseBody, '{} or {"lease_id": "..."}')
    e = await asyncio.to_thread(review.release, svc, principal, escalation_id, lease_id=body.lease_id)
    return {"id": e.id, "status": e.status}


@router.post("/{escalation_id}/comments", summary="Add a comment for the other reviewers")
async def add_comment(escalation_id: str, request: Request, svc: ServicesDep, principal: CanClaimEscalations) -> Any:
    body = await _body(request, CommentBody, '{"text": "..."}')
    e = await asyncio.to_thread(review.comment, svc, principal, escalation_id, body.text)
    return {"id": e.id, "status": e.effective_status()}


@router.post("/{escalation_id}/reassign", summary="Hand the item to another reviewer (key id)")
async def reassign(escalation_id: str, request: Request, svc: ServicesDep, principal: CanClaimEscalations) -> Any:
    body = await _body(request, ReassignBody, '{"to": "<key id>", "reason": "..."}')
    e = await asyncio.to_thread(review.reassign, svc, principal, escalation_id, body.to, reason=body.reason)
    return {"id": e.id, "status": "claimed", "assigned_to": e.assigned_to}


async def _decide(request: Request, svc: ServicesDep, principal: Principal, escalation_id: str, approve: bool) -> Any:
    try:
        body = DecisionBody.model_validate_json(await request.body())
    except ValueError as exc:
        raise BadRequest('send {"reason": "..."} (a non-empty reason)', code="reason_required", param="reason") from exc
    payload = await asyncio.to_thread(
        review.decide_escalation, svc, principal, escalation_id, approve=approve, reason=body.reason
    )
    status = {"approved": "approved", "rejected": "rejected"}.get(payload["action"], "pending")
    out = {"id": escalation_id, "status": status, "request_id": payload["request_id"]}
    if "approvals" in payload:
        out["approvals"] = payload["approvals"]
    return out


@router.post("/{escalation_id}/approve", summary="Approve: after the last approval the assets are signed and released")
async def approve(escalation_id: str, request: Request, svc: ServicesDep, principal: CanDecideEscalations) -> Any:
    return await _decide(request, svc, principal, escalation_id, True)


@router.post("/{escalation_id}/reject", summary="Reject (a reason is required): the request ends refused")
async def reject(escalation_id: str, request: Request, svc: ServicesDep, principal: CanDecideEscalations) -> Any:
    return await _decide(request, svc, principal, escalation_id, False)
