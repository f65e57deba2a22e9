"""The governed video path (`/v1/videos`, issue 7): prescreen at create, then a job on the queue.

At create (synchronous): the prompt goes through the text detectors at stage "prescreen" and the
policy decides; a block refuses with 400 (the middleware writes the `request` record). An allowed
or escalated request becomes a `videos` row (status "queued") and a `mamori.generate_video` task.

In the job (`run_video_job`, on a consumer thread of the gateway or of `mamori worker`): generate
with the video backend, run the image detectors on sampled frames, ask the policy at stage "output"
with those findings, encode MP4, sign it with C2PA, store the blob and mark the row "completed".
Output block → "failed" with the reasons in `mamori`. Every fault fails closed: "failed", nothing
downloadable. Either way one `video.completed` / `video.failed` audit record is written; if that
write fails the blob is withheld and the row fails.

Held for review (a prescreen or output escalate): the MP4 is stored unsigned as a held asset of the
request (`gateway.state`, the same store held images use), an escalation is opened, a `video.held`
record is written, and the video stays `in_progress` with `mamori.status = "held"`,
`mamori.escalation_id` and `mamori.poll_url`. A supervisor decides through `/v1/escalations`; on
approval the review signs the MP4 (its manifest records the review) and any read of the video
(`current_row`) completes it; a rejection or expiry fails it.

The prompt travels sealed in the task's arguments (`JobQueue.seal_text`) and is never written to
the `videos` table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from detectors.base import Finding, ImageItem
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
    run_text_detectors,
    summarize,
    system_decision,
)
from gateway.policy import Decision
from gateway.queued_hold import HeldAsset, hold_for_review, review_terms
from gateway.services import Services
from gateway.trace import Trace
from gateway.video_models import VideoRow

log = get_logger("mamori.videos")

ENDPOINT = "videos.create"
READ_ENDPOINT = "videos.read"
MIME = "video/mp4"
FPS = 2  # frames = FPS × seconds + 1 (Wan's VAE needs 4k + 1 frames)
SAMPLED_FRAMES = 3
TERMINAL = ("completed", "failed")
JOB_KEY = "_job"  # in mamori_json: what the job needs from create (prescreen action, obligations); never shown


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
        findings = await run_text_detectors(svc, trace, job.prompt, ctx)
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


def get_row(svc: Any, video_id: str) -> VideoRow | None:
    with svc.sessions() as session:
        row: VideoRow | None = session.get(VideoRow, video_id)
        if row is not None:
            session.expunge(row)
        return row


def _update(svc: Any, video_id: str, **values: Any) -> None:
    with svc.sessions() as session, session.begin():
        row = session.execute(select(VideoRow).where(VideoRow.id == video_id)).scalar_one()
        for key, value in values.items():
            setattr(row, key, value)


def _update_if(svc: Any, video_id: str, only_if: str, **values: Any) -> bool:
    """Update the row only while its status is `only_if` (several processes may race); True if this call did."""
    with svc.sessions() as session, session.begin():
        stmt = update(VideoRow).where(VideoRow.id == video_id, VideoRow.status == only_if).values(**values)
        return bool(session.execute(stmt).rowcount)


def current_row(svc: Services, video_id: str) -> VideoRow | None:
    """The row, with a held video's review outcome applied (approved → completed, refused → failed).

    The review (gateway.review) resolves the held request; whichever process reads the video next
    moves the row on. Idempotent: only a row still `in_progress` and held is changed.
    """
    row = get_row(svc, video_id)
    if row is None or row.status != "in_progress":
        return row
    mamori = json.loads(row.mamori_json or "{}")
    if mamori.get("status") != "held":
        return row
    state = svc.requests.get(row.request_id)
    if state is None or state.status == "held":
        return row
    mamori.update(
        status="completed" if state.status == "released" else "failed",
        decision=state.mamori.get("decision", "block"),
        reasons=state.mamori.get("reasons", mamori.get("reasons", [])),
        manifest_ids=state.mamori.get("manifest_ids", []),
        review=state.mamori.get("review"),
    )
    values: dict[str, Any] = {"progress": 100, "completed_at": datetime.now(UTC)}
    asset = next((a for a in state.assets if a.status == "released" and a.blob), None)
    if state.status == "released" and asset is not None:
        values.update(status="completed", blob_digest=asset.blob, sha256=asset.sha256, manifest_id=asset.manifest_id)
    else:
        mamori.update(status="failed", decision="block")
        values.update(status="failed", blob_digest=None)
    values["mamori_json"] = json.dumps(mamori)
    _update_if(svc, video_id, "in_progress", **values)
    return get_row(svc, video_id)


def fail_video(ctx: Any, video_id: str, code: str, message: str) -> None:
    """Fail a queued job that cannot run (fail closed), with one `video.failed` record. Needs sessions and audit."""
    row = get_row(ctx, video_id)
    if row is None or row.status in TERMINAL:
        return
    mamori = json.loads(row.mamori_json or "{}")
    reason = {"code": code, "detector": "jobs", "message": message}
    mamori.update(status="failed", decision="fault", reasons=[*mamori.get("reasons", []), reason])
    payload = {"request_id": row.request_id, "endpoint": ENDPOINT, "video_id": video_id, "status": "failed",
               "mamori": {k: v for k, v in mamori.items() if k != JOB_KEY}}  # fmt: skip
    try:
        ctx.audit.append("video.failed", payload, request_id=row.request_id, tenant=row.tenant)
    finally:
        _update_if(ctx, video_id, row.status, status="failed", progress=100, blob_digest=None,
                   mamori_json=json.dumps(mamori), completed_at=datetime.now(UTC))  # fmt: skip


def video_object(row: VideoRow) -> dict[str, Any]:
    """OpenAI's video object (`openai.types.Video`), plus `mamori`. The prompt is never stored, so never shown."""
    mamori = json.loads(row.mamori_json or "{}")
    mamori.pop(JOB_KEY, None)
    failed = row.status == "failed"
    return {
        "id": row.id,
        "object": "video",
        "status": row.status,
        "created_at": int(row.created_at.timestamp()),
        "completed_at": int(row.completed_at.timestamp()) if row.completed_at else None,
        "expires_at": None,
        "model": row.model,
        "prompt": None,
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
            fail_video(svc, video_id, "system.job_error", "the video job failed")
        except Exception:
            log.exception("video.mark_failed_failed", video_id=video_id)


async def _run(svc: Services, video_id: str, prompt: str, principal: Principal) -> None:
    row = await asyncio.to_thread(get_row, svc, video_id)
    if row is None or not await asyncio.to_thread(
        _update_if, svc, video_id, "queued", status="in_progress", progress=10
    ):
        return  # unknown, or already taken (a retried or duplicated task): idempotent
    width, height = (int(v) for v in row.size.split("x"))
    job = VideoJob(prompt, row.model, int(row.seconds), width, height, row.seed)
    trace = Trace(request_id=row.request_id, endpoint=ENDPOINT, client=None, principal=principal)
    trace.detectors = svc.detector_versions()
    note_request(trace, job)
    prior = json.loads(row.mamori_json or "{}")
    at_create = prior.get(JOB_KEY) or {}
    decisions: list[Decision] = []
    findings: list[Finding] = []

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
    floor = "escalate" if at_create.get("action") == "escalate" else "allow"  # a prescreen escalation holds it
    overall = "block" if out.action == "block" else "escalate" if "escalate" in (out.action, floor) else out.action
    if overall == "block":
        await finish("failed", out.action)
        return
    await asyncio.to_thread(_update, svc, video_id, progress=80)

    # 3. encode, then hold for review or sign ----------------------------------
    from generators.diffusers_video import encode_mp4

    try:
        mp4 = await asyncio.to_thread(encode_mp4, frames, video.fps)
    except Exception as exc:
        trace.fault("video_encoder", "encode", exc)
        decisions.append(system_decision(svc, trace, "sign", StageFault(
            "system.signing_error", "video_encoder", "encoding the video failed")))  # fmt: skip
        await finish("failed", "fault")
        return
    if overall == "escalate":
        await _hold(svc, trace, row, video_id, job, mp4, prior, at_create, decisions, findings)
        return
    try:
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


async def _hold(
    svc: Services,
    trace: Trace,
    row: VideoRow,
    video_id: str,
    job: VideoJob,
    mp4: bytes,
    prior: dict[str, Any],
    at_create: dict[str, Any],
    decisions: list[Decision],
    findings: list[Finding],
) -> None:
    """Keep the unsigned MP4 as a held asset of the request, open the review item, write `video.held`."""
    reasons, obligations = review_terms(prior, at_create, decisions)
    mamori = mamori_object(svc, row.request_id, "held", "escalate", decisions, findings)
    mamori["reasons"] = prior.get("reasons", []) + mamori["reasons"]
    mamori.update(video_id=video_id, poll_url=f"/v1/requests/{row.request_id}")
    asset = HeldAsset("video", video_id, row.request_id, row.tenant, ENDPOINT, MIME, "url", mp4, job.seed,
                      job.prompt, "the video")  # fmt: skip
    if not await hold_for_review(svc, trace, asset, mamori, reasons, obligations, fail_video):
        return
    keep = {JOB_KEY: prior[JOB_KEY]} if JOB_KEY in prior else {}
    await asyncio.to_thread(_update, svc, video_id, progress=90, mamori_json=json.dumps({**mamori, **keep}))
