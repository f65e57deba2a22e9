"""Dependencies shared by the routers: services, the authenticated principal, access through policy."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from gateway.api.bodies import check_text
from gateway.errors import BadRequest, Forbidden, GatewayFault, PayloadTooLarge, Unauthorized
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.policy import PolicyError
from gateway.services import Services
from gateway.trace import Trace

try:
    from python_multipart.multipart import parse_options_header
except ModuleNotFoundError:  # python-multipart before 0.0.13 (pyproject allows 0.0.9): as Starlette does
    from multipart.multipart import parse_options_header  # type: ignore[no-redef]

log = get_logger("mamori.access")


def get_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(get_services)]


def current_trace(request: Request) -> Trace | None:
    return getattr(request.state, "trace", None)


async def get_principal(request: Request, svc: ServicesDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("no API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'", code="invalid_api_key")
    principal = await asyncio.to_thread(svc.keys.authenticate, token)
    if principal is None:
        raise Unauthorized("the API key is unknown, revoked or expired", code="invalid_api_key")
    trace = current_trace(request)
    if trace is not None:
        trace.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


#: `check_text`'s refusal of form text: the parsers below keep undecodable bytes as lone surrogates.
NOT_UTF8 = "text is not valid UTF-8 (or the charset the body declares)"


class _MultiPart(MultiPartParser):
    """Starlette's multipart parser, except for text it cannot decode (field names and values, file
    names): Starlette silently reads it as Latin-1; here its bytes become lone surrogates
    (surrogateescape), which `check_text` refuses as it does in JSON bodies."""

    def _text(self, raw: bytes | bytearray) -> str:
        try:
            return bytes(raw).decode(self._charset, "surrogateescape")
        except LookupError as exc:  # a declared charset that is not a text encoding (rot13, base64)
            raise MultiPartException(f"charset {self._charset!r} is not a text encoding") from exc

    def on_headers_finished(self) -> None:
        super().on_headers_finished()  # the checks, the name (required) and the file, if a file part
        _, options = parse_options_header(self._current_part.content_disposition)
        self._current_part.field_name = self._text(options[b"name"])
        if self._current_part.file is not None:
            self._current_part.file.filename = self._text(options[b"filename"])

    def on_part_end(self) -> None:
        super().on_part_end()
        if self._current_part.file is None:  # a text field: Starlette appended it, decoded its way
            self.items[-1] = (self._current_part.field_name, self._text(self._current_part.data))


class _UrlEncoded(FormParser):
    """Starlette's urlencoded parser, except for text that is not UTF-8: Starlette replaces a
    percent-escape that is not with U+FFFD and reads raw bytes as Latin-1, both silently; here such
    bytes become lone surrogates, which `check_text` refuses."""

    def on_field_end(self) -> None:
        super().on_field_end()  # counts the field (max_fields) and appends it, decoded Starlette's way
        self._items[-1] = (_unquote(self._field_name), _unquote(self._field_value))


def _unquote(raw: bytes | bytearray) -> str:
    return unquote_to_bytes(bytes(raw).replace(b"+", b" ")).decode("utf-8", "surrogateescape")


async def read_form(request: Request, *, max_files: int, max_fields: int, max_part_size: int = 1024 * 1024) -> FormData:
    """The multipart/urlencoded body (any other content type: an empty form). An over-large body is
    413; a malformed one 400 `invalid_multipart`; text that is not valid UTF-8 in a field's name or
    value or a file's name 400 `invalid_text`, `param` the path to it (`prompt`, `file.2.filename`),
    as `load_json` answers a lone surrogate. Nothing of the text is echoed."""
    content_type, _ = parse_options_header(request.headers.get("content-type"))
    try:
        async with aclosing(request.stream()) as stream:
            if content_type == b"multipart/form-data":
                form = await _MultiPart(
                    request.headers, stream, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
                ).parse()
            elif content_type == b"application/x-www-form-urlencoded":
                form = await _UrlEncoded(
                    request.headers, stream, max_fields=max_fields, max_part_size=max_part_size
                ).parse()
            else:
                form = FormData()
    except Exception as exc:
        if isinstance(exc, PayloadTooLarge) or getattr(request.state, "body_too_large", False):
            raise PayloadTooLarge("request body is over the upload limit", code="upload_too_large") from exc
        raise BadRequest(f"malformed form body: {exc}", code="invalid_multipart") from exc
    try:
        check_text(_form_text(form), NOT_UTF8)
    except BadRequest:
        await form.close()
        raise
    return form


def _form_text(form: FormData) -> dict[str, Any]:
    """The form's text as `check_text` walks it: {name: value, or {"filename": name} for a file; a
    list of those for a repeated name}."""
    fields: dict[str, list[Any]] = {}
    for name, value in form.multi_items():
        text = {"filename": value.filename or ""} if isinstance(value, UploadFile) else value
        fields.setdefault(name, []).append(text)
    return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}


def authorize(svc: Services, principal: Principal, endpoint: str, request: Request, **extra: Any) -> None:
    """Ask the policy's access stage whether `principal` may call `endpoint`; 403 when not."""
    doc = {
        "principal": principal.to_policy(),
        "stage": "access",
        "request": {"id": getattr(request.state, "request_id", ""), "endpoint": endpoint, **extra},
        "findings": [],
    }
    try:
        decision = svc.policy.decide(doc)
    except PolicyError as exc:
        raise GatewayFault("the policy engine failed; access denied", code="policy_error") from exc
    svc.metrics.decisions.labels("access", decision.action).inc()
    trace = current_trace(request)
    if trace is not None:
        trace.decisions.append({"stage": "access", **decision.to_dict(), "input": doc})
    if decision.action != "allow":
        codes = ", ".join(r.code for r in decision.reasons) or "access.denied"
        if trace is None:  # a governed call's record (the middleware's) holds this decision already
            _audit_denial(svc, principal, endpoint, request, [r.code for r in decision.reasons])
        raise Forbidden(f"role {principal.role!r} may not call {endpoint} ({codes})", code="forbidden")


def _audit_denial(svc: Services, principal: Principal, endpoint: str, request: Request, codes: list[str]) -> None:
    """A refused call to an administrative or reading endpoint is audited like a refused request.
    A failing audit write does not turn the 403 into something else: the call is refused anyway."""
    try:
        svc.audit.append(
            "access.denied",
            {"by": principal.to_policy(), "endpoint": endpoint, "method": request.method, "reasons": codes},
            request_id=getattr(request.state, "request_id", None),
            tenant=principal.tenant,
        )
    except Exception as exc:  # the refusal stands; the failure is logged
        log.error("access.denied_not_audited", endpoint=endpoint, error=type(exc).__name__)


def access(endpoint: str) -> Any:
    """A dependency that authenticates and authorizes for `endpoint`, yielding the principal."""

    async def dependency(request: Request, svc: ServicesDep, principal: PrincipalDep) -> Principal:
        authorize(svc, principal, endpoint, request)
        return principal

    return Depends(dependency)


# One alias per protected endpoint: authenticate, then ask the policy's access stage.
CanGenerate = Annotated[Principal, access("images.generations")]
CanEdit = Annotated[Principal, access("images.edits")]
CanReadRequests = Annotated[Principal, access("requests.read")]
CanReadAssets = Annotated[Principal, access("assets.read")]
CanListEscalations = Annotated[Principal, access("escalations.list")]
CanDecideEscalations = Annotated[Principal, access("escalations.decide")]
CanWriteProtected = Annotated[Principal, access("protected.write")]
CanReadProtected = Annotated[Principal, access("protected.read")]
CanAdministerPolicy = Annotated[Principal, access("policy.admin")]
