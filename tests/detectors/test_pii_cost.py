"""Crafted text costs the PII detector time in proportion to its length (each spaCy pipeline is
used under one lock per process, so one slow prompt stalls every other request that needs it).

No timing is asserted: the checks count the work done (positions where presidio's URL pattern is
tried, comparisons in `_resolve_overlaps`) or compare with presidio's own matching."""

from __future__ import annotations

import random
from typing import Any

import pytest
from presidio_analyzer.predefined_recognizers import UrlRecognizer

from detectors import pii_recognizers
from detectors.pii import _resolve_overlaps
from detectors.pii_recognizers import URL_PATTERNS, in_firm_name, latin_view_recognizer, url_match_starts

SHAPES = ["a.", "ab.", "a.b.", "a-", "1.", "www.", "'a.", "http://a."]


def _url() -> Any:
    return latin_view_recognizer("UrlRecognizer", "en")


def test_presidio_url_patterns_are_the_ones_whose_starts_are_known() -> None:
    assert {p.name for p in UrlRecognizer.PATTERNS} == URL_PATTERNS
    assert pii_recognizers._URL_TLD_HIT is not None  # the top-level domains were read from presidio's pattern


@pytest.mark.parametrize("unit", SHAPES)
@pytest.mark.parametrize("tail", ["", " x.com", "x.com", "a.co/path"])
def test_url_pattern_is_tried_only_where_a_url_can_start(unit: str, tail: str) -> None:
    """presidio's URL pattern, tried at every position of "a."*2000, scans 253 characters and tests
    ~500 top-level domains at each dot before failing (3 s). Only positions up to 253 host
    characters before a dot and a top-level domain are tried: none without one, and at most 254
    per domain found (one run of host characters)."""
    text = unit * 4000 + tail
    starts = url_match_starts(text)
    tried = sum(len(positions) for positions in starts.values())
    assert pii_recognizers._URL_TLD_HIT is not None
    hits = len(pii_recognizers._URL_TLD_HIT.findall(text))  # ".ht" in "a.http://" is Haiti's
    assert tried <= 4 * 254 * hits
    assert len(starts["Non schema URL"]) <= min(len(text), 254 * hits + text.count("www."))
    if hits == 0:  # "a."*4000, "www."*4000: no position is tried, nothing is found
        assert tried == 0
        assert _url().analyze(text, ["URL"]) == []


def test_url_matches_are_presidios() -> None:
    """Matching only at `url_match_starts` finds what presidio's URL recognizer finds."""
    presidio, mamori = UrlRecognizer(), _url()
    pieces = [*"aco.m/ w'\"-1:hTtpsW.ij", "www.", "http://", "https://", ".com", ".Co", ".jp", ".cards", "/x"]
    rng = random.Random(7)
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 50)))
        expected = sorted((r.start, r.end, r.score) for r in presidio.analyze(text, ["URL"]))
        assert sorted((r.start, r.end, r.score) for r in mamori.analyze(text, ["URL"])) == expected, text


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("see https://example.com/a?b=1 now", "https://example.com/a?b=1"),
        ("see www.example.co.jp.", "www.example.co.jp"),
        ("a." * 300 + " x.com", "x.com"),
        ("'http://x.org'", "'http://x.org'"),
    ],
)
def test_urls_are_still_found(text: str, url: str) -> None:
    spans = [(r.start, r.end) for r in _url().analyze(text, ["URL"])]
    start = text.index(url)
    assert (start, start + len(url)) in spans


class _Result:
    def __init__(self, entity_type: str, start: int, end: int, score: float) -> None:
        self.entity_type, self.start, self.end, self.score = entity_type, start, end, score


def _old_resolve(results: list[_Result]) -> list[_Result]:
    """`_resolve_overlaps` as it was: every result compared with every other one."""
    merged: list[_Result] = []
    for r in sorted(results, key=lambda r: (r.entity_type, r.start, r.end)):
        last = merged[-1] if merged else None
        if last is not None and last.entity_type == r.entity_type and r.start < last.end:
            best = r if r.score > last.score else last
            best.start, best.end = min(last.start, r.start), max(last.end, r.end)
            merged[-1] = best
        else:
            merged.append(r)
    return [
        r
        for r in merged
        if not any(
            o is not r
            and o.start <= r.start
            and r.end <= o.end
            and (o.score > r.score or (o.score == r.score and (o.end - o.start) > (r.end - r.start)))
            for o in merged
        )
    ]


def test_resolve_overlaps_keeps_what_it_kept() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        spec = [
            (rng.choice("ABC"), a, a + rng.randint(0, 6), rng.choice([0.4, 0.5, 1.0]))
            for a in (rng.randint(0, 20) for _ in range(rng.randint(0, 8)))
        ]
        old = [(r.entity_type, r.start, r.end, r.score) for r in _old_resolve([_Result(*q) for q in spec])]
        new = [(r.entity_type, r.start, r.end, r.score) for r in _resolve_overlaps([_Result(*q) for q in spec])]
        assert new == old, spec


