"""Perceptual-hash similarity of images against a registry of protected works.

Four hash kinds are computed (`ALGORITHMS`): pHash and dHash (64 bits each, imagehash, on the
grey image), PDQ (256 bits, Meta's PDQ through `pdqhash`, on the luminance of the RGB image) and
a colour hash (42 bits, imagehash's HSV histogram hash, on a 64-pixel thumbnail).

Registration (`work_hashes`) stores, for each kind, the hash of the work and of a dense grid of
crops of it (`crop_windows`), because a global hash alone misses crops: every way of cutting
0, 5, 10, 15 or 20 % off the left and the right (at most 20 % together), times the same for the
top and the bottom, 15 x 15 = 225 variants, plus 18 crops keeping 75 or 70 % of each side (243).
A copy cropped anywhere up to 20 % of each side has each of its edges within 2.5 % of the same
edge of a stored crop (version 2 stored 90, 80 and 70 % crops at three places per axis, whose
edges could lie 5 % away, and missed such crops). Mirror images are not stored: a query is hashed as given
and mirrored (`hash_query`) and both are searched, which finds mirrored copies and mirrored crops
at half the storage. A work with transparency is stored composited on white and on black
(`BACKGROUNDS`; "black_..." variants), and a query with transparency is hashed on white, so a logo
registered from a transparent PNG matches on either page colour (version 3.1 hashed the pixels
under the transparency, usually black). A work too uniform for the detector ever to match (PDQ
quality below `MIN_QUALITY`) is refused (`UnhashableImage`); 16-bit images are scaled to 8 bits
rather than clipped (`flatten`). A query that shows something inside a uniform margin (a frame, a
pillarbox, a picture on a page) is searched with the margin trimmed as well (`margin_box`).

A query is compared by exact Hamming distance against the stored hashes (`ProtectedIndex.search`):
one XOR and one popcount (numpy's `bitwise_count`) per 64-bit word of a contiguous (rows, words)
uint64 array. Distances are compared as fractions of each kind's width (8 of 64 bits = 32 of 256
bits = 0.125), so kinds of different widths combine. By default (`combine="weighted"`) a stored
variant's distance is the weighted mean over the kinds that both the query and the variant have,
with `WEIGHTS` (PDQ 4, pHash 2, colour 2, dHash 1; dHash and the colour hash alone agree by chance
on grey, low-contrast pictures). The search is exact: every stored variant within the radius is
found. Every row is compared (one pass over the array in cache-sized chunks, the image and its
mirror per chunk; about 10 ms per orientation per million variants here), except where a pHash
gate is provably lossless (`lossless_gate`: no variant it drops could lie within the radius, e.g.
"all" or a small radius) and narrow enough to pay: then the pHash column is scanned first and the
other kinds are computed for the rows that pass. A weighted radius of 0.25 admits any pHash
distance (pHash weighs 2 of 9), so the default search compares every row. `PHASH_GATE` is an
optional, lossy speed-up (`gate=`) and is not applied by default. "mean" (unweighted), "all" (the
largest: every kind must agree) and "any" (the smallest) are kept for comparison;
`bench/eval_copy.py` measured which rule keeps chance matches rare and still finds edited copies
(weights and thresholds chosen on even rows, reported on odd rows too): at a distance of 0.25
(score 0.75) every copy of the bench (280; crops up to 20 %, resizes, JPEG 30, brightness, mirror,
grayscale) was found, with 0.04-0.1 % of 10,000 real distractors within it.

Storage: a hash wider than 64 bits is kept as 64-bit words (`WorkHash.words`), stored under the
kind's name with the word's position ("pdq:0" is the most significant word), so the registry's
table holds BIGINTs only. `ProtectedIndex.from_hashes` accepts both forms, `from_rows` builds from
the table's columns without a Python object per hash, and indexes built from works registered by
earlier versions (with "mirror" and "mirror_crop..." variants) still work. An index may carry
each work's registered name (`work_names`), which a `Match` and the detector's finding report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, Item

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "ALGORITHMS",
    "BACKGROUNDS",
    "CROP_STEP",
    "DEEP_CROPS",
    "HASH_BITS",
    "MARGIN_VIEW",
    "MAX_CROP",
    "MIN_QUALITY",
    "PHASH_GATE",
    "WEIGHTS",
    "WORD_BITS",
    "Background",
    "Combine",
    "CopyrightSimilarity",
    "Match",
    "ProtectedIndex",
    "QueryCrop",
    "QueryHashes",
    "UnhashableImage",
    "WorkHash",
    "crop_windows",
    "flatten",
    "has_transparency",
    "hash_bits",
    "hash_image",
    "hash_image_quality",
    "hash_query",
    "image_variants",
    "lossless_gate",
    "margin_box",
    "mirrored_variant",
    "work_hashes",
]

WORD_BITS = 64
#: Width of each hash kind in bits. A stored kind not listed here is one 64-bit word.
HASH_BITS: dict[str, int] = {"phash": 64, "dhash": 64, "pdq": 256, "colorhash": 42}
#: Hash kinds computed by `hash_image`, in order.
ALGORITHMS: tuple[str, ...] = ("phash", "dhash", "pdq", "colorhash")
#: Weight of each kind in the default "weighted" combination (a kind not listed weighs 1).
WEIGHTS: dict[str, float] = {"phash": 2.0, "dhash": 1.0, "pdq": 4.0, "colorhash": 2.0}
#: An optional, lossy pHash gate (`ProtectedIndex.search(gate=PHASH_GATE)`; not applied by
#: default): only variants whose pHash is within this fraction of 64 bits of the query's (22 bits)
#: are compared. The closest variant of every edited copy measured (bench/eval_copy.py, and 560
#: more crops) agreed within 22 bits and unrelated pictures pass for about 1 % of stored variants,
#: but a variant whose pHash differs by more can still lie within the weighted radius (pHash
#: weighs 2 of 9), so the default search does not use it.
PHASH_GATE = 22 / 64
#: The registration crop grid: cuts of 0, CROP_STEP, 2 x CROP_STEP, ... off each side of an axis,
#: at most MAX_CROP off the two sides of an axis together.
CROP_STEP = 0.05
MAX_CROP = 0.2
#: Deeper crops, nine for each fraction here (that much off both axes, at the start, centre or
#: end of each), keep copies cropped by a quarter or so findable.
DEEP_CROPS: tuple[float, ...] = (0.25, 0.3)

#: PDQ's quality score (0-100) below which an image is too uniform to identify (a flat colour,
#: a blank page: its hashes are nearly all zeros): the detector does not match such a query, and
#: `work_hashes` refuses to register such a work (`UnhashableImage`).
MIN_QUALITY = 10
Background = Literal["white", "black"]
#: The backgrounds a work with transparency is registered on: the first keeps the plain variant
#: names, the others prefix them ("black_original", "black_crop_l5r0t0b0").
BACKGROUNDS: tuple[Background, ...] = ("white", "black")
#: A query shown inside a margin (a frame, a mat, a pillarbox or letterbox, a picture on a page) is
#: also searched with the margin trimmed (`margin_box`): the trimmed view is the work as registered.
#: A margin is a band of one colour along two opposite sides at least (or more), each side's
#: outermost line within `_MARGIN_TOLERANCE` of one colour for `_MARGIN_UNIFORM` of its pixels,
#: trimmed up to the first line where more than `_CONTENT_FRACTION` of the pixels differ; margins
#: under `_MIN_MARGIN` of a side are not worth a view. Fixed central crops (80 % and 60 % of each
#: side) were measured too (bench/eval_copy.py, 3,000 distractors): they found centred frames but
#: raised the false positives at the policy's threshold from 1 to 8, as every query got two more
#: chances to lie near some stored crop; the margin view was made for 69 of the 3,000 and raised
#: none, and it also finds off-centre, pillarboxed and letterboxed copies.
MARGIN_VIEW = "inside_margin"
_MARGIN_TOLERANCE = 24  # of 255, per channel: JPEG noise on a flat border stays within it
_MARGIN_UNIFORM = 0.95
_CONTENT_FRACTION = 0.02
_MIN_MARGIN = 0.03
_MIN_CONTENT_SIDE = 24  # pixels of the image as hashed (at most 256 a side)

_GATE_KIND = "phash"
_CHUNK_ROWS = 1 << 16  # rows per chunk of the gate scan: 512 KiB of hashes, stays in cache
_SCAN_ROWS = 1 << 14  # rows per chunk of the full scan: 896 KiB of whole rows (7 words), stays in cache
_SCAN_SLACK = 1e-5  # the full scan's float32 distances are within 1e-6 of the exact ones; candidates are re-checked
#: A lossless pHash gate is used only where it is this narrow (of 64 bits) or narrower: unrelated
#: pictures pass for about 5 % of stored variants at 24 bits, and a wider gate passes so many rows
#: that gathering them costs more than comparing every row.
_GATE_WORTH_BITS = 24
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
    `bits` the Hamming distance of each hash kind that was compared. `variant` names the stored
    variant as the query saw it: "mirror_crop_l5r0t10b5" when the mirrored query matched
    "crop_l5r0t10b5" (see `mirrored_variant`). `work_name` is the name the work was registered
    under, where the index knows it. `view` names the part of the query that matched
    (`MARGIN_VIEW`, see `QueryCrop`); None: the whole query.
    """

    work_id: str
    algorithm: str
    variant: str
    distance: float
    bits: Mapping[str, int] = field(default_factory=dict)
    work_name: str | None = None
    view: str | None = None


