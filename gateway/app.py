"""`create_app(settings)`: the FastAPI application, its lifespan, middleware and error mapping.

An unexpected fault in any route fails closed in the middleware: 500 `mamori_fault` in OpenAI's
error shape, with `mamori.request_id` and `mamori.reasons` (code `system.internal_error`, a fixed
message, never the exception's text). On a governed path the answer is the moderation route's
refusal: also `status` "refused", `decision` "block", the `decision_id` of the system block that
the request's audit record holds and the `policy_revision`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import audit as audit_api
from gateway.api import (
    chat,
    escalations,
    health,
    images,
    jobs,
    meshes,
    moderations,
    policies,
    protected,
    protected_names,
    provenance,
    reports,
    requests,
    sound,
    speech,
    templates,
    videos,
)
from gateway.bootstrap import build_services
from gateway.errors import MamoriError, PayloadTooLarge
from gateway.jobs import JobQueue
from gateway.logs import configure_logging, get_logger
from gateway.pipeline import StageFault, system_decision
from gateway.policy import start_policy_watch
from gateway.services import Services
from gateway.settings import Settings
from gateway.trace import Trace
from gateway.web import router as web_router

log = get_logger("mamori.app")

# Paths whose every call is one governed request with exactly one audit record (`request`, or per AUDIT_EVENT_TYPES).
GOVERNED = {
    "/v1/images/generations": "images.generations",
    "/v1/images/edits": "images.edits",
    "/v1/chat/completions": "chat.completions",
    "/v1/audio/speech": "audio.speech",
    "/v1/audio/generations": "audio.generations",
    "/v1/videos": "videos.create",
    "/v1/3d": "meshes.create",
    "/v1/jobs": "jobs.create",
    "/v1/moderations": "moderations",
}

# The audit event type of a governed endpoint's record where it is not `request`: a moderation
# generates nothing, so its records stay out of the request reports and policy replays.
AUDIT_EVENT_TYPES = {"moderations": "moderation"}

# Governed paths with an id in them (issue 8): the template fill, from the API and from the staff page.
GOVERNED_PATTERNS = [
    (re.compile(r"/v1/templates/[A-Za-z0-9_-]{1,64}/generate"), "templates.generate"),
    (re.compile(r"/ui/staff/templates/[A-Za-z0-9_-]{1,64}/generate"), "templates.generate"),
]


def governed_endpoint(path: str) -> str | None:
    """The endpoint of a governed path (one audit record per call), or None."""
    if path in GOVERNED:
        return GOVERNED[path]
    return next((endpoint for pattern, endpoint in GOVERNED_PATTERNS if pattern.fullmatch(path)), None)


class BodyLimit:
    """Refuse bodies over the configured size with 413, also when no Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            scope.setdefault("state", {})["body_too_large"] = True
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    scope.setdefault("state", {})["body_too_large"] = True
                    raise PayloadTooLarge(f"request body exceeds {self.limit} bytes", code="upload_too_large")
            return message

        await self.app(scope, limited, send)


