from __future__ import annotations

import pytest

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.image_safety import OpenNSFWImageSafety
from detectors.testing import gradient_image, make_context, synthetic_image


@pytest.fixture(scope="module")
def detector() -> OpenNSFWImageSafety:
    d = OpenNSFWImageSafety()
    d.load()
    return d


def test_gradient_scores_low(detector: OpenNSFWImageSafety) -> None:
    item = ImageItem(gradient_image((320, 240)), role="output", index=3)
    (f,) = detector.detect(item, make_context(stage="output"))
    assert f.detector == "image_safety"
    assert f.category == "sexual"
    assert f.score < 0.2
    assert f.evidence == {"role": "output", "index": 3}
    assert f.span is None


def test_always_one_finding_in_range(detector: OpenNSFWImageSafety) -> None:
    for seed in range(4):
        findings = detector.detect(ImageItem(synthetic_image(seed)), make_context())
        assert len(findings) == 1
        assert 0.0 <= findings[0].score <= 1.0


def test_batch_equals_single(detector: OpenNSFWImageSafety) -> None:
    items = [
        ImageItem(gradient_image(), role="output", index=0),
        TextItem("not an image"),
        ImageItem(synthetic_image(1, (300, 200)).convert("L"), role="edit_source", index=1),
        ImageItem(synthetic_image(2).convert("RGBA"), role="output", index=2),
    ]
    ctx = make_context()
    batched = detector.detect_batch(items, ctx)
    assert len(batched) == len(items)
    assert batched[1] == []
    for item, many in zip(items, batched, strict=True):
        single = detector.detect(item, ctx)
        assert len(single) == len(many)
        for a, b in zip(single, many, strict=True):
            assert a.evidence == b.evidence
            assert a.score == pytest.approx(b.score, abs=1e-5)


def test_batch_chunks(detector: OpenNSFWImageSafety) -> None:
    d = OpenNSFWImageSafety(max_batch=2)
    d.load()
    items = [ImageItem(synthetic_image(i), index=i) for i in range(5)]
    ctx = make_context()
    assert [f[0].evidence["index"] for f in d.detect_batch(items, ctx)] == [0, 1, 2, 3, 4]
    assert d.detect_batch([], ctx) == []


def test_requires_load() -> None:
    with pytest.raises(DetectorError, match="load"):
        OpenNSFWImageSafety().detect(ImageItem(gradient_image()), make_context())


def test_text_is_ignored(detector: OpenNSFWImageSafety) -> None:
    assert detector.detect(TextItem("hello"), make_context()) == []
