"""Server-rendered pages under /ui: the review queue for supervisors, audit search for legal
reviewers, and the management summary. Jinja2 templates; htmx (vendored) only refreshes counts.

Every page asks the policy (``web.supervisor``, ``web.legal``, ``reports.read``, and the same
endpoint permissions as the JSON API for each action), and every form carries the CSRF token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from audit.escalations import PRIORITIES
from audit.verify import verify_chain
from gateway import review
from gateway.api.deps import authorize, read_form
from gateway.api.escalations import STATUS_FILTERS, list_filters
from gateway.api.reports import scope_for, summary
from gateway.errors import BadRequest, Forbidden, MamoriError, NotFound
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.services import Services
from gateway.web import session as sessions

HERE = Path(__file__).resolve().parent
STATIC = {"htmx.min.js": "text/javascript", "app.js": "text/javascript", "app.css": "text/css"}
AGES = {"": None, "1h": 3600, "4h": 4 * 3600, "1d": 86400, "3d": 3 * 86400}
TEXT_MIME = "text/plain"
GLB_MIME = "model/gltf-binary"
INLINE_MIMES = frozenset({"image/png", "image/jpeg", "audio/wav", "audio/mpeg", "video/mp4", TEXT_MIME})
DOWNLOAD_SUFFIX = {"model/gltf-binary": "glb", "text/plain": "txt", "video/mp4": "mp4", "image/png": "png"}
MAX_TEXT_CHARS = 200_000  # a held answer shown on the page (the download has it all)
VIEW_SIZE = 192

log = get_logger("mamori.web")
router = APIRouter(prefix="/ui", include_in_schema=False)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = lambda v: v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if v else ""
    env.filters["pct"] = lambda v: f"{100 * float(v):.1f}%"
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)
    return env


@lru_cache(maxsize=4)
def _messages(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((HERE / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def _svc(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _lang(request: Request, svc: Services) -> str:
    langs = [lang for lang in svc.settings.web_languages if (HERE / "i18n" / f"{lang}.json").is_file()] or ["en"]
    chosen = request.cookies.get(sessions.LANG_COOKIE)
    if chosen in langs:
        return str(chosen)
    accept = request.headers.get("accept-language", "")
    for part in accept.split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in langs:
            return code
    return langs[0]


def _translator(lang: str) -> Callable[[str], str]:
    primary, fallback = _messages(lang), _messages("en")
    return lambda key: primary.get(key) or fallback.get(key) or key


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


class _Ctx:
    """Per-request page context: services, principal, session, language."""

    def __init__(self, request: Request, principal: Principal | None, sid: str | None) -> None:
        self.request = request
        self.svc = _svc(request)
        self.principal = principal
        self.sid = sid
        self.key = sessions.session_key(self.svc.settings)
        self.lang = _lang(request, self.svc)
        self.t = _translator(self.lang)

    def can(self, endpoint: str) -> bool:
        if self.principal is None:
            return False
        try:
            authorize(self.svc, self.principal, endpoint, self.request)
        except MamoriError:
            return False
        return True

    def _here(self) -> str:
        """Where the language switch returns to: this page, or for a form post (an action URL that
        answers POST only) the page the form lives on, one path segment up."""
        url = self.request.url
        if self.request.method != "GET":
            return url.path.rsplit("/", 1)[0] or "/ui"
        return url.path + (f"?{url.query}" if url.query else "")

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        nav = []
        if self.principal is not None:
            for endpoint, href, label in (
                ("web.supervisor", "/ui/queue", "nav_queue"),
                ("web.legal", "/ui/audit", "nav_audit"),
                ("reports.read", "/ui/summary", "nav_summary"),
                ("web.staff", "/ui/staff", "nav_staff"),
            ):
                if self.can(endpoint):
                    nav.append((href, self.t(label)))
        html = (
            _env()
            .get_template(template)
            .render(
                t=self.t,
                lang=self.lang,
                languages=self.svc.settings.web_languages,
                principal=self.principal,
                csrf=sessions.csrf_token(self.key, self.sid) if self.sid else "",
                nav=nav,
                here=self._here(),
                **values,
            )
        )
        response = HTMLResponse(html, status_code=status_code)
        response.headers["cache-control"] = "no-store"
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        response.headers["referrer-policy"] = "same-origin"
        return response

    def error(self, exc: MamoriError) -> HTMLResponse:
        title = self.t("forbidden_title") if exc.status_code == 403 else self.t("error_title")
        return self.render("error.html", status_code=exc.status_code, title=title, error=exc)


async def _ctx(request: Request) -> tuple[_Ctx, Response | None]:
    """The page context, or a redirect to the login page when there is no valid session."""
    svc = _svc(request)
    key = sessions.session_key(svc.settings)
    ws = sessions.read(key, request.cookies.get(sessions.COOKIE))
    principal = await asyncio.to_thread(sessions.principal_for, svc.keys, ws) if ws else None
    ctx = _Ctx(request, principal, ws.sid if ws else None)
    if principal is None:
        target = quote(ctx.request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
        return ctx, RedirectResponse(f"/ui/login?next={target}", status_code=303)
    return ctx, None


def _require(ctx: _Ctx, *endpoints: str) -> None:
    assert ctx.principal is not None
    for endpoint in endpoints:
        authorize(ctx.svc, ctx.principal, endpoint, ctx.request)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


# ---------------------------------------------------------------------------- session pages


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound("no such file", code="not_found")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers={"cache-control": "max-age=3600"})


@router.get("/lang/{code}")
async def set_language(code: str, request: Request, next: str | None = None) -> Response:
    svc = _svc(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in svc.settings.web_languages:
        response.set_cookie(
            sessions.LANG_COOKIE, code, max_age=365 * 86400, samesite="strict", httponly=True, secure=_secure(request)
        )
    return response


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    ctx = _Ctx(request, None, None)
    token = sessions.new_nonce()
    response = ctx.render("login.html", login_csrf=token, next=_safe_next(next), failed=False)
    response.set_cookie(
        sessions.LOGIN_COOKIE, token, max_age=900, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = _Ctx(request, None, None)
    try:
        form = await read_form(request, max_files=0, max_fields=8)
    except MamoriError as exc:  # a page, not JSON: the login form is a browser's
        await _audit_failed_login(ctx, exc.code, None)
        return ctx.error(exc)
    presented = str(form.get("csrf") or "")
    expected = request.cookies.get(sessions.LOGIN_COOKIE) or ""
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        await _audit_failed_login(ctx, "csrf_failed", None)
        return ctx.error(Forbidden("the login form expired or was forged; reload the page", code="csrf_failed"))
    api_key = str(form.get("api_key") or "")
    principal = await asyncio.to_thread(ctx.svc.keys.authenticate, api_key) if api_key else None
    if principal is None:
        await _audit_failed_login(ctx, "invalid_api_key", ctx.svc.keys.claimed_key_id(api_key))
        token = sessions.new_nonce()
        response = ctx.render(
            "login.html", status_code=401, login_csrf=token, next=_safe_next(str(form.get("next") or "")), failed=True
        )
        response.set_cookie(
            sessions.LOGIN_COOKIE, token, max_age=900, httponly=True, samesite="strict", secure=_secure(request)
        )
        return response
    cookie, _ = sessions.issue(ctx.key, principal.key_id, ctx.svc.settings.session_ttl_s)
    await asyncio.to_thread(
        ctx.svc.audit.append,
        "web.login",
        {"key_id": principal.key_id, "role": principal.role, "tenant": principal.tenant},
        tenant=principal.tenant,
    )
    redirect = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    redirect.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=ctx.svc.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui",
    )
    redirect.delete_cookie(sessions.LOGIN_COOKIE)
    return redirect


async def _audit_failed_login(ctx: _Ctx, reason: str, key_id: str | None) -> None:
    """A refused login is on the record (who tried from where, never the key presented): `web.login_failed`
    with the reason code, the key id the presented key names (when it has a key's shape) and the client."""
    client = ctx.request.client.host if ctx.request.client else None
    payload = {"reason": reason, "key_id": key_id, "client": client}
    try:
        await asyncio.to_thread(ctx.svc.audit.append, "web.login_failed", payload)
    except Exception as exc:  # the login is refused all the same; an unwritable trail is no 500 here
        log.error("web.login_failed_not_audited", reason=reason, error=type(exc).__name__)


@router.post("/logout")
async def logout(request: Request) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is None:
        form = await read_form(request, max_files=0, max_fields=8)
        if not sessions.csrf_ok(ctx.key, ctx.sid or "", str(form.get("csrf") or "")):
            return ctx.error(Forbidden("the form was forged or has expired", code="csrf_failed"))
    response: Response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/ui")
    return response


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    for endpoint, href in (
        ("web.supervisor", "/ui/queue"),
        ("web.legal", "/ui/audit"),
        ("reports.read", "/ui/summary"),
        ("web.staff", "/ui/staff"),
    ):
        if ctx.can(endpoint):
            return RedirectResponse(href, status_code=303)
    return ctx.error(Forbidden(ctx.t("forbidden_page"), code="forbidden"))


# ---------------------------------------------------------------------------- supervisors


def _counts(svc: Services, principal: Principal, tenant: str | None) -> dict[str, dict[str, int]]:
    return svc.escalations.counts(tenant=tenant if principal.role == "admin" else principal.tenant)


@router.get("/queue")
async def queue(
    request: Request,
    status: str = "open",
    priority: str = "",
    category: str = "",
    tenant: str = "",
    age: str = "",
) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "web.supervisor", "escalations.list")
        filters = list_filters(
            ctx.principal,
            status=status,
            priority=priority or None,
            category=category or None,
            tenant=tenant or None,
            older_than_s=AGES.get(age),
        )
        items = await asyncio.to_thread(lambda: ctx.svc.escalations.list(**filters, limit=500))
        counts = await asyncio.to_thread(_counts, ctx.svc, ctx.principal, tenant or None)
    except MamoriError as exc:
        return ctx.error(exc)
    order = {p: i for i, p in enumerate(reversed(PRIORITIES))}
    items.sort(key=lambda e: (order.get(e.priority, 9), e.created_at))
    now = datetime.now(UTC)
    return ctx.render(
        "queue.html",
        items=items,
        now=now,
        counts=counts,
        statuses=STATUS_FILTERS,
        priorities=PRIORITIES,
        ages=list(AGES),
        f={"status": status, "priority": priority, "category": category, "tenant": tenant, "age": age},
        is_admin=ctx.principal.role == "admin",
    )


