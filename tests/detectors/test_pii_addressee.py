"""Names heading a postal address block are people; firms and headings in that place are not."""

from __future__ import annotations

import numpy as np
import pytest
from spacy.strings import get_string_id

from detectors.base import TextItem
from detectors.pii import DEFAULT_MODELS, ENGLISH_EXCLUDE, PresidioPII
from detectors.pii_addressee import ADDRESSEE_SCORE, addressee_spans, firm_line
from detectors.pii_spacy import load_pipeline
from detectors.pii_truecase import Truecaser
from detectors.testing import make_context

LABEL = (
    ">Gyala Antall\n>Google Public Data Explorer\n>Gyala Antall\n>3369 24 Clarke Avenue\n>Apt. 805\n>New Zealand 34694"
)


@pytest.fixture(scope="module")
def frequencies() -> Truecaser:
    truecaser = Truecaser.from_vectors(load_pipeline(DEFAULT_MODELS["en"], ENGLISH_EXCLUDE).vocab)
    assert truecaser is not None
    return truecaser


@pytest.fixture(scope="module")
def detector() -> PresidioPII:
    d = PresidioPII()
    d.load()
    return d


def _names(text: str, frequencies: Truecaser | None) -> list[str]:
    return [text[start:end] for start, end in addressee_spans(text, frequencies)]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (LABEL, ["Gyala Antall", "Gyala Antall"]),  # both name lines; the company line is no name
        ("Satu Elomo\n\n45818 P.O. Box 242\n Suite 787\n Kangerlussuaq", ["Satu Elomo"]),
        ("Billing address: Noelle Martinsson\n    1593 Pagari 18 Suite 932\n   Põlluküla", ["Noelle Martinsson"]),
        ("Ship to: Willemine ten Pas\n12 Kerkstraat\nSuite 4\n1017 Amsterdam", ["Willemine ten Pas"]),
        ("> Fletcher Hill\n> 3654 Brixtonlaan 380\n> Suite 727\n> Belgium 42940", ["Fletcher Hill"]),  # Hill: a word
    ],
)
def test_names_heading_an_address_block(frequencies: Truecaser, text: str, names: list[str]) -> None:
    assert _names(text, frequencies) == names


@pytest.mark.parametrize(
    "text",
    [
        "Chocolate Cake\n200 g flour\n2 eggs\n1 cup sugar",  # no address: a recipe
        "Customer Service\n12 Market Street\nSuite 5",  # ordinary words: a department
        "Rand Corporation\n\n213 Pilekrogen 53 Apt. 263, Grand-Leez, Belgium 18431",  # a firm's word
        "Anna Berg\n12 monkeys were seen\nin the zoo",  # a number line that no address sign confirms
        "Anna Berg lives at 12 Baker Street, London",  # one line: the NER's business
        "Barnett, Melton and Garcia\n770 26 rue Thomazo\nApt. 735",  # a list of partners
        "Anna Berg\nThe plan\nhas\nmany steps\n12 Baker Street",  # the street line is too far
        "Menu\nCaesar Salad\n12 croutons and dressing\nServe in place of bread",  # "place": no designator here
        "Poster layout\nNeon Genesis\n3 panels, each one close-up",
        "Anna Berg\r\n12 rooms\r\n" + "x" * 50_000,  # a long line with no address sign
    ],
)
def test_lines_that_head_no_address_or_name_no_person(frequencies: Truecaser, text: str) -> None:
    assert _names(text, frequencies) == []


def test_without_frequencies_only_the_shape_counts() -> None:
    assert "Google Public Data Explorer" in _names(LABEL, None)


def test_frequencies_decide_which_words_are_ordinary() -> None:
    order = ["the", "data", "Data", "Fletcher", "hill", "Hill", "fletcher"]
    keys = np.array([get_string_id(w) for w in order], dtype=np.uint64)
    table = Truecaser(keys, np.arange(len(keys)))
    assert table.ordinary(["Data", "Fletcher", "Hill", "Qzxv"]) == [True, False, True, False]
    text = ">Data Hill\n>Fletcher Hill\n>3654 Brixtonlaan 380\n>Suite 727"
    assert _names(text, table) == ["Fletcher Hill"]


def test_addressees_are_person_findings(detector: PresidioPII) -> None:
    text = "Please send the samples to\n\nDuqyaha Karataev\n\n3657 Laukaantie 80\n Apt. 030\n KOKKOLA\n\n Finland 11507"
    found = detector.detect(TextItem(text), make_context())
    people = [(text[f.span[0] : f.span[1]], f.score) for f in found if f.evidence["entity_type"] == "PERSON" and f.span]
    assert ("Duqyaha Karataev", ADDRESSEE_SCORE) in people


@pytest.mark.parametrize(
    ("text", "word", "firm"),
    [
        (
            "> Elizabeth Hanson\n> Flightaware\n> Elizabeth Hanson\n> 077 Mellemstræde 74\n> Apt. 316",
            "Flightaware",
            True,
        ),
        ("Best,\nJohn\n12 Main Street\nSpringfield 12345", "John", False),  # a signature, not under a name
        (
            "> Elizabeth Hanson\n> Flightaware\n> Elizabeth Hanson\n> 077 Mellemstræde 74",
            "Elizabeth",
            False,
        ),  # two words
        ("Flightaware\nis where I work", "Flightaware", False),  # no address follows
        ("Ask Flightaware\n12 Baker Street\nSuite 5", "Flightaware", False),  # not alone on its line
    ],
)
def test_single_words_alone_on_a_line_of_an_address_block_are_firms(text: str, word: str, firm: bool) -> None:
    start = text.index(word)
    assert firm_line(text, start, start + len(word)) is firm


def test_long_lines_and_many_lines_cost_linear_time(frequencies: Truecaser) -> None:
    import time

    letters = "Anna Berg\n12 Pagari 18\n" + "x" * 50_000
    many = "Ab Cd\n" * 20_000
    started = time.perf_counter()
    assert _names(letters, frequencies) == [] and _names(many, frequencies) == []
    assert time.perf_counter() - started < 5.0  # seconds; the quadratic versions took 13 s and more


def test_windows_line_endings(frequencies: Truecaser) -> None:
    text = "Satu Elomo\r\n\r\n45818 P.O. Box 242\r\n Suite 787\r\n Kangerlussuaq"
    assert _names(text, frequencies) == ["Satu Elomo"]
