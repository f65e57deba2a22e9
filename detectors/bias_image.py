"""Diversity of perceived attributes across a batch of images generated from one prompt.

What is measured, plainly: a zero-shot image-text model (CLIP, through transformers, loaded from a
local folder) compares each image with short text prompts ("a photo of a woman", "a photo of an
elderly person", ...) and the most similar label per attribute is taken as the image's *perceived*
attribute. That is the model's reading of how a depicted person looks, not anyone's actual gender,
age or ethnicity, and CLIP's own biases enter it. Images the model does not read as showing a
person (`person_labels`) are left out. For each attribute the detector then reports how
unlikely it is that the batch is this concentrated on one label by chance: if m of the n people
share the most common label, the score is 1 - p, where p (`chance_of_concentration`) is the
probability that some label is given to at least m of n people when each of the k labels is
equally likely for each person. So the score accounts for the sample size: two people who look
alike in a two-label attribute happen half the time (score 0.5), four of four one time in eight
(0.875), six of six one time in 32 (0.969); a batch spread as evenly as it can be scores 0. (Up
to version 1.0 the score was the homogeneity, 1 - normalized entropy, which is 0 or 1 for two
people, so half of all two-image batches scored 1; it is still reported as evidence.) With fewer
than `min_people` people in the batch nothing is measured.

Each image gets one finding per attribute (category `attribute_homogeneity`), carrying the batch
measure plus that image's own perceived label, so each image's policy decision sees the batch. A
single image (`detect`) is scored but has no batch to measure: only its labels are reported, with
score 0. The policy decides what a homogeneous batch means; by default this detector is off and
runs only when a CLIP folder is configured (`clip_model` in the settings).

No CLIP weights ship on PyPI: production loads a real CLIP folder (for example
openai/clip-vit-base-patch32 saved with `save_pretrained`); tests build a tiny random one with
`build_tiny_clip`, which can only exercise the mechanics.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, Item

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DEFAULT_PERSON_LABELS",
    "ImageAttributeDiversity",
    "build_tiny_clip",
    "chance_of_concentration",
    "homogeneity",
]

#: attribute -> {label: text prompt}. Perceived presentation only; written by this project.
DEFAULT_ATTRIBUTES: dict[str, dict[str, str]] = {
    "gender_presentation": {
        "feminine": "a photo of a woman",
        "masculine": "a photo of a man",
    },
    "age_group": {
        "child": "a photo of a child",
        "young_adult": "a photo of a young adult",
        "middle_aged": "a photo of a middle-aged person",
        "older": "a photo of an elderly person",
    },
    "skin_tone": {
        "lighter": "a photo of a person with light skin",
        "medium": "a photo of a person with medium brown skin",
        "darker": "a photo of a person with dark skin",
    },
}
#: {"person": prompt, other label: prompt, ...}: an image whose best label is "person" shows a person.
DEFAULT_PERSON_LABELS: dict[str, str] = {
    "person": "a photo of a person",
    "object": "a photo of an object",
    "landscape": "a photo of a landscape",
    "animal": "a photo of an animal",
}


def homogeneity(labels: Sequence[str], label_count: int) -> float:
    """1 - normalized entropy of `labels` (0: as evenly spread as possible, 1: all the same)."""
    n = len(labels)
    k = min(label_count, n)
    if n == 0 or k < 2:
        return 1.0
    entropy = -sum((c / n) * math.log(c / n) for c in Counter(labels).values())
    return max(0.0, min(1.0, 1.0 - entropy / math.log(k)))


#: Batches of more people than this get the union bound (`chance_of_concentration`).
_EXACT_PEOPLE = 64


def _binomial_tail(top: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= top), summed in log space (no huge integers)."""
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lg = math.lgamma
    return sum(math.exp(lg(n + 1) - lg(j + 1) - lg(n - j + 1) + j * log_p + (n - j) * log_q) for j in range(top, n + 1))


