"""Orchestrated jobs (issue 8): an LLM plans, and every step runs the governed path of its modality.

At create (`POST /v1/jobs`, synchronous): the instruction goes through the text detectors at stage
"prescreen" and the policy decides (a block or escalate refuses with 400); an allowed instruction
becomes a `jobs` row (status "queued") and a `mamori.run_job` task on the Huey queue.

In the task (`run_job`, on a consumer thread):

1. planning: the planner (`generators.transformers_planner`) decodes a plan under the job's JSON
   schema (`gateway.job_plans`); a plan that fails validation fails the job ("invalid_plan").
2. screening the whole plan: every step's prompt goes through the same text detectors and the
   policy's prescreen stage, as the request of its modality would, before anything is generated.
   One block refuses the whole job ("refused", with each step's reasons); so does an escalation
   of a step whose modality cannot be held. Nothing is generated.
3. the steps, in order: each runs the pipeline of a direct request (`gateway.pipeline`,
   `gateway.speech_pipeline`, `gateway.video_pipeline`) with its own request id and its own
   `request` audit record that names the job and step. The signer those pipelines use is wrapped
   (`JobProvenance`) so each manifest carries a `mamori.job` assertion `{job_id, step,
   plan_sha256}` and names the assets of the steps it depends on as C2PA ingredients (an image
   built on an earlier image is an edit of it, `parentOf`; any other source is `inputTo`).
   Cancelling is honoured before each step. A held step pauses the job; the review decision
   (`escalation_decided`, called by `gateway.review`) resumes it on approval, fails it on
   rejection or expiry.

Every fault fails closed: the job fails with a system error, and nothing unvetted is released
(each step's own pipeline already withholds what it did not vet). Job audit records (`job`)
carry digests of the instruction and of each step's prompt, never the text itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from detectors.base import Finding, TextItem
from gateway.job_plans import (
    DEFAULT_VOICES,
    JOB_LABEL,
    MODALITIES,
    JobLink,
    Plan,
    PlanError,
    PlanLimits,
    parse_plan,
    plan_schema,
    step_view,
)
from gateway.job_store import FINAL, Job, JobStore
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.pipeline import (
    ImageJob,
    StageFault,
    decide,
    detection_context,
    in_pool,
    merge_reasons,
    policy_revision,
    run_detector,
    run_image_job,
    summarize,
    system_decision,
)
from gateway.policy import Decision
from gateway.provenance import Ingredient, ManifestReport, Provenance, SignedAsset
from gateway.services import Services
from gateway.trace import Trace

log = get_logger("mamori.orchestration")

ENDPOINT = "jobs.create"
READ_ENDPOINT = "jobs.read"
STEP_ENDPOINTS = {"image": "images.generations", "speech": "audio.speech", "video": "videos.create"}
HOLDABLE = frozenset({"image"})  # a prescreen escalation of these holds the step; of the others it refuses
MAX_VIDEO_SIDE = 1280


# ---------------------------------------------------------------------- services and limits
def jobs_store(svc: Any) -> JobStore:
    return JobStore(svc.sessions)


def available_modalities(svc: Services) -> tuple[str, ...]:
    present = {"image": True, "speech": svc.speech_generator is not None, "video": svc.video_generator is not None}
    return tuple(m for m in MODALITIES if present[m])


def limits_for(svc: Services, *, max_steps: int, outline: Sequence[str] | None) -> PlanLimits:
    settings = svc.settings
    sizes = tuple(settings.job_sizes or settings.sizes)
    video_sizes = tuple(
        s for s in sizes if all(16 <= int(v) <= MAX_VIDEO_SIDE and int(v) % 16 == 0 for v in s.split("x"))
    )
    allowed = tuple(m for m in available_modalities(svc) if m != "video" or video_sizes)
    voices = tuple(getattr(svc.speech_generator, "voices", None) or ()) or DEFAULT_VOICES
    return PlanLimits(
        max_steps=max_steps,
        prompt_chars=settings.job_prompt_chars,
        image_sizes=sizes,
        video_sizes=video_sizes or sizes[:1],
        voices=voices,
        allowed=allowed,
        outline=tuple(outline) if outline else None,
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------- the signer of a step
class JobProvenance(Provenance):
    """The gateway's signer, adding one job step's `mamori.job` assertion and sources to each manifest.

    It delegates everything to the wrapped signer (it does not call `Provenance.__init__`: it holds
    no key of its own).
    """

    def __init__(self, inner: Provenance, link: JobLink) -> None:
        self._inner = inner
        self._link = link

    @property
    def trust_anchor_pem(self) -> bytes:
        return self._inner.trust_anchor_pem

    def sign(
        self,
        data: bytes,
        mime: str,
        *,
        title: str,
        decision: Mapping[str, Any],
        action: str = "c2pa.created",
        ingredients: Sequence[Ingredient] = (),
        assertions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SignedAsset:
        sources = list(self._link.sources)
        if action == "c2pa.created":  # a created asset has no parent: its sources were inputs to it
            sources = [dataclasses.replace(s, relationship="inputTo") for s in sources]
        elif any(i.relationship == "parentOf" for i in ingredients):
            sources = [s for s in sources if s.relationship != "parentOf"]
        return self._inner.sign(
            data,
            mime,
            title=title,
            decision=decision,
            action=action,
            ingredients=(*ingredients, *sources),
            assertions={**(assertions or {}), JOB_LABEL: self._link.assertion()},
        )

    def read(self, data: bytes, mime: str) -> ManifestReport:
        return self._inner.read(data, mime)


def _sources(svc: Services, job: Job, index: int) -> list[Ingredient]:
    """The released assets of the steps `index` depends on, as C2PA ingredients (inputTo)."""
    plan = Plan.model_validate(job.plan)
    by_step = {a["step"]: a for a in job.assets}
    out = []
    for d in plan.steps[index].depends_on:
        asset = by_step.get(d)
        if asset is None or not asset.get("blob"):
            raise StageFault("system.job_error", "jobs", f"step {index} depends on step {d}, which has no asset")
        data = svc.blobs.get(asset["blob"])
        out.append(Ingredient(data, asset["mime"], f"{job.id}-step{d}", relationship="inputTo"))
    return out


def step_services(svc: Services, job: Job, index: int, sources: Sequence[Ingredient] = ()) -> Services:
    """The services one step runs with: the same stores, models and policy, and a job-aware signer."""
    assert job.plan_sha256 is not None
    link = JobLink(job.id, index, job.plan_sha256, tuple(sources))
    return dataclasses.replace(svc, provenance=JobProvenance(svc.provenance, link))


def job_provenance(svc: Services, request_id: str) -> Provenance:
    """The signer for a held request's approved assets: job-aware when the request is a paused job's step."""
    try:
        job = jobs_store(svc).by_held_request(request_id)
    except Exception:  # no jobs table (an older database): not a job step
        return svc.provenance
    if job is None or job.plan is None:
        return svc.provenance
    index = next((s["index"] for s in job.steps if s.get("request_id") == request_id), None)
    if index is None:
        return svc.provenance
    return step_services(svc, job, index, _sources(svc, job, index)).provenance


# ---------------------------------------------------------------------- prescreening text
def _request_doc(request_id: str, endpoint: str, modality: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": request_id, "endpoint": endpoint, "modality": modality, "prompt_chars": len(text), **extra}


async def screen_text(
    svc: Services, trace: Trace, text: str, request_doc: dict[str, Any]
) -> tuple[Decision, list[Finding]]:
    """Text detectors, then the policy at stage "prescreen"; a detector fault is a system block."""
    findings: list[Finding] = []
    try:
        ctx = await detection_context(svc, trace, "prescreen")
        for detector in svc.prescreen_detectors:
            findings += await run_detector(svc, trace, detector, [TextItem(text)], ctx)
    except StageFault as fault:
        return system_decision(svc, trace, "prescreen", fault), findings
    trace.findings += [{**f.to_dict(), "stage": "prescreen", **request_doc.get("job", {})} for f in findings]
    return await decide(svc, trace, "prescreen", findings, request_doc), findings


def mamori_object(
    svc: Services, request_id: str, status: str, decisions: list[Decision], findings: list[Finding]
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "status": status,
        "decision": decisions[-1].action if decisions else "block",
        "reasons": merge_reasons(decisions),
        "findings": summarize(findings),
        "policy_revision": policy_revision(svc),
    }


# ---------------------------------------------------------------------- the job object
def job_object(job: Job) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    planned = step_view(Plan.model_validate(job.plan)) if job.plan else []
    state = {s["index"]: s for s in job.steps}
    for view in planned:
        extra = {k: v for k, v in state.get(view["index"], {}).items() if k != "index"}
        steps.append({**view, "status": "pending", **extra})
    return {
        "id": job.id,
        "object": "job",
        "status": job.status,
        "created_at": int(job.created_at.timestamp()),
        "completed_at": int(job.completed_at.timestamp()) if job.completed_at else None,
        "max_steps": job.max_steps,
        "modalities": job.options.get("modalities"),
        "plan_sha256": job.plan_sha256,
        "steps": steps,
        "assets": [{k: v for k, v in a.items() if k != "blob"} for a in job.assets],
        "error": job.error,
        "request_id": job.request_id,
    }


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


def new_seed() -> int:
    return secrets.randbelow(2**31)


# ---------------------------------------------------------------------- the task
def run_job(svc: Services, job_id: str, instruction: str | None, principal: dict[str, str]) -> None:
    """The queue task's body (blocking; runs on a consumer thread). `instruction` is None on a resume."""
    try:
        asyncio.run(_run(svc, job_id, instruction, Principal(**principal)))
    except Exception as exc:  # fail closed: the job fails; every step already withheld what it did not vet
        log.exception("job.failed_unexpectedly", job_id=job_id, error=type(exc).__name__)
        fail_job(svc, job_id, "mamori_fault", "the job failed inside the gateway; nothing further was generated")


