"""OpenAI-compatible chat: `POST /v1/chat/completions`, whole answers and server-sent events, governed.

A refused request answers in OpenAI's error shape (400 `content_policy_violation`, or 503
`mamori_fault` when an internal check failed). A stream that the output rails stop midway ends with
a chunk whose `finish_reason` is `"content_filter"`, then `data: [DONE]`. Every answer carries the
`mamori` object (in a stream: on the chunk with the finish reason).

Held for review (a whole answer whose prescreen or output decision escalates): 202 with a
`chat.completion` object whose `choices` is empty and whose `mamori` carries `escalation_id` and
`poll_url`. The requester polls `GET /v1/requests/{request_id}` (the text as `data[0].b64_json` once
released) or `GET /v1/chat/completions/{id}` (the openai client's `chat.completions.retrieve`: the
completion with the approved text, `choices` empty while held or when refused). A stream cannot wait
for a reviewer: an escalated stream is refused (400 before it starts, `content_filter` midway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import parse_body
from gateway.api.deps import CanReadRequests, ServicesDep, access
from gateway.errors import BadRequest, GatewayFault, NotFound, PolicyRefusal
from gateway.keys import Principal
from gateway.settings import Settings
from gateway.text_pipeline import (
    ENDPOINT,
    MIME,
    ChatJob,
    ChatOutcome,
    Finished,
    note_request,
    run_chat,
    screen_request,
    stream_chat,
)
from gateway.trace import Trace

router = APIRouter(prefix="/v1/chat", tags=["chat"])
CanChat = Annotated[Principal, access(ENDPOINT)]
DEFAULT_MODEL = "mamori-text"


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str = Field(max_length=32)
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = "text"


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat.completions.create body, plus an optional `seed`. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=512)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    user: str | None = Field(default=None, max_length=256)
    tools: list[Any] | None = None
    response_format: ResponseFormat | None = None


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _content(message: ChatMessageIn, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.type != "text" or part.text is None:
            raise BadRequest(
                f"only text content parts are supported, not {part.type!r}",
                code="unsupported_content",
                param=f"messages.{index}.content",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _job(settings: Settings, body: ChatCompletionRequest) -> ChatJob:
    if body.n not in (None, 1):
        raise BadRequest("only n=1 is supported", code="invalid_n", param="n")
    if body.tools:
        raise BadRequest("tools are not supported by this gateway", code="unsupported_parameter", param="tools")
    if body.response_format is not None and body.response_format.type != "text":
        raise BadRequest("only text responses are supported", code="unsupported_parameter", param="response_format")
    messages = []
    for i, message in enumerate(body.messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise BadRequest(
                f"message role {message.role!r} is not supported (system, developer, user, assistant)",
                code="invalid_role",
                param=f"messages.{i}.role",
            )
        messages.append({"role": role, "content": _content(message, i)})
    chars = sum(len(m["content"]) for m in messages)
    if chars > settings.text_max_input_chars:
        raise BadRequest(
            f"the messages hold {chars} characters, over the limit of {settings.text_max_input_chars}",
            code="context_length_exceeded",
            param="messages",
        )
    if not any(m["content"].strip() for m in messages):
        raise BadRequest("the messages are empty", code="invalid_request", param="messages")
    max_tokens = body.max_completion_tokens or body.max_tokens or settings.text_default_max_tokens
    limit = settings.text_max_tokens
    if max_tokens > limit:
        raise BadRequest(f"max_tokens must be at most {limit}", code="invalid_max_tokens", param="max_tokens")
    return ChatJob(
        messages=messages,
        max_tokens=min(max_tokens, limit),
        temperature=1.0 if body.temperature is None else body.temperature,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        stream=bool(body.stream),
    )


def _refuse(outcome: ChatOutcome) -> None:
    if outcome.http_status >= 500:
        raise GatewayFault(
            "An internal check failed, so nothing was released (fail closed).",
            code="mamori_fault",
            mamori=outcome.mamori,
        )
    raise PolicyRefusal(outcome.refusal_message or "Request refused by Mamori policy.", mamori=outcome.mamori)


def _completion_id(trace: Trace) -> str:
    return "chatcmpl-" + trace.request_id.removeprefix("req_")


@router.post("/completions", summary="Create a chat completion (OpenAI-compatible), governed; stream=true for SSE")
async def create_chat_completion(request: Request, svc: ServicesDep, principal: CanChat) -> Response:
    if svc.text_generator is None:
        raise NotFound("chat completions are not enabled on this gateway", code="not_enabled")
    body = parse_body(await request.body(), ChatCompletionRequest)
    job = _job(svc.settings, body)
    trace: Trace = request.state.trace
    model = body.model or DEFAULT_MODEL
    note_request(trace, job, model=model, user=body.user)

    screened = await screen_request(svc, trace, principal, job)
    if isinstance(screened, ChatOutcome):
        _refuse(screened)
        raise AssertionError("unreachable")  # _refuse always raises
    created = int(time.time())
    if not job.stream:
        outcome = await run_chat(svc, trace, principal, job, screened)
        if outcome.status not in ("released", "held"):
            _refuse(outcome)
        text = outcome.text if outcome.status == "released" else None  # held: nothing leaves before review
        completion = _completion(_completion_id(trace), created, model, text, outcome.finish_reason, outcome.mamori)
        completion["usage"] = _usage(outcome.prompt_tokens, outcome.completion_tokens)
        return JSONResponse(completion, status_code=outcome.http_status)

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    base = {
        "id": _completion_id(trace),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }

    async def events() -> AsyncIterator[str]:
        yield _sse({**base, "choices": [_choice({"role": "assistant", "content": ""}, None)]})
        # aclosing: if this generator is closed early, the stream below closes (and audits) at once
        async with contextlib.aclosing(stream_chat(svc, trace, principal, job, screened)) as stream:
            async for event in stream:
                if isinstance(event, Finished):
                    yield _sse({**base, "choices": [_choice({}, event.finish_reason)], "mamori": event.mamori})
                    if include_usage:
                        usage = _usage(event.prompt_tokens, event.completion_tokens)
                        yield _sse({**base, "choices": [], "usage": usage})
                else:
                    yield _sse({**base, "choices": [_choice({"content": event.text}, None)]})
        yield "data: [DONE]\n\n"

    # The middleware writes the audit record when the route returns, which for a stream is before the
    # stream has ended: stream_chat writes it itself, once, at the end.
    request.state.audit_deferred = True
    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _completion(
    completion_id: str, created: int, model: str, text: str | None, finish_reason: str | None, mamori: dict[str, Any]
) -> dict[str, Any]:
    """OpenAI's chat.completion object plus `mamori`; `choices` is empty when there is no text to give."""
    choices = []
    if text is not None:
        message = {"role": "assistant", "content": text, "refusal": None}
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason or "stop"})
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
        "usage": None,
        "mamori": mamori,
    }


