"""The governed video path (`/v1/videos`, issue 7): prescreen at create, then a job on the queue.

At create (synchronous): the prompt goes through the text detectors at stage "prescreen" and the
policy decides; a block or escalate refuses with 400 (the middleware writes the `request` record).
An allowed request becomes a `videos` row (status "queued") and a `mamori.generate_video` task.

In the job (`run_video_job`, on the queue's consumer threads): generate with the video backend,
run the image detectors on sampled frames, ask the policy at stage "output" with those findings,
encode MP4, sign it with C2PA, store the blob and mark the row "completed". Output escalate or
block → "failed" with the reasons in `mamori` (videos cannot be held for review yet). Every fault
fails closed: "failed", nothing downloadable. Either way one `video.completed` / `video.failed`
audit record is written; if that write fails the blob is withheld and the row fails.

The prompt travels in the task's arguments (the queue's storage) and is never written to the
`videos` table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from detectors.base import Finding, ImageItem, TextItem
from gateway.keys import Principal
from gateway.logs import get_logger
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
from gateway.services import Services
from gateway.trace import Trace
from gateway.video_models import VideoRow

log = get_logger("mamori.videos")

ENDPOINT = "videos.create"
READ_ENDPOINT = "videos.read"
MIME = "video/mp4"
FPS = 2  # frames = FPS × seconds + 1 (Wan's VAE needs 4k + 1 frames)
SAMPLED_FRAMES = 3


@dataclass
class VideoJob:
    prompt: str
    model: str
    seconds: int
    width: int
    height: int
    seed: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def num_frames(self) -> int:
        return FPS * self.seconds + 1


def video_generator(svc: Services) -> Any:
    """The video backend of these services (built at startup by gateway.bootstrap.load_video_generator)."""
    if svc.video_generator is None:
        raise RuntimeError("no video generator is configured")
    return svc.video_generator


def _request_doc(request_id: str, job: VideoJob) -> dict[str, Any]:
    return {"id": request_id, "endpoint": ENDPOINT, "modality": "video", "size": job.size, "seconds": job.seconds}


def note_request(trace: Trace, job: VideoJob) -> None:
    trace.request.update(
        kind="video",
        model=job.model,
        size=job.size,
        seconds=job.seconds,
        seed=job.seed,
        prompt_chars=len(job.prompt),
        prompt_sha256=hashlib.sha256(job.prompt.encode("utf-8")).hexdigest(),
    )


async def prescreen(svc: Services, trace: Trace, job: VideoJob) -> tuple[Decision, list[Finding]]:
    """Text detectors on the prompt, then the policy at stage "prescreen" (a fault is a system block)."""
    trace.prompt_encrypted = svc.audit.seal_prompt(job.prompt)
    trace.detectors = svc.detector_versions()
    findings: list[Finding] = []
    try:
        ctx = await detection_context(svc, trace, "prescreen")
        for detector in svc.prescreen_detectors:
            findings += await run_detector(svc, trace, detector, [TextItem(job.prompt)], ctx)
    except StageFault as fault:
        return system_decision(svc, trace, "prescreen", fault), findings
    trace.findings += [{**f.to_dict(), "stage": "prescreen"} for f in findings]
    return await decide(svc, trace, "prescreen", findings, _request_doc(trace.request_id, job)), findings


def mamori_object(
    svc: Services, request_id: str, status: str, action: str, decisions: list[Decision], findings: list[Finding]
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "status": status,
        "decision": action,
        "reasons": merge_reasons(decisions),
        "findings": summarize(findings),
        "manifest_ids": [],
        "policy_revision": policy_revision(svc),
    }


# ---------------------------------------------------------------------- state
def create_row(svc: Services, video_id: str, request_id: str, principal: Principal, job: VideoJob, mamori: Any) -> None:
    with svc.sessions() as session, session.begin():
        session.add(
            VideoRow(
                id=video_id,
                request_id=request_id,
                tenant=principal.tenant,
                key_id=principal.key_id,
                status="queued",
                model=job.model,
                seconds=str(job.seconds),
                size=job.size,
                seed=job.seed,
                progress=0,
                mamori_json=json.dumps(mamori),
                created_at=datetime.now(UTC),
            )
        )


def get_row(svc: Services, video_id: str) -> VideoRow | None:
    with svc.sessions() as session:
        row = session.get(VideoRow, video_id)
        if row is not None:
            session.expunge(row)
        return row


def _update(svc: Services, video_id: str, **values: Any) -> None:
    with svc.sessions() as session, session.begin():
        row = session.execute(select(VideoRow).where(VideoRow.id == video_id)).scalar_one()
        for key, value in values.items():
            setattr(row, key, value)


def video_object(row: VideoRow) -> dict[str, Any]:
    """OpenAI's video object, plus `mamori`."""
    mamori = json.loads(row.mamori_json or "{}")
    failed = row.status == "failed"
    return {
        "id": row.id,
        "object": "video",
        "status": row.status,
        "created_at": int(row.created_at.timestamp()),
        "completed_at": int(row.completed_at.timestamp()) if row.completed_at else None,
        "expires_at": None,
        "model": row.model,
        "seconds": row.seconds,
        "size": row.size,
        "progress": row.progress,
        "remixed_from_video_id": None,
        "error": {
            "code": "content_policy_violation" if mamori.get("decision") != "fault" else "mamori_fault",
            "message": "the video was not released",
        }
        if failed
        else None,
        "mamori": mamori,
    }


