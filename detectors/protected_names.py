"""A registry of protected names (real people, brands, characters) that an admin loads.

Entries come from `names=[{"name": ..., "kind": "person"|"brand"|"character", "aliases": [...],
"id": ...}]` and/or a file `path` (YAML: a list of such objects, or `{"names": [...]}`; CSV with
columns `name,kind[,aliases][,id]`, aliases separated by `|`), and from the gateway's registry in
the database (`POST /v1/protected-names`, `mamori protected-names import`), which the gateway
passes per request in the detection context. Names and aliases are matched after
normalization in every screening view of the text (homoglyphs, spacing, leetspeak, encodings), on
word boundaries for Latin script and as substrings for Japanese, Chinese and Korean
(`detectors.word_edges`). A name may be written with or without the spaces, hyphens, dashes,
underscores, apostrophes, dots and Japanese name separators (・, ＝) between its parts, in
hiragana for katakana, and with a look-alike of the long-vowel mark; a name of fewer than four
characters is found only as it is written ("3M" is not in "3 m").

One finding per matched entry: category "protected_name", evidence {kind, id, name, alias}.
The policy decides (a real person next to sexual or violent content: block; a brand: review).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.normalize import ScreenView, is_known_word, normalize_text, screen_views, stands_as_a_word
from detectors.word_edges import HIRAGANA_AS_KATAKANA, cuts_word, is_spaced_word_char

__all__ = ["KINDS", "MAX_ALIASES", "NameMatcher", "ProtectedName", "ProtectedNames", "load_names", "protected_name"]

KINDS = frozenset({"person", "brand", "character"})

#: What a name may be written with or without between its parts, in the text and in the registry:
#: white space, hyphens and dashes, underscores, apostrophes, dots, and the Japanese name
#: separators ・ and ＝ ("Coca Cola", "CocaCola" and "Coca‐Cola" for "Coca-Cola"; "McDonald’s" and
#: "McDonalds" for "McDonald's"; "テイラースウィフト" for "テイラー・スウィフト").
_SEPARATORS = r"\s\-_'‘’`´ʼ.・･·=\u2010-\u2015"
_SEPARATOR = re.compile(f"[{_SEPARATORS}]")
_KEPT = re.compile(f"[^{_SEPARATORS}]")
_SPACES = re.compile(r"\s+")
#: The end of a sentence inside a match: a word of two letters or more, then ".", "!" or "?" and
#: white space ("Taylor. Swift"); an initial's dot is none ("J.K. Rowling", "J. Lo").
_SENTENCE_END = re.compile(r"[^\W\d_]{2}[.!?]+\s")
_EDGES = re.compile(f"^[{_SEPARATORS}]+|[{_SEPARATORS}]+$")  # a match starts and ends on a kept character
#: A dash-like character between two katakana is the long-vowel mark ("ミッキ−マウス", "ミッキ一マウス").
_LONG_VOWEL = re.compile(r"(?<=[\u30a1-\u30fa])[\-\u2010-\u2015\u2212\u4e00\uff70~\u301c\uff5e](?=[\u30a1-\u30fa])")
#: Keys shorter than this match only as the name is written (any white space alike), with nothing
#: folded or taken out: "3M" is not in "a rope 3 m long", a two-kana brand is not every hiragana
#: word, and "J Lo" and "T.I." are found as written.
_FOLDED_MIN = 4


def _folded(text: str) -> str:
    """`text` (a screening view, or a normalized name) with look-alike long-vowel marks and
    hiragana read as katakana; position for position."""
    return _LONG_VOWEL.sub("ー", text).translate(HIRAGANA_AS_KATAKANA)  # "みっきーまうす" for "ミッキーマウス"


def _key(text: str) -> str:
    """A name as the matcher looks it up: folded, separators taken out."""
    return _SEPARATOR.sub("", _folded(text))


@dataclass(frozen=True)
class ProtectedName:
    id: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    tenant: str | None = None  # None: the name is protected for every tenant


def protected_name(raw: Mapping[str, Any], where: str = "names", tenant: str | None = None) -> ProtectedName:
    """One registry entry from `{name, kind, aliases, id}`; a clear ValueError when it is malformed."""
    entry = _entry(raw, where)
    return ProtectedName(entry.id, entry.name, entry.kind, entry.aliases, tenant)


#: At most this many aliases per entry (a registry entry is one person, brand or character).
MAX_ALIASES = 64


def _text(value: Any, field: str, where: str) -> str:
    """A field that must be text (a number, as YAML reads "1984", is taken as its text)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: {field} must be text")
    return str(value).strip()


