"""Protected reference works: admins and compliance register them (`POST /v1/protected`,
`protected.write`); the roles with `protected.read` (compliance, supervisor, auditor, admin) list
them (`GET /v1/protected`: `limit`, `offset`, newest first) and look one up by the id a copyright
finding names (`GET /v1/protected/{work_id}`). Non-admins see their tenant's works and those
registered for every tenant, as their searches do.

A registration is all or nothing. Every part is decoded and hashed first; one bad part rejects
the request with 400 (its code, and in `mamori.rejected` which parts and why), stores nothing
and is audited as `protected.rejected`. Then the `protected.add` record naming the works is
appended and the works are stored in one transaction, so a work is never stored without its
record; if storing fails, `protected.add_failed` names the works that were not stored.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from PIL.Image import Image
from starlette.datastructures import UploadFile

from gateway.api.deps import CanReadProtected, CanWriteProtected, ServicesDep, read_form
from gateway.api.registries import audit_change, registering_tenant, visible_to
from gateway.errors import BadRequest, GatewayFault, NotFound, PayloadTooLarge
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.protected import PreparedWork
from gateway.services import Services
from gateway.uploads import decode_image

router = APIRouter(prefix="/v1/protected", tags=["protected works"])
log = get_logger("mamori.protected")

MAX_FILES = 64
_FILE_FIELDS = ("file", "files", "file[]")


@router.post("", summary="Register protected reference images (multipart 'file' parts); all or nothing")
async def add_protected(request: Request, svc: ServicesDep, principal: CanWriteProtected) -> dict[str, Any]:
    try:
        tenant, uploads = await _read_request(request, svc, principal)
        prepared = await _prepare_all(svc, uploads, tenant)
    except (BadRequest, PayloadTooLarge) as exc:
        rejected = (exc.mamori or {}).get("rejected", [])
        payload = {"code": exc.code, "param": exc.param, "message": exc.message, "rejected": rejected}
        await asyncio.to_thread(audit_change, svc, request, principal, "protected.rejected", payload)
        raise
    works = [w.summary() for w in prepared]
    # the record first: a crash after it leaves at most a record of works not stored, never the reverse
    await asyncio.to_thread(audit_change, svc, request, principal, "protected.add", {"works": works})
    try:
        stored = await asyncio.to_thread(svc.protected.store, prepared)
    except Exception as exc:
        log.exception("protected.store_failed", error=type(exc).__name__)
        failed = {"works": [w["id"] for w in works], "error": type(exc).__name__}
        try:
            await asyncio.to_thread(audit_change, svc, request, principal, "protected.add_failed", failed)
        except Exception as audit_exc:  # the record of the attempt stands; the answer still says nothing was stored
            log.error("protected.add_failed_not_audited", error=type(audit_exc).__name__)
        raise GatewayFault("the works could not be stored; none was stored", code="protected_store_failed") from exc
    return {"object": "list", "data": [w.to_dict() for w in stored]}


async def _read_request(
    request: Request, svc: Services, principal: Principal
) -> tuple[str | None, list[tuple[int, str, bytes]]]:
    """The tenant the works are for, and each file part as (position, file name, bytes)."""
    form = await read_form(request, max_files=MAX_FILES, max_fields=8)
    tenant_field = form.get("tenant")
    tenant = registering_tenant(principal, tenant_field if isinstance(tenant_field, str) else None)
    files = [v for k, v in form.multi_items() if k in _FILE_FIELDS and isinstance(v, UploadFile)]
    if not files:
        raise BadRequest("send one or more images as 'file' parts", code="missing_file", param="file")
    return tenant, [(i, upload.filename or "upload", await upload.read()) for i, upload in enumerate(files)]


def _reject(bad: list[dict[str, Any]], count: int) -> BadRequest:
    first = bad[0]
    which = ", ".join(f"part {b['part']} ({b['filename']!r}: {b['code']})" for b in bad)
    return BadRequest(
        f"{len(bad)} of {count} file parts could not be registered: {which}; nothing was stored",
        code=str(first["code"]),
        param="file",
        mamori={"rejected": bad, "stored": 0},
    )


def _decode(svc: Services, data: bytes) -> Image:
    return decode_image(data, field="file", max_pixels=svc.settings.max_image_pixels).convert("RGB")


async def _prepare_all(svc: Services, uploads: list[tuple[int, str, bytes]], tenant: str | None) -> list[PreparedWork]:
    """Decode every part, then hash every part; any bad part rejects them all (before anything is
    stored). Each image is decoded again for hashing rather than kept, so at most one decoded
    image is held at a time."""
    bad: list[dict[str, Any]] = []
    for part, filename, data in uploads:
        try:
            await asyncio.to_thread(_decode, svc, data)
        except BadRequest as exc:
            bad.append({"part": part, "filename": filename[:300], "code": exc.code, "message": exc.message})
    if bad:
        raise _reject(bad, len(uploads))  # nothing hashed: a bad part is found before the slow step
    prepared: list[PreparedWork] = []
    for part, filename, data in uploads:
        try:
            image = await asyncio.to_thread(_decode, svc, data)
            work = await asyncio.to_thread(svc.protected.prepare, name=filename, image=image, data=data, tenant=tenant)
        except Exception as exc:  # decoded but not hashable (a degenerate image)
            bad.append({"part": part, "filename": filename[:300], "code": "unhashable_image", "message": str(exc)})
            continue
        prepared.append(work)
    if bad:
        raise _reject(bad, len(uploads))
    return prepared


@router.get("", summary="List protected works (newest first; admins see every tenant's)")
async def list_protected(
    svc: ServicesDep,
    principal: CanReadProtected,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    every = principal.role == "admin"
    works, total = await asyncio.to_thread(
        lambda: svc.protected.list_works(tenant=principal.tenant, every_tenant=every, limit=limit, offset=offset)
    )
    return {"object": "list", "data": [w.to_dict() for w in works], "total": total, "limit": limit, "offset": offset}


@router.get("/{work_id}", summary="One protected work, by the id a copyright finding names")
async def get_protected(work_id: str, svc: ServicesDep, principal: CanReadProtected) -> dict[str, Any]:
    work = await asyncio.to_thread(svc.protected.get, work_id)
    if work is None or not visible_to(principal, work.tenant):
        raise NotFound(f"no protected work {work_id!r}", code="protected_work_not_found", param="work_id")
    return work.to_dict()
