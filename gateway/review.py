"""The review queue's actions: open an item, claim, release, comment, reassign, approve, reject, expire.

Approve: once enough distinct reviewers approved (the policy's ``approvals``, none of them the
requester), the held assets are signed with a ``review`` section in the ``mamori.decision`` C2PA
assertion (the reviewers' role and the decision, never their names), a ``review`` audit record is
written *before* anything is released, and the request resolves to released. How an asset is
signed depends on its format:

- images, WAV/MP3 and MP4: the manifest is embedded (the released bytes differ from the held ones);
- GLB (3D): c2pa cannot embed into it, so a sidecar manifest bound to the GLB by hash is signed
  (``gateway.provenance_sidecar``); the GLB is released unchanged and the manifest store is kept
  beside it, where ``GET /v1/3d/{id}/manifest`` serves it (``gateway.mesh_pipeline.attach_sidecar``);
- text (chat): text carries no C2PA; it is released unchanged and the review record holds its hash.

Reject, or expiry: the request is refused, the held content is deleted (after
``rejected_retention_s``; not while another request still holds or has released the same bytes)
and the audit records stay. Each decision also goes out as a webhook through the job queue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import select

from audit.blobs import BlobStore
from audit.escalations import (
    AlreadyApproved,
    DuplicateSubmission,
    Escalation,
    EscalationNotFound,
    EscalationStateError,
    EscalationStore,
    LeaseExpired,
    LeaseHeld,
    Reviewer,
    SelfApprovalError,
)
from audit.store import AuditStore
from gateway.errors import BadRequest, Conflict, Forbidden, GatewayFault, MamoriError, NotFound
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.provenance import ProvenanceError
from gateway.provenance_sidecar import SIDECAR_MIMES, sign_sidecar
from gateway.services import Services
from gateway.settings import Settings
from gateway.state import RequestStore

log = get_logger("mamori.review")
T = TypeVar("T")
DECIDER_ROLES = ("supervisor", "compliance", "admin")
_SUFFIX = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "video/mp4": "mp4",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "model/gltf-binary": "glb",
    "text/plain": "txt",
}
UNSIGNED_MIMES = frozenset({"text/plain"})
"""Held formats released without C2PA (text): the review record holds their hash."""


class QueueContext(Protocol):
    """What the queue's time-driven work needs; :class:`Services` has it, and so does the worker."""

    @property
    def settings(self) -> Settings: ...
    @property
    def escalations(self) -> EscalationStore: ...
    @property
    def requests(self) -> RequestStore: ...
    @property
    def audit(self) -> AuditStore: ...
    @property
    def blobs(self) -> BlobStore: ...


@dataclass(frozen=True)
class _Sealed:
    """An approved asset ready to release: its bytes, their hash, and how its provenance travels."""

    data: bytes
    sha256: str
    manifest_id: str | None  # None: text, which carries no manifest
    sidecar: bytes | None = None  # the manifest store of a format c2pa cannot embed into (GLB)


@dataclass(frozen=True)
class ReviewOutcome:
    escalation: Escalation
    final: bool
    payload: dict[str, Any]


def reviewer_of(principal: Principal) -> Reviewer:
    return Reviewer(key_id=principal.key_id, role=principal.role, name=principal.name)


def _jobs(ctx: QueueContext) -> Any:
    from gateway.jobs import queue_for

    return queue_for(ctx)


def translate(fn: Callable[[], T]) -> T:
    """Run a store call; turn its errors into clear HTTP errors (nothing was changed)."""
    try:
        return fn()
    except EscalationNotFound as exc:
        raise NotFound("no such escalation", code="escalation_not_found") from exc
    except SelfApprovalError as exc:
        raise Forbidden("nobody approves or rejects their own request", code="self_review") from exc
    except LeaseHeld as exc:
        raise Conflict("another reviewer holds this item; wait or ask them to release it", code="claimed") from exc
    except LeaseExpired as exc:
        raise Conflict("your claim on this item ran out; claim it again", code="lease_expired") from exc
    except AlreadyApproved as exc:
        raise Conflict(
            "you already approved this item; another reviewer must approve", code="already_approved"
        ) from exc
    except DuplicateSubmission as exc:
        raise Conflict("this form was already submitted; nothing was changed", code="duplicate_submission") from exc
    except EscalationStateError as exc:
        raise Conflict(str(exc), code="escalation_decided") from exc
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_request") from exc


