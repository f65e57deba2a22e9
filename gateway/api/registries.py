"""What the two registries compliance keeps (protected works, `/v1/protected`; protected names,
`/v1/protected-names`) share: for which tenant an entry is registered, who sees it, and the
audit record of a change."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from gateway.errors import BadRequest
from gateway.keys import InvalidKeyInput, Principal, validate_tenant
from gateway.services import Services

__all__ = ["audit_change", "registering_tenant", "visible_to"]


def registering_tenant(principal: Principal, requested: str | None) -> str | None:
    """The tenant an entry is registered for: an admin's choice (None: every tenant), anyone
    else's own tenant. A malformed tenant is a 400 `invalid_tenant`."""
    tenant = requested or None
    if principal.role != "admin":
        tenant = principal.tenant  # only admins register entries for every tenant or for others
    if tenant is not None:
        try:
            validate_tenant(tenant)
        except InvalidKeyInput as exc:
            raise BadRequest(str(exc), code="invalid_tenant", param="tenant") from exc
    return tenant


def visible_to(principal: Principal, tenant: str | None) -> bool:
    """Admins see every entry; others their tenant's and those registered for every tenant."""
    return principal.role == "admin" or tenant is None or tenant == principal.tenant


def audit_change(svc: Services, request: Request, principal: Principal, event: str, payload: dict[str, Any]) -> None:
    """One audit record of a registry change (or refused change) made through the API (blocking:
    run it in a thread from async code)."""
    svc.audit.append(
        event,
        {"by": principal.to_policy(), "via": "api", **payload},
        request_id=getattr(request.state, "request_id", None),
        tenant=principal.tenant,
    )
