"""OpenAI-compatible text to speech: `POST /v1/audio/speech`, governed.

The body is OpenAI's `audio.speech.create` (model, input, voice, response_format, speed), plus an
optional `seed`. `response_format` "wav" (the default here) and "mp3" are served, the formats
Mamori can sign with C2PA; opus, aac, flac and pcm answer 400 `unsupported_response_format`. The
answer is the C2PA-signed file itself (`content-type: audio/wav` or `audio/mpeg`) with the headers
`x-mamori-request-id`, `x-mamori-manifest-id`, `x-mamori-asset-id` and `x-mamori-decision`. A
refusal answers in OpenAI's error shape with the `mamori` object (400 `content_policy_violation`,
or 503 `mamori_fault` when an internal check failed). Held for review: 202 with
`{"created", "data": [], "mamori": {..., "escalation_id", "poll_url"}}`; after a supervisor's
approval, `GET /v1/requests/{id}` returns the signed file as `data[0].b64_json`.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import parse_body
from gateway.api.deps import ServicesDep, access
from gateway.audio_pipeline import MIMES, AudioOutcome
from gateway.errors import BadRequest, GatewayFault, NotFound, PolicyRefusal
from gateway.keys import Principal
from gateway.settings import Settings
from gateway.speech_pipeline import ENDPOINT, SpeechJob, note_request, run_speech
from gateway.trace import Trace

router = APIRouter(prefix="/v1/audio", tags=["audio"])
CanSpeak = Annotated[Principal, access(ENDPOINT)]
SUPPORTED_FORMATS = tuple(MIMES)
OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


class VoiceRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)


class SpeechRequest(BaseModel):
    """OpenAI's audio.speech.create body, plus an optional `seed`. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    input: str
    voice: str | VoiceRef
    response_format: str | None = None
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=4096)
    stream_format: str | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


def _job(settings: Settings, body: SpeechRequest) -> SpeechJob:
    response_format = (body.response_format or "wav").lower()
    if response_format not in SUPPORTED_FORMATS:
        known = "a format OpenAI offers, but" if response_format in OPENAI_FORMATS else "not a known format;"
        raise BadRequest(
            f"response_format {body.response_format!r} is {known} this gateway serves only "
            f"{', '.join(SUPPORTED_FORMATS)} (the formats it can sign with C2PA)",
            code="unsupported_response_format",
            param="response_format",
        )
    if body.stream_format not in (None, "audio"):
        raise BadRequest("only stream_format 'audio' is supported", code="unsupported_parameter", param="stream_format")
    if body.instructions:
        raise BadRequest(
            "instructions are not supported by this speech backend", code="unsupported_parameter", param="instructions"
        )
    if len(body.input) > settings.max_speech_chars:
        raise BadRequest(
            f"input holds {len(body.input)} characters, over the limit of {settings.max_speech_chars}",
            code="input_too_long",
            param="input",
        )
    if not body.input.strip():
        raise BadRequest("input is empty", code="invalid_request", param="input")
    voice = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    if not voice.strip():
        raise BadRequest("voice is empty", code="invalid_request", param="voice")
    return SpeechJob(
        input=body.input,
        voice=voice[:200],
        speed=1.0 if body.speed is None else body.speed,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
        model=body.model,
        response_format=response_format,
    )


@router.post("/speech", summary="Create speech from text (OpenAI-compatible), governed; WAV signed with C2PA")
async def create_speech(request: Request, svc: ServicesDep, principal: CanSpeak) -> Response:
    if svc.speech_generator is None:
        raise NotFound("speech is not enabled on this gateway", code="not_enabled")
    body = parse_body(await request.body(), SpeechRequest)
    job = _job(svc.settings, body)
    trace: Trace = request.state.trace
    note_request(trace, job)

    outcome = await run_speech(svc, trace, principal, job)
    return audio_answer(trace, outcome)


def audio_answer(trace: Trace, outcome: AudioOutcome) -> Response:
    """The signed audio file (200), the held answer (202, JSON), or an error in OpenAI's shape."""
    headers = {"x-mamori-request-id": trace.request_id, "x-mamori-decision": outcome.mamori["decision"]}
    if outcome.status == "held":
        body = {"created": int(time.time()), "data": [], "mamori": outcome.mamori}
        return JSONResponse(body, status_code=202, headers=headers)
    if outcome.status != "released" or outcome.audio is None:
        if outcome.http_status >= 500:
            raise GatewayFault(
                "An internal check failed, so nothing was released (fail closed).",
                code="mamori_fault",
                mamori=outcome.mamori,
            )
        raise PolicyRefusal(outcome.refusal_message or "Request refused by Mamori policy.", mamori=outcome.mamori)
    headers.update({"x-mamori-manifest-id": outcome.manifest_id or "", "x-mamori-asset-id": outcome.asset_id or ""})
    return Response(content=outcome.audio, media_type=outcome.mime, headers=headers)
