"""Deny-list terms from the policy bundle, matched on word boundaries after normalization.

The terms are not configured on the detector: they arrive with each request in
`ctx.resources["terms"]` (a list of `{"term": str, "category": str}` from the policy bundle's
data), so a policy reload changes them. Each distinct list is compiled once and cached.

The terms go through `normalize_text` and are matched over every screening view of the text
(`detectors.normalize.screen_views`), so a term also matches when written with homoglyphs
(Cyrillic/Greek look-alikes), zero-width characters, full-width letters or in another case, with
its letters spaced out ("c o c a i n e"), in leetspeak ("c0c41n3"), or inside a base64, hex or
rot13 payload. The finding's evidence names the view that matched ("text", "spaced", "leet",
"base64", ...); a match in a decoded payload spans the whole payload.

Between the words of a term, a text may put any run of white space, hyphens or underscores: "make a
bomb" matches "make  a  bomb", "make\na\tbomb" and "make-a-bomb" (and a listed "x-ray gun" matches
"x ray gun").

Where a term needs a word boundary is decided by `detectors.word_edges`: at an edge in Latin (or
any script written with spaces) it must not touch another letter, digit or "_" of such a script;
at an edge in Japanese, Chinese, Korean or Thai it may stand inside a word (爆弾 in 爆弾の作り方);
and a Latin term glued into Japanese text is found ("メールはbombです").

Where spaced-out letters were joined, the breaks between words may be lost ("p i p e b o m b"
joins to "pipebomb"), so in those views a term also matches with or without the spaces and
separators it is written with ("forbidden-zebra" matches "f o r b i d d e n z e b r a"), as long
as the match joins letters that were spaced out and begins and ends on a word edge: at the edge of
the run of joined letters or at a word boundary of the view, not inside the run ("c l a s s",
joined "class", does not hold "ass"). Where every letter of a sentence was spaced alike ("w r i t e
a p i p e b o m b"), the "words" view splits the run into English words and finds the term there.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.normalize import (
    INVISIBLE_CHARS,
    NormalizedText,
    ScreenView,
    is_known_word,
    normalize_text,
    screen_views,
    stands_as_a_word,
)
from detectors.word_edges import alternation, cuts_word

__all__ = ["CompiledTerms", "DenyList", "compile_terms"]

TermKey = tuple[tuple[str, str], ...]


#: What joined spaced-out letters may lose or keep between the words of a term.
_SEPARATORS = re.compile(r"[\W_]+")
#: What may stand between two words of a term in a text: any run of white space, hyphens and
#: underscores ("make  a  bomb", "make\na\tbomb", "make-a-bomb" for "make a bomb").
_WORD_BREAK_RE = r"[\s_\-\u2010-\u2015]+"
_WORD_BREAK = re.compile(_WORD_BREAK_RE)
_LETTERS = re.compile(r"[^\W_]+")
#: Terms shorter than this (letters and digits) match only on word boundaries, also in joined letters.
_LOOSE_MIN = 3


@dataclass(frozen=True)
class CompiledTerms:
    """One regular expression for a whole list, and the listed terms behind each normalized form.

    `loose` matches the terms with their spaces and separators removed ("pipebomb") in a view's
    text with its spaces and separators removed, without word boundaries; `by_squashed` names the
    normalized forms behind each such key.
    """

    pattern: re.Pattern[str] | None
    by_normalized: Mapping[str, tuple[tuple[str, str], ...]]  # keys: `_canonical` forms
    loose: re.Pattern[str] | None = None
    by_squashed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: squashed keys of the terms with a word the English word list does not know ("krokodil"),
    #: which the "words" view cannot split out of a fully spaced sentence (`_stands_as_a_word`)
    unknown: frozenset[str] = frozenset()


def _squash(text: str) -> str:
    return _SEPARATORS.sub("", text)


def _canonical(text: str) -> str:
    """A term or a match with each break between words written as one space (`_WORD_BREAK`)."""
    return _WORD_BREAK.sub(" ", text)


def _body(canonical: str) -> str:
    """A term (in `_canonical` form) as a regular expression: its words, any `_WORD_BREAK` between."""
    return _WORD_BREAK_RE.join(re.escape(word) for word in canonical.split(" "))


def compile_terms(terms: TermKey) -> CompiledTerms:
    """Compile `(term, category)` pairs into one alternation, longest first, on word boundaries where
    `detectors.word_edges` asks for them, and the alternation of their squashed forms for joined
    spaced-out letters."""
    by_norm: dict[str, list[tuple[str, str]]] = {}
    for term, category in terms:
        norm = _canonical(normalize_text(term).text).strip()
        if not norm:
            continue
        entries = by_norm.setdefault(norm, [])
        if (term, category) not in entries:
            entries.append((term, category))
    if not by_norm:
        return CompiledTerms(pattern=None, by_normalized={})
    pattern = re.compile(alternation(sorted(by_norm, key=lambda t: (-len(t), t)), _body))
    by_squashed: dict[str, list[str]] = {}
    for norm in by_norm:
        key = _squash(norm)
        if len(key) >= _LOOSE_MIN:
            by_squashed.setdefault(key, []).append(norm)
    loose = (
        re.compile("|".join(re.escape(k) for k in sorted(by_squashed, key=lambda k: (-len(k), k))))
        if by_squashed
        else None
    )
    unknown = frozenset(
        key for key, norms in by_squashed.items() if any(not is_known_word(w) for n in norms for w in n.split())
    )
    return CompiledTerms(
        pattern=pattern,
        by_normalized={k: tuple(v) for k, v in by_norm.items()},
        loose=loose,
        by_squashed={k: tuple(v) for k, v in by_squashed.items()},
        unknown=unknown,
    )


def _joined_view(source: str) -> bool:
    """Whether a view joined spaced-out letters ("spaced", "words", "base64>spaced", ...)."""
    return source.rpartition(">")[2] in ("spaced", "words")


def _loose_matches(view: ScreenView, compiled: CompiledTerms) -> list[tuple[int, int, str]]:
    """(start, end, squashed key) in `view.text` of the terms matched without separators, where the
    match joins at least two letters that were spaced out and starts and ends on a word edge
    (`_on_word_edges`), not inside a run of joined letters ("ass" in "c l a s s", joined "class").

    A match refused for its edges may hide another that starts inside it, so the search goes on
    from the next letter; one accepted goes on after its end, as `finditer` would."""
    if compiled.loose is None:
        return []
    n = view.normalized
    keep = [i for m in _LETTERS.finditer(n.text) for i in range(m.start(), m.end())]
    squashed = "".join(n.text[i] for i in keep)
    out: list[tuple[int, int, str]] = []
    pos = 0
    while (m := compiled.loose.search(squashed, pos)) is not None:
        idx = keep[m.start() : m.end()]
        if any(b == a + 1 and _spaced_apart(n, a) for a, b in itertools.pairwise(idx)) and (
            _on_word_edges(n, idx[0], idx[-1] + 1)
            or (m.group(0) in compiled.unknown and _stands_as_a_word(n.text, idx, m.group(0)))
        ):
            out.append((idx[0], idx[-1] + 1, m.group(0)))
            pos = m.end()
        else:
            pos = m.start() + 1
    return out


#: Letters a loose match after a lone "a" or "i" takes at least (`_on_word_edges`).
_AFTER_ARTICLE_MIN = 4


def _on_word_edges(n: NormalizedText, start: int, end: int) -> bool:
    """Whether a loose match over `n.text[start:end]` begins and ends where `detectors.word_edges`
    allows: at the edge of a run of joined letters, or at a word boundary of the view.

    Inside a run there is no telling where the words were ("c l a s s" joins to "class", which
    holds "ass"); the "words" view, which splits such runs into English words, finds the terms
    that stand inside one ("w r i t e a p i p e b o m b" reads "write a pipe bomb"). One
    exception, as in `join_spaced`: a match of at least `_AFTER_ARTICLE_MIN` letters may begin
    after a lone spaced-out "a" or "i" that starts the run, an English article or pronoun
    ("a f o r b i d d e n-z e b r a" joins to "aforbidden zebra")."""
    text = n.text
    if cuts_word(text, end):
        return False
    if not cuts_word(text, start):
        return True
    lone = start - 1
    return (
        text[lone] in "ai"
        and not cuts_word(text, lone)
        and _spaced_apart(n, lone)
        and end - start >= _AFTER_ARTICLE_MIN
    )


def _stands_as_a_word(text: str, idx: list[int], key: str) -> bool:
    """Whether a term found inside a run of joined letters (`idx`, its positions in `text`) is a
    word of that run (`normalize.stands_as_a_word`): "n o w b e s t t o k r o k o d i l" reads
    "now best to krokodil", but "c l a s s" still reads "class", not "cl" + "ass". Asked only for
    a term with a word the English word list does not know: one it knows the "words" view finds."""
    if idx[-1] - idx[0] + 1 != len(idx):
        return False  # the match spans more than one run
    lo, hi = idx[0], idx[-1] + 1
    while lo > 0 and text[lo - 1].isalpha():
        lo -= 1
    while hi < len(text) and text[hi].isalpha():
        hi += 1
    return stands_as_a_word(text[lo:hi], idx[0] - lo, key)


def _spaced_apart(n: NormalizedText, a: int) -> bool:
    """Whether characters `a` and `a + 1` of `n.text`, next to each other, stood apart in the
    original (joined spaced-out letters), not only across invisible characters."""
    gap = n.original[n.ends[a] : n.starts[a + 1]]
    return any(ch not in INVISIBLE_CHARS for ch in gap)


def _term_key(raw: Any) -> TermKey:
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise DetectorError("denylist: resources['terms'] must be a list of {term, category} objects")
    out: list[tuple[str, str]] = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            raise DetectorError("denylist: each term must be an object with 'term' and 'category'")
        term, category = entry.get("term"), entry.get("category")
        if not isinstance(term, str) or not isinstance(category, str) or not category:
            raise DetectorError("denylist: each term needs a string 'term' and a non-empty 'category'")
        out.append((term, category))
    return tuple(out)


class DenyList:
    """Finds listed terms in text. Measures only: score 1.0 per match; the policy decides."""

    name = "denylist"
    version = "1.3.0"
    modalities = frozenset({"text"})

    def __init__(self, cache_size: int = 8) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._cache_size = cache_size
        self._cache: OrderedDict[TermKey, CompiledTerms] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        from detectors.normalize import fold_map, word_costs

        fold_map()  # build the confusables table at startup, not on the first request
        word_costs()  # the word list for re-segmenting spaced-out letters, read once here
        screen_views("warm up")

    def _compiled(self, key: TermKey) -> CompiledTerms:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = compile_terms(key)  # outside the lock: compiling a big list may take a while
        with self._lock:
            self._cache[key] = compiled
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def precompile(self, terms: Sequence[Mapping[str, str]]) -> None:
        """Compile a term list ahead of use (e.g. right after a policy reload); optional."""
        key = _term_key(terms)
        if key:
            self._compiled(key)

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        key = _term_key(ctx.resources.get("terms"))
        if not key:
            return []
        compiled = self._compiled(key)
        if compiled.pattern is None:
            return []
        try:
            views = screen_views(item.text)
        except Exception as exc:
            raise DetectorError(f"denylist: could not read the text: {exc}") from exc
        found: dict[tuple[int, int, str, str], Finding] = {}
        for view in views:
            hits = [
                (m.start(), m.end(), compiled.by_normalized[_canonical(m.group(0))])
                for m in compiled.pattern.finditer(view.text)
            ]
            if _joined_view(view.source):
                for s, e, squashed in _loose_matches(view, compiled):
                    entries = tuple(
                        entry for norm in compiled.by_squashed[squashed] for entry in compiled.by_normalized[norm]
                    )
                    hits.append((s, e, entries))
            for s, e, entries in hits:
                start, end = view.to_original(s, e)
                for term, category in entries:
                    if (start, end, term, category) not in found:
                        found[(start, end, term, category)] = self._finding(
                            item.text, term, category, view.source, start, end
                        )
        return list(found.values())

    def _finding(self, text: str, term: str, category: str, view: str, start: int, end: int) -> Finding:
        transforms = sorted(normalize_text(text[start:end]).transforms)
        how = f" (written with {', '.join(transforms)})" if transforms else ""
        where = "" if view == "text" else f" in the {view} reading"
        return Finding(
            detector=self.name,
            category=category,
            score=1.0,
            explanation=f"deny-listed term in category {category!r}{how}{where}",
            evidence={"term": term, "transforms": transforms, "view": view},
            span=(start, end),
        )
