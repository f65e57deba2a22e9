"""OpenAI-compatible image routes: `POST /v1/images/generations` and `POST /v1/images/edits`.

An edit's source and mask must be still images: a file of several frames (an animated GIF, WebP
or PNG, a multi-page TIFF) is refused with 400 `animated_image`, since only one picture can be
edited and the frames that would not be could not be vetted as what was edited. The source is
screened as the generator receives it (RGB at the requested size); the mask is screened too, as
it was uploaded (at the requested size, transparency kept, role "mask"), although only its alpha
or grey values reach the generator: a mask that is a whole picture is judged like a source.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from PIL.Image import Image as PILImage
from starlette.datastructures import UploadFile

from gateway.api.bodies import load_json, validate_object
from gateway.api.deps import CanEdit, CanGenerate, ServicesDep, read_form
from gateway.errors import BadRequest, GatewayFault, PayloadTooLarge, PolicyRefusal
from gateway.keys import Principal
from gateway.pipeline import ImageJob, ImageOutcome, b64, run_image_job
from gateway.provenance import Ingredient, ProvenanceError
from gateway.schemas import ImageGenerationRequest
from gateway.services import Services
from gateway.settings import Settings
from gateway.text_pipeline import expand_image_prompt
from gateway.trace import Trace
from gateway.uploads import decode_image, source_manifest_summary, to_mask
from gateway.webhooks import callback_or_400

router = APIRouter(prefix="/v1/images", tags=["images"])
DEFAULT_SIZE = "1024x1024"


def _trace(request: Request) -> Trace:
    trace: Trace = request.state.trace
    return trace


def _size(settings: Settings, size: str | None) -> tuple[int, int]:
    size = size or DEFAULT_SIZE
    if size not in settings.sizes:
        raise BadRequest(
            f"this size is not supported; use one of {', '.join(settings.sizes)}",
            code="invalid_size",
            param="size",
        )
    w, h = size.split("x")
    return int(w), int(h)


def _check_common(settings: Settings, prompt: str, n: int) -> None:
    if not prompt.strip():
        raise BadRequest("prompt must not be empty", code="invalid_prompt", param="prompt")
    if len(prompt) > settings.max_prompt_chars:
        raise BadRequest(
            f"prompt is {len(prompt)} characters, over the limit of {settings.max_prompt_chars}",
            code="prompt_too_long",
            param="prompt",
        )
    if not 1 <= n <= settings.max_n:
        raise BadRequest(f"n must be between 1 and {settings.max_n}", code="invalid_n", param="n")


def _note_request(trace: Trace, job: ImageJob, user: str | None, extra: dict[str, Any] | None = None) -> None:
    trace.request.update(
        kind=job.kind,
        n=job.n,
        size=f"{job.width}x{job.height}",
        seed=job.seed,
        response_format=job.response_format,
        prompt_sha256=hashlib.sha256(job.prompt.encode()).hexdigest(),
        prompt_chars=len(job.prompt),
        user_sha256=hashlib.sha256(user.encode()).hexdigest()[:32] if user else None,
        **(extra or {}),
    )


def asset_url(svc: Services, request: Request, asset_id: str) -> str:
    base = svc.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/v1/assets/{asset_id}"


def render(
    svc: Services,
    request: Request,
    *,
    mamori: dict[str, Any],
    images: list[tuple[str, bytes]],
    response_format: str,
    created: int,
) -> dict[str, Any]:
    data = []
    for asset_id, png in images:
        if response_format == "url":
            data.append({"url": asset_url(svc, request, asset_id)})
        else:
            data.append({"b64_json": b64(png)})
    return {"created": created, "data": data, "mamori": mamori}


def _answer(svc: Services, request: Request, outcome: ImageOutcome, response_format: str) -> JSONResponse:
    body = render(
        svc,
        request,
        mamori=outcome.mamori,
        images=outcome.images,
        response_format=response_format,
        created=int(time.time()),
    )
    if outcome.status == "refused":
        message = outcome.refusal_message or "Request refused by Mamori policy."
        if outcome.http_status >= 500:
            raise GatewayFault(
                "An internal check failed, so nothing was released (fail closed).",
                code="mamori_fault",
                mamori=outcome.mamori,
            )
        raise PolicyRefusal(message, mamori=outcome.mamori)
    return JSONResponse(body, status_code=outcome.http_status)


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbelow(2**31)


@router.post("/generations", summary="Create images (OpenAI-compatible), governed")
async def create_images(request: Request, svc: ServicesDep, principal: CanGenerate) -> JSONResponse:
    payload = load_json(await request.body())
    body = validate_object(ImageGenerationRequest, payload)
    settings = svc.settings
    _check_common(settings, body.prompt, body.n)
    width, height = _size(settings, body.size)
    job = ImageJob(
        kind="generate",
        prompt=body.prompt,
        n=body.n,
        width=width,
        height=height,
        seed=_seed(body.seed),
        response_format=body.response_format or "b64_json",
        callback_url=callback_or_400(settings, body.callback_url),
    )
    trace = _trace(request)
    _note_request(trace, job, body.user, {"model": body.model})
    if payload.get("mamori_expand_prompt") is True:
        job.prompt = await _expanded_prompt(svc, trace, principal, job)
    outcome = await run_image_job(svc, trace, principal, job)
    return _answer(svc, request, outcome, job.response_format)


async def _expanded_prompt(svc: Services, trace: Trace, principal: Principal, job: ImageJob) -> str:
    """Issue 7: the text model expands a short instruction; the instruction and the result are both screened."""
    if svc.text_generator is None:
        raise BadRequest("prompt expansion needs a text model", code="expansion_unavailable")
    expansion = await expand_image_prompt(svc, trace, principal, job.prompt, job.seed, svc.settings.max_prompt_chars)
    if expansion.prompt is None:
        if expansion.http_status >= 500:
            raise GatewayFault("The prompt expansion failed, so nothing was generated.", mamori=expansion.mamori)
        codes = ", ".join(r["code"] for r in expansion.mamori["reasons"]) or "policy"
        raise PolicyRefusal(f"Request refused by Mamori policy ({codes}).", mamori=expansion.mamori)
    return expansion.prompt


async def _read_file(upload: UploadFile, field: str, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{field} is over {limit} bytes", code="upload_too_large", param=field)
    return data


def _int_field(form: dict[str, Any], name: str, default: int | None) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer", code="invalid_request", param=name) from exc


def _source_provenance(svc: Services, data: bytes) -> tuple[Ingredient | None, dict[str, Any]]:
    """The upload's own C2PA manifest (read offline), and the upload as the edit's parent ingredient."""
    mime = "image/png" if data.startswith(b"\x89PNG\r\n\x1a\n") else "image/jpeg" if data[:2] == b"\xff\xd8" else None
    if mime is None:
        return None, {"state": "unsupported_format"}
    try:
        report = svc.provenance.read(data, mime)
    except ProvenanceError:
        return Ingredient(data=data, mime=mime, title="source"), {"state": "unreadable"}
    return Ingredient(data=data, mime=mime, title="source"), source_manifest_summary(report)


def _decode_edit_inputs(
    image: bytes, mask: bytes | None, size: tuple[int, int], max_pixels: int
) -> tuple[PILImage, PILImage | None, PILImage | None]:
    """The source as the generator edits it (RGB at `size`), the mask as the generator reads it
    (`to_mask`) and the mask as uploaded (at `size`, alpha kept) for the detectors. Both files must
    be still images (400 `animated_image`)."""
    source = decode_image(image, field="image", max_pixels=max_pixels, still=True).convert("RGB").resize(size)
    if mask is None:
        return source, None, None
    uploaded = decode_image(mask, field="mask", max_pixels=max_pixels, still=True)
    return source, to_mask(uploaded, size), uploaded.resize(size)


@router.post("/edits", summary="Edit an image (OpenAI-compatible), governed; a mask selects inpainting")
async def edit_images(request: Request, svc: ServicesDep, principal: CanEdit) -> JSONResponse:
    settings = svc.settings
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise BadRequest("edits take multipart/form-data", code="invalid_content_type")
    form = await read_form(request, max_files=4, max_fields=32, max_part_size=256 * 1024)
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        fields.setdefault(key, value)
    image = fields.get("image") or fields.get("image[]")
    if not isinstance(image, UploadFile):
        raise BadRequest("an 'image' file is required", code="missing_image", param="image")
    mask = fields.get("mask")
    if mask is not None and not isinstance(mask, UploadFile):
        raise BadRequest("'mask' must be a file", code="invalid_mask", param="mask")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("a 'prompt' field is required", code="invalid_prompt", param="prompt")
    n = _int_field(fields, "n", 1)
    assert n is not None
    seed = _int_field(fields, "seed", None)
    if seed is not None and not 0 <= seed < 2**32:
        raise BadRequest("seed must be between 0 and 2^32-1", code="invalid_request", param="seed")
    response_format = str(fields.get("response_format") or "b64_json")
    if response_format not in ("b64_json", "url"):
        raise BadRequest("response_format must be b64_json or url", code="invalid_request", param="response_format")
    _check_common(settings, prompt, n)
    width, height = _size(settings, str(fields["size"]) if fields.get("size") else None)

    image_bytes = await _read_file(image, "image", settings.max_upload_bytes)
    mask_bytes = await _read_file(mask, "mask", settings.max_upload_bytes) if mask is not None else None
    source, mask_image, mask_upload = await asyncio.to_thread(
        _decode_edit_inputs, image_bytes, mask_bytes, (width, height), settings.max_image_pixels
    )
    extra: dict[str, Any] = {"source_sha256": hashlib.sha256(image_bytes).hexdigest()}
    ingredient, extra["source_manifest"] = await asyncio.to_thread(_source_provenance, svc, image_bytes)
    if mask_bytes is not None:
        extra["mask_sha256"] = hashlib.sha256(mask_bytes).hexdigest()
    job = ImageJob(
        kind="edit",
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        seed=_seed(seed),
        response_format=response_format,
        source=source,
        mask=mask_image,
        mask_upload=mask_upload,  # screened with the source (role "mask")
        source_ingredient=ingredient,
        source_manifest=extra["source_manifest"],  # issue 7: the policy may refuse to edit it
    )
    trace = _trace(request)
    _note_request(trace, job, str(fields["user"]) if fields.get("user") else None, extra)
    outcome = await run_image_job(svc, trace, principal, job)
    return _answer(svc, request, outcome, job.response_format)
