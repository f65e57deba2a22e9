"""Request templates (issue 8): list, show, fill (governed), and the lifecycle endpoints.

- `GET /v1/templates`, `GET /v1/templates/{id}` (`templates.read`): requesters see the approved
  templates of their tenant; authors and compliance (`templates.write` / `templates.approve`) see every
  version of their tenant's templates (admins: every tenant's).
- `POST /v1/templates/{id}/generate` (`templates.generate`, plus the modality's own endpoint):
  `{"slots": {...}, "seed": n, "response_format": "b64_json"|"url"}` → the usual governed answer of
  the template's modality. One `request` audit record (the middleware's), which names the template
  version and the slots' hashes, never their values. The policy input carries `request.template`.
- `POST /v1/templates` (create a draft), `PUT` / `PATCH /v1/templates/{id}` (edit: the draft in
  place, otherwise a new draft version), `POST .../submit` (`templates.write`); `POST .../approve`,
  `POST .../retire` (`templates.approve`). Every change is one `template.<action>` audit record.

Modalities are dispatched through `RUNNERS`, each to its direct route's governed path: image
(`/v1/images/generations`: the image answer), speech (`/v1/audio/speech`: the signed WAV), audio
(sound and music, `/v1/audio/generations`: the signed WAV), video (`/v1/videos`: the queued video
object) and 3d (`/v1/3d`: the queued mesh object; the GLB gets a sidecar manifest). A held image,
speech or sound answers 202 with `mamori.poll_url`, as their routes do (a held video stays queued,
`in_progress`, until review). A modality whose backend is not enabled answers 400
`modality_unavailable`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.api.bodies import load_json, validate_object
from gateway.api.deps import ServicesDep, access, authorize
from gateway.api.images import render
from gateway.errors import BadRequest, Conflict, Forbidden, GatewayFault, MamoriError, NotFound, PolicyRefusal
from gateway.jobs import queue_for
from gateway.keys import Principal
from gateway.pipeline import ImageJob, run_image_job
from gateway.redaction import redact_text
from gateway.services import Services
from gateway.speech_pipeline import SpeechJob, note_request, run_speech
from gateway.template_store import (
    SelfApproval,
    TemplateError,
    TemplateNotFound,
    TemplateStateError,
    TemplateStore,
    TemplateVersion,
)
from gateway.templates import SlotValue, TemplateSpec, fill, validate_slots
from gateway.trace import Trace

router = APIRouter(prefix="/v1/templates", tags=["templates"])
DEFAULT_SOUND_SECONDS = 5.0  # a sound template without `seconds`, as POST /v1/audio/generations without duration_s
READ, GENERATE, WRITE, APPROVE = "templates.read", "templates.generate", "templates.write", "templates.approve"
CanRead = Annotated[Principal, access(READ)]
CanGenerate = Annotated[Principal, access(GENERATE)]
CanWrite = Annotated[Principal, access(WRITE)]
CanApprove = Annotated[Principal, access(APPROVE)]


def store(svc: Services) -> TemplateStore:
    """The template store of these services; every change is appended to the audit chain."""

    def auditor(event_type: str, payload: dict[str, Any], tenant: str) -> None:
        svc.audit.append(event_type, payload, tenant=tenant)

    return TemplateStore(svc.sessions, auditor)


def may(svc: Services, principal: Principal, endpoint: str, request: Request) -> bool:
    try:
        authorize(svc, principal, endpoint, request)
    except Forbidden:
        return False
    return True


def _error(exc: TemplateError) -> MamoriError:
    if isinstance(exc, TemplateNotFound):
        return NotFound(str(exc), code=exc.code)
    if isinstance(exc, SelfApproval):
        return Forbidden(str(exc), code=exc.code)
    if isinstance(exc, TemplateStateError):
        return Conflict(str(exc), code=exc.code)
    return BadRequest(str(exc), code=exc.code)


async def _call(fn: Callable[[], Any]) -> Any:
    try:
        return await asyncio.to_thread(fn)
    except TemplateError as exc:
        raise _error(exc) from exc


def _in_scope(principal: Principal, version: TemplateVersion) -> bool:
    return principal.role == "admin" or version.tenant == principal.tenant


def usable(svc: Services, principal: Principal, template_id: str) -> TemplateVersion:
    """The approved version of a template the principal's tenant owns; 404 otherwise (also when none is approved)."""
    version = store(svc).approved(template_id)
    if version is None or not _in_scope(principal, version):
        raise NotFound(f"no approved template {template_id!r}", code="template_not_found")
    return version