@router.get("/queue/counts")
async def queue_counts(request: Request, tenant: str = "") -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return JSONResponse({"error": "login"}, status_code=401)
    assert ctx.principal is not None
    try:
        _require(ctx, "web.supervisor", "escalations.list")
    except MamoriError as exc:
        return JSONResponse(exc.body(), status_code=exc.status_code)
    counts = await asyncio.to_thread(_counts, ctx.svc, ctx.principal, tenant or None)
    if request.headers.get("hx-request"):
        return ctx.render("_counts.html", counts=counts)
    return JSONResponse(counts)


def _item_data(svc: Services, principal: Principal, escalation_id: str) -> dict[str, Any]:
    e = review.visible_escalation(svc, principal, escalation_id)
    state = svc.requests.get(e.request_id)
    findings: list[dict[str, Any]] = []
    for record in svc.audit.for_request(e.request_id):
        if record.event_type == "request" and record.payload:
            findings = [f for f in record.payload.get("findings") or [] if isinstance(f, dict)]
    works = []
    for f in findings:
        work_id = (f.get("evidence") or {}).get("work_id") if isinstance(f.get("evidence"), dict) else None
        if isinstance(work_id, str):
            work = svc.protected.get(work_id)
            if work is not None and (work.tenant is None or work.tenant == e.tenant or principal.role == "admin"):
                works.append({"id": work.id, "name": work.name, "has_image": svc.blobs.exists(work.sha256)})
    keys = [k for k in svc.keys.list() if k.tenant == e.tenant and k.active and k.role in review.DECIDER_ROLES]
    assets = [a for a in (state.assets if state else ()) if a.held_blob or a.blob]
    return {
        "e": e,
        "status": e.effective_status(),
        "state": state,
        "assets": assets,
        "texts": {a.id: _held_text(svc, a) for a in assets if a.mime == TEXT_MIME},
        "findings": findings,
        "works": works,
        "events": svc.escalations.events(e.id),
        "assignees": [k for k in keys if k.id != principal.key_id and k.id != e.requester_key_id],
        "mine": e.effective_status() == "claimed" and e.claimed_by == principal.key_id,
    }