def fail_job(svc: Any, job_id: str, code: str, message: str, **extra: Any) -> None:
    store = jobs_store(svc)
    job = store.get(job_id)
    if job is None or job.final:
        return
    error = {"code": code, "message": message, **extra}
    done = store.update(
        job_id, "job.failed", {"status": "failed", "error": error}, status="failed", error=error, held_request_id=None
    )
    if done is not None:
        audit_job(svc, done, "failed")


def audit_job(svc: Services, job: Job, action: str, **extra: Any) -> None:
    """One `job` audit record: ids, status, plan digest and each step's prompt digest (never the text)."""
    steps = []
    if job.plan:
        state = {s["index"]: s for s in job.steps}
        for view in step_view(Plan.model_validate(job.plan)):
            steps.append(
                {
                    "index": view["index"],
                    "modality": view["modality"],
                    "prompt_sha256": sha256(view["prompt"]),
                    "prompt_chars": len(view["prompt"]),
                    "params": view["params"],
                    "depends_on": view["depends_on"],
                    "status": state.get(view["index"], {}).get("status", "pending"),
                    "request_id": state.get(view["index"], {}).get("request_id"),
                }
            )
    payload = {
        "job_id": job.id,
        "request_id": job.request_id,
        "action": action,
        "status": job.status,
        "plan_sha256": job.plan_sha256,
        "steps": steps,
        "assets": [{k: v for k, v in a.items() if k != "blob"} for a in job.assets],
        "error": job.error,
        **extra,
    }
    svc.audit.append("job", payload, request_id=job.request_id, tenant=job.tenant)