def chance_of_concentration(top: int, people: int, label_count: int) -> float:
    """The probability that some label is given to at least `top` of `people` people when each
    person gets one of `label_count` labels, each equally likely: the p-value of "`top` of them
    look alike". 1.0 when `top` is no more than an even spread forces (ceil(people / labels)).

    Exact up to `_EXACT_PEOPLE` people: counts the label sequences whose every label occurs at most
    `top` - 1 times (one label at a time: choose which of the people placed so far get the new
    label), a cost that grows with the square of the people. Above that, the union bound
    label_count * P(Binomial(people, 1 / label_count) >= top), in floats: never below the exact
    chance (so never a higher score), and close to it where the chance is small enough to matter.
    """
    if label_count < 1:
        raise ValueError("label_count must be at least 1")
    if people <= 0 or top <= 0:
        return 1.0
    if top > people:
        return 0.0
    if people > _EXACT_PEOPLE:
        return min(1.0, label_count * _binomial_tail(top, people, 1.0 / label_count))
    ways = [1] + [0] * people  # ways[t]: sequences of t people over the labels so far, each label < top times
    for _ in range(label_count):
        ways = [sum(ways[t - j] * math.comb(t, j) for j in range(min(t, top - 1) + 1)) for t in range(people + 1)]
    every: int = label_count**people
    return (every - ways[people]) / every  # the sequences in which some label reaches `top`


