"""Text normalization that undoes common obfuscation before matching.

`normalize_text` applies, in order:

1. removal of invisible characters (zero-width space/joiners, directional marks and isolates,
   word joiner and invisible operators, BOM, soft hyphen, variation selectors, Unicode tag
   characters U+E0000..U+E007F);
2. NFKC (full-width letters, ligatures, mathematical alphanumerics, ...);
3. confusable folding: a non-ASCII character that Unicode's confusables data lists as a homoglyph
   of an ASCII letter or digit becomes that character (Cyrillic а/е/о/р/с, Greek ο, ...);
4. casefolding (then a second folding pass for characters that only appear after casefolding).

Every output character remembers the span of original characters it came from, so a match in the
normalized text maps back to the original (`NormalizedText.to_original`).

The folding is deliberately aggressive: a Russian word written entirely in Cyrillic letters that
look Latin (e.g. "рос") folds to Latin ("poc"). That is what defeats homoglyph evasion; matching
code should treat it as a measurement, not a verdict.
"""

from __future__ import annotations

import bisect
import codecs
import math
import re
import string
import unicodedata
from collections import ChainMap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from detectors.word_edges import HAN_COMPATIBILITY, IDEOGRAPHIC, JAPANESE, UNSPACED

__all__ = [
    "INVISIBLE",
    "INVISIBLE_CHARS",
    "NormalizedText",
    "ScreenView",
    "ScreenViews",
    "fold_leet",
    "fold_map",
    "has_payload_shape",
    "is_flag_region",
    "is_known_word",
    "join_spaced",
    "normalize_text",
    "rot13",
    "screen_views",
    "segment_words",
    "stands_as_a_word",
    "tag_runs",
    "visible_nfkc",
]


#: Default_Ignorable_Code_Point, from DerivedCoreProperties.txt of the Unicode standard (the same
#: ranges in Unicode 11 to 16; the standard library has no accessor): characters a renderer shows
#: as nothing when it does not support them. Zero-width space and joiners, directional marks,
#: embeddings, overrides and isolates, the word joiner and invisible operators, the deprecated
#: format characters U+206A..206F, variation selectors (also the Mongolian free variation selectors
#: and the supplement U+E0100..E01EF), Hangul fillers, the Khmer inherent vowels U+17B4/17B5, the
#: musical symbol formatting U+1D173..1D17A, shorthand format controls, tag characters
#: (U+E0000..E007F: `tag_runs` reads the text they spell) and the unassigned rest of plane 14.
_DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
#: Format characters that the standard leaves out of Default_Ignorable_Code_Point but that show as
#: nothing in running text: the interlinear annotation anchor, separator and terminator.
_ALSO_INVISIBLE: tuple[tuple[int, int], ...] = ((0xFFF9, 0xFFFB),)


def _invisible() -> frozenset[str]:
    return frozenset(chr(p) for a, b in _DEFAULT_IGNORABLE + _ALSO_INVISIBLE for p in range(a, b + 1))


INVISIBLE_CHARS: frozenset[str] = _invisible()


def _char_class(chars: frozenset[str]) -> re.Pattern[str]:
    """A regex class of `chars` written as code point ranges (a class of single characters
    outside the BMP makes the search scan slowly)."""
    points = sorted(ord(c) for c in chars)
    ranges: list[list[int]] = []
    for cp in points:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" if b > a else re.escape(chr(a)) for a, b in ranges)
    return re.compile(f"[{body}]")


#: Any invisible character (zero-width, bidi controls, tag characters, ...).
INVISIBLE = _char_class(INVISIBLE_CHARS)


@lru_cache(maxsize=1)
def fold_map() -> dict[str, str]:
    """Map each non-ASCII confusable of an ASCII letter or digit to that (lower-case) character.

    Built once from the confusables data bundled with `confusable-homoglyphs` (Unicode's
    confusables.txt). Unicode's skeleton maps capital I to "l"; for an upper-case source
    character we read that target as "i", which is what a reader sees.
    """
    from confusable_homoglyphs.utils import load

    data: dict[str, list[dict[str, str]]] = load("confusables.json")
    out: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = sorted({h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()})
        if not targets:
            continue
        target = targets[0]
        if target == "l" and unicodedata.category(char) == "Lu":
            target = "i"
        out[char] = target.lower()
    return out


@dataclass(frozen=True)
class NormalizedText:
    """The normalized text, the original, and where each normalized character came from."""

    text: str
    original: str
    transforms: frozenset[str]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span `[start, end)` of `text` to the span of `original` it was derived from."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span ({start}, {end}) is outside the normalized text")
        return self.starts[start], self.ends[end - 1]


#: The half-width (semi-)voiced sound marks, which NFKC composes with the half-width katakana before
#: them (ｶﾞ -> ガ) although Unicode does not class them as combining marks.
_HALFWIDTH_VOICED = frozenset("\uff9e\uff9f")


