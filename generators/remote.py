"""Forward image requests to any OpenAI-compatible images API (`/images/generations`, `/images/edits`).

- Generation: `POST {base_url}/images/generations` with JSON `prompt`, `n`, `size` ("WxH"),
  `response_format` "b64_json", `seed` (an extra field that servers may honour or ignore) and `model`
  when configured.
- Edit: `POST {base_url}/images/edits` as multipart: files `image` (PNG) and, when given, `mask`,
  fields `prompt`, `n`, `size`, `response_format`, `seed`, `model`.

Masks: Mamori's contract paints the *white* area of the mask, while OpenAI's API edits where the mask
is *transparent* (alpha 0). The mask is sent as an RGBA PNG whose alpha is 0 where Mamori's mask is
white, so both readings agree: its colour channels are white there, too.

Every failure (HTTP status ≥ 400, timeout, connection error, a body that is not the expected JSON,
an image that does not decode) becomes a `GeneratorError`; the API key never appears in its message.

Seeds: image `i` is reported with `seed + i`; whether the remote service is deterministic is up to
it.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, Any

from generators.base import EditRequest, GeneratedImage, GeneratorError, ImageRequest
from generators.openai_http import OpenAIHTTP

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["RemoteImageGenerator"]


class RemoteImageGenerator:
    """`ImageGenerator` that calls an OpenAI-compatible images API over HTTP (sync httpx client)."""

    name = "remote"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self._api = OpenAIHTTP(base_url=base_url, api_key=api_key, timeout_s=timeout_s)
        self.base_url = self._api.base_url
        self.model = model
        self.timeout_s = timeout_s
        self.version = f"openai-images-api/{model or 'default'}"

    def __repr__(self) -> str:  # never show the key
        return f"RemoteImageGenerator(base_url={self.base_url!r}, model={self.model!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> None:
        """Create the HTTP client (connection pool); no request is sent."""
        self._api.client()

    def close(self) -> None:
        self._api.close()

    # -- requests --------------------------------------------------------------------------

    def generate(self, request: ImageRequest) -> list[GeneratedImage]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "n": request.n,
            "size": f"{request.width}x{request.height}",
            "response_format": "b64_json",
            "seed": request.seed,
        }
        if self.model:
            body["model"] = self.model
        payload = self._post("/images/generations", json=body)
        return self._results(payload, request.n, request.seed)

    def edit(self, request: EditRequest) -> list[GeneratedImage]:
        size = (request.width, request.height)
        files: dict[str, tuple[str, bytes, str]] = {
            "image": ("image.png", _png(_fit(request.image.convert("RGB"), size)), "image/png"),
        }
        if request.mask is not None:
            files["mask"] = ("mask.png", _png(_openai_mask(request.mask, size)), "image/png")
        data: dict[str, str] = {
            "prompt": request.prompt,
            "n": str(request.n),
            "size": f"{request.width}x{request.height}",
            "response_format": "b64_json",
            "seed": str(request.seed),
        }
        if self.model:
            data["model"] = self.model
        payload = self._post("/images/edits", data=data, files=files)
        return self._results(payload, request.n, request.seed)

    def _post(self, path: str, **kwargs: Any) -> Any:
        return self._api.post_json(path, **kwargs)

    def _results(self, payload: Any, n: int, seed: int) -> list[GeneratedImage]:
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise GeneratorError("remote: the response has no `data` list")
        if len(data) != n:
            raise GeneratorError(f"remote: asked for {n} image(s), the response holds {len(data)}")
        results: list[GeneratedImage] = []
        for i, item in enumerate(data):
            b64 = item.get("b64_json") if isinstance(item, dict) else None
            if not isinstance(b64, str):
                raise GeneratorError(f"remote: image {i} of the response has no `b64_json`")
            try:
                raw = base64.b64decode(b64, validate=True)
                image = PILImage.open(io.BytesIO(raw))
                image.load()
            except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
                raise GeneratorError(f"remote: image {i} of the response does not decode: {exc}") from exc
            results.append(GeneratedImage(image=image.convert("RGB"), seed=seed + i))
        return results


def _fit(image: Image, size: tuple[int, int]) -> Image:
    from PIL import Image as PILImage

    return image if image.size == size else image.resize(size, PILImage.Resampling.LANCZOS)


def _openai_mask(mask: Image, size: tuple[int, int]) -> Image:
    """White (repaint) in Mamori's mask → transparent in OpenAI's; black (keep) → opaque black."""
    from PIL import Image as PILImage

    gray = mask.convert("L")
    if gray.size != size:
        gray = gray.resize(size, PILImage.Resampling.NEAREST)
    paint = gray.point(lambda p: 255 if p >= 128 else 0)
    keep = paint.point(lambda p: 255 - p)
    return PILImage.merge("RGBA", (paint, paint, paint, keep))


def _png(image: Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
