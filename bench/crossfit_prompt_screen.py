"""What the prompt pre-screen does on prompts its head never saw, estimated on even rows only.

    python bench/crossfit_prompt_screen.py --data ../shared/evaldata [--folds 5] [--json out.json]

The head of `detectors.unsafe_text` is trained on the even rows of the sets the harness scores
(`bench/train_prompt_head.py`), so the harness's even-row figures are figures on training data:
XSTest's safe prompts 0.008 FPR, HarmBench 0.973 recall. The odd rows are the honest figures, but
they may be read only to report, never to choose. This script gives an honest estimate that can be
used to choose: the even rows of the scored sets are split into folds; for each fold a head is
trained exactly as `train_prompt_head.py` trains one (the same rows, weights, model and operating
point chosen by its own inner 5-fold cross-validation) on everything but that fold and the
auxiliary rows within cosine 0.9 of one of its prompts (as training drops those near an odd row),
and the whole
pre-screen (`UnsafeText` with that head, and `Jailbreak`) is run on the fold's prompts.

It prints, per set, the share flagged by the pre-screen and by each path that can flag:
- **head**: the head's P(unsafe) reaches 0.5 (its operating point);
- **lexicon stands**: a strong lexicon hit (>= 0.8) that stands because the head is not sure the
  prompt is benign (`lexicon_stands`, 0.2), or a CSAM term, which always stands;
- **jailbreak**: the jailbreak detector's score reaches 0.5.

and the trade-off table of the two knobs the operating point has: the head cutoff and
`lexicon_stands`, replayed from the recorded head probability and lexicon hit of each prompt.
COCO: only the every-fourth even rows the head trains on take part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import train_prompt_head as training  # noqa: E402

from detectors.base import DetectionContext, TextItem  # noqa: E402
from detectors.jailbreak import Jailbreak  # noqa: E402
from detectors.unsafe_text import UnsafeText  # noqa: E402

SCORED = (*training.HARMFUL_SETS, *training.BENIGN_SETS)
REPORTED = ("advbench", "harmbench", "ringabell_nudity", "ringabell_violence", "xstest_unsafe",
            "partiprompts", "coco", "xstest_safe", "jbb_benign")  # fmt: skip
CUTOFFS = (0.5, 0.6, 0.7)
STANDS = (0.1, 0.2, 0.3, 0.4, 0.5)
_UNGATED = ("sexual_minors",)


def held_out_readings(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per even row of the scored sets, read by a pre-screen whose head never saw it."""
    from sklearn.model_selection import StratifiedKFold

    det = UnsafeText(model="minilm", head=None, threads=args.threads)
    det.load()
    jail = Jailbreak()
    jail.load()
    texts, y, groups, odd = training.training_rows(Path(args.data), False)
    cache = Path(args.cache)
    vecs = training.cached_embeddings(det, texts, groups, cache)
    x = det.features(texts, vecs)
    # the auxiliary rows near an odd row are dropped, as in training
    odd_vecs = training.cached_embeddings(det, odd, ["odd rows"] * len(odd), cache)
    keep = np.ones(len(y), dtype=bool)
    keep[training.aux_near(vecs, groups, odd_vecs)] = False
    x, y, vecs = x[keep], y[keep], vecs[keep]
    texts = [t for t, k in zip(texts, keep, strict=True) if k]
    groups = [g for g, k in zip(groups, keep, strict=True) if k]
    counts = Counter(groups)
    strata = np.array([f"{g}:{lab}" if counts[g] >= 5 else f"small:{lab}" for g, lab in zip(groups, y, strict=True)])
    boost = {k: float(v) for k, v in (pair.split("=") for pair in args.boost.split(",") if pair)}
    w = training.sample_weights(y, groups, boost)
    rates = {"partiprompts": args.fpr, "coco": args.fpr, "xstest_safe": args.xstest_fpr}
    scored = np.flatnonzero(np.isin(np.array(groups), SCORED))
    ctx = DetectionContext(request_id="crossfit", tenant="bench", stage="prescreen")
    out: list[dict[str, Any]] = []
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    for k, (_, test_pos) in enumerate(folds.split(scored, strata[scored])):
        start = time.perf_counter()
        test = scored[test_pos]
        # as for the odd rows in training: auxiliary rows that near-copy a held-out prompt (some
        # sets rephrase AdvBench or HarmBench) stay out of this fold's training
        near = training.aux_near(vecs, groups, vecs[test])
        train = np.setdiff1d(np.arange(len(y)), np.concatenate([test, near]))
        train_groups = [groups[i] for i in train]
        oof = training.out_of_fold("mlp", 1.0, x[train], y[train], w[train], list(strata[train]), args.seed)
        threshold = training.operating_point(oof, train_groups, rates)
        model = training.fit(training.make_model("mlp", 1.0, args.seed), x[train], y[train], w[train])
        det._head = training.export(model, "mlp", threshold, {})  # the head the bundled one would be
        for i in test:
            found = det.detect(TextItem(texts[i]), ctx)
            gated = [f for f in found if f.category not in _UNGATED]
            out.append(
                {
                    "set": groups[i],
                    "head": max((float(f.evidence.get("head", 0.0)) for f in found), default=0.0),  # type: ignore[arg-type]
                    "lexicon": max((float(f.evidence.get("lexicon", 0.0)) for f in gated), default=0.0),  # type: ignore[arg-type]
                    "ungated": any(f.score >= 0.5 for f in found if f.category in _UNGATED),
                    "unsafe": any(f.score >= 0.5 for f in found),
                    "jailbreak": any(f.score >= 0.5 for f in jail.detect(TextItem(texts[i]), ctx)),
                }
            )
        print(f"  fold {k + 1}/{args.folds}: threshold {threshold:.3f}, {len(test)} prompts, {len(near)} auxiliary "
              f"rows near them left out, "
              f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    return out


def replay(r: dict[str, Any], cutoff: float, stands: float) -> bool:
    """Whether the pre-screen would flag the prompt at another head cutoff and `lexicon_stands`."""
    lexicon = r["lexicon"] >= 0.8 and r["head"] >= stands
    return bool(r["head"] >= cutoff or lexicon or r["ungated"] or r["jailbreak"])


def print_tables(records: list[dict[str, Any]]) -> None:
    by_set: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_set[r["set"]].append(r)
    print("\n| set | n | pre-screen | head | lexicon stands | jailbreak |")
    print("|---|---|---|---|---|---|")
    for name in REPORTED:
        rs = by_set.get(name, [])
        if not rs:
            continue
        shares = [
            sum(1 for r in rs if r["unsafe"] or r["jailbreak"]),
            sum(1 for r in rs if r["head"] >= 0.5),
            sum(1 for r in rs if r["unsafe"] and r["head"] < 0.5),
            sum(1 for r in rs if r["jailbreak"]),
        ]
        print(f"| {name} | {len(rs)} | " + " | ".join(f"{k / len(rs):.3f}" for k in shares) + " |")
    print("\nreplayed operating points (share flagged):")
    print("| head cutoff | lexicon_stands | " + " | ".join(REPORTED) + " |")
    print("|---|---|" + "---|" * len(REPORTED))
    for cutoff in CUTOFFS:
        for stands in STANDS:
            cells = []
            for name in REPORTED:
                rs = by_set.get(name, [])
                cells.append(f"{sum(replay(r, cutoff, stands) for r in rs) / len(rs):.3f}" if rs else "-")
            print(f"| {cutoff} | {stands} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/evaldata")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fpr", type=float, default=training.DEFAULT_FPR)
    parser.add_argument("--xstest-fpr", type=float, default=training.DEFAULT_XSTEST_FPR)
    parser.add_argument("--boost", default=training.DEFAULT_BOOST)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "mamori-train"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the per-prompt records (no prompt text) here")
    args = parser.parse_args()
    records = held_out_readings(args)
    if args.json:
        Path(args.json).write_text(json.dumps(records), encoding="utf-8")
    print_tables(records)


if __name__ == "__main__":
    main()