async def _run(svc: Services, job_id: str, instruction: str | None, principal: Principal) -> None:
    store = jobs_store(svc)
    if instruction is not None:
        planned = await _plan(svc, store, job_id, instruction, principal)
        if planned is None:
            return
    else:
        job = await asyncio.to_thread(store.update, job_id, "job.resumed", {"status": "running"}, expect=("running",))
        if job is None:
            return  # not running (cancelled or decided meanwhile): nothing to do
    await _steps(svc, store, job_id, principal)


async def _plan(svc: Services, store: JobStore, job_id: str, instruction: str, principal: Principal) -> Job | None:
    job = await asyncio.to_thread(store.update, job_id, "job.planning", {"status": "planning"}, status="planning",
                                  expect=("queued",))  # fmt: skip
    if job is None:
        return None  # already taken (a retried task) or cancelled: idempotent
    planner = svc.planner
    limits = limits_for(svc, max_steps=job.max_steps, outline=job.options.get("modalities"))
    schema = plan_schema(limits)
    try:
        if planner is None:
            raise RuntimeError("no planner is configured")
        text = await in_pool(
            svc.generator_pool,
            lambda: planner.plan(instruction, schema, max_new_tokens=svc.settings.planner_max_new_tokens),
            svc.settings.generation_timeout_s,
        )
    except Exception as exc:
        log.warning("job.planner_failed", job_id=job_id, error=type(exc).__name__)
        await asyncio.to_thread(fail_job, svc, job_id, "planner_error", "the planner failed; nothing was generated")
        return None
    try:
        plan = parse_plan(text, limits)
    except PlanError as exc:
        await asyncio.to_thread(
            fail_job, svc, job_id, "invalid_plan", f"the plan is invalid, so the job stopped: {exc}",
            planner_output_chars=len(text),
        )  # fmt: skip
        return None

    # screen the whole plan before any step generates
    trace = Trace(request_id=job.request_id, endpoint=ENDPOINT, client=None, principal=principal)
    trace.detectors = svc.detector_versions()
    refusals: list[dict[str, Any]] = []
    for i, step in enumerate(plan.steps):
        doc = _request_doc(job.request_id, STEP_ENDPOINTS[step.modality], step.modality, step.prompt,
                           job={"job_id": job_id, "step": i})  # fmt: skip
        decision, _ = await screen_text(svc, trace, step.prompt, doc)
        if decision.action == "block" or (decision.action == "escalate" and step.modality not in HOLDABLE):
            refusals += [{"step": i, **r.to_dict()} for r in decision.reasons] or [
                {"step": i, "code": "policy", "message": "refused by the policy"}
            ]
    steps = [{"index": i, "status": "pending"} for i in range(len(plan.steps))]
    data = {"status": "running", "plan_sha256": plan.sha256, "steps": len(plan.steps)}
    if refusals:
        error = {
            "code": "plan_refused",
            "message": "a step of the plan is not allowed, so the whole job was refused; nothing was generated",
            "reasons": refusals,
        }
        job = await asyncio.to_thread(
            store.update, job_id, "job.refused", {"status": "refused", "error": error}, status="refused",
            plan=plan.model_dump(mode="json"), plan_sha256=plan.sha256, steps=steps, error=error,
        )  # fmt: skip
        if job is not None:
            await asyncio.to_thread(audit_job, svc, job, "refused", screening=trace.audit_payload())
        return None
    job = await asyncio.to_thread(
        store.update, job_id, "job.planned", data, status="running", expect=("planning",),
        plan=plan.model_dump(mode="json"), plan_sha256=plan.sha256, steps=steps,
    )  # fmt: skip
    if job is None:  # cancelled while planning
        await asyncio.to_thread(_cancelled, svc, store, job_id)
        return None
    await asyncio.to_thread(audit_job, svc, job, "planned", screening=trace.audit_payload())
    return job


