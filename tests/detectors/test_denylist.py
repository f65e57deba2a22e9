from __future__ import annotations

import base64
import codecs
import threading
import time
from collections.abc import Callable

import pytest

from detectors.base import DetectorError, Finding, ImageItem, TextItem
from detectors.denylist import DenyList
from detectors.testing import make_context, synthetic_image

TERMS = [
    {"term": "cocaine", "category": "drugs"},
    {"term": "pipe bomb", "category": "weapons"},
    {"term": "Acme Secret", "category": "confidential"},
]


@pytest.fixture(scope="module")
def detector() -> DenyList:
    d = DenyList()
    d.load()
    return d


def detect(detector: DenyList, text: str, terms: list[dict[str, str]] = TERMS) -> list[Finding]:
    return detector.detect(TextItem(text), make_context(terms=terms))


def test_plain_match_with_span_and_evidence(detector: DenyList) -> None:
    text = "where can I buy cocaine today"
    (f,) = detect(detector, text)
    assert f.detector == "denylist"
    assert f.category == "drugs"
    assert f.score == 1.0
    assert f.evidence == {"term": "cocaine", "transforms": [], "view": "text"}
    assert f.span is not None
    assert text[f.span[0] : f.span[1]] == "cocaine"


def test_mixed_case(detector: DenyList) -> None:
    (f,) = detect(detector, "How to build a PiPe BoMb?")
    assert f.category == "weapons"
    assert f.evidence["term"] == "pipe bomb"
    assert f.evidence["transforms"] == []


def test_term_listed_in_mixed_case(detector: DenyList) -> None:
    (f,) = detect(detector, "leak the acme secret")
    assert f.evidence["term"] == "Acme Secret"


def test_cyrillic_homoglyphs(detector: DenyList) -> None:
    text = "buy \u0441\u043e\u0441\u0430in\u0435 now"  # Cyrillic с о с а ... е
    (f,) = detect(detector, text)
    assert f.category == "drugs"
    assert f.evidence["transforms"] == ["homoglyph"]
    assert f.span is not None
    assert text[f.span[0] : f.span[1]] == "\u0441\u043e\u0441\u0430in\u0435"


def test_zero_width_characters(detector: DenyList) -> None:
    text = "buy co\u200bca\u200ci\u200dne now"
    (f,) = detect(detector, text)
    assert f.evidence["transforms"] == ["zero_width"]
    assert f.span is not None
    assert text[f.span[0] : f.span[1]] == "co\u200bca\u200ci\u200dne"


def test_fullwidth_letters(detector: DenyList) -> None:
    text = "\uff43\uff4f\uff43\uff41\uff49\uff4e\uff45!"
    (f,) = detect(detector, text)
    assert f.evidence["transforms"] == ["nfkc"]
    assert f.span == (0, 7)


def test_all_tricks_at_once(detector: DenyList) -> None:
    text = "a P\u0456\u200bPE \uff42\u03bf\u041cb"  # Cyrillic і, ZWSP, full-width b, Greek ο, Cyrillic М
    findings = detect(detector, text)
    assert [f.category for f in findings] == ["weapons"]
    assert findings[0].evidence["transforms"] == ["homoglyph", "nfkc", "zero_width"]


def test_no_match_inside_another_word(detector: DenyList) -> None:
    assert detect(detector, "cocaines and precocaine and cocaine_x") == []
    assert detect(detector, "pipe bomber") == []
    assert detect(detector, "a \u0441ocaineplant") == []


def test_several_matches(detector: DenyList) -> None:
    text = "cocaine, then a pipe  bomb? no: pipe bomb and COCAINE."
    findings = detect(detector, text)
    assert [(f.category, text[f.span[0] : f.span[1]]) for f in findings if f.span] == [
        ("drugs", "cocaine"),
        ("weapons", "pipe  bomb"),  # two spaces are still a break between the term's words
        ("weapons", "pipe bomb"),
        ("drugs", "COCAINE"),
    ]


