"""Decoding uploaded images safely: size limits, decompression bombs, non-images → clear 4xx errors."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from gateway.errors import BadRequest


def decode_image(data: bytes, *, field: str, max_pixels: int) -> Image.Image:
    """An RGBA-capable PIL image fully loaded from `data`, or BadRequest with a machine-readable code."""
    if not data:
        raise BadRequest(f"{field} is empty", code="invalid_image", param=field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise BadRequest(
                    f"{field} is {width}x{height}, over the limit of {max_pixels} pixels",
                    code="image_too_large",
                    param=field,
                )
            image.load()
    except BadRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadRequest(f"{field} looks like a decompression bomb", code="image_too_large", param=field) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"{field} is not a readable image", code="invalid_image", param=field) from exc
    return image


def to_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """OpenAI masks mark the area to repaint with transparency; diffusers wants white there."""
    if mask.mode in ("RGBA", "LA") or (mask.mode == "P" and "transparency" in mask.info):
        alpha = mask.convert("RGBA").getchannel("A")
        out = alpha.point(lambda a: 255 if a == 0 else 0)
    else:
        out = mask.convert("L")
    return out.resize(size, Image.Resampling.NEAREST)
