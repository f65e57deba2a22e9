"""OpenAI-compatible video generation: `POST /v1/videos`, `GET /v1/videos/{id}`, `GET /v1/videos/{id}/content`,
and progress as server-sent events: `GET /v1/videos/{id}/events`.

Create prescreens the prompt synchronously (a refusal is 400 `content_policy_violation` in
OpenAI's error shape with `mamori`), then queues the generation as a job and answers the video
object (`status: "queued"`). A prescreen escalation is queued too: its output is held for review.
Retrieve answers the object; content answers the C2PA-signed MP4 once the video is `completed`.
Only the key that created a video sees it (others get 404).

Events: `video.queued`, `video.in_progress`, `video.progress`, `video.held`, then `video.completed`
or `video.failed` (the stream ends there); each `data` is the video object. The state is read from
the database, so any gateway process answers, whichever process runs the job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import load_json, validate_object
from gateway.api.deps import ServicesDep, access, read_form
from gateway.errors import BadRequest, GatewayFault, NotFound, PolicyRefusal
from gateway.jobs import queue_for
from gateway.keys import Principal
from gateway.redaction import redact_text
from gateway.trace import Trace
from gateway.video_pipeline import (
    ENDPOINT,
    JOB_KEY,
    MIME,
    READ_ENDPOINT,
    TERMINAL,
    VideoJob,
    create_row,
    current_row,
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
POLL_AFTER_MS = 250  # `openai-poll-after-ms`: how often the openai client's videos.poll asks again
EVENT_POLL_S = (0.1, 2.0)  # the events stream reads the row this often: fastest while it changes, then slower
KEEPALIVE_S = 15.0


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
        form = await read_form(request, max_files=1, max_fields=16)  # 400 invalid_multipart / invalid_text
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
    if decision.action not in ("allow", "redact", "escalate"):
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
    # an escalation is held after generation: the job needs the prescreen's action and review obligations
    stored = {**mamori, JOB_KEY: {"action": decision.action, "obligations": decision.to_dict()["obligations"]}}
    await asyncio.to_thread(create_row, svc, video_id, trace.request_id, principal, job, stored)
    trace.status, trace.decision = "queued", decision.action
    trace.request["video_id"] = video_id
    await asyncio.to_thread(queue.submit_video, video_id, job.prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(current_row, svc, video_id)
    assert row is not None
    return video_object(row)


async def _owned(svc: ServicesDep, principal: Principal, video_id: str) -> Any:
    row = await asyncio.to_thread(current_row, svc, video_id)
    if row is None or row.key_id != principal.key_id:
        raise NotFound(f"no video {video_id!r}", code="not_found")
    return row


@router.get("/{video_id}", summary="Retrieve a video job")
async def retrieve_video(video_id: str, svc: ServicesDep, principal: CanRead) -> JSONResponse:
    row = await _owned(svc, principal, video_id)
    headers = {} if row.status in TERMINAL else {"openai-poll-after-ms": str(POLL_AFTER_MS)}
    return JSONResponse(video_object(row), headers=headers)


def _event_name(previous: dict[str, Any] | None, video: dict[str, Any]) -> str | None:
    """The event a change of the video object makes, or None when nothing a client follows changed."""
    held = video["mamori"].get("status") == "held"
    if previous is None or previous["status"] != video["status"]:
        return "video.held" if held else f"video.{video['status']}"
    if held and previous["mamori"].get("status") != "held":
        return "video.held"
    if previous["progress"] != video["progress"]:
        return "video.progress"
    return None


@router.get(
    "/{video_id}/events",
    summary="Progress of a video job as server-sent events; ends at completed or failed",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def video_events(video_id: str, request: Request, svc: ServicesDep, principal: CanRead) -> EventSourceResponse:
    await _owned(svc, principal, video_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        previous: dict[str, Any] | None = None
        delay, sequence, last_sent = EVENT_POLL_S[0], 0, time.monotonic()
        while True:
            row = await asyncio.to_thread(current_row, svc, video_id)
            if row is None:  # removed meanwhile (retention): end the stream
                return
            video = video_object(row)
            name = _event_name(previous, video)
            if name is not None:
                sequence += 1
                yield format_sse_event(data_str=json.dumps(video), event=name, id=str(sequence))
                previous, delay, last_sent = video, EVENT_POLL_S[0], time.monotonic()
                if video["status"] in TERMINAL:
                    return
            elif time.monotonic() - last_sent >= KEEPALIVE_S:
                yield KEEPALIVE_COMMENT
                last_sent = time.monotonic()
            if await request.is_disconnected():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, EVENT_POLL_S[1])

    return EventSourceResponse(stream(), headers={"cache-control": "no-store", "x-accel-buffering": "no"})


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
