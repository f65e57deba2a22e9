"""What does the whole prompt pre-screen cost? Every default prescreen detector, as the gateway runs them.

    python bench/prescreen_latency.py --data ../shared/evaldata [--limit 300] [--rounds 2]

The detectors are the gateway's own (`Settings().prescreen_detectors`, built and loaded by
`gateway.bootstrap.load_detectors`, models loaded once). Each prompt is screened twice: once with
the detectors one after another (which times each detector alone), and once side by side on a
pool of `detector_concurrency` threads, as `gateway.pipeline.run_text_detectors` runs them.
Prompt sets: English (XSTest's safe prompts, PartiPrompts, AdvBench) and the project's Japanese
development set. Prints p50 / p95 per detector and for the whole pre-screen both ways, per
language, and the share each detector takes, so a change is judged side by side in one run.
The first round warms caches and is not counted.

`--baseline torch` also runs, on every prompt right after the gateway's detectors, a second
unsafe_text detector whose sentence encoder runs on torch instead of onnxruntime, and prints
the two side by side with their ratio (the encoders agree to about 1e-7, so the findings match).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.base import DetectionContext, Finding, TextItem  # noqa: E402

JA_SET = ROOT / "tests" / "detectors" / "data" / "ja_dev.csv"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _spread(rows: list[str], limit: int) -> list[str]:
    if len(rows) <= limit:
        return rows
    return [rows[int(i * len(rows) / limit)] for i in range(limit)]


def prompts(data: Path, limit: int) -> dict[str, list[str]]:
    """language -> prompts (an even spread of each source set, at most `limit` per set)."""
    with (data / "benign_text" / "xstest_v2_prompts.csv").open(newline="", encoding="utf-8") as fh:
        xstest = [r["prompt"] for r in csv.DictReader(fh) if r["label"] == "safe"]
    with (data / "t2i_benign" / "PartiPrompts.tsv").open(newline="", encoding="utf-8") as fh:
        parti = [r["Prompt"] for r in csv.DictReader(fh, delimiter="\t") if r["Prompt"]]
    with (data / "harmful_text" / "advbench_harmful_behaviors.csv").open(newline="", encoding="utf-8") as fh:
        advbench = [r["goal"] for r in csv.DictReader(fh)]
    with JA_SET.open(newline="", encoding="utf-8") as fh:
        japanese = [r["prompt"] for r in csv.DictReader(fh)]
    english = _spread(xstest, limit) + _spread(parti, limit) + _spread(advbench, limit)
    return {"en": english, "ja": _spread(japanese, 2 * limit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "evaldata"))
    parser.add_argument("--limit", type=int, default=300, help="prompts per English set")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds after one warm-up round")
    parser.add_argument("--baseline", choices=["none", "torch"], default="torch", help="unsafe_text runtime to compare")
    args = parser.parse_args()

    from detectors.unsafe_text import UnsafeText
    from gateway.bootstrap import load_detectors
    from gateway.settings import Settings, apply_offline_environment

    apply_offline_environment()
    settings = Settings()
    start = time.perf_counter()
    detectors = load_detectors(settings.prescreen_detectors, settings)
    print(f"loaded {', '.join(d.name for d in detectors)} in {time.perf_counter() - start:.1f} s")
    baseline = None
    if args.baseline == "torch":
        options = {**settings.detector_options.get("unsafe_text", {}), "runtime": "torch"}
        baseline = UnsafeText(**options)
        baseline.load()
    try:
        import torch

        print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}")
    except ImportError:
        pass
    pool = ThreadPoolExecutor(settings.detector_concurrency, thread_name_prefix="bench-detect")
    ctx = DetectionContext(request_id="bench", tenant="bench", stage="prescreen", resources={"terms": []})
    sets = prompts(Path(args.data), args.limit)
    for lang, texts in sets.items():
        per: dict[str, list[float]] = {d.name: [] for d in detectors}
        base_times: list[float] = []
        same = 0
        total: list[float] = []
        side_by_side: list[float] = []
        for round_no in range(args.rounds + 1):
            for text in texts:
                item = TextItem(text)
                t_all = time.perf_counter()
                found_by: dict[str, list[Finding]] = {}
                for det in detectors:
                    t0 = time.perf_counter()
                    found_by[det.name] = det.detect(item, ctx)
                    if round_no:
                        per[det.name].append((time.perf_counter() - t0) * 1000)
                if round_no:
                    total.append((time.perf_counter() - t_all) * 1000)
                t0 = time.perf_counter()
                for future in [pool.submit(det.detect, item, ctx) for det in detectors]:
                    future.result()
                if round_no:
                    side_by_side.append((time.perf_counter() - t0) * 1000)
                if baseline is not None:
                    t0 = time.perf_counter()
                    found = baseline.detect(item, ctx)
                    if round_no:
                        base_times.append((time.perf_counter() - t0) * 1000)
                        same += [(f.category, round(f.score, 4)) for f in found] == [
                            (f.category, round(f.score, 4)) for f in found_by["unsafe_text"]
                        ]
        whole = sum(total)
        print(f"\n{lang}: {len(texts)} prompts x {args.rounds} rounds")
        print("| detector | p50 ms | p95 ms | share of time |")
        print("|---|---|---|---|")
        for name, times in per.items():
            print(f"| {name} | {_pct(times, 0.5):.2f} | {_pct(times, 0.95):.2f} | {sum(times) / whole:.0%} |")
        print(f"| whole pre-screen, one after another | {_pct(total, 0.5):.2f} | {_pct(total, 0.95):.2f} | 100% |")
        print(
            f"| **whole pre-screen, side by side (gateway)** | **{_pct(side_by_side, 0.5):.2f}** | "
            f"**{_pct(side_by_side, 0.95):.2f}** | |"
        )
        if base_times:
            ours_t = per["unsafe_text"]
            print(
                f"unsafe_text on torch, same prompts interleaved: p50 {_pct(base_times, 0.5):.2f} ms, "
                f"p95 {_pct(base_times, 0.95):.2f} ms; onnxruntime / torch p50 = "
                f"{_pct(ours_t, 0.5) / _pct(base_times, 0.5):.2f}; identical findings on {same}/{len(base_times)}"
            )


if __name__ == "__main__":
    main()
