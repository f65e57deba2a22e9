"""Names written in lowercase: PresidioPII reads a truecased copy of text without capitals."""

from __future__ import annotations

import numpy as np
import pytest
import spacy
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts
from spacy.strings import get_string_id

from detectors.base import TextItem
from detectors.pii import DEFAULT_MODELS, ENGLISH_EXCLUDE, PresidioPII
from detectors.pii_recognizers import in_street_address
from detectors.pii_spacy import load_pipeline
from detectors.pii_truecase import (
    TruecasedNlpArtifacts,
    Truecaser,
    TruecasingNlpEngine,
    is_sentence_cased,
    is_uncased,
)
from detectors.testing import make_context

# words in order of frequency, most frequent first, as a vector table would hold them
FREQUENCY_ORDER = ["the", "beach", "Beach", "Brian", "I", "i", "Apple", "apple", "brian", "Nyberg"]


def _persons(detector: PresidioPII, text: str) -> list[str]:
    found = detector.detect(TextItem(text), make_context())
    return [text[f.span[0] : f.span[1]] for f in found if f.span and f.evidence["entity_type"] == "PERSON"]


@pytest.fixture(scope="module")
def detector() -> PresidioPII:
    d = PresidioPII()
    d.load()
    return d


@pytest.fixture(scope="module")
def without_truecasing() -> PresidioPII:
    d = PresidioPII(truecase=False)
    d.load()
    return d


@pytest.fixture(scope="module")
def sentence_case() -> PresidioPII:
    d = PresidioPII(truecase_sentence_case=True)
    d.load()
    return d


def _truecaser(ratio: float) -> Truecaser:
    keys = np.array([get_string_id(w) for w in FREQUENCY_ORDER], dtype=np.uint64)
    return Truecaser(keys, np.arange(len(keys)), ratio)


def test_truecaser_capitalises_words_much_more_frequent_capitalised() -> None:
    words = ["i", "met", "brian", "on", "the", "beach", "with", "an", "apple", "and", "nyberg", "qzxv", "-"]
    cased = _truecaser(2.0).truecase(words)
    # Brian ranks 3 against 8, I 4 against 5 (not twice as frequent), Nyberg is known capitalised only;
    # beach is more frequent than Beach, Apple not twice as frequent as apple, qzxv unknown in both forms
    assert cased == ["i", "met", "Brian", "on", "the", "beach", "with", "an", "apple", "and", "Nyberg", "qzxv", "-"]
    assert _truecaser(1.0).truecase(["i", "apple"]) == ["I", "Apple"]
    assert [len(w) for w in cased] == [len(w) for w in words]


def test_ordinary_words_are_much_more_frequent_in_lowercase() -> None:
    table = _truecaser(2.0)
    # beach ranks 1 against Beach 2; apple 7 against Apple 6; Nyberg is known capitalised only
    assert table.ordinary(["Beach", "Apple", "Nyberg", "Qzxv"]) == [True, False, False, False]
    assert table.ordinary(["Beach"], ratio=2.0) == [False]  # not twice as frequent
    assert table.ordinary([]) == []


def test_truecaser_ratio_is_checked() -> None:
    with pytest.raises(ValueError, match="ratio"):
        _truecaser(0.5)
    with pytest.raises(ValueError, match="truecase_ratio"):
        PresidioPII(truecase_ratio=0.5)


def test_truecaser_from_the_pipeline_vectors() -> None:
    truecaser = Truecaser.from_vectors(load_pipeline(DEFAULT_MODELS["en"], ENGLISH_EXCLUDE).vocab)
    assert truecaser is not None
    sentence = "they had 6 : leonti , terrence , brian and a horse on the beach with an apple"
    words = sentence.split(" ")
    cased = truecaser.truecase(words)
    assert [w for w, c in zip(words, cased, strict=True) if w != c] == ["leonti", "terrence", "brian"]


def test_no_truecaser_without_frequency_ordered_vectors() -> None:
    assert Truecaser.from_vectors(spacy.blank("en").vocab) is None


@pytest.mark.parametrize(
    ("text", "uncased", "sentence_cased"),
    [
        ("my name is john smith", True, True),
        ("Hi, my name is john smith. I live in leeds", False, True),
        ("A man riding a horse.", False, True),
        ("Let Jane drive", False, False),
        ("1234 !", False, False),
        ("佐藤花子", False, False),
    ],
)
def test_which_texts_are_truecased(text: str, uncased: bool, sentence_cased: bool) -> None:
    assert is_uncased(text) is uncased
    assert is_sentence_cased(text) is sentence_cased


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "they had 6: leonti, terrence, pamela, donna, andrea and brian.",
            ["leonti", "terrence", "pamela", "donna", "andrea", "brian"],
        ),
        ("hi, this is frank freud, call me back", ["frank freud"]),
        ("she was born on 8/5/1989. her maiden name is nyberg", ["nyberg"]),  # naming cue, truecased
    ],
)
def test_lowercase_names_are_found_with_exact_spans(
    detector: PresidioPII, without_truecasing: PresidioPII, text: str, names: list[str]
) -> None:
    assert _persons(detector, text) == names
    assert _persons(without_truecasing, text) != names  # the NER alone misses some of them


@pytest.mark.parametrize(
    "text",
    [
        "a man riding a horse on a beach",
        "a bowl of apple slices next to a rose on a table",
        "may i ask will about the mark on the bill?",
        "they met on alameda street",
    ],
)
def test_lowercase_text_without_names_has_no_person(detector: PresidioPII, text: str) -> None:
    assert _persons(detector, text) == []


def test_street_designators_count_uncapitalised_after_a_lowercase_name() -> None:
    text = "they met on alameda street"
    assert in_street_address(text, 12, 19)
    assert not in_street_address("Let Jane drive", 4, 8)


def test_engine_hands_the_truecased_copy_to_recognizers() -> None:
    english = load_pipeline(DEFAULT_MODELS["en"], ENGLISH_EXCLUDE)
    engine = TruecasingNlpEngine(english, None, NerModelConfiguration(), "en", Truecaser.from_vectors(english.vocab))
    text = "her maiden name is nyberg, she met brian"
    artifacts = engine.process_text(text, "en")
    assert isinstance(artifacts, TruecasedNlpArtifacts)
    assert artifacts.truecased_text == "her maiden name is Nyberg, she met Brian"
    assert len(artifacts.truecased_text) == len(text)
    persons = {(e.start_char, e.end_char) for e in artifacts.entities if e.label_ == "PERSON"}
    assert (35, 40) in persons  # brian, at its place in the text
    for cased in ("Her maiden name is nyberg", "a man riding a horse on a beach"):  # capitals; nothing to capitalise
        assert type(engine.process_text(cased, "en")) is NlpArtifacts


def test_sentence_case_option(detector: PresidioPII, sentence_case: PresidioPII) -> None:
    text = "Hi, my name is brian and i need help with my order"
    assert _persons(detector, text) == []
    assert _persons(sentence_case, text) == ["brian"]
