"""Helpers for people writing a detector: a contract check, contexts and synthetic inputs.

Typical use in a detector's own tests::

    from detectors.testing import assert_detector_contract, make_context, sample_items, SAMPLE_PII_VALUES

    def test_contract() -> None:
        detector = MyDetector()
        detector.load()
        assert_detector_contract(detector, sample_items(), make_context(), pii_values=SAMPLE_PII_VALUES)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from detectors.base import DetectionContext, Detector, Finding, ImageItem, Item, Stage, TextItem

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "MODALITIES",
    "SAMPLE_PII_TEXT",
    "SAMPLE_PII_VALUES",
    "assert_detector_contract",
    "assert_no_pii",
    "found_spans",
    "gradient_image",
    "make_context",
    "modality_of",
    "sample_items",
    "synthetic_image",
]

MODALITIES = frozenset({"text", "image"})

#: Raw personal values used in `SAMPLE_PII_TEXT`; none may appear in evidence or explanations.
SAMPLE_PII_VALUES: tuple[str, ...] = (
    "John Smith",
    "john.smith@example.com",
    "212-555-0187",
    "4111 1111 1111 1111",
)
SAMPLE_PII_TEXT = (
    "Hello, my name is John Smith. Write to john.smith@example.com or call 212-555-0187; "
    "my card number is 4111 1111 1111 1111."
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _check(condition: object, message: str) -> None:
    """Like `assert`, but not stripped by `python -O`."""
    if not condition:
        raise AssertionError(message)


def make_context(
    *,
    tenant: str = "tenant-a",
    stage: Stage = "prescreen",
    request_id: str = "test-request",
    resources: Mapping[str, Any] | None = None,
    **more_resources: Any,
) -> DetectionContext:
    """A `DetectionContext` for tests; resources by mapping and/or keyword (`terms=[...]`)."""
    merged = {**(resources or {}), **more_resources}
    return DetectionContext(request_id=request_id, tenant=tenant, stage=stage, resources=merged)


def gradient_image(size: tuple[int, int] = (256, 256)) -> Image:
    """A plain horizontal grey-to-blue gradient: benign by any measure."""
    import numpy as np
    from PIL import Image as PILImage

    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, axis=0)
    rgb = np.stack([ramp * 0.5, ramp * 0.5, ramp], axis=-1).astype(np.uint8)
    return PILImage.fromarray(rgb, "RGB")


def synthetic_image(seed: int, size: tuple[int, int] = (256, 256)) -> Image:
    """A deterministic picture-like image (smooth background, random shapes) for `seed`.

    Unlike white noise it has structure at every scale, so perceptual hashes of its crops and
    resizes behave as they do on photographs.
    """
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        channels.append(127 + 100 * np.sin(2 * np.pi * (fx * xx / w + fy * yy / h) + phase))
    image = PILImage.fromarray(np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(w // 10, w // 2)), y0 + int(rng.integers(h // 10, h // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=color)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=color)
    return image.filter(ImageFilter.GaussianBlur(radius=max(1, w // 128)))


def sample_items() -> list[Item]:
    """One text item holding `SAMPLE_PII_TEXT` and one generated image item."""
    return [TextItem(SAMPLE_PII_TEXT), ImageItem(synthetic_image(0), role="output", index=0)]


def modality_of(item: Item) -> str:
    return "text" if isinstance(item, TextItem) else "image"


def _variants(value: str) -> set[str]:
    folded = value.casefold()
    return {folded, re.sub(r"[\s\-.()]", "", folded)} - {""}


def assert_no_pii(findings: Iterable[Finding], pii_values: Iterable[str]) -> None:
    """No raw PII value (nor its form without spaces, dashes, dots) in any category, evidence or
    explanation."""
    values = [v for v in pii_values if v]
    for f in findings:
        exposed = json.dumps(
            {"category": f.category, "explanation": f.explanation, "evidence": dict(f.evidence)},
            ensure_ascii=False,
            default=str,
        ).casefold()
        for value in values:
            for form in _variants(value):
                _check(form not in exposed, f"{f.detector}: a raw PII value appears in a finding")


def found_spans(detector: Detector, text: str, ctx: DetectionContext | None = None) -> list[tuple[str, str]]:
    """(entity type or category, the original text under the span) for each finding with a span,
    after checking that no finding exposes those texts (`assert_no_pii`)."""
    found = detector.detect(TextItem(text), ctx or make_context())
    assert_no_pii(found, [text[f.span[0] : f.span[1]] for f in found if f.span])
    return [(str(f.evidence.get("entity_type", f.category)), text[f.span[0] : f.span[1]]) for f in found if f.span]


def category_scores(detector: Detector, text: str, ctx: DetectionContext | None = None) -> dict[str, float]:
    """Each category's score in the findings of `detector` on `text`."""
    return {f.category: f.score for f in detector.detect(TextItem(text), ctx or make_context())}