class _CountingScore:
    """A score that counts how often it is compared."""

    comparisons = 0

    def __init__(self, value: float) -> None:
        self.value = value

    def __gt__(self, other: _CountingScore) -> bool:
        _CountingScore.comparisons += 1
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        _CountingScore.comparisons += 1
        return isinstance(other, _CountingScore) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def test_resolve_overlaps_compares_each_result_with_its_neighbours_only() -> None:
    """1,500 names found in "山田さん"*1000 (a JP_PERSON and a PERSON on each) took 2.25 M
    comparisons; now each result meets only those still open at its start."""
    results = []
    for i in range(1500):
        results.append(_Result("JP_PERSON", 4 * i, 4 * i + 2, _CountingScore(0.55)))  # type: ignore[arg-type]
        results.append(_Result("PERSON", 4 * i, 4 * i + 2, _CountingScore(0.85)))  # type: ignore[arg-type]
    _CountingScore.comparisons = 0
    kept = _resolve_overlaps(results)
    assert [r.entity_type for r in kept] == ["PERSON"] * 1500
    assert _CountingScore.comparisons < 20 * len(results)


def test_firm_name_check_reads_a_long_word_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list of partners starts at a word's start, and words are matched possessively: a run of
    word characters is not scanned again from each of its characters (2.7 ms per name found in
    "山田さん"*1000). The pattern is not quadratic in the length of a word."""
    text = "山田さん" * 1000
    assert not in_firm_name(text, 4000, 4002)
    word = "a" * 2000
    for pattern in (pii_recognizers._FIRM_LIST_NOUN, pii_recognizers._FIRM_LIST_LINE):
        assert pattern.search(word + ", Bob and Carol") is None or pattern is pii_recognizers._FIRM_LIST_LINE
    assert pii_recognizers._FIRM_LIST_NOUN.search("Clark, Romero and Hall Orchestra")
    assert not pii_recognizers._FIRM_LIST_NOUN.search("x" * 5000 + " and Hall")


def test_context_token_lookup_is_presidios_scan() -> None:
    """`token_index` finds, for every offset of a text, the token presidio's linear scan finds, and
    fails where presidio's does (past the last token)."""
    import spacy
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts

    from detectors.pii_context import token_index

    nlp = spacy.blank("en")
    rng = random.Random(7)
    words = ["call", "212-555-0187", "SSN:", "536-22-1234", ",", "  ", "\n", "ok.", "山田さん", "e-mail"]
    for _ in range(20):
        text = "".join(rng.choice(words) + rng.choice(["", " ", "  "]) for _ in range(rng.randint(1, 30)))
        doc = nlp(text)
        art = NlpArtifacts([], doc, [t.idx for t in doc], [t.lemma_ for t in doc], None, "en")  # type: ignore[arg-type]
        for start in range(len(text) + 2):
            try:
                expected: int | None = LemmaContextAwareEnhancer._find_index_of_match_token(
                    "w", start, doc, art.tokens_indices
                )
            except ValueError:
                expected = None
            try:
                got: int | None = token_index(art, start)
            except ValueError:
                got = None
            assert got == expected, (text, start)


def test_context_enhancer_scores_as_presidios(default_pii: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's analyzer uses the bisecting enhancer, and its scores are those of presidio's
    own enhancer on text where context words raise a score; the token lookup is not a scan of the
    text per result (presidio's scan is made to fail)."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    from detectors.base import TextItem
    from detectors.pii_context import BisectContextEnhancer
    from detectors.testing import make_context

    analyzer = default_pii._analyzer
    assert isinstance(analyzer.context_aware_enhancer, BisectContextEnhancer)
    texts = [
        "Please call my phone number 212-555-0187 tomorrow, my SSN is 536-22-1234.",
        "Account number 12345678 and card 4111 1111 1111 1111, passport 912803456.",
        "電話は03-1234-5678、郵便番号は100-0001です。" * 40,
    ]

    def readings() -> list[list[tuple[str, tuple[int, int] | None, float]]]:
        return [
            [
                (f.evidence["entity_type"], f.span, round(f.score, 6))
                for f in default_pii.detect(TextItem(text=t), make_context())
            ]
            for t in texts
        ]

    def scan(*args: Any) -> int:
        raise AssertionError("presidio's per-result token scan ran")

    with monkeypatch.context() as patched:
        patched.setattr(LemmaContextAwareEnhancer, "_find_index_of_match_token", staticmethod(scan))
        ours = readings()
    analyzer.context_aware_enhancer = LemmaContextAwareEnhancer()
    try:
        theirs = readings()
    finally:
        analyzer.context_aware_enhancer = BisectContextEnhancer()
    assert ours == theirs
    assert len(ours[2]) >= 80  # the long text's numbers were all found
