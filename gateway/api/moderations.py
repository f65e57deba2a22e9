"""OpenAI-compatible `POST /v1/moderations`: run the prompt and image detectors, generate nothing.

Input as the official client sends it: `input` is a string, a list of strings (one result each),
or a list of parts `{"type": "text", "text": ...}` / `{"type": "image_url", "image_url": {"url":
"data:image/png;base64,..."}}` (one result for all parts). Text goes through the prescreen
detectors, images (role "edit_source") through the image detectors, and the findings through the
policy's prescreen stage. The answer has OpenAI's `results[{flagged, categories,
category_scores, category_applied_input_types}]` plus a `mamori` object with the findings, the
decision, its reasons and the policy revision. Every call writes one audit record of event type
"moderation" (input hashes and sizes, never the text). A detector or policy fault answers 503
(fail closed). Access: the `images.generations` permission for now.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from PIL.Image import Image as PILImage

from detectors.base import Finding, ImageItem, Item, TextItem
from gateway.api.bodies import load_json
from gateway.api.deps import CanGenerate, ServicesDep
from gateway.errors import BadRequest, GatewayFault
from gateway.keys import Principal
from gateway.pipeline import StageFault, decide, detection_context, run_detector
from gateway.services import Services
from gateway.trace import Trace
from gateway.uploads import decode_image

router = APIRouter(prefix="/v1", tags=["moderations"])

#: OpenAI's moderation categories, in its order.
OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: Mamori finding category -> OpenAI categories it feeds.
CATEGORY_MAP: dict[str, tuple[str, ...]] = {
    "sexual": ("sexual",),
    "sexual_minors": ("sexual/minors", "sexual"),
    "violence": ("violence",),
    "self_harm": ("self-harm",),
    "weapons": ("illicit/violent",),
    "drugs": ("illicit",),
    "hate": ("hate",),
    "harassment": ("harassment",),
    "illicit": ("illicit",),
    "real_person": ("harassment",),
    "insult": ("harassment",),  # the toxicity detector's categories
    "profanity": ("harassment",),
    "threat": ("harassment/threatening", "violence"),
}
#: The cut for OpenAI's per-category booleans; the policy's decision is in `mamori.decision`.
CATEGORY_CUT = 0.5
MAX_INPUTS = 32


def _decode_data_url(url: str, max_bytes: int) -> bytes:
    if not url.startswith("data:"):
        raise BadRequest("images must be sent as data URLs (data:image/...;base64,...)", code="invalid_image_url")
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise BadRequest("image data URLs must be base64-encoded", code="invalid_image_url")
    if len(payload) * 3 // 4 > max_bytes:
        raise BadRequest(f"an image is over {max_bytes} bytes", code="upload_too_large")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("an image data URL is not valid base64", code="invalid_image_url") from exc


def _groups(payload: Any, max_chars: int, max_bytes: int) -> list[list[tuple[str, Any]]]:
    """The input as groups (one result each) of ("text", str) / ("image", bytes) parts."""
    if not isinstance(payload, dict) or "input" not in payload:
        raise BadRequest("body must be a JSON object with 'input'", code="invalid_request", param="input")
    raw = payload["input"]
    groups: list[list[tuple[str, Any]]]
    if isinstance(raw, str):
        groups = [[("text", raw)]]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        groups = [[("text", x)] for x in raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, dict) for x in raw):
        parts: list[tuple[str, Any]] = []
        for part in raw:
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append(("text", part["text"]))
            elif kind == "image_url" and isinstance(part.get("image_url"), dict | str):
                ref = part["image_url"]
                url = ref.get("url") if isinstance(ref, dict) else ref
                if not isinstance(url, str):
                    raise BadRequest("image_url.url must be a string", code="invalid_image_url", param="input")
                parts.append(("image", _decode_data_url(url, max_bytes)))
            else:
                raise BadRequest("each input part must be a text or image_url part", code="invalid_request")
        groups = [parts]
    else:
        raise BadRequest("input must be a string, a list of strings or a list of parts", code="invalid_request")
    if sum(len(g) for g in groups) > MAX_INPUTS:
        raise BadRequest(f"at most {MAX_INPUTS} inputs per call", code="invalid_request", param="input")
    for group in groups:
        for kind, value in group:
            if kind == "text" and len(value) > max_chars:
                raise BadRequest(f"a text input is over {max_chars} characters", code="prompt_too_long")
    return groups


def _openai_result(findings: list[Finding], types: set[str], flagged_by_policy: bool) -> dict[str, Any]:
    scores = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
    applied: dict[str, list[str]] = {c: [] for c in OPENAI_CATEGORIES}
    for f in findings:
        targets = CATEGORY_MAP.get(f.category, ())
        kind = "image" if f.detector in ("image_safety",) or "role" in f.evidence else "text"
        for target in targets:
            scores[target] = max(scores[target], float(f.score))
            if kind not in applied[target]:
                applied[target].append(kind)
    categories = {c: s >= CATEGORY_CUT for c, s in scores.items()}
    for c in OPENAI_CATEGORIES:
        if not applied[c]:
            applied[c] = sorted(types & {"text"}) if c not in ("sexual", "violence", "self-harm") else sorted(types)
    return {
        "flagged": flagged_by_policy or any(categories.values()),
        "categories": categories,
        "category_scores": {c: round(s, 6) for c, s in scores.items()},
        "category_applied_input_types": applied,
    }


async def _moderate_group(
    svc: Services, trace: Trace, parts: list[tuple[str, Any]]
) -> tuple[list[Finding], dict[str, Any]]:
    ctx = await detection_context(svc, trace, "prescreen")
    texts: list[Item] = [TextItem(v) for k, v in parts if k == "text" and v.strip()]
    images: list[Item] = []
    for i, (kind, value) in enumerate(p for p in parts if p[0] == "image"):
        _ = kind
        image: PILImage = await asyncio.to_thread(
            decode_image, value, field="input", max_pixels=svc.settings.max_image_pixels
        )
        images.append(ImageItem(image.convert("RGB"), role="edit_source", index=i))
    findings: list[Finding] = []
    for detector in svc.prescreen_detectors:
        if texts:
            findings += await run_detector(svc, trace, detector, texts, ctx)
    for detector in svc.image_detectors:
        if images:
            findings += await run_detector(svc, trace, detector, images, ctx)
    request_doc = {
        "id": trace.request_id,
        "endpoint": "moderations",
        "n": 0,
        "prompt_chars": sum(len(t.text) for t in texts if isinstance(t, TextItem)),
        "has_source": bool(images),
        "has_mask": False,
    }
    decision = await decide(svc, trace, "prescreen", findings, request_doc)
    return findings, decision.to_dict()


@router.post("/moderations", summary="Classify text and images (OpenAI-compatible); generates nothing")
async def create_moderation(request: Request, svc: ServicesDep, principal: CanGenerate) -> JSONResponse:
    raw = await request.body()
    payload = load_json(raw)
    groups = _groups(payload, svc.settings.max_prompt_chars, svc.settings.max_upload_bytes)
    request_id = getattr(request.state, "request_id", None) or "req_" + uuid.uuid4().hex
    trace = Trace(request_id=request_id, endpoint="moderations", client=request.client.host if request.client else None)
    trace.principal = principal
    trace.detectors = svc.detector_versions()
    model = payload.get("model") if isinstance(payload.get("model"), str) else "mamori-moderation"

    results: list[dict[str, Any]] = []
    mamori_results: list[dict[str, Any]] = []
    try:
        for parts in groups:
            findings, decision = await _moderate_group(svc, trace, parts)
            types = {"text" if k == "text" else "image" for k, _ in parts}
            results.append(_openai_result(findings, types, decision["action"] in ("block", "escalate")))
            mamori_results.append(
                {
                    "decision": decision["action"],
                    "reasons": decision.get("reasons", []),
                    "decision_id": decision.get("decision_id"),
                    "findings": [f.to_dict() for f in findings],
                }
            )
    except StageFault as fault:
        await asyncio.to_thread(_audit, svc, trace, principal, groups, None, fault.code)
        raise GatewayFault(
            "a detector or the policy failed, so nothing was judged safe (fail closed)", code="mamori_fault"
        ) from fault
    mamori = {
        "request_id": request_id,
        "policy_revision": svc.policy.revision,
        "results": mamori_results,
        "timings_ms": trace.timings_ms,
    }
    await asyncio.to_thread(_audit, svc, trace, principal, groups, mamori, None)
    body = {"id": "modr-" + uuid.uuid4().hex, "model": model, "results": results, "mamori": mamori}
    return JSONResponse(body)


def _audit(
    svc: Services,
    trace: Trace,
    principal: Principal,
    groups: list[list[tuple[str, Any]]],
    mamori: dict[str, Any] | None,
    fault: str | None,
) -> None:
    inputs = [
        [
            {
                "type": kind,
                "sha256": hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest(),
                "size": len(value),
            }
            for kind, value in group
        ]
        for group in groups
    ]
    payload = {
        "request_id": trace.request_id,
        "endpoint": "moderations",
        "principal": principal.to_policy(),
        "inputs": inputs,
        "detectors": trace.detectors,
        "decisions": trace.decisions,
        "results": (mamori or {}).get("results"),
        "faults": trace.faults,
        "fault": fault,
        "timings_ms": trace.timings_ms,
        "at": time.time(),
    }
    svc.audit.append("moderation", payload, request_id=trace.request_id, tenant=principal.tenant)
