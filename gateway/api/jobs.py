"""Orchestrated jobs (issue 8): `POST /v1/jobs`, `GET /v1/jobs/{id}`, `GET /v1/jobs/{id}/events`, cancel.

Create prescreens the instruction synchronously (a refusal is 400 `content_policy_violation` with
`mamori`), then queues the job (`gateway.orchestration`) and answers 202 with the job object. The
job plans, screens its whole plan and runs each step through its modality's governed path; its
progress is the `job_events` log, streamed as server-sent events until a final state. Cancelling a
paused job also withdraws its held step from the review queue (`orchestration.withdraw_held`). Only
the key that created a job sees it (others get 404).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import load_json, validate_object
from gateway.api.deps import ServicesDep, access
from gateway.errors import BadRequest, GatewayFault, NotFound, PolicyRefusal
from gateway.job_plans import Modality
from gateway.job_store import FINAL, Job
from gateway.jobs import queue_for
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.orchestration import (
    ENDPOINT,
    READ_ENDPOINT,
    audit_job,
    available_modalities,
    job_object,
    jobs_store,
    mamori_object,
    new_job_id,
    new_seed,
    screen_text,
    sha256,
    withdraw_held,
)
from gateway.redaction import redact_text
from gateway.trace import Trace

log = get_logger("mamori.jobs")
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
CanCreate = Annotated[Principal, access(ENDPOINT)]
CanRead = Annotated[Principal, access(READ_ENDPOINT)]
EVENT_POLL_S = (0.1, 1.0)  # the events stream reads the log this often: fastest while it changes, then slower
KEEPALIVE_S = 15.0


class JobRequest(BaseModel):
    """A plain instruction, and optional limits on the plan. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, max_length=32000)
    max_steps: int | None = Field(default=None, ge=1, le=64)
    modalities: list[Modality] | None = Field(default=None, min_length=1, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


def _checked(svc: ServicesDep, body: JobRequest) -> tuple[int, list[str] | None]:
    settings = svc.settings
    if not body.instruction.strip():
        raise BadRequest("instruction is empty", code="invalid_request", param="instruction")
    if len(body.instruction) > settings.job_instruction_chars:
        raise BadRequest(
            f"instruction holds {len(body.instruction)} characters, over the limit of {settings.job_instruction_chars}",
            code="input_too_long",
            param="instruction",
        )
    cap = settings.job_max_steps
    max_steps = body.max_steps if body.max_steps is not None else cap
    if max_steps > cap:
        raise BadRequest(f"max_steps is at most {cap} on this gateway", code="invalid_request", param="max_steps")
    modalities = [str(m) for m in body.modalities] if body.modalities else None
    if modalities is not None:
        if len(modalities) > max_steps:
            raise BadRequest("more modalities than max_steps", code="invalid_request", param="modalities")
        missing = sorted(set(modalities) - set(available_modalities(svc)))
        if missing:
            raise BadRequest(f"not enabled on this gateway: {', '.join(missing)}", code="not_enabled",
                             param="modalities")  # fmt: skip
    return max_steps, modalities


@router.post("", summary="Create an orchestrated job: an LLM plans, every step is governed", status_code=202)
async def create_job(request: Request, svc: ServicesDep, principal: CanCreate) -> JSONResponse:
    if svc.planner is None:
        raise NotFound("orchestrated jobs are not enabled on this gateway", code="not_enabled")
    body = validate_object(JobRequest, load_json(await request.body()))
    max_steps, modalities = _checked(svc, body)
    trace: Trace = request.state.trace
    instruction = body.instruction
    trace.prompt_encrypted = svc.audit.seal_prompt(instruction)
    trace.detectors = svc.detector_versions()
    trace.request.update(kind="job", instruction_chars=len(instruction), instruction_sha256=sha256(instruction),
                         max_steps=max_steps, modalities=modalities)  # fmt: skip
    doc = {"id": trace.request_id, "endpoint": ENDPOINT, "modality": "job", "prompt_chars": len(instruction)}
    decision, findings = await screen_text(svc, trace, instruction, doc)
    if decision.action in ("block", "escalate"):  # an instruction is not held for review: refused
        mamori = mamori_object(svc, trace.request_id, "refused", [decision], findings)
        mamori["decision"] = "block"
        if trace.faults:
            raise GatewayFault("An internal check failed, so nothing was queued (fail closed).", mamori=mamori)
        codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
        raise PolicyRefusal(f"Request refused by Mamori policy ({codes}).", mamori=mamori)
    entities = decision.to_dict()["obligations"].get("redact")
    if entities:  # the PII is not planned with: the planner gets the redacted instruction
        instruction = await asyncio.to_thread(redact_text, instruction, findings, entities)
        trace.request["instruction_redacted_for_planning"] = True
    queue = queue_for(svc)
    if queue is None or not hasattr(queue, "run_job"):
        raise GatewayFault("the job queue is not running; nothing was queued", code="mamori_fault")
    job_id = new_job_id()
    options = {"modalities": modalities, "principal": {"key_id": principal.key_id, "tenant": principal.tenant,
                                                       "role": principal.role, "name": principal.name}}  # fmt: skip
    await asyncio.to_thread(
        jobs_store(svc).create, job_id=job_id, request_id=trace.request_id, tenant=principal.tenant,
        key_id=principal.key_id, max_steps=max_steps, seed=body.seed if body.seed is not None else new_seed(),
        options=options,
    )  # fmt: skip
    trace.status, trace.decision = "queued", decision.action
    trace.request["job_id"] = job_id
    sealed = queue.seal_text(job_id, instruction)
    await asyncio.to_thread(queue.run_job, job_id, sealed, options["principal"])
    job = await _owned(svc, principal, job_id)
    return JSONResponse(job_object(job), status_code=202)


async def _owned(svc: ServicesDep, principal: Principal, job_id: str) -> Job:
    job = await asyncio.to_thread(jobs_store(svc).get, job_id)
    if job is None or job.key_id != principal.key_id:
        raise NotFound(f"no job {job_id!r}", code="not_found")
    return job


@router.get("/{job_id}", summary="Retrieve a job: status, steps and assets")
async def retrieve_job(job_id: str, svc: ServicesDep, principal: CanRead) -> dict[str, Any]:
    return job_object(await _owned(svc, principal, job_id))


@router.post("/{job_id}/cancel", summary="Cancel a job: it stops before its next step; a held step is withdrawn")
async def cancel_job(job_id: str, request: Request, svc: ServicesDep, principal: CanRead) -> dict[str, Any]:
    job = await _owned(svc, principal, job_id)
    if job.final:
        return job_object(job)
    changed = await asyncio.to_thread(jobs_store(svc).request_cancel, job_id)
    job = changed or await _owned(svc, principal, job_id)
    if changed is not None and job.status == "cancelled":
        withdrawn = None
        if job.held_request_id:  # a paused job: its held step leaves the review queue with it
            try:
                withdrawn = await asyncio.to_thread(withdraw_held, svc, job)
            except Exception as exc:  # the job stays cancelled; a later decision on the item wakes nothing
                log.exception("job.withdraw_failed", job_id=job_id, error=type(exc).__name__)
                withdrawn = {"error": "the held step could not be withdrawn from review"}
        await asyncio.to_thread(audit_job, svc, job, "cancelled", by=principal.to_policy(), withdrawn=withdrawn)
    return job_object(job)


@router.get(
    "/{job_id}/events",
    summary="Progress of a job as server-sent events, read from the database; ends at a final state",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(job_id: str, request: Request, svc: ServicesDep, principal: CanRead) -> EventSourceResponse:
    await _owned(svc, principal, job_id)  # 404 before the stream starts
    last = request.headers.get("last-event-id", "")
    after = int(last) if last.isdigit() else 0
    store = jobs_store(svc)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal after
        delay, last_sent = EVENT_POLL_S[0], time.monotonic()
        while True:
            events = await asyncio.to_thread(store.events, job_id, after=after)
            for event in events:
                after = event.id
                data = {"job_id": job_id, "type": event.type, **event.data}
                yield format_sse_event(data_str=json.dumps(data), event=event.type, id=str(event.id))
                last_sent, delay = time.monotonic(), EVENT_POLL_S[0]
            if not events:
                job = await asyncio.to_thread(store.get, job_id)
                if job is None or job.status in FINAL:  # the final event was written with the status
                    for event in await asyncio.to_thread(store.events, job_id, after=after):
                        data = {"job_id": job_id, "type": event.type, **event.data}
                        yield format_sse_event(data_str=json.dumps(data), event=event.type, id=str(event.id))
                    return
                if time.monotonic() - last_sent >= KEEPALIVE_S:
                    yield KEEPALIVE_COMMENT
                    last_sent = time.monotonic()
                if await request.is_disconnected():
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, EVENT_POLL_S[1])

    return EventSourceResponse(stream(), headers={"cache-control": "no-store", "x-accel-buffering": "no"})