# ---------------------------------------------------------------------- the job
def run_video_job(svc: Any, video_id: str, prompt: str, principal: dict[str, str]) -> None:
    """The queue task's body (blocking; runs on a consumer thread)."""
    try:
        asyncio.run(_run(svc, video_id, prompt, Principal(**principal)))
    except Exception as exc:  # fail closed: whatever happened, nothing is downloadable
        log.exception("video.job_failed", video_id=video_id, error=type(exc).__name__)
        try:
            _update(svc, video_id, status="failed", blob_digest=None, completed_at=datetime.now(UTC))
        except Exception:
            log.exception("video.mark_failed_failed", video_id=video_id)


async def _run(svc: Services, video_id: str, prompt: str, principal: Principal) -> None:
    row = await asyncio.to_thread(get_row, svc, video_id)
    if row is None or row.status != "queued":
        return  # already run (a retried or duplicated task): idempotent
    width, height = (int(v) for v in row.size.split("x"))
    job = VideoJob(prompt, row.model, int(row.seconds), width, height, row.seed)
    trace = Trace(request_id=row.request_id, endpoint=ENDPOINT, client=None, principal=principal)
    trace.detectors = svc.detector_versions()
    note_request(trace, job)
    prior = json.loads(row.mamori_json or "{}")
    decisions: list[Decision] = []
    findings: list[Finding] = []
    await asyncio.to_thread(_update, svc, video_id, status="in_progress", progress=10)

    async def finish(status: str, action: str, signed: Any = None, digest: str | None = None) -> None:
        mamori = mamori_object(svc, row.request_id, status, action, decisions, findings)
        mamori["reasons"] = prior.get("reasons", []) + mamori["reasons"]
        mamori["video_id"] = video_id
        blob = None
        if signed is not None:
            mamori["manifest_ids"] = [signed.manifest_id]
            blob = await asyncio.to_thread(svc.blobs.put, signed.data)
        trace.status, trace.decision = status, action
        payload = {**trace.audit_payload(), "video_id": video_id, "mamori": mamori}
        event = "video.completed" if status == "completed" else "video.failed"
        try:
            await asyncio.to_thread(svc.audit.append, event, payload, request_id=row.request_id, tenant=row.tenant)
        except Exception:  # no record, no release
            log.exception("video.audit_failed", video_id=video_id)
            status, blob, mamori["status"], mamori["decision"] = "failed", None, "failed", "fault"
            mamori["reasons"] = mamori["reasons"] + [
                {"code": "system.audit_error", "source": "audit", "message": "the audit record could not be written"}
            ]
        values: dict[str, Any] = dict(status=status, progress=100, mamori_json=json.dumps(mamori))
        values["completed_at"] = datetime.now(UTC)
        if blob is not None:
            values.update(blob_digest=blob, sha256=digest, manifest_id=signed.manifest_id)
        await asyncio.to_thread(_update, svc, video_id, **values)

    # 1. generate ---------------------------------------------------------------
    generator = video_generator(svc)
    trace.generator = {"name": generator.name, "version": generator.version, "kind": "video"}
    start = time.perf_counter()
    try:
        video = await in_pool(
            svc.generator_pool,
            lambda: generator.generate(prompt, width=width, height=height, num_frames=job.num_frames, seed=job.seed),
            svc.settings.generation_timeout_s,
        )
    except Exception as exc:
        trace.fault("video_generator", "generate", "timeout" if isinstance(exc, TimeoutError) else exc)
        backend_fault = StageFault("system.backend_error", "video_generator", "the video backend failed")
        decisions.append(system_decision(svc, trace, "output", backend_fault))
        await finish("failed", "fault")
        return
    finally:
        trace.add_timing("generate", time.perf_counter() - start)
    await asyncio.to_thread(_update, svc, video_id, progress=60)

    # 2. screen sampled frames, then the output decision ----------------------
    from PIL import Image

    frames = video.frames
    n = int(frames.shape[0])
    picks = sorted({round(i * (n - 1) / max(SAMPLED_FRAMES - 1, 1)) for i in range(SAMPLED_FRAMES)})
    items = [ImageItem(Image.fromarray(frames[i]), role="output", index=k) for k, i in enumerate(picks)]
    try:
        ctx = await detection_context(svc, trace, "output")
        for detector in svc.image_detectors:
            findings += await run_detector(svc, trace, detector, items, ctx)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "output", fault))
        await finish("failed", "fault")
        return
    trace.findings += [{**f.to_dict(), "stage": "output", "frames": picks} for f in findings]
    out = await decide(svc, trace, "output", findings, _request_doc(row.request_id, job))
    decisions.append(out)
    if out.action in ("block", "escalate"):  # videos cannot be held for review yet
        await finish("failed", out.action)
        return

    # 3. encode, sign ------------------------------------------------------------
    from generators.diffusers_video import encode_mp4

    try:
        mp4 = await asyncio.to_thread(encode_mp4, frames, video.fps)
        reasons = [r.to_dict() for r in out.reasons]
        manifest = manifest_decision(trace, out.action, reasons, summarize(findings), policy_revision(svc))
        signed = await asyncio.to_thread(
            svc.provenance.sign, mp4, MIME, title=f"{video_id}.mp4", decision=manifest, action="c2pa.created"
        )
    except Exception as exc:
        trace.fault("provenance", "encode_sign", exc)
        sign_fault = StageFault("system.signing_error", "provenance", "encoding or signing the video failed")
        decisions.append(system_decision(svc, trace, "sign", sign_fault))
        await finish("failed", "fault")
        return
    digest = hashlib.sha256(signed.data).hexdigest()
    trace.assets = [
        {
            "index": 0,
            "status": "released",
            "mime": MIME,
            "seed": job.seed,
            "sha256": digest,
            "manifest_id": signed.manifest_id,
            "generated_sha256": hashlib.sha256(mp4).hexdigest(),
            "frames": n,
        }
    ]
    await finish("completed", out.action, signed, digest)
