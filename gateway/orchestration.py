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
   `gateway.speech_pipeline`, `gateway.sound_pipeline`, `gateway.video_pipeline`,
   `gateway.mesh_pipeline`) with its own request id and its own `request` audit record that names
   the job and step. The signer those pipelines use is wrapped (`JobProvenance`) so each manifest
   carries a `mamori.job` assertion `{job_id, step, plan_sha256}` and names the assets of the
   steps it depends on as C2PA ingredients (an image built on an earlier image is an edit of it,
   `parentOf`; any other source is `inputTo`). A 3D step's GLB gets a sidecar manifest
   (`gateway.provenance_sidecar`) with the same assertion; its sources are declared ingredients
   and named in the assertion by SHA-256 (a sidecar cannot embed their bytes).
   Cancelling is honoured before each step.
4. held steps: an image, speech, sound or video step held for review pauses the job ("paused",
   a `job.paused` event with the escalation id). The review decision (`escalation_decided`,
   called by `gateway.review` after every decision) resumes it on approval, fails it on rejection
   or expiry. Cancelling a paused job withdraws its review item (`withdraw_held`): closed by the
   system with a reason, audited, the held request refused and its held bytes dropped.

Every fault fails closed: the job fails with a system error, and nothing unvetted is released
(each step's own pipeline already withholds what it did not vet). Job audit records (`job`)
carry digests of the instruction and of each step's prompt, never the text itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detectors.base import Finding
from gateway.job_plans import (
    DEFAULT_VOICES,
    JOB_LABEL,
    MODALITIES,
    SOUND_SECONDS,
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
    run_image_job,
    run_text_detectors,
    summarize,
    system_decision,
)
from gateway.policy import Decision
from gateway.provenance import SUPPORTED_MIMES, Ingredient, ManifestReport, Provenance, SignedAsset
from gateway.redaction import redact_text
from gateway.services import Services
from gateway.trace import Trace

log = get_logger("mamori.orchestration")

ENDPOINT = "jobs.create"
READ_ENDPOINT = "jobs.read"
STEP_ENDPOINTS = {
    "image": "images.generations",
    "speech": "audio.speech",
    "video": "videos.create",
    "3d": "meshes.create",
    "sound": "audio.generations",
}
POLICY_MODALITIES = {"sound": "audio"}  # the modality the policy sees, as for a direct request of that kind
# A prescreen escalation of these holds the step for review (the job pauses); of the others it refuses.
HOLDABLE = frozenset({"image", "speech", "sound", "video", "3d"})
MAX_VIDEO_SIDE = 1280
SYSTEM = "system"  # the actor of decisions the gateway makes itself (withdrawing a cancelled job's review item)


# ---------------------------------------------------------------------- services and limits
def jobs_store(svc: Any) -> JobStore:
    return JobStore(svc.sessions)


def available_modalities(svc: Services) -> tuple[str, ...]:
    present = {
        "image": True,
        "speech": svc.speech_generator is not None,
        "video": svc.video_generator is not None,
        "3d": svc.mesh_generator is not None,
        "sound": svc.sound_generator is not None,
    }
    return tuple(m for m in MODALITIES if present[m])


def sound_seconds(svc: Services) -> tuple[int, ...]:
    """The durations a sound step may pick: those within the gateway's and the backend's limits."""
    backend = getattr(svc.sound_generator, "max_seconds", None)
    limit = svc.settings.max_sound_seconds if backend is None else min(svc.settings.max_sound_seconds, backend)
    return tuple(s for s in SOUND_SECONDS if s <= limit)


def limits_for(svc: Services, *, max_steps: int, outline: Sequence[str] | None) -> PlanLimits:
    settings = svc.settings
    sizes = tuple(settings.job_sizes or settings.sizes)
    video_sizes = tuple(
        s for s in sizes if all(16 <= int(v) <= MAX_VIDEO_SIDE and int(v) % 16 == 0 for v in s.split("x"))
    )
    seconds = sound_seconds(svc)
    allowed = tuple(m for m in available_modalities(svc) if (m != "video" or video_sizes) and (m != "sound" or seconds))
    voices = tuple(getattr(svc.speech_generator, "voices", None) or ()) or DEFAULT_VOICES
    return PlanLimits(
        max_steps=max_steps,
        prompt_chars=settings.job_prompt_chars,
        image_sizes=sizes,
        video_sizes=video_sizes or sizes[:1],
        voices=voices,
        allowed=allowed,
        outline=tuple(outline) if outline else None,
        sound_seconds=seconds or SOUND_SECONDS[:1],
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------- the signer of a step
@dataclasses.dataclass(frozen=True)
class StepSource:
    """The released asset of an earlier step that a step builds on (an input to it)."""

    step: int
    ingredient: Ingredient  # its bytes, media type and title (`{job}-step{n}`)
    sha256: str
    manifest_id: str | None

    def reference(self) -> dict[str, Any]:
        """The source as the `mamori.job` assertion names it when its bytes cannot travel as an ingredient."""
        return {"step": self.step, "mime": self.ingredient.mime, "sha256": self.sha256, "manifest_id": self.manifest_id}


class JobProvenance(Provenance):
    """The gateway's signer, adding one job step's `mamori.job` assertion and sources to each manifest.

    It delegates everything to the wrapped signer (it does not call `Provenance.__init__`: it holds
    no key of its own). Embedded manifests (`sign`) carry the sources as C2PA ingredients, except
    those c2pa cannot read (a GLB), which the assertion names by SHA-256. Sidecar manifests
    (`gateway.provenance_sidecar`, for GLB) are built through `_manifest` with the wrapped signer's
    `_context` and `_signer`: they carry the assertion, and every source declared as an ingredient
    and named in the assertion by SHA-256 (a sidecar cannot embed an ingredient's bytes).
    """

    def __init__(self, inner: Provenance, link: JobLink) -> None:
        self._inner = inner
        self._link = link

    @property
    def trust_anchor_pem(self) -> bytes:
        return self._inner.trust_anchor_pem

    @property
    def _context(self) -> Any:  # the wrapped signer's, for sidecar manifests (gateway.provenance_sidecar)
        return self._inner._context

    @property
    def _signer(self) -> Any:
        return self._inner._signer

    @property
    def _step_sources(self) -> list[StepSource]:
        return list(self._link.sources)

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
        embeddable = [s for s in self._step_sources if s.ingredient.mime in SUPPORTED_MIMES]
        referenced = [s.reference() for s in self._step_sources if s.ingredient.mime not in SUPPORTED_MIMES]
        sources = [s.ingredient for s in embeddable]
        if action == "c2pa.created":  # a created asset has no parent: its sources were inputs to it
            sources = [dataclasses.replace(s, relationship="inputTo") for s in sources]
        given = {i.title for i in ingredients}  # an edit's parent is already its parentOf ingredient
        sources = [s for s in sources if s.title not in given]
        return self._inner.sign(
            data,
            mime,
            title=title,
            decision=decision,
            action=action,
            ingredients=(*ingredients, *sources),
            assertions={**(assertions or {}), JOB_LABEL: self._link.assertion(referenced)},
        )

    def read(self, data: bytes, mime: str) -> ManifestReport:
        return self._inner.read(data, mime)

    def _manifest(
        self, *, title: str, decision: Mapping[str, Any], action: str, ingredients: Sequence[Ingredient]
    ) -> dict[str, Any]:
        manifest = self._inner._manifest(title=title, decision=decision, action=action, ingredients=ingredients)
        sources = self._step_sources
        assertion = self._link.assertion([s.reference() for s in sources])
        manifest["assertions"].append({"label": JOB_LABEL, "data": assertion})
        if sources:
            manifest["ingredients"] = [
                {"title": s.ingredient.title, "format": s.ingredient.mime, "relationship": "inputTo"} for s in sources
            ]
        return manifest


def _sources(svc: Any, job: Job, index: int) -> list[StepSource]:
    """The released assets of the steps `index` depends on."""
    plan = Plan.model_validate(job.plan)
    by_step = {a["step"]: a for a in job.assets}
    out = []
    for d in plan.steps[index].depends_on:
        asset = by_step.get(d)
        if asset is None or not asset.get("blob"):
            raise StageFault("system.job_error", "jobs", f"step {index} depends on step {d}, which has no asset")
        data = svc.blobs.get(asset["blob"])
        ingredient = Ingredient(data, asset["mime"], f"{job.id}-step{d}", relationship="inputTo")
        digest = asset.get("sha256") or hashlib.sha256(data).hexdigest()
        out.append(StepSource(d, ingredient, digest, asset.get("manifest_id")))
    return out


def step_services(svc: Services, job: Job, index: int, sources: Sequence[StepSource] = ()) -> Services:
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
        findings = await run_text_detectors(svc, trace, text, ctx)
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
        modality = POLICY_MODALITIES.get(step.modality, step.modality)
        doc = _request_doc(job.request_id, STEP_ENDPOINTS[step.modality], modality, step.prompt,
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
    elif step.modality == "sound":
        status, entry, extra = await _sound_step(ssvc, trace, principal, step.prompt, step.params, seed)
    elif step.modality == "3d":
        status, entry, extra = await _mesh_step(ssvc, trace, principal, step.prompt, seed)
    else:
        status, entry, extra = await _video_step(ssvc, trace, principal, step.prompt, step.params, seed)
    if step.modality not in QUEUED and not await _audit_step(svc, trace):
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
        await _pause(svc, store, job.id, index, request_id, steps, extra.get("escalation_id"))
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


async def _pause(
    svc: Services, store: JobStore, job_id: str, index: int, request_id: str, steps: list[dict[str, Any]],
    escalation_id: str | None,
) -> None:  # fmt: skip
    """A step was held for review: the job pauses until the decision (`escalation_decided`)."""
    paused = await asyncio.to_thread(
        store.update, job_id, "job.paused", {"status": "paused", "step": index, "escalation_id": escalation_id},
        status="paused", steps=steps, held_request_id=request_id, expect=("running",),
    )  # fmt: skip
    if paused is None:
        return
    await asyncio.to_thread(audit_job, svc, paused, "paused", step=index, escalation_id=escalation_id)
    if paused.cancel_requested:  # cancelled while the step ran: cancel now, and withdraw its review item
        cancelled = await asyncio.to_thread(store.request_cancel, job_id)
        if cancelled is not None and cancelled.status == "cancelled":
            try:
                withdrawn = await asyncio.to_thread(withdraw_held, svc, cancelled)
            except Exception as exc:  # the job stays cancelled; a later decision on the item wakes nothing
                log.exception("job.withdraw_failed", job_id=job_id, error=type(exc).__name__)
                withdrawn = {"error": "the held step could not be withdrawn from review"}
            await asyncio.to_thread(audit_job, svc, cancelled, "cancelled", withdrawn=withdrawn)
        return
    # a decision made before the job paused found no paused job: apply it now
    state = await asyncio.to_thread(svc.requests.get, request_id)
    if state is not None and state.status != "held":
        await asyncio.to_thread(escalation_decided, svc, request_id)


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
QUEUED = frozenset({"video", "3d"})  # steps whose `request` record is written at create, as their routes do


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
    return await _audio_result(svc, await run_speech(svc, trace, principal, speech))


async def _sound_step(
    svc: Services, trace: Trace, principal: Principal, prompt: str, params: dict[str, Any], seed: int
) -> Step:
    """As `POST /v1/audio/generations` (WAV): held for review on an escalation, like speech."""
    from gateway.sound_pipeline import SoundJob, note_request, run_sound

    if svc.sound_generator is None:
        return "refused", None, {"reasons": [{"code": "system.not_enabled", "message": "sound is not enabled"}]}
    sound = SoundJob(prompt=prompt, duration_s=float(params["seconds"]), seed=seed, model="job")
    note_request(trace, sound)
    return await _audio_result(svc, await run_sound(svc, trace, principal, sound))


async def _audio_result(svc: Services, outcome: Any) -> Step:
    """A speech or sound outcome (`gateway.audio_pipeline.AudioOutcome`) as a step's result."""
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
    kind = _QueuedKind("video", vp, vp.fail_video, vp.run_video_job, _video_entry)
    return await _queued_step(svc, trace, principal, kind, video)


async def _mesh_step(svc: Services, trace: Trace, principal: Principal, prompt: str, seed: int) -> Step:
    """The create half of `POST /v1/3d` (prescreen, row, audit record), then its job body, in this task.

    The GLB is signed with a sidecar manifest through the step's job-aware signer, so the manifest
    carries the `mamori.job` assertion and the step's sources. An escalation holds the mesh for
    review, as `POST /v1/3d` does, and the job pauses on it.
    """
    from gateway import mesh_pipeline as mp

    if svc.mesh_generator is None:
        return "refused", None, {"reasons": [{"code": "system.not_enabled", "message": "3D is not enabled"}]}
    mesh = mp.MeshJob(prompt, "job", seed)
    mp.note_request(trace, mesh)
    kind = _QueuedKind("mesh", mp, mp.fail_mesh, mp.run_mesh_job, _mesh_entry)
    return await _queued_step(svc, trace, principal, kind, mesh)


@dataclasses.dataclass(frozen=True)
class _QueuedKind:
    """A modality whose direct route queues a job (video, 3D): its pipeline module and the names that differ."""

    name: str  # "video" or "mesh": the row id prefix and the step's `{name}_id`
    pipeline: Any  # gateway.video_pipeline or gateway.mesh_pipeline
    fail: Callable[..., Any]
    run: Callable[..., Any]
    entry: Callable[[Any, str], dict[str, Any] | None]


async def _queued_step(svc: Services, trace: Trace, principal: Principal, kind: _QueuedKind, job: Any) -> Step:
    """Prescreen, row, audit record, then the job body in this task; a held result pauses the job."""
    pipeline = kind.pipeline
    decision, findings = await pipeline.prescreen(svc, trace, job)
    reasons = merge_reasons([decision])
    if decision.action not in ("allow", "redact", "escalate"):  # an escalation is held after generation
        trace.status, trace.decision = "refused", "block"
        await _audit_step(svc, trace)
        return "refused", None, {"reasons": reasons}
    entities = decision.to_dict()["obligations"].get("redact")
    if entities:  # the PII is not generated: the job gets the redacted prompt
        job.prompt = await asyncio.to_thread(redact_text, job.prompt, findings, entities)
        trace.request["prompt_redacted_for_generation"] = True
    row_id = f"{kind.name}_" + uuid.uuid4().hex
    id_key = f"{kind.name}_id"
    mamori = pipeline.mamori_object(svc, trace.request_id, "queued", decision.action, [decision], findings)
    mamori[id_key] = row_id
    stored = {**mamori, pipeline.JOB_KEY: {"action": decision.action,
                                           "obligations": decision.to_dict()["obligations"]}}  # fmt: skip
    await asyncio.to_thread(pipeline.create_row, svc, row_id, trace.request_id, principal, job, stored)
    trace.status, trace.decision = "queued", decision.action
    trace.request[id_key] = row_id
    if not await _audit_step(svc, trace):
        await asyncio.to_thread(kind.fail, svc, row_id, "system.audit_error", "the audit record failed")
        return "refused", None, {"reasons": reasons}
    await asyncio.to_thread(kind.run, svc, row_id, job.prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(pipeline.current_row, svc, row_id)
    held = _held(row.mamori_json if row is not None and row.status not in pipeline.TERMINAL else None)
    if held is not None:  # held for review ({kind}.held): the job pauses on the row's request
        return "held", None, {"reasons": held.get("reasons", reasons), id_key: row_id,
                              "escalation_id": held["escalation_id"]}  # fmt: skip
    entry = kind.entry(row, row_id)
    if entry is None:
        status = row.status if row is not None else "failed"
        failed = json.loads(row.mamori_json or "{}") if row is not None else {}
        return "refused", None, {"reasons": failed.get("reasons", reasons), id_key: row_id,
                                 f"{kind.name}_status": status}  # fmt: skip
    return "released", entry, {"reasons": reasons, id_key: row_id}


def _held(mamori_json: str | None) -> dict[str, Any] | None:
    """A queued job's `mamori` when it is held for review (status "held" with an escalation id), else None."""
    mamori = json.loads(mamori_json or "{}") if mamori_json else {}
    return mamori if mamori.get("status") == "held" and mamori.get("escalation_id") else None


def _video_entry(row: Any, video_id: str) -> dict[str, Any] | None:
    from gateway.video_pipeline import MIME

    if row is None or row.status != "completed" or not row.blob_digest:
        return None
    return {
        "asset_id": video_id,
        "mime": MIME,
        "sha256": row.sha256,
        "manifest_id": row.manifest_id,
        "url": f"/v1/videos/{video_id}/content",
        "blob": row.blob_digest,
    }


def _mesh_entry(row: Any, mesh_id: str) -> dict[str, Any] | None:
    from gateway.mesh_pipeline import MIME

    if row is None or row.status != "completed" or not row.blob_digest or not row.manifest_digest:
        return None
    return {
        "asset_id": mesh_id,
        "mime": MIME,
        "sha256": row.sha256,
        "manifest_id": row.manifest_id,
        "url": f"/v1/3d/{mesh_id}/content",
        "manifest_url": f"/v1/3d/{mesh_id}/manifest",  # the sidecar C2PA manifest, bound to the GLB by hash
        "blob": row.blob_digest,
    }


# ---------------------------------------------------------------------- review decisions
def escalation_decided(ctx: Any, request_id: str) -> None:
    """A review decision on `request_id`: a paused job whose step it held goes on, or fails.

    Called by `gateway.review` after the request is resolved (approval, rejection, expiry), for every
    holdable modality: an image, speech or sound step's request, or a video step's (the video's
    own request id). Approved (the request is released): the step's asset joins the job (a video
    row is completed from the review first) and the job is queued again to run its next steps.
    Rejected or expired: the job fails with the review's reason.
    """
    sessions = getattr(ctx, "sessions", None)
    if sessions is None:
        return
    store = JobStore(sessions)
    job = store.by_held_request(request_id)
    if job is None or job.status != "paused" or job.plan is None:
        return
    step = next((s for s in job.steps if s.get("request_id") == request_id), None)
    state = ctx.requests.get(request_id)
    if step is None or state is None or state.status == "held":
        return
    index = int(step["index"])
    if state.status == "released":
        modality = Plan.model_validate(job.plan).steps[index].modality
        entry = _decided_entry(ctx, step, modality, state)
        if entry is not None:
            asset = {"step": index, "modality": modality, "request_id": request_id, **entry}
            resumed = store.update(
                job.id, "step.completed", {"step": index, "status": "released", "asset": _public(asset)},
                status="running", held_request_id=None, steps=_set_step(job, index, status="released"),
                assets=[*job.assets, asset], expect=("paused",),
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
        reasons = [{"code": "system.job_error", "message": "the approved step has no released asset"}]
        error = {"code": "step_refused", "message": f"step {index} was approved but released nothing, so the job "
                 "stopped", "step": index, "reasons": reasons}  # fmt: skip
    else:
        review = state.mamori.get("review") or {}
        reasons = [r for r in state.mamori.get("reasons", []) if str(r.get("code", "")).startswith("review.")]
        error = {
            "code": "step_rejected",
            "message": f"step {index} was {review.get('action', 'rejected')} in review, so the job stopped",
            "step": index,
            "reasons": reasons,
        }
    failed = store.update(job.id, "job.failed", {"status": "failed", "error": error}, status="failed",
                          steps=_set_step(job, index, status="refused"), error=error, held_request_id=None,
                          expect=("paused",))  # fmt: skip
    if failed is not None:
        audit_job(ctx, failed, "failed")


def _decided_entry(ctx: Any, step: dict[str, Any], modality: str, state: Any) -> dict[str, Any] | None:
    """The job's asset entry of an approved held step; None if nothing was released."""
    if modality == "video" and step.get("video_id"):
        from gateway.video_pipeline import current_row

        video_id = str(step["video_id"])
        return _video_entry(current_row(ctx, video_id), video_id)  # the review's outcome completes the row
    if modality == "3d" and step.get("mesh_id"):
        from gateway import mesh_pipeline as mp

        mesh_id = str(step["mesh_id"])
        read = getattr(mp, "current_row", mp.get_row)  # a held mesh's row is moved on by its next read
        return _mesh_entry(read(ctx, mesh_id), mesh_id)
    released = [a for a in state.assets if a.status == "released" and a.blob]
    return _asset_entry(released[0]) if released else None


WITHDRAWN_CODE = "job.cancelled"


def withdraw_held(ctx: Any, job: Job) -> dict[str, Any] | None:
    """Withdraw the open review item of a cancelled job's held step, so nobody reviews an orphan.

    The escalation is closed as rejected by the system (`decided_by: "system"`, a reason saying the
    job was cancelled), a `review` audit record with action "withdrawn" is written, the held request
    is refused, and its held bytes are dropped as after a rejection (after `rejected_retention_s`,
    or at once). A reviewer who decided first wins: then nothing is withdrawn and None is returned.
    Returns `{escalation_id, request_id}` of what was withdrawn.
    """
    from audit.escalations import EscalationNotFound, EscalationStateError

    request_id = job.held_request_id
    if not request_id:
        return None
    state = ctx.requests.get(request_id)
    step = next((s for s in job.steps if s.get("request_id") == request_id), {})
    escalation_id = step.get("escalation_id") or (state.mamori.get("escalation_id") if state is not None else None)
    if state is None or state.status != "held" or not escalation_id:
        return None
    reason = f"withdrawn: job {job.id} was cancelled by its requester"
    try:
        decided = ctx.escalations.decide(str(escalation_id), approve=False, decided_by=SYSTEM, reason=reason)
    except (EscalationStateError, EscalationNotFound):
        return None
    payload = {
        "escalation_id": decided.id,
        "request_id": request_id,
        "tenant": decided.tenant,
        "action": "withdrawn",
        "reviewer": {"key_id": SYSTEM, "role": SYSTEM},
        "reason": reason,
        "assets": [],
        "category": decided.category,
        "priority": decided.priority,
        "job_id": job.id,
    }
    try:
        ctx.audit.append("review", payload, request_id=request_id, tenant=decided.tenant)
    except Exception:  # the item is closed and nothing is released; the job's own record names it
        log.exception("job.withdraw_audit_failed", job_id=job.id, escalation_id=decided.id)
    mamori = dict(state.mamori)
    mamori.update(status="refused", decision="block", review={"action": "withdrawn", "reviewer_role": SYSTEM})
    message = "the job was cancelled, so its held step was withdrawn from review"
    mamori["reasons"] = [*mamori.get("reasons", []), {"code": WITHDRAWN_CODE, "detector": "jobs", "message": message}]
    ctx.requests.resolve(request_id, status="refused", mamori=mamori, released=None, drop_held=True)
    _drop_held(ctx, state)
    if step.get("video_id"):  # the held video's row fails with the request
        from gateway.video_pipeline import current_row

        current_row(ctx, str(step["video_id"]))
    _announce_withdrawal(ctx, decided)
    return {"escalation_id": decided.id, "request_id": request_id}


def _drop_held(ctx: Any, state: Any) -> None:
    """The held bytes go as after a rejection (`gateway.review`): after the retention, or at once."""
    from datetime import UTC, datetime, timedelta

    from gateway.jobs import queue_for
    from gateway.review import drop_blob

    retention = ctx.settings.rejected_retention_s
    queue = queue_for(ctx)
    for asset in state.assets:
        if asset.held_blob is None:
            continue
        if retention > 0 and queue is not None:
            queue.schedule_blob_delete(asset.held_blob, state.id, datetime.now(UTC) + timedelta(seconds=retention))
        else:
            drop_blob(ctx, asset.held_blob, state.id)


def _announce_withdrawal(ctx: Any, e: Any) -> None:
    """The `escalation.decided` webhook, as for a reviewer's decision (ids and state; no names, no prompt)."""
    from gateway.jobs import queue_for

    queue = queue_for(ctx)
    if queue is None:
        return
    data = {
        "escalation_id": e.id,
        "request_id": e.request_id,
        "tenant": e.tenant,
        "status": e.status,
        "priority": e.priority,
        "category": e.category,
        "approvals_required": e.approvals_required,
        "deadline_at": e.deadline_at.isoformat() if e.deadline_at else None,
        "poll_url": f"/v1/requests/{e.request_id}",
    }
    try:
        queue.notify("escalation.decided", data, callback_url=e.callback_url)
    except Exception as exc:  # the withdrawal stands; log the lost notification
        log.error("jobs.enqueue_failed", error=type(exc).__name__, escalation_id=e.id)


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
    "withdraw_held",
]