def _clusters(text: str) -> list[tuple[int, int]]:
    """Split into a starter plus following combining marks (Hangul medial/final jamo, half-width
    voiced sound marks)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text):
            spans.append((start, i))
            break
        ch = text[i]
        cp = ord(ch)
        if unicodedata.combining(ch) or 0x1160 <= cp <= 0x11FF or 0xD7B0 <= cp <= 0xD7FF or ch in _HALFWIDTH_VOICED:
            continue
        spans.append((start, i))
        start = i
    return spans


def visible_nfkc(text: str, transforms: set[str] | None = None) -> tuple[list[str], list[int], list[int]]:
    """Steps 1 and 2: drop invisible characters, then NFKC per cluster so positions stay traceable.

    Returns the characters and, per character, the span of original characters it came from;
    adds "zero_width" and "nfkc" to `transforms` where they applied. Case is kept.
    """
    if transforms is None:
        transforms = set()
    kept: list[int] = []
    for i, ch in enumerate(text):
        if ch in INVISIBLE_CHARS:
            transforms.add("zero_width")
        else:
            kept.append(i)
    visible = "".join(text[i] for i in kept)
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for cs, ce in _clusters(visible) if visible else []:
        chunk = visible[cs:ce]
        norm = unicodedata.normalize("NFKC", chunk)
        if norm != chunk:
            transforms.add("nfkc")
        o_start, o_end = kept[cs], kept[ce - 1] + 1
        for out in norm:
            chars.append(out)
            starts.append(o_start)
            ends.append(o_end)
    return chars, starts, ends


#: Scripts whose accents and other combining marks are dropped for matching ("bömb", "b\u0301omb",
#: struck-through "b\u0336o\u0336m\u0336b\u0336"): a mark after a letter of these scripts or after an ASCII
#: character. Marks of other scripts (Japanese voiced sound marks, Devanagari vowel signs, ...)
#: stay, and are never decomposed.
_MARKED_SCRIPTS = ("LATIN ", "GREEK ", "CYRILLIC ")
_MARKS = frozenset(("Mn", "Me"))


@lru_cache(maxsize=4096)
def _unmarked(ch: str) -> tuple[str, bool]:
    """`ch` without its accents when it is a letter of `_MARKED_SCRIPTS` (é -> e, ά -> α, ё -> е),
    and whether combining marks after it are dropped (after such a letter or an ASCII character)."""
    if ch.isascii():
        return ch, True
    if not unicodedata.category(ch).startswith("L") or not unicodedata.name(ch, "").startswith(_MARKED_SCRIPTS):
        return ch, False
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if unicodedata.category(c) not in _MARKS)
    return (base or ch), True


@lru_cache(maxsize=1)
def _pre_fold() -> dict[int, str]:
    """Characters read as one other character before NFKC: small capitals (ʙ, ᴍ) and parenthesized,
    negative circled and negative squared Latin letters (⒝, 🅑, 🅱), which NFKC leaves alone or
    turns into "(b)", become their letter; the braille blank U+2800, which shows as a space,
    becomes one."""
    out: dict[int, str] = {0x2800: " "}
    pattern = re.compile(
        r"LATIN LETTER SMALL CAPITAL ([A-Z])|PARENTHESIZED LATIN SMALL LETTER ([A-Z])"
        r"|NEGATIVE (?:CIRCLED|SQUARED) LATIN CAPITAL LETTER ([A-Z])"
    )
    for cp in (*range(0x0250, 0x0300), *range(0x1D00, 0x1D80), *range(0x2490, 0x24EA), *range(0x1F150, 0x1F18A)):
        m = pattern.fullmatch(unicodedata.name(chr(cp), ""))
        if m is not None:
            out[cp] = next(g for g in m.groups() if g).lower()
    return out


def normalize_text(text: str) -> NormalizedText:
    """Normalize `text` for matching; see the module docstring for the steps."""
    transforms: set[str] = set()

    # 1 + 2. drop invisible characters, NFKC (after reading letters NFKC misses; one for one)
    pre = text if text.isascii() else text.translate(_pre_fold())
    chars, starts, ends = visible_nfkc(pre, transforms)
    if pre != text:
        transforms.add("nfkc")

    # 3 + 4. drop accents and combining marks (Latin, Greek, Cyrillic), fold confusables,
    # casefold, fold again
    folds = fold_map()
    f_chars: list[str] = []
    f_starts: list[int] = []
    f_ends: list[int] = []
    marked = False  # whether combining marks after the last character are dropped
    for ch, s, e in zip(chars, starts, ends, strict=True):
        if ch.isascii():
            marked = True
        elif unicodedata.category(ch) in _MARKS:
            if marked:
                transforms.add("diacritics")
                continue
        else:
            base, marked = _unmarked(ch)
            if base != ch:
                transforms.add("diacritics")
                ch = base
        folded = folds.get(ch)
        if folded is not None:
            transforms.add("homoglyph")
            ch = folded
        for low in ch.casefold():
            if low != ch and not low.isascii() and unicodedata.category(low) in _MARKS:
                transforms.add("diacritics")  # "İ" casefolds to "i" and a combining dot above
                continue
            again = folds.get(low)
            if again is not None:
                transforms.add("homoglyph")
                low = again
            f_chars.append(low)
            f_starts.append(s)
            f_ends.append(e)

    return NormalizedText(
        text="".join(f_chars),
        original=text,
        transforms=frozenset(transforms),
        starts=tuple(f_starts),
        ends=tuple(f_ends),
    )


# ---------------------------------------------------------------- screening views
#
# `normalize_text` undoes look-alike characters. Text detectors also need to see through
# spaced-out letters ("k i l l"), leetspeak ("k1ll") and payloads encoded in base64, hex or
# rot13. `screen_views` returns every reading of a text worth screening; a text detector runs
# over all of them and keeps the strongest measurement, naming the view it came from.

_LEET: dict[str, str] = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "l",
    "+": "t",
}
# A single letter standing alone, and the gaps that may separate the letters of a spaced-out word:
# one to three spaces, or one separator character with optional spaces around it. A letter of a
# script written with spaces stands alone when no such letter or digit touches it: Japanese glued
# to it does not count ("爆弾とb o m bの"), nor does "_" (a separator, "s_t_e_a_l").
_NEIGHBOUR = f"[^\\W_{UNSPACED}]"
_SINGLE = re.compile(f"(?<!{_NEIGHBOUR})[^\\W\\d_{IDEOGRAPHIC}](?!{_NEIGHBOUR})")
_GAP = re.compile(r"[ \t\u3000]{1,3}|[ \t]?[.\-_*/|,·•+~][ \t]?")
#: Letters apart by commas are often a list ("sizes S, M, L", "S, E, X"): a run with a comma gap
#: counts from this many letters ("c,o,c,a,i,n,e", "b, o, m, b").
_COMMA_RUN_MIN = 4
_MAX_SEGMENT = 200  # letters segmented at once (dynamic programming is quadratic in the word length)
_UNKNOWN_COST = 40.0  # a letter that starts no known word
_LEET_TOKEN = re.compile(r"[a-z0-9@$!|+]*[a-z][a-z0-9@$!|+]*|[a-z0-9@$!|+]*[@$!|+][a-z0-9@$!|+]*")
_LEET_NUMBER = re.compile(r"(?<![\w.,])[0134579]{1,3}(?![\w.,%])")
_WORDISH = re.compile(r"[^\W_]+")
# A base64 token: 16 characters or more, or 8 to 15 with "=" padding ("Y29jYWluZQ==").
_BASE64 = re.compile(
    r"(?<![A-Za-z0-9+/=_-])(?:[A-Za-z0-9+/_-]{16,}={0,2}|[A-Za-z0-9+/_-]{8,15}={1,2})(?![A-Za-z0-9+/=_-])"
)
# A hex token: at least 8 bytes of bare hex digits ("686f77...", "0x686f77...", bytes apart by a
# space, ":", ",", ", " or "-"), or at least 4 bytes each written with a prefix ("\x68\x6f\x77\x20",
# "0x68 0x6f 0x77 0x20", "0x68,0x6f,..."). Fewer bare bytes stay alone (colours, short ids).
_HEX = re.compile(
    r"(?<!\w)(?:0[xX])?[0-9a-fA-F]{2}(?:(?:, |[ :,\-])?[0-9a-fA-F]{2}){7,}(?!\w)"
    r"|(?<![\w\\])\\x[0-9a-fA-F]{2}(?:[ ,]{0,2}\\x[0-9a-fA-F]{2}){3,}(?![0-9a-fA-F])"
    r"|(?<!\w)0[xX][0-9a-fA-F]{2}(?:[ ,]{1,2}0[xX][0-9a-fA-F]{2}){3,}(?!\w)"
)
_HEX_PREFIX = re.compile(r"\\x|0[xX]|[^0-9a-fA-F]")
_HEX_DIGITS = re.compile(r"(?:0[xX])?[0-9]+")
# A space between two characters of Japanese script (`word_edges.JAPANESE`) or compatibility
# ideographs, which that test leaves out: on NFKC text twelve of them remain (﨑 among them), real
# ideographs; kept here as before, so no view changes.
_CJK_CHAR = f"[{JAPANESE}{HAN_COMPATIBILITY}]"
_CJK_GAP = re.compile(f"(?<={_CJK_CHAR})[ \u3000]+(?={_CJK_CHAR})")
_ROT13_HINT = re.compile(r"rot[\s\-_]?13|caesar|ebg13|ebg[\s\-_]?13")
_WORD = re.compile(r"[a-z]+")
#: Common English words: a text that reads as English rarely needs a rot13 reading.
_COMMON = frozenset(
    (  # noqa: SIM905 - a word list reads better as one string
        "the be to of and a in that have i it for not on with he as you do at this but his by from they we "
        "say her she or an will my one all would there their what so up out if about who get which go me when "
        "make can like time no just him know take people into year your good some could them see other than "
        "then now look only come its over think also back after use two how our work first well way even new "
        "want because any these give day most us is are was were been has had how write tell please explain "
        "describe create image photo picture draw painting generate show me "
    ).split()
)
#: rot13 forms of the common words ("gur", "naq", "ubj"): what a rot13 stretch is recognised by.
_ROT13_COMMON = frozenset(codecs.encode(w, "rot13") for w in _COMMON)
#: Those of two letters or more that are no common English words themselves ("or" and "be" are
#: each other's rot13; a stray "n" or "v", the n of a "\n" written out, says little).
_ROT13_HITS = frozenset(w for w in _ROT13_COMMON - _COMMON if len(w) > 1)
_ROT13_RUN_WORDS = 4  # words in a stretch of rot13 inside English text, at least
_ROT13_RUN_HITS = 2  # different rot13 forms of common words in it ("ubj", "gb"), at least
_FREQUENT = 20_000  # the most frequent English words, which a rot13 stretch turns into
_ROT13_KNOWN = 0.6  # share of a stretch's words that are frequent words once rotated, at least
_ROT13_GAIN = 0.3  # share of its words that are frequent only once rotated, at least
_MAX_DEPTH = 2  # levels of payloads decoded: a payload, and a payload inside it
#: Characters of decoded payloads and rot13 stretches read per text, all levels together. Every
#: payload and stretch found is read until this is spent, so decoys cannot push a payload out of
#: the reading: a prompt of the default size (`max_prompt_chars`, 4,000 characters) crafted to
#: spend it (thousands of tiny payloads, each with a rot13 reading; nested payloads; rot13
#: stretches) spent less than half of it when measured. A longer text can spend it; what is then
#: left unread is counted in `ScreenViews.unread`, not dropped silently.
_READ_BUDGET = 32_000
#: What one reading (a payload, its rot13 reading, a rot13 stretch) costs at least: each is
#: normalized into views that every text detector then screens, so a crowd of tiny decoys costs
#: more than its characters.
_MIN_READING = 32


@dataclass(frozen=True)
class ScreenView:
    """One reading of a text: the normalized text of the reading, what produced it, and where.

    `source` is "text" (the text itself), "spaced" (spaced-out letters joined), "words" (spaced-out
    letters joined and split into English words where the word breaks were lost), "leet"
    (leetspeak folded), "kana" (kanji terms spelled in kana written as the terms, made by
    `detectors.unsafe_text` with `detectors.kana_restore`), or "base64", "hex", "rot13" (a decoded
    payload, or for rot13 the whole text or a stretch of it; nested payloads read "base64>hex",
    "base64>rot13" and so on). `span` is the part of the original text the view comes from.
    """

    source: str
    normalized: NormalizedText
    span: tuple[int, int]

    @property
    def text(self) -> str:
        return self.normalized.text

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of `text` back to the original text; a decoded payload maps to its whole span."""
        if self.source in ("text", "spaced", "words", "leet", "kana"):
            return self.normalized.to_original(start, end)
        return self.span