def _cancelled(svc: Services, store: JobStore, job_id: str) -> None:
    job = store.get(job_id)
    if job is None:
        return
    if not job.final:
        job = store.update(job_id, "job.cancelled", {"status": "cancelled"}, status="cancelled",
                           expect=("queued", "planning", "running"))  # fmt: skip
    if job is not None and job.status == "cancelled":
        audit_job(svc, job, "cancelled")


async def _steps(svc: Services, store: JobStore, job_id: str, principal: Principal) -> None:
    while True:
        job = await asyncio.to_thread(store.get, job_id)
        if job is None or job.status != "running" or job.plan is None:
            return
        if job.cancel_requested:
            await asyncio.to_thread(_cancelled, svc, store, job_id)
            return
        pending = [s["index"] for s in job.steps if s["status"] == "pending"]
        if not pending:
            done = await asyncio.to_thread(
                store.update, job_id, "job.completed", {"status": "completed", "assets": len(job.assets)},
                status="completed", expect=("running",),
            )  # fmt: skip
            if done is not None:
                await asyncio.to_thread(audit_job, svc, done, "completed")
            return
        if not await _run_step(svc, store, job, pending[0], principal):
            return


def _set_step(job: Job, index: int, **values: Any) -> list[dict[str, Any]]:
    return [{**s, **values} if s["index"] == index else s for s in job.steps]


