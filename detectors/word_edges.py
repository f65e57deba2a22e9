"""Where a matched term needs a word boundary: one rule for every detector that matches listed terms.

The rule, in one sentence: **a match may not begin or end between two spaced word characters.**
A *spaced word character* is a word character (Python's ``\\w``: a letter, a digit or ``_``) of a
script that puts spaces between its words. So "bomb" is not found in "bomber", "abomb", "bomb2" or
"bomb_x", while "爆弾" is found in "爆弾の作り方" and "bomb" in "メールはbombです".

The decisions behind it, each tested in ``tests/detectors/test_word_edges.py``:

1. **Unspaced scripts** (``UNSPACED``; their characters never ask for, nor block, a boundary):
   Han (every ideograph block, compatibility ideographs, 々 〆 〇 and the other ideographic marks),
   Bopomofo, Hiragana, Katakana (with the phonetic extensions, the half-width forms, and the
   prolonged sound mark ー / ｰ, which Unicode counts as a letter), Hangul, Thai, Lao, Khmer and
   Myanmar. Japanese, Chinese, Thai, Lao, Khmer and Myanmar write no spaces between words, so a
   term in them is matched as a substring (爆弾 in 爆弾の作り方). Korean does write spaces, but
   between phrases: particles and endings are glued to the noun (폭탄을, 폭탄으로, 폭탄이다) and
   compounds are common (수소폭탄), so a word-bounded Korean term would miss nearly every real use;
   Hangul is unspaced here too (폭탄 is found in 폭탄을). The price, a short Korean term found
   inside a longer word, is the list author's to weigh (list the longer form). Every other script
   (Latin with its accented letters é ß ø, Greek, Cyrillic, Arabic, Devanagari, ...) is spaced.
2. **An edge that is no word character** ("c++", "#tag", "-ish") asks for no boundary at that
   edge: the punctuation is its own boundary, so "c++" is found in "c++11" and "#tag" in "a#tag".
3. **The neighbour**: at an edge that asks for a boundary, only a spaced word character next to
   the match refuses it. Japanese and Chinese text glue Latin words in without spaces
   ("メールはbombです", "爆弾とbombの"), so an unspaced neighbour never refuses a match; a digit or
   ``_`` does ("bomb2", "bomb_x"), as do accented Latin letters ("bombé" is no "bomb").

Two forms of the same rule, for the two ways detectors match:

- ``NO_CUT``, a zero-width regular-expression assertion, and ``alternation(terms)`` built with
  it, for detectors that match a compiled alternation (denylist, bias_text);
- ``cuts_word(text, i)``: whether position ``i`` of ``text`` lies between two spaced word
  characters, for detectors that find candidates another way and check their edges afterwards
  (protected_names, with Aho-Corasick; denylist's joined-letter matches).

Both test the same character class (``SPACED_WORD``), so they agree; tests check that on random
text, and run one table of cases through every detector's matcher.

Known limit: combining marks that NFKC cannot compose onto the letter before them (U+0301 after
"x", Devanagari vowel signs) are no ``\\w``, so they count as a word's end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = [
    "HAN",
    "HAN_COMPATIBILITY",
    "HIRAGANA_AS_KATAKANA",
    "IDEOGRAPHIC",
    "JAPANESE",
    "KANA",
    "KATAKANA",
    "KATAKANA_AS_HIRAGANA",
    "NO_CUT",
    "SPACED_WORD",
    "UNSPACED",
    "alternation",
    "cuts_word",
    "is_spaced_word_char",
]


_Ranges = tuple[tuple[int, int], ...]

_HIRAGANA: _Ranges = ((0x3040, 0x309F),)
_KATAKANA: _Ranges = ((0x30A0, 0x30FF),)  # with ー (U+30FC, prolonged sound mark)
_HAN_MAIN: _Ranges = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))  # extension A, unified ideographs
_HAN_COMPATIBILITY: _Ranges = ((0xF900, 0xFAFF),)  # compatibility ideographs

#: Code point ranges of the scripts written without spaces between words (see the module docstring).
_UNSPACED_RANGES: tuple[tuple[str, _Ranges], ...] = (
    (
        "Han",
        (
            (0x3005, 0x3007),  # 々 〆 〇
            (0x3021, 0x3029),  # Hangzhou numerals
            (0x3038, 0x303C),  # 〸 〹 〺 〻 〼
            *_HAN_MAIN,
            *_HAN_COMPATIBILITY,
            (0x20000, 0x3FFFF),  # extensions B and later, compatibility supplement (planes 2 and 3)
        ),
    ),
    ("Bopomofo", ((0x3100, 0x312F), (0x31A0, 0x31BF))),
    (
        "Kana",
        (
            (0x3031, 0x3035),  # kana repeat marks
            *_HIRAGANA,
            *_KATAKANA,
            (0x31F0, 0x31FF),  # katakana phonetic extensions
            (0xFF66, 0xFF9F),  # half-width katakana, with ｰ (U+FF70) and the voiced sound marks
            (0x1B000, 0x1B16F),  # kana supplement, extended-A, small kana
        ),
    ),
    (
        "Hangul",
        (
            (0x1100, 0x11FF),  # jamo
            (0x3130, 0x318F),  # compatibility jamo
            (0xA960, 0xA97F),  # jamo extended-A
            (0xAC00, 0xD7FF),  # syllables, jamo extended-B
            (0xFFA0, 0xFFDC),  # half-width forms
        ),
    ),
    ("Thai", ((0x0E00, 0x0E7F),)),
    ("Lao", ((0x0E80, 0x0EFF),)),
    ("Myanmar", ((0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F))),
    ("Khmer", ((0x1780, 0x17FF), (0x19E0, 0x19FF))),
)


def _class_body(ranges: _Ranges) -> str:
    """`ranges` as the body of a regular-expression character class (no brackets)."""
    return "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges)


#: The unspaced scripts as the body of a regular-expression character class (no brackets).
UNSPACED = _class_body(tuple(r for _, ranges in _UNSPACED_RANGES for r in ranges))

#: The ideographic scripts among them (Han, Bopomofo, kana) as a character-class body: a lone
#: character of these is a word, never a letter of a word spelled out with spaces (Thai, Korean
#: and the other alphabets can be spelled out so).
IDEOGRAPHIC = _class_body(
    tuple(r for script, ranges in _UNSPACED_RANGES if script in ("Han", "Bopomofo", "Kana") for r in ranges)
)

# The blocks a detector names to ask "is this text (or how much of it) Japanese?", as
# character-class bodies. Narrower than UNSPACED and IDEOGRAPHIC (no ideographic marks, phonetic
# extensions, half-width forms or ideographs beyond the Basic Multilingual Plane): such a test runs
# on the screening views, which are NFKC (half-width kana made full-width, nearly all compatibility
# ideographs made unified ones), and needs the common characters only.

#: The katakana block (U+30A0..U+30FF).
KATAKANA = _class_body(_KATAKANA)
#: The hiragana and katakana blocks (U+3040..U+30FF).
KANA = _class_body(_HIRAGANA + _KATAKANA)
#: `str.translate` tables between the letters of the two kana (ぁ..ゖ and ァ..ヶ, U+60 apart), one
#: character for one, so positions stay: a word spelled in the other kana reads as the same word.
HIRAGANA_AS_KATAKANA = str.maketrans({chr(c): chr(c + 0x60) for c in range(0x3041, 0x3097)})
KATAKANA_AS_HIRAGANA = str.maketrans({chr(c): chr(c - 0x60) for c in range(0x30A1, 0x30F7)})
#: The main ideograph blocks: extension A (U+3400..U+4DBF) and the unified ideographs (U+4E00..U+9FFF).
HAN = _class_body(_HAN_MAIN)
#: The compatibility ideographs (U+F900..U+FAFF).
HAN_COMPATIBILITY = _class_body(_HAN_COMPATIBILITY)
#: Japanese script as the detectors test for it: kana and the main ideograph blocks, and the 64
#: Yijing hexagram symbols (U+4DC0..U+4DFF, no Japanese) between extension A and the unified
#: ideographs, which the lists this replaced held by writing U+3400..U+9FFF as one range; kept so
#: that no result changes.
JAPANESE = KANA + HAN + _class_body(((0x4DC0, 0x4DFF),))

#: One spaced word character: a word character (``\w``) of no unspaced script.
SPACED_WORD = f"[^\\W{UNSPACED}]"

#: A zero-width assertion: no word is cut here, the characters on both sides are not both spaced
#: word characters (`cuts_word`). Put before and after a term, it refuses a match only at an edge
#: where the term itself has a spaced word character, so one check before and one after an
#: alternation serve all its terms. That keeps a list of thousands of terms quick to compile (the
#: character class is compiled per occurrence, a few milliseconds each) and to search (lookarounds
#: per term are tried for every term at every position of the text: thirty times slower).
NO_CUT = f"(?!(?<={SPACED_WORD}){SPACED_WORD})"

_SPACED_WORD = re.compile(SPACED_WORD)


def is_spaced_word_char(ch: str) -> bool:
    """Whether `ch` (one character) is a word character of a script that writes spaces between words."""
    return _SPACED_WORD.match(ch) is not None


def cuts_word(text: str, i: int) -> bool:
    """Whether position `i` of `text` (between `text[i - 1]` and `text[i]`) lies between two spaced
    word characters, where a match may neither begin nor end. The ends of the text cut nothing."""
    return 0 < i < len(text) and is_spaced_word_char(text[i - 1]) and is_spaced_word_char(text[i])


def alternation(terms: Iterable[str], body: Callable[[str], str] = re.escape, *, right: bool = True) -> str:
    """A regular expression matching any of `terms` where `cuts_word` allows its edges, trying the
    terms in their order (put the longest first); "" for no terms.

    `body` writes one term as a regular expression (default `re.escape`), for callers that match
    it more loosely (any white space for a space); what it writes must begin and end with the
    term's own first and last characters. With `right=False` the check after the terms is left
    out, for a caller that puts more after them, and `NO_CUT` after that.
    """
    alts = [body(t) for t in terms if t]
    if not alts:
        return ""
    return f"{NO_CUT}(?:{'|'.join(alts)}){NO_CUT if right else ''}"
