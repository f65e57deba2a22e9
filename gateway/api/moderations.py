"""OpenAI-compatible `POST /v1/moderations`: run the prompt and image detectors, generate nothing.

Input as the official client sends it: `input` is a string, a list of strings (one result each),
or a list of parts `{"type": "text", "text": ...}` / `{"type": "image_url", "image_url": {"url":
"data:image/png;base64,..."}}` (one result for all parts). Text goes through the prescreen
detectors, images (role "edit_source") through the image detectors, and the findings through the
policy's prescreen stage. The answer has OpenAI's `results[{flagged, categories,
category_scores, category_applied_input_types}]` plus a `mamori` object with the findings, the
decision, its reasons and the policy revision. `category_applied_input_types` names, per category,
the input types whose detectors score it (open_nsfw scores only sexual content in images).

Every call writes one audit record of event type "moderation" (input hashes and sizes, never the
text). The route writes it for an answer and for a fault while judging, which fails closed: a
detector or policy fault is 503, anything else (the policy data, a registry) 500; both answer code
`mamori_fault` in OpenAI's error shape, with `mamori.reasons` holding the system reason
(`system.detector_error`, `system.detector_timeout`, `system.policy_error`, `system.internal_error`)
that the record holds too. The gateway's middleware writes it for anything else, as for every
governed path: bad input (400 with its code; 413 `too_many_pixels` over the pixel budget below), a
refused key, a fault before judging (500 `mamori_fault`, `mamori.reasons` `system.internal_error`).
Access: the `images.generations` permission for now.

Images are decoded one at a time, each frame at once reduced to at most `MAX_SIDE` pixels a side
(what the image detectors need: open_nsfw and CLIP look at 256 and 224 pixels, the copyright
hashes at most 256), so a call holds one full-size frame at a time besides the reduced ones (the
4096 x 4096 limit, 16 Mpx, is 1 Mpx after the reduction). Before any is decoded, their
headers are read: each image is held to `max_image_pixels`, and all of them together to
`max_request_pixels` decoded pixels, every frame counted (413 `too_many_pixels`). An animated image
(GIF, WebP, PNG) or a multi-page one is screened frame by frame: every frame up to `MAX_FRAMES`,
else `MAX_FRAMES` frames spread evenly over it, first and last included. Its category scores are
the highest of its frames'; per image and per detector category, `mamori` keeps the finding of the
frame that scored highest, whose evidence names it: `frame` (its number in the file), `frames`
(how many the file holds) and `frames_scored`. Transparency is kept for the detectors, which
composite it themselves.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from PIL.Image import Image as PILImage

from detectors.base import Detector, Finding, ImageItem, Item, TextItem, measures_across_batch
from detectors.lexicons import CATEGORIES as UNSAFE_TEXT_CATEGORIES
from detectors.toxicity import CATEGORIES as TOXICITY_CATEGORIES
from gateway.api.bodies import load_json
from gateway.api.deps import CanGenerate, ServicesDep
from gateway.errors import BadRequest, GatewayFault, MamoriError, PayloadTooLarge
from gateway.keys import Principal
from gateway.logs import get_logger
from gateway.pipeline import StageFault, decide, detection_context, most_severe, run_detector, system_decision
from gateway.services import Services
from gateway.trace import Trace
from gateway.uploads import Frames, decode_frames, decoded_pixels, open_image

router = APIRouter(prefix="/v1", tags=["moderations"])
log = get_logger("mamori.moderations")

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
    "csam": ("sexual/minors", "sexual"),  # the shipped deny-list's (and the floor's) category
    # Known categories that no OpenAI category describes: the result is still `flagged` when the
    # policy blocks or escalates on them (a deny-listed term, personal data, a jailbreak, ...).
    "denied_term": (),
    "pii": (),
    "jailbreak": (),
    "protected_name": (),
    "stereotype": (),
    "protected_work": (),
}
#: The cut for OpenAI's per-category booleans; the policy's decision is in `mamori.decision`.
CATEGORY_CUT = 0.5
MAX_INPUTS = 32
#: Frames screened per image at most (an animation with more is sampled evenly).
MAX_FRAMES = 16
#: Images are reduced to at most this many pixels a side before screening (by a whole factor).
MAX_SIDE = 1024


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


#: The Mamori finding categories each detector scores, whatever the input. `category_applied_input_types`
#: names an input type for an OpenAI category only where a detector run on that type scores one of
#: them (or found something in it); open_nsfw scores sexual content and nothing else.
DETECTOR_CATEGORIES: dict[str, tuple[str, ...]] = {
    "unsafe_text": UNSAFE_TEXT_CATEGORIES,
    "toxicity": TOXICITY_CATEGORIES,
    "image_safety": ("sexual",),
}


def covered(detectors: Iterable[Detector]) -> frozenset[str]:
    """The OpenAI categories these detectors score (through `CATEGORY_MAP`)."""
    out: set[str] = set()
    for detector in detectors:
        for category in DETECTOR_CATEGORIES.get(detector.name, ()):
            out.update(CATEGORY_MAP.get(category, ()))
    return frozenset(out)


def _openai_result(
    findings: dict[str, list[Finding]], coverage: dict[str, frozenset[str]], flagged_by_policy: bool
) -> dict[str, Any]:
    """OpenAI's result for one group: `findings` and `coverage` by the input type screened ("text", "image")."""
    scores = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
    applied: dict[str, set[str]] = {c: set() for c in OPENAI_CATEGORIES}
    for kind, categories in coverage.items():
        for target in categories:
            applied[target].add(kind)
    for kind, found in findings.items():
        for f in found:
            for target in CATEGORY_MAP.get(f.category, ()):
                scores[target] = max(scores[target], float(f.score))
                applied[target].add(kind)
    flags = {c: s >= CATEGORY_CUT for c, s in scores.items()}
    return {
        "flagged": flagged_by_policy or any(flags.values()),
        "categories": flags,
        "category_scores": {c: round(s, 6) for c, s in scores.items()},
        "category_applied_input_types": {c: sorted(kinds) for c, kinds in applied.items()},
    }


