from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.copyright import (
    ALGORITHMS,
    CROP_FRACTIONS,
    HASH_BITS,
    CopyrightSimilarity,
    ProtectedIndex,
    WorkHash,
    hash_image,
    hash_image_quality,
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
    for seed in range(100, 104):  # some other registered works
        hashes += work_hashes(f"other-{seed}", None, synthetic_image(seed, SIZE))
    return ProtectedIndex.from_hashes(hashes)


VARIANTS = 2 * (1 + 3 * len(CROP_FRACTIONS)) ** 2  # orientations x (whole + 3 places per fraction) per axis
MAX = 0.2  # search radius (fraction of the hash width) used below


def test_hash_image_kinds_and_widths() -> None:
    hashes = hash_image(synthetic_image(1))
    assert tuple(hashes) == ALGORITHMS == ("phash", "dhash", "pdq", "colorhash")
    assert all(0 <= v < 2 ** HASH_BITS[k] for k, v in hashes.items())
    assert HASH_BITS["pdq"] == 256
    assert hashes["pdq"].bit_length() > 64  # a real 256-bit value, not a truncated one
    assert hash_image(synthetic_image(1), ("pdq",)) == {"pdq": hashes["pdq"]}
    with pytest.raises(ValueError, match="unknown hash kind"):
        hash_image(synthetic_image(1), ("whash",))


def test_quality_is_low_for_a_uniform_image() -> None:
    _, flat = hash_image_quality(Image.new("RGB", (256, 256), (120, 130, 140)))
    _, busy = hash_image_quality(synthetic_image(1))
    assert flat < 10 <= busy


def test_work_hashes_cover_variants(work: Image.Image) -> None:
    hashes = work_hashes("w", "t", work)
    variants = {h.variant for h in hashes}
    assert variants == set(image_variants(work))
    assert {"original", "mirror", "crop80x80_lt", "crop90x100_cc", "mirror_crop70x70_rb", "crop100x80_cb"} <= variants
    assert len(variants) == VARIANTS == 200
    assert len(hashes) == len(ALGORITHMS) * len(variants)
    assert all(h.work_id == "w" and h.tenant == "t" for h in hashes)


def test_wide_hashes_split_into_words_and_back(work: Image.Image) -> None:
    hashes = work_hashes("w", None, work)
    pdq = next(h for h in hashes if h.algorithm == "pdq" and h.variant == "original")
    words = pdq.words()
    assert [w.algorithm for w in words] == ["pdq:0", "pdq:1", "pdq:2", "pdq:3"]
    assert all(0 <= w.value < 2**64 for w in words)
    assert sum(w.value << (64 * (3 - i)) for i, w in enumerate(words)) == pdq.value
    phash = next(h for h in hashes if h.algorithm == "phash")
    assert phash.words() == [phash]
    # an index built from stored words equals one built from whole hashes
    stored = [w for h in hashes for w in h.words()]
    a, b = ProtectedIndex.from_hashes(hashes), ProtectedIndex.from_hashes(stored)
    query = hash_image(work.crop((10, 10, 480, 500)))
    assert a.search(query, "t", MAX) == b.search(query, "t", MAX)
    assert len(a) == len(b) == len(hashes)


def test_index_len(index: ProtectedIndex) -> None:
    assert len(index) == 6 * VARIANTS * 4
    assert index.work_count == 6
    assert index.algorithms == set(ALGORITHMS)


def test_self_matches_at_distance_zero(index: ProtectedIndex, work: Image.Image) -> None:
    (m, *_) = index.search(hash_image(work), "anyone", MAX)
    assert (m.work_id, m.variant, m.distance) == ("work-global", "original", 0)
    assert m.algorithm == "colorhash+dhash+pdq+phash"
    assert m.bits == {"phash": 0, "dhash": 0, "pdq": 0, "colorhash": 0}


def test_mirror_is_found(index: ProtectedIndex, work: Image.Image) -> None:
    (m, *_) = index.search(hash_image(ImageOps.mirror(work)), "anyone", MAX)
    assert (m.work_id, m.variant) == ("work-global", "mirror")
    assert m.distance <= 0.05


@pytest.mark.parametrize(
    "box",
    [(0, 0, 435, 435), (51, 51, 461, 461), (20, 20, 490, 490), (130, 130, 512, 512), (0, 0, 360, 360)],
    ids=["top-left-85", "centre-80", "border-trim-92", "bottom-right-75", "top-left-70"],
)
def test_crops_are_found(index: ProtectedIndex, work: Image.Image, box: tuple[int, int, int, int]) -> None:
    query = work.crop(box).resize((300, 300))
    matches = index.search(hash_image(query), "anyone", MAX)
    assert matches, "crop not found"
    assert matches[0].work_id == "work-global"


def test_mirrored_crop_is_found(index: ProtectedIndex, work: Image.Image) -> None:
    matches = index.search(hash_image(ImageOps.mirror(work).crop((0, 0, 420, 420))), "anyone", MAX)
    assert matches[0].work_id == "work-global"
    assert matches[0].variant.startswith("mirror")


@pytest.mark.parametrize("seed", range(5))
def test_unrelated_noise_is_not_matched(index: ProtectedIndex, seed: int) -> None:
    assert index.search(hash_image(noise_image(seed)), "acme", MAX) == []


@pytest.mark.parametrize("seed", range(200, 210))
def test_unrelated_pictures_are_not_matched(index: ProtectedIndex, seed: int) -> None:
    assert index.search(hash_image(synthetic_image(seed, SIZE)), "acme", MAX) == []


def test_tenant_scoping(index: ProtectedIndex) -> None:
    query = hash_image(synthetic_image(8, SIZE))
    assert [m.work_id for m in index.search(query, "acme", MAX)] == ["work-acme"]
    assert index.search(query, "globex", MAX) == []


def test_combine_rules_order(index: ProtectedIndex, work: Image.Image) -> None:
    query = hash_image(work.crop((0, 0, 435, 435)))
    (all_, *_) = index.search(query, "x", 1.0, combine="all")
    (mean, *_) = index.search(query, "x", 1.0, combine="mean")
    (any_, *_) = index.search(query, "x", 1.0, combine="any")
    assert any_.algorithm in set(ALGORITHMS)
    assert any_.distance <= mean.distance <= all_.distance
    assert mean.distance == pytest.approx(sum(b / HASH_BITS[k] for k, b in mean.bits.items()) / 4, abs=1e-6)
    with pytest.raises(ValueError, match="combine"):
        index.search(query, "x", 0.2, combine="some")  # type: ignore[arg-type]


def test_one_match_per_work_sorted() -> None:
    a, b = synthetic_image(1), synthetic_image(2)
    idx = ProtectedIndex.from_hashes(work_hashes("a", None, a) + work_hashes("b", None, b))
    matches = idx.search(hash_image(a), "t", 1.0)
    assert [m.work_id for m in matches] == ["a", "b"]
    assert matches[0].distance == 0
    assert matches[1].distance > 0


def test_work_with_several_reference_images() -> None:
    a, b = synthetic_image(1), synthetic_image(2)
    idx = ProtectedIndex.from_hashes(work_hashes("w", None, a) + work_hashes("w", None, b))
    assert len(idx) == 2 * VARIANTS * 4
    assert idx.search(hash_image(b), "t", 0)[0].work_id == "w"
    assert idx.search(hash_image(a), "t", 0)[0].work_id == "w"


def test_empty_and_partial_indexes() -> None:
    assert ProtectedIndex.from_hashes([]).search({"phash": 1}, "t", 1.0) == []
    # a work registered before PDQ and colour hashes existed (phash only) is still found
    only_phash = ProtectedIndex.from_hashes([WorkHash("w", None, "phash", "original", 0b1011)])
    (m,) = only_phash.search({"phash": 0b0011, "dhash": 5, "pdq": 7}, "t", 1 / 64)
    assert (m.algorithm, m.distance, dict(m.bits)) == ("phash", pytest.approx(1 / 64), {"phash": 1})
    assert only_phash.search({"whash": 0}, "t", 1.0) == []


def test_pdq_distance_is_exact_over_256_bits() -> None:
    base = (1 << 255) | (1 << 130) | 12345
    idx = ProtectedIndex.from_hashes([WorkHash("w", None, "pdq", "original", base)])
    flipped = base ^ (1 << 255) ^ (1 << 129) ^ (1 << 64) ^ 1  # one bit in each 64-bit word
    (m,) = idx.search({"pdq": flipped}, "t", 1.0)
    assert m.bits == {"pdq": 4}
    assert m.distance == pytest.approx(4 / 256)
    assert idx.search({"pdq": flipped}, "t", 3 / 256) == []


def test_workhash_value_range() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        WorkHash("w", None, "phash", "original", 2**64)
    with pytest.raises(ValueError, match="256-bit"):
        WorkHash("w", None, "pdq", "original", 2**256)
    with pytest.raises(ValueError, match="64-bit"):
        WorkHash("w", None, "pdq:1", "original", 2**64)
    WorkHash("w", None, "pdq", "original", 2**255)


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
    (m, *_) = idx.search(q, "t", 3 / 64, combine="all")
    assert (m.work_id, m.variant, m.bits[target.algorithm]) == (target.work_id, target.variant, 3)


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
        assert f.score == pytest.approx(1 - f.evidence["distance"])
        assert set(f.evidence) == {"work_id", "algorithm", "variant", "distance", "bits", "role", "index"}
        assert set(f.evidence["bits"]) == set(ALGORITHMS)
        assert "work-global" in f.explanation and "pdq" in f.explanation

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
            CopyrightSimilarity(max_distance=16)  # bits are no longer accepted: a fraction of the width
        with pytest.raises(ValueError, match="algorithms"):
            CopyrightSimilarity(algorithms=("phash", "whash"))
        assert detector.detect(TextItem("x"), make_context()) == []

    def test_uniform_image_is_not_matched(self, detector: CopyrightSimilarity) -> None:
        flat = Image.new("RGB", (300, 300), (200, 200, 200))
        idx = ProtectedIndex.from_hashes(work_hashes("flat-work", None, flat))
        assert idx.search(hash_image(flat), "t", 0.0)  # the index alone would match it...
        assert detector.detect(ImageItem(flat), make_context(protected_index=idx)) == []  # ...the detector does not

    def test_jpeg_and_resized_copy_found_by_default(
        self, detector: CopyrightSimilarity, index: ProtectedIndex, work: Image.Image
    ) -> None:
        import io

        buf = io.BytesIO()
        work.resize((300, 300)).save(buf, format="JPEG", quality=30)
        (f,) = detector.detect(ImageItem(Image.open(buf)), make_context(protected_index=index))
        assert f.evidence["work_id"] == "work-global"
        assert f.score >= 0.875
