"""Does a long Japanese prompt hold up other prompts' PII pass? Side by side in one run.

    python bench/pii_concurrency.py [--prompts 60] [--japanese-chars 4000]

The gateway runs detectors on a thread pool, so one process reads several prompts' PII at once.
Each spaCy pipeline is used under its own lock (`detectors.pii_spacy.pipeline_lock`): GiNZA's
parse of a long Japanese prompt locks GiNZA, not the English pipeline. This prints the PII pass of
short English prompts alone, then while another thread reads a long Japanese prompt over and over
(at the gateway's default prompt limit, 4,000 characters), then the same beside a long English
prompt (which does share the English pipeline), with the ratios to the pass alone. The rest of the
slowdown beside a prompt that takes no shared lock is the GIL: Python work of the two threads
takes turns.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detectors.base import TextItem  # noqa: E402
from detectors.pii import PresidioPII  # noqa: E402
from detectors.testing import make_context  # noqa: E402

ENGLISH = [
    "Please email John Smith at john.smith@example.com or call 212-555-0187 about the catalog photo.",
    "A product photo of a red kettle on a wooden table, soft light.",
    "Draw the manual illustration for step 3, assembling the shelf bracket.",
]
JAPANESE = "東京の山田太郎さんは、新しいカタログ写真を明日までに作ってほしいと言いました。電話は03-1234-5678です。"
LONG_ENGLISH = "Mary Jones of Springfield asked for new catalog photos by Friday; her phone is 212-555-0187. "


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=60, help="short English prompts timed each way")
    parser.add_argument("--japanese-chars", type=int, default=4000)
    args = parser.parse_args()
    det = PresidioPII()
    det.load()
    ctx = make_context()

    def english_pass() -> list[float]:
        times = []
        for i in range(args.prompts):
            start = time.perf_counter()
            det.detect(TextItem(ENGLISH[i % len(ENGLISH)]), ctx)
            times.append((time.perf_counter() - start) * 1000)
        return times

    def beside(text: str) -> tuple[list[float], float]:
        stop = threading.Event()
        rounds: list[float] = []

        def busy() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                det.detect(TextItem(text), ctx)
                rounds.append(time.perf_counter() - start)

        worker = threading.Thread(target=busy)
        worker.start()
        time.sleep(0.3)
        times = english_pass()
        stop.set()
        worker.join()
        return times, sum(rounds) / max(1, len(rounds))

    english_pass()  # warm up
    long_ja = (JAPANESE * (args.japanese_chars // len(JAPANESE) + 1))[: args.japanese_chars]
    long_en = (LONG_ENGLISH * (args.japanese_chars // len(LONG_ENGLISH) + 1))[: args.japanese_chars]
    start = time.perf_counter()
    det.detect(TextItem(long_ja), ctx)
    ja_alone = time.perf_counter() - start
    alone = english_pass()
    rows: list[tuple[str, list[float], float | None]] = [("alone", alone, None)]
    others = ((f"beside {len(long_ja)}-char Japanese", long_ja), (f"beside {len(long_en)}-char English", long_en))
    for label, text in others:
        times, per_round = beside(text)
        rows.append((label, times, per_round))
    print(f"PII pass of one {len(long_ja)}-character Japanese prompt alone: {ja_alone:.2f} s")
    print("\n| short English prompts | p50 ms | p95 ms | p50 ratio to alone | other thread's prompt, s |")
    print("|---|---|---|---|---|")
    base = _quantile(alone, 0.5)
    for label, times, per_round in rows:
        other = "-" if per_round is None else f"{per_round:.2f}"
        p50, p95 = _quantile(times, 0.5), _quantile(times, 0.95)
        print(f"| {label} | {p50:.1f} | {p95:.1f} | {p50 / base:.1f}x | {other} |")


if __name__ == "__main__":
    main()