def _decode_images(
    groups: list[list[tuple[str, Any]]], max_pixels: int, max_request_pixels: int
) -> list[list[tuple[str, str | Frames]]]:
    """The groups with every image decoded (`Frames`), so a bad image is a 4xx before any detector
    runs. Headers first: each image within `max_pixels`, all of them, every frame counted, within
    `max_request_pixels` (413 `too_many_pixels`); then one image at a time, its frames reduced
    to `MAX_SIDE` as they are decoded (blocking: run it in a thread)."""
    opened: list[PILImage] = []
    try:
        for group in groups:
            opened += [open_image(v, field="input", max_pixels=max_pixels) for k, v in group if k == "image"]
        total = sum(decoded_pixels(im, field="input", max_pixels=max_pixels) for im in opened)
        if total > max_request_pixels:
            raise PayloadTooLarge(
                f"the images hold {total} pixels, every frame counted, over the limit of {max_request_pixels}",
                code="too_many_pixels",
                param="input",
            )
        images = iter(opened)
        decoded: list[list[tuple[str, str | Frames]]] = []
        for group in groups:
            parts: list[tuple[str, str | Frames]] = []
            for kind, value in group:
                if kind == "image":
                    value = decode_frames(
                        next(images), field="input", max_pixels=max_pixels, max_frames=MAX_FRAMES, max_side=MAX_SIDE
                    )
                parts.append((kind, value))
            decoded.append(parts)
        return decoded
    finally:
        for image in opened:
            image.close()


def _per_image(found: Sequence[Finding], frames: Sequence[tuple[int, int, Frames]]) -> list[Finding]:
    """An image detector's findings over every frame screened, per input image: for each category
    the finding of the frame that scored highest (the earliest on a tie), its evidence `index` the
    image's (not the frame's), and for an animation `frame`, `frames` and `frames_scored`.
    `frames[i]` is (image index, frame number, the image's frames) of the item with index i; a
    finding that names no such item is kept as it is (it still counts in the scores)."""
    best: dict[tuple[int, str, str], Finding] = {}
    loose: list[Finding] = []
    for f in found:
        item = f.evidence.get("index")
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item < len(frames):
            loose.append(f)
            continue
        upload, number, of = frames[item]
        evidence = {**f.evidence, "index": upload}
        if of.count > 1:
            evidence.update(frame=number, frames=of.count, frames_scored=len(of.images))
        key = (upload, f.detector, f.category)
        if key not in best or f.score > best[key].score:
            best[key] = replace(f, evidence=evidence)
    return [*best.values(), *loose]


