"""The governed 3D path (`/v1/3d`, issue 7): prescreen at create, then a job on the queue.

At create (synchronous): the prompt goes through the text detectors at stage "prescreen" and the
policy decides; a block refuses with 400 (the middleware writes the `request` record). An allowed
or escalated request becomes a `meshes` row (status "queued") and a `mamori.generate_mesh` task.

In the job (`run_mesh_job`, on a consumer thread): generate a GLB with the 3D backend (Shap-E),
draw it from several directions (`generators.diffusers_3d.render_views`) and run the image
detectors on those views, ask the policy at stage "output" with the findings, then sign a sidecar
C2PA manifest bound to the GLB by hash (`gateway.provenance_sidecar`: c2pa cannot embed into GLB),
store both blobs and mark the row "completed". Output block → "failed" with the reasons in
`mamori`. Every fault fails closed: "failed", nothing downloadable. Either way one `mesh.completed`
/ `mesh.failed` audit record is written with the GLB's hash and the manifest id; if that write
fails nothing is released.

Held for review (a prescreen or output escalate), as held videos are: the GLB is stored unsigned as
a held asset of the request (`gateway.state`), an escalation is opened, a `mesh.held` record is
written, and the mesh stays `in_progress` with `mamori.status = "held"`, `mamori.escalation_id` and
`mamori.poll_url`; nothing is downloadable. A supervisor decides through `/v1/escalations` (or the
review page). On approval the review (`gateway.review`) signs a sidecar manifest recording the
review and keeps it with this job (`attach_sidecar`); the next read of the mesh (`current_row`)
completes it, and `/content` and `/manifest` serve the GLB and that manifest. A rejection or expiry
fails it: nothing downloadable.

The prompt travels sealed in the task's arguments (`JobQueue.seal_text`) and is never written to
the `meshes` table.
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
from gateway.mesh_models import MeshRow
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

log = get_logger("mamori.meshes")

ENDPOINT = "meshes.create"
READ_ENDPOINT = "meshes.read"
MIME = "model/gltf-binary"
VIEWS = 4  # rendered views screened by the image detectors
VIEW_SIZE = 256
TERMINAL = ("completed", "failed")
JOB_KEY = "_job"  # in mamori_json: what the job needs from create (prescreen action, obligations); never shown


@dataclass
class MeshJob:
    prompt: str
    model: str
    seed: int
    guidance: float | None = None


def mesh_generator(svc: Services) -> Any:
    """The 3D backend of these services (built at startup by gateway.bootstrap.load_mesh_generator)."""
    if svc.mesh_generator is None:
        raise RuntimeError("no 3D generator is configured")
    return svc.mesh_generator


def _request_doc(request_id: str, job: MeshJob) -> dict[str, Any]:
    return {"id": request_id, "endpoint": ENDPOINT, "modality": "3d", "model": job.model}


def note_request(trace: Trace, job: MeshJob) -> None:
    trace.request.update(
        kind="mesh",
        model=job.model,
        seed=job.seed,
        guidance=job.guidance,
        prompt_chars=len(job.prompt),
        prompt_sha256=hashlib.sha256(job.prompt.encode("utf-8")).hexdigest(),
    )


async def prescreen(svc: Services, trace: Trace, job: MeshJob) -> tuple[Decision, list[Finding]]:
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
def create_row(svc: Services, mesh_id: str, request_id: str, principal: Principal, job: MeshJob, mamori: Any) -> None:
    with svc.sessions() as session, session.begin():
        session.add(
            MeshRow(
                id=mesh_id,
                request_id=request_id,
                tenant=principal.tenant,
                key_id=principal.key_id,
                status="queued",
                model=job.model,
                seed=job.seed,
                guidance=job.guidance,
                mamori_json=json.dumps(mamori),
                created_at=datetime.now(UTC),
            )
        )


def get_row(svc: Any, mesh_id: str) -> MeshRow | None:
    with svc.sessions() as session:
        row: MeshRow | None = session.get(MeshRow, mesh_id)
        if row is not None:
            session.expunge(row)
        return row


def _update(svc: Any, mesh_id: str, **values: Any) -> None:
    with svc.sessions() as session, session.begin():
        row = session.execute(select(MeshRow).where(MeshRow.id == mesh_id)).scalar_one()
        for key, value in values.items():
            setattr(row, key, value)


def _update_if(svc: Any, mesh_id: str, only_if: str, **values: Any) -> bool:
    """Update the row only while its status is `only_if` (several consumers may race); True if this call did."""
    with svc.sessions() as session, session.begin():
        stmt = update(MeshRow).where(MeshRow.id == mesh_id, MeshRow.status == only_if).values(**values)
        return bool(session.execute(stmt).rowcount)


def current_row(svc: Any, mesh_id: str) -> MeshRow | None:
    """The row, with a held mesh's review outcome applied (approved → completed, refused → failed).

    The review (gateway.review) resolves the held request and keeps the approved GLB's sidecar
    manifest on this row (`attach_sidecar`); whichever process reads the mesh next moves the row on.
    Idempotent: only a row still `in_progress` and held is changed.
    """
    row = get_row(svc, mesh_id)
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
    values: dict[str, Any] = {"completed_at": datetime.now(UTC)}
    asset = next((a for a in state.assets if a.status == "released" and a.blob), None)
    if state.status == "released" and asset is not None and row.manifest_digest:
        values.update(status="completed", blob_digest=asset.blob, sha256=asset.sha256, manifest_id=asset.manifest_id)
    else:
        if state.status == "released":  # approved, yet no sidecar manifest was kept: fail closed
            reason = {"code": "system.sidecar_missing", "detector": "review", "message": "the manifest is missing"}
            mamori["reasons"] = [*mamori["reasons"], reason]
        mamori.update(status="failed", decision="block")
        values.update(status="failed", blob_digest=None, manifest_digest=None)
    values["mamori_json"] = json.dumps(mamori)
    _update_if(svc, mesh_id, "in_progress", **values)
    return get_row(svc, mesh_id)


def attach_sidecar(ctx: Any, request_id: str, manifest_digest: str) -> bool:
    """Keep the sidecar manifest of a held mesh that a reviewer approves (called by `gateway.review`).

    Nothing is served from it until the request is released and the row completed (`current_row`).
    False when no held 3D job belongs to `request_id`.
    """
    with ctx.sessions() as session, session.begin():
        stmt = (
            update(MeshRow)
            .where(MeshRow.request_id == request_id, MeshRow.status == "in_progress")
            .values(manifest_digest=manifest_digest)
        )
        return bool(session.execute(stmt).rowcount)


def mesh_object(row: MeshRow) -> dict[str, Any]:
    """The 3D job object (shaped like OpenAI's video object), plus `mamori`.

    A mesh held for review stays `in_progress` with `mamori.status = "held"` (as videos do).
    """
    mamori = json.loads(row.mamori_json or "{}")
    mamori.pop(JOB_KEY, None)
    failed = row.status == "failed"
    return {
        "id": row.id,
        "object": "mesh",
        "status": row.status,
        "created_at": int(row.created_at.timestamp()),
        "completed_at": int(row.completed_at.timestamp()) if row.completed_at else None,
        "model": row.model,
        "seed": row.seed,
        "format": "glb",
        "content_url": f"/v1/3d/{row.id}/content" if row.status == "completed" else None,
        "manifest_url": f"/v1/3d/{row.id}/manifest" if row.status == "completed" else None,
        "error": {
            "code": "content_policy_violation" if mamori.get("decision") not in ("fault",) else "mamori_fault",
            "message": "the 3D asset was not released",
        }
        if failed
        else None,
        "mamori": mamori,
    }


def fail_mesh(ctx: Any, mesh_id: str, code: str, message: str) -> None:
    """Fail a job that cannot run or crashed (fail closed), with one `mesh.failed` record. Needs sessions and audit."""
    row = get_row(ctx, mesh_id)
    if row is None or row.status in TERMINAL:
        return
    mamori = json.loads(row.mamori_json or "{}")
    reason = {"code": code, "detector": "jobs", "message": message}
    mamori.update(status="failed", decision="fault", reasons=[*mamori.get("reasons", []), reason])
    payload = {"request_id": row.request_id, "endpoint": ENDPOINT, "mesh_id": mesh_id, "status": "failed",
               "mamori": {k: v for k, v in mamori.items() if k != JOB_KEY}}  # fmt: skip
    try:
        ctx.audit.append("mesh.failed", payload, request_id=row.request_id, tenant=row.tenant)
    finally:
        _update_if(ctx, mesh_id, row.status, status="failed", blob_digest=None, manifest_digest=None,
                   mamori_json=json.dumps(mamori), completed_at=datetime.now(UTC))  # fmt: skip


# ---------------------------------------------------------------------- the job
def run_mesh_job(svc: Any, mesh_id: str, prompt: str, principal: dict[str, str]) -> None:
    """The queue task's body (blocking; runs on a consumer thread)."""
    try:
        asyncio.run(_run(svc, mesh_id, prompt, Principal(**principal)))
    except Exception as exc:  # fail closed: whatever happened, nothing is downloadable
        log.exception("mesh.job_failed", mesh_id=mesh_id, error=type(exc).__name__)
        try:
            fail_mesh(svc, mesh_id, "system.job_error", "the 3D job failed")
        except Exception:
            log.exception("mesh.mark_failed_failed", mesh_id=mesh_id)


async def _run(svc: Services, mesh_id: str, prompt: str, principal: Principal) -> None:
    row = await asyncio.to_thread(get_row, svc, mesh_id)
    if row is None or not await asyncio.to_thread(_update_if, svc, mesh_id, "queued", status="in_progress"):
        return  # unknown, or already taken (a retried or duplicated task): idempotent
    job = MeshJob(prompt, row.model, row.seed, row.guidance)
    trace = Trace(request_id=row.request_id, endpoint=ENDPOINT, client=None, principal=principal)
    trace.detectors = svc.detector_versions()
    note_request(trace, job)
    prior = json.loads(row.mamori_json or "{}")
    at_create = prior.pop(JOB_KEY, None) or {}
    decisions: list[Decision] = []
    findings: list[Finding] = []

    async def finish(status: str, action: str, glb: bytes | None = None, sidecar: Any = None) -> None:
        mamori = mamori_object(svc, row.request_id, status, action, decisions, findings)
        mamori["reasons"] = prior.get("reasons", []) + mamori["reasons"]
        mamori["mesh_id"] = mesh_id
        blobs: tuple[str, str] | None = None
        if glb is not None and sidecar is not None:
            mamori["manifest_ids"] = [sidecar.manifest_id]
            blobs = (
                await asyncio.to_thread(svc.blobs.put, glb),
                await asyncio.to_thread(svc.blobs.put, sidecar.manifest),
            )
        trace.status, trace.decision = status, action
        payload = {**trace.audit_payload(), "mesh_id": mesh_id, "mamori": mamori}
        event = "mesh.completed" if status == "completed" else "mesh.failed"
        try:
            await asyncio.to_thread(svc.audit.append, event, payload, request_id=row.request_id, tenant=row.tenant)
        except Exception:  # no record, no release
            log.exception("mesh.audit_failed", mesh_id=mesh_id)
            status, blobs, mamori["status"], mamori["decision"] = "failed", None, "failed", "fault"
            mamori["manifest_ids"] = []
            mamori["reasons"] = mamori["reasons"] + [
                {"code": "system.audit_error", "source": "audit", "message": "the audit record could not be written"}
            ]
        values: dict[str, Any] = dict(status=status, mamori_json=json.dumps(mamori), completed_at=datetime.now(UTC))
        if blobs is not None:
            values.update(
                blob_digest=blobs[0],
                manifest_digest=blobs[1],
                sha256=sidecar.asset_sha256,
                manifest_id=sidecar.manifest_id,
            )
        await asyncio.to_thread(_update, svc, mesh_id, **values)

    async def fault(stage: str, code: str, source: str, message: str) -> None:
        decisions.append(system_decision(svc, trace, stage, StageFault(code, source, message)))
        await finish("failed", "fault")

    # 1. generate ---------------------------------------------------------------
    generator = mesh_generator(svc)
    trace.generator = {"name": generator.name, "version": generator.version, "kind": "mesh"}
    start = time.perf_counter()
    try:
        mesh = await in_pool(
            svc.generator_pool,
            lambda: generator.generate(prompt, seed=job.seed, guidance_scale=job.guidance),
            svc.settings.generation_timeout_s,
        )
    except Exception as exc:
        trace.fault("mesh_generator", "generate", "timeout" if isinstance(exc, TimeoutError) else exc)
        await fault("output", "system.backend_error", "mesh_generator", "the 3D backend failed")
        return
    finally:
        trace.add_timing("generate", time.perf_counter() - start)

    # 2. draw views of the GLB, screen them, then the output decision ----------
    from generators.diffusers_3d import render_views

    start = time.perf_counter()
    try:
        views = await asyncio.to_thread(render_views, mesh.glb, size=VIEW_SIZE, views=VIEWS)
    except Exception as exc:
        trace.fault("mesh_renderer", "render", exc)
        await fault("output", "system.detector_error", "mesh_renderer", "the 3D asset could not be drawn for screening")
        return
    finally:
        trace.add_timing("render_views", time.perf_counter() - start)
    items = [ImageItem(view, role="output", index=k) for k, view in enumerate(views)]
    try:
        ctx = await detection_context(svc, trace, "output")
        for detector in svc.image_detectors:
            findings += await run_detector(svc, trace, detector, items, ctx)
    except StageFault as stage_fault:
        decisions.append(system_decision(svc, trace, "output", stage_fault))
        await finish("failed", "fault")
        return
    trace.findings += [{**f.to_dict(), "stage": "output", "views": VIEWS} for f in findings]
    out = await decide(svc, trace, "output", findings, _request_doc(row.request_id, job))
    decisions.append(out)
    if out.action == "block":
        await finish("failed", out.action)
        return
    if "escalate" in (out.action, at_create.get("action")):  # a prescreen escalation holds it too
        await _hold(svc, trace, row, mesh_id, job, mesh, prior, at_create, decisions, findings)
        return

    # 3. sign a sidecar manifest bound to the GLB ----------------------------------
    from gateway.provenance_sidecar import sign_sidecar

    start = time.perf_counter()
    try:
        reasons = [r.to_dict() for r in out.reasons]
        manifest = manifest_decision(trace, out.action, reasons, summarize(findings), policy_revision(svc))
        sidecar = await asyncio.to_thread(
            sign_sidecar, svc.provenance, mesh.glb, MIME, title=f"{mesh_id}.glb", decision=manifest
        )
    except Exception as exc:
        trace.fault("provenance", "sign_sidecar", exc)
        await fault("sign", "system.signing_error", "provenance", "signing the 3D asset's manifest failed")
        return
    finally:
        trace.add_timing("sign", time.perf_counter() - start)
    trace.assets = [
        {
            "index": 0,
            "status": "released",
            "mime": MIME,
            "seed": job.seed,
            "sha256": sidecar.asset_sha256,
            "manifest_id": sidecar.manifest_id,
            "manifest_sha256": hashlib.sha256(sidecar.manifest).hexdigest(),
            "manifest_binding": "sidecar",
            "vertices": mesh.vertices,
            "faces": mesh.faces,
        }
    ]
    await finish("completed", out.action, mesh.glb, sidecar)


async def _hold(
    svc: Services,
    trace: Trace,
    row: MeshRow,
    mesh_id: str,
    job: MeshJob,
    mesh: Any,
    prior: dict[str, Any],
    at_create: dict[str, Any],
    decisions: list[Decision],
    findings: list[Finding],
) -> None:
    """Keep the unsigned GLB as a held asset of the request, open the review item, write `mesh.held`."""
    reasons, obligations = review_terms(prior, at_create, decisions)
    mamori = mamori_object(svc, row.request_id, "held", "escalate", decisions, findings)
    mamori["reasons"] = prior.get("reasons", []) + mamori["reasons"]
    mamori.update(mesh_id=mesh_id, poll_url=f"/v1/requests/{row.request_id}")
    asset = HeldAsset("mesh", mesh_id, row.request_id, row.tenant, ENDPOINT, MIME, "b64_json", mesh.glb, job.seed,
                      job.prompt, "the 3D asset", {"vertices": mesh.vertices, "faces": mesh.faces})  # fmt: skip
    if not await hold_for_review(svc, trace, asset, mamori, reasons, obligations, fail_mesh):
        return
    await asyncio.to_thread(_update, svc, mesh_id, mamori_json=json.dumps(mamori))
