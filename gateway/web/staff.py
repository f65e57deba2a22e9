"""The staff workspace under /ui/staff (issue 8): pick an approved template, fill a form generated from
its slots, and see the governed result in plain language (released, held for review, refused).

The pages reuse the supervisor pages' session, CSRF token, base template and message catalogs
(`gateway.web.routes`). Access asks the policy for `web.staff` and `templates.read`; the fill is the
same governed call as `POST /v1/templates/{id}/generate` (`templates.generate` and the modality's
own endpoint), and its path is in the middleware's governed list, so it writes the one `request`
audit record. A requester sees the assets of their own requests only, and a held asset not at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.deps import read_form
from gateway.api.templates import Result, generate, store
from gateway.errors import Forbidden, MamoriError, NotFound
from gateway.templates import SlotValue, coerce_form_value, slot_label
from gateway.trace import Trace
from gateway.web import session as sessions
from gateway.web.routes import _Ctx, _ctx, _require

router = APIRouter(prefix="/staff")
_MEDIA = {"image/png", "audio/wav"}


def _note(request: Request, exc: MamoriError) -> None:
    from gateway.app import note_error  # the app module imports this package

    note_error(request, exc)


def plain_reasons(ctx: _Ctx, mamori: dict[str, Any] | None, *, fault: bool) -> list[str]:
    """The refusal's reasons as sentences a non-specialist understands (one per distinct code)."""
    if fault:
        return [ctx.t("staff_reason_fault")]
    out: list[str] = []
    for reason in (mamori or {}).get("reasons") or []:
        code = str(reason.get("code", ""))
        key = "reason_" + code.replace(".", "_")
        text = ctx.t(key)
        if text == key or reason.get("code") == "template.review_waived":
            continue
        if text not in out:
            out.append(text)
    return out or [ctx.t("staff_reason_generic")]


def _slot_message(ctx: _Ctx, exc: MamoriError, labels: dict[str, str]) -> str | None:
    if not exc.code.startswith("slot_"):
        return None
    slot = (exc.param or "").removeprefix("slots.")
    text = ctx.t(exc.code)
    return text.replace("{slot}", labels.get(slot, slot)) if text != exc.code else exc.message


@router.get("")
async def staff_home(request: Request) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    principal = ctx.principal
    try:
        _require(ctx, "web.staff", "templates.read")
        tenant = None if principal.role == "admin" else principal.tenant
        versions = await asyncio.to_thread(store(ctx.svc).list_versions, tenant=tenant, states=["approved"])
    except MamoriError as exc:
        return ctx.error(exc)
    return ctx.render("staff_list.html", templates=versions)


async def _form_page(
    ctx: _Ctx, template_id: str, *, values: dict[str, str] | None = None, error: str | None = None, status: int = 200
) -> Response:
    from gateway.api.templates import usable

    assert ctx.principal is not None
    try:
        _require(ctx, "web.staff", "templates.read")
        version = await asyncio.to_thread(usable, ctx.svc, ctx.principal, template_id)
    except MamoriError as exc:
        return ctx.error(exc)
    slots = [{"slot": s, "label": slot_label(s, ctx.lang)} for s in version.spec.slots]
    return ctx.render(
        "staff_form.html",
        status_code=status,
        v=version,
        slots=slots,
        values=values or {},
        error=error,
        per_request_seed=version.spec.params.seed_policy == "per-request",
    )


@router.get("/templates/{template_id}")
async def staff_form(request: Request, template_id: str) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    return await _form_page(ctx, template_id)