@router.get("/items/{escalation_id}")
async def item(request: Request, escalation_id: str, msg: str = "") -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "web.supervisor", "escalations.list")
        data = await asyncio.to_thread(_item_data, ctx.svc, ctx.principal, escalation_id)
    except MamoriError as exc:
        return ctx.error(exc)
    neighbours = await asyncio.to_thread(_neighbours, ctx.svc, ctx.principal, escalation_id)
    return ctx.render(
        "item.html",
        **data,
        msg=ctx.t("msg_" + msg) if msg.isidentifier() and ctx.t("msg_" + msg) != "msg_" + msg else "",
        nonce=sessions.new_nonce(),
        can_decide=ctx.can("escalations.decide"),
        can_claim=ctx.can("escalations.claim"),
        prev_id=neighbours[0],
        next_id=neighbours[1],
    )


def _held_text(svc: Services, asset: Any) -> str | None:
    """A text asset for the page (the template escapes it); None once its blob is gone."""
    digest = asset.held_blob or asset.blob
    if digest is None or not svc.blobs.exists(digest):
        return None
    return svc.blobs.get(digest).decode("utf-8", errors="replace")[:MAX_TEXT_CHARS]


def _neighbours(svc: Services, principal: Principal, escalation_id: str) -> tuple[str | None, str | None]:
    tenant = None if principal.role == "admin" else principal.tenant
    ids = [e.id for e in svc.escalations.list(tenant=tenant, status="open", limit=500)]
    if escalation_id not in ids:
        return None, ids[0] if ids else None
    i = ids.index(escalation_id)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)


