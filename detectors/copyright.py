"""Perceptual-hash similarity of images against a registry of protected works.

Four hash kinds are computed (`ALGORITHMS`): pHash and dHash (64 bits each, imagehash, on the
grey image), PDQ (256 bits, Meta's PDQ through `pdqhash`, on the luminance of the RGB image) and
a colour hash (42 bits, imagehash's HSV histogram hash, on a 64-pixel thumbnail).

Registration (`work_hashes`) stores, for each kind, the hash of the work, of its mirror image and
of a grid of crops of both (`image_variants`: 200 variants), because a global hash alone misses
crops and flips. A query image is hashed once per kind (`hash_image`) and
compared by exact Hamming distance against every stored hash (`ProtectedIndex.search`): per kind
one XOR and one popcount over a contiguous (rows, words) uint64 array, summed over the row.

Distances are compared as fractions of each kind's width (8 of 64 bits = 32 of 256 bits = 0.125),
so kinds of different widths combine. The combined distance of a stored variant is, by default,
the **mean** over the kinds that both the query and the variant have (`combine="mean"`); "all"
takes the largest (every kind must agree) and "any" the smallest. Which combination keeps chance
matches rare and still finds edited copies was measured with `bench/eval_copy.py`.

Storage: a hash wider than 64 bits is kept as 64-bit words (`WorkHash.words`), stored under the
kind's name with the word's position ("pdq:0" is the most significant word), so the registry's
table holds BIGINTs only. `ProtectedIndex.from_hashes` accepts both forms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, Item

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "ALGORITHMS",
    "CROP_FRACTIONS",
    "HASH_BITS",
    "WORD_BITS",
    "Combine",
    "CopyrightSimilarity",
    "Match",
    "ProtectedIndex",
    "WorkHash",
    "hash_bits",
    "hash_image",
    "hash_image_quality",
    "image_variants",
    "work_hashes",
]

WORD_BITS = 64
#: Width of each hash kind in bits. A stored kind not listed here is one 64-bit word.
HASH_BITS: dict[str, int] = {"phash": 64, "dhash": 64, "pdq": 256, "colorhash": 42}
#: Hash kinds computed by `hash_image`, in order.
ALGORITHMS: tuple[str, ...] = ("phash", "dhash", "pdq", "colorhash")
#: Crop sizes stored at registration, as fractions of width and height. One size (80 %) finds
#: crops near 80 % only; three sizes find most crops between about 65 % and 95 %.
CROP_FRACTIONS: tuple[float, ...] = (0.9, 0.8, 0.7)

_MAX_SIDE = 256  # larger images are reduced (box filter, integer factor) before hashing; each hash works at <= 64 px
_COLOR_SIDE = 64  # the colour histogram is taken on a thumbnail this size
_COLOR_BINBITS = 3  # imagehash.colorhash: 14 bins x 3 bits = 42 bits


def hash_bits(algorithm: str) -> int:
    """The width of a hash kind; 64 for an unknown kind (and for one stored word, "pdq:0")."""
    return HASH_BITS.get(algorithm, WORD_BITS)


def _words_of(algorithm: str) -> int:
    return -(-hash_bits(algorithm) // WORD_BITS)


def _split_word(algorithm: str) -> tuple[str, int | None]:
    """("pdq:2" -> ("pdq", 2)), ("phash" -> ("phash", None))."""
    base, sep, position = algorithm.rpartition(":")
    if sep and base in HASH_BITS and position.isdigit() and int(position) < _words_of(base):
        return base, int(position)
    return algorithm, None


def _to_words(value: int, words: int) -> list[int]:
    """Most significant word first."""
    mask = (1 << WORD_BITS) - 1
    return [(value >> (WORD_BITS * (words - 1 - i))) & mask for i in range(words)]


@dataclass(frozen=True)
class WorkHash:
    """One stored hash of one variant of a protected work. `tenant=None` applies to every tenant.

    `value` is the whole hash (up to `hash_bits(algorithm)` bits), or one 64-bit word of a wider
    hash when `algorithm` names the word ("pdq:1").
    """

    work_id: str
    tenant: str | None
    algorithm: str
    variant: str
    value: int

    def __post_init__(self) -> None:
        bits = WORD_BITS if _split_word(self.algorithm)[1] is not None else hash_bits(self.algorithm)
        if not 0 <= self.value < 1 << bits:
            raise ValueError(
                f"hash value of {self.work_id}/{self.variant} is not a {bits}-bit unsigned int ({self.algorithm})"
            )

    def words(self) -> list[WorkHash]:
        """This hash as 64-bit words for storage: itself when it fits, else one `WorkHash` per word."""
        base, position = _split_word(self.algorithm)
        words = _words_of(base)
        if position is not None or words == 1:
            return [self]
        return [
            WorkHash(self.work_id, self.tenant, f"{base}:{i}", self.variant, word)
            for i, word in enumerate(_to_words(self.value, words))
        ]


@dataclass(frozen=True)
class Match:
    """The closest stored variant of one work to a query.

    `distance` is the combined distance as a fraction of the hash width (0 = identical);
    `bits` the Hamming distance of each hash kind that was compared.
    """

    work_id: str
    algorithm: str
    variant: str
    distance: float
    bits: Mapping[str, int] = field(default_factory=dict)


def _bits_to_int(bits: np.ndarray) -> int:
    flat = np.asarray(bits, dtype=bool).reshape(-1)
    packed = np.packbits(flat).tobytes()  # padded with zero bits at the end to whole bytes
    return int.from_bytes(packed, "big") >> (8 * len(packed) - flat.size)


def _phash(image: Image) -> int:
    import imagehash

    return _bits_to_int(imagehash.phash(image.convert("L")).hash)


def _dhash(image: Image) -> int:
    import imagehash

    return _bits_to_int(imagehash.dhash(image.convert("L")).hash)


def _pdq_with_quality(image: Image) -> tuple[int, int]:
    import pdqhash

    bits, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8)))
    if bits.size != HASH_BITS["pdq"]:
        raise ValueError(f"pdqhash returned {bits.size} bits")
    return _bits_to_int(bits), int(quality)


def _pdq(image: Image) -> int:
    return _pdq_with_quality(image)[0]


def _colorhash(image: Image) -> int:
    import imagehash

    small = image.convert("RGB")
    small.thumbnail((_COLOR_SIDE, _COLOR_SIDE))
    return _bits_to_int(imagehash.colorhash(small, binbits=_COLOR_BINBITS).hash)


_HASHERS: dict[str, Callable[[Image], int]] = {
    "phash": _phash,
    "dhash": _dhash,
    "pdq": _pdq,
    "colorhash": _colorhash,
}


def _prepare(image: Image) -> Image:
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    factor = -(-max(image.size) // _MAX_SIDE)
    return image.reduce(factor) if factor > 1 else image


def hash_image(image: Image, algorithms: Sequence[str] = ALGORITHMS) -> dict[str, int]:
    """Perceptual hashes of `image` by kind: {"phash": 64-bit int, ..., "pdq": 256-bit int, ...}."""
    return hash_image_quality(image, algorithms)[0]


def hash_image_quality(image: Image, algorithms: Sequence[str] = ALGORITHMS) -> tuple[dict[str, int], int]:
    """`hash_image` plus PDQ's quality score of the image (0-100; near 0 for an almost uniform image)."""
    unknown = [a for a in algorithms if a not in _HASHERS]
    if unknown:
        raise ValueError(f"unknown hash kind(s) {unknown}; known: {', '.join(_HASHERS)}")
    image = _prepare(image)
    pdq, quality = _pdq_with_quality(image)
    return {a: pdq if a == "pdq" else _HASHERS[a](image) for a in algorithms}, quality