async def _moderate_group(
    svc: Services, trace: Trace, parts: list[tuple[str, str | Frames]]
) -> tuple[dict[str, list[Finding]], dict[str, Any]]:
    """Findings by input type screened ("text", "image"; blank text is not) and the group's prescreen decision."""
    ctx = await detection_context(svc, trace, "prescreen")
    texts: list[Item] = [TextItem(v) for k, v in parts if k == "text" and isinstance(v, str) and v.strip()]
    # every frame screened is one item; `frames` ties it back to its image
    uploads = [v for k, v in parts if k == "image" and isinstance(v, Frames)]
    frames = [(i, number, v) for i, v in enumerate(uploads) for number, _ in v.images]
    screened = (image for v in uploads for _, image in v.images)
    images: list[Item] = [ImageItem(image, role="edit_source", index=j) for j, image in enumerate(screened)]
    # a detector that measures across the batch (bias: how many people, how alike) sees each image once,
    # by its first frame; 16 frames of one person are one person, not 16
    once_each = [images[j] for j, (_, number, of) in enumerate(frames) if number == of.images[0][0]]
    findings: dict[str, list[Finding]] = {}
    for kind, items, detectors in (("text", texts, svc.prescreen_detectors), ("image", images, svc.image_detectors)):
        if items:
            found = findings.setdefault(kind, [])
            for detector in detectors:
                batch = once_each if kind == "image" and measures_across_batch(detector) else items
                measured = await run_detector(svc, trace, detector, batch, ctx)
                found += _per_image(measured, frames) if kind == "image" else measured
    request_doc = {
        "id": trace.request_id,
        "endpoint": "moderations",
        "n": 0,
        "prompt_chars": sum(len(t.text) for t in texts if isinstance(t, TextItem)),
        "has_source": bool(images),
        "has_mask": False,
    }
    every = [f for found in findings.values() for f in found]
    decision = await decide(svc, trace, "prescreen", every, request_doc)
    return findings, decision.to_dict()


def _request_trace(request: Request, principal: Principal) -> Trace:
    """The middleware's trace of this governed request (it audits any answer the route does not)."""
    trace: Trace | None = getattr(request.state, "trace", None)
    if trace is None:  # mounted without the gateway's middleware
        request_id = getattr(request.state, "request_id", None) or "req_" + uuid.uuid4().hex
        client = request.client.host if request.client else None
        trace = Trace(request_id=request_id, endpoint="moderations", client=client)
    trace.principal = principal
    return trace