class ScreenViews(tuple[ScreenView, ...]):
    """The views of a text (`screen_views`): a tuple of `ScreenView`s, and `unread`, the number of
    decoded payloads and rot13 stretches that were found but left unread, or read only in part,
    because the reading budget (`_READ_BUDGET` characters) was spent. Ordinary prompts never get
    near it; a long text crammed with payloads can: a caller that must not pass content it did not
    screen checks `overflow`."""

    unread: int

    def __new__(cls, views: Iterable[ScreenView] = (), unread: int = 0) -> ScreenViews:
        self = super().__new__(cls, views)
        self.unread = unread
        return self

    @property
    def overflow(self) -> bool:
        """Whether some encoded or rot13 content of the text was not read."""
        return self.unread > 0


Piece = tuple[int, int, str] | tuple[int, int, str, list[tuple[int, int]]]


def _rebuild(base: NormalizedText, pieces: list[Piece], transform: str) -> NormalizedText:
    """Replace spans `[s, e)` of `base.text` by strings.

    A piece may carry the original span of each replacement character; without one, a
    replacement of the same length keeps 1:1 positions and any other spans the replaced text.
    """
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for piece in sorted(pieces, key=lambda p: (p[0], p[1])):
        s, e, repl = piece[0], piece[1], piece[2]
        if s < pos:
            continue  # overlaps a piece already replaced
        chars.extend(base.text[pos:s])
        starts.extend(base.starts[pos:s])
        ends.extend(base.ends[pos:s])
        explicit = piece[3] if len(piece) == 4 else None
        if explicit is not None:
            for ch, (o_start, o_end) in zip(repl, explicit, strict=True):
                chars.append(ch)
                starts.append(o_start)
                ends.append(o_end)
        elif len(repl) == e - s:
            for k, ch in enumerate(repl):
                chars.append(ch)
                starts.append(base.starts[s + k])
                ends.append(base.ends[s + k])
        else:
            o_start, o_end = base.starts[s], base.ends[e - 1]
            for ch in repl:
                chars.append(ch)
                starts.append(o_start)
                ends.append(o_end)
        pos = e
    chars.extend(base.text[pos:])
    starts.extend(base.starts[pos:])
    ends.extend(base.ends[pos:])
    return NormalizedText(
        text="".join(chars),
        original=base.original,
        transforms=base.transforms | {transform},
        starts=tuple(starts),
        ends=tuple(ends),
    )