def image_variants(image: Image) -> dict[str, Image]:
    """The variants stored at registration: the original and its mirror, each whole and cropped.

    Crops keep each of `CROP_FRACTIONS` (or all) of the width and, independently, of the height,
    placed at the start, the centre or the end of each axis: "crop90x80_lt" keeps 90 % of the
    width from the left and 80 % of the height from the top; "mirror_crop100x70_cb" is a crop of
    the mirror image. With three fractions that is 100 variants per orientation (the whole image
    included), so a copy cropped anywhere between about 65 % and 100 % of each side lies close to
    a stored variant.
    """
    from PIL import ImageOps

    rgb = _prepare(image).convert("RGB")
    out: dict[str, Image] = {}
    for whole, prefix, base in (("original", "", rgb), ("mirror", "mirror_", ImageOps.mirror(rgb))):
        w, h = base.size
        for fw in (1.0, *CROP_FRACTIONS):
            for fh in (1.0, *CROP_FRACTIONS):
                cw, ch = max(1, round(w * fw)), max(1, round(h * fh))
                for px, left in _positions(w, cw, "lcr"):
                    for py, top in _positions(h, ch, "tcb"):
                        if cw == w and ch == h:
                            out[whole] = base
                            continue
                        name = f"{prefix}crop{round(fw * 100)}x{round(fh * 100)}_{px}{py}"
                        out[name] = base.crop((left, top, left + cw, top + ch))
    return out


