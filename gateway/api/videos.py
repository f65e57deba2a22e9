"""OpenAI-compatible video generation: `POST /v1/videos`, `GET /v1/videos/{id}`, `GET /v1/videos/{id}/content`.

Create prescreens the prompt synchronously (a refusal is 400 `content_policy_violation` in
OpenAI's error shape with `mamori`), then queues the generation as a job and answers the video
object (`status: "queued"`). Retrieve answers the object; content answers the C2PA-signed MP4 once
the video is `completed`. Only the key that created a video sees it (others get 404).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import load_json, validate_object
from gateway.api.deps import ServicesDep, access
from gateway.errors import BadRequest, GatewayFault, NotFound, PolicyRefusal
from gateway.jobs import queue_for
from gateway.keys import Principal
from gateway.redaction import redact_text
from gateway.trace import Trace
from gateway.video_pipeline import (
    ENDPOINT,
    MIME,
    READ_ENDPOINT,
    VideoJob,
    create_row,
    get_row,
    mamori_object,
    note_request,
    prescreen,
    video_object,
)

router = APIRouter(prefix="/v1/videos", tags=["videos"])
CanCreate = Annotated[Principal, access(ENDPOINT)]
CanRead = Annotated[Principal, access(READ_ENDPOINT)]
SECONDS = ("4", "8", "12")
MAX_SIDE = 1280


class VideoRequest(BaseModel):
    """OpenAI's videos.create body (JSON or form), plus an optional `seed`. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=4000)
    model: str = Field(default="sora-2", min_length=1, max_length=200)
    seconds: str = "4"
    size: str = "64x64"
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


async def _parse(request: Request) -> VideoRequest:
    payload: Any
    if request.headers.get("content-type", "").startswith(("multipart/", "application/x-www-form-urlencoded")):
        form = await request.form(max_files=1, max_fields=16)
        payload = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        payload = load_json(await request.body())
    return validate_object(VideoRequest, payload)


def _job(body: VideoRequest) -> VideoJob:
    if body.seconds not in SECONDS:
        raise BadRequest(f"seconds must be one of {', '.join(SECONDS)}", code="invalid_request", param="seconds")
    w, _, h = body.size.partition("x")
    if not (w.isdigit() and h.isdigit()) or not all(16 <= int(v) <= MAX_SIDE and int(v) % 16 == 0 for v in (w, h)):
        raise BadRequest(
            f"size must be WIDTHxHEIGHT, multiples of 16 up to {MAX_SIDE}", code="invalid_request", param="size"
        )
    if not body.prompt.strip():
        raise BadRequest("prompt is empty", code="invalid_request", param="prompt")
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    return VideoJob(body.prompt, body.model, int(body.seconds), int(w), int(h), seed)


@router.post("", summary="Create a video (OpenAI-compatible), governed; runs as a job")
async def create_video(request: Request, svc: ServicesDep, principal: CanCreate) -> dict[str, Any]:
    job = _job(await _parse(request))
    trace: Trace = request.state.trace
    note_request(trace, job)
    decision, findings = await prescreen(svc, trace, job)
    if decision.action in ("block", "escalate"):  # videos cannot be held for review yet
        mamori = mamori_object(svc, trace.request_id, "refused", "block", [decision], findings)
        if trace.faults:
            raise GatewayFault("An internal check failed, so nothing was queued (fail closed).", mamori=mamori)
        codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
        raise PolicyRefusal(f"Request refused by Mamori policy ({codes}).", mamori=mamori)
    entities = decision.to_dict()["obligations"].get("redact")
    if entities:  # the PII is not generated: the job gets the redacted prompt
        job.prompt = await asyncio.to_thread(redact_text, job.prompt, findings, entities)
        trace.request["prompt_redacted_for_generation"] = True
    queue = queue_for(svc)
    if queue is None:
        raise GatewayFault("the job queue is not running; nothing was queued", code="mamori_fault")
    video_id = "video_" + uuid.uuid4().hex
    mamori = mamori_object(svc, trace.request_id, "queued", decision.action, [decision], findings)
    mamori["video_id"] = video_id
    await asyncio.to_thread(create_row, svc, video_id, trace.request_id, principal, job, mamori)
    trace.status, trace.decision = "queued", decision.action
    trace.request["video_id"] = video_id
    await asyncio.to_thread(queue.generate_video, video_id, job.prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(get_row, svc, video_id)
    assert row is not None
    return video_object(row)


async def _owned(svc: ServicesDep, principal: Principal, video_id: str) -> Any:
    row = await asyncio.to_thread(get_row, svc, video_id)
    if row is None or row.key_id != principal.key_id:
        raise NotFound(f"no video {video_id!r}", code="not_found")
    return row


@router.get("/{video_id}", summary="Retrieve a video job")
async def retrieve_video(video_id: str, svc: ServicesDep, principal: CanRead) -> dict[str, Any]:
    return video_object(await _owned(svc, principal, video_id))


@router.get("/{video_id}/content", summary="Download a completed video's C2PA-signed MP4")
async def video_content(video_id: str, svc: ServicesDep, principal: CanRead, variant: str = "video") -> Response:
    row = await _owned(svc, principal, video_id)
    if variant != "video":
        raise BadRequest("only variant 'video' is available", code="invalid_request", param="variant")
    if row.status != "completed" or not row.blob_digest:
        raise NotFound(f"video {video_id!r} has no released content (status {row.status})", code="not_ready")
    data = await asyncio.to_thread(svc.blobs.get, row.blob_digest)
    headers = {"x-mamori-manifest-id": row.manifest_id or "", "x-mamori-request-id": row.request_id}
    return Response(content=data, media_type=MIME, headers=headers)
