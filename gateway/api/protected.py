"""Admins and compliance register protected reference images (`POST /v1/protected`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from gateway.api.deps import CanWriteProtected, ServicesDep, read_form
from gateway.errors import BadRequest
from gateway.keys import InvalidKeyInput, validate_tenant
from gateway.uploads import decode_image

router = APIRouter(prefix="/v1/protected", tags=["protected works"])


@router.post("", summary="Register protected reference images (multipart 'file' parts)")
async def add_protected(request: Request, svc: ServicesDep, principal: CanWriteProtected) -> dict[str, Any]:
    form = await read_form(request, max_files=64, max_fields=8)
    tenant_field = form.get("tenant")
    tenant = str(tenant_field) if isinstance(tenant_field, str) and tenant_field else None
    if principal.role != "admin":
        tenant = principal.tenant  # only admins register works for every tenant or for others
    if tenant is not None:
        try:
            validate_tenant(tenant)
        except InvalidKeyInput as exc:
            raise BadRequest(str(exc), code="invalid_tenant", param="tenant") from exc
    files = [v for k, v in form.multi_items() if k in ("file", "files", "file[]") and isinstance(v, UploadFile)]
    if not files:
        raise BadRequest("send one or more images as 'file' parts", code="missing_file", param="file")
    works = []
    for upload in files:
        data = await upload.read()
        image = await asyncio.to_thread(decode_image, data, field="file", max_pixels=svc.settings.max_image_pixels)
        work = await asyncio.to_thread(
            svc.protected.add,
            name=upload.filename or "upload",
            image=image.convert("RGB"),
            data=data,
            tenant=tenant,
        )
        works.append({"id": work.id, "name": work.name, "tenant": work.tenant, "sha256": work.sha256})
    await asyncio.to_thread(
        svc.audit.append,
        "protected.add",
        {"by": principal.to_policy(), "works": works},
        request_id=getattr(request.state, "request_id", None),
        tenant=principal.tenant,
    )
    return {"object": "list", "data": works}