# ------------------------------------------------------------------------------------------ reading


@router.get("", summary="List templates (requesters: the approved ones of their tenant)")
async def list_templates(
    request: Request, svc: ServicesDep, principal: CanRead, state: str | None = None, tenant: str | None = None
) -> dict[str, Any]:
    staff = may(svc, principal, WRITE, request) or may(svc, principal, APPROVE, request)
    scope = (tenant or None) if principal.role == "admin" else principal.tenant
    if staff:
        states = [state] if state else None
    else:
        if state not in (None, "approved"):
            raise Forbidden("your role sees approved templates only", code="forbidden")
        states = ["approved"]
    versions = await asyncio.to_thread(store(svc).list_versions, tenant=scope, states=states)
    return {"object": "list", "data": [v.to_dict() for v in versions]}


@router.get("/{template_id}", summary="One template: its approved version (staff: every version)")
async def show_template(template_id: str, request: Request, svc: ServicesDep, principal: CanRead) -> dict[str, Any]:
    if may(svc, principal, WRITE, request) or may(svc, principal, APPROVE, request):
        versions = await asyncio.to_thread(store(svc).versions, template_id)
        if not versions or not _in_scope(principal, versions[-1]):
            raise NotFound(f"no template {template_id!r}", code="template_not_found")
        approved = [v for v in versions if v.state == "approved"]
        current = approved[-1] if approved else versions[-1]
        return {**current.to_dict(), "versions": [_brief(v) for v in versions]}
    version = await asyncio.to_thread(usable, svc, principal, template_id)
    return version.to_dict()


def _brief(v: TemplateVersion) -> dict[str, Any]:
    return {"version": v.version, "state": v.state, "digest": v.digest, "updated_at": v.updated_at.isoformat()}


# ------------------------------------------------------------------------------------------ lifecycle


def _spec(payload: Any) -> TemplateSpec:
    try:
        return validate_object(TemplateSpec, payload)
    except BadRequest as exc:
        raise BadRequest(exc.message, code="invalid_template", param=exc.param) from exc


@router.post("", status_code=201, summary="Create a template (a draft, version 1)")
async def create_template(request: Request, svc: ServicesDep, principal: CanWrite) -> dict[str, Any]:
    payload = load_json(await request.body())
    if not isinstance(payload, dict):
        raise BadRequest("body must be a JSON object", code="invalid_json")
    tenant = payload.pop("tenant", None) or principal.tenant
    if tenant != principal.tenant and principal.role != "admin":
        raise Forbidden("you may create templates for your own tenant only", code="forbidden")
    spec = _spec(payload)
    version: TemplateVersion = await _call(lambda: store(svc).create(spec, tenant=str(tenant), actor=principal))
    return version.to_dict()


async def _owned_latest(svc: Services, principal: Principal, template_id: str) -> TemplateVersion:
    latest: TemplateVersion = await _call(lambda: store(svc).get(template_id))
    if not _in_scope(principal, latest):
        raise NotFound(f"no template {template_id!r}", code="template_not_found")
    return latest


@router.put("/{template_id}", summary="Replace a template's content (the draft in place, else a new draft version)")
async def replace_template(template_id: str, request: Request, svc: ServicesDep, principal: CanWrite) -> dict[str, Any]:
    await _owned_latest(svc, principal, template_id)
    spec = _spec(load_json(await request.body()))
    version: TemplateVersion = await _call(lambda: store(svc).edit(template_id, spec, actor=principal))
    return version.to_dict()


