"""Text to 3D: `POST /v1/3d`, `GET /v1/3d/{id}`, `GET /v1/3d/{id}/content`, `GET /v1/3d/{id}/manifest`.

Create prescreens the prompt synchronously (a refusal is 400 `content_policy_violation` with
`mamori`), then queues the generation as a job and answers the mesh object (`status: "queued"`,
shaped like OpenAI's video object). A prescreen escalation is queued too: its output is held for
review. Retrieve answers the object; content answers the GLB (`model/gltf-binary`) once the mesh
is `completed`, and manifest its sidecar C2PA manifest store (`application/c2pa`, bound to the GLB
by hash: c2pa cannot embed into GLB). Only the key that created a mesh sees it (others get 404).

Held for review: the mesh stays `in_progress` with `mamori.status = "held"`, `mamori.escalation_id`
and `mamori.poll_url`, and neither content nor manifest is served (404 `not_ready`). Approved: the
mesh completes and both are served, the manifest recording the review. Rejected or expired: the
mesh fails and nothing is ever served.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.bodies import load_json, validate_object
from gateway.api.deps import ServicesDep, access
from gateway.errors import BadRequest, GatewayFault, NotFound, PolicyRefusal
from gateway.jobs import queue_for
from gateway.keys import Principal
from gateway.mesh_pipeline import (
    ENDPOINT,
    JOB_KEY,
    MIME,
    READ_ENDPOINT,
    MeshJob,
    create_row,
    current_row,
    mamori_object,
    mesh_object,
    note_request,
    prescreen,
)
from gateway.provenance_sidecar import SIDECAR_MIME
from gateway.redaction import redact_text
from gateway.trace import Trace

router = APIRouter(prefix="/v1/3d", tags=["3d"])
CanCreate = Annotated[Principal, access(ENDPOINT)]
CanRead = Annotated[Principal, access(READ_ENDPOINT)]


class MeshRequest(BaseModel):
    """The create body. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=4000)
    model: str = Field(default="shap-e", min_length=1, max_length=200)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    guidance: float | None = Field(default=None, ge=0.0, le=100.0)


def _job(body: MeshRequest) -> MeshJob:
    if not body.prompt.strip():
        raise BadRequest("prompt is empty", code="invalid_request", param="prompt")
    if body.guidance is not None and not math.isfinite(body.guidance):
        raise BadRequest("guidance must be a finite number", code="invalid_request", param="guidance")
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    return MeshJob(body.prompt, body.model, seed, body.guidance)


@router.post("", summary="Create a 3D asset (GLB), governed; runs as a job")
async def create_mesh(request: Request, svc: ServicesDep, principal: CanCreate) -> dict[str, Any]:
    job = _job(validate_object(MeshRequest, load_json(await request.body())))
    trace: Trace = request.state.trace
    note_request(trace, job)
    decision, findings = await prescreen(svc, trace, job)
    if decision.action not in ("allow", "redact", "escalate"):
        mamori = mamori_object(svc, trace.request_id, "refused", "block", [decision], findings)
        if trace.faults:
            raise GatewayFault("An internal check failed, so nothing was queued (fail closed).", mamori=mamori)
        codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
        raise PolicyRefusal(f"Request refused by Mamori policy ({codes}).", mamori=mamori)
    entities = decision.to_dict()["obligations"].get("redact")
    if entities:  # the PII is not generated: the job gets the redacted prompt
        job.prompt = await asyncio.to_thread(redact_text, job.prompt, findings, entities)
        trace.request["prompt_redacted_for_generation"] = True
    queue = queue_for(svc)
    if queue is None:
        raise GatewayFault("the job queue is not running; nothing was queued", code="mamori_fault")
    mesh_id = "mesh_" + uuid.uuid4().hex
    mamori = mamori_object(svc, trace.request_id, "queued", decision.action, [decision], findings)
    mamori["mesh_id"] = mesh_id
    # an escalation is held after generation: the job needs the prescreen's action and review obligations
    stored = {**mamori, JOB_KEY: {"action": decision.action, "obligations": decision.to_dict()["obligations"]}}
    await asyncio.to_thread(create_row, svc, mesh_id, trace.request_id, principal, job, stored)
    trace.status, trace.decision = "queued", decision.action
    trace.request["mesh_id"] = mesh_id
    await asyncio.to_thread(queue.submit_mesh, mesh_id, job.prompt, dataclasses.asdict(principal))
    row = await asyncio.to_thread(current_row, svc, mesh_id)
    assert row is not None
    return mesh_object(row)


async def _owned(svc: ServicesDep, principal: Principal, mesh_id: str) -> Any:
    row = await asyncio.to_thread(current_row, svc, mesh_id)
    if row is None or row.key_id != principal.key_id:
        raise NotFound(f"no 3D asset {mesh_id!r}", code="not_found")
    return row


def _released(row: Any, mesh_id: str) -> None:
    if row.status != "completed" or not row.blob_digest or not row.manifest_digest:
        raise NotFound(f"3D asset {mesh_id!r} has no released content (status {row.status})", code="not_ready")


@router.get("/{mesh_id}", summary="Retrieve a 3D job")
async def retrieve_mesh(mesh_id: str, svc: ServicesDep, principal: CanRead) -> dict[str, Any]:
    return mesh_object(await _owned(svc, principal, mesh_id))


@router.get("/{mesh_id}/content", summary="Download a completed 3D asset as GLB")
async def mesh_content(mesh_id: str, svc: ServicesDep, principal: CanRead) -> Response:
    row = await _owned(svc, principal, mesh_id)
    _released(row, mesh_id)
    data = await asyncio.to_thread(svc.blobs.get, row.blob_digest)
    headers = {
        "x-mamori-manifest-id": row.manifest_id or "",
        "x-mamori-request-id": row.request_id,
        "link": f'</v1/3d/{mesh_id}/manifest>; rel="c2pa-manifest"; type="{SIDECAR_MIME}"',
    }
    return Response(content=data, media_type=MIME, headers=headers)


@router.get("/{mesh_id}/manifest", summary="Download the sidecar C2PA manifest store of a completed 3D asset")
async def mesh_manifest(mesh_id: str, svc: ServicesDep, principal: CanRead) -> Response:
    row = await _owned(svc, principal, mesh_id)
    _released(row, mesh_id)
    data = await asyncio.to_thread(svc.blobs.get, row.manifest_digest)
    headers = {"x-mamori-manifest-id": row.manifest_id or "", "x-mamori-request-id": row.request_id}
    return Response(content=data, media_type=SIDECAR_MIME, headers=headers)
