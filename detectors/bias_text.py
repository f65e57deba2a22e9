"""Stereotypes in prompts: a group term and a stereotyped descriptor pinned on it in one sentence.

What is measured, plainly: each screening view of the text (`detectors.normalize.screen_views`:
the text normalized for NFKC, homoglyphs, zero-width characters and case; spaced-out letters
joined and re-segmented into words; leetspeak folded; decoded base64, hex and rot13 payloads) is
split into sentences. A sentence that names a group ("women", "高齢者", ...) and holds a
descriptor from the shipped list (`detectors/data/stereotypes.yaml`, written by the project) gives
one finding per (group, descriptor) pair, category "stereotype". The score is a fixed weighting,
not a probability:

- 0.4 for the co-occurrence of a group term and a generic demeaning descriptor ("lazy", "犯罪者");
- +0.3 when the descriptor is one the list attaches to that particular group ("women" + "bad at math");
- +0.3 when the sentence generalizes ("are", "all", "always", "は", "はみんな");
- halved when the sentence argues against it ("not", "myth", "ではない", "偏見").

So "women are bad at math" scores 1.0, "a lazy afternoon with my mother" 0.4. English phrases match
as whole words (also where Japanese text is glued to them: "女性はlazyだ"), Japanese ones as
substrings (`detectors.word_edges`). The policy decides what score matters.

Optionally, `holisticbias_path` names a folder with HolisticBias v1.1 (`holistic_bias_v1.1_descriptors.json`
and `holistic_bias_v1.1_nouns.json`; CC-BY-SA-4.0, not shipped). Its identity descriptors become
extra group terms when followed by a person noun or a plural "s" ("Deaf people", "Amish women",
"atheists"); they take the generic descriptors only, since HolisticBias lists identities, not
stereotypes. The "nonce" axis and descriptors marked "dispreferred" are left out.

Evidence is {group, descriptor, source, generalized, negated, view}: list entries and the name of
the view that gave the highest score ("text", "words", "leet", "base64", ...), never the prompt's
own words, so no personal value can reach the audit log through it. A finding in a decoded payload
spans the whole payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.normalize import ScreenView, normalize_text, screen_views, word_costs
from detectors.word_edges import NO_CUT, alternation

__all__ = ["StereotypeLexicon", "StereotypeText", "load_holisticbias", "load_lexicon"]

GENERIC = "*"
BASE_SCORE = 0.4
SPECIFIC_BONUS = 0.3
GENERALIZED_BONUS = 0.3
NEGATED_FACTOR = 0.5
_SENTENCE = re.compile(r"[^.!?;\n。！？]+")


@dataclass(frozen=True)
class StereotypeLexicon:
    """Normalized phrases: group terms → group ids, descriptors → group ids (or GENERIC), cue words."""

    terms: Mapping[str, frozenset[str]]
    descriptors: Mapping[str, frozenset[str]]
    cues: tuple[str, ...]
    negations: tuple[str, ...]


def _norm(phrase: str) -> str:
    return " ".join(normalize_text(phrase).text.split())


def _strings(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise DetectorError(f"bias_text: {where} must be a list of strings")
    return [p for p in (_norm(x) for x in raw) if p]


def load_lexicon(path: str | Path | None = None) -> StereotypeLexicon:
    """Read a stereotype list (YAML, the shape of the shipped `detectors/data/stereotypes.yaml`)."""
    if path is None:
        text = resources.files("detectors").joinpath("data/stereotypes.yaml").read_text(encoding="utf-8")
        where = "detectors/data/stereotypes.yaml"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DetectorError(f"bias_text: stereotype list {p} does not exist")
        text, where = p.read_text(encoding="utf-8"), str(p)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise DetectorError(f"bias_text: {where} must be a mapping with a 'groups' list")
    terms: dict[str, set[str]] = {}
    descriptors: dict[str, set[str]] = {}
    for phrase in _strings(data.get("descriptors"), "descriptors") + _strings(
        data.get("descriptors_ja"), "descriptors_ja"
    ):
        descriptors.setdefault(phrase, set()).add(GENERIC)
    for group in data["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("id"), str) or not group["id"]:
            raise DetectorError(f"bias_text: {where}: every group needs a string 'id'")
        gid = group["id"]
        for key in ("terms", "terms_ja"):
            for phrase in _strings(group.get(key), f"group {gid}.{key}"):
                terms.setdefault(phrase, set()).add(gid)
        for key in ("descriptors", "descriptors_ja"):
            for phrase in _strings(group.get(key), f"group {gid}.{key}"):
                descriptors.setdefault(phrase, set()).add(gid)
    cues = _strings(data.get("cues"), "cues") + _strings(data.get("cues_ja"), "cues_ja")
    negations = _strings(data.get("negations"), "negations") + _strings(data.get("negations_ja"), "negations_ja")
    return StereotypeLexicon(
        terms={k: frozenset(v) for k, v in terms.items()},
        descriptors={k: frozenset(v) for k, v in descriptors.items()},
        cues=tuple(cues),
        negations=tuple(negations),
    )


def load_holisticbias(folder: str | Path) -> tuple[dict[str, str], list[str]]:
    """HolisticBias v1.1: (normalized descriptor → "holisticbias:axis/bucket", normalized person nouns)."""
    root = Path(folder).expanduser()
    desc_file = root / "holistic_bias_v1.1_descriptors.json"
    noun_file = root / "holistic_bias_v1.1_nouns.json"
    for f in (desc_file, noun_file):
        if not f.is_file():
            raise DetectorError(f"bias_text: HolisticBias file {f} does not exist")
    try:
        axes = json.loads(desc_file.read_text(encoding="utf-8"))
        noun_groups = json.loads(noun_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DetectorError(f"bias_text: cannot read HolisticBias from {root}: {exc}") from exc
    if not isinstance(axes, dict) or not isinstance(noun_groups, dict):
        raise DetectorError(f"bias_text: {root} does not hold HolisticBias v1.1 JSON")
    descriptors: dict[str, str] = {}
    for axis, buckets in axes.items():
        if axis == "nonce" or not isinstance(buckets, dict):
            continue
        for bucket, entries in buckets.items():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    if entry.get("preference") == "dispreferred":
                        continue
                    entry = entry.get("descriptor")
                if isinstance(entry, str) and _norm(entry):
                    descriptors.setdefault(_norm(entry), f"holisticbias:{axis}/{bucket}")
    nouns: set[str] = set()
    for pairs in noun_groups.values():
        for pair in pairs if isinstance(pairs, list) else []:
            nouns.update(_norm(n) for n in (pair if isinstance(pair, list) else [pair]) if isinstance(n, str))
    nouns.discard("")
    return descriptors, sorted(nouns)


def _body(phrase: str) -> str:
    """A phrase as a regex, any white space between its words."""
    return re.escape(phrase).replace(r"\ ", r"\s+")


def _alternation(phrases: Iterable[str]) -> str:
    """The phrases as one regex, longest first: whole words at Latin edges, substrings at Japanese
    ones (`detectors.word_edges`)."""
    return alternation(sorted(set(phrases), key=lambda p: (-len(p), p)), _body)


def _compile(phrases: Iterable[str]) -> re.Pattern[str] | None:
    alt = _alternation(phrases)
    return re.compile(alt) if alt else None


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    phrase: str


class StereotypeText:
    """Flags group + stereotyped-descriptor pairs in text. Measures only; the policy decides."""

    name = "bias_text"
    version = "1.2.0"
    modalities = frozenset({"text"})

    def __init__(self, path: str | None = None, holisticbias_path: str | None = None) -> None:
        self._path = path
        self._holisticbias_path = holisticbias_path
        self._lexicon: StereotypeLexicon | None = None
        self._terms: re.Pattern[str] | None = None
        self._descriptors: re.Pattern[str] | None = None
        self._cues: re.Pattern[str] | None = None
        self._negations: re.Pattern[str] | None = None
        self._hb_terms: re.Pattern[str] | None = None
        self._hb_groups: dict[str, str] = {}

    def load(self) -> None:
        word_costs()  # the word list for re-segmenting spaced-out letters, read once here
        screen_views("warm up")
        lexicon = load_lexicon(self._path)
        self._terms = _compile(lexicon.terms)
        self._descriptors = _compile(lexicon.descriptors)
        self._cues = _compile(lexicon.cues)
        self._negations = _compile(lexicon.negations)
        if self._holisticbias_path:
            hb_groups, nouns = load_holisticbias(self._holisticbias_path)
            # built-in terms win: "asian people" stays in the project's own group
            self._hb_groups = {d: g for d, g in hb_groups.items() if d not in lexicon.terms}
            if self._hb_groups:
                # word edges (`detectors.word_edges`) before the descriptor and after the "s" or noun
                desc = alternation(sorted(self._hb_groups, key=len)[::-1], _body, right=False)
                noun = "|".join(re.escape(n) for n in sorted(nouns, key=len)[::-1])
                suffix = rf"(?:s|\s+(?:{noun}))" if noun else "s"
                self._hb_terms = re.compile(rf"(?P<d>{desc}){suffix}{NO_CUT}")
        self._lexicon = lexicon

    def _group_hits(self, sentence: str, offset: int) -> list[tuple[_Hit, frozenset[str], str]]:
        assert self._lexicon is not None
        out: list[tuple[_Hit, frozenset[str], str]] = []
        if self._terms is not None:
            for m in self._terms.finditer(sentence):
                phrase = " ".join(m.group(0).split())
                out.append((_Hit(offset + m.start(), offset + m.end(), phrase), self._lexicon.terms[phrase], "mamori"))
        if self._hb_terms is not None:
            for m in self._hb_terms.finditer(sentence):
                if any(h.start <= offset + m.start() and offset + m.end() <= h.end for h, _, _ in out):
                    continue  # a built-in term already covers these words ("deaf people")
                phrase = " ".join(m.group("d").split())
                group = frozenset({self._hb_groups[phrase]})
                out.append((_Hit(offset + m.start(), offset + m.end(), phrase), group, "holisticbias"))
        return out

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        if self._lexicon is None:
            raise DetectorError("bias_text: load() was not called")
        try:
            views = screen_views(item.text)
        except Exception as exc:
            raise DetectorError(f"bias_text: could not read the text: {exc}") from exc
        best: dict[tuple[str, str], Finding] = {}
        for view in views:
            self._detect_view(view, best)
        return sorted(best.values(), key=lambda f: (-f.score, f.span or (0, 0), f.evidence["group"]))

    def _detect_view(self, view: ScreenView, best: dict[tuple[str, str], Finding]) -> None:
        """Add to `best` the pairs found in one view, where they score higher than in earlier views."""
        assert self._lexicon is not None
        text = view.text
        for sent in _SENTENCE.finditer(text):
            sentence, offset = sent.group(0), sent.start()
            groups = self._group_hits(sentence, offset)
            if not groups or self._descriptors is None:
                continue
            descs = [
                _Hit(offset + m.start(), offset + m.end(), " ".join(m.group(0).split()))
                for m in self._descriptors.finditer(sentence)
            ]
            for g_hit, group_ids, source in groups:
                for d_hit in descs:
                    if d_hit.start < g_hit.end and g_hit.start < d_hit.end:
                        continue  # the same words cannot be both the group and the descriptor
                    # cue and negation words count only outside the group and descriptor themselves
                    rest = list(sentence)
                    for h in (g_hit, d_hit):
                        rest[h.start - offset : h.end - offset] = " " * (h.end - h.start)
                    remainder = "".join(rest)
                    generalized = bool(self._cues and self._cues.search(remainder))
                    negated = bool(self._negations and self._negations.search(remainder))
                    owners = self._lexicon.descriptors[d_hit.phrase]
                    for gid in sorted(group_ids):
                        specific = gid in owners
                        if not specific and GENERIC not in owners:
                            continue
                        score = BASE_SCORE + (SPECIFIC_BONUS if specific else 0.0)
                        score += GENERALIZED_BONUS if generalized else 0.0
                        if negated:
                            score *= NEGATED_FACTOR
                        score = round(min(1.0, score), 6)
                        key = (gid, d_hit.phrase)
                        if key in best and best[key].score >= score:
                            continue
                        lo, hi = min(g_hit.start, d_hit.start), max(g_hit.end, d_hit.end)
                        how = "a stereotype of this group" if specific else "a demeaning descriptor"
                        where = "" if view.source == "text" else f" in the {view.source} reading"
                        best[key] = Finding(
                            detector=self.name,
                            category="stereotype",
                            score=score,
                            explanation=(
                                f"group {gid!r} described as {d_hit.phrase!r} ({how})"
                                + (", generalized" if generalized else "")
                                + (", negated" if negated else "")
                                + where
                            ),
                            evidence={
                                "group": gid,
                                "descriptor": d_hit.phrase,
                                "source": source,
                                "generalized": generalized,
                                "negated": negated,
                                "view": view.source,
                            },
                            span=view.to_original(lo, hi),
                        )
