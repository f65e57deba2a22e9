"""Dependencies shared by the routers: services, the authenticated principal, access through policy."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import FormData

from gateway.errors import BadRequest, Forbidden, GatewayFault, PayloadTooLarge, Unauthorized
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.policy import PolicyError
from gateway.services import Services
from gateway.trace import Trace

log = get_logger("mamori.access")


def get_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(get_services)]


def current_trace(request: Request) -> Trace | None:
    return getattr(request.state, "trace", None)


async def get_principal(request: Request, svc: ServicesDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("no API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'", code="invalid_api_key")
    principal = await asyncio.to_thread(svc.keys.authenticate, token)
    if principal is None:
        raise Unauthorized("the API key is unknown, revoked or expired", code="invalid_api_key")
    trace = current_trace(request)
    if trace is not None:
        trace.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def read_form(request: Request, *, max_files: int, max_fields: int, max_part_size: int = 1024 * 1024) -> FormData:
    """The multipart/urlencoded body; an over-large body is 413, a malformed one 400."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
    except Exception as exc:
        if isinstance(exc, PayloadTooLarge) or getattr(request.state, "body_too_large", False):
            raise PayloadTooLarge("request body is over the upload limit", code="upload_too_large") from exc
        raise BadRequest(f"malformed form body: {exc}", code="invalid_multipart") from exc


def authorize(svc: Services, principal: Principal, endpoint: str, request: Request, **extra: Any) -> None:
    """Ask the policy's access stage whether `principal` may call `endpoint`; 403 when not."""
    doc = {
        "principal": principal.to_policy(),
        "stage": "access",
        "request": {"id": getattr(request.state, "request_id", ""), "endpoint": endpoint, **extra},
        "findings": [],
    }
    try:
        decision = svc.policy.decide(doc)
    except PolicyError as exc:
        raise GatewayFault("the policy engine failed; access denied", code="policy_error") from exc
    svc.metrics.decisions.labels("access", decision.action).inc()
    trace = current_trace(request)
    if trace is not None:
        trace.decisions.append({"stage": "access", **decision.to_dict(), "input": doc})
    if decision.action != "allow":
        codes = ", ".join(r.code for r in decision.reasons) or "access.denied"
        if trace is None:  # a governed call's record (the middleware's) holds this decision already
            _audit_denial(svc, principal, endpoint, request, [r.code for r in decision.reasons])
        raise Forbidden(f"role {principal.role!r} may not call {endpoint} ({codes})", code="forbidden")


def _audit_denial(svc: Services, principal: Principal, endpoint: str, request: Request, codes: list[str]) -> None:
    """A refused call to an administrative or reading endpoint is audited like a refused request.
    A failing audit write does not turn the 403 into something else: the call is refused anyway."""
    try:
        svc.audit.append(
            "access.denied",
            {"by": principal.to_policy(), "endpoint": endpoint, "method": request.method, "reasons": codes},
            request_id=getattr(request.state, "request_id", None),
            tenant=principal.tenant,
        )
    except Exception as exc:  # the refusal stands; the failure is logged
        log.error("access.denied_not_audited", endpoint=endpoint, error=type(exc).__name__)


def access(endpoint: str) -> Any:
    """A dependency that authenticates and authorizes for `endpoint`, yielding the principal."""

    async def dependency(request: Request, svc: ServicesDep, principal: PrincipalDep) -> Principal:
        authorize(svc, principal, endpoint, request)
        return principal

    return Depends(dependency)


# One alias per protected endpoint: authenticate, then ask the policy's access stage.
CanGenerate = Annotated[Principal, access("images.generations")]
CanEdit = Annotated[Principal, access("images.edits")]
CanReadRequests = Annotated[Principal, access("requests.read")]
CanReadAssets = Annotated[Principal, access("assets.read")]
CanListEscalations = Annotated[Principal, access("escalations.list")]
CanDecideEscalations = Annotated[Principal, access("escalations.decide")]
CanWriteProtected = Annotated[Principal, access("protected.write")]
CanReadProtected = Annotated[Principal, access("protected.read")]
CanAdministerPolicy = Annotated[Principal, access("policy.admin")]
