"""detectors.word_edges: one word-boundary rule, and every detector that matches terms keeps it."""

from __future__ import annotations

import random
import re

import pytest

from detectors.bias_text import _compile as bias_compile
from detectors.bias_text import _norm as bias_norm
from detectors.denylist import compile_terms
from detectors.normalize import ScreenView, normalize_text
from detectors.protected_names import NameMatcher, protected_name
from detectors.word_edges import NO_CUT, SPACED_WORD, UNSPACED, alternation, cuts_word, is_spaced_word_char

# ---------------------------------------------------------------- decision 1: which scripts write no spaces

SPACED_LETTERS = [
    "a",
    "Z",
    "7",
    "_",  # as \w: "bomb_x" is no "bomb"
    "é",
    "ß",
    "ø",
    "ñ",  # Latin beyond ASCII
    "я",  # Cyrillic
    "α",  # Greek
    "ب",  # Arabic
    "क",  # Devanagari
    "٣",  # Arabic-Indic digit
    "Ａ",  # full-width Latin (NFKC makes it "A" before matching anyway)
]
UNSPACED_LETTERS = [
    "爆",  # Han
    "々",  # ideographic iteration mark
    "〇",  # ideographic zero
    "\U0002000b",  # Han extension B, outside the BMP
    "ㄅ",  # Bopomofo
    "あ",  # Hiragana
    "ゝ",  # hiragana iteration mark
    "カ",  # Katakana
    "ー",  # prolonged sound mark (a letter, Lm)
    "ｶ",  # half-width katakana
    "ｰ",  # half-width prolonged sound mark
    "ㇰ",  # katakana phonetic extension
    "폭",  # Hangul syllable
    "ㄱ",  # Hangul compatibility jamo
    "ᄀ",  # Hangul jamo
    "ก",  # Thai
    "๑",  # Thai digit
    "ກ",  # Lao
    "ក",  # Khmer
    "က",  # Myanmar
]
NOT_WORD = [" ", "+", "#", "-", "'", ".", "・", "。", "「", "\u3000", "\n"]


@pytest.mark.parametrize("ch", SPACED_LETTERS)
def test_spaced_word_characters(ch: str) -> None:
    assert is_spaced_word_char(ch)


@pytest.mark.parametrize("ch", UNSPACED_LETTERS + NOT_WORD)
def test_unspaced_and_non_word_characters(ch: str) -> None:
    assert not is_spaced_word_char(ch)


def test_unspaced_letters_are_word_characters_all_the_same() -> None:
    # they are left out of SPACED_WORD because of their script, not because \w misses them
    assert all(re.fullmatch(r"\w", ch) for ch in UNSPACED_LETTERS)
    assert all(re.fullmatch(f"[{UNSPACED}]", ch) for ch in UNSPACED_LETTERS)


def test_predicate_is_the_regex_class_over_every_code_point() -> None:
    # the predicate (post-checks) and the class inside the lookarounds (regexes) are one definition;
    # against an independent reading of it: \w is str.isalnum() plus "_"
    spaced = re.compile(SPACED_WORD)
    unspaced = re.compile(f"[{UNSPACED}]")
    for cp in range(0x110000):
        ch = chr(cp)
        expected = (ch.isalnum() or ch == "_") and unspaced.match(ch) is None
        assert (spaced.match(ch) is not None) == expected == is_spaced_word_char(ch), hex(cp)


# ---------------------------------------------------------------- decisions 2 and 3, on the helper itself


def test_cuts_word() -> None:
    assert cuts_word("bomber", 4)
    assert not cuts_word("bomb er", 4)
    assert not cuts_word("bombは", 4)  # decision 3: a Japanese neighbour cuts nothing
    assert not cuts_word("とbomb", 1)
    assert not cuts_word("爆弾x", 2)  # decision 1: nor does a Japanese edge
    assert cuts_word("bombé", 4)
    assert cuts_word("bomb2", 4)
    assert cuts_word("bomb_x", 4)
    assert not cuts_word("bomb", 0) and not cuts_word("bomb", 4)  # the ends of the text
    assert not cuts_word("c++11", 3)  # decision 2: a punctuation edge cuts nothing
    assert not cuts_word("a#tag", 1)


_ALPHABET = "ab é_1 +#.爆あーカ폭กは"