@dataclass(frozen=True)
class QueryCrop:
    """The hashes of one part of a query searched besides the whole (`MARGIN_VIEW`: what it shows
    inside a uniform margin) and of its mirror image, the part's PDQ quality, and its box
    (left, top, right, bottom) in the image as hashed (at most 256 pixels a side)."""

    name: str
    hashes: dict[str, int]
    mirror: dict[str, int]
    quality: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class QueryHashes:
    """The hashes of a query image (`hashes`) and of its mirror image (`mirror`), PDQ's quality
    score of the image (0-100; near 0 for an almost uniform image), and the hashes of parts of it
    searched too (`crops`: what it shows inside a margin, where it has one)."""

    hashes: dict[str, int]
    mirror: dict[str, int]
    quality: int
    crops: tuple[QueryCrop, ...] = ()


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


def has_transparency(image: Image) -> bool:
    """Whether some pixel of `image` is not fully opaque (an alpha channel below 255 somewhere, or
    a transparent palette entry or colour key)."""
    if not image.has_transparency_data:
        return False
    lowest, _ = image.convert("RGBA").getchannel("A").getextrema()
    return isinstance(lowest, int | float) and lowest < 255


def flatten(image: Image, background: Background = "white") -> Image:
    """`image` as 8-bit "RGB" or "L", as a viewer shows it: transparency composited onto
    `background` (a transparent logo on a white page), 16-bit samples scaled to 8 bits (Pillow's
    own conversion clips them, turning most of a 16-bit PNG white)."""
    from PIL import Image as PILImage

    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        base = PILImage.new("RGB", rgba.size, background)
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    if image.mode.startswith("I;16") or (image.mode == "I" and _highest(image) > 255):
        samples = np.asarray(image, dtype=np.float64)
        return PILImage.fromarray(np.clip(np.rint(samples / 257.0), 0, 255).astype(np.uint8), "L")
    if image.mode not in ("RGB", "L"):
        return image.convert("RGB")
    return image


def _highest(image: Image) -> float:
    """The largest sample of a one-band image."""
    _, highest = image.getextrema()
    return float(highest) if isinstance(highest, int | float) else math.inf


