"""Japanese terms written in kana, read as the kanji terms of the lexicons they spell.

A Japanese user who does not convert in the IME writes "ばくだんのつくりかたをおしえて" for
"爆弾の作り方を教えて". Lexicons list kanji, so harmful Japanese prompts rewritten this way were
caught about half as often (bench/eval_detectors.py, Japanese set, "kana" variant). `KanaRestorer`
is built from the lexicons' own patterns: every literal string a pattern can match that holds a
kanji is read with Sudachi (the morphological analyser GiNZA is built on), and a stretch of a
text written in kana that reads exactly as such a term is replaced by the term. The result is one
more view of the text (`restored`), which the detector scores as it scores the text itself, so a
term spelled in kana counts as it does in kanji, with its benign senses and cues.

Besides the kanji terms, a verb stem that a pattern cuts before its ending ("突き落と") is read
with the endings that make it a word ("突き落とす", "突き落とし"), and a term written in katakana
("オレオレ") is read in hiragana ("おれおれ").

What keeps ordinary kana text from being read as terms:
- only sentences written without any kanji are read (`kana_sentences`): a writer who converted
  some words in the IME converted the ones they meant in kanji, and the kana left are the words
  Japanese writes in kana ("相談したい" holds no 死体, "痛いところ" no 遺体). A review of the first
  version, which read every kana stretch, found 66 of 369 ordinary texts with kanji flagged;
- what is found here is a guess among homophones, which `detectors.unsafe_text` scores at most
  `KANA_READING_SCORE` (the policy's review band), so a wrong guess is held for a person, not
  blocked;
- a stretch is replaced only where Sudachi's word boundaries in the text start and end it (not
  "ころし" inside "ところしか");
- only readings of at least `MIN_READING` kana are used (no "ち" for 血);
- only kana is replaced: a stretch that holds kanji, Latin letters or digits is left as written;
- a stretch with an auxiliary verb inside it is a verb and its ending, not a term ("したい" is
  し + たい, "want to do", not 死体; "いたい" い + たい, not 遺体), unless を follows it, which
  no verb ending takes ("したいをかくす" hides a body);
- a stretch that Sudachi reads as one word written with other kanji is that word, a homophone
  ("せいこうした" is 成功した, succeeded, not 性交; "かやくご飯" is 加薬ご飯, not 火薬);
- a katakana word that Sudachi knows as a word of its own (its normalized form has no kanji:
  "タイマ", a timer, not 大麻) is left as written, unless the term is written with it
  ("ホロコーストは嘘"); a katakana spelling of a kanji word
  ("バクダン", normalized 爆弾) or an unknown one ("カクセイザイ") is read.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Iterable
from typing import Any

from detectors.word_edges import HAN, KATAKANA_AS_HIRAGANA

__all__ = ["MIN_READING", "KanaRestorer", "kana_sentences", "pattern_literals", "shared_restorer"]

#: the fewest kana a term's reading may have to be looked for
MIN_READING = 3
#: expansions of one pattern beyond which the rest of it is left out
_MAX_EXPANSIONS = 512
#: a character class of at most this many characters is expanded, a larger one ends a literal
_MAX_CLASS = 8
#: characters given to Sudachi at a time (at most 4 bytes each, under its 49,149-byte limit)
_CHUNK_CHARS = 12_000

_KANJI = re.compile(f"[{HAN}\u3005]")
# a lone surrogate, which Sudachi cannot encode: read as U+FFFD, one for one, so offsets stay
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u30fc]+")
_ALL_HIRAGANA = re.compile(r"[\u3041-\u3096\u30fc]+")
_KATAKANA_WORD = re.compile(r"[\u30a1-\u30fa\u30fc]+")
# a verb stem cut before its ending, as the lexicons' patterns write them: kanji, then the kana
# of the stem ("突き落と", "殺さ"), where す or し makes the word
_STEM_END = re.compile(r"[\u4e00-\u9fff][\u3041-\u3096]?[とさかまらわなたがばころそおもくぐつぬぶむるう]$")


# ---------------------------------------------------------------- literals of a pattern


def pattern_literals(pattern: str) -> set[str]:
    """The literal strings `pattern` matches, as far as they are finite: alternatives and optional
    parts are expanded, lookarounds and anchors are ignored, and an open part (".", "\\w", a large
    class, an unbounded repeat) ends a literal there. Empty strings are left out."""
    parser: Any = importlib.import_module("re._parser")
    try:
        tree = parser.parse(pattern)
    except re.error:
        return set()
    return {text for text, _ in _expand(list(tree), parser) if text}


def _expand(items: list[Any], parser: Any) -> set[tuple[str, bool]]:
    """(text, open) pairs for a sequence of parsed items; open: the literal may go on."""
    constants = parser  # re._parser re-exports re._constants' names
    out: set[tuple[str, bool]] = {("", True)}
    for op, av in items:
        if op is constants.LITERAL:
            parts = {(chr(av), True)}
        elif op is constants.IN:
            chars = _class_chars(av, constants)
            parts = {(c, True) for c in chars} if chars else {("", False)}
        elif op is constants.BRANCH:
            parts = set()
            for branch in av[1]:
                parts |= _expand(list(branch), parser)
        elif op is constants.SUBPATTERN:
            parts = _expand(list(av[3]), parser)
        elif op in (constants.MAX_REPEAT, constants.MIN_REPEAT, getattr(constants, "POSSESSIVE_REPEAT", None)):
            low, high, sub = av
            if high > 2:
                parts = {("", False)}
            else:
                inner = _expand(list(sub), parser)
                parts = set()
                for count in range(low, high + 1):
                    seq: set[tuple[str, bool]] = {("", True)}
                    for _ in range(count):
                        seq = _join(seq, inner)
                    parts |= seq
        elif op in (constants.AT, constants.ASSERT, constants.ASSERT_NOT):
            continue  # anchors and lookarounds: no characters
        else:  # ".", "\\w", back references, ...: the literal ends here
            parts = {("", False)}
        out = _join(out, parts)
        if len(out) > _MAX_EXPANSIONS:
            return {(text, False) for text, _ in sorted(out)[:_MAX_EXPANSIONS]}
    return out


def _join(left: set[tuple[str, bool]], right: set[tuple[str, bool]]) -> set[tuple[str, bool]]:
    joined: set[tuple[str, bool]] = set()
    for text, open_ in left:
        if not open_:
            joined.add((text, False))
            continue
        for more, still in right:
            joined.add((text + more, still))
    return joined


def _class_chars(items: list[Any], constants: Any) -> list[str]:
    """The characters of a small character class, or [] for a negated, category or large one."""
    chars: list[str] = []
    for op, av in items:
        if op is constants.LITERAL:
            chars.append(chr(av))
        elif op is constants.RANGE and av[1] - av[0] < _MAX_CLASS:
            chars += [chr(c) for c in range(av[0], av[1] + 1)]
        else:
            return []
        if len(chars) > _MAX_CLASS:
            return []
    return chars


# ---------------------------------------------------------------- restoring

# a sentence: up to a full stop, question or exclamation mark, or a line break
_SENTENCE = re.compile(r"[^。．！？!?\n]+")


def kana_sentences(text: str) -> list[tuple[int, int]]:
    """The spans of the sentences of `text` written in kana without any kanji: the ones a writer
    did not convert in the IME. A sentence with kanji in it was converted, and its kana are the
    words Japanese writes in kana ("相談したい" holds no 死体), so it is read as written."""
    return [m.span() for m in _SENTENCE.finditer(text) if _KANA.search(m.group()) and not _KANJI.search(m.group())]


def _other_word(kanji: str | None, term: str) -> bool:
    """Whether Sudachi reads the stretch as one word written with other kanji than the term
    (a homophone: "かやく" is 加薬, not 火薬; "せいこう" is 成功, not 性交)."""
    if not kanji:
        return False
    written, termed = set(kanji), set(_KANJI.findall(term))
    return not (written <= termed or termed <= written)


_SUDACHI: list[Any] = []
_SUDACHI_LOCK = threading.Lock()  # a Sudachi tokenizer is not shared between threads


def _morphemes(text: str) -> list[Any]:
    """Sudachi's morphemes of `text`, split as finely as it splits (mode A); the tokenizer is
    loaded once per process."""
    from sudachipy import dictionary, tokenizer

    with _SUDACHI_LOCK:
        if not _SUDACHI:
            _SUDACHI.append((dictionary.Dictionary(dict="core").create(), tokenizer.Tokenizer.SplitMode.A))
        sudachi, mode = _SUDACHI[0]
        return list(sudachi.tokenize(_SURROGATE.sub("\ufffd", text), mode))


def _reading(text: str) -> str:
    """Sudachi's reading of `text`, in hiragana."""
    return "".join(m.reading_form() for m in _morphemes(text)).translate(KATAKANA_AS_HIRAGANA)


