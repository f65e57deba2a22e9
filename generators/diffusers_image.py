"""Image generation and editing with local Stable Diffusion pipelines (Hugging Face diffusers).

Three pipelines, each loaded through `from_pretrained` from a local folder or a hub id:

- `model`: text to image (`StableDiffusionPipeline`);
- `edit_model`: instruction edits without a mask (`StableDiffusionInstructPix2PixPipeline`, 8-channel UNet);
- `inpaint_model`: edits with a mask (`StableDiffusionInpaintPipeline`, UNet with 9 or 4 inputs).

Reproducibility: image `i` of a request is generated alone, with a `torch.Generator` on the
pipeline's device seeded with `seed + i`, so the same seed, prompt, sizes and backend give the same
pixels whatever `n` is.

Safety (STYLE point 8): a pipeline that ships a safety checker keeps it. A pipeline without one (the
tiny test models, or a folder whose `model_index.json` has none) sets `safety_checker_disabled`, and
the gateway must log and audit that loudly.
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from typing import TYPE_CHECKING, Any

from generators.base import EditRequest, GeneratedImage, GeneratorError, ImageRequest
from generators.devices import describe, resolve_device, resolve_dtype_name

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["DiffusersImageGenerator"]

logger = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "float16", "bfloat16")
_ROLES = {
    "text2img": "text-to-image (model)",
    "edit": "instruction edit (edit_model)",
    "inpaint": "masked edit (inpaint_model)",
}


class DiffusersImageGenerator:
    """`ImageGenerator` backed by local diffusers Stable Diffusion pipelines."""

    name = "diffusers"

    def __init__(
        self,
        *,
        model: str,
        edit_model: str | None = None,
        inpaint_model: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        steps: int = 2,
        guidance_scale: float = 7.5,
        local_files_only: bool = True,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.model = str(model)
        self.edit_model = None if edit_model is None else str(edit_model)
        self.inpaint_model = None if inpaint_model is None else str(inpaint_model)
        self.device = device
        self.dtype = dtype
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.local_files_only = local_files_only
        self.version: str = metadata.version("diffusers")
        # Unknown until load(); then True when any loaded pipeline runs without a safety checker.
        self.safety_checker_disabled: bool = False
        self.pipelines_without_safety_checker: tuple[str, ...] = ()

        self._load_lock = threading.Lock()
        self._loaded = False
        self._pipes: dict[str, Any] = {}
        self._locks = {role: threading.Lock() for role in _ROLES}
        self._torch_device: str = "cpu"

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load every configured pipeline once (later calls return at once)."""
        with self._load_lock:
            if self._loaded:
                return
            try:
                self._load()
            except GeneratorError:
                raise
            except Exception as exc:
                raise GeneratorError(f"diffusers: loading the pipelines failed: {describe(exc)}") from exc
            self._loaded = True

    def _load(self) -> None:
        import torch
        from diffusers import (
            StableDiffusionInpaintPipeline,
            StableDiffusionInstructPix2PixPipeline,
            StableDiffusionPipeline,
        )

        device = resolve_device(self.device)
        torch_dtype = getattr(torch, resolve_dtype_name(self.dtype, device, on_cuda="float16"))
        self._torch_device = device

        def load_one(pipeline_class: Any, source: str) -> Any:
            pipe = pipeline_class.from_pretrained(source, dtype=torch_dtype, local_files_only=self.local_files_only)
            pipe = pipe.to(device)
            pipe.set_progress_bar_config(disable=True)
            return pipe

        text2img = load_one(StableDiffusionPipeline, self.model)
        edit = None
        if self.edit_model is not None:
            edit = load_one(StableDiffusionInstructPix2PixPipeline, self.edit_model)
            if edit.unet.config.in_channels != 8:
                raise GeneratorError(
                    f"diffusers: edit_model {self.edit_model!r} is not an InstructPix2Pix model "
                    f"(its UNet takes {edit.unet.config.in_channels} channels, not 8)"
                )
        inpaint = None
        if self.inpaint_model is not None:
            inpaint = load_one(StableDiffusionInpaintPipeline, self.inpaint_model)
            if inpaint.unet.config.in_channels not in (4, 9):
                raise GeneratorError(
                    f"diffusers: inpaint_model {self.inpaint_model!r} has a UNet with "
                    f"{inpaint.unet.config.in_channels} input channels (expected 9, or 4 for legacy inpaint)"
                )

        loaded = {"text2img": text2img, "edit": edit, "inpaint": inpaint}
        without = tuple(
            role for role, pipe in loaded.items() if pipe is not None and getattr(pipe, "safety_checker", None) is None
        )
        self._pipes = {role: pipe for role, pipe in loaded.items() if pipe is not None}
        self.pipelines_without_safety_checker = without
        self.safety_checker_disabled = bool(without)
        if without:
            logger.warning(
                "diffusers pipelines without a safety checker: %s (outputs are not screened by the backend)",
                ", ".join(without),
            )

    # -- generation ------------------------------------------------------------------------

    def generate(self, request: ImageRequest) -> list[GeneratedImage]:
        """Text to image at `request.width` × `request.height`; image `i` uses seed `seed + i`."""
        _check_request(request.n, request.width, request.height)
        call = {"prompt": request.prompt, "width": request.width, "height": request.height}
        images = self._run("text2img", request.n, request.seed, request.steps, request.guidance_scale, call)
        return [GeneratedImage(image=im, seed=request.seed + i) for i, im in enumerate(images)]

    def edit(self, request: EditRequest) -> list[GeneratedImage]:
        """Edit `request.image`: with a mask by inpainting (only the white area changes), else by instruction.

        The result is `request.width` × `request.height`; the input image is resized to that first.
        """
        from PIL import Image as PILImage

        _check_request(request.n, request.width, request.height)
        size = (request.width, request.height)
        image = _rgb(request.image, size)
        if request.mask is None:
            call: dict[str, Any] = {"prompt": request.prompt, "image": image}
            edited = self._run("edit", request.n, request.seed, request.steps, request.guidance_scale, call)
            images = [_resized(im, size) for im in edited]
        else:
            # A mask is never ignored: without an inpainting model the request fails.
            mask = _binary_mask(request.mask, size)
            call = {
                "prompt": request.prompt,
                "image": image,
                "mask_image": mask,
                "width": request.width,
                "height": request.height,
            }
            painted = self._run("inpaint", request.n, request.seed, request.steps, request.guidance_scale, call)
            # Keep the original pixels outside the mask exactly (the VAE round trip alters them).
            images = [PILImage.composite(_resized(im, size), image, mask) for im in painted]
        return [GeneratedImage(image=im, seed=request.seed + i) for i, im in enumerate(images)]

    def _run(
        self,
        role: str,
        n: int,
        seed: int,
        steps: int | None,
        guidance_scale: float | None,
        call: dict[str, Any],
    ) -> list[Image]:
        """Run pipeline `role` once per image, image `i` with a generator seeded `seed + i`."""
        import torch

        if not self._loaded:
            self.load()
        pipe = self._pipes.get(role)
        if pipe is None:
            raise GeneratorError(f"diffusers: no model is configured for {_ROLES[role]}")
        images: list[Image] = []
        for i in range(n):
            try:
                with self._locks[role]:
                    output = pipe(
                        **call,
                        num_inference_steps=steps or self.steps,
                        guidance_scale=self.guidance_scale if guidance_scale is None else guidance_scale,
                        num_images_per_prompt=1,
                        generator=torch.Generator(device=self._torch_device).manual_seed(seed + i),
                        output_type="pil",
                    )
            except Exception as exc:
                raise GeneratorError(f"diffusers: {_ROLES[role]} failed: {describe(exc)}") from exc
            images.append(_first_image(output, role))
        return images