def _prepare(image: Image, background: Background = "white") -> Image:
    image = flatten(image, background)
    factor = -(-max(image.size) // _MAX_SIDE)
    return image.reduce(factor) if factor > 1 else image


def _check_kinds(algorithms: Sequence[str]) -> None:
    unknown = [a for a in algorithms if a not in _HASHERS]
    if unknown:
        raise ValueError(f"unknown hash kind(s) {unknown}; known: {', '.join(_HASHERS)}")


def _hash_prepared(image: Image, algorithms: Sequence[str]) -> tuple[dict[str, int], int]:
    pdq, quality = _pdq_with_quality(image)
    return {a: pdq if a == "pdq" else _HASHERS[a](image) for a in algorithms}, quality


def hash_image(image: Image, algorithms: Sequence[str] = ALGORITHMS) -> dict[str, int]:
    """Perceptual hashes of `image` by kind: {"phash": 64-bit int, ..., "pdq": 256-bit int, ...}."""
    return hash_image_quality(image, algorithms)[0]


def hash_image_quality(image: Image, algorithms: Sequence[str] = ALGORITHMS) -> tuple[dict[str, int], int]:
    """`hash_image` plus PDQ's quality score of the image (0-100; near 0 for an almost uniform image)."""
    _check_kinds(algorithms)
    return _hash_prepared(_prepare(image), algorithms)


def margin_box(image: Image) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom, in pixels) of what `image` shows inside a uniform margin,
    or None where it has none (see `MARGIN_VIEW`). A side counts as margin when its outermost line
    is (nearly) one colour, the same as the other margin sides; two opposite sides must be margin
    (a photograph with a plain sky along one side has none)."""
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    h, w, _ = pixels.shape
    if min(h, w) < _MIN_CONTENT_SIDE:
        return None
    colours: dict[str, np.ndarray] = {}
    for side, edge in (("top", pixels[0]), ("bottom", pixels[-1]), ("left", pixels[:, 0]), ("right", pixels[:, -1])):
        line = edge.astype(np.int16)
        colour = np.median(line, axis=0)
        if (np.abs(line - colour).max(axis=1) <= _MARGIN_TOLERANCE).mean() >= _MARGIN_UNIFORM:
            colours[side] = colour
    if not colours:
        return None
    border = np.median(np.stack(list(colours.values())), axis=0)
    sides = {s for s, c in colours.items() if np.abs(c - border).max() <= _MARGIN_TOLERANCE}
    if not ({"top", "bottom"} <= sides or {"left", "right"} <= sides):
        return None
    content = np.abs(pixels.astype(np.int16) - border).max(axis=2) > _MARGIN_TOLERANCE
    rows = np.flatnonzero(content.mean(axis=1) > _CONTENT_FRACTION)
    cols = np.flatnonzero(content.mean(axis=0) > _CONTENT_FRACTION)
    if rows.size == 0 or cols.size == 0:
        return None  # all margin
    top = int(rows[0]) if "top" in sides else 0
    bottom = int(rows[-1]) + 1 if "bottom" in sides else h
    left = int(cols[0]) if "left" in sides else 0
    right = int(cols[-1]) + 1 if "right" in sides else w
    if max(top / h, 1 - bottom / h, left / w, 1 - right / w) < _MIN_MARGIN:
        return None  # too thin to matter: the whole image is the work
    if right - left < _MIN_CONTENT_SIDE or bottom - top < _MIN_CONTENT_SIDE:
        return None
    return left, top, right, bottom


def hash_query(image: Image, algorithms: Sequence[str] = ALGORITHMS) -> QueryHashes:
    """The hashes a query is searched with: the image as given and mirrored (registration stores
    no mirror images), plus the image's PDQ quality; and, where the image shows something inside a
    uniform margin (`margin_box`, on the image as it is hashed), the same for that part
    (`QueryHashes.crops`, named `MARGIN_VIEW`)."""
    from PIL import ImageOps

    _check_kinds(algorithms)
    prepared = _prepare(image)
    hashes, quality = _hash_prepared(prepared, algorithms)
    mirror, _ = _hash_prepared(ImageOps.mirror(prepared), algorithms)
    views: list[QueryCrop] = []
    box = margin_box(prepared)
    if box is not None:
        inside = prepared.crop(box)
        inside_hashes, inside_quality = _hash_prepared(inside, algorithms)
        inside_mirror, _ = _hash_prepared(ImageOps.mirror(inside), algorithms)
        views.append(QueryCrop(MARGIN_VIEW, inside_hashes, inside_mirror, inside_quality, box))
    return QueryHashes(hashes, mirror, quality, tuple(views))


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100, 1):g}"


def crop_windows(
    step: float = CROP_STEP, max_crop: float = MAX_CROP, deep_crops: Sequence[float] = DEEP_CROPS
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The crops stored at registration: (name, (left, top, right, bottom) as fractions of the
    width and height), the whole image ("original") first.

    Each axis is cut by 0, `step`, 2 x `step`, ... at its start and at its end, at most
    `max_crop` together, and every such cut of the width is stored with every such cut of the
    height: "crop_l5r0t10b5" is the image less 5 % on the left, 10 % at the top and 5 % at the
    bottom. The defaults give 15 cuts per axis, 225 windows. For each of `deep_crops`, 9 deeper
    crops follow: that much off both axes, at the start, centre or end of each (3 x 3), so that
    a copy cropped by about a quarter still lies near one (243 windows in all).
    """
    if not (0 < step <= max_crop < 1):
        raise ValueError("crop windows need 0 < step <= max_crop < 1")
    if any(not max_crop < d < 1 for d in deep_crops):
        raise ValueError("deep crops must lie between max_crop and 1")
    cuts = [k * step for k in range(math.floor(max_crop / step + 1e-9) + 1)]
    axis = [(a, b) for a in cuts for b in cuts if a + b <= max_crop + 1e-9]
    pairs = [(x, y) for x in axis for y in axis]
    for d in deep_crops:
        deep = [(0.0, d), (d / 2, d / 2), (d, 0.0)]
        pairs += [(x, y) for x in deep for y in deep]
    out: list[tuple[str, tuple[float, float, float, float]]] = []
    for (left, right), (top, bottom) in pairs:
        if left == right == top == bottom == 0:
            name = "original"
        else:
            name = f"crop_l{_pct(left)}r{_pct(right)}t{_pct(top)}b{_pct(bottom)}"
        out.append((name, (left, top, 1.0 - right, 1.0 - bottom)))
    return out


def image_variants(image: Image, background: Background = "white") -> dict[str, Image]:
    """The variants stored at registration: the work and each crop of `crop_windows()`, taken
    from the image as it is hashed (transparency composited onto `background`, reduced to at most
    256 pixels a side)."""
    rgb = _prepare(image, background).convert("RGB")
    w, h = rgb.size
    out: dict[str, Image] = {}
    for name, (left, top, right, bottom) in crop_windows(CROP_STEP, MAX_CROP, DEEP_CROPS):
        if name == "original":
            out[name] = rgb
            continue
        x0, y0 = round(left * w), round(top * h)
        x1, y1 = max(x0 + 1, round(right * w)), max(y0 + 1, round(bottom * h))
        out[name] = rgb.crop((x0, y0, x1, y1))
    return out


