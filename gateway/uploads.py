"""Uploaded images: safe decoding (size limits, decompression bombs, non-images → clear 4xx errors), and what
an upload's own C2PA manifest says, for the policy to judge an edit by (issue 7).

Every upload is decoded to 8-bit samples (`to_8bit`): one of the modes "L", "LA", "RGB", "RGBA",
with an alpha band exactly where the file has transparency (an alpha channel, a transparent
palette entry or colour key). Transparency is kept, never composited here: the detectors composite
it themselves, the way a viewer shows it. 16-bit and 32-bit samples (modes "I;16", "I", "F") are
scaled to 8 bits by their bit depth or value range; Pillow's own conversion clips them, which turned
a 16-bit picture almost white.

An upload with several frames (an animated GIF, WebP or PNG, a multi-page TIFF) is either screened
frame by frame (`decode_frames`, for moderation: up to a cap, sampled evenly, each reduced to what
the detectors need) or refused where only one picture makes sense (`decode_image(still=True)`, for
an edit's source and mask: code `animated_image`). An MPO file (a camera JPEG with a preview or
depth map appended) counts as a still: its first frame is the picture.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from gateway.errors import BadRequest

#: The modes `to_8bit` (and so `decode_image`) returns.
DECODED_MODES = ("L", "LA", "RGB", "RGBA")
_ROWS_PIXELS = 1 << 20  # wide samples are scaled this many pixels at a time (bounded temporaries)


@contextmanager
def _reading(field: str) -> Iterator[None]:
    """Turn what a decoder raises on a bad, truncated or hostile file into BadRequest with a code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except BadRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadRequest(f"{field} looks like a decompression bomb", code="image_too_large", param=field) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"{field} is not a readable image", code="invalid_image", param=field) from exc


def open_image(data: bytes, *, field: str, max_pixels: int) -> Image.Image:
    """The image in `data`, its header read and its size checked, its pixels not yet decoded;
    BadRequest `invalid_image` or `image_too_large` (the size limit or a decompression bomb)."""
    if not data:
        raise BadRequest(f"{field} is empty", code="invalid_image", param=field)
    with _reading(field):
        image = Image.open(io.BytesIO(data))
        _check_size(image, field, max_pixels)
    return image


def frame_count(image: Image.Image, *, field: str) -> int:
    """How many frames (pages) the opened file holds; 1 for a still image. Reading headers only."""
    with _reading(field):
        return max(1, int(getattr(image, "n_frames", 1)))


#: Formats whose frames all have the file's (canvas) size, each decoded in turn to reach a later one.
_ANIMATIONS = frozenset({"GIF", "PNG", "WEBP", "FLI"})


def decoded_pixels(image: Image.Image, *, field: str, max_pixels: int) -> int:
    """An upper bound of the pixels `decode_frames` decodes from an opened image: every frame at
    the file's size for an animation (reaching a frame decodes the ones before it), else the sum of
    every page's own size (a multi-page TIFF's pages differ; their headers are read, not their
    pixels). A page over `max_pixels` is refused (`image_too_large`) as the first one would be."""
    count = frame_count(image, field=field)
    if count == 1 or image.format in _ANIMATIONS:
        return image.width * image.height * count
    total = 0
    with _reading(field):
        for page in range(count):
            image.seek(page)
            _check_size(image, field, max_pixels)
            total += image.width * image.height
        image.seek(0)
    return total


