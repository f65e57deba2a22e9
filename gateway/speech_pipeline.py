"""The governed speech path (`POST /v1/audio/speech`): prescreen → decide → synthesize → screen → decide → sign.

The input text goes through the text detectors at stage "prescreen" and the policy decides; the
WAV is synthesized on the generator pool with the generation timeout; where an ASR model is
configured the output's transcript is screened at stage "output"; the released audio (WAV, or MP3)
is signed with C2PA and stored with its request row; an escalation holds it for review (202, then
the requester polls `GET /v1/requests/{id}`). The steps are `gateway.audio_pipeline`'s, shared
with sound generation. A redaction obligation is honoured by speaking the redacted text (the PII
is not voiced). Every fault fails closed (503, nothing released) and the trace becomes the one
audit record the middleware writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.audio_pipeline import MIMES, AudioOutcome, AudioWork, RenderedAudio, run_audio
from gateway.keys import Principal
from gateway.pipeline import StageFault
from gateway.services import Services
from gateway.trace import Trace

ENDPOINT = "audio.speech"
MIME = MIMES["wav"]
SpeechOutcome = AudioOutcome  # status released, held or refused; `audio` holds the signed file when released


@dataclass
class SpeechJob:
    input: str
    voice: str
    speed: float
    seed: int
    model: str
    response_format: str = "wav"  # wav or mp3 (gateway.audio_pipeline.MIMES)
    callback_url: str | None = None  # the requester's webhook for a review decision


def speech_generator_info(svc: Services) -> dict[str, Any]:
    generator = svc.speech_generator
    return {
        "name": getattr(generator, "name", "unknown"),
        "version": getattr(generator, "version", "unknown"),
        "kind": "speech",
    }


def note_request(trace: Trace, job: SpeechJob) -> None:
    """What the audit record says about the request: sizes and hashes, never the text."""
    trace.request.update(
        kind="speech",
        model=job.model,
        voice=job.voice,
        speed=job.speed,
        seed=job.seed,
        response_format=job.response_format,
        input_chars=len(job.input),
        input_sha256=hashlib.sha256(job.input.encode("utf-8")).hexdigest(),
    )


def _request_doc(trace: Trace, job: SpeechJob) -> dict[str, Any]:
    return {
        "id": trace.request_id,
        "endpoint": trace.endpoint,
        "modality": "audio",
        "input_chars": len(job.input),
        "voice": job.voice,
        "response_format": job.response_format,
    }


def speech_work(svc: Services, trace: Trace, job: SpeechJob) -> AudioWork:
    generator = svc.speech_generator

    def render(text: str) -> RenderedAudio:
        if generator is None:  # the route checks first
            raise StageFault("system.backend_error", "speech_generator", "no speech backend is configured")
        speech: RenderedAudio = generator.synthesize(text, voice=job.voice, speed=job.speed, seed=job.seed)
        return speech

    return AudioWork(
        kind="speech",
        component="speech_generator",
        text=job.input,
        seed=job.seed,
        response_format=job.response_format,
        request_doc=_request_doc(trace, job),
        render=render,
        callback_url=job.callback_url,
    )


async def run_speech(svc: Services, trace: Trace, principal: Principal, job: SpeechJob) -> SpeechOutcome:
    trace.generator = speech_generator_info(svc)
    return await run_audio(svc, trace, principal, speech_work(svc, trace, job))