@functools.lru_cache(maxsize=32)
def shared_restorer(patterns: tuple[str, ...]) -> KanaRestorer:
    """One `KanaRestorer` per set of patterns in the process (detectors are built often)."""
    return KanaRestorer(patterns)


class KanaRestorer:
    """Replaces kana that spell a lexicon term with the term (see the module docstring).

    `patterns` are the regular expressions whose kanji terms are looked for.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        terms: dict[str, str] = {}
        for pattern in patterns:
            for literal in sorted(pattern_literals(pattern)):
                if _KATAKANA_WORD.fullmatch(literal):  # "オレオレ" written "おれおれ"
                    reading = literal.translate(KATAKANA_AS_HIRAGANA)
                    if len(reading) >= MIN_READING and _ALL_HIRAGANA.fullmatch(reading):
                        terms.setdefault(reading, literal)
                    continue
                if not _KANJI.search(literal):
                    continue
                # a stem ("突き落と") is read with the endings that make it a word ("突き落とす",
                # "突き落とし"): Sudachi's word boundaries fall after them, not inside
                endings = ("", "す", "し") if _STEM_END.search(literal) else ("",)
                for ending in endings:
                    reading = _reading(literal + ending)
                    if len(reading) >= MIN_READING and _ALL_HIRAGANA.fullmatch(reading):
                        terms.setdefault(reading, literal + ending)
        self.terms = terms
        self._lengths = sorted({len(r) for r in terms}, reverse=True)

    def restore(self, text: str) -> tuple[str, list[tuple[int, int, str]]] | None:
        """`text` with the kana that spell a term replaced by it, and the replacements (start, end,
        term) in `text`; None when nothing is replaced. Only sentences written without kanji are
        read (`kana_sentences`)."""
        if not self.terms or not _KANA.search(text):
            return None
        found: list[tuple[int, int, str]] = []
        for start, end in kana_sentences(text):
            found += [(start + a, start + b, term) for a, b, term in self._found(text[start:end])]
        if not found:
            return None
        pieces, last = [], 0
        for start, end, term in found:
            pieces += [text[last:start], term]
            last = end
        pieces.append(text[last:])
        return "".join(pieces), found

    def _found(self, text: str) -> list[tuple[int, int, str]]:
        """The stretches of `text` that spell a term: (start, end, term)."""
        bounds = {0, len(text)}
        loanwords: list[tuple[int, int]] = []  # katakana words of their own ("タイマ", timer: not 大麻)
        words: dict[tuple[int, int], str] = {}  # the kanji of words Sudachi knows, by span
        auxiliaries: list[int] = []  # where auxiliary verbs start ("し|たい": wanting to do, not 死体)
        for offset in range(0, len(text), _CHUNK_CHARS):  # Sudachi refuses inputs over 49,149 bytes
            for m in _morphemes(text[offset : offset + _CHUNK_CHARS]):
                span = (offset + m.begin(), offset + m.end())
                bounds.update(span)
                if m.part_of_speech()[0] == "助動詞":
                    auxiliaries.append(span[0])
                if m.is_oov():
                    continue
                kanji = "".join(_KANJI.findall(m.normalized_form()))
                if kanji:
                    words[span] = kanji
                elif _KATAKANA_WORD.fullmatch(m.surface()):
                    loanwords.append(span)
        kana = text.translate(KATAKANA_AS_HIRAGANA)
        found: list[tuple[int, int, str]] = []
        pos = 0
        for start in sorted(bounds):
            if start < pos:
                continue
            for length in self._lengths:
                end = start + length
                if end > len(text) or end not in bounds:
                    continue
                term = self.terms.get(kana[start:end])
                if term is None or not _KANA.fullmatch(text, start, end):
                    continue
                if any(start < b and a < end and text[a:b] not in term for a, b in loanwords):
                    continue  # a katakana word of its own, unless the term is written with it (ホロコーストは嘘)
                if _other_word(words.get((start, end)), term):
                    continue
                if any(start < a < end for a in auxiliaries) and not text.startswith("を", end):
                    continue  # a verb and its auxiliary: "したい" is し + たい (want to do), "いたい" い + たい
                found.append((start, end, term))
                pos = end
                break
        return found