def _positions(size: int, crop: int, names: str) -> list[tuple[str, int]]:
    """Where a crop of `crop` pixels starts along an axis of `size`: start, centre and end (or one
    centred position when the crop spans the axis)."""
    if crop >= size:
        return [(names[1], 0)]
    return [(names[0], 0), (names[1], (size - crop) // 2), (names[2], size - crop)]


def work_hashes(
    work_id: str, tenant: str | None, image: Image, algorithms: Sequence[str] = ALGORITHMS
) -> list[WorkHash]:
    """Every hash to store for one protected work: each variant of `image_variants` × each kind."""
    out: list[WorkHash] = []
    for variant, im in image_variants(image).items():
        for algorithm, value in hash_image(im, algorithms).items():
            out.append(WorkHash(work_id, tenant, algorithm, variant, value))
    return out


Combine = Literal["mean", "all", "any"]
_COMBINES: tuple[str, ...] = ("mean", "all", "any")


class ProtectedIndex:
    """An immutable, exact Hamming-distance index over the hashes of protected works.

    Hashes of the same work, variant and tenant form one row; each hash kind is one contiguous
    (rows, words) uint64 array. Registering the same (work, variant, tenant, kind) again (a work
    with several reference images) starts a new row.
    """

    def __init__(
        self,
        columns: Mapping[str, tuple[np.ndarray, np.ndarray]],
        works: np.ndarray,
        variants: np.ndarray,
        tenants: np.ndarray,
        names: tuple[list[str], list[str], dict[str, int]],
        hash_count: int,
    ) -> None:
        self._columns = dict(columns)  # kind -> (values (n, words) uint64, present (n,) bool)
        self._works = works  # int32 index into names[0]
        self._variants = variants  # int32 index into names[1]
        self._tenants = tenants  # int32 code from names[2], -1 for every tenant
        self._work_ids, self._variant_names, self._tenant_codes = names
        self._hash_count = hash_count

    @classmethod
    def from_hashes(cls, hashes: Iterable[WorkHash]) -> ProtectedIndex:
        work_ids: dict[str, int] = {}
        variants: dict[str, int] = {}
        tenants: dict[str, int] = {}
        row_of: dict[tuple[int, int, int, int], int] = {}
        next_free: dict[tuple[int, int, int, str], int] = {}
        keys: list[tuple[int, int, int]] = []
        cells: dict[str, dict[int, list[int]]] = {}
        hashed: set[tuple[str, int]] = set()
        for whole in hashes:
            for h in whole.words():
                w = work_ids.setdefault(h.work_id, len(work_ids))
                v = variants.setdefault(h.variant, len(variants))
                t = -1 if h.tenant is None else tenants.setdefault(h.tenant, len(tenants))
                occurrence = next_free.get((w, v, t, h.algorithm), 0)
                next_free[(w, v, t, h.algorithm)] = occurrence + 1
                row = row_of.setdefault((w, v, t, occurrence), len(keys))
                if row == len(keys):
                    keys.append((w, v, t))
                base, position = _split_word(h.algorithm)
                words = cells.setdefault(base, {}).setdefault(row, [0] * _words_of(base))
                words[position or 0] = h.value
                hashed.add((base, row))
        n = len(keys)
        columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for algorithm, by_row in cells.items():
            values = np.zeros((n, _words_of(algorithm)), dtype=np.uint64)
            present = np.zeros(n, dtype=bool)
            rows = np.fromiter(by_row.keys(), dtype=np.int64, count=len(by_row))
            values[rows] = np.array(list(by_row.values()), dtype=np.uint64).reshape(len(by_row), -1)
            present[rows] = True
            columns[algorithm] = (_frozen(np.ascontiguousarray(values)), _frozen(present))
        meta = np.array(keys, dtype=np.int32).reshape(n, 3)
        return cls(
            columns,
            _frozen(np.ascontiguousarray(meta[:, 0])),
            _frozen(np.ascontiguousarray(meta[:, 1])),
            _frozen(np.ascontiguousarray(meta[:, 2])),
            (list(work_ids), list(variants), tenants),
            len(hashed),
        )

    def __len__(self) -> int:
        """The number of hashes stored (a 256-bit PDQ hash counts once)."""
        return self._hash_count

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(self._columns)

    @property
    def work_count(self) -> int:
        return len(self._work_ids)

    def distances(self, query: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Hamming distance in bits from the query to every row, per kind the query and the index
        share: kind -> (distances (n,) uint16, present (n,) bool)."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for algorithm, value in query.items():
            column = self._columns.get(algorithm)
            if column is None:
                continue
            values, present = column
            q = np.array(_to_words(int(value), values.shape[1]), dtype=np.uint64)
            out[algorithm] = (np.bitwise_count(values ^ q).sum(axis=1, dtype=np.uint16), present)
        return out

    def search(
        self,
        query: Mapping[str, int],
        tenant: str,
        max_distance: float,
        *,
        combine: Combine = "mean",
    ) -> list[Match]:
        """Works within `max_distance` (a fraction of the hash width, 0..1) of the query, visible
        to `tenant` (its own works and those registered with tenant None); one `Match` per work,
        its closest variant, closest first.

        A variant's distance combines, over the kinds that both the query and the variant have,
        each kind's Hamming distance divided by its width: the mean (default), the largest
        ("all": every kind must agree) or the smallest ("any"). `Match.algorithm` names the kinds
        compared, joined by "+" (for "any": the closest kind).
        """
        if combine not in _COMBINES:
            raise ValueError(f"combine must be one of {', '.join(_COMBINES)}, not {combine!r}")
        per_kind = self.distances(query)
        if not per_kind or self._works.size == 0:
            return []
        n = self._works.size
        dist = np.full(n, np.inf) if combine == "any" else np.zeros(n)
        count = np.zeros(n, dtype=np.int32)
        for algorithm, (kind_bits, present) in per_kind.items():
            norm = kind_bits / float(hash_bits(algorithm))
            if combine == "mean":
                dist += np.where(present, norm, 0.0)
            elif combine == "all":
                np.maximum(dist, np.where(present, norm, 0.0), out=dist)
            else:
                np.minimum(dist, np.where(present, norm, np.inf), out=dist)
            count += present
        seen = count > 0
        if combine == "mean":
            dist = np.divide(dist, count, out=np.full(n, np.inf), where=seen)
        ok = seen & (dist <= max_distance + 1e-12)
        visible = self._tenants == -1
        code = self._tenant_codes.get(tenant)
        if code is not None:
            visible |= self._tenants == code
        (hits,) = np.nonzero(ok & visible)

        best: dict[int, tuple[float, int, int]] = {}
        for row in hits.tolist():
            d = float(dist[row])
            work = int(self._works[row])
            if work not in best or d < best[work][0]:
                best[work] = (d, int(self._variants[row]), row)
        matches = []
        for work, (d, variant, row) in best.items():
            bits = {a: int(dd[row]) for a, (dd, present) in per_kind.items() if present[row]}
            closest = min(bits, key=lambda a: (bits[a] / hash_bits(a), a))
            label = closest if combine == "any" else "+".join(sorted(bits))
            matches.append(Match(self._work_ids[work], label, self._variant_names[variant], round(d, 6), bits))
        matches.sort(key=lambda m: (m.distance, m.work_id))
        return matches


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class CopyrightSimilarity:
    """Reports the protected work closest to an image, if one lies within `max_distance`.

    The index comes from `ctx.resources["protected_index"]` (a `ProtectedIndex`); without one
    there are no findings. `max_distance` is a fraction of the hash width (the reporting floor;
    the policy's `protected_work` threshold decides); score = 1 - combined distance, so 0.875
    means 8 of 64 (or 32 of 256) bits on average. `combine` and `algorithms` (the hash kinds
    computed for a query) are passed to `ProtectedIndex.search` / `hash_image`. An image whose PDQ
    quality is below `min_quality` (almost uniform: a flat colour, a blank page) is not matched,
    since its hashes are nearly all zeros and would sit close to every flat crop in the registry.
    """

    name = "copyright"
    version = "2.0.0"
    modalities = frozenset({"image"})

    def __init__(
        self,
        max_distance: float = 0.25,
        combine: Combine = "mean",
        algorithms: Sequence[str] = ALGORITHMS,
        min_quality: int = 10,
    ) -> None:
        if not 0 <= min_quality <= 100:
            raise ValueError("min_quality is a PDQ quality score and must be within [0, 100]")
        if not 0.0 <= float(max_distance) <= 1.0:
            raise ValueError("max_distance is a fraction of the hash width and must be within [0, 1]")
        if combine not in _COMBINES:
            raise ValueError(f"combine must be one of {', '.join(_COMBINES)}")
        unknown = [a for a in algorithms if a not in _HASHERS]
        if unknown or not algorithms:
            raise ValueError(f"algorithms must name hash kinds among {', '.join(_HASHERS)}")
        self.max_distance = float(max_distance)
        self.combine: Combine = combine
        self.algorithms = tuple(algorithms)
        self.min_quality = int(min_quality)

    def load(self) -> None:
        from PIL import Image as PILImage

        warm = PILImage.linear_gradient("L").resize((64, 64)).convert("RGB")
        hash_image(warm, self.algorithms)  # import imagehash, scipy and pdqhash now

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, ImageItem):
            return []
        index = ctx.resources.get("protected_index")
        if index is None:
            return []
        if not isinstance(index, ProtectedIndex):
            raise DetectorError("copyright: resources['protected_index'] is not a ProtectedIndex")
        try:
            query, quality = hash_image_quality(item.image, self.algorithms)
        except Exception as exc:
            raise DetectorError(f"copyright: could not hash image {item.index}: {exc}") from exc
        if quality < self.min_quality:
            return []  # almost uniform: too little structure for any perceptual hash to identify a work
        matches = index.search(query, ctx.tenant, self.max_distance, combine=self.combine)
        if not matches:
            return []
        m = matches[0]
        bits = ", ".join(f"{a} {b}/{hash_bits(a)}" for a, b in sorted(m.bits.items()))
        return [
            Finding(
                detector=self.name,
                category="protected_work",
                score=max(0.0, min(1.0, 1.0 - m.distance)),
                explanation=(
                    f"the image is {m.distance:.3f} of the hash width ({bits} bits) from the {m.variant} "
                    f"variant of protected work {m.work_id}"
                ),
                evidence={
                    "work_id": m.work_id,
                    "algorithm": m.algorithm,
                    "variant": m.variant,
                    "distance": m.distance,
                    "bits": dict(m.bits),
                    "role": item.role,
                    "index": item.index,
                },
            )
        ]
