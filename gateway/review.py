"""A supervisor's decision on a held request: approve (sign and release) or reject (refuse and drop)."""

from __future__ import annotations

import hashlib
from typing import Any

from audit.escalations import Escalation, EscalationNotFound, EscalationStateError, SelfApprovalError
from gateway.errors import BadRequest, Conflict, Forbidden, GatewayFault, NotFound
from gateway.keys import Principal
from gateway.provenance import ProvenanceError
from gateway.services import Services


def visible_escalation(svc: Services, principal: Principal, escalation_id: str) -> Escalation:
    try:
        escalation = svc.escalations.get(escalation_id)
    except EscalationNotFound as exc:
        raise NotFound(f"no escalation {escalation_id}", code="escalation_not_found") from exc
    if principal.role != "admin" and escalation.tenant != principal.tenant:
        # do not reveal other tenants' items
        raise NotFound(f"no escalation {escalation_id}", code="escalation_not_found")
    return escalation


def decide_escalation(
    svc: Services, principal: Principal, escalation_id: str, *, approve: bool, reason: str
) -> dict[str, Any]:
    """Record the decision, audit it and, on approval, sign and release the held assets. Returns the audit payload."""
    reason = reason.strip()
    if not reason:
        raise BadRequest("a decision needs a reason", code="reason_required", param="reason")
    escalation = visible_escalation(svc, principal, escalation_id)
    if escalation.requester_key_id == principal.key_id:
        raise Forbidden("nobody approves or rejects their own request", code="self_review")
    if escalation.status != "pending":
        raise Conflict(f"escalation is already {escalation.status}", code="escalation_decided")
    state = svc.requests.get(escalation.request_id)
    if state is None:
        raise GatewayFault("the held request has no stored state", code="state_missing")
    if state.status != "held":
        raise Conflict(f"the request is no longer held (it is {state.status})", code="escalation_decided")

    released: dict[str, tuple[str, str, str]] = {}
    signed_blobs: dict[str, bytes] = {}
    revision = svc.policy.revision
    if approve:
        for asset in state.assets:
            if asset.status != "held" or asset.held_blob is None:
                continue
            png = svc.blobs.get(asset.held_blob)
            decision = {
                "request_id": state.id,
                "decision": "allow",
                "policy_revision": revision,
                "reasons": [r.get("code") for r in escalation.reasons],
                "review": {
                    "action": "approved",
                    "reviewer_role": principal.role,
                    "escalation_id": escalation.id,
                },
                "findings": state.mamori.get("findings", []),
            }
            try:
                signed = svc.provenance.sign(
                    png,
                    asset.mime,
                    title=f"{state.id}-{asset.position}.png",
                    decision=decision,
                    action="c2pa.edited" if state.endpoint == "images.edits" else "c2pa.created",
                )
            except ProvenanceError as exc:
                raise GatewayFault("signing the approved asset failed; it stays held", code="signing_error") from exc
            signed_blobs[asset.id] = signed.data
            released[asset.id] = ("", hashlib.sha256(signed.data).hexdigest(), signed.manifest_id)

    try:
        decided = svc.escalations.decide(escalation_id, approve=approve, decided_by=principal.key_id, reason=reason)
    except SelfApprovalError as exc:
        raise Forbidden("nobody approves or rejects their own request", code="self_review") from exc
    except EscalationStateError as exc:
        raise Conflict("escalation was decided by someone else", code="escalation_decided") from exc

    for asset_id, data in signed_blobs.items():
        blob = svc.blobs.put(data)
        _, digest, manifest_id = released[asset_id]
        released[asset_id] = (blob, digest, manifest_id)

    mamori = dict(state.mamori)
    mamori["review"] = {"action": "approved" if approve else "rejected", "reviewer_role": principal.role}
    if approve:
        has_released = bool(released) or any(a.status == "released" for a in state.assets)
        mamori["status"] = "released" if has_released else "refused"
        mamori["decision"] = "allow"
        mamori["manifest_ids"] = [
            *(a.manifest_id for a in state.assets if a.manifest_id),
            *(m for (_, _, m) in released.values()),
        ]
    else:
        mamori["status"] = "refused"
        mamori["decision"] = "block"
        mamori["reasons"] = [
            *mamori.get("reasons", []),
            {"code": "review.rejected", "detector": "review", "message": "rejected by a reviewer"},
        ]
    payload = {
        "escalation_id": decided.id,
        "request_id": state.id,
        "tenant": state.tenant,
        "action": "approved" if approve else "rejected",
        "reviewer": {"key_id": principal.key_id, "role": principal.role},
        "reason": reason,
        "assets": [
            {"asset_id": aid, "sha256": digest, "manifest_id": mid} for aid, (_, digest, mid) in released.items()
        ],
        "policy_revision": revision,
    }
    # the review record is written before anything is released: no record, no release
    svc.audit.append("review", payload, request_id=state.id, tenant=state.tenant)
    svc.requests.resolve(state.id, status=mamori["status"], mamori=mamori, released=released, drop_held=not approve)
    for asset in state.assets:
        if asset.held_blob is not None and not svc.requests.held_blob_shared(asset.held_blob, other_than=state.id):
            svc.blobs.delete(asset.held_blob)
    return payload
