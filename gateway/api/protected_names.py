"""Admins and compliance keep the registry of protected people, brands and characters (issue 4).

- `POST /v1/protected-names` `{"names": [{"name", "kind", "aliases"?, "id"?}], "tenant"?}` adds
  every name or none (a bad entry or an id already registered is a 400 / 409 naming it);
- `GET /v1/protected-names` lists them (`limit`, `offset`), `GET /v1/protected-names/{id}` shows one;
- `DELETE /v1/protected-names/{id}` removes one.

Every change and every refused change is audited; a change's record is written before the change,
so a crash can leave a record of a change that did not happen, never a change without a record.
The pre-screen's `protected_names` detector reads the registry on the next request of every
gateway process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from gateway.api.bodies import load_json
from gateway.api.deps import CanReadProtected, CanWriteProtected, ServicesDep
from gateway.api.registries import audit_change, registering_tenant, visible_to
from gateway.errors import BadRequest, Conflict, GatewayFault, MamoriError, NotFound
from gateway.keys import Principal
from gateway.protected_names import DuplicateName, ProtectedNameRegistry
from gateway.services import Services

router = APIRouter(prefix="/v1/protected-names", tags=["protected names"])


async def _audit(svc: Services, request: Request, principal: Principal, event: str, payload: dict[str, Any]) -> None:
    await asyncio.to_thread(audit_change, svc, request, principal, event, payload)


def _tenant_for(principal: Principal, payload: dict[str, Any]) -> str | None:
    raw = payload.get("tenant")
    if raw is not None and not isinstance(raw, str):
        raise BadRequest("tenant must be a string", code="invalid_tenant", param="tenant")
    return registering_tenant(principal, raw)


@router.post("", summary="Register protected names (all or none)")
async def add_names(request: Request, svc: ServicesDep, principal: CanWriteProtected) -> dict[str, Any]:
    try:
        payload = load_json(await request.body())
        if not isinstance(payload, dict) or not isinstance(payload.get("names"), list):
            raise BadRequest('send {"names": [{"name": ..., "kind": ...}]}', code="invalid_request", param="names")
        tenant = _tenant_for(principal, payload)
        try:
            entries = ProtectedNameRegistry.parse(payload["names"], tenant)
        except DuplicateName as exc:
            raise BadRequest(str(exc), code="duplicate_name", param="names") from exc
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_name", param="names") from exc
        clash = await asyncio.to_thread(svc.protected_names.clash, entries)
        if clash is not None:
            raise Conflict(f"the id {clash!r} is already registered", code="duplicate_name", param="names")
    except MamoriError as exc:
        await _audit(svc, request, principal, "protected_names.rejected", {"code": exc.code, "status": exc.status_code})
        raise
    prepared = svc.protected_names.prepare(entries)
    data = [n.to_dict() for n in prepared]
    # the record comes first, so a crash can leave a record of names never stored but never a
    # stored name without a record; the names themselves are what the registry protects
    await _audit(svc, request, principal, "protected_names.add", {"names": data})
    try:
        await asyncio.to_thread(svc.protected_names.store, prepared)
    except Exception as exc:
        code = "duplicate_name" if isinstance(exc, DuplicateName) else "protected_names_store_failed"
        failed = {"code": code, "registry_ids": [n.row_id for n in prepared]}
        await _audit(svc, request, principal, "protected_names.add_failed", failed)
        if isinstance(exc, DuplicateName):  # registered by another request in between
            raise Conflict(str(exc), code=code, param="names") from exc
        raise GatewayFault("the names could not be stored; nothing was registered", code=code) from exc
    return {"object": "list", "data": data}


@router.get("", summary="List protected names")
async def list_names(
    svc: ServicesDep,
    principal: CanReadProtected,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    tenant = None if principal.role == "admin" else principal.tenant
    names, total = await asyncio.to_thread(svc.protected_names.list, tenant=tenant, limit=limit, offset=offset)
    return {"object": "list", "data": [n.to_dict() for n in names], "total": total, "limit": limit, "offset": offset}


@router.get("/{registry_id}", summary="One protected name")
async def get_name(registry_id: str, svc: ServicesDep, principal: CanReadProtected) -> dict[str, Any]:
    found = await asyncio.to_thread(svc.protected_names.get, registry_id)
    if found is None or not visible_to(principal, found.entry.tenant):
        raise NotFound(f"no protected name {registry_id!r}", code="not_found", param="id")
    return found.to_dict()


@router.delete("/{registry_id}", summary="Remove a protected name")
async def delete_name(
    registry_id: str, request: Request, svc: ServicesDep, principal: CanWriteProtected
) -> dict[str, Any]:
    found = await asyncio.to_thread(svc.protected_names.get, registry_id)
    # a tenant's compliance officer may remove that tenant's names, not names that protect every tenant
    if found is None or not (principal.role == "admin" or found.entry.tenant == principal.tenant):
        await _audit(svc, request, principal, "protected_names.rejected", {"code": "not_found", "status": 404})
        raise NotFound(f"no protected name {registry_id!r}", code="not_found", param="id")
    # recorded first: a removal is never without its record
    await _audit(svc, request, principal, "protected_names.delete", {"names": [found.to_dict()]})
    gone = await asyncio.to_thread(svc.protected_names.delete, registry_id)
    if gone is None:  # removed by another request in between (and recorded there)
        await _audit(svc, request, principal, "protected_names.rejected", {"code": "not_found", "status": 404})
        raise NotFound(f"no protected name {registry_id!r}", code="not_found", param="id")
    return {"id": registry_id, "deleted": True}
