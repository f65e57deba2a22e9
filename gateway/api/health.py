"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.api.deps import ServicesDep
from gateway.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _checks(svc: Services) -> dict[str, Any]:
    checks: dict[str, Any] = {"models": bool(svc.ready.get("models"))}
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        checks["policy"] = bool(svc.policy.revision)
        checks["policy_revision"] = svc.policy.revision
    except Exception:
        checks["policy"] = False
    return checks


@router.get("/readyz", summary="Models, policy bundle and database are ready")
async def readyz(svc: ServicesDep) -> JSONResponse:
    checks = await asyncio.to_thread(_checks, svc)
    ok = all(v for k, v in checks.items() if k in ("models", "database", "policy"))
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(svc: ServicesDep) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