def _first_image(output: Any, role: str) -> Image:
    images = output.images
    if not images:
        raise GeneratorError(f"diffusers: the {role} pipeline returned no image")
    nsfw = getattr(output, "nsfw_content_detected", None)
    if nsfw and any(nsfw):
        # The backend's own checker blanked the image; keep its decision and say so.
        logger.warning("diffusers %s safety checker flagged an output; the image was blanked", role)
    image: Image = images[0]
    return image.convert("RGB") if image.mode != "RGB" else image


def _check_request(n: int, width: int, height: int) -> None:
    if n < 1:
        raise GeneratorError(f"diffusers: n must be at least 1, not {n}")
    if width < 8 or height < 8 or width % 8 or height % 8:
        raise GeneratorError(f"diffusers: width and height must be multiples of 8, not {width}x{height}")


def _rgb(image: Image, size: tuple[int, int]) -> Image:

    return _resized(image.convert("RGB") if image.mode != "RGB" else image, size)


def _resized(image: Image, size: tuple[int, int]) -> Image:
    from PIL import Image as PILImage

    return image if image.size == size else image.resize(size, PILImage.Resampling.LANCZOS)


def _binary_mask(mask: Image, size: tuple[int, int]) -> Image:
    """White (≥ 50 %) = repaint, black = keep; the same threshold the diffusers mask processor applies."""
    from PIL import Image as PILImage

    gray = mask.convert("L")
    if gray.size != size:
        gray = gray.resize(size, PILImage.Resampling.NEAREST)
    return gray.point(lambda p: 255 if p >= 128 else 0)