def _item_asset(svc: Services, principal: Principal, escalation_id: str, asset_id: str) -> tuple[bytes, str]:
    """The bytes and media type of one asset of a visible queue item (held, or released after approval)."""
    e = review.visible_escalation(svc, principal, escalation_id)
    state = svc.requests.get(e.request_id)
    for a in state.assets if state else ():
        if a.id == asset_id and (a.held_blob or a.blob):
            digest = a.held_blob or a.blob
            assert digest is not None
            if svc.blobs.exists(digest):
                return svc.blobs.get(digest), a.mime
    raise NotFound("no such asset (it may have been deleted after a decision)", code="asset_not_found")


@router.get("/items/{escalation_id}/assets/{asset_id}")
async def item_asset(request: Request, escalation_id: str, asset_id: str, download: bool = False) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "web.supervisor", "escalations.list")
        data, mime = await asyncio.to_thread(_item_asset, ctx.svc, ctx.principal, escalation_id, asset_id)
    except MamoriError as exc:
        return ctx.error(exc)
    headers = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
    if download or mime not in INLINE_MIMES:  # a GLB (or anything a browser does not show) is a download
        headers["content-disposition"] = f'attachment; filename="{asset_id}.{DOWNLOAD_SUFFIX.get(mime, "bin")}"'
    return Response(data, media_type=mime, headers=headers)


@router.get("/items/{escalation_id}/assets/{asset_id}/views.png")
async def item_asset_views(request: Request, escalation_id: str, asset_id: str) -> Response:
    """A 3D asset drawn from four directions (the views its detectors screened), side by side."""
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "web.supervisor", "escalations.list")
        data, mime = await asyncio.to_thread(_item_asset, ctx.svc, ctx.principal, escalation_id, asset_id)
        if mime != GLB_MIME:
            raise NotFound("only a 3D asset has rendered views", code="asset_not_found")
        png = await asyncio.to_thread(_views_png, data)
    except MamoriError as exc:
        return ctx.error(exc)
    return Response(png, media_type="image/png", headers={"cache-control": "no-store"})


def _views_png(glb: bytes) -> bytes:
    import io

    from PIL import Image

    from generators.diffusers_3d import render_views

    try:
        views = render_views(glb, size=VIEW_SIZE, views=4)
    except Exception as exc:  # a GLB the renderer cannot read: say so instead of a broken page
        raise NotFound("this 3D asset cannot be drawn; download it instead", code="asset_not_renderable") from exc
    sheet = Image.new("RGB", (VIEW_SIZE * len(views), VIEW_SIZE), (255, 255, 255))
    for k, view in enumerate(views):
        sheet.paste(view.convert("RGB"), (k * VIEW_SIZE, 0))
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()


