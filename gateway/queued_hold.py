"""Holding a queued job's asset (a video's MP4, a mesh's GLB) for review: one way for both.

The job found an escalation at prescreen (kept from create) or at output. The unsigned asset is
stored in the blob store as the held asset of the request (`gateway.state`, as held images are), an
escalation opens with the reasons and review obligations of every escalating decision, and a
`{kind}.held` audit record is written. Any failure fails closed: the request is withdrawn
(`system.hold_error`) and the job's row fails, so nothing unvetted can be released later.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.logs import get_logger
from gateway.pipeline import merge_reasons
from gateway.policy import Decision
from gateway.review import open_escalation
from gateway.services import Services
from gateway.state import NewAsset
from gateway.trace import Trace

log = get_logger("mamori.queued_hold")


@dataclass(frozen=True)
class HeldAsset:
    """What is held, and for which row of which job kind."""

    kind: str  # "video" or "mesh": the audit event `{kind}.held`, the payload's `{kind}_id`
    row_id: str
    request_id: str
    tenant: str
    endpoint: str
    mime: str
    response_format: str
    data: bytes
    seed: int
    prompt: str  # the generation prompt (PII the policy found was redacted at create)
    label: str  # for messages: "the video", "the 3D asset"
    asset_extra: dict[str, Any] = field(default_factory=dict)  # more fields for the trace's asset entry


def review_terms(
    prior: dict[str, Any], at_create: dict[str, Any], decisions: list[Decision]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The escalation's reasons (create's, when create escalated, then the job's) and obligations."""
    escalating = [d for d in decisions if d.action == "escalate"]
    obligations: dict[str, Any] = dict(at_create.get("obligations") or {})
    for d in escalating:
        obligations.update(d.to_dict()["obligations"])
    reasons = [*(r for r in prior.get("reasons", []) if at_create.get("action") == "escalate"),
               *merge_reasons(escalating)]  # fmt: skip
    return reasons, obligations


async def hold_for_review(
    svc: Services,
    trace: Trace,
    asset: HeldAsset,
    mamori: dict[str, Any],
    reasons: list[dict[str, Any]],
    obligations: dict[str, Any],
    fail: Callable[[Services, str, str, str], Any],
) -> bool:
    """Hold `asset`; True when held (with `mamori["escalation_id"]` set), False when it failed closed."""
    principal = trace.principal
    assert principal is not None
    asset_id = "asset_" + uuid.uuid4().hex
    trace.assets = [{"index": 0, "asset_id": asset_id, "status": "held", "mime": asset.mime, "seed": asset.seed,
                     "held_sha256": hashlib.sha256(asset.data).hexdigest(), **asset.asset_extra}]  # fmt: skip
    try:
        held = await asyncio.to_thread(svc.blobs.put, asset.data)
        await asyncio.to_thread(
            svc.requests.save,
            request_id=asset.request_id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            endpoint=asset.endpoint,
            status="held",
            response_format=asset.response_format,
            mamori=mamori,
            assets=[NewAsset(asset_id, 0, "held", asset.mime, asset.seed, None, held)],
        )
        escalation = await asyncio.to_thread(
            open_escalation,
            svc,
            request_id=asset.request_id,
            principal=principal,
            reasons=reasons,
            obligations=obligations,
            prompt_masked=asset.prompt,
        )
        mamori["escalation_id"] = escalation.id
        trace.status, trace.decision, trace.escalation_id = "held", "escalate", escalation.id
        payload = {**trace.audit_payload(), f"{asset.kind}_id": asset.row_id, "mamori": mamori}
        await asyncio.to_thread(
            svc.audit.append, f"{asset.kind}.held", payload, request_id=asset.request_id, tenant=asset.tenant
        )
    except Exception as exc:  # fail closed: nothing held for release, the request withdrawn
        log.exception(f"{asset.kind}.hold_failed", row_id=asset.row_id, error=type(exc).__name__)
        try:
            await asyncio.to_thread(svc.requests.withdraw, asset.request_id, code="system.hold_error",
                                    message=f"holding {asset.label} for review failed")  # fmt: skip
        finally:
            await asyncio.to_thread(fail, svc, asset.row_id, "system.hold_error", f"holding {asset.label} failed")
        return False
    return True