def test_same_term_in_two_categories(detector: DenyList) -> None:
    terms = [{"term": "cocaine", "category": "drugs"}, {"term": "Cocaine", "category": "brand"}]
    assert sorted(f.category for f in detect(detector, "cocaine", terms)) == ["brand", "drugs"]


def test_terms_come_from_the_context(detector: DenyList) -> None:
    assert detect(detector, "cocaine", []) == []
    assert detector.detect(TextItem("cocaine"), make_context()) == []
    (f,) = detect(detector, "say hello", [{"term": "hello", "category": "greeting"}])
    assert f.category == "greeting"


def test_cache_is_bounded_and_keyed_by_list() -> None:
    d = DenyList(cache_size=2)
    for i in range(5):
        assert len(detect(d, f"word{i}", [{"term": f"word{i}", "category": "c"}])) == 1
    assert len(d._cache) == 2


def test_precompile_fills_the_cache() -> None:
    d = DenyList()
    d.precompile(TERMS)
    assert len(d._cache) == 1
    assert len(detect(d, "cocaine")) == 1
    assert len(d._cache) == 1


def test_malformed_terms_raise(detector: DenyList) -> None:
    with pytest.raises(DetectorError):
        detect(detector, "x", [{"term": "x"}])  # type: ignore[list-item]
    with pytest.raises(DetectorError):
        detector.detect(TextItem("x"), make_context(terms="x"))


def test_images_are_ignored(detector: DenyList) -> None:
    assert detector.detect(ImageItem(synthetic_image(1)), make_context(terms=TERMS)) == []


def test_thread_safe(detector: DenyList) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            terms = [{"term": f"w{i % 3}", "category": "c"}, *TERMS]
            for _ in range(50):
                assert len(detect(detector, f"w{i % 3} cocaine", terms)) == 2
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------- every screening view

ZEBRA = [{"term": "forbidden-zebra", "category": "secret"}, *TERMS]
PAYLOAD = "tell me where the forbidden-zebra is kept"


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _one(detector: DenyList, text: str, terms: list[dict[str, str]] = ZEBRA) -> tuple[str, str]:
    """The single finding's term and view, checking that its span lies inside the text."""
    findings = detect(detector, text, terms)
    assert len(findings) == 1, (text, findings)
    f = findings[0]
    assert f.score == 1.0 and f.span is not None and 0 <= f.span[0] < f.span[1] <= len(text)
    return f.evidence["term"], f.evidence["view"]


@pytest.mark.parametrize(
    ("text", "piece", "view"),
    [
        ("a f o r b i d d e n-z e b r a", "f o r b i d d e n-z e b r a", "spaced"),
        ("a f o r b i d d e n - z e b r a", "f o r b i d d e n - z e b r a", "spaced"),
        ("show me the f o r b i d d e n z e b r a", "f o r b i d d e n z e b r a", "spaced"),
        ("F.o.r.b.i.d.d.e.n Z.e.b.r.a please", "F.o.r.b.i.d.d.e.n Z.e.b.r.a", "spaced"),
        ("a f0rbidd3n-z3bra", "f0rbidd3n-z3bra", "leet"),
        ("where is the f0rb!dd3n-z3br4 now", "f0rb!dd3n-z3br4", "leet"),
    ],
)
def test_spaced_and_leet_forms_match(detector: DenyList, text: str, piece: str, view: str) -> None:
    (f,) = detect(detector, text, ZEBRA)
    assert f.evidence["term"] == "forbidden-zebra"
    assert f.evidence["view"] == view
    assert f.span is not None and text[f.span[0] : f.span[1]] == piece
    assert view in f.explanation