@router.get(
    "/completions/{completion_id}",
    summary="Retrieve a chat completion that was held for review (OpenAI-compatible); the text once released",
)
async def retrieve_chat_completion(completion_id: str, svc: ServicesDep, principal: CanReadRequests) -> JSONResponse:
    """A held answer's state; its text once a reviewer released it. Only the requester's key (or an admin) sees it.

    Mamori keeps the text only of answers held for review (a released answer is recorded by hash),
    so any other completion is 404 `completion_not_stored`.
    """
    not_found = NotFound(f"no chat completion {completion_id!r}", code="not_found")
    if not completion_id.startswith("chatcmpl-") or len(completion_id) > 80:
        raise not_found
    request_id = "req_" + completion_id.removeprefix("chatcmpl-")
    state = await asyncio.to_thread(svc.requests.get, request_id)
    if (
        state is None
        or state.endpoint != ENDPOINT
        or not (principal.role == "admin" or principal.key_id == state.key_id)
    ):
        raise not_found
    held = [a for a in state.assets if a.mime == MIME]
    if not held:
        raise NotFound("Mamori keeps the text only of answers held for review", code="completion_not_stored")
    notes = await asyncio.to_thread(_request_notes, svc, request_id)
    text = None
    asset = held[0]
    if state.status == "released" and asset.status == "released" and asset.blob:
        text = (await asyncio.to_thread(svc.blobs.get, asset.blob)).decode("utf-8")
    created = int(state.created_at.timestamp())
    body = _completion(completion_id, created, notes["model"], text, notes["finish_reason"], state.mamori)
    return JSONResponse(body, headers={"cache-control": "private, no-store"})


def _request_notes(svc: Any, request_id: str) -> dict[str, Any]:
    """The model name and finish reason of a chat request, from its `request` audit record."""
    notes: dict[str, Any] = {"model": DEFAULT_MODEL, "finish_reason": "stop"}
    for record in svc.audit.for_request(request_id):
        if record.event_type != "request" or not record.payload:
            continue
        model = (record.payload.get("request") or {}).get("model")
        if isinstance(model, str) and model:
            notes["model"] = model
        assets = record.payload.get("assets") or []
        if assets and isinstance(assets[0], dict) and isinstance(assets[0].get("finish_reason"), str):
            notes["finish_reason"] = assets[0]["finish_reason"]
    return notes


def _choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _sse(payload: dict[str, Any]) -> str:
    return "data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n\n"
