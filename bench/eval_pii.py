"""PII detector quality and latency: the presidio synthetic set, plus prompt latency in both languages.

    python bench/eval_pii.py --data ../shared/evaldata [--options '{"ner": false}' ...] [--show-misses PHONE_NUMBER]

Scoring is the one of `bench/eval_detectors.py`: span overlap per entity on
`pii/presidio_research_synth_dataset_v2.json`, even-numbered rows (the only ones used for tuning)
and odd-numbered rows reported apart. A predicted span of the entity that overlaps a gold span of
that entity is a true positive; one that overlaps none is a false positive; a gold span that no
prediction overlaps is a false negative. Every finding counts (`--threshold 0`, as in the harness);
`--threshold 0.5` scores only what the policy's `thresholds.pii` (0.5) acts on.

Latency: p50/p95 per prompt of `detect()` on English prompts (PartiPrompts, COCO captions) and on
the Japanese development set (`tests/detectors/data/ja_dev.csv`), models loaded once before timing,
as wall time and as the calling thread's CPU time (steadier on a shared machine). With several
`--options`, every configuration is scored in turn and timed interleaved, prompt by prompt, so the
ratios hold even when the machine's load changes.
`--show-misses ENTITY[,ENTITY]` prints the misses and false positives of even rows only.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.base import DetectionContext, Finding, TextItem
from detectors.pii import PresidioPII

ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN")
JA_SET = Path(__file__).resolve().parents[1] / "tests" / "detectors" / "data" / "ja_dev.csv"
CTX = DetectionContext(request_id="eval", tenant="eval", stage="prescreen")

Span = tuple[int, int]


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _spans(found: list[Finding], entity: str, threshold: float) -> list[Span]:
    return [f.span for f in found if f.evidence.get("entity_type") == entity and f.span and f.score >= threshold]


def score_synthetic(
    det: PresidioPII, samples: list[dict[str, Any]], threshold: float, show: set[str]
) -> tuple[dict[tuple[str, int], list[int]], list[float]]:
    """(entity, parity) -> [tp, fp, fn], and the latency of each sample in ms."""
    stats: dict[tuple[str, int], list[int]] = {}
    times: list[float] = []
    for i, s in enumerate(samples):
        text = s["full_text"]
        t0 = time.perf_counter()
        found = det.detect(TextItem(text), CTX)
        times.append((time.perf_counter() - t0) * 1000)
        for entity in ENTITIES:
            gold = [(g["start_position"], g["end_position"]) for g in s["spans"] if g["entity_type"] == entity]
            pred = _spans(found, entity, threshold)
            st = stats.setdefault((entity, i % 2), [0, 0, 0])
            for p in pred:
                hit = any(_overlaps(p, g) for g in gold)
                st[0 if hit else 1] += 1
                if not hit and entity in show and i % 2 == 0:
                    other = [
                        g["entity_type"] for g in s["spans"] if _overlaps(p, (g["start_position"], g["end_position"]))
                    ]
                    print(f"FP   {entity} row {i}: {text[p[0] : p[1]]!r} (gold there: {other}) | {text!r}"[:300])
            for g in gold:
                if not any(_overlaps(p, g) for p in pred):
                    st[2] += 1
                    if entity in show and i % 2 == 0:
                        print(f"MISS {entity} row {i}: {text[g[0] : g[1]]!r} | {text!r}"[:300])
    return stats, times


def print_table(stats: dict[tuple[str, int], list[int]]) -> None:
    print("| entity | even P | even R | even F1 | odd P | odd R | odd F1 |")
    print("|---|---|---|---|---|---|---|")
    for entity in ENTITIES:
        cells = []
        for parity in (0, 1):
            tp, fp, fn = stats.get((entity, parity), [0, 0, 0])
            p = tp / (tp + fp) if tp + fp else float("nan")
            r = tp / (tp + fn) if tp + fn else float("nan")
            f1 = 2 * p * r / (p + r) if p + r else float("nan")
            cells += [f"{p:.3f}", f"{r:.3f}", f"{f1:.3f}"]
        print(f"| {entity} | " + " | ".join(cells) + " |")


def prompt_latency(dets: list[PresidioPII], prompts: list[str]) -> list[tuple[float, float, float, float]]:
    """Per detector: wall p50, wall p95, CPU p50, CPU p95 (ms), timed interleaved prompt by prompt."""
    wall: list[list[float]] = [[] for _ in dets]
    cpu: list[list[float]] = [[] for _ in dets]
    for text in prompts:
        for k, det in enumerate(dets):
            t0, c0 = time.perf_counter(), time.thread_time()
            det.detect(TextItem(text), CTX)
            cpu[k].append((time.thread_time() - c0) * 1000)
            wall[k].append((time.perf_counter() - t0) * 1000)
    return [(_pct(w, 0.5), _pct(w, 0.95), _pct(c, 0.5), _pct(c, 0.95)) for w, c in zip(wall, cpu, strict=True)]


def flagged_prompts(det: PresidioPII, prompts: list[str]) -> tuple[int, str]:
    """How many prompts get a finding at >= 0.5, and the entity types found (count each)."""
    flagged, types = 0, Counter[str]()
    for text in prompts:
        found = [f for f in det.detect(TextItem(text), CTX) if f.score >= 0.5]
        flagged += bool(found)
        types.update(str(f.evidence.get("entity_type")) for f in found)
    return flagged, ", ".join(f"{k} {v}" for k, v in types.most_common())


def english_prompts(data: Path, limit: int) -> list[str]:
    b = data / "t2i_benign"
    with (b / "PartiPrompts.tsv").open(newline="", encoding="utf-8") as fh:
        parti = [r["Prompt"] for r in csv.DictReader(fh, delimiter="\t") if r["Prompt"]]
    with (b / "esd_coco_30k_captions.csv").open(newline="", encoding="utf-8") as fh:
        coco = [r["prompt"] for r in csv.DictReader(fh) if r.get("prompt")]
    return parti[: limit // 2] + coco[: limit // 2]


def japanese_prompts() -> list[str]:
    with JA_SET.open(newline="", encoding="utf-8") as fh:
        return [r["prompt"] for r in csv.DictReader(fh) if r.get("prompt")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "evaldata"))
    parser.add_argument(
        "--options", action="append", help="PresidioPII keyword arguments as JSON (repeat to compare; default {})"
    )
    parser.add_argument("--threshold", type=float, default=0.0, help="count findings scoring at least this")
    parser.add_argument("--limit", type=int, default=0, help="at most this many synthetic samples")
    parser.add_argument("--show-misses", default="", help="entities whose even-row misses and FPs to print")
    parser.add_argument("--latency-prompts", type=int, default=400, help="English prompts timed (0: no timing)")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()

    configs = [json.loads(o) for o in args.options or ["{}"]]
    dets = []
    for options in configs:
        t0 = time.perf_counter()
        det = PresidioPII(**options)
        det.load()
        print(f"PresidioPII({options}) loaded in {time.perf_counter() - t0:.1f} s")
        dets.append(det)
    if not args.skip_synthetic:
        path = Path(args.data) / "pii" / "presidio_research_synth_dataset_v2.json"
        samples = json.loads(path.read_text(encoding="utf-8"))
        if args.limit:
            samples = samples[: args.limit]
        show = {e for e in args.show_misses.split(",") if e}
        for options, det in zip(configs, dets, strict=True):
            stats, times = score_synthetic(det, samples, args.threshold, show)
            print(f"\nPresidioPII({options}) on {len(samples)} synthetic samples, score >= {args.threshold}")
            print("span overlap, even | odd rows")
            print_table(stats)
            print(f"synthetic samples: p50 {_pct(times, 0.5):.2f} ms, p95 {_pct(times, 0.95):.2f} ms")
    if args.latency_prompts:
        sets = {
            "English prompts": english_prompts(Path(args.data), args.latency_prompts),
            "Japanese prompts": japanese_prompts(),
        }
        prompt_latency(dets, sets["English prompts"][:20])  # warm caches
        print("\nlatency per prompt (ms); flagged: prompts with a finding at >= 0.5 (the policy's redaction threshold)")
        print("| configuration | prompts | wall p50 | wall p95 | CPU p50 | CPU p95 | flagged | entity types |")
        print("|---|---|---|---|---|---|---|---|")
        for name, prompts in sets.items():
            for options, det, figures in zip(configs, dets, prompt_latency(dets, prompts), strict=True):
                cells = " | ".join(f"{v:.2f}" for v in figures)
                flagged, types = flagged_prompts(det, prompts)
                print(f"| {json.dumps(options)} | {name} ({len(prompts)}) | {cells} | {flagged} | {types} |")


if __name__ == "__main__":
    main()