async def _run_step(svc: Services, store: JobStore, job: Job, index: int, principal: Principal) -> bool:
    """Run one step through its modality's governed path. True: go on with the next step."""
    plan = Plan.model_validate(job.plan)
    step = plan.steps[index]
    request_id = "req_" + uuid.uuid4().hex
    started = await asyncio.to_thread(
        store.update, job.id, "step.started", {"step": index, "modality": step.modality, "request_id": request_id},
        expect=("running",), steps=_set_step(job, index, status="running", request_id=request_id),
    )  # fmt: skip
    if started is None:  # cancelled (or decided) meanwhile: no step starts
        return False
    job = started
    try:
        sources = await asyncio.to_thread(_sources, svc, job, index)
    except StageFault as fault:
        await asyncio.to_thread(fail_job, svc, job.id, "mamori_fault", fault.message)
        return False
    ssvc = step_services(svc, job, index, sources)
    trace = Trace(request_id=request_id, endpoint=STEP_ENDPOINTS[step.modality], client=None, principal=principal)
    trace.request["job"] = {"job_id": job.id, "step": index, "plan_sha256": job.plan_sha256}
    seed = (job.seed + index) % 2**32
    if step.modality == "image":
        status, entry, extra = await _image_step(ssvc, trace, principal, job, index, step.prompt, step.params, seed)
    elif step.modality == "speech":
        status, entry, extra = await _speech_step(ssvc, trace, principal, step.prompt, step.params, seed)
    else:
        status, entry, extra = await _video_step(ssvc, trace, principal, step.prompt, step.params, seed)
    if step.modality != "video" and not await _audit_step(svc, trace):
        status, entry = "refused", None
        extra = {"reasons": [{"code": "system.audit_error", "message": "the audit record could not be written"}]}
    current = await asyncio.to_thread(store.get, job.id)
    if current is None:
        return False
    steps = _set_step(current, index, status=status, request_id=request_id, **extra)
    if status == "released" and entry is not None:
        asset = {"step": index, "modality": step.modality, "request_id": request_id, **entry}
        await asyncio.to_thread(
            store.update, job.id, "step.completed", {"step": index, "status": status, "asset": _public(asset)},
            steps=steps, assets=[*current.assets, asset],
        )  # fmt: skip
        return True
    if status == "held":
        paused = await asyncio.to_thread(
            store.update, job.id, "job.paused",
            {"status": "paused", "step": index, "escalation_id": extra.get("escalation_id")},
            status="paused", steps=steps, held_request_id=request_id, expect=("running",),
        )  # fmt: skip
        if paused is not None:
            await asyncio.to_thread(audit_job, svc, paused, "paused", step=index)
        return False
    error = {
        "code": "step_refused",
        "message": f"step {index} ({step.modality}) was not released, so the job stopped",
        "step": index,
        "reasons": extra.get("reasons", []),
    }
    failed = await asyncio.to_thread(
        store.update, job.id, "job.failed", {"status": "failed", "error": error}, status="failed",
        steps=steps, error=error,
    )  # fmt: skip
    if failed is not None:
        await asyncio.to_thread(audit_job, svc, failed, "failed")
    return False


def _public(asset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in asset.items() if k != "blob"}


async def _audit_step(svc: Services, trace: Trace) -> bool:
    """The step's `request` record, as the middleware writes for a direct request; no record, no release."""
    try:
        tenant = trace.principal.tenant if trace.principal else None
        await asyncio.to_thread(svc.audit.append, "request", trace.audit_payload(), request_id=trace.request_id,
                                tenant=tenant)  # fmt: skip
        trace.audited = True
        return True
    except Exception as exc:
        log.exception("job.step_audit_failed", error=type(exc).__name__)
        try:
            await asyncio.to_thread(svc.requests.withdraw, trace.request_id, code="system.audit_error",
                                    message="the audit record could not be written")  # fmt: skip
        except Exception:
            log.exception("job.step_withdraw_failed")
        return False


