from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.copyright import (
    CROP_FRACTIONS,
    CopyrightSimilarity,
    ProtectedIndex,
    WorkHash,
    hash_image,
    image_variants,
    work_hashes,
)
from detectors.testing import make_context, synthetic_image

SIZE = (512, 512)


def noise_image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(*SIZE, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def work() -> Image.Image:
    return synthetic_image(7, SIZE)


@pytest.fixture(scope="module")
def index(work: Image.Image) -> ProtectedIndex:
    hashes = work_hashes("work-global", None, work)
    hashes += work_hashes("work-acme", "acme", synthetic_image(8, SIZE))
    for seed in range(100, 120):  # some other registered works
        hashes += work_hashes(f"other-{seed}", None, synthetic_image(seed, SIZE))
    return ProtectedIndex.from_hashes(hashes)


def test_hash_image_is_64_bit() -> None:
    hashes = hash_image(synthetic_image(1))
    assert set(hashes) == {"phash", "dhash"}
    assert all(0 <= v < 2**64 for v in hashes.values())


def test_work_hashes_cover_variants(work: Image.Image) -> None:
    hashes = work_hashes("w", "t", work)
    variants = {h.variant for h in hashes}
    assert variants == set(image_variants(work))
    assert {"original", "mirror", "crop80_tl", "crop90_c", "mirror_crop70_br"} <= variants
    assert len(variants) == 2 * (1 + 5 * len(CROP_FRACTIONS))
    assert len(hashes) == 2 * len(variants)
    assert all(h.work_id == "w" and h.tenant == "t" for h in hashes)


def test_index_len(index: ProtectedIndex) -> None:
    assert len(index) == 22 * 64
    assert index.work_count == 22
    assert index.algorithms == {"phash", "dhash"}


def test_self_matches_at_distance_zero(index: ProtectedIndex, work: Image.Image) -> None:
    (m, *_) = index.search(hash_image(work), "anyone", 16)
    assert (m.work_id, m.variant, m.distance) == ("work-global", "original", 0)
    assert m.algorithm == "dhash+phash"


def test_mirror_is_found(index: ProtectedIndex, work: Image.Image) -> None:
    (m, *_) = index.search(hash_image(ImageOps.mirror(work)), "anyone", 16)
    assert (m.work_id, m.variant) == ("work-global", "mirror")
    assert m.distance <= 4


@pytest.mark.parametrize(
    "box",
    [(0, 0, 435, 435), (51, 51, 461, 461), (20, 20, 490, 490), (130, 130, 512, 512), (0, 0, 360, 360)],
    ids=["top-left-85", "centre-80", "border-trim-92", "bottom-right-75", "top-left-70"],
)
def test_crops_are_found(index: ProtectedIndex, work: Image.Image, box: tuple[int, int, int, int]) -> None:
    query = work.crop(box).resize((300, 300))
    matches = index.search(hash_image(query), "anyone", 16)
    assert matches, "crop not found"
    assert matches[0].work_id == "work-global"


def test_mirrored_crop_is_found(index: ProtectedIndex, work: Image.Image) -> None:
    matches = index.search(hash_image(ImageOps.mirror(work).crop((0, 0, 420, 420))), "anyone", 16)
    assert matches[0].work_id == "work-global"
    assert matches[0].variant.startswith("mirror")


@pytest.mark.parametrize("seed", range(5))
def test_unrelated_noise_is_not_matched(index: ProtectedIndex, seed: int) -> None:
    assert index.search(hash_image(noise_image(seed)), "acme", 16) == []


@pytest.mark.parametrize("seed", range(200, 210))
def test_unrelated_pictures_are_not_matched(index: ProtectedIndex, seed: int) -> None:
    assert index.search(hash_image(synthetic_image(seed, SIZE)), "acme", 16) == []


def test_tenant_scoping(index: ProtectedIndex) -> None:
    query = hash_image(synthetic_image(8, SIZE))
    assert [m.work_id for m in index.search(query, "acme", 16)] == ["work-acme"]
    assert index.search(query, "globex", 16) == []


def test_combine_any_takes_the_closest_algorithm(index: ProtectedIndex, work: Image.Image) -> None:
    query = hash_image(work.crop((0, 0, 435, 435)))
    (all_, *_) = index.search(query, "x", 64, combine="all")
    (any_, *_) = index.search(query, "x", 64, combine="any")
    assert any_.algorithm in {"phash", "dhash"}
    assert any_.distance <= all_.distance
    with pytest.raises(ValueError, match="combine"):
        index.search(query, "x", 16, combine="some")  # type: ignore[arg-type]


def test_one_match_per_work_sorted() -> None:
    a, b = synthetic_image(1), synthetic_image(2)
    idx = ProtectedIndex.from_hashes(work_hashes("a", None, a) + work_hashes("b", None, b))
    matches = idx.search(hash_image(a), "t", 64)
    assert [m.work_id for m in matches] == ["a", "b"]
    assert matches[0].distance == 0
    assert matches[1].distance > 0


def test_work_with_several_reference_images() -> None:
    a, b = synthetic_image(1), synthetic_image(2)
    idx = ProtectedIndex.from_hashes(work_hashes("w", None, a) + work_hashes("w", None, b))
    assert len(idx) == 128
    assert idx.search(hash_image(b), "t", 0)[0].work_id == "w"
    assert idx.search(hash_image(a), "t", 0)[0].work_id == "w"


def test_empty_and_partial_indexes() -> None:
    assert ProtectedIndex.from_hashes([]).search({"phash": 1}, "t", 64) == []
    only_phash = ProtectedIndex.from_hashes([WorkHash("w", None, "phash", "original", 0b1011)])
    (m,) = only_phash.search({"phash": 0b0011, "dhash": 5}, "t", 1)
    assert (m.algorithm, m.distance) == ("phash", 1)
    assert only_phash.search({"whash": 0}, "t", 64) == []


def test_workhash_value_range() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        WorkHash("w", None, "phash", "original", 2**64)


def test_search_100k_hashes_is_exact() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**63, size=100_000, dtype=np.uint64) * np.uint64(2)
    hashes = [
        WorkHash(f"r{i // 24}", None, "phash" if i % 2 else "dhash", f"v{(i // 2) % 12}", int(v))
        for i, v in enumerate(values)
    ]
    idx = ProtectedIndex.from_hashes(hashes)
    assert len(idx) == 100_000
    target = hashes[4243]
    other = hashes[4242]  # same row, the other algorithm
    q = {target.algorithm: target.value ^ 0b111, other.algorithm: other.value ^ 0b1}
    (m, *_) = idx.search(q, "t", 3)
    assert (m.work_id, m.variant, m.distance) == (target.work_id, target.variant, 3)