#: Words the segmenter must know that a Wikipedia word list lacks or splits (drugs, malware, slang).
#: The frequency rank whose cost a word added to the list gets (`EXTRA_WORDS`, and a request's own
#: terms in `segment_words`): a moderately rare word's.
_ADDED_WORD_RANK = 20_000
EXTRA_WORDS: tuple[str, ...] = tuple(
    (  # noqa: SIM905 - a word list reads better as one string
        "bioweapon bioweapons busty camgirl carfentanil chatbot creampie csam cyberbully cyberbullying ddos "
        "deepfake deepfakes dmt dox doxx doxing doxxing fentanyl handjob ieds incel jailbreak jailbreaking keylogger "
        "keyloggers lolicon loli malware mdma meth nsfw onlyfans openai ransomware ricin rohypnol rootkit sarin "
        "semtex sextortion shotacon spyware swatting tatp thinspo untraceable"
    ).split()
)


def word_costs() -> tuple[dict[str, float], int]:
    """Cost of each English word for segmentation (-log of a Zipf probability), and the longest word.

    The word list (126k words by frequency in English Wikipedia) ships in the `wordninja` wheel
    (MIT); it is read as data, so wordninja's own model is never built. `EXTRA_WORDS` are added
    at the cost of a moderately rare word (`_word_model`).
    """
    costs, longest, _ = _word_model()
    return costs, longest