@router.post("/templates/{template_id}/generate")
async def staff_generate(request: Request, template_id: str) -> Response:
    ctx, redirect = await _ctx(request)
    trace: Trace | None = getattr(request.state, "trace", None)
    if redirect is not None or ctx.principal is None:
        exc: MamoriError = Forbidden("your session has ended; sign in again", code="session_expired")
        _note(request, exc)
        return ctx.error(exc)
    if trace is not None:
        trace.principal = ctx.principal
    labels: dict[str, str] = {}
    raw: dict[str, str] = {}
    try:
        form = await read_form(request, max_files=0, max_fields=48)
        if not sessions.csrf_ok(ctx.key, ctx.sid or "", str(form.get("csrf") or "")):
            raise Forbidden("the form was forged or has expired; nothing was generated", code="csrf_failed")
        _require(ctx, "web.staff", "templates.read")
        from gateway.api.templates import usable

        version = await asyncio.to_thread(usable, ctx.svc, ctx.principal, template_id)
        labels = {s.name: slot_label(s, ctx.lang) for s in version.spec.slots}
        values: dict[str, SlotValue] = {}
        for slot in version.spec.slots:
            given = form.get(f"slot_{slot.name}")
            if isinstance(given, str) and given != "":
                raw[slot.name] = given
                values[slot.name] = coerce_form_value(slot, given)
        seed_text = str(form.get("seed") or "").strip()
        seed = int(seed_text) if seed_text.isdigit() and len(seed_text) <= 10 else None
        result = await generate(
            ctx.svc, request, ctx.principal, template_id, values, seed=seed, response_format="b64_json"
        )
    except MamoriError as exc:
        _note(request, exc)
        message = _slot_message(ctx, exc, labels)
        if message is not None:  # a slot problem: the form again, with what was typed and what is wrong
            return await _form_page(ctx, template_id, values=raw, error=message, status=exc.status_code)
        if exc.code in ("content_policy_violation", "mamori_fault"):
            return _result_page(ctx, None, exc.mamori, exc.status_code)
        return ctx.error(exc)
    return _result_page(ctx, result, result.mamori, result.http_status)


def _result_page(ctx: _Ctx, result: Result | None, mamori: dict[str, Any] | None, status_code: int) -> Response:
    mamori = mamori or {}
    status = result.status if result is not None else "refused"
    if result is not None:
        status_code = result.http_status
    reasons = plain_reasons(ctx, mamori, fault=status_code >= 500) if status == "refused" else []
    return ctx.render(
        "staff_result.html",
        status_code=200 if status != "refused" else status_code,
        status=status,
        mamori=mamori,
        assets=result.assets if result is not None else [],
        reasons=reasons,
        video=result.video if result is not None else None,
        mesh=result.mesh if result is not None else None,
    )


@router.get("/requests/{request_id}")
async def staff_request(request: Request, request_id: str) -> Response:
    """The poll page of a held request: its status now, and its assets once released."""
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "web.staff", "requests.read")
        state = await asyncio.to_thread(ctx.svc.requests.get, request_id)
        if state is None or state.key_id != ctx.principal.key_id:
            raise NotFound(f"no request {request_id!r}", code="not_found")
    except MamoriError as exc:
        return ctx.error(exc)
    assets = [(a.id, a.mime) for a in state.assets if a.status == "released" and a.blob]
    reasons = plain_reasons(ctx, state.mamori, fault=False) if state.status == "refused" else []
    return ctx.render(
        "staff_result.html",
        status=state.status,
        mamori=state.mamori,
        assets=assets,
        reasons=reasons,
        video=None,
        mesh=None,
    )


@router.get("/assets/{asset_id}")
async def staff_asset(request: Request, asset_id: str) -> Response:
    """A released asset of one of the signed-in key's own requests."""
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    principal = ctx.principal
    try:
        _require(ctx, "web.staff", "assets.read")

        def load() -> tuple[bytes, str]:
            asset = ctx.svc.requests.get_asset(asset_id)
            owner = ctx.svc.requests.get(asset.request_id) if asset is not None else None
            if (
                asset is None
                or owner is None
                or owner.key_id != principal.key_id
                or asset.status != "released"
                or not asset.blob
                or asset.mime not in _MEDIA
            ):
                raise NotFound("no such asset", code="asset_not_found")
            return ctx.svc.blobs.get(asset.blob), asset.mime

        data, mime = await asyncio.to_thread(load)
    except MamoriError as exc:
        return ctx.error(exc)
    return Response(data, media_type=mime, headers={"cache-control": "no-store", "x-content-type-options": "nosniff"})
