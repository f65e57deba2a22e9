"""Copy detection: do edited copies of protected works match, and do unrelated real images not?

    python bench/eval_copy.py [--distractors 10000] [--draws 10] [--seed 0] [--threshold 0.75]

Protected originals are scikit-image's bundled photographs, registered with
`detectors.copyright.work_hashes` (the crop grid of `crop_windows`). Copies are made here, with
Pillow and this file's own random draws, never from the registration's parameters: resize (random
scale 25-90 %), JPEG quality 30, brightness +30 % and -30 %, crops that keep a random 80-100 % of
each side (width and height drawn independently) at a random position ("crop up to 20 %"),
mirror and grayscale. Distractors are real content, never noise: scikit-image's other bundled
images, its 200 LFW faces, matplotlib's sample images, and random crops (20-90 % of each side) at
random scales of all of them, up to `--distractors` images. A pair of near-identical pictures
(chelsea/cat, the stereo motorcycle pair) is kept on one side only.

Every query goes through the detector's own path (`hash_query`: the image and its mirror;
`ProtectedIndex.search` with the default rule: weighted mean of the four kinds over every stored
variant, exact), and, for comparison, through other rules (each kind alone, plain mean, "all") computed
over every stored variant. Thresholds are chosen on even-numbered copies and distractors only
(the largest distance whose false positives stay <= `--max-fpr` of the even distractors), and
recall / FPR are printed for even and odd rows separately, per transform and overall. Then the
detector at the policy's `protected_work` threshold from policies/data.yaml (and at `--threshold`),
a sweep of thresholds, crops beyond the target (70-80 % of each side; reported, not targeted),
and the cost: hashing, registration, and search latency and memory over 1,000 and 10,000
registered works with all their variants (`--latency-works`).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

import detectors.copyright as copyright_module
from detectors.copyright import (
    ALGORITHMS,
    PHASH_GATE,
    WEIGHTS,
    CopyrightSimilarity,
    ProtectedIndex,
    QueryHashes,
    hash_bits,
    hash_query,
    work_hashes,
)

PROTECTED = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "moon",
    "page",
    "clock",
    "text",
    "brick",
)
DISTRACTOR_SKIMAGE = (
    "grass",
    "gravel",
    "cell",
    "microaneurysms",
    "horse",
    "logo",
    "colorwheel",
    "shepp_logan_phantom",
)
#: Near-duplicates of a protected image: used on neither side.
EXCLUDED = ("cat", "stereo_motorcycle")
DETECTOR = "detector: weighted, every variant (exact)"
#: Rules computed over every stored variant (no gate), for comparison: (combine, kinds).
RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "phash": ("any", ("phash",)),
    "dhash": ("any", ("dhash",)),
    "pdq": ("any", ("pdq",)),
    "colorhash": ("any", ("colorhash",)),
    "mean(phash,pdq)": ("mean", ("phash", "pdq")),
    "mean(all four) [v2]": ("mean", ALGORITHMS),
    "all(phash,dhash,pdq)": ("all", ("phash", "dhash", "pdq")),
    "weighted, no gate": ("weighted", ALGORITHMS),
}
SEARCH_RADIUS = 0.5  # the bench asks the index for every work within this distance


def _to_image(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = (255 * (arr.astype(np.float64) - lo) / max(1e-9, hi - lo)).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return Image.fromarray(arr, "RGBA").convert("RGB")
    return Image.fromarray(arr).convert("RGB")


def _skimage(name: str) -> Image.Image:
    from skimage import data as skd

    return _to_image(getattr(skd, name)())


def _matplotlib_samples() -> list[Image.Image]:
    """matplotlib's sample pictures and raster data sets (photographs, an MRI slice, elevation maps)."""
    try:
        from matplotlib import cbook
    except ImportError:
        return []
    out = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        with cbook.get_sample_data(name) as fh:
            out.append(Image.open(fh).convert("RGB"))
    with cbook.get_sample_data("s1045.ima.gz") as fh:
        out.append(_to_image(np.frombuffer(fh.read(), np.uint16).reshape(256, 256)))
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        npz = cbook.get_sample_data(name)  # matplotlib opens .npz files itself
        arr = npz[key] if key in npz.files else npz[npz.files[0]]
        out.append(_to_image(np.asarray(arr, dtype=np.float64)))
    return out


