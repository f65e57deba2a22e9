"""The policy bundle in force, and reloading it without a restart (`/v1/policy`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from gateway.api.deps import CanAdministerPolicy, ServicesDep
from gateway.errors import BadRequest
from gateway.policy import PolicyError

router = APIRouter(prefix="/v1/policy", tags=["policy"])


@router.get("", summary="The revision of the policy bundle in force")
async def policy_info(svc: ServicesDep, principal: CanAdministerPolicy) -> dict[str, Any]:
    terms = svc.policy.data().get("mamori", {}).get("terms", [])
    return {"revision": svc.policy.revision, "terms": len(terms)}


@router.post("/reload", summary="Re-read the policy bundle (rules, thresholds, term lists) from disk")
async def reload_policy(request: Request, svc: ServicesDep, principal: CanAdministerPolicy) -> dict[str, Any]:
    before = svc.policy.revision
    try:
        await asyncio.to_thread(svc.policy.reload)
    except PolicyError as exc:
        # the old bundle stays in force
        raise BadRequest(f"the bundle was not reloaded: {exc}", code="policy_invalid") from exc
    after = svc.policy.revision
    await asyncio.to_thread(
        svc.audit.append,
        "policy.reload",
        {"by": principal.to_policy(), "revision_before": before, "revision_after": after},
        request_id=getattr(request.state, "request_id", None),
        tenant=principal.tenant,
    )
    return {"revision": after, "previous_revision": before}