@router.post("/moderations", summary="Classify text and images (OpenAI-compatible); generates nothing")
async def create_moderation(request: Request, svc: ServicesDep, principal: CanGenerate) -> JSONResponse:
    # Bad input raises: the middleware answers and writes the audit record (event type
    # "moderation", with the error code). Answers and faults while judging are audited here.
    trace = _request_trace(request, principal)
    trace.detectors = svc.detector_versions()
    payload = load_json(await request.body())
    groups = _groups(payload, svc.settings.max_prompt_chars, svc.settings.max_upload_bytes)
    inputs = _input_digests(groups)
    trace.request.update(inputs=inputs, groups=len(groups))
    model = payload.get("model") if isinstance(payload.get("model"), str) else "mamori-moderation"
    settings = svc.settings
    decoded = await asyncio.to_thread(_decode_images, groups, settings.max_image_pixels, settings.max_request_pixels)

    results: list[dict[str, Any]] = []
    mamori_results: list[dict[str, Any]] = []
    coverage = {"text": covered(svc.prescreen_detectors), "image": covered(svc.image_detectors)}
    failed: tuple[int, dict[str, Any]] | None = None  # (HTTP status, the system decision) of a fault
    try:
        for parts in decoded:
            findings, decision = await _moderate_group(svc, trace, parts)
            if trace.faults:  # the policy failed: decide() made a system block, which judges nothing
                failed = (503, decision)
                break
            screened = {kind: coverage[kind] for kind in findings}  # the input types this group had
            results.append(_openai_result(findings, screened, decision["action"] in ("block", "escalate")))
            mamori_results.append(
                {
                    "decision": decision["action"],
                    "reasons": decision.get("reasons", []),
                    "decision_id": decision.get("decision_id"),
                    "findings": [f.to_dict() for found in findings.values() for f in found],
                }
            )
    except StageFault as fault:  # a detector failed or timed out
        failed = (503, system_decision(svc, trace, "prescreen", fault).to_dict())
    except Exception as exc:  # anything else (the policy data, a registry): 500, with a reason all the same
        log.exception("moderation.fault", error=type(exc).__name__)
        trace.fault("gateway", "unhandled", exc)
        internal = StageFault("system.internal_error", "gateway", "an internal step failed")
        failed = (500, system_decision(svc, trace, "prescreen", internal).to_dict())
    if failed is not None:
        err = _refusal(trace, *failed)
        await asyncio.to_thread(_audit, svc, trace, inputs, None, failed[1]["reasons"][0]["code"])
        raise err
    mamori = {
        "request_id": trace.request_id,
        "policy_revision": svc.policy.revision,
        "results": mamori_results,
        "timings_ms": trace.timings_ms,
    }
    trace.http_status = 200
    trace.status = "released"  # the verdict went out (nothing was generated); a fault above is "refused"
    trace.decision = most_severe([r["decision"] for r in mamori_results])
    await asyncio.to_thread(_audit, svc, trace, inputs, mamori, None)
    body = {"id": "modr-" + uuid.uuid4().hex, "model": model, "results": results, "mamori": mamori}
    return JSONResponse(body)


def _refusal(trace: Trace, status: int, decision: dict[str, Any]) -> MamoriError:
    """The fail-closed answer to a fault, in OpenAI's error shape: code `mamori_fault`, and in `mamori`
    the system decision's reasons (codes such as `system.detector_error`), as the audit record holds
    them. Only fixed messages: never the input or an exception's text."""
    mamori = {
        "request_id": trace.request_id,
        "status": "refused",
        "decision": "block",
        "reasons": decision["reasons"],
        "decision_id": decision["decision_id"],
        "policy_revision": decision["revision"],
    }
    codes = ", ".join(r["code"] for r in decision["reasons"])
    err: MamoriError
    if status >= 503:
        message = f"a detector or the policy failed, so nothing was judged safe (fail closed; {codes})"
        err = GatewayFault(message, code="mamori_fault", mamori=mamori)
    else:
        message = f"internal error, so nothing was judged safe (fail closed; {codes})"
        err = MamoriError(message, code="mamori_fault", mamori=mamori)
    trace.status, trace.decision, trace.http_status = "refused", "block", err.status_code
    trace.error = {"code": err.code, "type": err.error_type, "message": err.message}
    return err


def _input_digests(groups: list[list[tuple[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Each input's type, SHA-256 and size: what the audit keeps instead of the text or the image."""
    return [
        [
            {
                "type": kind,
                # surrogatepass: never fail the audit over text that is not valid Unicode
                "sha256": hashlib.sha256(
                    value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
                ).hexdigest(),
                "size": len(value),
            }
            for kind, value in group
        ]
        for group in groups
    ]


def _audit(
    svc: Services,
    trace: Trace,
    inputs: list[list[dict[str, Any]]],
    mamori: dict[str, Any] | None,
    fault: str | None,
) -> None:
    """The one "moderation" record of an answered (or fault-refused) call; sets `trace.audited`."""
    payload = {
        **trace.audit_payload(),
        "inputs": inputs,
        "results": (mamori or {}).get("results"),
        "fault": fault,
        "at": time.time(),
    }
    tenant = trace.principal.tenant if trace.principal else None
    svc.audit.append("moderation", payload, request_id=trace.request_id, tenant=tenant)
    trace.audited = True