def load_images() -> tuple[list[str], list[Image.Image], list[Image.Image]]:
    from skimage import data as skd

    names, originals = [], []
    for name in PROTECTED:
        names.append(name)
        originals.append(_skimage(name))
    bases = [_skimage(n) for n in DISTRACTOR_SKIMAGE]
    bases += [_to_image(f) for f in skd.lfw_subset()]
    bases += _matplotlib_samples()
    return names, originals, bases


def _jpeg(im: Image.Image, quality: int = 30) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(rng: random.Random, im: Image.Image, lo: float, hi: float) -> Image.Image:
    """A crop keeping a random fraction in [lo, hi] of the width and, drawn apart, of the height,
    at a random position."""
    w, h = im.size
    cw, ch = max(8, int(w * rng.uniform(lo, hi))), max(8, int(h * rng.uniform(lo, hi)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch))


def _resize(rng: random.Random, im: Image.Image) -> Image.Image:
    s = rng.uniform(0.25, 0.9)
    return im.resize((max(16, int(im.width * s)), max(16, int(im.height * s))), Image.Resampling.BICUBIC)


def transforms(rng: random.Random, crop_draws: int = 10) -> dict[str, tuple[int, Callable[[Image.Image], Image.Image]]]:
    """name -> (draws per original, transform); random transforms get several draws."""
    return {
        "resize": (5, lambda im: _resize(rng, im)),
        "jpeg30": (1, _jpeg),
        "bright+30": (1, lambda im: ImageEnhance.Brightness(im).enhance(1.3)),
        "bright-30": (1, lambda im: ImageEnhance.Brightness(im).enhance(0.7)),
        "crop<=20": (crop_draws, lambda im: _crop(rng, im, 0.8, 1.0)),
        "mirror": (1, ImageOps.mirror),
        "grayscale": (1, lambda im: ImageOps.grayscale(im).convert("RGB")),
    }


def make_distractors(rng: random.Random, bases: Sequence[Image.Image], count: int) -> list[Image.Image]:
    out = list(bases[:count])
    while len(out) < count:
        im = _crop(rng, bases[rng.randrange(len(bases))], 0.2, 0.9)
        side = rng.randint(32, 640)
        scale = side / max(im.size)
        out.append(im.resize((max(8, round(im.width * scale)), max(8, round(im.height * scale)))))
    return out


def rule_distances(index: ProtectedIndex, query: QueryHashes, works: np.ndarray) -> dict[str, np.ndarray]:
    """Per comparison rule: the combined distance of the query (as given or mirrored, the closer)
    to each work (its closest variant), shape (n_works,)."""
    n_works = int(works.max()) + 1
    out = {rule: np.full(n_works, np.inf) for rule in RULES}
    for q in (query.hashes, query.mirror):
        per_kind = index.distances(q)
        for rule, (combine, kinds) in RULES.items():
            parts = np.stack([per_kind[k][0] / hash_bits(k) for k in kinds])
            if combine == "weighted":
                w = np.array([WEIGHTS[k] for k in kinds])[:, None]
                d = (parts * w).sum(axis=0) / w.sum()
            elif combine == "mean":
                d = parts.mean(axis=0)
            elif combine == "all":
                d = parts.max(axis=0)
            else:
                d = parts.min(axis=0)
            np.minimum.at(out[rule], works, d)
    return out


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q * 100)) if len(values) else float("nan")


def policy_threshold() -> float:
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "policies" / "data.yaml").read_text())
    return float(data["mamori"]["thresholds"]["protected_work"])


Copy = tuple[str, int, dict[str, float]]  # (transform, original, rule -> distance to its own work)


def _recall(rows: Sequence[Copy], rule: str, thr: float) -> float:
    return sum(c[2][rule] <= thr + 1e-12 for c in rows) / max(1, len(rows))