@router.patch("/{template_id}", summary="Change some fields of a template (the draft in place, else a new draft)")
async def patch_template(template_id: str, request: Request, svc: ServicesDep, principal: CanWrite) -> dict[str, Any]:
    latest = await _owned_latest(svc, principal, template_id)
    changes = load_json(await request.body())
    if not isinstance(changes, dict):
        raise BadRequest("body must be a JSON object", code="invalid_json")
    spec = _spec({**latest.spec.model_dump(mode="json"), **changes})
    version: TemplateVersion = await _call(lambda: store(svc).edit(template_id, spec, actor=principal))
    return version.to_dict()


@router.post("/{template_id}/submit", summary="Submit the draft for compliance approval")
async def submit_template(template_id: str, svc: ServicesDep, principal: CanWrite) -> dict[str, Any]:
    await _owned_latest(svc, principal, template_id)
    version: TemplateVersion = await _call(lambda: store(svc).submit(template_id, actor=principal))
    return version.to_dict()


@router.post("/{template_id}/approve", summary="Approve the submitted version (compliance; not its author)")
async def approve_template(template_id: str, svc: ServicesDep, principal: CanApprove) -> dict[str, Any]:
    await _owned_latest(svc, principal, template_id)
    version: TemplateVersion = await _call(lambda: store(svc).approve(template_id, actor=principal))
    return version.to_dict()


@router.post("/{template_id}/retire", summary="Retire a template: no version of it can be used any more")
async def retire_template(template_id: str, svc: ServicesDep, principal: CanApprove) -> dict[str, Any]:
    await _owned_latest(svc, principal, template_id)
    versions: list[TemplateVersion] = await _call(lambda: store(svc).retire(template_id, actor=principal))
    return {"object": "list", "data": [v.to_dict() for v in versions]}


# ------------------------------------------------------------------------------------------ filling


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: dict[Annotated[str, Field(max_length=40)], str | int | float] = Field(default_factory=dict, max_length=40)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    response_format: str = Field(default="b64_json", pattern="^(b64_json|url)$")


@dataclass
class Result:
    """A filled template's governed outcome, whatever its modality."""

    modality: str
    status: str  # released | held | refused | queued
    http_status: int
    mamori: dict[str, Any]
    assets: list[tuple[str, str]] = field(default_factory=list)  # (asset id, mime) of released assets
    refusal_message: str | None = None
    images: list[tuple[str, bytes]] = field(default_factory=list)
    audio: bytes | None = None
    audio_mime: str = "audio/wav"
    video: dict[str, Any] | None = None
    mesh: dict[str, Any] | None = None  # the 3D job object (`gateway.mesh_pipeline.mesh_object`)


@dataclass(frozen=True)
class Fill:
    version: TemplateVersion
    prompt: str
    seed: int
    response_format: str


Runner = Callable[[Services, Trace, Principal, Fill], Awaitable[Result]]


def _size(svc: Services, size: str | None, default: str) -> tuple[int, int]:
    size = size or default
    if size not in svc.settings.sizes:
        raise BadRequest(
            f"the template's size {size} is not served by this gateway", code="template_size_unavailable", param="size"
        )
    w, _, h = size.partition("x")
    return int(w), int(h)


async def _run_image(svc: Services, trace: Trace, principal: Principal, f: Fill) -> Result:
    params = f.version.spec.params
    width, height = _size(svc, params.size, svc.settings.sizes[0])
    job = ImageJob(
        kind="generate",
        prompt=f.prompt,
        n=1,
        width=width,
        height=height,
        seed=f.seed,
        response_format=f.response_format,
        steps=params.steps,
    )
    trace.request.update(kind="generate", n=1, size=f"{width}x{height}", seed=f.seed, response_format=f.response_format)
    outcome = await run_image_job(svc, trace, principal, job)
    return Result(
        "image",
        outcome.status,
        outcome.http_status,
        outcome.mamori,
        [(asset_id, "image/png") for asset_id, _ in outcome.images],
        outcome.refusal_message,
        images=outcome.images,
    )


