"""Perceptual-hash similarity of images against a registry of protected works.

Registration (`work_hashes`) stores, for each algorithm, the hash of the work, of its mirror
image and of crops of both (four corners and the centre at 90, 80 and 70 %: 32 variants, 64
hashes per work), because a global hash alone misses crops and flips. A query image is hashed
once per algorithm (`hash_image`) and compared by exact Hamming distance against every stored
hash (`ProtectedIndex.search`): one XOR and one popcount over a contiguous uint64 array per
algorithm. By default a variant matches only when every algorithm agrees (the distance is the
largest of them), which keeps chance matches rare in a large registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, Item

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "ALGORITHMS",
    "CROP_FRACTIONS",
    "HASH_BITS",
    "Combine",
    "CopyrightSimilarity",
    "Match",
    "ProtectedIndex",
    "WorkHash",
    "hash_image",
    "image_variants",
    "work_hashes",
]

HASH_BITS = 64
#: Hash algorithms computed by `hash_image`, in order.
ALGORITHMS: tuple[str, ...] = ("phash", "dhash")
#: Crop sizes stored at registration, as fractions of width and height. One size (80 %) finds
#: crops near 80 % only; three sizes find most crops between about 65 % and 95 %.
CROP_FRACTIONS: tuple[float, ...] = (0.9, 0.8, 0.7)


@dataclass(frozen=True)
class WorkHash:
    """One stored hash of one variant of a protected work. `tenant=None` applies to every tenant."""

    work_id: str
    tenant: str | None
    algorithm: str
    variant: str
    value: int  # 64-bit unsigned

    def __post_init__(self) -> None:
        if not 0 <= self.value < 1 << HASH_BITS:
            raise ValueError(f"hash value of {self.work_id}/{self.variant} is not a 64-bit unsigned int")


@dataclass(frozen=True)
class Match:
    """The closest stored hash of one work to a query."""

    work_id: str
    algorithm: str
    variant: str
    distance: int


def _hash_functions() -> dict[str, Callable[[Image], int]]:
    import imagehash

    def as_int(h: imagehash.ImageHash) -> int:
        bits = np.asarray(h.hash, dtype=bool).reshape(-1)
        if bits.size != HASH_BITS:
            raise ValueError(f"expected a {HASH_BITS}-bit hash, got {bits.size} bits")
        return int.from_bytes(np.packbits(bits).tobytes(), "big")

    return {
        "phash": lambda im: as_int(imagehash.phash(im)),
        "dhash": lambda im: as_int(imagehash.dhash(im)),
    }


def hash_image(image: Image) -> dict[str, int]:
    """64-bit perceptual hashes of `image`: {"phash": ..., "dhash": ...}."""
    gray = image.convert("L")
    return {name: fn(gray) for name, fn in _hash_functions().items()}


def image_variants(image: Image) -> dict[str, Image]:
    """The variants stored at registration: the original and its mirror, each whole and cropped to
    each of `CROP_FRACTIONS` at the four corners and the centre ("crop80_tl", "mirror_crop90_c", ...).
    """
    from PIL import ImageOps

    gray = image.convert("L")
    out: dict[str, Image] = {}
    for whole, prefix, base in (("original", "", gray), ("mirror", "mirror_", ImageOps.mirror(gray))):
        w, h = base.size
        out[whole] = base
        for fraction in CROP_FRACTIONS:
            cw, ch = max(1, round(w * fraction)), max(1, round(h * fraction))
            left, top = (w - cw) // 2, (h - ch) // 2
            name = f"{prefix}crop{round(fraction * 100)}_"
            out[name + "tl"] = base.crop((0, 0, cw, ch))
            out[name + "tr"] = base.crop((w - cw, 0, w, ch))
            out[name + "bl"] = base.crop((0, h - ch, cw, h))
            out[name + "br"] = base.crop((w - cw, h - ch, w, h))
            out[name + "c"] = base.crop((left, top, left + cw, top + ch))
    return out


def work_hashes(work_id: str, tenant: str | None, image: Image) -> list[WorkHash]:
    """Every hash to store for one protected work: each variant of `image_variants` × each algorithm."""
    out: list[WorkHash] = []
    for variant, im in image_variants(image).items():
        for algorithm, value in hash_image(im).items():
            out.append(WorkHash(work_id, tenant, algorithm, variant, value))
    return out


Combine = Literal["all", "any"]


class ProtectedIndex:
    """An immutable, exact Hamming-distance index over the hashes of protected works.

    Hashes of the same work, variant and tenant form one row, with one contiguous uint64 column
    per algorithm. Registering the same (work, variant, tenant, algorithm) again (a work with
    several reference images) starts a new row.
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
        self._columns = dict(columns)  # algorithm -> (values uint64, present bool)
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
        cells: dict[str, dict[int, int]] = {}
        count = 0
        for h in hashes:
            w = work_ids.setdefault(h.work_id, len(work_ids))
            v = variants.setdefault(h.variant, len(variants))
            t = -1 if h.tenant is None else tenants.setdefault(h.tenant, len(tenants))
            occurrence = next_free.get((w, v, t, h.algorithm), 0)
            next_free[(w, v, t, h.algorithm)] = occurrence + 1
            row = row_of.setdefault((w, v, t, occurrence), len(keys))
            if row == len(keys):
                keys.append((w, v, t))
            cells.setdefault(h.algorithm, {})[row] = h.value
            count += 1
        n = len(keys)
        columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for algorithm, by_row in cells.items():
            values = np.zeros(n, dtype=np.uint64)
            present = np.zeros(n, dtype=bool)
            rows = np.fromiter(by_row.keys(), dtype=np.int64, count=len(by_row))
            values[rows] = np.fromiter(by_row.values(), dtype=np.uint64, count=len(by_row))
            present[rows] = True
            columns[algorithm] = (_frozen(values), _frozen(present))
        meta = np.array(keys, dtype=np.int32).reshape(n, 3)
        return cls(
            columns,
            _frozen(np.ascontiguousarray(meta[:, 0])),
            _frozen(np.ascontiguousarray(meta[:, 1])),
            _frozen(np.ascontiguousarray(meta[:, 2])),
            (list(work_ids), list(variants), tenants),
            count,
        )

    def __len__(self) -> int:
        """The number of hashes stored."""
        return self._hash_count

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(self._columns)

    @property
    def work_count(self) -> int:
        return len(self._work_ids)

    def search(
        self,
        query: Mapping[str, int],
        tenant: str,
        max_distance: int,
        *,
        combine: Combine = "all",
    ) -> list[Match]:
        """Works within `max_distance` bits of the query, visible to `tenant` (its own works and
        those registered with tenant None); one `Match` per work, its closest variant, closest first.

        With `combine="all"` (default) a variant's distance is the largest over the algorithms
        that both the query and the variant have, so every algorithm must agree; `algorithm`
        then names them joined by "+". With `combine="any"` it is the smallest, from one
        algorithm. Agreement matters at scale: for unrelated 64-bit hashes P(d <= 16) is about
        3.5e-5 per hash (a few chance hits per query over 100k hashes), for two at once about 1e-9.
        """
        used = [a for a in query if a in self._columns]
        if not used or self._works.size == 0:
            return []
        n = self._works.size
        if combine == "all":
            dist = np.zeros(n, dtype=np.uint8)
            seen = np.zeros(n, dtype=bool)
        elif combine == "any":
            dist = np.full(n, 255, dtype=np.uint8)
        else:
            raise ValueError(f"combine must be 'all' or 'any', not {combine!r}")
        per_algorithm: dict[str, np.ndarray] = {}
        for algorithm in used:
            values, present = self._columns[algorithm]
            d = np.bitwise_count(values ^ np.uint64(query[algorithm]))
            per_algorithm[algorithm] = d
            if combine == "all":
                np.maximum(dist, np.where(present, d, 0), out=dist)
                seen |= present
            else:
                np.minimum(dist, np.where(present, d, 255), out=dist)
        ok = dist <= max_distance
        if combine == "all":
            ok &= seen
        visible = self._tenants == -1
        code = self._tenant_codes.get(tenant)
        if code is not None:
            visible |= self._tenants == code
        (hits,) = np.nonzero(ok & visible)

        best: dict[int, tuple[int, int, str]] = {}
        for row in hits.tolist():
            present_algs = [a for a in used if self._columns[a][1][row]]
            if combine == "all":
                label = "+".join(sorted(present_algs))
            else:
                label = min(present_algs, key=lambda a: (int(per_algorithm[a][row]), a))
            d = int(dist[row])
            work = int(self._works[row])
            if work not in best or d < best[work][0]:
                best[work] = (d, int(self._variants[row]), label)
        matches = [Match(self._work_ids[w], label, self._variant_names[v], d) for w, (d, v, label) in best.items()]
        matches.sort(key=lambda m: (m.distance, m.work_id))
        return matches


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class CopyrightSimilarity:
    """Reports the protected work closest to an image, if one lies within `max_distance` bits.

    The index comes from `ctx.resources["protected_index"]` (a `ProtectedIndex`); without one
    there are no findings. Score = 1 - distance / 64. `combine` is passed to
    `ProtectedIndex.search` ("all": every hash algorithm must agree).
    """

    name = "copyright"
    version = "1.0.0"
    modalities = frozenset({"image"})

    def __init__(self, max_distance: int = 16, combine: Combine = "all") -> None:
        if not 0 <= max_distance <= HASH_BITS:
            raise ValueError(f"max_distance must be within [0, {HASH_BITS}]")
        if combine not in ("all", "any"):
            raise ValueError("combine must be 'all' or 'any'")
        self.max_distance = max_distance
        self.combine: Combine = combine

    def load(self) -> None:
        _hash_functions()  # import imagehash (and scipy) at startup

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, ImageItem):
            return []
        index = ctx.resources.get("protected_index")
        if index is None:
            return []
        if not isinstance(index, ProtectedIndex):
            raise DetectorError("copyright: resources['protected_index'] is not a ProtectedIndex")
        try:
            query = hash_image(item.image)
        except Exception as exc:
            raise DetectorError(f"copyright: could not hash image {item.index}: {exc}") from exc
        matches = index.search(query, ctx.tenant, self.max_distance, combine=self.combine)
        if not matches:
            return []
        m = matches[0]
        return [
            Finding(
                detector=self.name,
                category="protected_work",
                score=1.0 - m.distance / HASH_BITS,
                explanation=(
                    f"{m.algorithm} of the image is {m.distance} bits from the {m.variant} "
                    f"variant of protected work {m.work_id}"
                ),
                evidence={
                    "work_id": m.work_id,
                    "algorithm": m.algorithm,
                    "variant": m.variant,
                    "distance": m.distance,
                    "role": item.role,
                    "index": item.index,
                },
            )
        ]
