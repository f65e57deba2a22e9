"""Sound and music generation: `POST /v1/audio/generations`, Mamori's own endpoint, governed.

OpenAI has no sound-generation API, so the body is Mamori's own (unknown fields are refused):
`{"model"?, "prompt", "duration_s"?, "seed"?, "response_format"?}`. `duration_s` defaults to 5 and
is bounded by `max_sound_seconds` (and the backend's own limit); `response_format` is "wav" (the
default) or "mp3", the formats Mamori can sign with C2PA. The answers are those of
`POST /v1/audio/speech`: the signed file itself with `x-mamori-*` headers, 202 JSON when held for
review, and refusals in OpenAI's error shape (400 `content_policy_violation`, 503 `mamori_fault`).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import parse_body
from gateway.api.deps import ServicesDep, access
from gateway.api.speech import audio_answer
from gateway.audio_pipeline import MIMES
from gateway.errors import BadRequest, NotFound
from gateway.keys import Principal
from gateway.services import Services
from gateway.sound_pipeline import ENDPOINT, SoundJob, note_request, run_sound
from gateway.trace import Trace

router = APIRouter(prefix="/v1/audio", tags=["audio"])
CanMakeSound = Annotated[Principal, access(ENDPOINT)]
DEFAULT_SECONDS = 5.0


class SoundRequest(BaseModel):
    """Mamori's sound-generation body. Unknown fields are refused, so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="mamori-sound", min_length=1, max_length=200)
    prompt: str
    duration_s: float | None = Field(default=None, gt=0)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    response_format: str | None = None


def _job(svc: Services, body: SoundRequest) -> SoundJob:
    settings = svc.settings
    response_format = (body.response_format or "wav").lower()
    if response_format not in MIMES:
        raise BadRequest(
            f"response_format {body.response_format!r} is not served; this gateway serves "
            f"{', '.join(MIMES)} (the formats it can sign with C2PA)",
            code="unsupported_response_format",
            param="response_format",
        )
    if not body.prompt.strip():
        raise BadRequest("prompt is empty", code="invalid_request", param="prompt")
    if len(body.prompt) > settings.max_prompt_chars:
        raise BadRequest(
            f"prompt holds {len(body.prompt)} characters, over the limit of {settings.max_prompt_chars}",
            code="prompt_too_long",
            param="prompt",
        )
    backend_limit = getattr(svc.sound_generator, "max_seconds", None)
    limit = settings.max_sound_seconds if backend_limit is None else min(settings.max_sound_seconds, backend_limit)
    duration = min(DEFAULT_SECONDS, limit) if body.duration_s is None else body.duration_s
    if duration > limit:
        raise BadRequest(
            f"duration_s {duration:g} is over this gateway's limit of {limit:g} seconds",
            code="duration_too_long",
            param="duration_s",
        )
    return SoundJob(
        prompt=body.prompt,
        duration_s=duration,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        model=body.model,
        response_format=response_format,
    )


@router.post("/generations", summary="Generate sound or music from a prompt, governed; signed with C2PA")
async def create_sound(request: Request, svc: ServicesDep, principal: CanMakeSound) -> Response:
    if svc.sound_generator is None:
        raise NotFound("sound generation is not enabled on this gateway", code="not_enabled")
    body = parse_body(await request.body(), SoundRequest)
    job = _job(svc, body)
    trace: Trace = request.state.trace
    note_request(trace, job)
    outcome = await run_sound(svc, trace, principal, job)
    return audio_answer(trace, outcome)