@lru_cache(maxsize=1)
def _word_model() -> tuple[dict[str, float], int, float]:
    """`word_costs`, and the cost of a moderately rare word (rank `_ADDED_WORD_RANK`), which
    `EXTRA_WORDS` and the words `segment_words` adds get."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("wordninja")
    if spec is None or spec.origin is None:
        raise RuntimeError("the wordninja package (its English word list) is not installed")
    path = Path(spec.origin).parent / "wordninja" / "wordninja_words.txt.gz"
    words = [w for w in gzip.decompress(path.read_bytes()).decode("utf-8").split() if w.isalpha()]
    scale = math.log(len(words))
    costs = {w: math.log((i + 1) * scale) for i, w in enumerate(words) if w.isascii()}
    rare = math.log(_ADDED_WORD_RANK * scale)
    for w in EXTRA_WORDS:
        costs[w] = min(costs.get(w, rare), rare)
    return costs, min(30, max(len(w) for w in costs)), rare


def _spaced_groups(text: str) -> list[list[tuple[int, int]]]:
    """Groups of at least three single letters, each (start, gap end) pair one letter and its gap.

    Returns, per group, the positions of its letters as (index, end of the gap that follows it).
    """
    groups: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    commas = False  # whether a gap of the current group holds a comma
    prev_end = -1
    for m in _SINGLE.finditer(text):
        i = m.start()
        gap = text[prev_end:i]
        if current and not _GAP.fullmatch(gap):
            if len(current) >= (_COMMA_RUN_MIN if commas else 3):
                groups.append(current)
            current, commas = [], False
        elif current and "," in gap:
            commas = True
        current.append((i, i + 1))
        prev_end = i + 1
    if len(current) >= (_COMMA_RUN_MIN if commas else 3):
        groups.append(current)
    return groups


#: A single letter, or a single leet digit or symbol, standing alone ("f 0 r b i d d 3 n").
_SINGLE_LEET = re.compile(f"(?<!{_NEIGHBOUR})(?<![@$])(?:[^\\W\\d_{IDEOGRAPHIC}]|[0134579@$])(?!{_NEIGHBOUR})(?![@$])")


def unspace_leet(n: NormalizedText) -> NormalizedText:
    """Read the leet digits and symbols in runs of spaced-out single characters as the letters
    they stand for ("f 0 r b i d d 3 n" -> "f o r b i d d e n"), so that `join_spaced` can join
    the run; a run counts when it has at least three characters, at least two and at least half
    of them letters, and the leet characters stand between letters (so spaced-out numbers, "1 / 8
    0 s", "2 5 y. o.", stay numbers). Positions
    stay one to one; a text with no such run is returned as it is."""
    text = n.text
    pieces: list[Piece] = []
    run: list[int] = []
    prev_end = -1
    for m in (*_SINGLE_LEET.finditer(text), None):
        i = m.start() if m is not None else -1
        if run and (m is None or not _GAP.fullmatch(text[prev_end:i])):
            while run and not text[run[-1]].isalpha():  # a digit that ends a run is a number ("8 k 4")
                run.pop()
            while run and not text[run[0]].isalpha():  # as one that starts it ("2 5 y. o.")
                run.pop(0)
            letters = sum(1 for k in run if text[k].isalpha())
            if 3 <= letters < len(run) and letters * 2 >= len(run):
                pieces.extend((k, k + 1, _LEET[text[k]]) for k in run if not text[k].isalpha())
            run = []
        if m is not None:
            run.append(i)
            prev_end = i + 1
    if not pieces:
        return n
    return _rebuild(n, pieces, "leetspeak")


def _case_pieces(n: NormalizedText, idx: list[int]) -> list[list[int]]:
    """Split a run of spaced-out letters where the original writing puts a capital letter after
    a small one, the one word break that case still shows ("m a k e L e w i s i t e")."""
    pieces: list[list[int]] = [[]]
    for k, i in enumerate(idx):
        if k and n.original[n.starts[i]].isupper() and n.original[n.starts[idx[k - 1]]].islower():
            pieces.append([])
        pieces[-1].append(i)
    return pieces


def segment_words(letters: str, extra: Iterable[str] = ()) -> list[str]:
    """Split a run of letters into the likeliest English words, as the "words" view does, with the
    words of `extra` (a request's own terms, which the English word list may not know: "krokodil")
    known too, as moderately rare words."""
    costs, _, rare = _word_model()
    return _segment(letters, {w: min(costs.get(w, rare), rare) for w in extra if w})


def is_known_word(word: str) -> bool:
    """Whether the English word list of the "words" view knows `word`."""
    return word in word_costs()[0]


def stands_as_a_word(letters: str, at: int, term: str) -> bool:
    """Whether `term`, found at `at` inside a run of joined letters, is one of the run's words when
    the run is split into English words with `term` known too (`segment_words`): in "nowbestto
    krokodil" "krokodil" is, in "class" "ass" is not ("class" reads better than "cl" + "ass")."""
    return at in _term_positions(letters, term)


@lru_cache(maxsize=256)
def _term_positions(letters: str, term: str) -> frozenset[int]:
    # cached: every match of a term in one run asks about the same run ("krokodil" x 200, spaced)
    positions: set[int] = set()
    pos = 0
    for word in segment_words(letters, (term,)):
        if word == term:
            positions.add(pos)
        pos += len(word)
    return frozenset(positions)


def _chunks(letters: str, added: dict[str, float] | None) -> Iterator[tuple[int, int]]:
    """(start, end) of the pieces of `letters` segmented at once: `_MAX_SEGMENT` letters, a piece
    ending instead after an added word that its end would cut ("krokodil" across letter 200)."""
    lo = 0
    while lo < len(letters):
        hi = min(len(letters), lo + _MAX_SEGMENT)
        for word in added or ():
            at = letters.find(word, max(lo, hi - len(word) + 1), hi + len(word) - 1)
            if at != -1 and at < hi < at + len(word):
                hi = at + len(word)
        yield lo, hi
        lo = hi


def _segment(letters: str, added: dict[str, float] | None = None) -> list[str]:
    """Split a run of letters into the likeliest English words (Zipf costs, dynamic programming);
    `added`: more words and their costs."""
    known, longest = word_costs()
    costs = ChainMap(added, known) if added else known
    if added:
        longest = max(longest, *(len(w) for w in added))
    out: list[str] = []
    for lo, hi in _chunks(letters, added):
        chunk = letters[lo:hi]
        best: list[tuple[float, int]] = [(0.0, 0)]
        for i in range(1, len(chunk) + 1):
            cands = []
            for k in range(1, min(longest, i) + 1):
                word = chunk[i - k : i]
                cost = costs.get(word)
                if cost is None:
                    if k > 1:
                        continue
                    cost = _UNKNOWN_COST
                cands.append((best[i - k][0] + cost, k))
            best.append(min(cands))
        words: list[str] = []
        i = len(chunk)
        while i > 0:
            k = best[i][1]
            words.append(chunk[i - k : i])
            i -= k
        out.extend(reversed(words))
    return out


def join_spaced(n: NormalizedText, segment: bool = False) -> NormalizedText:
    """Join runs of spaced-out single letters: "b o m b" -> "bomb".

    Where the gaps differ ("h o w  t o  m a k e"), the wider gaps are word breaks. Where they
    are all alike ("W r i t e a s c r i p t", every word spaced out), word breaks are lost,
    except where a capital letter follows a small one ("m a k e L e w i s i t e": "make",
    "Lewisite"): by default each such piece is joined whole ("a b o m b" keeps a leading article
    apart), and with `segment=True` it is split into the likeliest English words ("write a
    script"). Every joined letter keeps its own original position; an inserted space maps to the
    gap it stands for.
    """
    text = n.text
    pieces: list[Piece] = []
    for group in _spaced_groups(text):
        idx = [i for i, _ in group]
        gaps = [text[group[k][1] : group[k + 1][0]] for k in range(len(group) - 1)]
        widths = [len(g.strip()) * 10 + len(g) for g in gaps]  # a visible separator outranks spaces
        words: list[list[int]]
        if len(set(widths)) > 1:
            narrow = min(widths)
            breaks = {k for k, w in enumerate(widths) if w > narrow}
            odd = [k for k, w in enumerate(widths) if w == narrow]
            if len(widths) >= 3 and odd in ([0], [len(widths) - 1]) and len(set(widths) - {narrow}) == 1:
                # one narrower gap at an end of a run spaced alike ("a b, o, m, b"): the letters
                # apart by the common gap are the word, the odd gap is the break
                breaks = set(odd)
            words = [[]]
            for k, i in enumerate(idx):
                words[-1].append(i)
                if k in breaks:
                    words.append([])
        elif segment:
            words = []
            for piece in _case_pieces(n, idx):
                pos = 0
                for found in _segment("".join(text[i] for i in piece)):
                    words.append(piece[pos : pos + len(found)])
                    pos += len(found)
        else:
            words = _case_pieces(n, idx)
            if len(words) == 1 and text[idx[0]] in "ai" and len(idx) >= 5:
                # "a b o m b": an English article or pronoun before a spelled-out word stays a word
                words = [idx[:1], idx[1:]]
        if len(words) == 1 and len(words[0]) == 1:
            continue
        repl: list[str] = []
        where: list[tuple[int, int]] = []
        for w, word in enumerate(words):
            if w:
                gap_start = words[w - 1][-1] + 1  # the gap between the previous word and this one
                gap_end = max(gap_start + 1, word[0])
                repl.append(" ")
                where.append((n.starts[gap_start], n.ends[gap_end - 1]))
            for i in word:
                repl.append(text[i])
                where.append((n.starts[i], n.ends[i]))
        pieces.append((idx[0], idx[-1] + 1, "".join(repl), where))
    for m in _CJK_GAP.finditer(text):
        # Japanese and Chinese put no spaces between words: a space between two ideographs or kana is padding
        pieces.append((m.start(), m.end(), ""))
    if not pieces:
        return n
    return _rebuild(n, pieces, "spacing")


def fold_leet(n: NormalizedText) -> NormalizedText:
    """Fold leetspeak inside words that mix letters with digits or symbols: "m3th" -> "meth".

    A base64 or hex payload is no leetspeak: its characters are left as they are (it is decoded
    in a view of its own). Pure numbers ("2024") and pure words are left alone, except in a text
    where leetspeak is dense (at least two mixed words and a quarter of all words): there short numbers made of
    leet digits are words too ("h0w 70 m4k3 4 b0mb": "70" is "to", "4" is "a"). Positions stay
    one to one.
    """
    tokens = list(_LEET_TOKEN.finditer(n.text))
    encoded = _payload_spans(n.original, n.starts[0], n.ends[-1]) if n.text else []
    mixed = [
        m
        for m in tokens
        if len(m.group(0)) >= 2
        and any(c in _LEET for c in m.group(0))
        and (any(c.isalpha() for c in m.group(0)) or any(c in "@$!|" for c in m.group(0)))
        and not _overlaps(encoded, n.starts[m.start()], n.ends[m.end() - 1])
    ]
    dense = len(mixed) >= 2 and len(mixed) * 4 >= len(_WORDISH.findall(n.text))
    if not dense:  # where leetspeak is rare, a token joined to a number is a model code ("5ex-100")
        mixed = [m for m in mixed if not _in_model_code(n.text, m.start(), m.end())]
    pieces: list[Piece] = []
    for m in mixed:
        folded = _fold_leet_word(m.group(0))
        if folded != m.group(0):
            pieces.append((m.start(), m.end(), folded))
    if dense:
        for m in _LEET_NUMBER.finditer(n.text):
            pieces.append((m.start(), m.end(), "".join(_LEET[c] for c in m.group(0))))
    if not pieces:
        return n
    return _rebuild(n, pieces, "leetspeak")


def _fold_leet_word(token: str) -> str:
    """A leetspeak word read as letters; "1" is "i" ("k1ll") or, where only that makes a word the
    English word list knows, "l" ("ki11", "tay1or")."""
    folded = "".join(_LEET.get(c, c) for c in token)
    if "1" in token and not is_known_word(folded):
        other = "".join("l" if c == "1" else _LEET.get(c, c) for c in token)
        if is_known_word(other):
            return other
    return folded


_ONE_LETTER_BLOCK = re.compile(r"\d*[a-z]+\d*")
_CODE_AFTER = re.compile(r"[-/]\d+(?![^\W\d_])")
_CODE_BEFORE = re.compile(r"(?<![^\W_])\d+[-/]$")


def _in_model_code(text: str, start: int, end: int) -> bool:
    """Whether the token `text[start:end]` is part of a model or part number, joined by "-" or "/"
    to a number ("5ex-100", "900-3560x45", "1/160s"): such codes are no leetspeak. Its letters
    must stand together, digits only around them; "b0mb-1" is leetspeak however it ends."""
    if _ONE_LETTER_BLOCK.fullmatch(text, start, end) is None:
        return False
    return _CODE_AFTER.match(text, end) is not None or _CODE_BEFORE.search(text, max(0, start - 40), start) is not None


def _printable_ratio(s: str) -> float:
    if not s:
        return 0.0
    good = sum(1 for c in s if c.isprintable() or c in "\n\t\r")
    return good / len(s)


def _decode_text(data: bytes) -> str | None:
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    s = s.strip()
    if len(s) < 4 or _printable_ratio(s) < 0.95 or not any(c.isalpha() for c in s):
        return None
    return s


def _decode_base64(token: str) -> str | None:
    import base64
    import binascii

    raw = token.rstrip("=")
    if len(raw) % 4 == 1 or raw.isdigit():
        return None  # impossible length, or a number
    if len(raw) < 16 and len(token) % 4:
        return None  # a short token counts only with the padding that completes it ("Y29jYWluZQ==")
    alt = "-" in raw or "_" in raw
    padded = raw + "=" * (-len(raw) % 4)
    try:
        data = base64.urlsafe_b64decode(padded) if alt else base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    decoded = _decode_text(data)
    if decoded is not None and (raw.isalpha() or len(raw) < 16) and not _reads_as_text(decoded):
        # a long word or identifier, or a short word with "=" after it, decodes to bytes at
        # random; base64 made of letters only ("bWFrZSBhIGJvbWIu") or short decodes to words
        return None
    return decoded


_TEXTY = frozenset(string.ascii_letters + string.digits + " .,;:!?'\"-()/=+\n")


def _reads_as_text(s: str) -> bool:
    """Whether decoded bytes read as ASCII words: nearly all letters, digits, spaces and common
    punctuation, at least half letters (what bytes at random seldom are)."""
    good = sum(1 for c in s if c in _TEXTY)
    return good >= 0.9 * len(s) and sum(1 for c in s if c.isascii() and c.isalpha()) >= 0.5 * len(s)


def _decode_hex(token: str) -> str | None:
    digits = _HEX_PREFIX.sub("", token)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        decoded = _decode_text(bytes.fromhex(digits))
    except ValueError:
        return None
    # hex made of digits alone (hex of base64 can be) is a number unless it is one run that reads
    # as text: numbers apart by spaces or commas ("42, 43, 44, ...") are a list
    if (
        decoded is not None
        and digits.isdigit()
        and (
            not _HEX_DIGITS.fullmatch(token)
            or not _reads_as_text(decoded)
            or (" " not in decoded and len(decoded) < 16)
        )
    ):
        return None
    return decoded


def rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def _english_ratio(text: str) -> float:
    words = _WORD.findall(text)
    if not words:
        return 0.0
    return sum(1 for w in words if w in _COMMON) / len(words)


def has_payload_shape(text: str) -> bool:
    """Whether `text` holds a token shaped like a payload `screen_views` decodes (base64, hex),
    decodable or not: a cheap test before asking for the views."""
    return _BASE64.search(text) is not None or _HEX.search(text) is not None


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether `[start, end)` overlaps one of `spans` (sorted, disjoint): only the last span that
    starts before `end` can."""
    k = bisect.bisect_left(spans, (end,))
    return k > 0 and spans[k - 1][1] > start


def _decoded_tokens(text: str) -> tuple[tuple[str, int, int, str | None], ...]:
    """(kind, start, end, decoded text or None) for each base64-shaped token of `text`, then each
    hex-shaped one; none, cheaply, for a text without such a token."""
    if not has_payload_shape(text):
        return ()
    return _decode_tokens(text)


@lru_cache(maxsize=32)
def _decode_tokens(text: str) -> tuple[tuple[str, int, int, str | None], ...]:
    # Cached: in one `screen_views` call, `fold_leet` (through `_payload_spans`, on the text of a
    # view) and `_find_payloads` (on the same text) ask for the same tokens, once each.
    out = [("base64", m.start(), m.end(), _decode_base64(m.group(0))) for m in _BASE64.finditer(text)]
    out += [("hex", m.start(), m.end(), _decode_hex(m.group(0).strip())) for m in _HEX.finditer(text)]
    return tuple(out)


def _payload_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of `text[start:end]` (as positions in `text`) holding a base64 or hex payload that
    decodes to text; none, cheaply, for a stretch without a payload-shaped token."""
    spans = [(s, e) for _, s, e, decoded in _decoded_tokens(text[start:end]) if decoded is not None]
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):  # a hex payload is base64-shaped too: merge what overlaps
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return [(start + s, start + e) for s, e in merged]


def _payloads(text: str, seen: set[str]) -> Iterator[tuple[str, int, int, str]]:
    """(kind, start, end, decoded) for the encoded payloads in `text`, base64 first. A payload
    decoded before (in `seen`, which is updated) is skipped, so copies of one decoy add nothing."""
    for kind, start, end, decoded in _decoded_tokens(text):
        if decoded is None or decoded in seen:
            continue
        seen.add(decoded)
        yield kind, start, end, decoded


def _find_payloads(text: str, seen: set[str]) -> Iterator[tuple[str, int, int, str]]:
    """The payloads of `text`, also those that show only once invisible characters are dropped
    and NFKC is applied (a zero-width space inside a base64 run, full-width letters); spans are in
    `text`. Case is kept, since base64 is case sensitive. None decoded before (`seen`, updated)."""
    yield from _payloads(text, seen)
    if text.isascii():
        return
    if INVISIBLE.search(text) is None and unicodedata.is_normalized("NFKC", text):
        return  # nothing invisible, nothing NFKC changes
    if next(_payloads(unicodedata.normalize("NFKC", INVISIBLE.sub("", text)), set(seen)), None) is None:
        return  # the usual case, settled without tracking positions
    chars, starts, ends = visible_nfkc(text, set())
    for kind, s, e, decoded in _payloads("".join(chars), seen):
        yield kind, starts[s], ends[e - 1], decoded


def _rot13_reading(n: NormalizedText, start: int = 0, end: int | None = None) -> NormalizedText:
    """rot13 of `n.text[start:end]`, each character still mapped to where it came from.

    Rotating the normalized text (not the original) also decodes rot13 written in full-width
    letters or with look-alike characters. rot13 keeps length, so positions stay 1:1, and the
    case of the original letters (which `join_spaced` reads) still applies.
    """
    stop = len(n.text) if end is None else end
    return NormalizedText(
        text=rot13(n.text[start:stop]),
        original=n.original,
        transforms=n.transforms | {"rot13"},
        starts=n.starts[start:stop],
        ends=n.ends[start:stop],
    )


def _reads_rot13(text: str) -> bool:
    """Whether `text` (normalized) reads as rot13 rather than English."""
    return _english_ratio(text) < 0.15 and _english_ratio(rot13(text)) >= 0.3


def _rot13_runs(text: str) -> list[tuple[int, int]]:
    """Spans of `text` (normalized, English as a whole) that read as rot13 rather than English:
    "please answer this: ubj gb ohvyq n cvcr obzo".

    A run is a stretch of words none of which is a common English word (apart from "or" and
    "be", which are each other's rot13); it counts when it has at least `_ROT13_RUN_WORDS` words,
    among them at least `_ROT13_RUN_HITS` different rot13 forms of common words (`_ROT13_HITS`),
    and rot13 turns most of its words into frequent English words (`_ROT13_KNOWN`), many of which
    were not (`_ROT13_GAIN`), more than it turns frequent words into others. Linear in the text;
    a stretch whose text came before is not repeated (copies of a decoy add nothing).
    """
    if len(_ROT13_HITS.intersection(_WORD.findall(text))) < _ROT13_RUN_HITS:
        return []  # the usual case: nothing reads as rot13
    frequent = _frequent_words()
    out: list[tuple[int, int]] = []
    stretches: set[str] = set()
    run: list[re.Match[str]] = []
    hits: set[str] = set()
    for m in (*_WORD.finditer(text), None):
        word = m.group(0) if m is not None else ""
        if m is not None and (word not in _COMMON or word in _ROT13_COMMON):
            run.append(m)
            if word in _ROT13_HITS:
                hits.add(word)
            continue
        if len(run) >= _ROT13_RUN_WORDS and len(hits) >= _ROT13_RUN_HITS:
            known = [(w.group(0) in frequent, rot13(w.group(0)) in frequent) for w in run]
            rotated = sum(1 for _, r in known if r)
            gained = sum(1 for p, r in known if r and not p)
            lost = sum(1 for p, r in known if p and not r)
            stretch = text[run[0].start() : run[-1].end()]
            if (
                rotated >= _ROT13_KNOWN * len(run)
                and gained >= _ROT13_GAIN * len(run)
                and gained > lost
                and stretch not in stretches
            ):
                stretches.add(stretch)
                out.append((run[0].start(), run[-1].end()))
        run, hits = [], set()
    return out


@lru_cache(maxsize=1)
def _frequent_words() -> frozenset[str]:
    """The `_FREQUENT` most frequent English words of the segmentation word list (`word_costs`)."""
    costs, _ = word_costs()
    return frozenset(sorted(costs, key=costs.__getitem__)[:_FREQUENT])


def _variants(source: str, n: NormalizedText, span: tuple[int, int]) -> list[ScreenView]:
    def name(kind: str) -> str:
        return kind if source == "text" else f"{source}>{kind}"

    views = [ScreenView(source, n, span)]
    spaced = join_spaced(n)
    if spaced.text != n.text:
        views.append(ScreenView(name("spaced"), spaced, span))
    words = join_spaced(n, segment=True)
    if words.text not in (n.text, spaced.text):
        views.append(ScreenView(name("words"), words, span))
    unspaced = unspace_leet(n)  # spaced-out leetspeak: "f 0 r b i d d 3 n"
    leet = fold_leet(words if unspaced is n else join_spaced(unspaced, segment=True))
    if leet.text not in (n.text, words.text):
        views.append(ScreenView(name("leet"), leet, span))
    return views


@dataclass
class _Budget:
    """What is left of `_READ_BUDGET` for one text, and what was left unread."""

    left: int = _READ_BUDGET
    unread: int = 0

    def take(self, size: int, readings: int = 1) -> int:
        """How many characters to read of a payload or stretch of `size` characters, read
        `readings` times: all of them; where the budget runs out, what is left of it (the rest
        counts as unread); then none."""
        cost = readings * max(size, _MIN_READING)
        if cost <= self.left:
            self.left -= cost
            return size
        self.unread += 1
        keep = min(size, self.left // readings)
        self.left = 0
        return keep if keep >= _MIN_READING else 0


def _payload_rot13(payload: NormalizedText, hinted: bool) -> bool:
    """Whether a decoded payload gets a rot13 reading: it reads as rot13, or the text asks for
    rot13 and the payload reads as no English."""
    return _WORD.search(payload.text) is not None and (
        _reads_rot13(payload.text) or (hinted and _english_ratio(payload.text) < 0.15)
    )


_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
#: The tag characters of a subdivision flag: 🏴, then its region (2 to 6 tag letters or digits,
#: "gbeng"), then the cancel tag U+E007F.
_FLAG_REGION = re.compile("[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,6}")


def is_flag_region(text: str, start: int, end: int) -> bool:
    """Whether the run of tag characters `text[start:end]` is the region of a subdivision flag
    (🏴 + "gbeng" + cancel tag), which spells no hidden message; any other run may."""
    return (
        start > 0
        and text[start - 1] == "\U0001f3f4"
        and text.startswith("\U000e007f", end)
        and _FLAG_REGION.fullmatch(text, start, end) is not None
    )


def tag_runs(text: str) -> list[tuple[int, int]]:
    """The spans of the runs of Unicode tag characters (U+E0020..U+E007E, invisible) in `text` that
    may spell hidden ASCII ("ASCII smuggling"): all but the regions of subdivision flags (the black
    flag followed by its region in tag characters and the cancel tag, 🏴 + "gbeng";
    `is_flag_region`). ASCII text costs one test."""
    if text.isascii():
        return []
    return [(m.start(), m.end()) for m in _TAG_RUN.finditer(text) if not is_flag_region(text, m.start(), m.end())]


def _tag_text(text: str) -> tuple[str, tuple[int, int]] | None:
    """The ASCII that Unicode tag characters spell in the text (`tag_runs`), and the span from the
    first to the last of them; None for fewer than 4."""
    runs = tag_runs(text)
    hidden = "".join(chr(ord(ch) - 0xE0000) for start, end in runs for ch in text[start:end])
    if len(hidden) < 4:
        return None
    return hidden, (runs[0][0], runs[-1][1])


@lru_cache(maxsize=512)
def screen_views(text: str) -> ScreenViews:
    """Every reading of `text` to screen: the normalized text, its spaced-letters-joined and
    leetspeak-folded forms (when they differ), decoded base64/hex payloads (nested up to two
    levels; also those hidden by invisible or full-width characters; with a rot13 reading where a
    payload reads as rot13), and a rot13 reading of the text when it asks for one or reads as
    rot13 rather than English, else of each stretch of it that reads as rot13 (`_rot13_runs`); and
    the ASCII spelled in invisible Unicode tag characters ("ASCII smuggling"), as a "tags" view
    whose own payloads are decoded too.

    Every payload and stretch is read, each distinct one once, in the order of the text (a level
    of nesting after the other), until `_READ_BUDGET` characters of them are read; what is left
    is counted in the result's `unread` (`ScreenViews.overflow`), never dropped silently.
    """
    base = normalize_text(text)
    views: list[ScreenView] = _variants("text", base, (0, len(text)))
    whole = (0, len(text)) if text else (0, 0)
    lowered = base.text
    hinted = _ROT13_HINT.search(lowered) is not None
    budget = _Budget()

    frontier: list[tuple[str, str, tuple[int, int]]] = [("", text, whole)]
    smuggled = _tag_text(text)
    if smuggled is not None:  # ASCII written in invisible tag characters: read like a payload
        hidden, span = smuggled
        keep = budget.take(len(hidden))
        if keep:
            views.extend(_variants("tags", normalize_text(hidden[:keep]), span))
            frontier.append(("tags", hidden[:keep], span))
    seen: set[str] = set()
    for _ in range(_MAX_DEPTH):
        nxt: list[tuple[str, str, tuple[int, int]]] = []
        for prefix, body, outer in frontier:
            for kind, s, e, decoded in _find_payloads(body, seen):
                if budget.left < _MIN_READING:
                    budget.unread += 1  # found, and counted, but no longer read
                    continue
                payload = normalize_text(decoded)
                rotated = _payload_rot13(payload, hinted)
                keep = budget.take(len(decoded), 2 if rotated else 1)
                if not keep:
                    continue
                if keep < len(decoded):
                    decoded = decoded[:keep]
                    payload = normalize_text(decoded)
                source = f"{prefix}>{kind}" if prefix else kind
                span = (s, e) if not prefix else outer
                readings = _variants(source, payload, span)
                if rotated:
                    # the likelier reading first: a reader that takes only the first few views
                    # (the sentence-embedding model of unsafe_text) should not spend one on the rot13
                    readings = _variants(f"{source}>rot13", _rot13_reading(payload), span) + readings
                views.extend(readings)
                nxt.append((source, decoded, span))
        frontier = nxt
        if not frontier:
            break

    if _WORD.search(lowered):
        if hinted or _reads_rot13(lowered):
            views.extend(_variants("rot13", _rot13_reading(base), whole))
        else:
            for s, e in _rot13_runs(lowered):
                keep = budget.take(e - s)
                if keep:
                    end = s + keep
                    views.extend(_variants("rot13", _rot13_reading(base, s, end), base.to_original(s, end)))
    return ScreenViews((v for v in views if v.text), budget.unread)