Step = tuple[str, dict[str, Any] | None, dict[str, Any]]


async def _image_step(
    svc: Services, trace: Trace, principal: Principal, job: Job, index: int, prompt: str, params: dict[str, Any],
    seed: int,
) -> Step:  # fmt: skip
    from PIL import Image

    width, height = (int(v) for v in str(params["size"]).split("x"))
    plan = Plan.model_validate(job.plan)
    parents = [d for d in plan.steps[index].depends_on if plan.steps[d].modality == "image"]
    kind, source, ingredient = "generate", None, None
    if parents:  # built on an earlier image: an edit of it, and that image is the parentOf ingredient
        parent = next(a for a in job.assets if a["step"] == parents[0])
        data = await asyncio.to_thread(svc.blobs.get, parent["blob"])
        import io

        source = Image.open(io.BytesIO(data)).convert("RGB").resize((width, height))
        ingredient = Ingredient(data, parent["mime"], f"{job.id}-step{parents[0]}", relationship="parentOf")
        kind = "edit"
        trace.endpoint = "images.edits"
    image_job = ImageJob(kind=kind, prompt=prompt, n=1, width=width, height=height, seed=seed,  # type: ignore[arg-type]
                         response_format="b64_json", source=source, source_ingredient=ingredient)  # fmt: skip
    trace.request.update(kind=kind, size=f"{width}x{height}", n=1, seed=seed, prompt_chars=len(prompt),
                         prompt_sha256=sha256(prompt))  # fmt: skip
    outcome = await run_image_job(svc, trace, principal, image_job)
    extra: dict[str, Any] = {"reasons": outcome.mamori.get("reasons", [])}
    if outcome.status == "held":
        extra["escalation_id"] = outcome.mamori.get("escalation_id")
        return "held", None, extra
    if outcome.status != "released" or not outcome.images:
        return "refused", None, extra
    state = await asyncio.to_thread(svc.requests.get, trace.request_id)
    asset = next(a for a in state.assets if a.status == "released") if state else None
    if asset is None:
        return "refused", None, extra
    return "released", _asset_entry(asset), extra


def _asset_entry(asset: Any) -> dict[str, Any]:
    return {
        "asset_id": asset.id,
        "mime": asset.mime,
        "sha256": asset.sha256,
        "manifest_id": asset.manifest_id,
        "url": f"/v1/assets/{asset.id}",
        "blob": asset.blob,
    }


async def _speech_step(
    svc: Services, trace: Trace, principal: Principal, prompt: str, params: dict[str, Any], seed: int
) -> Step:
    from gateway.speech_pipeline import SpeechJob, note_request, run_speech

    if svc.speech_generator is None:
        return "refused", None, {"reasons": [{"code": "system.not_enabled", "message": "speech is not enabled"}]}
    speech = SpeechJob(input=prompt, voice=str(params["voice"]), speed=1.0, seed=seed, model="job")
    note_request(trace, speech)
    outcome = await run_speech(svc, trace, principal, speech)
    extra: dict[str, Any] = {"reasons": outcome.mamori.get("reasons", [])}
    if outcome.status == "held":
        extra["escalation_id"] = outcome.mamori.get("escalation_id")
        return "held", None, extra
    if outcome.status != "released" or outcome.asset_id is None:
        return "refused", None, extra
    asset = await asyncio.to_thread(svc.requests.get_asset, outcome.asset_id)
    if asset is None:
        return "refused", None, extra
    return "released", _asset_entry(asset), extra