class UnhashableImage(ValueError):
    """A work too uniform to register: its PDQ quality is below the minimum (`work_hashes`)."""

    def __init__(self, message: str, quality: int) -> None:
        super().__init__(message)
        self.quality = quality


def work_hashes(
    work_id: str,
    tenant: str | None,
    image: Image,
    algorithms: Sequence[str] = ALGORITHMS,
    *,
    min_quality: int = MIN_QUALITY,
) -> list[WorkHash]:
    """Every hash to store for one protected work: each variant of `image_variants` × each kind.

    A work with transparency is registered on each of `BACKGROUNDS` (on white with the plain
    variant names, on black as "black_original", "black_crop_..."), so that the work shown on
    either matches. A background on which the work's PDQ quality is below `min_quality` (a black
    logo on black) is left out; if every one is (a flat or 1 x 1 image), `UnhashableImage`:
    such a work could never be matched, since the detector does not match a query that uniform.
    """
    _check_kinds(algorithms)
    backgrounds = BACKGROUNDS if has_transparency(image) else BACKGROUNDS[:1]
    out: list[WorkHash] = []
    qualities: list[int] = []
    for background in backgrounds:
        variants = image_variants(image, background)
        quality = _pdq_with_quality(variants["original"])[1]
        qualities.append(quality)
        if quality < min_quality:
            continue
        prefix = "" if background == BACKGROUNDS[0] else f"{background}_"
        for variant, im in variants.items():
            for algorithm, value in _hash_prepared(im, algorithms)[0].items():
                out.append(WorkHash(work_id, tenant, algorithm, prefix + variant, value))
    if not out:
        best = max(qualities)
        raise UnhashableImage(
            f"the image is too uniform to register: its PDQ quality is {best}, below {min_quality} "
            "(a flat, blank or tiny image cannot be told apart from others by a perceptual hash)",
            best,
        )
    return out


def mirrored_variant(variant: str) -> str:
    """The name of a stored variant as seen by the mirrored query: "original" <-> "mirror",
    "crop_x" <-> "mirror_crop_x" (a variant stored mirrored by an earlier version turns back)."""
    if variant == "original":
        return "mirror"
    if variant == "mirror":
        return "original"
    if variant.startswith("mirror_"):
        return variant.removeprefix("mirror_")
    return "mirror_" + variant


Combine = Literal["weighted", "mean", "all", "any"]
_COMBINES: tuple[str, ...] = ("weighted", "mean", "all", "any")


def _weight(algorithm: str, combine: str) -> float:
    return WEIGHTS.get(algorithm, 1.0) if combine == "weighted" else 1.0


def lossless_gate(max_distance: float, combine: str, kinds: Iterable[str]) -> float:
    """The largest pHash distance (a fraction of its 64 bits) that a stored variant with a pHash
    can have and still lie within `max_distance` of a query with hash kinds `kinds` (pHash among
    them) under `combine`; 1.0 where any pHash distance can.

    A gate at this value drops no match: for "weighted" and "mean" a variant's distance is at
    least w_phash * d_phash / W, where W (the weights of the kinds the query and the variant
    share) is at most the weights of `kinds`; for "all" it is at least d_phash; "any" has no
    bound. With the default weights a weighted radius of 0.25 allows any pHash distance
    (2/9 < 0.25), so the detector's search compares every variant.
    """
    if combine not in _COMBINES:
        raise ValueError(f"combine must be one of {', '.join(_COMBINES)}, not {combine!r}")
    kinds = list(dict.fromkeys(kinds))
    if _GATE_KIND not in kinds or combine == "any":
        return 1.0
    if combine == "all":
        return min(1.0, max(0.0, max_distance))
    total = sum(_weight(a, combine) for a in kinds)
    return min(1.0, max(0.0, max_distance) * total / _weight(_GATE_KIND, combine))


def _combine(bits: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray], combine: str, n: int) -> np.ndarray:
    """The combined distance (fraction of the width) of `n` rows from per-kind bit distances;
    inf where the row shares no kind with the query."""
    if combine in ("weighted", "mean"):
        total = np.zeros(n)
        weight = np.zeros(n)
        for algorithm, kind_bits in bits.items():
            w = WEIGHTS.get(algorithm, 1.0) if combine == "weighted" else 1.0
            here = present[algorithm]
            total += np.where(here, kind_bits * (w / hash_bits(algorithm)), 0.0)
            weight += np.where(here, w, 0.0)
        out: np.ndarray = np.divide(total, weight, out=np.full(n, np.inf), where=weight > 0)
        return out
    dist = np.full(n, -np.inf) if combine == "all" else np.full(n, np.inf)
    seen = np.zeros(n, dtype=bool)
    for algorithm, kind_bits in bits.items():
        here = present[algorithm]
        norm = kind_bits / float(hash_bits(algorithm))
        if combine == "all":
            np.maximum(dist, np.where(here, norm, -np.inf), out=dist)
        else:
            np.minimum(dist, np.where(here, norm, np.inf), out=dist)
        seen |= here
    dist[~seen] = np.inf
    return dist


@dataclass
class _Found:
    """The rows of one query orientation that lie within the search radius."""

    rows: np.ndarray
    dist: np.ndarray
    bits: dict[str, np.ndarray]
    present: dict[str, np.ndarray]


