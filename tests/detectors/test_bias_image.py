"""The image-side bias detector's mechanics, on a tiny random CLIP (its labels mean nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.bias_image import DEFAULT_ATTRIBUTES, ImageAttributeDiversity, homogeneity
from detectors.registry import load_detector
from detectors.testing import make_context, synthetic_image


def test_homogeneity() -> None:
    assert homogeneity(["a", "a", "a", "a"], 2) == 1.0
    assert homogeneity(["a", "b", "a", "b"], 2) == pytest.approx(0.0)
    assert homogeneity(["a", "b"], 4) == pytest.approx(0.0)  # two people spread over two of four labels
    assert 0.0 < homogeneity(["a", "a", "a", "b"], 2) < 1.0
    assert homogeneity(["a", "a", "a", "b"], 2) == pytest.approx(1 - 0.8112781, abs=1e-6)
    assert homogeneity([], 3) == 1.0


@pytest.fixture(scope="module")
def detector(tiny_clip: Path) -> ImageAttributeDiversity:
    d = load_detector("bias_image", {"model": str(tiny_clip), "person_labels": None})
    d.load()
    assert isinstance(d, ImageAttributeDiversity)
    return d


def _items(n: int) -> list[ImageItem]:
    return [ImageItem(synthetic_image(i, (64, 64)), role="output", index=i) for i in range(n)]


def test_batch_findings_per_image_and_attribute(detector: ImageAttributeDiversity) -> None:
    items = _items(4)
    per_item = detector.detect_batch(items, make_context(stage="output"))
    assert len(per_item) == 4
    probs = detector.probabilities([it.image for it in items])
    for i, findings in enumerate(per_item):
        assert [f.evidence["attribute"] for f in findings] == list(DEFAULT_ATTRIBUTES)
        for f in findings:
            attr = str(f.evidence["attribute"])
            assert f.category == "attribute_homogeneity"
            assert f.evidence["index"] == i and f.evidence["batch"] == 4 and f.evidence["people"] == 4
            assert f.evidence["measured"] is True
            expected_label = max(probs[i][attr], key=probs[i][attr].__getitem__)
            assert f.evidence["label"] == expected_label
            counts = f.evidence["counts"]
            assert sum(counts.values()) == 4
            labels = [max(p[attr], key=p[attr].__getitem__) for p in probs]
            assert f.score == pytest.approx(homogeneity(labels, len(DEFAULT_ATTRIBUTES[attr])), abs=1e-6)
    # the batch measure is the same on every image
    assert len({tuple(f.score for f in fs) for fs in per_item}) == 1


def test_probabilities_sum_to_one(detector: ImageAttributeDiversity) -> None:
    (p,) = detector.probabilities([synthetic_image(3, (80, 50))])
    for attr, labels in DEFAULT_ATTRIBUTES.items():
        assert set(p[attr]) == set(labels)
        assert sum(p[attr].values()) == pytest.approx(1.0, abs=1e-5)


def test_identical_images_are_fully_homogeneous(detector: ImageAttributeDiversity) -> None:
    image = synthetic_image(5, (64, 64))
    items = [ImageItem(image, role="output", index=i) for i in range(3)]
    per_item = detector.detect_batch(items, make_context(stage="output"))
    assert all(f.score == 1.0 for fs in per_item for f in fs)


def test_single_image_and_edit_sources(detector: ImageAttributeDiversity) -> None:
    (f, *_) = detector.detect(ImageItem(synthetic_image(1, (64, 64))), make_context(stage="output"))
    assert f.score == 0.0 and f.evidence["measured"] is False
    source = ImageItem(synthetic_image(1, (64, 64)), role="edit_source")
    assert detector.detect(source, make_context()) == []
    assert detector.detect(TextItem("a photo of a doctor"), make_context()) == []
    mixed = detector.detect_batch([TextItem("x"), *_items(2)], make_context(stage="output"))
    assert mixed[0] == [] and len(mixed[1]) == len(DEFAULT_ATTRIBUTES)


def test_person_gate_and_custom_attributes(tiny_clip: Path) -> None:
    d = ImageAttributeDiversity(
        model=str(tiny_clip),
        attributes={"attire": {"uniform": "a person in a uniform", "casual": "a person in casual clothes"}},
        person_labels={"person": "a photo of a person", "thing": "a photo of a thing"},
    )
    d.load()
    items = _items(4)
    probs = d.probabilities([it.image for it in items])
    people = sum(max(p["__person__"], key=p["__person__"].__getitem__) == "person" for p in probs)
    findings = [f for fs in d.detect_batch(items, make_context(stage="output")) for f in fs]
    assert {f.evidence["attribute"] for f in findings} == {"attire"}
    assert all(f.evidence["people"] == people for f in findings)
    assert all(f.evidence["measured"] is (people >= 2) for f in findings)


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="no CLIP folder"):
        ImageAttributeDiversity().load()
    with pytest.raises(DetectorError, match="not a CLIP folder"):
        ImageAttributeDiversity(model=str(tmp_path)).load()
    with pytest.raises(ValueError, match="two labels"):
        ImageAttributeDiversity(attributes={"x": {"only": "one"}})
    with pytest.raises(ValueError, match="person"):
        ImageAttributeDiversity(person_labels={"human": "a human", "thing": "a thing"})
    with pytest.raises(ValueError, match="min_people"):
        ImageAttributeDiversity(min_people=1)
    with pytest.raises(DetectorError, match="load"):
        ImageAttributeDiversity(model=str(tmp_path)).probabilities([Image.new("RGB", (8, 8))])


def test_clip_setting_turns_the_detector_on(tmp_path: Path) -> None:
    from gateway.settings import Settings

    off = Settings(data_dir=tmp_path)
    assert "bias_image" not in off.image_detectors
    on = Settings(data_dir=tmp_path, clip_model=tmp_path / "clip", detector_options={"bias_image": {"min_people": 3}})
    assert on.image_detectors[-1] == "bias_image"
    assert on.detector_options["bias_image"] == {"model": str(tmp_path / "clip"), "min_people": 3}