def _false(rows: Sequence[dict[str, float]], rule: str, thr: float) -> int:
    return sum(d[rule] <= thr + 1e-12 for d in rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distractors", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=10, help="random crops per original (crop<=20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-fpr", type=float, default=0.001)
    parser.add_argument(
        "--threshold", type=float, default=None, help="a score threshold to report besides the policy's"
    )
    parser.add_argument("--crop-step", type=float, default=None, help="registration crop step to try (default 0.05)")
    parser.add_argument("--max-crop", type=float, default=None, help="registration max crop per axis (default 0.2)")
    parser.add_argument(
        "--latency-works", default="1000,10000", help="registry sizes for the latency table ('' to skip)"
    )
    parser.add_argument(
        "--latency-only", action="store_true", help="only the latency table (its rows from 2,000 distractors)"
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    if args.crop_step is not None:
        copyright_module.CROP_STEP = args.crop_step
    if args.max_crop is not None:
        copyright_module.MAX_CROP = args.max_crop
        copyright_module.DEEP_CROPS = tuple(d for d in copyright_module.DEEP_CROPS if d > args.max_crop)
    grid = copyright_module.crop_windows(copyright_module.CROP_STEP, copyright_module.MAX_CROP)

    t0 = time.perf_counter()
    names, originals, bases = load_images()
    register_ms = []
    hashes = []
    for i, im in enumerate(originals):
        t = time.perf_counter()
        hashes += work_hashes(f"w{i}", None, im)
        register_ms.append((time.perf_counter() - t) * 1000)
    index = ProtectedIndex.from_hashes(hashes)
    works = np.asarray(index._works)  # row -> position of its original (work ids "w0", "w1", ... in order)
    print(
        f"copy detection: {len(originals)} protected originals, {len(grid)} stored variants each "
        f"(crop step {copyright_module.CROP_STEP}, up to {copyright_module.MAX_CROP:.0%} per axis; "
        f"{len(index)} hashes); distractors from {len(bases)} real images"
    )

    hash_ms: list[float] = []
    search_ms: list[float] = []
    gate_pass: list[float] = []
    detector = CopyrightSimilarity()
    min_quality = detector.min_quality
    gate_bits = math.floor(detector.gate * 64 + 1e-9) if detector.gate is not None else 64
    phash_column = np.asarray(index.column("phash")[:, 0])
    gated = [0]
    kept: list[QueryHashes] = []

    def measure(im: Image.Image, keep: bool = False) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        query = hash_query(im)
        hash_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        matches = index.search(
            query.hashes,
            "eval",
            SEARCH_RADIUS,
            mirror=query.mirror,
            gate=detector.gate,
            crops=[c for c in query.crops if c.quality >= detector.min_quality],  # as the detector searches
        )
        search_ms.append((time.perf_counter() - t) * 1000)
        if keep:
            kept.append(query)
            passed = np.bitwise_count(phash_column ^ np.uint64(query.hashes["phash"])) <= gate_bits
            gate_pass.append(float(passed.mean()))
        d = rule_distances(index, query, works)
        found = np.full(len(originals), np.inf)
        for m in matches:
            found[int(m.work_id[1:])] = m.distance
        d[DETECTOR] = found
        if query.quality < min_quality:  # the detector does not match almost uniform images
            gated[0] += 1
            d = {rule: np.full_like(v, np.inf) for rule, v in d.items()}
        return d

    if args.latency_only:
        pool = [hash_query(im) for im in make_distractors(rng, bases, 2000)]
        _latency_table(args.latency_works, len(grid), pool, originals, args.seed)
        return
    rules = [DETECTOR, *RULES]
    copies: list[Copy] = []
    for name, (draws, fn) in transforms(rng, args.draws).items():
        for i, im in enumerate(originals):
            for _ in range(draws):
                d = measure(fn(im))
                copies.append((name, i, {rule: float(v[i]) for rule, v in d.items()}))
    print(f"{len(copies)} copies hashed")
    distractors = make_distractors(rng, bases, args.distractors)
    decoys: list[dict[str, float]] = []
    for im in distractors:
        d = measure(im, keep=True)
        decoys.append({rule: float(v.min()) for rule, v in d.items()})
    beyond: list[Copy] = []
    for i, im in enumerate(originals):  # drawn after the distractors, so the sets above stay the same
        for _ in range(5):
            d = measure(_crop(rng, im, 0.7, 0.8))
            beyond.append(("crop 20-30", i, {rule: float(v[i]) for rule, v in d.items()}))
    print(f"{len(decoys)} distractors hashed, {time.perf_counter() - t0:.0f} s in all; {gated[0]} images")
    print(f"(copies and distractors together) were almost uniform (PDQ quality < {min_quality}) and not matched\n")

    even_c, odd_c = copies[0::2], copies[1::2]
    even_d, odd_d = decoys[0::2], decoys[1::2]
    allowed = int(args.max_fpr * len(even_d))

    print(f"Thresholds chosen on even rows: the largest distance with <= {allowed} false positives")
    print(f"among {len(even_d)} even distractors (FPR <= {args.max_fpr:.2%}).\n")
    print("| rule | distance <= | score >= | recall even | recall odd | FPR even | FPR odd |")
    print("|---|---|---|---|---|---|---|")
    chosen: dict[str, float] = {}
    for rule in rules:
        ds = sorted(d[rule] for d in even_d)
        thr = ds[allowed] - 1e-9 if allowed < len(ds) else 1.0
        chosen[rule] = thr
        print(
            f"| {rule} | {thr:.4f} | {1 - thr:.4f} | {_recall(even_c, rule, thr):.4f} | "
            f"{_recall(odd_c, rule, thr):.4f} | {_false(even_d, rule, thr) / len(even_d):.3%} | "
            f"{_false(odd_d, rule, thr) / len(odd_d):.3%} |"
        )

    names_t = list(transforms(rng, args.draws))
    print("\nRecall per transform at those thresholds (even · odd rows):\n")
    print("| rule | " + " | ".join(names_t) + " |")
    print("|---|" + "---|" * len(names_t))
    for rule in rules:
        cells = []
        for t in names_t:
            ev = [c for c in even_c if c[0] == t]
            od = [c for c in odd_c if c[0] == t]
            e = sum(c[2][rule] <= chosen[rule] for c in ev)
            o = sum(c[2][rule] <= chosen[rule] for c in od)
            cells.append(f"{e}/{len(ev)} · {o}/{len(od)}")
        print(f"| {rule} | " + " | ".join(cells) + " |")

    policy = policy_threshold()
    points = [("policy protected_work", policy)]
    if args.threshold is not None and args.threshold != policy:
        points.append(("--threshold", args.threshold))
    for label, score in points:
        limit = 1 - score
        print(f"\nThe detector at {label} = {score} (distance <= {limit:.4f}):\n")
        print("| rows | recall | copies | false positives | FPR |")
        print("|---|---|---|---|---|")
        for part, rows_c, rows_d in (("even", even_c, even_d), ("odd", odd_c, odd_d), ("all", copies, decoys)):
            f = _false(rows_d, DETECTOR, limit)
            print(
                f"| {part} | {_recall(rows_c, DETECTOR, limit):.4f} | {len(rows_c)} | {f}/{len(rows_d)} | "
                f"{f / len(rows_d):.3%} |"
            )
        print("\n| transform | recall even | recall odd |")
        print("|---|---|---|")
        for t in names_t:
            ev = [c for c in even_c if c[0] == t]
            od = [c for c in odd_c if c[0] == t]
            print(f"| {t} | {_recall(ev, DETECTOR, limit):.4f} | {_recall(od, DETECTOR, limit):.4f} |")
        missed = [(c[0], names[c[1]], round(c[2][DETECTOR], 3)) for c in copies if c[2][DETECTOR] > limit + 1e-12]
        print(f"missed: {missed[:20] if missed else 'none'}")
        print(
            f"beyond the target, crops keeping 70-80 % of each side: recall {_recall(beyond, DETECTOR, limit):.4f} "
            f"({len(beyond)} crops, reported only)"
        )

    print(f"\nSweep of the detector ({DETECTOR}): distance threshold -> recall and false positives (even · odd)\n")
    print("| distance <= | score >= | recall even | recall odd | FP even | FP odd |")
    print("|---|---|---|---|---|---|")
    for step in range(18, 31):
        t = step / 100
        print(
            f"| {t:.2f} | {1 - t:.2f} | {_recall(even_c, DETECTOR, t):.4f} | {_recall(odd_c, DETECTOR, t):.4f} | "
            f"{_false(even_d, DETECTOR, t)}/{len(even_d)} | {_false(odd_d, DETECTOR, t)}/{len(odd_d)} |"
        )

    print("\nCost (this machine; ms p50 / p95):")
    print(
        f"  hash a query (the image and its mirror, four kinds each): "
        f"{pct(hash_ms, 0.5):.2f} / {pct(hash_ms, 0.95):.2f}"
    )
    print(f"  register a work ({len(grid)} variants x {len(ALGORITHMS)} kinds): {pct(register_ms, 0.5):.0f} ms")
    print(
        f"  search over {index.work_count} works ({index.row_count} variants): "
        f"{pct(search_ms, 0.5):.3f} / {pct(search_ms, 0.95):.3f}; the detector's gate passed "
        f"{np.mean(gate_pass):.2%} of stored variants for the distractors (100 %: no gate)"
    )
    _latency_table(args.latency_works, len(grid), kept, originals, args.seed)


def _latency_table(
    sizes_arg: str, variants: int, pool: Sequence[QueryHashes], originals: Sequence[Image.Image], seed: int
) -> None:
    sizes = [int(s) for s in sizes_arg.split(",") if s.strip()]
    if not sizes:
        return
    print(
        "\nSearch over a large registry (each query: the image and its mirror; the last two columns: the "
        "optional, lossy pHash gate PHASH_GATE, for reference):\n"
    )
    print(
        "| registered works | variants | index memory | bytes per work | search p50 | search p95 | min "
        "| lossy gate passed | lossy gate p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    queries = latency_queries(originals, seed)
    for size in sizes:
        _latency(size, variants, pool, queries)


def latency_queries(originals: Sequence[Image.Image], seed: int) -> list[QueryHashes]:
    """Queries for the latency table: a crop of each original, hashed as the detector does."""
    rng = random.Random(seed + 1)
    return [hash_query(_crop(rng, im, 0.8, 1.0)) for im in originals]


def _words(value: int, words: int) -> list[int]:
    return [(value >> (64 * (words - 1 - w))) & ((1 << 64) - 1) for w in range(words)]


def _latency(works: int, variants: int, pool: Sequence[QueryHashes], queries: Sequence[QueryHashes]) -> None:
    """Search latency and memory over `works` registered works of `variants` variants each.

    Registering thousands of works for real takes hours here, so each stored variant is the
    hashes of a real distractor picture (as given or mirrored, with about 1/64 of its bits
    flipped so that no two rows are equal): the optional pHash gate then passes as many rows as it
    would for real pictures. The arrays are built directly (`ProtectedIndex.from_hashes` would make
    millions of Python objects first).
    """
    gen = np.random.default_rng(works)
    n = works * variants
    pick = gen.integers(0, len(pool), size=n)
    side = gen.integers(0, 2, size=n)
    columns = {}
    for kind in ALGORITHMS:
        words = -(-hash_bits(kind) // 64)
        base = np.array(
            [
                [_words(h[kind], words) for h in (q.hashes for q in pool)],
                [_words(h[kind], words) for h in (q.mirror for q in pool)],
            ],
            dtype=np.uint64,
        )
        flips = np.full((n, words), np.iinfo(np.uint64).max, dtype=np.uint64)
        for _ in range(6):  # each bit set with probability 1/2**6
            flips &= gen.integers(0, np.iinfo(np.uint64).max, size=(n, words), dtype=np.uint64, endpoint=True)
        if hash_bits(kind) % 64:
            flips[:, 0] &= np.uint64((1 << (hash_bits(kind) % 64)) - 1)
        columns[kind] = (np.ascontiguousarray(base[side, pick] ^ flips), np.ones(n, dtype=bool))
    index = ProtectedIndex(
        columns,
        np.repeat(np.arange(works, dtype=np.int32), variants),
        np.tile(np.arange(variants, dtype=np.int32), works),
        np.full(n, -1, dtype=np.int32),
        ([f"r{i}" for i in range(works)], [f"v{i}" for i in range(variants)], {}),
        n * len(ALGORITHMS),
    )
    column = np.asarray(index.column("phash")[:, 0])
    detector = CopyrightSimilarity()
    gate_bits = math.floor(PHASH_GATE * 64 + 1e-9)
    passed = [float((np.bitwise_count(column ^ np.uint64(q.hashes["phash"])) <= gate_bits).mean()) for q in queries]
    ts = []
    for _ in range(5):
        for q in queries:
            t = time.perf_counter()
            index.search(
                q.hashes,
                "eval",
                detector.max_distance,
                mirror=q.mirror,
                limit=1,
                crops=[c for c in q.crops if c.quality >= detector.min_quality],
            )
            ts.append((time.perf_counter() - t) * 1000)
    full = []
    for q in queries[:3]:
        t = time.perf_counter()
        index.search(q.hashes, "eval", detector.max_distance, mirror=q.mirror, gate=PHASH_GATE, limit=1)
        full.append((time.perf_counter() - t) * 1000)
    print(
        f"| {works:,} | {n:,} | {index.nbytes / 2**20:.0f} MiB | {index.nbytes / works:,.0f} | "
        f"{pct(ts, 0.5):.1f} ms | {pct(ts, 0.95):.1f} ms | {min(ts):.1f} ms | {np.mean(passed):.2%} | "
        f"{pct(full, 0.5):.0f} ms |"
    )


if __name__ == "__main__":
    main()