def _check_size(image: Image.Image, field: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise BadRequest(
            f"{field} is {width}x{height}, over the limit of {max_pixels} pixels",
            code="image_too_large",
            param=field,
        )


def is_animated(image: Image.Image, *, field: str) -> bool:
    """Whether the file holds more than one picture: several frames, except in an MPO (a camera
    JPEG whose extra frames are a preview or depth map of the same shot)."""
    return image.format != "MPO" and frame_count(image, field=field) > 1


def decode_image(data: bytes, *, field: str, max_pixels: int, still: bool = False) -> Image.Image:
    """The first frame of the image in `data`, fully loaded with 8-bit samples (`to_8bit`: "L",
    "LA", "RGB" or "RGBA", alpha kept), or BadRequest with a machine-readable code. With `still`,
    a file of several frames (`is_animated`) is refused with code `animated_image`."""
    image = open_image(data, field=field, max_pixels=max_pixels)
    if still and is_animated(image, field=field):
        raise BadRequest(
            f"{field} holds several frames; send a single still image",
            code="animated_image",
            param=field,
        )
    with _reading(field):
        image.load()
        return to_8bit(image)


@dataclass(frozen=True)
class Frames:
    """The frames of one upload chosen for screening: (frame number in the file, 8-bit image at
    most `max_side` pixels a side), and how many frames the file holds."""

    images: tuple[tuple[int, Image.Image], ...]
    count: int


def sample_frames(count: int, cap: int) -> list[int]:
    """Every frame number when there are at most `cap`; else `cap` of them spread evenly over the
    whole animation, the first and the last included."""
    if count <= cap:
        return list(range(count))
    if cap <= 1:
        return [0]
    return sorted({round(i * (count - 1) / (cap - 1)) for i in range(cap)})


def decode_frames(image: Image.Image, *, field: str, max_pixels: int, max_frames: int, max_side: int) -> Frames:
    """Up to `max_frames` frames of an opened image (`open_image`; `sample_frames` picks them),
    each decoded to 8 bits (`to_8bit`, alpha kept) and reduced by a whole factor (a box filter)
    to at most `max_side` pixels a side, one frame at a time, so at most one full-size frame is
    held; a frame over `max_pixels` is refused (`image_too_large`). Closes `image`. Reaching a
    late frame of an animation decodes the frames before it (`decoded_pixels` counts them)."""
    try:
        count = frame_count(image, field=field)
        out: list[tuple[int, Image.Image]] = []
        with _reading(field):
            if count == 1 and image.format == "JPEG" and max(image.size) > max_side:
                image.draft(image.mode, (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale directly
            for number in sample_frames(count, max_frames):
                image.seek(number)
                _check_size(image, field, max_pixels)
                image.load()
                frame = shrink(to_8bit(image), max_side)
                out.append((number, frame.copy() if frame is image else frame))
        return Frames(tuple(out), count)
    finally:
        image.close()


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """`image` reduced by the smallest whole factor that brings both sides to `max_side` or less
    (a box filter, as the copyright detector reduces; alpha is premultiplied); `image` itself when
    it is small enough."""
    factor = -(-max(image.size) // max_side)
    return image.reduce(factor) if factor > 1 else image


def to_8bit(image: Image.Image) -> Image.Image:
    """`image` with 8-bit samples, in one of `DECODED_MODES`; `image` itself when it already is.

    An alpha band is kept, or made from a transparent palette entry or colour key; nothing is
    composited. 16-bit samples ("I;16*") are scaled by their bit depth (x / 257, as the copyright
    detector reads them); 32-bit ones by their range: "I" as 8-bit when within [0, 255], as
    16-bit within [0, 65535], else stretched from its lowest to its highest value; "F" likewise,
    except that values within [0, 1] are read as fractions of white. Anything else goes through
    Pillow's own conversion.
    """
    mode = image.mode
    transparent = image.has_transparency_data
    if mode in DECODED_MODES and not (transparent and mode in ("L", "RGB")):
        return image
    if mode.startswith("I") or mode == "F":
        return _scaled(image)
    if mode in ("1", "L", "La", "LA"):
        return image.convert("LA" if transparent else "L")
    return image.convert("RGBA" if transparent else "RGB")


def _scaled(image: Image.Image) -> Image.Image:
    """A one-band image of wide samples ("I;16*", "I", "F") as "L" (or "LA" with a colour key)."""
    samples = np.asarray(image)
    if samples.ndim != 2:
        raise ValueError(f"unexpected {image.mode} layout {samples.shape}")
    if image.mode.startswith("I;16"):
        low, scale = 0.0, 1 / 257
    else:
        low, high = _extrema(samples)
        if image.mode == "F" and low >= 0 and high <= 1:
            low, scale = 0.0, 255.0
        elif low >= 0 and high <= 255:
            low, scale = 0.0, 1.0
        elif low >= 0 and high <= 65535:
            low, scale = 0.0, 1 / 257
        else:
            scale = 255.0 / (high - low) if high > low else 0.0
    out = np.empty(samples.shape, dtype=np.uint8)
    step = max(1, _ROWS_PIXELS // max(1, samples.shape[1]))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and infinities of "F" samples: see below
        for row in range(0, samples.shape[0], step):
            block = (samples[row : row + step].astype(np.float64) - low) * scale
            # NaN (and 0 x infinity) is black, infinity white
            out[row : row + step] = np.clip(np.rint(np.nan_to_num(block, nan=0.0, posinf=255.0, neginf=0.0)), 0, 255)
    key: Any = image.info.get("transparency")
    if isinstance(key, int | float) and not isinstance(key, bool):
        alpha = np.where(samples == key, 0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([out, alpha]))
    return Image.fromarray(out)


def _extrema(samples: np.ndarray) -> tuple[float, float]:
    """The lowest and highest finite sample (0, 0 when there is none), a block of rows at a time."""
    low, high = math.inf, -math.inf
    step = max(1, _ROWS_PIXELS // max(1, samples.shape[1]))
    for row in range(0, samples.shape[0], step):
        block = samples[row : row + step]
        if block.dtype.kind == "f":
            block = block[np.isfinite(block)]
        if block.size:
            low, high = min(low, float(block.min())), max(high, float(block.max()))
    return (low, high) if low <= high else (0.0, 0.0)


def to_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """OpenAI masks mark the area to repaint with transparency; diffusers wants white there."""
    if mask.mode in ("RGBA", "LA") or (mask.mode == "P" and "transparency" in mask.info):
        alpha = mask.convert("RGBA").getchannel("A")
        out = alpha.point(lambda a: 255 if a == 0 else 0)
    else:
        out = mask.convert("L")
    return out.resize(size, Image.Resampling.NEAREST)


# C2PA assertion labels that carry a "may this asset be used by AI" statement (c2pa 1.x and the CAWG one).
TRAINING_MINING_LABELS = ("c2pa.training-mining", "cawg.training-mining")


def source_manifest_summary(report: Any) -> dict[str, Any]:
    """What the policy may judge an edit's upload by, from its C2PA manifest (a `ManifestReport`).

    `state` (Trusted, Valid, Invalid, NO_MANIFEST), `manifest_id`, `labels` (the assertion labels of
    the active manifest), `mamori_decision` (the decision a Mamori gateway recorded, if any) and
    `training_mining` ({entry: use}, e.g. {"c2pa.ai_inference": "notAllowed"}). Only labels and short
    values are passed on: never assertion contents that could carry personal data.
    """
    assertions: dict[str, Any] = dict(getattr(report, "assertions", {}) or {})
    decision = assertions.get("mamori.decision")
    mining: dict[str, str] = {}
    for label in TRAINING_MINING_LABELS:
        entries = assertions.get(label)
        entries = entries.get("entries") if isinstance(entries, dict) else None
        if isinstance(entries, dict):
            for name, entry in entries.items():
                use = entry.get("use") if isinstance(entry, dict) else None
                if isinstance(name, str) and isinstance(use, str):
                    mining[name[:100]] = use[:40]
    return {
        "state": report.validation_state,
        "manifest_id": report.manifest_id,
        "labels": sorted(str(label)[:200] for label in assertions)[:64],
        "mamori_decision": str(decision.get("decision"))[:40] if isinstance(decision, dict) else None,
        "training_mining": mining,
    }
