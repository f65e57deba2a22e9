"""The policy bundle in force: read it, reload it, change its data, and try a decision (`/v1/policy`).

Every change is audited: `policy.reload` and `policy.data_change` when made, `policy.reload_rejected`
and `policy.data_rejected` when refused (400 or 409: the error's code and param, the method, who
asked and the revision that stays in force; never the body, nor the message, which may quote it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request

from gateway.api.bodies import load_json
from gateway.api.deps import CanAdministerPolicy, ServicesDep, access
from gateway.errors import BadRequest, Conflict, MamoriError
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.pipeline import policy_revision
from gateway.policy import PolicyError, default_bundle_dir
from gateway.policy_data import CHANGEABLE, DataChange, PolicyDataError, change_data
from gateway.services import Services

router = APIRouter(prefix="/v1/policy", tags=["policy"])
log = get_logger("mamori.policy_api")

# Data changes need the `policy.data` endpoint (compliance and admin in the shipped data.yaml);
# the dry run needs `policy.evaluate` (admin).
CanChangePolicyData = Annotated[Principal, access("policy.data")]
CanEvaluatePolicy = Annotated[Principal, access("policy.evaluate")]

STAGES = ("access", "prescreen", "output", "release")
_MAX_BODY = 256 * 1024


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
        err = BadRequest(f"the bundle was not reloaded: {exc}", code="policy_invalid")
        await _audit_refusal(request, svc, principal, "policy.reload_rejected", err, {"method": "POST"})
        raise err from exc
    after = svc.policy.revision
    await asyncio.to_thread(
        svc.audit.append,
        "policy.reload",
        {"by": principal.to_policy(), "revision_before": before, "revision_after": after},
        request_id=getattr(request.state, "request_id", None),
        tenant=principal.tenant,
    )
    return {"revision": after, "previous_revision": before}


@router.get("/data", summary="The changeable policy data in force (thresholds, terms, tenants, review)")
async def get_policy_data(svc: ServicesDep, principal: CanAdministerPolicy) -> dict[str, Any]:
    mamori = svc.policy.data().get("mamori", {})
    return {"revision": svc.policy.revision, "data": {k: mamori[k] for k in CHANGEABLE if k in mamori}}


async def _json_body(request: Request) -> Any:
    """The JSON body, read as every other route reads one: `load_json` refuses what is not JSON
    (`invalid_json`, also NaN), a lone surrogate (`invalid_text`, which would be written into the
    bundle's data) and nesting too deep to handle (`json_too_deep`, not a crash)."""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise BadRequest(f"the body is over {_MAX_BODY} bytes", code="policy_data_invalid")
    return load_json(raw)


async def _audit_refusal(
    request: Request, svc: Services, principal: Principal, event: str, err: MamoriError, extra: dict[str, Any]
) -> None:
    """The record of a refused change: code, param, status, who, the revision in force. A failing
    audit write does not turn the refusal into something else (nothing was changed); it is logged."""
    payload = {
        "by": principal.to_policy(),
        **extra,
        "code": err.code,
        "param": err.param,
        "http_status": err.status_code,
        "revision": policy_revision(svc),
    }
    try:
        await asyncio.to_thread(
            svc.audit.append,
            event,
            payload,
            request_id=getattr(request.state, "request_id", None),
            tenant=principal.tenant,
        )
    except Exception as exc:
        log.error("policy.refusal_not_audited", audit_event=event, error=type(exc).__name__)


async def _change(request: Request, svc: ServicesDep, principal: Principal, *, method: str) -> dict[str, Any]:
    try:
        change = await _write_change(request, svc, method=method)
    except MamoriError as err:  # refused (400, 409, 413): nothing was written
        await _audit_refusal(request, svc, principal, "policy.data_rejected", err, {"method": method})
        raise
    record = {
        "by": principal.to_policy(),
        "method": method,
        "revision_before": change.revision_before,
        "revision_after": change.revision_after,
        "summary": change.summary,
    }
    request_id = getattr(request.state, "request_id", None)
    try:
        await asyncio.to_thread(svc.policy.reload)
    except PolicyError as exc:  # written and proved on a copy; a failure here is a fault
        # the data on disk did change: recorded as a change that did not load
        await asyncio.to_thread(
            svc.audit.append,
            "policy.data_change",
            {**record, "loaded": False},
            request_id=request_id,
            tenant=principal.tenant,
        )
        raise BadRequest(f"the new data was written but did not load: {exc}", code="policy_invalid") from exc
    await asyncio.to_thread(
        svc.audit.append, "policy.data_change", record, request_id=request_id, tenant=principal.tenant
    )
    return {
        "revision": svc.policy.revision,
        "previous_revision": change.revision_before,
        "summary": change.summary,
    }


async def _write_change(request: Request, svc: Services, *, method: str) -> DataChange:
    """Check and write the change to the bundle's data (proved on a copy first); BadRequest or
    Conflict, with nothing written, when it is refused."""
    bundle_dir = getattr(svc.policy, "bundle_dir", None)
    if bundle_dir is None:
        raise Conflict("this policy engine has no bundle folder to change", code="policy_read_only")
    if Path(bundle_dir).resolve() == default_bundle_dir().resolve():
        raise Conflict(
            "the bundle shipped with Mamori is not changed in place: copy it and set policy_bundle_dir",
            code="policy_read_only",
        )
    body = await _json_body(request)
    try:
        if method == "PUT":
            return await asyncio.to_thread(change_data, bundle_dir, replace=body)
        return await asyncio.to_thread(change_data, bundle_dir, patch=body)
    except PolicyDataError as exc:
        raise BadRequest(f"policy data refused: {exc}", code="policy_data_invalid") from exc
    except PolicyError as exc:
        raise BadRequest(f"policy data refused: {exc}", code="policy_invalid") from exc


@router.put("/data", summary="Replace the changeable policy data (thresholds, terms, tenants, review)")
async def put_policy_data(request: Request, svc: ServicesDep, principal: CanChangePolicyData) -> dict[str, Any]:
    return await _change(request, svc, principal, method="PUT")


@router.patch("/data", summary="Change part of the policy data (a JSON merge patch)")
async def patch_policy_data(request: Request, svc: ServicesDep, principal: CanChangePolicyData) -> dict[str, Any]:
    return await _change(request, svc, principal, method="PATCH")


def check_input(document: Any) -> list[str]:
    """Why a decision input is malformed (empty when it is well formed)."""
    if not isinstance(document, dict):
        return ["input must be a JSON object"]
    errors: list[str] = []
    stage = document.get("stage")
    if stage not in STAGES:
        errors.append(f"input.stage must be one of {', '.join(STAGES)}")
    principal = document.get("principal")
    if not isinstance(principal, dict) or not all(isinstance(principal.get(k), str) for k in ("role", "tenant")):
        errors.append("input.principal must be an object with string role and tenant")
    if not isinstance(document.get("request"), dict):
        errors.append("input.request must be an object")
    findings = document.get("findings", [])
    if not isinstance(findings, list):
        errors.append("input.findings must be a list")
    else:
        for i, f in enumerate(findings):
            score = f.get("score") if isinstance(f, dict) else None
            if not (
                isinstance(f, dict)
                and isinstance(f.get("detector"), str)
                and isinstance(f.get("category"), str)
                and isinstance(score, int | float)
                and not isinstance(score, bool)
                and 0 <= score <= 1
            ):
                errors.append(f"input.findings[{i}] must be {{detector: str, category: str, score: 0..1}}")
    if stage == "release":
        approvals = document.get("approvals")
        if not isinstance(approvals, list) or not all(
            isinstance(a, dict) and isinstance(a.get("key_id"), str) and isinstance(a.get("role"), str)
            for a in approvals
        ):
            errors.append("input.approvals must be a list of {key_id: str, role: str}")
    return errors


@router.post("/evaluate", summary="Dry run: the decision the policy in force gives for an input")
async def evaluate_policy(request: Request, svc: ServicesDep, principal: CanEvaluatePolicy) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict) or "input" not in body:
        raise BadRequest('the body must be {"input": {...}}', code="invalid_policy_input", param="input")
    errors = check_input(body["input"])
    if errors:
        raise BadRequest("; ".join(errors), code="invalid_policy_input", param="input")
    try:
        decision = await asyncio.to_thread(svc.policy.decide, body["input"])
    except PolicyError as exc:
        raise BadRequest(f"the policy could not decide: {exc}", code="policy_error") from exc
    return {"decision": decision.to_dict()}
