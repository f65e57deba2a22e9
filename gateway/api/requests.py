"""Polling a request (`GET /v1/requests/{id}`) and fetching a released asset by URL (`GET /v1/assets/{id}`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gateway.api.deps import CanReadAssets, CanReadRequests, ServicesDep
from gateway.api.images import render
from gateway.errors import Gone, NotFound
from gateway.keys import Principal

router = APIRouter(tags=["requests"])


def _owns(principal: Principal, key_id: str) -> bool:
    return principal.role == "admin" or principal.key_id == key_id


@router.get("/v1/requests/{request_id}", summary="The state of a governed request; assets once released")
async def get_request(request_id: str, request: Request, svc: ServicesDep, principal: CanReadRequests) -> JSONResponse:
    state = await asyncio.to_thread(svc.requests.get, request_id)
    if state is None or not _owns(principal, state.key_id):
        raise NotFound(f"no request {request_id}", code="request_not_found")
    images: list[tuple[str, bytes]] = []
    if state.status == "released":
        for asset in state.assets:
            if asset.status == "released" and asset.blob:
                images.append((asset.id, await asyncio.to_thread(svc.blobs.get, asset.blob)))
    body = render(
        svc,
        request,
        mamori=state.mamori,
        images=images,
        response_format=state.response_format,
        created=int(state.created_at.timestamp()),
    )
    return JSONResponse(body, status_code=200)


@router.get("/v1/assets/{asset_id}", summary="A released asset (needs the requester's key; expires)")
async def get_asset(asset_id: str, svc: ServicesDep, principal: CanReadAssets) -> Response:
    asset = await asyncio.to_thread(svc.requests.get_asset, asset_id)
    state = await asyncio.to_thread(svc.requests.get, asset.request_id) if asset else None
    if asset is None or state is None or not _owns(principal, state.key_id):
        raise NotFound(f"no asset {asset_id}", code="asset_not_found")
    if asset.status != "released" or not asset.blob:
        raise NotFound(f"asset {asset_id} is not released", code="asset_not_released")
    released = asset.released_at or asset.created_at
    if released.tzinfo is None:
        released = released.replace(tzinfo=UTC)
    if datetime.now(UTC) > released + timedelta(seconds=svc.settings.url_ttl_s):
        raise Gone(f"the URL for asset {asset_id} has expired", code="url_expired")
    data = await asyncio.to_thread(svc.blobs.get, asset.blob)
    return Response(data, media_type=asset.mime, headers={"cache-control": "private, no-store"})
