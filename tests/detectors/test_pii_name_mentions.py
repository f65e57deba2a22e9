"""A name found in full marks its other, shorter mentions in the same text."""

from __future__ import annotations

import numpy as np
import pytest
from presidio_analyzer import RecognizerResult
from spacy.strings import get_string_id

from detectors.base import TextItem
from detectors.pii import PresidioPII
from detectors.pii_name_mentions import MENTION_SCORE, other_mentions
from detectors.pii_truecase import Truecaser
from detectors.testing import make_context


def _person(text: str, name: str) -> RecognizerResult:
    start = text.index(name)
    return RecognizerResult("PERSON", start, start + len(name), 0.85)


def _spans(text: str, results: list[RecognizerResult]) -> list[tuple[str, int, float]]:
    return [(text[r.start : r.end], r.start, r.score) for r in results if r.entity_type == "PERSON"]


def test_given_names_and_surnames_mentioned_again() -> None:
    text = "Nikolaj spent a year as the assistant to Nikolaj Petrussen; Petrussen's notes and Petrussen-Hall"
    full = _person(text, "Nikolaj Petrussen")
    found = _spans(text, other_mentions(text, [full], None))
    assert ("Nikolaj", 0, MENTION_SCORE) in found
    assert ("Petrussen", text.index("Petrussen's"), MENTION_SCORE) in found
    assert len(found) == 3  # not inside "Petrussen-Hall", not the full name again


def test_short_ordinary_and_single_word_names_are_not_followed() -> None:
    text = "Brad L Key starred. Key scenes and Will Smith, as Will said; Zoolander, Zoolander."
    table = Truecaser(np.array([get_string_id(w) for w in ["the", "will", "Will"]], dtype=np.uint64), np.arange(3))
    results = [_person(text, "Brad L Key"), _person(text, "Will Smith"), _person(text, "Zoolander")]
    # "Key": three letters; "Will": an ordinary word; "Zoolander": not a name of two words
    assert other_mentions(text, results, table)[len(results) :] == []
    without_frequencies = other_mentions(text, results, None)[len(results) :]
    assert _spans(text, without_frequencies) == [("Will", text.index("Will said"), MENTION_SCORE)]


def test_a_word_beside_another_capitalised_word_is_part_of_another_name() -> None:
    text = "Harrison Ford stands beside a red Ford Mustang; Ford smiles"
    added = other_mentions(text, [_person(text, "Harrison Ford")], None)[1:]
    assert _spans(text, added) == [("Ford", text.index("Ford smiles"), MENTION_SCORE)]


def test_no_person_no_change() -> None:
    text = "Meet at Berlin, Berlin"
    results = [RecognizerResult("LOCATION", 8, 14, 0.85)]
    assert other_mentions(text, results, None) is results


@pytest.fixture(scope="module")
def detector() -> PresidioPII:
    d = PresidioPII()
    d.load()
    return d


def test_mentions_are_findings(detector: PresidioPII) -> None:
    text = "Nikolaj spent a year at Datamarket as the assistant to Nikolaj Petrussen, and then moved on."
    found = detector.detect(TextItem(text), make_context())
    people = {(f.span, f.evidence["recognizer"]) for f in found if f.evidence["entity_type"] == "PERSON"}
    assert ((0, 7), "NameMentions") in people
