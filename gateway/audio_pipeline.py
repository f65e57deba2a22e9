"""The governed audio path shared by speech and sound: prescreen → decide → generate → screen → decide → sign.

Speech (`gateway.speech_pipeline`, `POST /v1/audio/speech`) and sound or music
(`gateway.sound_pipeline`, `POST /v1/audio/generations`) differ only in the backend they call and
in what the policy sees of the request; this module is the path both travel, built from the image
path's pieces (`gateway.pipeline`):

1. The input text (what is spoken, or the sound prompt) goes through the text detectors at stage
   "prescreen" and the policy decides. A redaction obligation is honoured by generating from the
   redacted text; an escalation holds the output for review (below).
2. The backend renders a WAV on the generator pool with the generation timeout.
3. Output screening: where an ASR model is configured (`svc.asr`), the WAV is transcribed and the
   transcript goes through the text detectors at stage "output" (with the bundle's terms plus
   `settings.text_output_terms`, as the chat rails do). The audit record keeps the transcript's
   SHA-256 and length, never its text. Without an ASR model nothing looks at the audio itself and
   the record says so (`request.output_screening = "none"`). The policy decides at stage "output".
   Audio cannot be redacted, so an output `redact` refuses like a block.
4. The WAV is encoded in the requested format (`wav`, or `mp3` with LAME through `lameenc`).
5. Released: signed with C2PA (embedded in the RIFF file, or an ID3 tag for MP3) and stored.
   Held (a prescreen or output escalation): stored unsigned in the blob store and put on the review
   queue; 202 with a `poll_url`. A supervisor's approval signs it (`gateway.review`, the manifest
   records the review) and the requester's poll (`GET /v1/requests/{id}`) returns it.

Every fault (detector, ASR, policy, backend, encoder, signing) fails closed: 503, nothing released,
and the trace becomes the one audit record the middleware writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from detectors.base import DetectionContext, Finding
from gateway.keys import Principal
from gateway.pipeline import (
    StageFault,
    decide,
    detection_context,
    in_pool,
    manifest_decision,
    merge_reasons,
    policy_revision,
    run_text_detectors,
    summarize,
    system_decision,
)
from gateway.policy import Decision
from gateway.redaction import redact_text
from gateway.review import open_escalation
from gateway.services import Services
from gateway.state import NewAsset
from gateway.trace import Trace

MIMES: dict[str, str] = {"wav": "audio/wav", "mp3": "audio/mpeg"}
"""Response formats Mamori serves for audio, and their media types (both signed with C2PA)."""

MP3_BITRATE_KBPS = {1: 96, 2: 160}


class RenderedAudio(Protocol):
    """What a speech or sound backend returns: a complete WAV file and its length."""

    @property
    def wav(self) -> bytes: ...
    @property
    def sampling_rate(self) -> int: ...
    @property
    def seconds(self) -> float: ...


@dataclass
class AudioWork:
    """One audio request as the shared path sees it."""

    kind: str  # "speech" or "sound": the audit record's request.kind
    component: str  # the backend in faults and system reasons: speech_generator, sound_generator
    text: str  # screened before generation: the speech input or the sound prompt
    seed: int
    response_format: str  # a key of MIMES
    request_doc: dict[str, Any]  # the policy's view of the request: sizes and options, never the text
    render: Callable[[str], RenderedAudio]  # blocking: the (maybe redacted) text to a WAV
    callback_url: str | None = None  # the requester's webhook for a review decision
    extra_manifest: dict[str, Any] = field(default_factory=dict)  # merged into the mamori.decision assertion

    @property
    def mime(self) -> str:
        return MIMES[self.response_format]


@dataclass
class AudioOutcome:
    status: str  # released, held or refused
    http_status: int
    mamori: dict[str, Any]
    audio: bytes | None = None
    asset_id: str | None = None
    manifest_id: str | None = None
    refusal_message: str | None = None
    mime: str = "audio/wav"


# ---------------------------------------------------------------- stages


async def prescreen(svc: Services, trace: Trace, work: AudioWork) -> tuple[Decision, list[Finding]]:
    ctx = await detection_context(svc, trace, "prescreen")
    findings = await run_text_detectors(svc, trace, work.text, ctx)
    trace.findings += [{**f.to_dict(), "stage": "prescreen"} for f in findings]
    return await decide(svc, trace, "prescreen", findings, work.request_doc), findings


def _is_wav(data: bytes) -> bool:
    return data.startswith(b"RIFF") and data[8:12] == b"WAVE"


async def generate(svc: Services, trace: Trace, work: AudioWork, text: str) -> bytes:
    """Render the audio on the generator pool; a timeout, a failure or a non-WAV answer is a StageFault."""
    component = work.component

    def job() -> bytes:
        rendered = work.render(text)
        trace.request.update(audio_seconds=round(rendered.seconds, 3), sampling_rate=rendered.sampling_rate)
        return rendered.wav

    start = time.perf_counter()
    try:
        wav = await in_pool(svc.generator_pool, job, svc.settings.generation_timeout_s)
    except TimeoutError as exc:
        trace.fault(component, "generate", "timeout")
        raise StageFault("system.backend_timeout", component, f"the {work.kind} backend timed out") from exc
    except Exception as exc:
        trace.fault(component, "generate", exc)
        raise StageFault("system.backend_error", component, f"the {work.kind} backend failed") from exc
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing("generate", elapsed)
        svc.metrics.stage_seconds.labels("generate").observe(elapsed)
    if not isinstance(wav, bytes) or not _is_wav(wav):
        trace.fault(component, "generate", "not_wav")
        raise StageFault("system.backend_error", component, f"the {work.kind} backend returned no WAV")
    return wav


async def _output_context(svc: Services, trace: Trace) -> DetectionContext:
    base = await detection_context(svc, trace, "output")
    terms = [*base.resources.get("terms", []), *svc.settings.text_output_terms]
    return DetectionContext(
        request_id=base.request_id, tenant=base.tenant, stage="output", resources={**base.resources, "terms": terms}
    )


async def screen_output(svc: Services, trace: Trace, wav: bytes) -> list[Finding]:
    """Transcribe the audio (when an ASR model is configured) and run the text detectors on the transcript."""
    asr = svc.asr
    if asr is None:
        trace.request["output_screening"] = "none"  # nothing looks at the audio itself
        return []

    def job() -> str:
        text: str = asr.transcribe(wav).text
        return text

    start = time.perf_counter()
    try:
        transcript = await in_pool(svc.detector_pool, job, svc.settings.generation_timeout_s)
    except TimeoutError as exc:
        trace.fault("asr", "output", "timeout")
        raise StageFault("system.asr_timeout", "asr", "transcribing the audio timed out") from exc
    except Exception as exc:
        trace.fault("asr", "output", exc)
        raise StageFault("system.asr_error", "asr", "transcribing the audio failed") from exc
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing("asr", elapsed)
        svc.metrics.stage_seconds.labels("asr").observe(elapsed)
    if not isinstance(transcript, str):
        trace.fault("asr", "output", "bad_result")
        raise StageFault("system.asr_error", "asr", "the speech recognizer returned no text")
    digest = hashlib.sha256(transcript.encode("utf-8")).hexdigest()
    trace.request.update(
        output_screening="asr",
        asr={"name": getattr(asr, "name", "unknown"), "version": getattr(asr, "version", "unknown")},
        transcript_sha256=digest,
        transcript_chars=len(transcript),
    )
    if not transcript.strip():
        return []
    ctx = await _output_context(svc, trace)
    findings = await run_text_detectors(svc, trace, transcript, ctx)
    trace.findings += [
        {**f.to_dict(), "stage": "output", "source": "transcript", "transcript_sha256": digest} for f in findings
    ]
    return findings


def encode(wav: bytes, response_format: str) -> bytes:
    """The WAV itself, or an MP3 of it (LAME via `lameenc`; 16-bit PCM, mono or stereo)."""
    if response_format == "wav":
        return wav
    if response_format != "mp3":
        raise ValueError(f"unknown audio format {response_format!r}")
    import lameenc

    with wave.open(io.BytesIO(wav)) as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        frames = w.readframes(w.getnframes())
    if width != 2 or channels not in MP3_BITRATE_KBPS:
        raise ValueError(f"MP3 encoding needs 16-bit mono or stereo PCM, not {width * 8}-bit x{channels}")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_BITRATE_KBPS[channels])
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(2)  # 2 = high quality, 7 = fastest
    return bytes(encoder.encode(frames)) + bytes(encoder.flush())


async def _encode(svc: Services, trace: Trace, work: AudioWork, wav: bytes) -> bytes:
    start = time.perf_counter()
    try:
        data = await asyncio.to_thread(encode, wav, work.response_format)
    except Exception as exc:
        trace.fault("audio_encoder", "encode", exc)
        raise StageFault("system.encoding_error", "audio_encoder", f"encoding {work.response_format} failed") from exc
    finally:
        trace.add_timing("encode", time.perf_counter() - start)
    if not data:
        trace.fault("audio_encoder", "encode", "empty")
        raise StageFault("system.encoding_error", "audio_encoder", f"encoding {work.response_format} failed")
    return data


def _seal(
    svc: Services, trace: Trace, work: AudioWork, data: bytes, wav: bytes, decision: dict[str, Any]
) -> tuple[NewAsset, bytes]:
    """Sign and store the audio (blocking; runs in a worker thread)."""
    asset_id = "asset_" + uuid.uuid4().hex
    start = time.perf_counter()
    try:
        signed = svc.provenance.sign(
            data,
            work.mime,
            title=f"{trace.request_id}.{work.response_format}",
            decision={**decision, **work.extra_manifest},
            action="c2pa.created",
        )
    except Exception as exc:
        trace.fault("provenance", "sign", exc)
        raise StageFault("system.signing_error", "provenance", "signing the audio failed") from exc
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing("sign", elapsed)
        svc.metrics.stage_seconds.labels("sign").observe(elapsed)
    digest = hashlib.sha256(signed.data).hexdigest()
    blob = svc.blobs.put(signed.data)
    trace.assets = [
        {
            "index": 0,
            "asset_id": asset_id,
            "status": "released",
            "mime": work.mime,
            "seed": work.seed,
            "sha256": digest,
            "manifest_id": signed.manifest_id,
            "generated_sha256": hashlib.sha256(wav).hexdigest(),
        }
    ]
    asset = NewAsset(asset_id, 0, "released", work.mime, work.seed, blob, None, digest, signed.manifest_id)
    return asset, signed.data


def _hold(svc: Services, trace: Trace, work: AudioWork, data: bytes, wav: bytes) -> NewAsset:
    """Keep the unsigned audio for review (blocking); it is signed only if a reviewer approves."""
    asset_id = "asset_" + uuid.uuid4().hex
    held = svc.blobs.put(data)
    trace.assets = [
        {
            "index": 0,
            "asset_id": asset_id,
            "status": "held",
            "mime": work.mime,
            "seed": work.seed,
            "held_sha256": hashlib.sha256(data).hexdigest(),
            "generated_sha256": hashlib.sha256(wav).hexdigest(),
        }
    ]
    return NewAsset(asset_id, 0, "held", work.mime, work.seed, None, held)


# ---------------------------------------------------------------- the whole path


async def run_audio(svc: Services, trace: Trace, principal: Principal, work: AudioWork) -> AudioOutcome:
    """The governed path for one audio request; the caller has set `trace.generator` and the request notes."""
    trace.prompt_encrypted = svc.audit.seal_prompt(work.text)  # None unless prompt_storage = "encrypted"
    trace.detectors = svc.detector_versions()
    decisions: list[Decision] = []
    findings: list[Finding] = []

    async def finish(
        status: str,
        action: str,
        *,
        asset: NewAsset | None = None,
        audio: bytes | None = None,
        escalation_id: str | None = None,
    ) -> AudioOutcome:
        mamori: dict[str, Any] = {
            "request_id": trace.request_id,
            "status": status,
            "decision": action,
            "reasons": merge_reasons(decisions),
            "findings": summarize(findings),
            "manifest_ids": [asset.manifest_id] if asset and asset.manifest_id else [],
            "policy_revision": policy_revision(svc),
        }
        if escalation_id:
            mamori["escalation_id"] = escalation_id
            mamori["poll_url"] = f"/v1/requests/{trace.request_id}"
        trace.status, trace.decision, trace.escalation_id = status, action, escalation_id
        http_status = {"released": 200, "held": 202}.get(status, 503 if trace.faults else 400)
        message = None
        if status == "refused":
            codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
            message = f"Request refused by Mamori policy ({codes})."
        await asyncio.to_thread(
            svc.requests.save,
            request_id=trace.request_id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            endpoint=trace.endpoint,
            status=status,
            response_format=work.response_format,
            mamori=mamori,
            assets=[asset] if asset else [],
        )
        return AudioOutcome(
            status,
            http_status,
            mamori,
            audio,
            asset.id if asset else None,
            asset.manifest_id if asset else None,
            message,
            work.mime,
        )

    def refuse_output() -> None:
        trace.assets = [{"index": 0, "status": "refused", "mime": work.mime, "seed": work.seed}]

    # 1. prescreen the input text ---------------------------------------------
    try:
        pre, pre_findings = await prescreen(svc, trace, work)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "prescreen", fault))
        return await finish("refused", "block")
    decisions.append(pre)
    findings += pre_findings
    if pre.action == "block":
        return await finish("refused", "block")
    text = work.text
    entities = pre.to_dict()["obligations"].get("redact")
    if entities:  # a redact obligation also rides along with an escalation
        text = await asyncio.to_thread(redact_text, work.text, pre_findings, entities)
        trace.request["input_redacted_for_generation"] = True

    # 2. generate, 3. screen the output (its transcript) -------------------------
    try:
        wav = await generate(svc, trace, work, text)
        out_findings = await screen_output(svc, trace, wav)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "output", fault))
        if trace.request.get("audio_seconds") is not None:
            refuse_output()
        return await finish("refused", "block")
    findings += out_findings
    out = await decide(
        svc,
        trace,
        "output",
        out_findings,
        {**work.request_doc, "output_screening": trace.request.get("output_screening", "none")},
    )
    decisions.append(out)
    if out.action in ("block", "redact"):  # audio cannot be redacted: refuse
        if out.action == "redact":
            trace.request["output_redaction_impossible"] = True
        refuse_output()
        return await finish("refused", "block")
    held = "escalate" in (pre.action, out.action)

    # 4. encode, 5. hold for review or sign and release ---------------------------
    try:
        data = await _encode(svc, trace, work, wav)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "encode", fault))
        refuse_output()
        return await finish("refused", "block")
    if held:
        asset = await asyncio.to_thread(_hold, svc, trace, work, data, wav)
        escalating = [d for d in (pre, out) if d.action == "escalate"]
        obligations: dict[str, Any] = {}
        for d in escalating:
            obligations.update(d.to_dict()["obligations"])
        masked = await asyncio.to_thread(redact_text, work.text, pre_findings)  # every PII span, for reviewers
        escalation = await asyncio.to_thread(
            open_escalation,
            svc,
            request_id=trace.request_id,
            principal=principal,
            reasons=merge_reasons(escalating),
            obligations=obligations,
            callback_url=work.callback_url,
            prompt_masked=masked,
        )
        return await finish("held", "escalate", asset=asset, escalation_id=escalation.id)
    action = "redact" if pre.action == "redact" else "allow"
    reasons = [r.to_dict() for r in (*pre.reasons, *out.reasons)]
    manifest = manifest_decision(trace, action, reasons, summarize(findings), policy_revision(svc))
    try:
        asset, signed = await asyncio.to_thread(_seal, svc, trace, work, data, wav, manifest)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "sign", fault))
        refuse_output()
        return await finish("refused", "block")
    return await finish("released", action, asset=asset, audio=signed)