def _check_finding(detector: Detector, item: Item, f: Any) -> None:
    where = f"{detector.name}: finding {f!r}"
    _check(isinstance(f, Finding), f"{detector.name}: detect() returned {type(f).__name__}, not Finding")
    _check(f.detector == detector.name, f"{where} names detector {f.detector!r}")
    _check(isinstance(f.category, str) and f.category, f"{where} has no category")
    _check(isinstance(f.score, int | float) and not isinstance(f.score, bool), f"{where}: score type")
    _check(math.isfinite(f.score) and 0.0 <= f.score <= 1.0, f"{where}: score outside [0, 1]")
    _check(isinstance(f.explanation, str), f"{where}: explanation is not a string")
    _check(isinstance(f.evidence, Mapping), f"{where}: evidence is not a mapping")
    try:
        json.dumps(f.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{where}: not JSON-safe ({exc})") from exc
    if f.span is not None:
        if not isinstance(item, TextItem):
            raise AssertionError(f"{where}: span on a non-text item")
        start, end = f.span
        _check(isinstance(start, int) and isinstance(end, int), f"{where}: span is not ints")
        _check(0 <= start < end <= len(item.text), f"{where}: span outside the text")
    if f.region is not None:
        _check(isinstance(item, ImageItem), f"{where}: region on a non-image item")
        _check(len(f.region) == 4 and all(isinstance(v, int) and v >= 0 for v in f.region), where)


def _as_dicts(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in findings]


def _same(a: Sequence[Finding], b: Sequence[Finding], tol: float) -> bool:
    """Equal findings, allowing scores to differ by `tol` (and explanations, which may quote them)."""
    if len(a) != len(b):
        return False
    for x, y in zip(_as_dicts(a), _as_dicts(b), strict=True):
        if abs(x.pop("score") - y.pop("score")) > tol:
            return False
        x.pop("explanation")
        y.pop("explanation")
        if x != y:
            return False
    return True


def assert_detector_contract(
    detector: Detector,
    items: Sequence[Item],
    ctx: DetectionContext,
    *,
    pii_values: Iterable[str] = (),
    threads: int = 4,
    score_tolerance: float = 1e-5,
) -> list[list[Finding]]:
    """Check a *loaded* detector against the contract in `detectors.base`; return its findings.

    Checks: protocol attributes; items outside `modalities` give no findings; every finding is a
    `Finding` from this detector with a finite score in [0, 1], JSON-safe `to_dict()`, a span
    inside the text (text only) and no value of `pii_values` in category, evidence or
    explanation; repeated and concurrent (`threads`) calls agree; `detect_batch`, if present,
    agrees with `detect`. Scores may differ by `score_tolerance` (batched inference).
    """
    _check(isinstance(detector, Detector), f"{detector!r} does not implement the Detector protocol")
    _check(isinstance(detector.name, str) and _NAME.match(detector.name), "name must be snake_case")
    _check(isinstance(detector.version, str) and detector.version, f"{detector.name}: empty version")
    _check(isinstance(detector.modalities, frozenset), f"{detector.name}: modalities not a frozenset")
    _check(detector.modalities and detector.modalities <= MODALITIES, f"{detector.name}: modalities")

    pii = list(pii_values)
    results: list[list[Finding]] = []
    for item in items:
        found = detector.detect(item, ctx)
        _check(isinstance(found, list), f"{detector.name}: detect() must return a list")
        if modality_of(item) not in detector.modalities:
            _check(found == [], f"{detector.name}: findings for a {modality_of(item)} item")
        for f in found:
            _check_finding(detector, item, f)
        assert_no_pii(found, pii)
        again = detector.detect(item, ctx)
        _check(_same(found, again, score_tolerance), f"{detector.name}: repeated detect() differs")
        results.append(found)

    if threads > 1 and items:
        work = [i for i in range(len(items)) for _ in range(threads)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            concurrent = list(pool.map(lambda i: (i, detector.detect(items[i], ctx)), work))
        for i, found in concurrent:
            _check(_same(results[i], found, score_tolerance), f"{detector.name}: concurrent detect() differs")

    batch = getattr(detector, "detect_batch", None)
    if callable(batch):
        batched = batch(list(items), ctx)
        _check(isinstance(batched, list) and len(batched) == len(items), f"{detector.name}: detect_batch")
        for single, many in zip(results, batched, strict=True):
            _check(_same(single, many, score_tolerance), f"{detector.name}: detect_batch differs from detect")
    return results