class ProtectedIndex:
    """An immutable, exact Hamming-distance index over the hashes of protected works.

    Hashes of the same work, variant and tenant form one row; a row's hashes of every kind lie
    side by side in one (rows, words) uint64 array (pHash, dHash, PDQ's four words, colour: 56
    bytes, so a row is read in one cache line), with a contiguous copy of the pHash column for
    the gate scan. Registering the same (work, variant, tenant, kind) again (a work with several
    reference images) starts a new row. `work_names` (work id -> the name it was registered
    under) is optional; matches of a work without one have `work_name` None.
    """

    def __init__(
        self,
        columns: Mapping[str, tuple[np.ndarray, np.ndarray]],
        works: np.ndarray,
        variants: np.ndarray,
        tenants: np.ndarray,
        names: tuple[list[str], list[str], dict[str, int]],
        hash_count: int,
        work_names: Mapping[str, str] | None = None,
    ) -> None:
        """`columns`: kind -> (values (n, words) uint64, present (n,) bool); `works`, `variants`,
        `tenants`: (n,) int32 indexes into `names` (work ids, variant names, tenant -> code; -1
        for every tenant); `work_names`: work id -> registered name."""
        n = int(works.size)
        kinds = sorted(columns, key=lambda a: (ALGORITHMS.index(a) if a in ALGORITHMS else len(ALGORITHMS), a))
        self._slices: dict[str, tuple[int, int, int]] = {}  # kind -> (first word, end word, position)
        width = 0
        for position, algorithm in enumerate(kinds):
            words = int(columns[algorithm][0].shape[1])
            self._slices[algorithm] = (width, width + words, position)
            width += words
        packed = np.zeros((n, width), dtype=np.uint64)
        present = np.zeros((n, len(kinds)), dtype=bool)
        for algorithm, (start, end, position) in self._slices.items():
            packed[:, start:end] = columns[algorithm][0]
            present[:, position] = columns[algorithm][1]
        self._packed = _frozen(packed)
        self._present = _frozen(present)
        self._all_present = bool(present.all())
        self._works = works
        self._variants = variants
        self._tenants = tenants
        self._work_ids, self._variant_names, self._tenant_codes = names
        self._hash_count = hash_count
        given = work_names or {}
        self._work_names = {w: str(given[w]) for w in self._work_ids if w in given}
        self._work_rank = _frozen(np.argsort(np.argsort(np.array(self._work_ids, dtype=object))).astype(np.int32))
        # the pHash column as a flat (n,) array for the gate scan, and the rows without a pHash
        # (always compared in full)
        self._gate: tuple[np.ndarray, np.ndarray] | None = None
        if _GATE_KIND in self._slices:
            start, _, position = self._slices[_GATE_KIND]
            self._gate = (
                _frozen(np.ascontiguousarray(packed[:, start])),
                _frozen(np.flatnonzero(~present[:, position])),
            )

    @classmethod
    def from_hashes(cls, hashes: Iterable[WorkHash], names: Mapping[str, str] | None = None) -> ProtectedIndex:
        """An index of `hashes`: whole hashes or stored 64-bit words ("pdq:0"), in any mix;
        `names`: work id -> registered name (optional)."""
        work_ids: list[str] = []
        tenants: list[str | None] = []
        algorithms: list[str] = []
        variants: list[str] = []
        values: list[int] = []
        for h in hashes:
            base, position = _split_word(h.algorithm)
            words = _words_of(base)
            if position is None and words > 1:
                stored: Sequence[str] = [f"{base}:{i}" for i in range(words)]
                parts: Sequence[int] = _to_words(h.value, words)
            else:
                stored, parts = [h.algorithm], [h.value]
            for name, part in zip(stored, parts, strict=True):
                work_ids.append(h.work_id)
                tenants.append(h.tenant)
                algorithms.append(name)
                variants.append(h.variant)
                values.append(part)
        return cls.from_rows(work_ids, tenants, algorithms, variants, values, names=names)

    @classmethod
    def from_rows(
        cls,
        work_ids: Sequence[str],
        tenants: Sequence[str | None],
        algorithms: Sequence[str],
        variants: Sequence[str],
        values: Sequence[int] | np.ndarray,
        names: Mapping[str, str] | None = None,
    ) -> ProtectedIndex:
        """An index of stored hashes given as parallel columns, as the registry's table holds
        them: one hash of at most 64 bits per row, a wider one as its 64-bit words ("pdq:0" ..
        "pdq:3"). `values` are unsigned ints, or an int64 array of the same bits (the signed
        BIGINTs a database returns); `names`: work id -> registered name (optional). Builds with
        numpy rather than one Python object per hash.
        """
        n = len(values)
        if not len(work_ids) == len(tenants) == len(algorithms) == len(variants) == n:
            raise ValueError("from_rows needs columns of one length")
        if isinstance(values, np.ndarray) and values.dtype == np.int64:
            words = values.view(np.uint64)
        else:
            try:
                words = np.fromiter(values, dtype=np.uint64, count=n)
            except (OverflowError, TypeError) as exc:
                raise ValueError("stored hash values must be unsigned 64-bit ints") from exc
        work_index: dict[str, int] = {}
        variant_index: dict[str, int] = {}
        tenant_index: dict[str, int] = {}
        kind_index: dict[str, int] = {}
        w = np.fromiter((work_index.setdefault(x, len(work_index)) for x in work_ids), dtype=np.int64, count=n)
        v = np.fromiter((variant_index.setdefault(x, len(variant_index)) for x in variants), dtype=np.int64, count=n)
        t = np.fromiter(
            (-1 if x is None else tenant_index.setdefault(x, len(tenant_index)) for x in tenants),
            dtype=np.int64,
            count=n,
        )
        a = np.fromiter((kind_index.setdefault(x, len(kind_index)) for x in algorithms), dtype=np.int64, count=n)
        stored = list(kind_index)  # "phash", "pdq:2", ...
        split = [_split_word(name) for name in stored]
        for code, (base, position) in enumerate(split):
            width = WORD_BITS if position is not None else hash_bits(base)
            if width < WORD_BITS and (words[a == code] >> np.uint64(width)).any():
                raise ValueError(f"a stored {stored[code]} hash is not a {width}-bit unsigned int")

        # a row is (work, variant, tenant, occurrence): the k-th hash of one kind for the same
        # work, variant and tenant (a work with several reference images) goes to row k
        order = np.lexsort((np.arange(n), a, t, v, w))
        starts = np.ones(n, dtype=bool)
        if n:
            sw, sv, st, sa = w[order], v[order], t[order], a[order]
            starts[1:] = (sw[1:] != sw[:-1]) | (sv[1:] != sv[:-1]) | (st[1:] != st[:-1]) | (sa[1:] != sa[:-1])
        positions = np.arange(n)
        occurrence = np.empty(n, dtype=np.int64)
        occurrence[order] = positions - np.maximum.accumulate(np.where(starts, positions, 0))
        keys = np.stack([w, v, t, occurrence], axis=1)
        unique, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        by_appearance = np.argsort(first, kind="stable")  # rows numbered in order of first appearance
        row_of_unique = np.empty(by_appearance.size, dtype=np.int64)
        row_of_unique[by_appearance] = np.arange(by_appearance.size)
        row = row_of_unique[inverse.reshape(-1)]
        meta = unique[by_appearance]
        rows = int(meta.shape[0])

        columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        bases: dict[str, list[tuple[int, int]]] = {}
        for code, (base, position) in enumerate(split):
            bases.setdefault(base, []).append((code, position or 0))
        hash_count = 0
        for base, codes in bases.items():
            column = np.zeros((rows, _words_of(base)), dtype=np.uint64)
            present = np.zeros(rows, dtype=bool)
            for code, position in codes:
                mine = a == code
                column[row[mine], position] = words[mine]
                present[row[mine]] = True
            hash_count += int(present.sum())
            columns[base] = (column, present)
        return cls(
            columns,
            _frozen(meta[:, 0].astype(np.int32)),
            _frozen(meta[:, 1].astype(np.int32)),
            _frozen(meta[:, 2].astype(np.int32)),
            (list(work_index), list(variant_index), tenant_index),
            hash_count,
            names,
        )

    def __len__(self) -> int:
        """The number of hashes stored (a 256-bit PDQ hash counts once)."""
        return self._hash_count

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(self._slices)

    @property
    def work_count(self) -> int:
        return len(self._work_ids)

    @property
    def row_count(self) -> int:
        """The number of stored variants (rows), over all works."""
        return int(self._works.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the index's arrays (hashes, presence flags, row keys), in bytes."""
        arrays = [self._packed, self._present, self._works, self._variants, self._tenants, self._work_rank]
        arrays += list(self._gate or ())
        return sum(int(a.nbytes) for a in arrays)

    def distances(self, query: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Hamming distance in bits from the query to every row, per kind the query and the index
        share: kind -> (distances (n,) uint16, present (n,) bool)."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for algorithm, value in query.items():
            if algorithm not in self._slices:
                continue
            start, end, position = self._slices[algorithm]
            q = np.array(_to_words(int(value), end - start), dtype=np.uint64)
            bits = np.bitwise_count(self._packed[:, start:end] ^ q).sum(axis=1, dtype=np.uint16)
            out[algorithm] = (bits, self._present[:, position])
        return out

    def column(self, algorithm: str) -> np.ndarray:
        """The stored hashes of one kind as (rows, words) uint64 (a read-only view)."""
        start, end, _ = self._slices[algorithm]
        return self._packed[:, start:end]

    def variant_name(self, row: int) -> str:
        return self._variant_names[int(self._variants[row])]

    def work_of(self, row: int) -> str:
        return self._work_ids[int(self._works[row])]

    def name_of(self, work_id: str) -> str | None:
        """The name `work_id` was registered under, if the index was given it."""
        return self._work_names.get(work_id)

    def _gate_rows(
        self, gate: tuple[np.ndarray, np.ndarray], values: Sequence[int], gate_bits: int
    ) -> list[np.ndarray]:
        """For each query pHash, the rows whose pHash is within `gate_bits` of it (plus the rows
        without a pHash), ascending. One pass over the pHash column, chunk by chunk, for all
        queries at once."""
        column, ungated = gate
        n = column.size
        queries = [np.uint64(v) for v in values]
        found: list[list[np.ndarray]] = [[] for _ in queries]
        size = min(n, _CHUNK_ROWS)
        xor = np.empty(size, dtype=np.uint64)
        count = np.empty(size, dtype=np.uint8)
        near = np.empty(size, dtype=bool)
        for start in range(0, n, _CHUNK_ROWS):
            m = min(n - start, _CHUNK_ROWS)
            chunk = column[start : start + m]
            for i, q in enumerate(queries):
                np.bitwise_xor(chunk, q, out=xor[:m])
                np.bitwise_count(xor[:m], out=count[:m])
                np.less_equal(count[:m], gate_bits, out=near[:m])
                hits = np.flatnonzero(near[:m])
                if hits.size:
                    found[i].append(hits + start)
        out = []
        for parts in found:
            rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            out.append(np.union1d(rows, ungated) if ungated.size else rows)
        return out

    def _visible(self, rows: np.ndarray, tenant: str) -> np.ndarray:
        """Which of `rows` the tenant may see: its own works and those registered for every tenant."""
        tenants = np.take(self._tenants, rows)
        visible: np.ndarray = tenants == -1
        code = self._tenant_codes.get(tenant)
        if code is not None:
            visible |= tenants == code
        return visible

    def _compare(
        self, query: Mapping[str, int], rows: np.ndarray, tenant: str, max_distance: float, combine: str
    ) -> _Found | None:
        """The rows among `rows` visible to `tenant` and within `max_distance` of `query`."""
        rows = rows[self._visible(rows, tenant)]
        kinds = [a for a in query if a in self._slices]
        if rows.size == 0 or not kinds:
            return None
        q = np.zeros(self._packed.shape[1], dtype=np.uint64)
        for algorithm in kinds:
            start, end, _ = self._slices[algorithm]
            q[start:end] = _to_words(int(query[algorithm]), end - start)
        counts = np.bitwise_count(np.take(self._packed, rows, axis=0) ^ q)  # one gather of whole rows
        if self._all_present and combine in ("weighted", "mean"):
            # every row has every kind: the (weighted) mean is one product with per-word weights
            per_word = np.zeros(q.size)
            for algorithm in kinds:
                start, end, _ = self._slices[algorithm]
                per_word[start:end] = (WEIGHTS.get(algorithm, 1.0) if combine == "weighted" else 1.0) / hash_bits(
                    algorithm
                )
            weights = [WEIGHTS.get(a, 1.0) if combine == "weighted" else 1.0 for a in kinds]
            dist = (counts @ per_word) / sum(weights)
            (idx,) = np.nonzero(dist <= max_distance + 1e-12)
            counts = counts[idx]
            present = {a: np.ones(idx.size, dtype=bool) for a in kinds}
        else:
            present = {a: np.take(self._present[:, self._slices[a][2]], rows) for a in kinds}
            idx = None
        bits: dict[str, np.ndarray] = {}
        for algorithm in kinds:
            start, end, _ = self._slices[algorithm]
            bits[algorithm] = counts[:, start:end].sum(axis=1, dtype=np.uint16)
        if idx is None:
            dist = _combine(bits, present, combine, rows.size)
            (idx,) = np.nonzero(dist <= max_distance + 1e-12)
            bits = {a: b[idx] for a, b in bits.items()}
            present = {a: p[idx] for a, p in present.items()}
        return _Found(rows=rows[idx], dist=dist[idx], bits=bits, present=present)

    def _scan(self, queries: Sequence[Mapping[str, int]], max_distance: float, combine: str) -> list[np.ndarray] | None:
        """For each query, the rows whose distance may lie within `max_distance`, from one pass
        over the whole array: chunk by chunk, every query per chunk (the chunk stays in cache),
        one XOR, popcount and weighted sum per row. The sums are float32 with a slack, so the
        rows returned are a superset of the matches; `_compare` then checks them exactly. None
        where this does not apply (a row lacks a kind, or `combine` is "all" or "any")."""
        if not self._all_present or combine not in ("weighted", "mean"):
            return None
        n, width = self._packed.shape
        size = min(n, _SCAN_ROWS)
        tiled: list[np.ndarray | None] = []
        weights: list[np.ndarray] = []
        for query in queries:
            kinds = [a for a in query if a in self._slices]
            total = sum(_weight(a, combine) for a in kinds)
            q = np.zeros(width, dtype=np.uint64)
            w = np.zeros(width, dtype=np.float32)
            for algorithm in kinds:
                start, end, _ = self._slices[algorithm]
                q[start:end] = _to_words(int(query[algorithm]), end - start)
                w[start:end] = _weight(algorithm, combine) / hash_bits(algorithm) / total
            # the query repeated for a whole chunk: an XOR of equal shapes is faster than broadcasting
            tiled.append(np.tile(q, (size, 1)) if kinds else None)
            weights.append(w)
        xor = np.empty((size, width), dtype=np.uint64)
        count = np.empty((size, width), dtype=np.uint8)
        radius = np.float32(max_distance + _SCAN_SLACK)
        found: list[list[np.ndarray]] = [[] for _ in queries]
        for start in range(0, n, _SCAN_ROWS):
            m = min(n - start, _SCAN_ROWS)
            block = self._packed[start : start + m]
            for i, q_rows in enumerate(tiled):
                if q_rows is None:
                    continue  # the query shares no kind with the index
                np.bitwise_xor(block, q_rows[:m], out=xor[:m])
                np.bitwise_count(xor[:m], out=count[:m])
                near = np.flatnonzero(count[:m] @ weights[i] <= radius)
                if near.size:
                    found[i].append(near + start)
        return [np.concatenate(parts) if parts else np.empty(0, dtype=np.int64) for parts in found]

    def _candidates(
        self, queries: Sequence[Mapping[str, int]], max_distance: float, combine: str, gate: float | None
    ) -> list[np.ndarray | None]:
        """The rows to compare exactly for each query; None: every row (`_compare_all`).

        The pHash gate scan is used with an explicit (lossy) `gate`, or where the gate that
        `lossless_gate` proves safe is narrow enough to pay; otherwise `_scan` reads every row.
        Either way no variant within `max_distance` is missed unless `gate` asks for it."""
        if self._gate is not None and all(_GATE_KIND in q for q in queries):
            bound = max(lossless_gate(max_distance, combine, [a for a in q if a in self._slices]) for q in queries)
            if gate is not None:
                bound = min(bound, gate)
            gate_bits = math.floor(bound * hash_bits(_GATE_KIND) + 1e-9)
            if gate_bits < hash_bits(_GATE_KIND) and (gate is not None or gate_bits <= _GATE_WORTH_BITS):
                return list(self._gate_rows(self._gate, [int(q[_GATE_KIND]) for q in queries], gate_bits))
        scanned = self._scan(queries, max_distance, combine)
        return [None] * len(queries) if scanned is None else list(scanned)

    def _compare_all(self, query: Mapping[str, int], tenant: str, max_distance: float, combine: str) -> _Found | None:
        """`_compare` over every row, chunk by chunk."""
        parts = [
            f
            for start in range(0, self.row_count, _CHUNK_ROWS)
            if (
                f := self._compare(
                    query, np.arange(start, min(self.row_count, start + _CHUNK_ROWS)), tenant, max_distance, combine
                )
            )
            is not None
        ]
        if not parts:
            return None
        return _Found(
            rows=np.concatenate([f.rows for f in parts]),
            dist=np.concatenate([f.dist for f in parts]),
            bits={a: np.concatenate([f.bits[a] for f in parts]) for a in parts[0].bits},
            present={a: np.concatenate([f.present[a] for f in parts]) for a in parts[0].present},
        )

    def search(
        self,
        query: Mapping[str, int],
        tenant: str,
        max_distance: float,
        *,
        combine: Combine = "weighted",
        mirror: Mapping[str, int] | None = None,
        gate: float | None = None,
        limit: int | None = None,
        crops: Sequence[QueryCrop] = (),
    ) -> list[Match]:
        """Works within `max_distance` (a fraction of the hash width, 0..1) of the query, visible
        to `tenant` (its own works and those registered with tenant None); one `Match` per work,
        its closest variant, closest first.

        A variant's distance combines, over the kinds that both the query and the variant have,
        each kind's Hamming distance divided by its width: the weighted mean (`WEIGHTS`,
        default), the plain mean ("mean"), the largest ("all": every kind must agree) or the
        smallest ("any"). `Match.algorithm` names the kinds compared, joined by "+" (for "any":
        the closest kind). The search is exact: by default (`gate=None`) every variant within
        `max_distance` is found, whether by comparing every row or behind a pHash gate that
        `lossless_gate` proves drops none. An explicit `gate` (a fraction of pHash's 64 bits,
        e.g. `PHASH_GATE`) is a lossy speed-up: only variants whose pHash lies within it of the
        query's are compared (variants without a pHash always are). `mirror` (the hashes of the
        mirrored query, `hash_query`) is searched as well; its matches name the variant through
        `mirrored_variant`. `crops` (parts of the query, `QueryHashes.crops`) are searched too,
        each as given and mirrored, in the same pass over the index and as exactly; a match through
        one names it (`Match.view`). Where views tie, the whole query wins.
        `limit` keeps only that many works, the closest.
        """
        if combine not in _COMBINES:
            raise ValueError(f"combine must be one of {', '.join(_COMBINES)}, not {combine!r}")
        if gate is not None and not 0.0 <= gate <= 1.0:
            raise ValueError("gate is a fraction of pHash's width and must be within [0, 1]")
        # every view of the query: (hashes, the crop it shows or None for the whole, mirrored)
        views: list[tuple[Mapping[str, int], str | None, bool]] = [(query, None, False)]
        if mirror is not None:
            views.append((mirror, None, True))
        for crop in crops:
            views += [(crop.hashes, crop.name, False), (crop.mirror, crop.name, True)]
        queries = [v[0] for v in views]
        if self.row_count == 0 or not any(a in self._slices for q in queries for a in q):
            return []
        candidates = self._candidates(queries, max_distance, combine, gate)

        found = []
        for orientation, (q, rows) in enumerate(zip(queries, candidates, strict=True)):
            if rows is None:
                f = self._compare_all(q, tenant, max_distance, combine)
            else:
                f = self._compare(q, rows, tenant, max_distance, combine)
            if f is not None and f.rows.size:
                found.append((orientation, f))
        if not found:
            return []
        rows = np.concatenate([f.rows for _, f in found])
        dist = np.concatenate([f.dist for _, f in found])
        orient = np.concatenate([np.full(f.rows.size, o, dtype=np.int8) for o, f in found])
        local = np.concatenate([np.arange(f.rows.size) for _, f in found])
        works = self._works[rows]
        order = np.lexsort((orient, dist, works))  # by work, then distance, the whole query as given first
        _, first = np.unique(works[order], return_index=True)
        picks = order[first]
        rank = self._work_rank[works[picks]]  # ties broken by work id, as the final sort does
        picks = picks[np.lexsort((rank, np.round(dist[picks], 6)))][:limit]  # the closest works
        by_orientation = dict(found)
        matches = []
        for pick in picks.tolist():
            f = by_orientation[int(orient[pick])]
            j = int(local[pick])
            row = int(rows[pick])
            bits = {a: int(b[j]) for a, b in f.bits.items() if f.present[a][j]}
            closest = min(bits, key=lambda a: (bits[a] / hash_bits(a), a))
            label = closest if combine == "any" else "+".join(sorted(bits))
            _, view, mirrored = views[int(orient[pick])]
            variant = self.variant_name(row)
            if mirrored:
                variant = mirrored_variant(variant)
            work_id = self.work_of(row)
            matches.append(
                Match(work_id, label, variant, round(float(dist[pick]), 6), bits, self.name_of(work_id), view)
            )
        matches.sort(key=lambda m: (m.distance, m.work_id))
        return matches


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class CopyrightSimilarity:
    """Reports the protected work closest to an image, if one lies within `max_distance`.

    The index comes from `ctx.resources["protected_index"]` (a `ProtectedIndex`); without one
    there are no findings. The image is searched as given and mirrored (`hash_query`).
    `max_distance` is a fraction of the hash width (the reporting floor; the policy's
    `protected_work` threshold decides); score = 1 - combined distance, so 0.75 means a quarter
    of the (weighted) bits differ. `combine`, `gate` and `algorithms` (the hash kinds computed
    for a query) are passed to `ProtectedIndex.search` / `hash_query`; `gate` defaults to None,
    an exact search (a `PHASH_GATE` gate would miss variants whose pHash alone disagrees). The
    finding names the work: its id and the name it was registered under (`work_name`, where the
    index carries names), the variant, the combined distance and each kind's bits. An image whose PDQ
    quality is below `min_quality` (almost uniform: a flat colour, a blank page) is not matched,
    since its hashes are nearly all zeros and would sit close to every flat crop in the registry.
    Where the image shows something inside a uniform margin (a frame, a pillarbox, a picture on a
    page), that part is searched too, in the same call (`margin_box`; if its quality is at least
    `min_quality`); the finding's `view` names it when it matched (None: the whole image). An
    image with transparency is hashed composited onto white (`flatten`); works with transparency
    are registered on white and on black.
    """

    name = "copyright"
    version = "3.2.0"
    modalities = frozenset({"image"})

    def __init__(
        self,
        max_distance: float = 0.25,
        combine: Combine = "weighted",
        algorithms: Sequence[str] = ALGORITHMS,
        min_quality: int = MIN_QUALITY,
        gate: float | None = None,
    ) -> None:
        if not 0 <= min_quality <= 100:
            raise ValueError("min_quality is a PDQ quality score and must be within [0, 100]")
        if not 0.0 <= float(max_distance) <= 1.0:
            raise ValueError("max_distance is a fraction of the hash width and must be within [0, 1]")
        if combine not in _COMBINES:
            raise ValueError(f"combine must be one of {', '.join(_COMBINES)}")
        if gate is not None and not 0.0 <= float(gate) <= 1.0:
            raise ValueError("gate is a fraction of pHash's width and must be within [0, 1] (or None)")
        unknown = [a for a in algorithms if a not in _HASHERS]
        if unknown or not algorithms:
            raise ValueError(f"algorithms must name hash kinds among {', '.join(_HASHERS)}")
        self.max_distance = float(max_distance)
        self.combine: Combine = combine
        self.algorithms = tuple(algorithms)
        self.min_quality = int(min_quality)
        self.gate = None if gate is None else float(gate)

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
            query = hash_query(item.image, self.algorithms)
        except Exception as exc:
            raise DetectorError(f"copyright: could not hash image {item.index}: {exc}") from exc
        if query.quality < self.min_quality:
            return []  # almost uniform: too little structure for any perceptual hash to identify a work
        matches = index.search(
            query.hashes,
            ctx.tenant,
            self.max_distance,
            combine=self.combine,
            mirror=query.mirror,
            gate=self.gate,
            limit=1,
            crops=[c for c in query.crops if c.quality >= self.min_quality],
        )
        if not matches:
            return []
        m = matches[0]
        bits = ", ".join(f"{a} {b}/{hash_bits(a)}" for a, b in sorted(m.bits.items()))
        work = m.work_id if m.work_name is None else f"{m.work_name!r} ({m.work_id})"
        what = "the image" if m.view is None else f"the image ({m.view.replace('_', ' ')})"
        return [
            Finding(
                detector=self.name,
                category="protected_work",
                score=max(0.0, min(1.0, 1.0 - m.distance)),
                explanation=(
                    f"{what} is {m.distance:.3f} of the hash width ({bits} bits) from the {m.variant} "
                    f"variant of protected work {work}"
                ),
                evidence={
                    "work_id": m.work_id,
                    "work_name": m.work_name,
                    "algorithm": m.algorithm,
                    "variant": m.variant,
                    "view": m.view,
                    "distance": m.distance,
                    "bits": dict(m.bits),
                    "role": item.role,
                    "index": item.index,
                },
            )
        ]
