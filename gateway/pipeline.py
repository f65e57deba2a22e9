"""The governed image path: prescreen → decide → generate → detect → decide → sign → persist.

One function per stage. Any fault inside fails closed: nothing unvetted leaves, and the trace
(which the audit middleware writes as one record) says what happened. Blocking work (models,
policy, signing, database) runs off the event loop; generators and detectors run on bounded pools
of their own, so a timed-out call keeps its slot until its thread really ends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from PIL.Image import Image

from detectors.base import DetectionContext, Detector, Finding, ImageItem, Item, TextItem
from detectors.bias_terms import named_attributes
from gateway.keys import Principal
from gateway.policy import Decision, PolicyError
from gateway.provenance import Ingredient
from gateway.redaction import redact_text
from gateway.review import open_escalation
from gateway.services import Services
from gateway.state import NewAsset
from gateway.trace import Trace
from generators.base import EditRequest, GeneratedImage, ImageRequest

T = TypeVar("T")
Status = Literal["released", "held", "refused"]
_SEVERITY: dict[str, int] = {"allow": 0, "redact": 1, "escalate": 2, "block": 3}
_STATUS_OF: dict[str, Status] = {"allow": "released", "redact": "released", "escalate": "held", "block": "refused"}


@dataclass
class ImageJob:
    kind: Literal["generate", "edit"]
    prompt: str
    n: int
    width: int
    height: int
    seed: int
    response_format: str
    source: Image | None = None
    mask: Image | None = None
    mask_upload: Image | None = None  # the mask as uploaded (alpha kept): screened, never generated from
    callback_url: str | None = None  # the requester's webhook for the review decision (issue 5)
    source_ingredient: Ingredient | None = None  # an edit's uploaded file, recorded in the manifest as parentOf
    source_manifest: dict[str, Any] | None = None  # what the upload's own C2PA manifest says (policy input)
    steps: int | None = None  # issue 8: a template's step count; None: settings.default_steps


@dataclass
class ImageOutcome:
    status: Status
    http_status: int
    mamori: dict[str, Any]
    images: list[tuple[str, bytes]]  # (asset id, signed PNG) of released images, in order
    refusal_message: str | None = None


class StageFault(Exception):
    """A component failed; the request fails closed with a system reason."""

    def __init__(self, code: str, component: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.component = component
        self.message = message


# ---------------------------------------------------------------- helpers


async def in_pool(pool: ThreadPoolExecutor, fn: Callable[[], T], timeout: float) -> T:
    """Run `fn` on `pool`; on timeout the caller gives up, but the worker stays busy until `fn` returns."""
    return await asyncio.wait_for(asyncio.wrap_future(pool.submit(fn)), timeout=timeout)


async def _timed(trace: Trace, svc: Services, stage: str, work: Awaitable[T]) -> T:
    start = time.perf_counter()
    try:
        return await work
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing(stage, elapsed)
        svc.metrics.stage_seconds.labels(stage).observe(elapsed)


def png_bytes(image: Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def summarize(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [{"detector": f.detector, "category": f.category, "score": round(f.score, 4)} for f in findings]


def _policy_finding(f: Finding) -> dict[str, Any]:
    return {"detector": f.detector, "category": f.category, "score": float(f.score), "evidence": dict(f.evidence)}


def policy_revision(svc: Services) -> str:
    try:
        return svc.policy.revision
    except Exception:
        return "unknown"


async def run_detector(
    svc: Services, trace: Trace, detector: Detector, items: Sequence[Item], ctx: DetectionContext
) -> list[Finding]:
    """Run one detector over items on the detector pool, with a timeout; any failure is a StageFault."""

    def work() -> list[Finding]:
        batch = getattr(detector, "detect_batch", None)
        if callable(batch) and len(items) > 1:
            per_item: list[list[Finding]] = batch(list(items), ctx)
            return [f for group in per_item for f in group]
        return [f for item in items for f in detector.detect(item, ctx)]

    try:
        findings = await _timed(
            trace,
            svc,
            f"detect_{detector.name}",
            in_pool(svc.detector_pool, work, svc.settings.detector_timeout_s),
        )
    except TimeoutError as exc:
        trace.fault(detector.name, ctx.stage, "timeout")
        raise StageFault("system.detector_timeout", detector.name, f"detector {detector.name} timed out") from exc
    except Exception as exc:
        trace.fault(detector.name, ctx.stage, exc)
        raise StageFault("system.detector_error", detector.name, f"detector {detector.name} failed") from exc
    if not isinstance(findings, list) or not all(isinstance(f, Finding) for f in findings):
        trace.fault(detector.name, ctx.stage, "bad_result")
        raise StageFault("system.detector_error", detector.name, f"detector {detector.name} returned garbage")
    return findings


async def run_text_detectors(svc: Services, trace: Trace, text: str, ctx: DetectionContext) -> list[Finding]:
    """Every prescreen (text) detector over one text, side by side on the detector pool.

    Findings come back in the configured detector order. Every detector runs to its end; a fault
    (the first in detector order) is raised afterwards, so the stage still fails closed.
    """
    item = TextItem(text)
    results = await asyncio.gather(
        *(run_detector(svc, trace, detector, [item], ctx) for detector in svc.prescreen_detectors),
        return_exceptions=True,
    )
    findings: list[Finding] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        findings += result
    return findings


async def detection_context(svc: Services, trace: Trace, stage: Literal["prescreen", "output"]) -> DetectionContext:
    data = svc.policy.data().get("mamori", {})
    tenant = trace.principal.tenant if trace.principal else ""
    index = await asyncio.to_thread(svc.protected.index)
    names = await asyncio.to_thread(svc.protected_names.matcher)
    return DetectionContext(
        request_id=trace.request_id,
        tenant=tenant,
        stage=stage,
        resources={"terms": data.get("terms", []), "protected_index": index, "protected_names": names},
    )


async def decide(
    svc: Services,
    trace: Trace,
    stage: str,
    findings: Sequence[Finding],
    request_doc: dict[str, Any],
    *,
    index: int | None = None,
) -> Decision:
    """Ask the policy; a policy failure becomes a block with a system reason (fail closed)."""
    assert trace.principal is not None
    if trace.template is not None:  # issue 8: a request filled from a template says which one
        request_doc = {**request_doc, "template": trace.template}
    doc = {
        "principal": trace.principal.to_policy(),
        "stage": stage,
        "request": request_doc,
        "findings": [_policy_finding(f) for f in findings],
    }
    start = time.perf_counter()
    try:
        decision = await asyncio.to_thread(svc.policy.decide, doc)
    except PolicyError as exc:
        trace.fault("policy", stage, exc)
        svc.metrics.faults.labels("policy").inc()
        decision = Decision.system_block(
            "system.policy_error", "policy", "policy evaluation failed", policy_revision(svc)
        )
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing(f"decide_{stage}", elapsed)
        svc.metrics.stage_seconds.labels(f"decide_{stage}").observe(elapsed)
    svc.metrics.decisions.labels(stage, decision.action).inc()
    record = {"stage": stage, **decision.to_dict(), "input": doc}
    if index is not None:
        record["index"] = index
    trace.decisions.append(record)
    return decision


def system_decision(svc: Services, trace: Trace, stage: str, fault: StageFault) -> Decision:
    svc.metrics.faults.labels(fault.component).inc()
    decision = Decision.system_block(fault.code, fault.component, fault.message, policy_revision(svc))
    trace.decisions.append({"stage": stage, **decision.to_dict(), "input": None})
    return decision


def _request_doc(trace: Trace, job: ImageJob) -> dict[str, Any]:
    return {
        "id": trace.request_id,
        "endpoint": trace.endpoint,
        "n": job.n,
        "size": f"{job.width}x{job.height}",
        "prompt_chars": len(job.prompt),
        "prompt_attributes": named_attributes(job.prompt),  # for the image bias rule (never the words)
        "has_source": job.source is not None,
        "has_mask": job.mask is not None,
        **({"source_manifest": job.source_manifest} if job.source_manifest is not None else {}),
    }


# ---------------------------------------------------------------- stages


async def prescreen(svc: Services, trace: Trace, job: ImageJob) -> tuple[Decision, list[Finding]]:
    ctx = await detection_context(svc, trace, "prescreen")
    findings = await run_text_detectors(svc, trace, job.prompt, ctx)
    if job.source is not None:
        uploads = [ImageItem(job.source, role="edit_source", index=0)]
        if job.mask_upload is not None:  # a mask that is a whole picture is judged like a source
            uploads.append(ImageItem(job.mask_upload, role="mask", index=0))
        for detector in svc.image_detectors:
            findings += await run_detector(svc, trace, detector, uploads, ctx)
    trace.findings += [{**f.to_dict(), "stage": "prescreen"} for f in findings]
    return await decide(svc, trace, "prescreen", findings, _request_doc(trace, job)), findings


async def generate(svc: Services, trace: Trace, job: ImageJob, prompt: str) -> list[GeneratedImage]:
    generator = svc.generator
    steps = job.steps or svc.settings.default_steps

    def work() -> list[GeneratedImage]:
        if job.kind == "edit":
            assert job.source is not None
            edit = EditRequest(
                prompt=prompt,
                image=job.source,
                mask=job.mask,
                width=job.width,
                height=job.height,
                n=job.n,
                seed=job.seed,
                steps=steps,
            )
            return generator.edit(edit)
        request = ImageRequest(prompt=prompt, width=job.width, height=job.height, n=job.n, seed=job.seed, steps=steps)
        return generator.generate(request)

    try:
        images = await _timed(
            trace, svc, "generate", in_pool(svc.generator_pool, work, svc.settings.generation_timeout_s)
        )
    except TimeoutError as exc:
        trace.fault("generator", "generate", "timeout")
        raise StageFault("system.backend_timeout", "generator", "the generation backend timed out") from exc
    except Exception as exc:
        trace.fault("generator", "generate", exc)
        raise StageFault("system.backend_error", "generator", "the generation backend failed") from exc
    if len(images) != job.n:
        trace.fault("generator", "generate", "wrong_count")
        raise StageFault("system.backend_error", "generator", "the backend returned the wrong number of images")
    return images


async def detect_outputs(svc: Services, trace: Trace, images: Sequence[GeneratedImage]) -> list[list[Finding]]:
    ctx = await detection_context(svc, trace, "output")
    items = [ImageItem(g.image, role="output", index=i) for i, g in enumerate(images)]
    per_image: list[list[Finding]] = [[] for _ in images]
    for detector in svc.image_detectors:
        for f in await run_detector(svc, trace, detector, items, ctx):
            index = f.evidence.get("index", 0 if len(images) == 1 else None)
            if not isinstance(index, int) or not 0 <= index < len(images):
                # a finding that cannot be tied to its image could leave another image unvetted
                trace.fault(detector.name, "output", "bad_index")
                raise StageFault("system.detector_error", detector.name, f"detector {detector.name} lost track")
            per_image[index].append(f)
    for i, group in enumerate(per_image):
        trace.findings += [{**f.to_dict(), "stage": "output", "index": i} for f in group]
    return per_image


def manifest_decision(
    trace: Trace,
    action: str,
    reasons: Sequence[dict[str, Any]],
    findings: Sequence[dict[str, Any]],
    revision: str,
) -> dict[str, Any]:
    return {
        "request_id": trace.request_id,
        "decision": action,
        "policy_revision": revision,
        "decision_ids": [d["decision_id"] for d in trace.decisions],
        "reasons": [r["code"] for r in reasons],
        "findings": list(findings),
    }


@dataclass
class _Signed:
    asset: NewAsset
    entry: dict[str, Any]
    data: bytes | None


def _seal(
    svc: Services,
    trace: Trace,
    job: ImageJob,
    images: Sequence[GeneratedImage],
    statuses: Sequence[Status],
    manifest_decisions: Sequence[dict[str, Any]],
) -> list[_Signed]:
    """Sign and store released images, store held ones unsigned (blocking; runs in a worker thread)."""
    out: list[_Signed] = []
    for i, (gen, status) in enumerate(zip(images, statuses, strict=True)):
        asset_id = "asset_" + uuid.uuid4().hex
        entry: dict[str, Any] = {"index": i, "asset_id": asset_id, "status": status, "seed": gen.seed}
        if status == "refused":
            out.append(_Signed(NewAsset(asset_id, i, "refused", "image/png", gen.seed), entry, None))
            continue
        png = png_bytes(gen.image)
        if status == "held":
            held = svc.blobs.put(png)
            entry["held_sha256"] = hashlib.sha256(png).hexdigest()
            out.append(_Signed(NewAsset(asset_id, i, "held", "image/png", gen.seed, None, held), entry, None))
            continue
        start = time.perf_counter()
        try:
            signed = svc.provenance.sign(
                png,
                "image/png",
                title=f"{trace.request_id}-{i}.png",
                decision=manifest_decisions[i],
                action="c2pa.edited" if job.kind == "edit" else "c2pa.created",
                ingredients=(job.source_ingredient,) if job.source_ingredient else (),
            )
        except Exception as exc:
            trace.fault("provenance", "sign", exc)
            raise StageFault("system.signing_error", "provenance", "signing the asset failed") from exc
        finally:
            elapsed = time.perf_counter() - start
            trace.add_timing("sign", elapsed)
            svc.metrics.stage_seconds.labels("sign").observe(elapsed)
        digest = hashlib.sha256(signed.data).hexdigest()
        blob = svc.blobs.put(signed.data)
        entry.update(sha256=digest, manifest_id=signed.manifest_id)
        asset = NewAsset(asset_id, i, "released", "image/png", gen.seed, blob, None, digest, signed.manifest_id)
        out.append(_Signed(asset, entry, signed.data))
    return out


# ---------------------------------------------------------------- the whole path


def merge_reasons(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """The reasons of several decisions (one per image, frame or text window), in order, each once.

    Two reasons are the same only when code, detector and message agree: a later window's
    "personal data (PHONE_NUMBER)" is kept beside the first window's "(EMAIL_ADDRESS)".
    """
    seen: set[tuple[str, str, str]] = set()
    out: list[dict[str, Any]] = []
    for d in decisions:
        for r in d.reasons:
            key = (r.code, r.detector, r.message)
            if key not in seen:
                seen.add(key)
                out.append(r.to_dict())
    return out


def most_severe(actions: Sequence[str]) -> str:
    """The most severe of policy actions (block > escalate > redact > allow; an unknown one counts as a block)."""
    return max(actions, key=lambda a: _SEVERITY.get(a, 3))


async def run_image_job(svc: Services, trace: Trace, principal: Principal, job: ImageJob) -> ImageOutcome:
    trace.prompt_encrypted = svc.audit.seal_prompt(job.prompt)  # None unless prompt_storage = "encrypted"
    trace.detectors = svc.detector_versions()
    trace.generator = svc.generator_info()
    decisions: list[Decision] = []
    all_findings: list[Finding] = []

    async def finish(
        status: Status,
        action: str,
        *,
        released: list[tuple[str, bytes]] | None = None,
        assets: Sequence[NewAsset] = (),
        escalation_id: str | None = None,
        http_status: int | None = None,
    ) -> ImageOutcome:
        mamori: dict[str, Any] = {
            "request_id": trace.request_id,
            "status": status,
            "decision": action,
            "reasons": merge_reasons(decisions),
            "findings": summarize(all_findings),
            "manifest_ids": [a.manifest_id for a in assets if a.manifest_id],
            "policy_revision": policy_revision(svc),
        }
        if escalation_id:
            mamori["escalation_id"] = escalation_id
            mamori["poll_url"] = f"/v1/requests/{trace.request_id}"
        trace.status, trace.decision, trace.escalation_id = status, action, escalation_id
        if http_status is None and status == "refused" and trace.faults:
            http_status = 503  # failed closed on an internal fault, not on the policy
        code = http_status or {"released": 200, "held": 202, "refused": 400}[status]
        message = None
        if status == "refused":
            codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
            message = f"Request refused by Mamori policy ({codes})."
        await asyncio.to_thread(
            svc.requests.save,
            request_id=trace.request_id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            endpoint=trace.endpoint,
            status=status,
            response_format=job.response_format,
            mamori=mamori,
            assets=list(assets),
        )
        return ImageOutcome(status, code, mamori, released or [], message)

    # 1. prescreen ---------------------------------------------------------
    try:
        pre, pre_findings = await prescreen(svc, trace, job)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "prescreen", fault))
        return await finish("refused", "block", http_status=503)
    decisions.append(pre)
    all_findings += pre_findings
    if pre.action == "block":
        return await finish("refused", "block")
    prompt = job.prompt
    entities = pre.to_dict()["obligations"].get("redact")
    if entities:  # a redact obligation also rides along with an escalation
        prompt = await asyncio.to_thread(redact_text, job.prompt, pre_findings, entities)
        trace.request["prompt_redacted_for_generation"] = True

    # 2. generate and look at the outputs ------------------------------------
    try:
        images = await generate(svc, trace, job, prompt)
        per_image = await detect_outputs(svc, trace, images)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "output", fault))
        return await finish("refused", "block", http_status=503)

    # 3. decide per image; a prescreen escalation holds every output for review
    request_doc = _request_doc(trace, job)
    image_decisions = [
        await decide(svc, trace, "output", findings, request_doc, index=i) for i, findings in enumerate(per_image)
    ]
    decisions += image_decisions
    for findings in per_image:
        all_findings += findings
    floor = "escalate" if pre.action == "escalate" else "allow"
    actions = [most_severe([d.action, floor]) for d in image_decisions]
    overall = most_severe(actions)
    if overall == "block":
        # the request is refused: nothing is signed or kept, not even its allowed images
        trace.assets = [{"index": i, "status": "refused", "seed": g.seed} for i, g in enumerate(images)]
        return await finish("refused", "block")
    statuses: list[Status] = [_STATUS_OF[a] for a in actions]

    # 4. sign released images, hold escalated ones ---------------------------
    revision = policy_revision(svc)
    final = "redact" if pre.action == "redact" else "allow"
    manifests = [
        manifest_decision(
            trace,
            final,
            [r.to_dict() for r in (*pre.reasons, *image_decisions[i].reasons)],
            summarize([*pre_findings, *per_image[i]]),
            revision,
        )
        for i in range(len(images))
    ]
    try:
        sealed = await asyncio.to_thread(_seal, svc, trace, job, images, statuses, manifests)
    except StageFault as fault:
        decisions.append(system_decision(svc, trace, "sign", fault))
        trace.assets = [{"index": i, "status": "refused", "seed": g.seed} for i, g in enumerate(images)]
        return await finish("refused", "block", http_status=503)
    trace.assets = [s.entry for s in sealed]
    assets = [s.asset for s in sealed]
    released = [(s.asset.id, s.data) for s in sealed if s.data is not None]

    escalation_id = None
    if "held" in statuses:
        escalating = [d for d in (pre, *image_decisions) if d.action == "escalate"]
        obligations: dict[str, Any] = {}
        for d in escalating:
            obligations.update(d.to_dict()["obligations"])
        masked = await asyncio.to_thread(redact_text, job.prompt, pre_findings)  # every PII span, for reviewers
        escalation = await asyncio.to_thread(
            open_escalation,  # the review queue (issue 5): deadline, expiry, webhooks
            svc,
            request_id=trace.request_id,
            principal=principal,
            reasons=merge_reasons(escalating),
            obligations=obligations,
            callback_url=job.callback_url,
            prompt_masked=masked,
        )
        escalation_id = escalation.id
    if overall == "allow" and pre.action == "redact":
        overall = "redact"
    status = _STATUS_OF[overall]
    return await finish(status, overall, released=released, assets=assets, escalation_id=escalation_id)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