def _entry(raw: Mapping[str, Any], where: str) -> ProtectedName:
    name = _text(raw.get("name"), "name", where)
    kind = _text(raw.get("kind"), "kind", where).lower()
    if not name:
        raise ValueError(f"{where}: an entry has no name")
    if kind not in KINDS:
        raise ValueError(f"{where}: kind of {name!r} must be one of {sorted(KINDS)}, not {kind!r}")
    aliases_raw = raw.get("aliases") or ()
    if isinstance(aliases_raw, str):
        aliases_raw = aliases_raw.split("|")
    if not isinstance(aliases_raw, list | tuple):
        raise ValueError(f"{where}: aliases must be a list of names (or one text, separated by |)")
    aliases = tuple(a for a in (_text(v, "each alias", where) for v in aliases_raw) if a)
    if len(aliases) > MAX_ALIASES:
        raise ValueError(f"{where}: at most {MAX_ALIASES} aliases per entry")
    given = _text(raw.get("id"), "id", where)
    ident = given or re.sub(r"[^a-z0-9]+", "_", normalize_text(name).text).strip("_") or name
    return ProtectedName(id=ident, name=name, kind=kind, aliases=aliases)


def load_names(path: str | Path) -> list[ProtectedName]:
    """Read a YAML or CSV registry file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"protected names file {p} does not exist")
    if p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            return [_entry(row, str(p)) for row in csv.DictReader(fh)]
    import yaml

    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    if isinstance(data, Mapping):
        data = data.get("names", [])
    if not isinstance(data, list) or not all(isinstance(d, Mapping) for d in data):
        raise ValueError(f"{p}: expected a list of {{name, kind, aliases}} objects")
    return [_entry(d, str(p)) for d in data]


class NameMatcher:
    """Compiled names: one regular expression over every normalized name and alias."""

    def __init__(self, entries: Sequence[ProtectedName]) -> None:
        import ahocorasick

        owners: dict[str, list[tuple[ProtectedName, str]]] = {}
        unknown: set[str] = set()  # keys with a word the English word list does not know
        written: dict[str, set[str]] = {}  # short keys: the names as written ("j lo", "t.i.")
        sentences: set[str] = set()  # keys of names that hold a sentence end themselves ("Yahoo! Japan")
        for entry in entries:
            for alias in (entry.name, *entry.aliases):
                normalized = normalize_text(alias).text
                key = _key(normalized)
                if len(key) >= 2:
                    owners.setdefault(key, []).append((entry, alias))
                    if any(not is_known_word(w) for w in _SEPARATOR.split(_folded(normalized)) if w):
                        unknown.add(key)
                    if len(key) < _FOLDED_MIN:
                        written.setdefault(key, set()).add(_SPACES.sub(" ", _EDGES.sub("", normalized)))
                    if _SENTENCE_END.search(normalized):
                        sentences.add(key)
        self.entries = tuple(entries)
        self._unknown = frozenset(unknown)
        self._written = {k: frozenset(v) for k, v in written.items()}
        self._sentences = frozenset(sentences)
        self._automaton: Any = None
        if owners:
            automaton = ahocorasick.Automaton()
            for key, who in owners.items():
                automaton.add_word(key, (key, tuple(who)))
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        return len(self.entries)

    def matches(
        self, views: Sequence[ScreenView], tenant: str
    ) -> Iterator[tuple[ProtectedName, str, ScreenView, int, int]]:
        """(entry, alias, view, start, end) for every name in the views, overlapping ones too, so
        that no name hides another ("Taylor Swift" inside "Taylor Swift Fan Club"); entries of
        another tenant are skipped (an entry without a tenant applies to every tenant).

        Names are found in the view with its separators taken out (`_SEPARATOR`: "captain
        kitten", "c a p t a i n kitten", "Coca‐Cola", "McDonald’s") and hiragana and long-vowel
        look-alikes folded (`_folded`); a name of fewer than `_FOLDED_MIN` characters only as it is
        written. A name must not begin or end inside a word of the view where
        `detectors.word_edges.cuts_word` says so: a Latin name needs a word boundary (though not
        against Japanese text, "Acmeの"), a Japanese, Chinese or Korean one may stand inside a word."""
        if self._automaton is None:
            return
        for view in views:
            text = view.text
            folded = _folded(text)
            kept = [m.start() for m in _KEPT.finditer(folded)]
            squashed = "".join(folded[i] for i in kept)
            for last, (key, who) in self._automaton.iter(squashed):
                first = last - len(key) + 1
                start, end = kept[first], kept[last] + 1
                if len(key) < _FOLDED_MIN and _SPACES.sub(" ", text[start:end]) not in self._written[key]:
                    continue
                if cuts_word(text, start) or cuts_word(text, end):
                    continue
                if key not in self._sentences and _SENTENCE_END.search(text, start, end):
                    continue  # "I met Taylor. Swift replies": two sentences, no name
                inside = _inside_spaced_run(text, kept, first, last)
                if inside and (key not in self._unknown or not _a_word_of_the_run(folded, kept, first, last, key)):
                    continue
                for entry, alias in who:
                    if entry.tenant is None or entry.tenant == tenant:
                        yield entry, alias, view, start, end


#: Characters a name must have to start after a lone spaced-out "a" or "i" (`_inside_spaced_run`).
_AFTER_ARTICLE_MIN = 4


def _single(text: str, i: int) -> bool:
    """Whether `text[i]` is a spaced-out single character: a letter or digit with white space
    (or an end of the text) on both sides, as in "c l a s s"."""
    return (
        is_spaced_word_char(text[i])
        and (i == 0 or text[i - 1].isspace())
        and (i + 1 == len(text) or text[i + 1].isspace())
    )


def _inside_spaced_run(text: str, kept: list[int], first: int, last: int) -> bool:
    """Whether a match over the kept (non-space) characters `first..last` begins or ends inside a
    run of spaced-out single characters, where taking the white space out leaves no word break:
    "c l a s s" holds no "ass". As in the deny-list, a name of at least `_AFTER_ARTICLE_MIN`
    characters may begin after a lone "a" or "i" that starts the run ("a T a y l o r S w i f t")."""
    if first > 0 and _single(text, kept[first - 1]) and _single(text, kept[first]):
        lone = kept[first - 1]
        opens_run = first < 2 or not _single(text, kept[first - 2])
        if not (text[lone] in "aiAI" and opens_run and last - first + 1 >= _AFTER_ARTICLE_MIN):
            return True
    return last + 1 < len(kept) and _single(text, kept[last]) and _single(text, kept[last + 1])


def _a_word_of_the_run(text: str, kept: list[int], first: int, last: int, key: str) -> bool:
    """Whether a name found inside a run of spaced-out single characters is one of the run's words
    when the run is split into English words with the name known too (`normalize.stands_as_a_word`):
    "Z e n d a y a m y f r i e n d" reads "zendaya my friend"; "c l a s s" holds no "ass". Asked
    only for a name with a word the English word list does not know."""
    lo, hi = first, last
    while lo > 0 and _single(text, kept[lo - 1]):
        lo -= 1
    while hi + 1 < len(kept) and _single(text, kept[hi + 1]):
        hi += 1
    letters = "".join(text[kept[j]] for j in range(lo, hi + 1))
    return stands_as_a_word(letters, first - lo, key)


class ProtectedNames:
    """Finds registered names of people, brands and characters in text.

    Two sources: the names given to the detector (`names=`, `path=`), and the gateway's registry
    in the database, which the gateway passes per request as `ctx.resources["protected_names"]`
    (a `NameMatcher`), so that names an admin registers through the API apply at once in every
    gateway process.
    """

    name = "protected_names"
    version = "1.3.0"
    modalities = frozenset({"text"})

    def __init__(self, path: str | None = None, names: Sequence[Mapping[str, Any]] | None = None) -> None:
        entries = [_entry(n, "names") for n in (names or ())]
        if path is not None:
            entries += load_names(path)
        self.path = path
        self.entries = entries
        self._matcher: NameMatcher | None = None

    def load(self) -> None:
        self._matcher = NameMatcher(self.entries)

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem) or not item.text.strip():
            return []
        if self._matcher is None:
            raise DetectorError("protected_names: load() was not called")
        registry = ctx.resources.get("protected_names")
        matchers = [m for m in (self._matcher, registry) if isinstance(m, NameMatcher) and len(m)]
        if not matchers:
            return []
        views = screen_views(item.text)
        found: dict[str, Finding] = {}
        for matcher in matchers:
            for entry, alias, view, start, end in matcher.matches(views, ctx.tenant):
                if entry.id in found:
                    continue
                span = view.to_original(start, end)
                how = "" if view.source == "text" else f" (in the {view.source} reading)"
                found[entry.id] = Finding(
                    detector=self.name,
                    category="protected_name",
                    score=1.0 if view.source == "text" else 0.9,
                    explanation=f"protected {entry.kind} {entry.name!r}{how}",
                    evidence={
                        "kind": entry.kind,
                        "id": entry.id,
                        "name": entry.name,
                        "alias": alias,
                        "view": view.source,
                    },
                    span=span if span[1] > span[0] else None,
                )
        return list(found.values())
