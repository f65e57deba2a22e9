"""The governed speech path (`POST /v1/audio/speech`): prescreen → decide → synthesize → decide → sign → persist.

Built from the image path's pieces (`gateway.pipeline`): the input text goes through the text
detectors (`svc.prescreen_detectors`) at stage "prescreen" and the policy decides; the WAV is
synthesized on the generator pool with the generation timeout; the policy decides again at stage
"output"; the released WAV is signed with C2PA (embedded in the RIFF file) and stored with its
request row. Every fault fails closed (503, nothing released) and the trace becomes the one audit
record the middleware writes.

Output findings are empty for now: screening audio needs a transcript, and no ASR model is
configured yet (issue 7: "where an ASR model is configured, screen the transcript"). The output
decision still runs, so the policy can refuse by principal, tenant or request, and the record
shows that nothing looked at the audio itself (`request.output_screening = "none"`).

Speech cannot be held for review yet: a prescreen escalation refuses, like a block. A redaction
obligation is honoured by speaking the redacted text (the PII is not voiced).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from detectors.base import Finding, TextItem
from gateway.keys import Principal
from gateway.pipeline import (
    StageFault,
    decide,
    detection_context,
    in_pool,
    manifest_decision,
    merge_reasons,
    policy_revision,
    run_detector,
    summarize,
    system_decision,
)
from gateway.policy import Decision
from gateway.redaction import redact_text
from gateway.services import Services
from gateway.state import NewAsset
from gateway.trace import Trace

ENDPOINT = "audio.speech"
MIME = "audio/wav"


@dataclass
class SpeechJob:
    input: str
    voice: str
    speed: float
    seed: int
    model: str
    response_format: str = "wav"


@dataclass
class SpeechOutcome:
    status: str  # released or refused
    http_status: int
    mamori: dict[str, Any]
    audio: bytes | None = None
    asset_id: str | None = None
    manifest_id: str | None = None
    refusal_message: str | None = None


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
        output_screening="none",  # no ASR model configured: the audio itself is not screened
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


async def prescreen(svc: Services, trace: Trace, job: SpeechJob) -> tuple[Decision, list[Finding]]:
    ctx = await detection_context(svc, trace, "prescreen")
    findings: list[Finding] = []
    item = TextItem(job.input)
    for detector in svc.prescreen_detectors:
        findings += await run_detector(svc, trace, detector, [item], ctx)
    trace.findings += [{**f.to_dict(), "stage": "prescreen"} for f in findings]
    return await decide(svc, trace, "prescreen", findings, _request_doc(trace, job)), findings


async def synthesize(svc: Services, trace: Trace, job: SpeechJob, text: str) -> bytes:
    generator = svc.speech_generator
    if generator is None:  # the route checks first
        raise StageFault("system.backend_error", "speech_generator", "no speech backend is configured")

    def work() -> bytes:
        speech = generator.synthesize(text, voice=job.voice, speed=job.speed, seed=job.seed)
        trace.request.update(audio_seconds=round(speech.seconds, 3), sampling_rate=speech.sampling_rate)
        wav: bytes = speech.wav
        return wav

    start = time.perf_counter()
    try:
        wav = await in_pool(svc.generator_pool, work, svc.settings.generation_timeout_s)
    except TimeoutError as exc:
        trace.fault("speech_generator", "generate", "timeout")
        raise StageFault("system.backend_timeout", "speech_generator", "the speech backend timed out") from exc
    except Exception as exc:
        trace.fault("speech_generator", "generate", exc)
        raise StageFault("system.backend_error", "speech_generator", "the speech backend failed") from exc
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing("generate", elapsed)
        svc.metrics.stage_seconds.labels("generate").observe(elapsed)
    if not wav.startswith(b"RIFF") or wav[8:12] != b"WAVE":
        trace.fault("speech_generator", "generate", "not_wav")
        raise StageFault("system.backend_error", "speech_generator", "the speech backend returned no WAV")
    return wav


def _seal(svc: Services, trace: Trace, wav: bytes, decision: dict[str, Any], seed: int) -> tuple[NewAsset, bytes]:
    """Sign and store the WAV (blocking; runs in a worker thread)."""
    asset_id = "asset_" + uuid.uuid4().hex
    start = time.perf_counter()
    try:
        signed = svc.provenance.sign(
            wav, MIME, title=f"{trace.request_id}.wav", decision=decision, action="c2pa.created"
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
            "mime": MIME,
            "seed": seed,
            "sha256": digest,
            "manifest_id": signed.manifest_id,
            "generated_sha256": hashlib.sha256(wav).hexdigest(),
        }
    ]
    return NewAsset(asset_id, 0, "released", MIME, seed, blob, None, digest, signed.manifest_id), signed.data


def _blocks(decision: Decision) -> bool:
    """Speech cannot be held for review yet: an escalation refuses, like a block."""
    return decision.action in ("block", "escalate")


async def run_speech(svc: Services, trace: Trace, principal: Principal, job: SpeechJob) -> SpeechOutcome:
    trace.prompt_encrypted = svc.audit.seal_prompt(job.input)  # None unless prompt_storage = "encrypted"
    trace.detectors = svc.detector_versions()
    trace.generator = speech_generator_info(svc)
    decisions: list[Decision] = []
    findings: list[Finding] = []

    async def finish(
        status: str, action: str, http_status: int, *, asset: NewAsset | None = None, audio: bytes | None = None
    ) -> SpeechOutcome:
        mamori: dict[str, Any] = {
            "request_id": trace.request_id,
            "status": status,
            "decision": action,
            "reasons": merge_reasons(decisions),
            "findings": summarize(findings),
            "manifest_ids": [asset.manifest_id] if asset and asset.manifest_id else [],
            "policy_revision": policy_revision(svc),
        }
        trace.status, trace.decision = status, action
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
            response_format=job.response_format,
            mamori=mamori,
            assets=[asset] if asset else [],
        )
        return SpeechOutcome(
            status,
            http_status,
            mamori,
            audio,
            asset.id if asset else None,
            asset.manifest_id if asset else None,
            message,
        )

    # 1. prescreen the input text ---------------------------------------------
    try:
        pre, pre_findings = await prescreen(svc, trace, job)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "prescreen", fault))
        return await finish("refused", "block", 503)
    decisions.append(pre)
    findings += pre_findings
    if _blocks(pre):
        return await finish("refused", "block", 503 if trace.faults else 400)
    text = job.input
    entities = pre.to_dict()["obligations"].get("redact")
    if entities:
        text = await asyncio.to_thread(redact_text, job.input, pre_findings, entities)
        trace.request["input_redacted_for_generation"] = True

    # 2. synthesize, then the output decision (no findings: no ASR model is configured) ----
    try:
        wav = await synthesize(svc, trace, job, text)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "output", fault))
        return await finish("refused", "block", 503)
    out = await decide(svc, trace, "output", [], _request_doc(trace, job))
    decisions.append(out)
    if _blocks(out):
        trace.assets = [{"index": 0, "status": "refused", "mime": MIME, "seed": job.seed}]
        return await finish("refused", "block", 503 if trace.faults else 400)
    action = "redact" if "redact" in (pre.action, out.action) else "allow"

    # 3. sign and store ---------------------------------------------------------
    reasons = [r.to_dict() for r in (*pre.reasons, *out.reasons)]
    manifest = manifest_decision(trace, action, reasons, summarize(findings), policy_revision(svc))
    try:
        asset, signed = await asyncio.to_thread(_seal, svc, trace, wav, manifest, job.seed)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "sign", fault))
        trace.assets = [{"index": 0, "status": "refused", "mime": MIME, "seed": job.seed}]
        return await finish("refused", "block", 503)
    return await finish("released", action, 200, asset=asset, audio=signed)