def visible_escalation(svc: QueueContext, principal: Principal, escalation_id: str) -> Escalation:
    try:
        escalation = svc.escalations.get(escalation_id)
    except EscalationNotFound as exc:
        raise NotFound(f"no escalation {escalation_id}", code="escalation_not_found") from exc
    if principal.role != "admin" and escalation.tenant != principal.tenant:
        # do not reveal other tenants' items
        raise NotFound(f"no escalation {escalation_id}", code="escalation_not_found")
    return escalation


def _public(e: Escalation) -> dict[str, Any]:
    """Webhook data: ids, state and timing; no names, no prompt, no URL."""
    return {
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


def _queue_audit(ctx: QueueContext, e: Escalation, action: str, actor: Reviewer, **extra: Any) -> None:
    payload = {
        "escalation_id": e.id,
        "request_id": e.request_id,
        "tenant": e.tenant,
        "action": action,
        "actor": {"key_id": actor.key_id, "role": actor.role},
        "status": e.status,
        "priority": e.priority,
        **extra,
    }
    ctx.audit.append("escalation", payload, request_id=e.request_id, tenant=e.tenant)


# ---------------------------------------------------------------------- opening an item


def open_escalation(
    svc: QueueContext,
    *,
    request_id: str,
    principal: Principal,
    reasons: list[dict[str, Any]],
    obligations: dict[str, Any],
    callback_url: str | None = None,
    prompt_masked: str | None = None,
) -> Escalation:
    """Create the queue item with its deadline and expiry; announce it and schedule its checks."""
    settings = svc.settings
    review = obligations.get("review") if isinstance(obligations.get("review"), dict) else {}
    deadline_s = review.get("deadline_s") if isinstance(review, dict) else None
    if not isinstance(deadline_s, int | float) or deadline_s <= 0:
        deadline_s = settings.review_deadline_s
    now = datetime.now(UTC)
    escalation = svc.escalations.create(
        request_id=request_id,
        tenant=principal.tenant,
        requester_key_id=principal.key_id,
        requester_name=principal.name or None,
        reasons=reasons,
        obligations=obligations,
        deadline_at=now + timedelta(seconds=float(deadline_s)),
        expires_at=now + timedelta(seconds=settings.review_expiry_s),
        callback_url=callback_url,
        prompt_masked=prompt_masked,
    )
    jobs = _jobs(svc)
    if jobs is not None:
        try:
            jobs.notify("escalation.created", _public(escalation))
            for at in (escalation.deadline_at, escalation.expires_at):
                if at is not None:
                    jobs.schedule_check(escalation.id, at)
        except Exception as exc:  # the item exists; the periodic sweep still handles its deadline
            log.error("jobs.enqueue_failed", error=type(exc).__name__, escalation_id=escalation.id)
    return escalation


# ---------------------------------------------------------------------- claims, comments, reassignment


def claim(
    svc: QueueContext,
    principal: Principal,
    escalation_id: str,
    *,
    lease_id: str | None = None,
    nonce: str | None = None,
) -> Escalation:
    visible_escalation(svc, principal, escalation_id)
    who = reviewer_of(principal)
    e = translate(
        lambda: svc.escalations.claim(
            escalation_id, who, lease_s=svc.settings.review_lease_s, lease_id=lease_id, nonce=nonce
        )
    )
    _queue_audit(svc, e, "renew" if lease_id else "claim", who)
    jobs = _jobs(svc)
    if jobs is not None and e.lease_expires_at is not None:
        jobs.schedule_check(e.id, e.lease_expires_at + timedelta(seconds=1))
    return e


def release(
    svc: QueueContext,
    principal: Principal,
    escalation_id: str,
    *,
    lease_id: str | None = None,
    nonce: str | None = None,
) -> Escalation:
    visible_escalation(svc, principal, escalation_id)
    who = reviewer_of(principal)
    e = translate(lambda: svc.escalations.release(escalation_id, who, lease_id=lease_id, nonce=nonce))
    _queue_audit(svc, e, "release", who)
    return e


def comment(
    svc: QueueContext, principal: Principal, escalation_id: str, text: str, *, nonce: str | None = None
) -> Escalation:
    visible_escalation(svc, principal, escalation_id)
    who = reviewer_of(principal)
    e = translate(lambda: svc.escalations.comment(escalation_id, who, text, nonce=nonce))
    _queue_audit(svc, e, "comment", who)  # the text stays in the queue, not in the audit chain
    return e


def reassign(
    svc: Services,
    principal: Principal,
    escalation_id: str,
    to_key_id: str,
    *,
    reason: str = "",
    nonce: str | None = None,
) -> Escalation:
    escalation = visible_escalation(svc, principal, escalation_id)
    target = svc.keys.get(to_key_id)
    if target is None or not target.active or target.tenant != escalation.tenant or target.role not in DECIDER_ROLES:
        raise BadRequest(
            "reassign to an active supervisor key of the item's tenant", code="invalid_assignee", param="to"
        )
    who = reviewer_of(principal)
    to = Reviewer(key_id=target.id, role=target.role, name=target.name)
    e = translate(
        lambda: svc.escalations.reassign(
            escalation_id, who, to, lease_s=svc.settings.review_lease_s, reason=reason, nonce=nonce
        )
    )
    _queue_audit(svc, e, "reassign", who, to={"key_id": to.key_id, "role": to.role})
    return e


# ---------------------------------------------------------------------- decisions


def _release_verdict(
    svc: Services, principal: Principal, escalation: Escalation, findings: list[Any], approvers: list[Reviewer]
) -> int | None:
    """Ask the policy's release stage (gateway.release) about these approvals.

    Returns None when the policy would release now, else the number of approvals it asks for.
    A ``block`` (the floor) is a 403 and a policy failure a 503: either way nothing changes.
    """
    from gateway.policy import PolicyError
    from gateway.release import release_decision

    review = escalation.obligations.get("review")
    request_doc = {
        "id": escalation.request_id,
        "endpoint": "escalations.decide",
        "review": {
            **(review if isinstance(review, dict) else {}),
            "category": escalation.category,
            "approvals": escalation.approvals_required,
        },
        "findings": findings,
    }
    docs = [{"key_id": a.key_id, "role": a.role} for a in approvers]
    try:
        decision = release_decision(svc.policy, principal.to_policy(), request_doc, docs, escalation.requester_key_id)
    except PolicyError as exc:
        raise GatewayFault("the release policy failed; the asset stays held", code="policy_error") from exc
    if decision.action == "allow":
        return None
    if decision.action == "escalate":
        needed = decision.obligations.get("review", {}).get("approvals") if decision.obligations else None
        return int(needed) if isinstance(needed, int) else escalation.approvals_required + 1
    codes = ", ".join(r.code for r in decision.reasons) or decision.action
    raise Forbidden(f"the release policy refuses to release this asset ({codes})", code="release_denied")


def _approvers(escalation: Escalation) -> list[Reviewer]:
    return [Reviewer(e.actor_key_id or "", e.actor_role or "", e.actor_name or "") for e in escalation.approvals]


def decide_escalation(
    svc: Services,
    principal: Principal,
    escalation_id: str,
    *,
    approve: bool,
    reason: str,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Record one reviewer's decision; on the last approval sign and release. Returns the audit payload."""
    reason = reason.strip()
    if not reason:
        raise BadRequest("a decision needs a reason", code="reason_required", param="reason")
    escalation = visible_escalation(svc, principal, escalation_id)
    who = reviewer_of(principal)
    if escalation.requester_key_id == principal.key_id:
        raise Forbidden("nobody approves or rejects their own request", code="self_review")
    if not escalation.is_open:
        raise Conflict(f"escalation is already {escalation.status}", code="escalation_decided")
    state = svc.requests.get(escalation.request_id)
    if state is None:
        raise GatewayFault("the held request has no stored state", code="state_missing")
    if state.status != "held":
        raise Conflict(f"the request is no longer held (it is {state.status})", code="escalation_decided")
    if not approve:
        decided = translate(lambda: svc.escalations.reject(escalation_id, who, reason=reason, nonce=nonce))
        return _finish_refusal(svc, decided, who, reason=reason, action="rejected")

    approvers = _approvers(escalation)
    if who.identity in {a.identity for a in approvers} or who.key_id in {a.key_id for a in approvers}:
        raise Conflict("you already approved this item; another reviewer must approve", code="already_approved")
    all_approvers = [*approvers, who]
    required = _release_verdict(svc, principal, escalation, list(state.mamori.get("findings", [])), all_approvers)
    need = max(escalation.approvals_required, required or 0)
    # the policy counts keys; the queue also counts people (two keys of one named reviewer count once)
    final = required is None and len({a.identity for a in all_approvers}) >= need
    if not final:
        decided, _ = translate(
            lambda: svc.escalations.approve(
                escalation_id, who, reason=reason, expect_final=False, required=required, nonce=nonce
            )
        )
        payload = _review_payload(decided, state.id, who, "approval_recorded", reason, svc.policy.revision)
        payload["approvals"] = {"given": len(decided.approvals), "required": decided.approvals_required}
        svc.audit.append("review", payload, request_id=state.id, tenant=state.tenant)
        return payload

    review: dict[str, Any] = {"action": "approved", "reviewer_role": principal.role, "escalation_id": escalation.id}
    if len(all_approvers) > 1:
        review["approvals"] = len(all_approvers)
        review["reviewer_roles"] = [a.role for a in all_approvers]
    sealed: dict[str, _Sealed] = {}
    mimes: dict[str, str] = {}
    sidecar_digests: dict[str, str] = {}
    revision = svc.policy.revision
    for asset in state.assets:
        if asset.status != "held" or asset.held_blob is None:
            continue
        data = svc.blobs.get(asset.held_blob)
        decision = {
            "request_id": state.id,
            "decision": "allow",
            "policy_revision": revision,
            "reasons": [r.get("code") for r in escalation.reasons],
            "review": review,
            "findings": state.mamori.get("findings", []),
        }
        try:
            sealed[asset.id] = _seal(
                svc,
                state.id,
                data,
                asset.mime,
                title=f"{state.id}-{asset.position}.{_SUFFIX.get(asset.mime, 'png')}",  # held videos too (issue 7)
                decision=decision,
                action="c2pa.edited" if state.endpoint == "images.edits" else "c2pa.created",
            )
        except ProvenanceError as exc:
            raise GatewayFault("signing the approved asset failed; it stays held", code="signing_error") from exc
        mimes[asset.id] = asset.mime
        sidecar = sealed[asset.id].sidecar
        if sidecar is not None:
            # kept beside the asset before the decision is final (nothing is served until the request is
            # released): no sidecar stored, no approval
            sidecar_digests[asset.id] = svc.blobs.put(sidecar)
            _attach_sidecar(svc, state.id, sidecar_digests[asset.id])

    decided, _ = translate(
        lambda: svc.escalations.approve(escalation_id, who, reason=reason, expect_final=True, nonce=nonce)
    )
    released: dict[str, tuple[str, str, str]] = {}
    for asset_id, item in sealed.items():
        released[asset_id] = (svc.blobs.put(item.data), item.sha256, item.manifest_id or "")

    mamori = dict(state.mamori)
    mamori["review"] = {"action": "approved", "reviewer_role": principal.role}
    has_released = bool(released) or any(a.status == "released" for a in state.assets)
    mamori["status"] = "released" if has_released else "refused"
    mamori["decision"] = "allow"
    mamori["manifest_ids"] = [
        *(a.manifest_id for a in state.assets if a.manifest_id),
        *(item.manifest_id for item in sealed.values() if item.manifest_id),
    ]
    payload = _review_payload(decided, state.id, who, "approved", reason, revision)
    payload["assets"] = [_asset_entry(aid, item, mimes[aid], sidecar_digests.get(aid)) for aid, item in sealed.items()]
    payload["approvals"] = {"given": len(decided.approvals), "required": decided.approvals_required}
    # the review record is written before anything is released: no record, no release
    svc.audit.append("review", payload, request_id=state.id, tenant=state.tenant)
    svc.requests.resolve(state.id, status=mamori["status"], mamori=mamori, released=released, drop_held=False)
    for asset in state.assets:
        if asset.held_blob is not None:  # text and GLB are released as held: their blob stays in use
            drop_blob(svc, asset.held_blob, state.id)
    _announce_decision(svc, decided)
    return payload


def _seal(
    svc: Services,
    request_id: str,
    data: bytes,
    mime: str,
    *,
    title: str,
    decision: dict[str, Any],
    action: str,
) -> _Sealed:
    """Sign one approved asset the way its format allows (embedded, sidecar, or not at all for text)."""
    if mime in UNSIGNED_MIMES:
        return _Sealed(data, hashlib.sha256(data).hexdigest(), None)
    from gateway.orchestration import job_provenance  # issue 8: a job step's asset names its job

    provenance = job_provenance(svc, request_id)
    if mime in SIDECAR_MIMES:
        sidecar = sign_sidecar(provenance, data, mime, title=title, decision=decision, action=action)
        return _Sealed(data, sidecar.asset_sha256, sidecar.manifest_id, sidecar.manifest)
    signed = provenance.sign(data, mime, title=title, decision=decision, action=action)
    return _Sealed(signed.data, hashlib.sha256(signed.data).hexdigest(), signed.manifest_id)


def _attach_sidecar(svc: Services, request_id: str, manifest_digest: str) -> None:
    """Keep an approved GLB's sidecar manifest with its 3D job, which serves it once released."""
    from gateway.mesh_pipeline import attach_sidecar

    if not attach_sidecar(svc, request_id, manifest_digest):
        raise GatewayFault("the held 3D asset has no job to release it to; it stays held", code="state_missing")


def _asset_entry(asset_id: str, item: _Sealed, mime: str, sidecar_digest: str | None) -> dict[str, Any]:
    """An approved asset in the `review` record: hashes and manifest ids (the evidence export reads these)."""
    entry: dict[str, Any] = {"asset_id": asset_id, "sha256": item.sha256, "manifest_id": item.manifest_id, "mime": mime}
    if sidecar_digest is not None:
        entry.update(manifest_sha256=sidecar_digest, manifest_binding="sidecar")
    elif item.manifest_id is None:
        entry["manifest_binding"] = "none"  # text: no C2PA, the hash is the record
    return entry


def _review_payload(
    e: Escalation, request_id: str, who: Reviewer, action: str, reason: str, revision: str
) -> dict[str, Any]:
    return {
        "escalation_id": e.id,
        "request_id": request_id,
        "tenant": e.tenant,
        "action": action,
        "reviewer": {"key_id": who.key_id, "role": who.role},
        "reason": reason,
        "assets": [],
        "policy_revision": revision,
        "category": e.category,
        "priority": e.priority,
    }


def _finish_refusal(
    ctx: QueueContext, decided: Escalation, who: Reviewer, *, reason: str, action: str
) -> dict[str, Any]:
    """Rejected or expired: audit, refuse the request, drop (or schedule dropping) the held pixels."""
    state = ctx.requests.get(decided.request_id)
    revision = ""
    payload = _review_payload(decided, decided.request_id, who, action, reason, revision)
    payload.pop("policy_revision")
    ctx.audit.append("review", payload, request_id=decided.request_id, tenant=decided.tenant)
    if state is not None and state.status == "held":
        mamori = dict(state.mamori)
        mamori["review"] = {"action": action, "reviewer_role": who.role}
        mamori["status"] = "refused"
        mamori["decision"] = "block"
        code = "review.rejected" if action == "rejected" else "review.expired"
        message = "rejected by a reviewer" if action == "rejected" else "no decision before the review expired"
        mamori["reasons"] = [*mamori.get("reasons", []), {"code": code, "detector": "review", "message": message}]
        ctx.requests.resolve(state.id, status="refused", mamori=mamori, released=None, drop_held=True)
        retention = ctx.settings.rejected_retention_s
        jobs = _jobs(ctx)
        for asset in state.assets:
            if asset.held_blob is None:
                continue
            if retention > 0 and jobs is not None:
                jobs.schedule_blob_delete(asset.held_blob, state.id, datetime.now(UTC) + timedelta(seconds=retention))
            else:
                drop_blob(ctx, asset.held_blob, state.id)
    _announce_decision(ctx, decided)
    return payload


def drop_blob(ctx: QueueContext, digest: str, request_id: str) -> None:
    """Delete a held blob unless something still needs it (see `blob_in_use`)."""
    if not blob_in_use(ctx, digest, request_id):
        ctx.blobs.delete(digest)


def blob_in_use(ctx: QueueContext, digest: str, request_id: str) -> bool:
    """Whether a content-addressed blob is still held by another request, or released by any.

    Held images, audio and video are signed on release, so their released bytes differ from the held
    ones; text and GLB are released unchanged (same bytes, same digest), and the same prompt and seed
    make the same bytes, so one request's held copy may be another's released asset or 3D job.
    Without a database session to ask, the blob is kept: an unreferenced blob is never served.
    """
    if ctx.requests.held_blob_shared(digest, other_than=request_id):
        return True
    sessions = getattr(ctx, "sessions", None)
    if sessions is None:
        return True
    from gateway.mesh_models import MeshRow
    from gateway.models import AssetRow

    with sessions() as session:
        released = select(AssetRow.id).where(AssetRow.blob == digest, AssetRow.status == "released").limit(1)
        if session.scalars(released).first() is not None:
            return True
        mesh = select(MeshRow.id).where(MeshRow.blob_digest == digest).limit(1)
        return session.scalars(mesh).first() is not None


def _announce_decision(ctx: QueueContext, e: Escalation) -> None:
    from gateway.orchestration import escalation_decided

    try:  # issue 8: a job paused on this request goes on (approved) or fails (rejected, expired)
        escalation_decided(ctx, e.request_id)
    except Exception as exc:  # the decision stands; the job stays paused (and says so) until cancelled
        log.error("jobs.resume_failed", error=type(exc).__name__, escalation_id=e.id)
    jobs = _jobs(ctx)
    if jobs is None:
        return
    try:
        jobs.notify("escalation.decided", _public(e), callback_url=e.callback_url)
    except Exception as exc:  # the decision stands; log the lost notification
        log.error("jobs.enqueue_failed", error=type(exc).__name__, escalation_id=e.id)


# ---------------------------------------------------------------------- time-driven work


def run_sweep(ctx: QueueContext, *, ids: list[str] | None = None, now: datetime | None = None) -> dict[str, int]:
    """Lapse leases, flag missed deadlines (raise priority, notify admins) and auto-reject expired items."""
    result = ctx.escalations.sweep(now=now, ids=ids)
    system = Reviewer(key_id="system", role="system")
    jobs = _jobs(ctx)
    for e in result.leases_lapsed:
        _queue_audit(ctx, e, "lease_lapsed", system)
    for e in result.deadlines_missed:
        _queue_audit(ctx, e, "deadline_missed", system)
        log.warning("review.deadline_missed", escalation_id=e.id, tenant=e.tenant, priority=e.priority)
        if jobs is not None:
            jobs.notify("escalation.deadline_missed", _public(e))
    for e in result.expired:
        try:
            _finish_refusal(ctx, e, system, reason="review.expired: no decision before the configured expiry",
                            action="expired")  # fmt: skip
        except MamoriError as exc:  # pragma: no cover - logged, retried by the next sweep's caller
            log.error("review.expire_failed", escalation_id=e.id, error=exc.code)
    return {
        "leases_lapsed": len(result.leases_lapsed),
        "deadlines_missed": len(result.deadlines_missed),
        "expired": len(result.expired),
    }
