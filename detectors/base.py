"""The detector contract: the `Detector` protocol, the items it inspects and the `Finding` it returns.

Detectors measure; they never decide. Thresholds and allow/deny live in the Rego policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image

Modality = Literal["text", "image"]
Stage = Literal["prescreen", "output"]
JSONValue = Any  # JSON-safe value: str, int, float, bool, None, list, dict


class DetectorError(Exception):
    """Raised by a detector that cannot produce a result; the gateway fails closed on it."""


@dataclass(frozen=True)
class Finding:
    """One measurement. `evidence` is JSON-safe and never holds a raw PII value."""

    detector: str
    category: str
    score: float
    explanation: str = ""
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    span: tuple[int, int] | None = None
    region: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"finding score {self.score!r} from {self.detector} is outside [0, 1]")

    def to_dict(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {
            "detector": self.detector,
            "category": self.category,
            "score": round(float(self.score), 6),
            "explanation": self.explanation,
            "evidence": dict(self.evidence),
        }
        if self.span is not None:
            out["span"] = list(self.span)
        if self.region is not None:
            out["region"] = list(self.region)
        return out


@dataclass(frozen=True)
class TextItem:
    """A piece of text to inspect, e.g. the instruction of a request."""

    text: str
    language: str = "en"


@dataclass(frozen=True, eq=False)
class ImageItem:
    """An image to inspect. `role` tells whether it is a generated output or an uploaded edit source."""

    image: Image
    role: Literal["output", "edit_source", "mask"] = "output"
    index: int = 0


Item = TextItem | ImageItem


@dataclass(frozen=True)
class DetectionContext:
    """What a detector may know about the request besides the item.

    `resources` carries shared, gateway-provided data by well-known key, for example
    `"terms"` (the deny-list from the policy bundle's data) or `"protected_index"`
    (the protected-works hash index). Detectors read; they never write to it.
    """

    request_id: str
    tenant: str
    stage: Stage
    resources: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Detector(Protocol):
    """One detector per file. `load()` does heavy setup once at startup; `detect()` is thread-safe."""

    name: str
    version: str
    modalities: frozenset[str]

    def load(self) -> None: ...

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]: ...


def measures_across_batch(detector: Detector) -> bool:
    """Whether a detector's findings measure its whole batch (set `across_batch = True` on the class),
    as bias_image's diversity of people does: such a detector must see each image once, never one
    image's frames as separate images."""
    return bool(getattr(detector, "across_batch", False))