async def _video_step(
    svc: Services, trace: Trace, principal: Principal, prompt: str, params: dict[str, Any], seed: int
) -> Step:
    """The create half of `POST /v1/videos` (prescreen, row, audit record), then its job body, in this task."""
    from gateway import video_pipeline as vp

    width, height = (int(v) for v in str(params["size"]).split("x"))
    video = vp.VideoJob(prompt, "job", int(params["seconds"]), width, height, seed)
    vp.note_request(trace, video)
    decision, findings = await vp.prescreen(svc, trace, video)
    reasons = merge_reasons([decision])
    if decision.action in ("block", "escalate"):
        trace.status, trace.decision = "refused", "block"
        await _audit_step(svc, trace)
        return "refused", None, {"reasons": reasons}
    video_id = "video_" + uuid.uuid4().hex
    mamori = vp.mamori_object(svc, trace.request_id, "queued", decision.action, [decision], findings)
    mamori["video_id"] = video_id
    await asyncio.to_thread(vp.create_row, svc, video_id, trace.request_id, principal, video, mamori)
    trace.status, trace.decision = "queued", decision.action
    trace.request["video_id"] = video_id
    if not await _audit_step(svc, trace):
        await asyncio.to_thread(vp.fail_video, svc, video_id, "system.audit_error", "the audit record failed")
        return "refused", None, {"reasons": reasons}
    await asyncio.to_thread(vp.run_video_job, svc, video_id, prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(vp.get_row, svc, video_id)
    if row is None or row.status != "completed" or not row.blob_digest:
        status = row.status if row is not None else "failed"
        return "refused", None, {"reasons": reasons, "video_id": video_id, "video_status": status}
    entry = {
        "asset_id": video_id,
        "mime": vp.MIME,
        "sha256": row.sha256,
        "manifest_id": row.manifest_id,
        "url": f"/v1/videos/{video_id}/content",
        "blob": row.blob_digest,
    }
    return "released", entry, {"reasons": reasons, "video_id": video_id}


# ---------------------------------------------------------------------- review decisions
def escalation_decided(ctx: Any, request_id: str) -> None:
    """A review decision on `request_id`: a paused job whose step it held goes on, or fails.

    Called by `gateway.review` after the request is resolved. Approved (the request is released):
    the step's asset joins the job and the job is queued again to run its next steps. Rejected or
    expired: the job fails with the review's reason.
    """
    sessions = getattr(ctx, "sessions", None)
    if sessions is None:
        return
    store = JobStore(sessions)
    job = store.by_held_request(request_id)
    if job is None or job.status != "paused":
        return
    index = next((s["index"] for s in job.steps if s.get("request_id") == request_id), None)
    state = ctx.requests.get(request_id)
    if index is None or state is None:
        return
    if state.status == "released":
        released = [a for a in state.assets if a.status == "released" and a.blob]
        plan = Plan.model_validate(job.plan)
        asset = {"step": index, "modality": plan.steps[index].modality, "request_id": request_id,
                 **_asset_entry(released[0])} if released else None  # fmt: skip
        steps = _set_step(job, index, status="released" if asset else "refused")
        resumed = store.update(
            job.id, "step.completed", {"step": index, "status": "released", "asset": _public(asset or {})},
            status="running", held_request_id=None, steps=steps, assets=[*job.assets, *([asset] if asset else [])],
            expect=("paused",),
        )  # fmt: skip
        if resumed is None:
            return
        from gateway.jobs import queue_for

        queue = queue_for(ctx)
        if queue is None or not hasattr(queue, "run_job"):
            fail_job(ctx, job.id, "mamori_fault", "the job queue is not running; the job cannot go on")
            return
        queue.run_job(job.id, None, dict(job.options["principal"]))
        return
    review = state.mamori.get("review") or {}
    reasons = [r for r in state.mamori.get("reasons", []) if str(r.get("code", "")).startswith("review.")]
    steps = _set_step(job, index, status="refused")
    error = {
        "code": "step_rejected",
        "message": f"step {index} was {review.get('action', 'rejected')} in review, so the job stopped",
        "step": index,
        "reasons": reasons,
    }
    failed = store.update(job.id, "job.failed", {"status": "failed", "error": error}, status="failed",
                          steps=steps, error=error, held_request_id=None, expect=("paused",))  # fmt: skip
    if failed is not None:
        audit_job(ctx, failed, "failed")


__all__ = [
    "ENDPOINT",
    "FINAL",
    "READ_ENDPOINT",
    "JobProvenance",
    "audit_job",
    "escalation_decided",
    "fail_job",
    "job_object",
    "job_provenance",
    "limits_for",
    "run_job",
    "screen_text",
]
