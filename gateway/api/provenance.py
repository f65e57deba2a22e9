"""Provenance: the trust anchor clients use to validate Mamori's C2PA manifests."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.api.deps import ServicesDep

router = APIRouter(prefix="/v1/provenance", tags=["provenance"])


@router.get("/trust-anchor", summary="The PEM certificate that anchors Mamori's signatures")
async def trust_anchor(svc: ServicesDep) -> Response:
    return Response(svc.provenance.trust_anchor_pem, media_type="application/x-pem-file")