class TestDetector:
    @pytest.fixture
    def detector(self) -> CopyrightSimilarity:
        d = CopyrightSimilarity()
        d.load()
        return d

    def test_finding_for_best_match(self, detector: CopyrightSimilarity, index: ProtectedIndex) -> None:
        item = ImageItem(ImageOps.mirror(synthetic_image(7, SIZE)), role="output", index=2)
        (f,) = detector.detect(item, make_context(protected_index=index, stage="output"))
        assert f.detector == "copyright"
        assert f.category == "protected_work"
        assert f.evidence["work_id"] == "work-global"
        assert f.evidence["variant"] == "mirror"
        assert f.evidence["role"] == "output"
        assert f.evidence["index"] == 2
        assert f.score == pytest.approx(1 - f.evidence["distance"] / 64)
        assert set(f.evidence) == {"work_id", "algorithm", "variant", "distance", "role", "index"}

    def test_no_index_no_findings(self, detector: CopyrightSimilarity) -> None:
        assert detector.detect(ImageItem(synthetic_image(7, SIZE)), make_context()) == []

    def test_unrelated_no_findings(self, detector: CopyrightSimilarity, index: ProtectedIndex) -> None:
        assert detector.detect(ImageItem(noise_image(1)), make_context(protected_index=index)) == []

    def test_tenant_from_context(self, detector: CopyrightSimilarity, index: ProtectedIndex) -> None:
        item = ImageItem(synthetic_image(8, SIZE))
        assert detector.detect(item, make_context(protected_index=index, tenant="acme"))
        assert detector.detect(item, make_context(protected_index=index, tenant="globex")) == []

    def test_bad_resource_and_options(self, detector: CopyrightSimilarity) -> None:
        with pytest.raises(DetectorError):
            detector.detect(ImageItem(synthetic_image(1)), make_context(protected_index=[1, 2]))
        with pytest.raises(ValueError, match="max_distance"):
            CopyrightSimilarity(max_distance=65)
        assert detector.detect(TextItem("x"), make_context()) == []