@router.get("/protected/{work_id}/image")
async def protected_image(request: Request, work_id: str, item: str = "") -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "web.supervisor", "escalations.list")

        def load() -> bytes:
            work = ctx.svc.protected.get(work_id)
            allowed = work is not None and (
                work.tenant is None or work.tenant == ctx.principal.tenant or ctx.principal.role == "admin"  # type: ignore[union-attr]
            )
            if work is None or not allowed or not ctx.svc.blobs.exists(work.sha256):
                raise NotFound("no image for this protected work", code="work_not_found")
            return ctx.svc.blobs.get(work.sha256)

        data = await asyncio.to_thread(load)
    except MamoriError as exc:
        return ctx.error(exc)
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg" if data[:3] == b"\xff\xd8\xff" else None
    if mime is None:  # only formats a browser shows safely; anything else is not rendered inline
        return ctx.error(NotFound("this work's image cannot be shown here", code="work_not_found"))
    return Response(data, media_type=mime, headers={"cache-control": "no-store", "x-content-type-options": "nosniff"})


_ACTIONS = {
    "claim": ("escalations.claim", "claimed"),
    "release": ("escalations.claim", "released"),
    "comment": ("escalations.claim", "commented"),
    "reassign": ("escalations.claim", "reassigned"),
    "approve": ("escalations.decide", "approved"),
    "reject": ("escalations.decide", "rejected"),
}


@router.post("/items/{escalation_id}/{action}")
async def item_action(request: Request, escalation_id: str, action: str) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return ctx.error(Forbidden("your session has ended; sign in again", code="session_expired"))
    assert ctx.principal is not None
    principal = ctx.principal
    if action not in _ACTIONS:
        return ctx.error(NotFound("no such action", code="not_found"))
    endpoint, msg = _ACTIONS[action]
    try:
        form = await read_form(request, max_files=0, max_fields=16)
        if not sessions.csrf_ok(ctx.key, ctx.sid or "", str(form.get("csrf") or "")):
            raise Forbidden("the form was forged or has expired; nothing was changed", code="csrf_failed")
        nonce = str(form.get("nonce") or "")
        if not 8 <= len(nonce) <= 64:
            raise BadRequest("the form is missing its one-time token; reload the page", code="nonce_missing")
        _require(ctx, "web.supervisor", endpoint)
        reason = str(form.get("reason") or "")
        svc = ctx.svc

        def act() -> str:
            if action == "claim":
                review.claim(svc, principal, escalation_id, nonce=nonce)
            elif action == "release":
                review.release(svc, principal, escalation_id, nonce=nonce)
            elif action == "comment":
                review.comment(svc, principal, escalation_id, str(form.get("text") or ""), nonce=nonce)
            elif action == "reassign":
                review.reassign(svc, principal, escalation_id, str(form.get("to") or ""), reason=reason, nonce=nonce)
            else:
                payload = review.decide_escalation(
                    svc, principal, escalation_id, approve=action == "approve", reason=reason, nonce=nonce
                )
                if payload["action"] == "approval_recorded":
                    return "approval_recorded"
            return msg

        outcome = await asyncio.to_thread(act)
    except MamoriError as exc:
        return ctx.error(exc)
    return RedirectResponse(f"/ui/items/{quote(escalation_id)}?msg={outcome}", status_code=303)


# ---------------------------------------------------------------------------- legal


def _matches(record: Any, q: dict[str, str], since: datetime | None, until: datetime | None) -> bool:
    p = record.payload or {}
    if since and record.created_at < since:
        return False
    if until and record.created_at >= until:
        return False
    if q["key"]:
        keys = {
            (p.get("principal") or {}).get("key_id") if isinstance(p.get("principal"), dict) else None,
            (p.get("reviewer") or {}).get("key_id") if isinstance(p.get("reviewer"), dict) else None,
            (p.get("actor") or {}).get("key_id") if isinstance(p.get("actor"), dict) else None,
            p.get("key_id"),
        }
        if q["key"] not in keys:
            return False
    if q["action"] and q["action"] not in (p.get("decision"), p.get("action"), p.get("status")):
        return False
    findings = [f for f in p.get("findings") or [] if isinstance(f, dict)]
    if q["detector"] and q["detector"] not in {f.get("detector") for f in findings}:
        return False
    return not (q["category"] and q["category"] not in {f.get("category") for f in findings} | {p.get("category")})


