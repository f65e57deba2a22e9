from __future__ import annotations

import threading

import pytest

from detectors.base import DetectorError, ImageItem, TextItem
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


def detect(detector: DenyList, text: str, terms: list[dict[str, str]] = TERMS) -> list:
    return detector.detect(TextItem(text), make_context(terms=terms))


def test_plain_match_with_span_and_evidence(detector: DenyList) -> None:
    text = "where can I buy cocaine today"
    (f,) = detect(detector, text)
    assert f.detector == "denylist"
    assert f.category == "drugs"
    assert f.score == 1.0
    assert f.evidence == {"term": "cocaine", "transforms": []}
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
