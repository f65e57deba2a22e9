"""The image-side bias detector's mechanics, on a tiny random CLIP (its labels mean nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.bias_image import DEFAULT_ATTRIBUTES, ImageAttributeDiversity, chance_of_concentration, homogeneity
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
            k = len(DEFAULT_ATTRIBUTES[attr])
            p_value = chance_of_concentration(max(counts.values()), 4, k)
            assert f.score == pytest.approx(1 - p_value, abs=1e-6)
            assert f.evidence["p_value"] == pytest.approx(p_value, abs=1e-6)
            assert f.evidence["homogeneity"] == pytest.approx(homogeneity(labels, k), abs=1e-6)
            assert "of 4 people" in f.explanation and "sample of 4" in f.explanation
    # the batch measure is the same on every image
    assert len({tuple(f.score for f in fs) for fs in per_item}) == 1


def test_probabilities_sum_to_one(detector: ImageAttributeDiversity) -> None:
    (p,) = detector.probabilities([synthetic_image(3, (80, 50))])
    for attr, labels in DEFAULT_ATTRIBUTES.items():
        assert set(p[attr]) == set(labels)
        assert sum(p[attr].values()) == pytest.approx(1.0, abs=1e-5)


def test_identical_images_are_fully_homogeneous(detector: ImageAttributeDiversity) -> None:
    """Three people alike: homogeneity 1, and a score that says how unlikely that is by chance
    with k labels (k / k**3), which grows with the batch."""
    image = synthetic_image(5, (64, 64))
    for n in (3, 6):
        items = [ImageItem(image, role="output", index=i) for i in range(n)]
        for f in detector.detect_batch(items, make_context(stage="output"))[0]:
            k = len(DEFAULT_ATTRIBUTES[str(f.evidence["attribute"])])
            assert f.evidence["homogeneity"] == 1.0
            assert f.score == pytest.approx(1 - k / k**n)


def test_chance_of_concentration() -> None:
    import itertools
    from collections import Counter

    for n in range(1, 7):
        for k in (2, 3, 4):
            for top in range(n + 2):
                seqs = list(itertools.product(range(k), repeat=n))
                hits = sum(max(Counter(s).values()) >= top for s in seqs)
                assert chance_of_concentration(top, n, k) == pytest.approx(hits / len(seqs), abs=1e-12)
    assert chance_of_concentration(2, 2, 2) == 0.5  # two people alike in a two-label attribute: a coin toss
    assert chance_of_concentration(4, 4, 2) == 0.125
    assert chance_of_concentration(2, 4, 2) == 1.0  # an even spread is the least that can happen
    assert 0.0 < chance_of_concentration(40, 100, 3) < 1.0  # large batches stay exact and fast
    with pytest.raises(ValueError, match="label_count"):
        chance_of_concentration(1, 1, 0)


def test_two_people_alike_are_not_called_homogeneous(detector: ImageAttributeDiversity) -> None:
    """With two people, homogeneity was 0 or 1, so half of all two-image batches scored 1 in a
    two-label attribute by chance (version 1.0). The score now says how likely that is by chance,
    and no batch of two reaches the policy's review threshold."""
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "policies" / "data.yaml").read_text())
    threshold = data["mamori"]["thresholds"]["bias_image_review"]
    same = synthetic_image(1, (64, 64))
    for items in (_items(2), [ImageItem(same, role="output", index=i) for i in range(2)]):
        for f in detector.detect_batch(items, make_context(stage="output"))[0]:
            k = len(DEFAULT_ATTRIBUTES[str(f.evidence["attribute"])])
            assert f.evidence["measured"] is True and f.evidence["people"] == 2
            assert f.score <= round(1 - 1 / k, 6) < threshold
            assert "sample of 2" in f.explanation
    assert max(1 - chance_of_concentration(2, 2, len(labels)) for labels in DEFAULT_ATTRIBUTES.values()) < threshold


def test_single_image_and_edit_sources(detector: ImageAttributeDiversity) -> None:
    (f, *_) = detector.detect(ImageItem(synthetic_image(1, (64, 64))), make_context(stage="output"))
    assert f.score == 0.0 and f.evidence["measured"] is False
    assert f.evidence["p_value"] is None and f.evidence["homogeneity"] is None
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


def test_the_chance_stays_quick_and_close_for_large_batches() -> None:
    """Above 64 people the exact count (quadratic in the people, in big integers) gives way to the
    union bound, which is never below the exact chance and agrees with it where it matters."""
    import time

    import detectors.bias_image as bias_image

    start = time.perf_counter()
    assert chance_of_concentration(512, 512, 7) < 1e-100
    assert 0.0 < chance_of_concentration(200, 512, 3) < 0.05
    assert time.perf_counter() - start < 0.5  # the exact count took about 4 s
    exact = chance_of_concentration(35, 64, 3)
    limit = bias_image._EXACT_PEOPLE
    try:
        bias_image._EXACT_PEOPLE = 10
        bound = chance_of_concentration(35, 64, 3)
    finally:
        bias_image._EXACT_PEOPLE = limit
    assert exact <= bound <= exact * 1.01
