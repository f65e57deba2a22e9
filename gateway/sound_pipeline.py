"""The governed sound and music path (`POST /v1/audio/generations`): the same steps as speech.

The prompt goes through the text detectors at stage "prescreen" and the policy decides; the sound
backend (`svc.sound_generator`, by default MusicGen through transformers) renders `duration_s`
seconds on the generator pool with the generation timeout; where an ASR model is configured the
output's transcript is screened at stage "output" (a "song" may sing what the prompt could not
say); the released WAV or MP3 is signed with C2PA; an escalation holds
it for review. The steps are `gateway.audio_pipeline`'s; every fault fails closed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gateway.audio_pipeline import AudioOutcome, AudioWork, RenderedAudio, run_audio
from gateway.keys import Principal
from gateway.pipeline import StageFault
from gateway.services import Services
from gateway.trace import Trace

ENDPOINT = "audio.generations"
SoundOutcome = AudioOutcome  # status released, held or refused; `audio` holds the signed file when released


@dataclass
class SoundJob:
    prompt: str
    duration_s: float
    seed: int
    model: str
    response_format: str = "wav"  # wav or mp3 (gateway.audio_pipeline.MIMES)
    callback_url: str | None = None  # the requester's webhook for a review decision


def sound_generator_info(svc: Services) -> dict[str, Any]:
    generator = svc.sound_generator
    return {
        "name": getattr(generator, "name", "unknown"),
        "version": getattr(generator, "version", "unknown"),
        "kind": "sound",
    }


def note_request(trace: Trace, job: SoundJob) -> None:
    """What the audit record says about the request: sizes and hashes, never the prompt."""
    trace.request.update(
        kind="sound",
        model=job.model,
        duration_s=job.duration_s,
        seed=job.seed,
        response_format=job.response_format,
        prompt_chars=len(job.prompt),
        prompt_sha256=hashlib.sha256(job.prompt.encode("utf-8")).hexdigest(),
    )


def _request_doc(trace: Trace, job: SoundJob) -> dict[str, Any]:
    return {
        "id": trace.request_id,
        "endpoint": trace.endpoint,
        "modality": "audio",
        "prompt_chars": len(job.prompt),
        "duration_s": job.duration_s,
        "response_format": job.response_format,
    }


def sound_work(svc: Services, trace: Trace, job: SoundJob) -> AudioWork:
    generator = svc.sound_generator

    def render(prompt: str) -> RenderedAudio:
        if generator is None:  # the route checks first
            raise StageFault("system.backend_error", "sound_generator", "no sound backend is configured")
        sound: RenderedAudio = generator.generate(prompt, duration_s=job.duration_s, seed=job.seed)
        return sound

    return AudioWork(
        kind="sound",
        component="sound_generator",
        text=job.prompt,
        seed=job.seed,
        response_format=job.response_format,
        request_doc=_request_doc(trace, job),
        render=render,
        callback_url=job.callback_url,
    )


async def run_sound(svc: Services, trace: Trace, principal: Principal, job: SoundJob) -> SoundOutcome:
    trace.generator = sound_generator_info(svc)
    return await run_audio(svc, trace, principal, sound_work(svc, trace, job))