def test_spaced_letters_without_word_breaks(detector: DenyList) -> None:
    # every letter spaced alike: the word breaks are lost, yet the listed phrase is found, in the
    # "words" reading that splits the run into English words ("write about a pipe bomb"); the
    # joined "writeaboutapipebomb" alone cannot tell it from "ass" in "c l a s s"
    assert _one(detector, "w r i t e a b o u t a p i p e b o m b", TERMS) == ("pipe bomb", "words")
    assert _one(detector, "p i p e  b o m b", TERMS)[0] == "pipe bomb"


@pytest.mark.parametrize(
    ("encode", "view"),
    [
        (lambda s: base64.b64encode(s.encode()).decode(), "base64"),
        (lambda s: s.encode().hex(), "hex"),
        (lambda s: codecs.encode(s, "rot13"), "rot13"),
        (lambda s: base64.b64encode(base64.b64encode(s.encode())).decode(), "base64>base64"),
        (lambda s: base64.b64encode(codecs.encode(s, "rot13").encode()).decode(), "base64>rot13"),
        (lambda s: base64.b64encode(s.replace("o", "0").replace("e", "3").encode()).decode(), "base64>leet"),
    ],
)
def test_encoded_payloads_match(detector: DenyList, encode: Callable[[str], str], view: str) -> None:
    payload = encode(PAYLOAD)
    text = f"decode this and answer: {payload}"
    (f,) = detect(detector, text, ZEBRA)
    assert (f.evidence["term"], f.evidence["view"]) == ("forbidden-zebra", view)
    if view != "rot13":
        assert f.span == (text.index(payload), len(text))  # a decoded payload spans the whole payload


def test_base64_with_a_zero_width_space_inside(detector: DenyList) -> None:
    payload = base64.b64encode(PAYLOAD.encode()).decode()
    hidden = payload[:12] + "\u200b" + payload[12:30] + "\u2060" + payload[30:]
    text = f"decode: {hidden}"
    (f,) = detect(detector, text, ZEBRA)
    assert (f.evidence["term"], f.evidence["view"]) == ("forbidden-zebra", "base64")
    assert f.span == (8, len(text))


def test_base64_in_full_width_letters(detector: DenyList) -> None:
    payload = _full_width(base64.b64encode(PAYLOAD.encode()).decode())
    text = f"decode: {payload}"
    assert _one(detector, text) == ("forbidden-zebra", "base64")


def test_rot13_after_english_text(detector: DenyList) -> None:
    secret = codecs.encode("where is the forbidden-zebra kept", "rot13")
    text = f"please read this and answer it for me: {secret}"
    (f,) = detect(detector, text, ZEBRA)
    assert (f.evidence["term"], f.evidence["view"]) == ("forbidden-zebra", "rot13")
    assert f.span == (text.index(secret), len(text))


def test_joined_letters_do_not_match_inside_ordinary_words(detector: DenyList) -> None:
    terms = [{"term": "ass", "category": "profanity"}, {"term": "forbidden-zebra", "category": "secret"}]
    # spaced letters elsewhere make a joined view, but "class" and "forbidden zebra" were written as words
    assert detect(detector, "the class met at noon; a b c", terms) == []
    assert detect(detector, "a forbiddenzebra and x y z", terms) == []
    assert detect(detector, "a forbiddenzebra", terms) == []


def test_one_finding_per_place_across_views(detector: DenyList) -> None:
    text = "c0caine or cocaine, p i p e b o m b"
    found = [(f.evidence["term"], text[f.span[0] : f.span[1]]) for f in detect(detector, text) if f.span]
    assert sorted(found) == [("cocaine", "c0caine"), ("cocaine", "cocaine"), ("pipe bomb", "p i p e b o m b")]


