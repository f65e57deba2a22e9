"""The `release` stage: the last policy check before a reviewed (escalated) asset leaves.

The escalation queue calls `release_decision` each time an approval is recorded (and before it
releases anything). The policy answers:

- `allow`: enough distinct approvers (none of them the requester, each in a role that may
  approve: `data.mamori.approver_roles`): release now;
- `escalate`: keep holding; `obligations.review = {"approvals": needed, "have": counted}` and the
  reasons say why (`release.awaiting_approvals`, `release.self_approval`,
  `release.unqualified_approver`);
- `block`: never release (`release.floor`: the findings include sexual content involving minors,
  whatever the approvals; `policy.bad_input` for a malformed call).

A policy failure raises `PolicyError`; the caller must then keep the asset held (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.policy import Decision, PolicyEngine


def release_input(
    principal_doc: Mapping[str, Any],
    request_doc: Mapping[str, Any],
    approvals: Sequence[Mapping[str, Any]],
    requester_key_id: str,
) -> dict[str, Any]:
    """The decision input of the release stage (also what the audit record keeps for replay)."""
    request = {k: v for k, v in request_doc.items() if k != "findings"}
    request["requester_key_id"] = requester_key_id
    return {
        "principal": dict(principal_doc),
        "stage": "release",
        "request": request,
        "approvals": [{"key_id": a.get("key_id"), "role": a.get("role")} for a in approvals],
        "findings": list(request_doc.get("findings", [])),
    }


def release_decision(
    policy: PolicyEngine,
    principal_doc: Mapping[str, Any],
    request_doc: Mapping[str, Any],
    approvals: Sequence[Mapping[str, Any]],
    requester_key_id: str,
) -> Decision:
    """Ask the policy whether a held asset may be released now.

    `principal_doc`: `Principal.to_policy()` of who records the approval (its tenant should be the
    request's tenant). `request_doc`: `{"id", "endpoint", "review": <the escalation's review
    obligation, at least {"approvals": n, "category": c}>, "findings": [<the policy findings that
    held it>]}`. `approvals`: every approval so far, `{"key_id", "role"}` (duplicates are counted
    once). `requester_key_id`: the key that made the request (its approvals never count).
    """
    return policy.decide(release_input(principal_doc, request_doc, approvals, requester_key_id))


__all__ = ["release_decision", "release_input"]