def _parse_day(value: str) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"{value!r} is not a date (YYYY-MM-DD)", code="invalid_date") from exc
    return day if day.tzinfo else day.replace(tzinfo=UTC)


@router.get("/audit")
async def audit_search(
    request: Request,
    since: str = "",
    until: str = "",
    tenant: str = "",
    key: str = "",
    action: str = "",
    detector: str = "",
    category: str = "",
    event_type: str = "",
    before: int | None = None,
) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    q = {
        "since": since,
        "until": until,
        "tenant": tenant,
        "key": key.strip(),
        "action": action.strip(),
        "detector": detector.strip(),
        "category": category.strip(),
        "event_type": event_type.strip(),
    }
    try:
        _require(ctx, "web.legal", "audit.read")
        start, end = _parse_day(since), _parse_day(until)
        if end is not None and len(until) <= 10:
            end += timedelta(days=1)  # a day given as "until" includes that day
        scope = tenant or None if ctx.principal.role == "admin" else ctx.principal.tenant

        def search() -> tuple[list[Any], int | None]:
            found: list[Any] = []
            cursor = before
            scanned = 0
            while len(found) < 50 and scanned < 20_000:
                page = ctx.svc.audit.search(
                    tenant=scope, event_type=q["event_type"] or None, limit=500, before_seq=cursor
                )
                if not page:
                    return found, None
                for record in page:
                    scanned += 1
                    cursor = record.seq
                    if start is not None and record.created_at < start:
                        return found, None
                    if _matches(record, q, start, end):
                        found.append(record)
                        if len(found) >= 50:
                            return found, record.seq
            return found, cursor

        records, next_before = await asyncio.to_thread(search)
    except MamoriError as exc:
        return ctx.error(exc)
    params = {k: v for k, v in q.items() if v}
    export = "/v1/audit/export?" + urlencode({k: v for k, v in params.items() if k in ("tenant", "since", "until")})
    return ctx.render(
        "audit.html",
        records=records,
        q=q,
        next_url=f"/ui/audit?{urlencode({**params, 'before': next_before})}" if next_before else None,
        export_url=export,
        is_admin=ctx.principal.role == "admin",
    )


@router.get("/audit/{seq}")
async def audit_record(request: Request, seq: int) -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    principal = ctx.principal
    try:
        _require(ctx, "web.legal", "audit.read")
        record = await asyncio.to_thread(ctx.svc.audit.get, seq)
        if record is None or (principal.role != "admin" and record.tenant != principal.tenant):
            raise NotFound(f"no audit record {seq}", code="record_not_found")
        report = await asyncio.to_thread(verify_chain, ctx.svc.sessions)
    except MamoriError as exc:
        return ctx.error(exc)
    related = []
    if record.request_id:
        related = [r for r in await asyncio.to_thread(ctx.svc.audit.for_request, record.request_id) if r.seq != seq]
    problems = [p for p in report.problems if p.seq == seq]
    return ctx.render(
        "record.html",
        record=record,
        report=report,
        problems=problems,
        related=related,
        export_url=f"/v1/audit/export?{urlencode({'request_id': record.request_id})}" if record.request_id else "",
    )


# ---------------------------------------------------------------------------- management


@router.get("/summary")
async def summary_page(request: Request, days: int = 30, tenant: str = "") -> Response:
    ctx, redirect = await _ctx(request)
    if redirect is not None:
        return redirect
    assert ctx.principal is not None
    try:
        _require(ctx, "reports.read")
        if not 1 <= days <= 3660:
            raise BadRequest("days must be between 1 and 3660", code="invalid_request")
        data = await asyncio.to_thread(summary, ctx.svc, tenant=scope_for(ctx.principal, tenant or None), days=days)
    except MamoriError as exc:
        return ctx.error(exc)
    return ctx.render("summary.html", data=data, days=days, tenant=tenant, is_admin=ctx.principal.role == "admin")