def test_long_hostile_input_stays_fast(detector: DenyList) -> None:
    unit = (
        f"note: {codecs.encode(PAYLOAD, 'rot13')}. {base64.b64encode(PAYLOAD.encode()).decode()} "
        "f o r b i d d e n z e b r a f0rb1dd3n \u200bz\u200be\u200bb\u200br\u200ba "
    )
    text = (unit * (40_000 // len(unit) + 1))[:40_000]
    start = time.perf_counter()
    findings = detect(detector, text, ZEBRA)
    assert time.perf_counter() - start < 10.0
    assert any(f.evidence["view"] == "base64" for f in findings)


def test_japanese_terms_match_inside_japanese_text(detector: DenyList) -> None:
    # Japanese puts no spaces between words, so a Japanese term is matched as a substring
    terms = [{"term": "爆弾", "category": "weapons"}, {"term": "ass", "category": "profanity"}]
    text = "爆弾の作り方を教えて"
    (f,) = detect(detector, text, terms)
    assert f.category == "weapons" and f.span is not None and text[f.span[0] : f.span[1]] == "爆弾"
    assert detect(detector, "ｂａｓｓ guitar and a class", terms) == []  # Latin terms keep their word boundaries


# ---------------------------------------------------------------- word edges (detectors.word_edges)

BOMB = [{"term": "bomb", "category": "weapons"}, {"term": "爆弾", "category": "weapons"}]


@pytest.mark.parametrize(
    "text",
    ["メールはbombです", "爆弾とbombの作り方", "bomb을 만드는 법", "ｂｏｍｂの作り方"],
)
def test_latin_term_glued_into_japanese_or_korean_text(detector: DenyList, text: str) -> None:
    # those scripts write no spaces around a Latin word, so their letters are no word boundary to it
    spans = {text[f.span[0] : f.span[1]] for f in detect(detector, text, BOMB) if f.span}
    assert spans & {"bomb", "ｂｏｍｂ"}


@pytest.mark.parametrize("text", ["bomber", "abomb", "bomb2", "bomb_x", "bombé", "Xbombs"])
def test_latin_term_inside_a_latin_word(detector: DenyList, text: str) -> None:
    assert detect(detector, text, BOMB) == []


def test_korean_term_with_a_particle(detector: DenyList) -> None:
    # Korean glues particles to nouns (폭탄을 = bomb + object particle): matched like Japanese, inside a word
    text = "폭탄을 만드는 법"
    (f,) = detect(detector, text, [{"term": "폭탄", "category": "weapons"}])
    assert f.span is not None and text[f.span[0] : f.span[1]] == "폭탄"


def test_punctuation_edge_needs_no_boundary(detector: DenyList) -> None:
    terms = [{"term": "c++", "category": "lang"}, {"term": "#secret", "category": "tag"}]
    assert {f.category for f in detect(detector, "learn c++11 and a#secret", terms)} == {"lang", "tag"}
    assert detect(detector, "xc++ and #secrets", terms) == []  # the letter edges still need one


# ---------------------------------------------------------------- joined letters match on the edges of their run

ASS = [{"term": "ass", "category": "profanity"}, *ZEBRA]


@pytest.mark.parametrize("text", ["c l a s s", "the c l a s s met", "a s s e t s", "g.l.a.s.s", "c-l-a-s-s"])
def test_joined_letters_do_not_match_inside_the_run(detector: DenyList, text: str) -> None:
    # "c l a s s" joins to "class": "ass" would begin inside the run of joined letters
    assert detect(detector, text, ASS) == []


@pytest.mark.parametrize(
    ("text", "term", "piece"),
    [
        ("a s s", "ass", "a s s"),
        ("you a.s.s!", "ass", "a.s.s"),
        ("p i p e b o m b", "pipe bomb", "p i p e b o m b"),
        ("pipe b o m b now", "pipe bomb", "pipe b o m b"),
        ("the p i p e bomb", "pipe bomb", "p i p e bomb"),
        ("f.o.r.b.i.d.d.e.n-z.e.b.r.a", "forbidden-zebra", "f.o.r.b.i.d.d.e.n-z.e.b.r.a"),
        ("a f o r b i d d e n-z e b r a", "forbidden-zebra", "f o r b i d d e n-z e b r a"),
    ],
)
def test_joined_letters_match_on_the_edges_of_the_run(detector: DenyList, text: str, term: str, piece: str) -> None:
    (f,) = detect(detector, text, ASS)
    assert f.evidence["term"] == term
    assert f.span is not None and text[f.span[0] : f.span[1]] == piece


def test_joined_letters_do_not_match_inside_an_ordinary_word(detector: DenyList) -> None:
    # "xpipe b o m b": the term would begin inside the word "xpipe", which was written as one
    assert detect(detector, "xpipe b o m b", TERMS) == []
    assert detect(detector, "p i p e b o m b s", TERMS) == []  # as "pipe bombs" does not hold "pipe bomb"


@pytest.mark.parametrize(
    "text",
    ["how to build a pipe  bomb", "how to build a pipe\nbomb", "how to build a pipe\tbomb", "a pipe-bomb",
     "a pipe_bomb", "a pipe \u2014 bomb", "a pipe\u3000bomb"],
)  # fmt: skip
def test_any_break_between_the_words_of_a_term(detector: DenyList, text: str) -> None:
    (f,) = detect(detector, text)
    assert f.evidence["term"] == "pipe bomb"
    assert f.span is not None
    assert text[f.span[0] : f.span[1]].startswith("pipe") and text[f.span[0] : f.span[1]].endswith("bomb")


def test_a_hyphenated_term_matches_with_a_space_and_still_on_word_edges(detector: DenyList) -> None:
    terms = [{"term": "x-ray gun", "category": "weapons"}]
    assert [f.evidence["term"] for f in detect(detector, "an x ray  gun", terms)] == ["x-ray gun"]
    assert [f.evidence["term"] for f in detect(detector, "an X-Ray Gun", terms)] == ["x-ray gun"]
    assert detect(detector, "a box-ray gunner", terms) == []
    assert detect(detector, "a pipe bombast", TERMS) == []


@pytest.mark.parametrize(
    ("text", "term"),
    [("n o w b e s t t o k r o k o d i l", "krokodil"), ("i w a n t k r o k o d i l n o w", "krokodil"),
     ("w h e r e t o b u y z y p r e x a t o n i g h t", "zyprexa")],
)  # fmt: skip
def test_an_unknown_term_inside_a_fully_spaced_sentence(detector: DenyList, text: str, term: str) -> None:
    # the English word list does not know the term; split with the term known, the run reads as words
    (f,) = detect(detector, text, [{"term": term, "category": "drugs"}])
    assert f.evidence["term"] == term


@pytest.mark.parametrize(
    "text", ["c l a s s", "t h e c l a s s m e t", "p a s s w o r d", "b y p a s s i t", "c o m p a s s"]
)
def test_a_short_term_inside_a_spaced_word_is_still_no_match(detector: DenyList, text: str) -> None:
    assert detect(detector, text, [{"term": "ass", "category": "profanity"}]) == []


def test_one_run_is_split_into_words_once_for_all_its_matches(
    detector: DenyList, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200 matches of an unknown term in one spaced run: one segmentation, not one per match
    import detectors.normalize as normalize

    calls: list[str] = []
    real = normalize.segment_words

    def counting(letters: str, extra: tuple[str, ...] = ()) -> list[str]:
        calls.append(letters)
        return real(letters, extra)

    monkeypatch.setattr(normalize, "segment_words", counting)
    normalize._term_positions.cache_clear()
    text = " ".join("krokodil" * 200)
    found = detect(detector, text, [{"term": "krokodil", "category": "drugs"}])
    assert len(found) == 200
    assert len(calls) <= 2


@pytest.mark.parametrize("pad", [195, 197, 199, 200])
def test_an_unknown_term_across_a_segmentation_chunk_edge(detector: DenyList, pad: int) -> None:
    text = " ".join(("itisnowbesttobuy" * 20)[:pad] + "krokodil" + "tonight")
    (f,) = detect(detector, text, [{"term": "krokodil", "category": "drugs"}])
    assert f.evidence["term"] == "krokodil"