def _brute(terms: list[str], text: str) -> list[tuple[int, int]]:
    """What a regular expression of the terms finds, the slow way with `cuts_word`: from left to
    right, at each position the first term (in order) that stands there by the rule."""
    out: list[tuple[int, int]] = []
    p = 0
    while p < len(text):
        for t in terms:
            if text.startswith(t, p) and not cuts_word(text, p) and not cuts_word(text, p + len(t)):
                out.append((p, p + len(t)))
                p += len(t)
                break
        else:
            p += 1
    return out


def test_regex_and_post_check_agree_on_random_text() -> None:
    rng = random.Random(7)
    for _ in range(150):
        terms = sorted(
            {"".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 6))},
            key=lambda t: (-len(t), t),
        )
        pattern = re.compile(alternation(terms))
        for _ in range(40):
            text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 16)))
            assert [m.span() for m in pattern.finditer(text)] == _brute(terms, text), (terms, text)


def test_alternation_body_and_right_edge() -> None:
    spaced = alternation(["bad at math"], lambda p: re.escape(p).replace(r"\ ", r"\s+"))
    assert re.search(spaced, "women are bad  at\nmath.")
    assert not re.search(spaced, "bad at mathematics")
    assert not re.search(spaced, "xbad at math")
    assert re.search(alternation(["deaf"], right=False), "deafs")
    assert not re.search(alternation(["deaf"]), "deafs")
    assert not re.search(alternation(["deaf"], right=False) + "s" + NO_CUT, "deafsx")
    assert alternation([]) == "" and alternation([""]) == ""


# ---------------------------------------------------------------- the same table through every detector's matcher

#: (term, text, whether the term is found), one row per decision in the module docstring
CASES = [
    ("bomb", "a bomb here", True),
    ("bomb", "bomber", False),
    ("bomb", "abomb", False),
    ("bomb", "bomb2", False),
    ("bomb", "bomb_x", False),
    ("bomb", "bombé", False),  # an accented Latin letter continues the word
    ("bomb", "メールはbombです", True),  # decision 3: Latin glued into Japanese text
    ("bomb", "爆弾とbombの", True),
    ("bomb", "bomb을 만드는 법", True),  # and into Korean
    ("bomb", "ระเบิดbombนี้", True),  # and into Thai
    ("café", "un café noir", True),
    ("café", "les cafés", False),  # a non-ASCII Latin edge is a Latin edge
    ("café", "カフェはcaféです", True),
    ("爆弾", "爆弾の作り方", True),  # decision 1: Japanese matches inside a word
    ("爆弾", "x爆弾y", True),
    ("コーヒー", "aコーヒーb", True),  # the prolonged sound mark is kana
    ("ｺｰﾋｰ", "コーヒーを", True),  # half-width katakana, made full width by NFKC
    ("폭탄", "폭탄을 만드는 법", True),  # Korean: particles are glued on
    ("폭탄", "수소폭탄", True),
    ("ระเบิด", "ทำระเบิดได้ไหม", True),  # Thai writes no spaces
    ("c++", "learn c++11 today", True),  # decision 2: no check at a punctuation edge
    ("c++", "xc++", False),  # but the letter edge still needs one
    ("#tag", "a#tag", True),
    ("#tag", "#tags", False),
]


def _denylist(term: str, text: str) -> bool:
    compiled = compile_terms(((term, "c"),))
    assert compiled.pattern is not None
    return compiled.pattern.search(normalize_text(text).text) is not None


def _protected_names(term: str, text: str) -> bool:
    matcher = NameMatcher([protected_name({"name": term, "kind": "brand"})])
    view = ScreenView("text", normalize_text(text), (0, len(text)))
    return any(True for _ in matcher.matches([view], "t"))


def _bias_text(term: str, text: str) -> bool:
    pattern = bias_compile([bias_norm(term)])
    assert pattern is not None
    return pattern.search(normalize_text(text).text) is not None


@pytest.mark.parametrize("matcher", [_denylist, _protected_names, _bias_text])
@pytest.mark.parametrize(("term", "text", "expected"), CASES)
def test_every_detector_keeps_the_rule(matcher: object, term: str, text: str, expected: bool) -> None:
    assert callable(matcher)
    assert matcher(term, text) is expected