def _error_response(exc: MamoriError, request_id: str | None) -> JSONResponse:
    headers = {"x-request-id": request_id} if request_id else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """The gateway. `services` may be given prebuilt (tests, benchmarks); otherwise the lifespan builds them."""
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        svc = services if services is not None else await asyncio.to_thread(build_services, settings)
        app.state.services = svc
        # issue 5: the job queue (webhooks, deadlines, lease expiry); its consumer runs as threads here
        jobs = JobQueue(settings, svc).attach()
        if svc.protected.blobs is None:
            svc.protected.blobs = svc.blobs  # keep protected works' images for the review page
        await asyncio.to_thread(jobs.start)
        stop_policy_watch = start_policy_watch(svc)  # issue 3: hot reload of the policy bundle
        log.info("gateway.ready", policy_revision=svc.policy.revision, generator=svc.generator.name)
        try:
            yield {"services": svc}
        finally:
            stop_policy_watch()
            await asyncio.to_thread(jobs.stop)
            jobs.detach()
            if services is None:
                svc.close()

    app = FastAPI(
        title="Mamori",
        version="0.1.0",
        description="Governance and safety gateway for generative AI.",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = "req_" + uuid.uuid4().hex
        request.state.request_id = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        endpoint = governed_endpoint(request.url.path) if request.method == "POST" else None
        trace = None
        if endpoint:
            client = request.client.host if request.client else None
            trace = Trace(request_id=request_id, endpoint=endpoint, client=client)
            request.state.trace = trace
        try:
            if getattr(request.state, "body_too_large", False):
                err: MamoriError = PayloadTooLarge(
                    f"request body exceeds {settings.max_upload_bytes} bytes", code="upload_too_large"
                )
                note_error(request, err)
                response: Response = _error_response(err, request_id)
            else:
                response = await call_next(request)
        except Exception as exc:  # an unhandled fault: fail closed, still audited
            if getattr(request.state, "body_too_large", False):
                err = PayloadTooLarge(
                    f"request body exceeds {settings.max_upload_bytes} bytes", code="upload_too_large"
                )
            else:
                log.exception("request.unhandled", error=type(exc).__name__)
                err = _internal_fault(request, trace, exc)
            note_error(request, err)
            response = _error_response(err, request_id)
        response.headers["x-request-id"] = request_id
        # a stream (chat) writes its own record when it ends: request.state.audit_deferred
        if trace is not None and not trace.audited and not getattr(request.state, "audit_deferred", False):
            trace.http_status = trace.http_status or response.status_code
            svc: Services = request.app.state.services
            try:
                await asyncio.to_thread(_audit_trace, svc, trace)
            except Exception as exc:
                # no record, no release: withdraw whatever the request stored, so a poll cannot fetch it either
                log.exception("audit.write_failed", error=type(exc).__name__)
                await asyncio.to_thread(_withdraw, svc, request_id)
                err = MamoriError("the audit trail is unavailable; nothing was released", code="audit_unavailable")
                response = _error_response(err, request_id)
            svc.metrics.requests.labels(trace.endpoint, trace.status or "refused").inc()
        log.info("request.done", path=request.url.path, status=response.status_code)
        structlog.contextvars.unbind_contextvars("request_id")
        return response

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)

    @app.exception_handler(MamoriError)
    async def mamori_error(request: Request, exc: MamoriError) -> JSONResponse:
        note_error(request, exc)
        return _error_response(exc, getattr(request.state, "request_id", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        kind = str(first.get("type", "invalid"))
        code = "invalid_json" if kind.startswith("json") else "invalid_request"
        message = f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid value')}"
        err = _Validation(message, code=code, param=".".join(loc) or None)
        note_error(request, err)
        return _error_response(err, getattr(request.state, "request_id", None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        err = _Validation(str(exc.detail), code=code)
        err.status_code = exc.status_code
        note_error(request, err)
        return _error_response(err, getattr(request.state, "request_id", None))

    for router in (
        images.router,
        moderations.router,
        chat.router,
        speech.router,
        sound.router,
        videos.router,
        meshes.router,
        jobs.router,
        templates.router,
        requests.router,
        escalations.router,
        policies.router,
        protected.router,
        protected_names.router,
        provenance.router,
        health.router,
        audit_api.router,
        reports.router,
        web_router,
    ):
        app.include_router(router)
    return app


class _Validation(MamoriError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


def note_error(request: Request, exc: MamoriError) -> None:
    """Record an error answer on the request's trace (if governed) so the audit record says why."""
    trace: Trace | None = getattr(request.state, "trace", None)
    if trace is None:
        return
    trace.http_status = exc.status_code
    trace.error = {"code": exc.code, "type": exc.error_type, "message": exc.message}
    if trace.status is None:
        trace.status = "refused"
        trace.decision = trace.decision or "block"


INTERNAL_ERROR = "system.internal_error"


def _internal_fault(request: Request, trace: Trace | None, exc: Exception) -> MamoriError:
    """The fail-closed answer to an unhandled fault: 500 `mamori_fault`, with the request id and
    the reason code in `mamori`. On a governed path the trace records the fault and a system
    block (stage "gateway"), whose id the answer names. Fixed messages only: never `exc`'s text."""
    request_id = getattr(request.state, "request_id", None)
    reason = {"code": INTERNAL_ERROR, "detector": "gateway", "message": "an internal step failed"}
    mamori: dict[str, Any] = {"request_id": request_id, "reasons": [reason]}
    if trace is not None:
        trace.fault("gateway", "unhandled", exc)
        mamori.update(status="refused", decision="block")
        svc: Services | None = getattr(request.app.state, "services", None)
        if svc is not None:
            try:
                fault = StageFault(INTERNAL_ERROR, "gateway", "an internal step failed")
                decision = system_decision(svc, trace, "gateway", fault).to_dict()
                mamori["reasons"], mamori["decision_id"] = decision["reasons"], decision["decision_id"]
                mamori["policy_revision"] = decision["revision"]
            except Exception as inner:  # the answer stays a refusal, without a decision id
                log.error("request.fault_decision_failed", error=type(inner).__name__)
    message = f"internal error; nothing was released (fail closed; {INTERNAL_ERROR})"
    return MamoriError(message, code="mamori_fault", mamori=mamori)


def _withdraw(svc: Services, request_id: str) -> None:
    try:
        svc.requests.withdraw(request_id, code="system.audit_error", message="the audit record could not be written")
    except Exception as exc:  # the database may be what failed; the answer already withholds the asset
        log.error("request.withdraw_failed", error=type(exc).__name__)


def _audit_trace(svc: Services, trace: Trace) -> None:
    tenant = trace.principal.tenant if trace.principal else None
    event_type = AUDIT_EVENT_TYPES.get(trace.endpoint, "request")
    svc.audit.append(event_type, trace.audit_payload(), request_id=trace.request_id, tenant=tenant)
    trace.audited = True