async def _run_speech(svc: Services, trace: Trace, principal: Principal, f: Fill) -> Result:
    if svc.speech_generator is None:
        raise BadRequest("speech is not enabled on this gateway", code="modality_unavailable")
    job = SpeechJob(
        input=f.prompt, voice=f.version.spec.params.voice or "alloy", speed=1.0, seed=f.seed, model="template"
    )
    note_request(trace, job)
    outcome = await run_speech(svc, trace, principal, job)
    assets = [(outcome.asset_id, "audio/wav")] if outcome.asset_id and outcome.status == "released" else []
    return Result(
        "speech",
        outcome.status,
        outcome.http_status,
        outcome.mamori,
        assets,
        outcome.refusal_message,
        audio=outcome.audio,
    )


async def _run_video(svc: Services, trace: Trace, principal: Principal, f: Fill) -> Result:
    """As `POST /v1/videos`: prescreen now, generate on the job queue."""
    from gateway.video_pipeline import (
        JOB_KEY,
        VideoJob,
        create_row,
        current_row,
        mamori_object,
        prescreen,
        video_object,
    )
    from gateway.video_pipeline import note_request as note_video

    params = f.version.spec.params
    width, height = (int(v) for v in (params.size or "64x64").split("x"))
    job = VideoJob(f.prompt, "template", params.seconds or 4, width, height, f.seed)
    note_video(trace, job)
    decision, findings = await prescreen(svc, trace, job)
    if decision.action not in ("allow", "redact", "escalate"):  # an escalation is held after generation
        mamori = mamori_object(svc, trace.request_id, "refused", "block", [decision], findings)
        codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
        trace.status, trace.decision = "refused", "block"
        status = 503 if trace.faults else 400
        return Result(
            "video", "refused", status, mamori, refusal_message=f"Request refused by Mamori policy ({codes})."
        )
    entities = decision.to_dict()["obligations"].get("redact")
    if entities:
        job.prompt = await asyncio.to_thread(redact_text, job.prompt, findings, entities)
        trace.request["prompt_redacted_for_generation"] = True
    queue = queue_for(svc)
    if queue is None:
        raise GatewayFault("the job queue is not running; nothing was queued", code="mamori_fault")
    video_id = "video_" + uuid.uuid4().hex
    mamori = mamori_object(svc, trace.request_id, "queued", decision.action, [decision], findings)
    mamori["video_id"] = video_id
    # as POST /v1/videos: the job needs the prescreen's action and review obligations to hold an escalation
    stored = {**mamori, JOB_KEY: {"action": decision.action, "obligations": decision.to_dict()["obligations"]}}
    await asyncio.to_thread(create_row, svc, video_id, trace.request_id, principal, job, stored)
    trace.status, trace.decision = "queued", decision.action
    trace.request["video_id"] = video_id
    await asyncio.to_thread(queue.submit_video, video_id, job.prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(current_row, svc, video_id)
    assert row is not None
    return Result("video", "queued", 200, mamori, video=video_object(row))


async def _run_sound(svc: Services, trace: Trace, principal: Principal, f: Fill) -> Result:
    """As `POST /v1/audio/generations` (WAV): sound or music, held for review on an escalation."""
    from gateway.sound_pipeline import SoundJob, run_sound
    from gateway.sound_pipeline import note_request as note_sound

    if svc.sound_generator is None:
        raise BadRequest("sound generation is not enabled on this gateway", code="modality_unavailable")
    limit = svc.settings.max_sound_seconds
    backend_limit = getattr(svc.sound_generator, "max_seconds", None)
    if backend_limit is not None:
        limit = min(limit, backend_limit)
    seconds = f.version.spec.params.seconds
    duration = min(DEFAULT_SOUND_SECONDS, limit) if seconds is None else float(seconds)
    if duration > limit:
        raise BadRequest(
            f"the template's {duration:g} seconds are over this gateway's limit of {limit:g} seconds",
            code="template_duration_unavailable",
            param="seconds",
        )
    job = SoundJob(prompt=f.prompt, duration_s=duration, seed=f.seed, model="template")
    note_sound(trace, job)
    outcome = await run_sound(svc, trace, principal, job)
    assets = [(outcome.asset_id, outcome.mime)] if outcome.asset_id and outcome.status == "released" else []
    return Result(
        "audio",
        outcome.status,
        outcome.http_status,
        outcome.mamori,
        assets,
        outcome.refusal_message,
        audio=outcome.audio,
        audio_mime=outcome.mime,
    )


async def _run_mesh(svc: Services, trace: Trace, principal: Principal, f: Fill) -> Result:
    """As `POST /v1/3d`: prescreen now, generate on the job queue (a GLB with a sidecar C2PA manifest)."""
    from gateway import mesh_pipeline as mp

    if svc.mesh_generator is None:
        raise BadRequest("3D generation is not enabled on this gateway", code="modality_unavailable")
    job = mp.MeshJob(f.prompt, "template", f.seed)
    mp.note_request(trace, job)
    decision, findings = await mp.prescreen(svc, trace, job)
    if decision.action not in ("allow", "redact", "escalate"):  # an escalation is held after generation
        mamori = mp.mamori_object(svc, trace.request_id, "refused", "block", [decision], findings)
        codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
        trace.status, trace.decision = "refused", "block"
        status = 503 if trace.faults else 400
        return Result("3d", "refused", status, mamori, refusal_message=f"Request refused by Mamori policy ({codes}).")
    entities = decision.to_dict()["obligations"].get("redact")
    if entities:
        job.prompt = await asyncio.to_thread(redact_text, job.prompt, findings, entities)
        trace.request["prompt_redacted_for_generation"] = True
    queue = queue_for(svc)
    if queue is None:
        raise GatewayFault("the job queue is not running; nothing was queued", code="mamori_fault")
    mesh_id = "mesh_" + uuid.uuid4().hex
    mamori = mp.mamori_object(svc, trace.request_id, "queued", decision.action, [decision], findings)
    mamori["mesh_id"] = mesh_id
    stored = {**mamori, mp.JOB_KEY: {"action": decision.action, "obligations": decision.to_dict()["obligations"]}}
    await asyncio.to_thread(mp.create_row, svc, mesh_id, trace.request_id, principal, job, stored)
    trace.status, trace.decision = "queued", decision.action
    trace.request["mesh_id"] = mesh_id
    await asyncio.to_thread(queue.submit_mesh, mesh_id, job.prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(mp.get_row, svc, mesh_id)
    assert row is not None
    return Result("3d", "queued", 200, mamori, mesh=mp.mesh_object(row))


# The modality dispatch table: each template modality runs its direct route's governed path.
RUNNERS: dict[str, Runner] = {
    "image": _run_image,
    "speech": _run_speech,
    "video": _run_video,
    "audio": _run_sound,
    "3d": _run_mesh,
}
# The endpoint whose permission a fill also needs, per modality.
MODALITY_ENDPOINTS: dict[str, str] = {
    "image": "images.generations",
    "speech": "audio.speech",
    "video": "videos.create",
    "audio": "audio.generations",
    "3d": "meshes.create",
}


def _seed(version: TemplateVersion, requested: int | None) -> int:
    params = version.spec.params
    if params.seed_policy == "fixed":
        assert params.seed is not None
        if requested is not None and requested != params.seed:
            raise BadRequest("this template fixes its seed", code="seed_not_allowed", param="seed")
        return params.seed
    if params.seed_policy == "random" and requested is not None:
        raise BadRequest("this template picks a random seed", code="seed_not_allowed", param="seed")
    return requested if requested is not None else secrets.randbelow(2**31)


def slot_errors_to_400(errors: list[Any]) -> BadRequest:
    first = errors[0]
    return BadRequest(first.message, code=first.code, param=f"slots.{first.slot}")


async def generate(
    svc: Services,
    request: Request,
    principal: Principal,
    template_id: str,
    values: dict[str, SlotValue],
    *,
    seed: int | None,
    response_format: str,
) -> Result:
    """Fill an approved template and run it through its modality's governed path (the request's trace)."""
    trace: Trace = request.state.trace
    version = await asyncio.to_thread(usable, svc, principal, template_id)
    spec = version.spec
    trace.template = version.policy_view()
    trace.request.update(
        template={"id": version.template_id, "version": version.version, "digest": version.digest, "name": spec.name},
        modality=spec.modality,
    )
    runner = RUNNERS.get(spec.modality)
    if runner is None:
        raise BadRequest(f"{spec.modality} templates cannot be filled on this gateway yet", code="modality_unavailable")
    authorize(svc, principal, MODALITY_ENDPOINTS[spec.modality], request)
    filled, errors = validate_slots(spec, dict(values))
    if errors:
        trace.request["slot_errors"] = [{"code": e.code, "slot": e.slot} for e in errors]
        raise slot_errors_to_400(errors)
    prompt = fill(spec, filled)
    if len(prompt) > svc.settings.max_prompt_chars:
        raise BadRequest(
            f"the filled prompt is {len(prompt)} characters, over the limit of {svc.settings.max_prompt_chars}",
            code="prompt_too_long",
        )
    trace.request.update(
        slots_sha256={k: hashlib.sha256(str(v).encode()).hexdigest() for k, v in filled.items()},
        prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(),
        prompt_chars=len(prompt),
    )
    result = await runner(svc, trace, principal, Fill(version, prompt, _seed(version, seed), response_format))
    result.mamori["template"] = {"id": version.template_id, "version": version.version, "name": spec.name}
    return result


@router.post("/{template_id}/generate", summary="Fill an approved template's slots; the usual governed answer")
async def generate_from_template(
    template_id: str, request: Request, svc: ServicesDep, principal: CanGenerate
) -> Response:
    payload = load_json(await request.body())
    try:
        body = validate_object(GenerateRequest, payload)
    except BadRequest:
        raise
    except ValidationError as exc:  # pragma: no cover - validate_object maps these
        raise BadRequest(str(exc), code="invalid_request") from exc
    result = await generate(
        svc, request, principal, template_id, body.slots, seed=body.seed, response_format=body.response_format
    )
    if result.status == "refused":
        if result.http_status >= 500:
            raise GatewayFault(
                "An internal check failed, so nothing was released (fail closed).",
                code="mamori_fault",
                mamori=result.mamori,
            )
        raise PolicyRefusal(result.refusal_message or "Request refused by Mamori policy.", mamori=result.mamori)
    if result.modality in ("speech", "audio") and result.audio is not None:
        headers = {
            "x-mamori-request-id": result.mamori["request_id"],
            "x-mamori-asset-id": result.assets[0][0] if result.assets else "",
            "x-mamori-decision": result.mamori["decision"],
            "x-mamori-manifest-id": (result.mamori.get("manifest_ids") or [""])[0],
        }
        return Response(content=result.audio, media_type=result.audio_mime, headers=headers)
    if result.modality == "video" and result.video is not None:
        return JSONResponse({**result.video, "mamori": result.mamori}, status_code=result.http_status)
    if result.modality == "3d" and result.mesh is not None:
        return JSONResponse({**result.mesh, "mamori": result.mamori}, status_code=result.http_status)
    body_out = render(
        svc,
        request,
        mamori=result.mamori,
        images=result.images,
        response_format=body.response_format,
        created=int(time.time()),
    )
    return JSONResponse(body_out, status_code=result.http_status)