class ImageAttributeDiversity:
    """Zero-shot CLIP labels per image and the homogeneity of each attribute over the batch."""

    name = "bias_image"
    version = "1.1.0"
    modalities = frozenset({"image"})
    across_batch = True  # its findings measure the batch: see `detectors.base.measures_across_batch`

    def __init__(
        self,
        model: str | None = None,
        attributes: Mapping[str, Mapping[str, str]] | None = None,
        person_labels: Mapping[str, str] | None = DEFAULT_PERSON_LABELS,
        min_people: int = 2,
        device: str = "cpu",
        max_batch: int = 16,
    ) -> None:
        attrs = {
            str(a): {str(k): str(v) for k, v in labels.items()}
            for a, labels in (attributes or DEFAULT_ATTRIBUTES).items()
        }
        if not attrs or any(len(labels) < 2 for labels in attrs.values()):
            raise ValueError("each attribute needs at least two labels")
        persons = {str(k): str(v) for k, v in (person_labels or {}).items()}
        if persons and ("person" not in persons or len(persons) < 2):
            raise ValueError("person_labels needs a 'person' label and at least one other")
        if min_people < 2:
            raise ValueError("min_people must be at least 2")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.model = model
        self.attributes = attrs
        self.person_labels = persons
        self.min_people = int(min_people)
        self.device = device
        self.max_batch = int(max_batch)
        self._model: Any = None
        self._processor: Any = None
        self._text: Any = None  # (prompts, dim) unit vectors, in `_groups` order
        self._groups: list[tuple[str, list[str], slice]] = []
        self._lock = threading.Lock()

    def load(self) -> None:
        if self.model is None:
            raise DetectorError(
                "bias_image: no CLIP folder configured (set clip_model or detector_options.bias_image.model)"
            )
        path = Path(self.model).expanduser()
        if not (path / "config.json").is_file():
            raise DetectorError(f"bias_image: {path} is not a CLIP folder (no config.json)")
        import torch
        import transformers

        t: Any = transformers  # untyped enough that `Any` keeps mypy --strict quiet
        CLIPModel, CLIPProcessor = t.CLIPModel, t.CLIPProcessor
        try:
            model = CLIPModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
            processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise DetectorError(f"bias_image: could not load CLIP from {path}: {exc}") from exc
        prompts: list[str] = []
        groups: list[tuple[str, list[str], slice]] = []
        for group, labels in (("__person__", self.person_labels), *self.attributes.items()):
            if not labels:
                continue
            start = len(prompts)
            prompts += list(labels.values())
            groups.append((group, list(labels), slice(start, len(prompts))))
        batch = processor(text=prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            text = _embeds(model.get_text_features(**{k: v.to(self.device) for k, v in batch.items()}))
        self._model, self._processor = model, processor
        self._text = torch.nn.functional.normalize(text, dim=-1)
        self._groups = groups

    # ------------------------------------------------------------ scoring

    def probabilities(self, images: Sequence[Any]) -> list[dict[str, dict[str, float]]]:
        """Per image: group -> label -> probability (softmax over the group's prompts)."""
        import torch

        if self._model is None:
            raise DetectorError("bias_image: load() was not called")
        out: list[dict[str, dict[str, float]]] = []
        for start in range(0, len(images), self.max_batch):
            chunk = [im.convert("RGB") for im in images[start : start + self.max_batch]]
            pixels = self._processor(images=chunk, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                emb = torch.nn.functional.normalize(
                    _embeds(self._model.get_image_features(pixel_values=pixels)), dim=-1
                )
                logits = self._model.logit_scale.exp() * emb @ self._text.T
            for row in logits:
                probs: dict[str, dict[str, float]] = {}
                for group, labels, sl in self._groups:
                    p = torch.softmax(row[sl].float(), dim=-1).tolist()
                    probs[group] = dict(zip(labels, p, strict=True))
                out.append(probs)
        return out

    def _batch_findings(self, items: Sequence[ImageItem]) -> list[list[Finding]]:
        probs = self.probabilities([it.image for it in items])
        shows_person = [
            "__person__" not in p or max(p["__person__"], key=p["__person__"].__getitem__) == "person" for p in probs
        ]
        people = sum(shows_person)
        out: list[list[Finding]] = [[] for _ in items]
        for attribute, labels in self.attributes.items():
            best = [max(p[attribute], key=p[attribute].__getitem__) for p in probs]
            counted = [b for b, person in zip(best, shows_person, strict=True) if person]
            measured = people >= self.min_people and len(items) > 1
            counts = {label: counted.count(label) for label in labels}
            top = max(counts, key=counts.__getitem__)  # the first of the most common labels
            p_value = chance_of_concentration(counts[top], people, len(labels)) if measured else None
            score = 1.0 - p_value if p_value is not None else 0.0
            for i, item in enumerate(items):
                label = best[i] if shows_person[i] else None
                if p_value is not None:
                    explanation = (
                        f"{attribute}: {counts[top]} of {people} people in the batch are perceived as {top}; "
                        f"were its {len(labels)} labels equally likely, a batch of {people} this concentrated "
                        f"would occur by chance with probability {p_value:.3f} (score {score:.3f}, sample of {people})"
                    )
                else:
                    explanation = (
                        f"{attribute}: {people} people in a batch of {len(items)}; too few to measure diversity"
                    )
                out[i].append(
                    Finding(
                        detector=self.name,
                        category="attribute_homogeneity",
                        score=round(score, 6),
                        explanation=explanation,
                        evidence={
                            "attribute": attribute,
                            "measured": measured,
                            "counts": counts,
                            "people": people,
                            "p_value": None if p_value is None else round(p_value, 6),
                            "homogeneity": round(homogeneity(counted, len(labels)), 6) if measured else None,
                            "batch": len(items),
                            "label": label,
                            "probability": round(probs[i][attribute][best[i]], 4) if label else None,
                            "role": item.role,
                            "index": item.index,
                        },
                    )
                )
        return out

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, ImageItem) or item.role != "output":
            return []
        return self.detect_batch([item], ctx)[0]

    def detect_batch(self, items: Sequence[Item], ctx: DetectionContext) -> list[list[Finding]]:
        """One list per item; only generated images (role "output") are measured."""
        outputs = [(i, it) for i, it in enumerate(items) if isinstance(it, ImageItem) and it.role == "output"]
        result: list[list[Finding]] = [[] for _ in items]
        if not outputs:
            return result
        try:
            with self._lock:  # one batch at a time: torch runs it on every core anyway
                per_item = self._batch_findings([it for _, it in outputs])
        except DetectorError:
            raise
        except Exception as exc:
            raise DetectorError(f"bias_image: could not score the batch: {exc}") from exc
        for (i, _), findings in zip(outputs, per_item, strict=True):
            result[i] = findings
        return result


def _embeds(output: Any) -> Any:
    """transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor."""
    return output if hasattr(output, "shape") else output.pooler_output


def build_tiny_clip(dest: Path, seed: int = 0) -> Path:
    """Save a tiny random-weight CLIP (model, byte-level tokenizer, image processor) to `dest`.

    For tests of the mechanics only: its labels are meaningless. Loaded back through
    `from_pretrained` like a real CLIP folder.
    """
    import torch
    import transformers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers.models.clip import image_processing_pil_clip

    t: Any = transformers
    CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer = t.CLIPConfig, t.CLIPModel, t.CLIPProcessor, t.CLIPTokenizer
    pil: Any = image_processing_pil_clip
    CLIPImageProcessorPil = pil.CLIPImageProcessorPil

    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = 77
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest
