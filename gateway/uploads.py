"""Uploaded images: safe decoding (size limits, decompression bombs, non-images → clear 4xx errors), and what
an upload's own C2PA manifest says, for the policy to judge an edit by (issue 7)."""

from __future__ import annotations

import io
import warnings
from typing import Any

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
