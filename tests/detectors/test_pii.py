"""PresidioPII finds personal data offline and never exposes the values."""

from __future__ import annotations

import socket

import pytest

from detectors.base import ImageItem, TextItem
from detectors.pii import DEFAULT_MODELS, ENGLISH_EXCLUDE, PresidioPII, _resolve_overlaps
from detectors.pii_recognizers import (
    card_number_plausible,
    in_firm_name,
    in_street_address,
    is_card_number,
    is_place,
    is_thing,
    luhn_valid,
    ordinary_words,
)
from detectors.pii_spacy import load_pipeline
from detectors.pii_truecase import Truecaser
from detectors.testing import assert_no_pii, make_context, synthetic_image

TEXT = (
    "Hi, I am John Smith. Email me at john.smith@example.com or call 212-555-0187. "
    "My card number is 4111 1111 1111 1111."
)
VALUES = {
    "PERSON": "John Smith",
    "EMAIL_ADDRESS": "john.smith@example.com",
    "PHONE_NUMBER": "212-555-0187",
    "CREDIT_CARD": "4111 1111 1111 1111",
}


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network access is blocked in this test")


def _block_network(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(socket.socket, "connect", _no_network)
    mp.setattr(socket.socket, "connect_ex", _no_network)
    mp.setattr(socket, "getaddrinfo", _no_network)


@pytest.fixture(scope="module")
def detector() -> PresidioPII:
    with pytest.MonkeyPatch.context() as mp:  # loading must not need the network either
        _block_network(mp)
        d = PresidioPII()
        d.load()
    return d


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_network(monkeypatch)


def test_network_is_really_blocked() -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_finds_email_phone_person_card_with_spans(detector: PresidioPII) -> None:
    findings = detector.detect(TextItem(TEXT), make_context())
    by_type = {f.evidence["entity_type"]: f for f in findings}
    for entity, value in VALUES.items():
        f = by_type[entity]
        assert f.detector == "pii"
        assert f.category == "pii"
        assert 0.0 < f.score <= 1.0
        start = TEXT.index(value)
        assert f.span == (start, start + len(value)), entity
    assert_no_pii(findings, VALUES.values())
    for f in findings:
        assert set(f.evidence) == {"entity_type", "recognizer"}


def test_email_domain_is_validated_offline(detector: PresidioPII) -> None:
    findings = detector.detect(TextItem("write to jane@example.co.uk, not jane@example.invalidtld"), make_context())
    emails = [f for f in findings if f.evidence["entity_type"] == "EMAIL_ADDRESS"]
    assert len(emails) == 1
    assert emails[0].span == (9, 27)


def test_overlaps_resolved(detector: PresidioPII) -> None:
    findings = detector.detect(TextItem(TEXT), make_context())
    types = [f.evidence["entity_type"] for f in findings]
    assert "URL" not in types  # the domain inside the e-mail address
    assert types.count("EMAIL_ADDRESS") == 1


def test_entities_option_restricts() -> None:
    d = PresidioPII(entities=["EMAIL_ADDRESS"])
    d.load()
    findings = d.detect(TextItem(TEXT), make_context())
    assert [f.evidence["entity_type"] for f in findings] == ["EMAIL_ADDRESS"]


def test_unknown_entity_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported PII entities"):
        PresidioPII(entities=["NOT_AN_ENTITY"]).load()


def test_score_threshold_is_a_floor(detector: PresidioPII) -> None:
    d = PresidioPII(score_threshold=0.9)
    d.load()
    findings = d.detect(TextItem(TEXT), make_context())
    assert findings
    assert all(f.score >= 0.9 for f in findings)


def test_clean_text_and_images(detector: PresidioPII) -> None:
    assert detector.detect(TextItem("The weather is nice."), make_context()) == []
    assert detector.detect(TextItem("   "), make_context()) == []
    assert detector.detect(ImageItem(synthetic_image(0)), make_context()) == []


# ---------------------------------------------------------------- payment cards


def _spans(detector: PresidioPII, text: str, entity: str) -> list[tuple[str, float]]:
    found = detector.detect(TextItem(text), make_context())
    return [(text[f.span[0] : f.span[1]], f.score) for f in found if f.evidence["entity_type"] == entity and f.span]


def test_luhn_and_issuer_ranges() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert card_number_plausible("2223003122003222")  # Mastercard 2-series
    assert card_number_plausible("213100000000001")  # JCB, 15 digits
    assert card_number_plausible("4030874397740603788")  # Visa, 19 digits
    assert card_number_plausible("675900000000")  # Maestro, 12 digits
    assert card_number_plausible("4222222222222")  # Visa, 13 digits
    assert not card_number_plausible("34111111111111")  # American Express has 15 digits
    assert not card_number_plausible("9000000000000001")  # no issuer uses 9


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("no 4111 1111 1111 1111", True),
        ("no 4111 1111 1111 1112", False),  # Luhn fails
        ("no 1234 5678 9018 0007", False),  # Luhn holds, but no issuer uses 1234 and no card word
        ("card 1234 5678 9018 0007", True),  # ... called a card
        ("no 675900000000", False),  # twelve digits (Maestro) need a card word
        ("maestro card 675900000000", True),
    ],
)
def test_is_card_number_is_what_the_card_recognizer_reports(detector: PresidioPII, text: str, card: bool) -> None:
    start = next(i for i, c in enumerate(text) if c.isdigit())
    assert is_card_number(text, start, len(text)) is card
    found = {f.evidence["entity_type"] for f in detector.detect(TextItem(text), make_context())}
    assert ("CREDIT_CARD" in found) is card


@pytest.mark.parametrize(
    "number",
    ["2223 0031 2200 3222", "213100000000001", "4030874397740603788", "4111-1111-1111-1111"],
)
def test_cards_presidio_misses_are_found(detector: PresidioPII, number: str) -> None:
    assert _spans(detector, f"Please charge {number} today.", "CREDIT_CARD") == [(number, 1.0)]


def test_card_checksum_is_kept(detector: PresidioPII) -> None:
    assert _spans(detector, "My card number is 2223 0031 2200 3223.", "CREDIT_CARD") == []


def test_twelve_digit_maestro_needs_a_card_word(detector: PresidioPII) -> None:
    assert _spans(detector, "Need to change billing date of my card 675900000000", "CREDIT_CARD") == [
        ("675900000000", 1.0)
    ]
    assert _spans(detector, "Order 675900000000 shipped on Monday", "CREDIT_CARD") == []


def test_unknown_issuer_only_next_to_a_card_word_and_lower(detector: PresidioPII) -> None:
    assert _spans(detector, "my credit card 9000000000000001 was lost", "CREDIT_CARD") == [("9000000000000001", 0.6)]
    assert _spans(detector, "tracking 9000000000000001 arrived", "CREDIT_CARD") == []


# ---------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Phone:\n467 3395\n\nE-mail:", "467 3395"),  # a local number under a label
        ("Can someone call me on 9472 7916? Thanks", "9472 7916"),
        ("416 60 039 office\n", "416 60 039"),  # the label after the number
        ("21 253 109 8211-Office", "21 253 109 8211"),
        ("Desk: +1-903-140-4508x769\n", "+1-903-140-4508x769"),  # an unallocated US range, extension kept
        ("Tel. 030 12345678", "030 12345678"),
        ("fax +46 (0)8 928 571 38", "+46 (0)8 928 571 38"),
    ],
)
def test_phone_numbers_next_to_a_phone_word(detector: PresidioPII, text: str, number: str) -> None:
    found = _spans(detector, text, "PHONE_NUMBER")
    assert [span for span, _ in found] == [number]
    assert all(score >= 0.5 for _, score in found)  # at or above the policy's redaction threshold


def test_validated_number_keeps_its_extension_and_label(detector: PresidioPII) -> None:
    assert _spans(detector, "Fax: 259.735.7502x459", "PHONE_NUMBER") == [("259.735.7502x459", 0.75)]
    assert _spans(detector, "the office is at 212-555-0187", "PHONE_NUMBER") == [("212-555-0187", 0.4)]


def test_digit_groups_without_a_phone_word_are_not_phones(detector: PresidioPII) -> None:
    assert _spans(detector, "3747 3911 fourth avenue suite 112 calgary", "PHONE_NUMBER") == []
    assert _spans(detector, "Order 467 3395 shipped on Monday", "PHONE_NUMBER") == []
    # valid as a German number, so presidio's tier reports it, but "Main St" is not a phone label
    assert all(score < 0.5 for _, score in _spans(detector, "He lives at 03262 2437 Main St", "PHONE_NUMBER"))


# ---------------------------------------------------------------- names from cues and overlap resolution


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Date: 2003-08-28\nName: Sieda Batukayev\nPhone: (99) 645-791", "Sieda Batukayev"),
        ("She was born on 9/20/1968. Her maiden name is Vida", "Vida"),
        ("My name is Ján M. Novák", "Ján M. Novák"),
        ("Sometimes people call me Csanád", "Csanád"),
    ],
)
def test_names_after_naming_cues(detector: PresidioPII, text: str, name: str) -> None:
    assert name in [span for span, _ in _spans(detector, text, "PERSON")]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('"I\'m glad to hear that Uruguay is moving in that direction," says Navrátilová.', ["Navrátilová"]),
        ("I'm so jealous! said Maslin to Antonio", ["Antonio"]),  # the NER reads Antonio as a place
        ('"We shipped it," said Hauta-aho, "and it sold."', ["Hauta-aho"]),
    ],
)
def test_speakers_after_a_quotation(detector: PresidioPII, text: str, names: list[str]) -> None:
    people = [span for span, _ in _spans(detector, text, "PERSON")]
    assert all(name in people for name in names), people


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Producer Vilhjálmur Georgsson explained to Fuse TV why", "Vilhjálmur Georgsson"),
        ("a song by songwriter Jouni Hahli", "Jouni Hahli"),
        ("Timotea lives on Via dei Fiorentini 17 street.", "Timotea"),
        ("We moved. Csanád P Gere lives at 3178 254 Damvergi Street, Nicosia", "Csanád P Gere"),
    ],
)
def test_names_after_a_role_or_living_at_an_address(detector: PresidioPII, text: str, name: str) -> None:
    assert name in [span for span, _ in _spans(detector, text, "PERSON")]


@pytest.mark.parametrize(
    "text",
    [
        "Tickets for the CEO Summit and the Director General's speech",  # ordinary words after a role
        "He lives on the north side of Rua Diadema 1903.",  # a pronoun
        "Timotea lives in Rome with her sister",  # no address
    ],
)
def test_roles_and_living_places_without_a_name(detector: PresidioPII, text: str) -> None:
    found = detector.detect(TextItem(text), make_context())
    assert not [f for f in found if f.evidence["recognizer"] == "PersonCueRecognizer"], text


def test_speech_words_without_a_quotation_name_nobody(detector: PresidioPII) -> None:
    for text in (
        "The label says Organic Cotton on it",
        "It said Hello World, then stopped",
        '"Profits rose 5% this quarter," said Microsoft.',  # a firm the NER knows, with a known name
        "A handbag by designer Gucci",
    ):
        found = detector.detect(TextItem(text), make_context())
        assert not [f for f in found if f.evidence["recognizer"] == "PersonCueRecognizer"], text


def test_non_personal_names_are_not_people(detector: PresidioPII) -> None:
    assert _spans(detector, "Company name: Acme Widgets", "PERSON") == []


def test_overlapping_results_of_one_type_are_merged() -> None:
    from presidio_analyzer import RecognizerResult

    a = RecognizerResult("PERSON", 0, 10, 0.85)
    b = RecognizerResult("PERSON", 5, 16, 0.9)
    url = RecognizerResult("URL", 20, 31, 0.5)
    email = RecognizerResult("EMAIL_ADDRESS", 14, 31, 1.0)
    kept = _resolve_overlaps([a, b, url, email])
    assert sorted((r.entity_type, r.start, r.end, r.score) for r in kept) == [
        ("EMAIL_ADDRESS", 14, 31, 1.0),
        ("PERSON", 0, 16, 0.9),
    ]


# ---------------------------------------------------------------- street names are not people


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("Ship it to 12 Alexander Flat, Springfield", 14, 28),  # a designator after a house number
        ("Drive on Zachary Cliffs to the pier", 9, 23),  # a designator in the span
        ("Meet me on Hoge Wei 32 St. tomorrow", 11, 19),  # the designator after the house number
        ("She moved to Rue de Virton last year", 13, 26),  # a street word before the name
        ("our office, ul. Cicha 5, Kraków", 16, 21),
        ("it is USNV Vincent\nFPO AA 12345", 11, 18),  # a ship in a military postal address
        ("Address: 4411 Marianne Kovacs 17\nOslo", 14, 29),  # between a house number and a number
    ],
)
def test_in_street_address(text: str, start: int, end: int) -> None:
    assert in_street_address(text, start, end), text[start:end]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("Marianne Kovacs lives at 12 Baker Street", 0, 15),
        ("I met Fletcher Hill in 1999", 6, 19),  # Hill is a surname, not in the list
        ("In 1984 George Orwell wrote it", 8, 21),  # a year before a name, nothing after
        ("Ask Paul Way about it", 4, 12),  # one word before "Way": the list is about street names
    ],
)
def test_names_near_addresses_stay_names(text: str, start: int, end: int) -> None:
    assert not in_street_address(text, start, end), text[start:end]


def test_street_names_are_not_people_in_findings(detector: PresidioPII) -> None:
    text = "Marianne Kovacs moved to 1317 Kimberly Way, Laidlaw, and Peter Novak to 12 Alexander Flat."
    people = [span for span, _ in _spans(detector, text, "PERSON")]
    assert "Marianne Kovacs" in people and "Peter Novak" in people
    assert not [p for p in people if "Kimberly" in p or "Alexander" in p]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("Let Jane Doe drive home", 4, 12),  # a verb, not a designator: designators are capitalised
        ("The parcel was sent via Jane Doe", 24, 32),  # "via", not "Via"
        ("Mary St John sang", 0, 12),  # "St" inside a name, not its last word
        ("Al Pacino starred", 0, 9),
    ],
)
def test_street_words_in_ordinary_text_leave_names_alone(text: str, start: int, end: int) -> None:
    assert not in_street_address(text, start, end), text[start:end]


@pytest.mark.parametrize(
    ("text", "name", "place"),
    [
        ("I am in Ringsted for a week", "Ringsted", True),  # right after "in"
        ("Jan Kowalski lives at Polna 17, Wadowice", "Wadowice", True),  # after a European house number
        ("Ana Lopez\nApt. 12\nFairhaven\nUSA", "Fairhaven", True),  # the line after an apartment line
        ("Ana Lopez\nApt. 12\nFairhaven\nUSA", "Ana Lopez", False),
        ("I'm Annemette Iversen, originally from Eckenroth, and 54", "Eckenroth", True),  # a journey
        ("We moved here from Tjæreborg", "Tjæreborg", True),
        ("The ball flew to Ronaldo who headed it in", "Ronaldo", False),  # journeys "to" are not read
        ("Letters originally from Albert Einstein", "Albert Einstein", False),  # two words: a sender
        ("I got a letter from Anna Berg today", "Anna Berg", False),  # from a person: no journey
        ("We drove to Maria's house", "Maria", False),
        ("We stayed in Maria's flat", "Maria", False),  # a possessive is a person's
        ("At 10, John Smith left the room", "John Smith", False),  # a time, and the sentence goes on
        ("I wrote to Peter Novak in May", "Peter Novak", False),
    ],
)
def test_places_tagged_as_people(text: str, name: str, place: bool) -> None:
    start = text.index(name)
    assert is_place(text, start, start + len(name)) is place


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Apt. 417 Csipkerek Vas", "Csipkerek Vas"),  # after a unit number on its line
        ("send it to the corner of Kuusiku 7 and Alexander Flat? I am away", "Alexander Flat"),
        ("the corner of Csabai kapu and Mathias Pass", "Csabai"),
        ("to the same: Maarit and Hersnapvej 75.", "Maarit"),  # beside a street and its house number
    ],
)
def test_street_corners_and_towns_after_units_are_places(text: str, name: str) -> None:
    start = text.index(name)
    assert is_place(text, start, start + len(name))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("I met Anna and Maria 50 times", "Anna"),  # the number does not end the clause
        ("The corner office is where Anna Berg works. Peter Novak and Maria left", "Peter Novak"),
    ],
)
def test_names_near_corners_and_numbers_stay_people(text: str, name: str) -> None:
    start = text.index(name)
    assert not is_place(text, start, start + len(name))


@pytest.mark.parametrize(
    ("text", "name", "firm"),
    [
        (">Esat Jeknic\n>Marshall, Hernandez and Simpson\n>3378 Lovers Lane", "Hernandez", True),
        ("Slaughter & May\n12 Baker Street\nLondon", "Slaughter", True),
        ("Characters:\nAlice, Bob and Carol\nDraw them on a boat", "Bob", False),  # no address: a cast
        ("The Clark, Romero and Hall Orchestra was founded in 1973.", "Romero", True),
        ("Tom and Jerry\nA cat and a mouse", "Tom", False),  # two names on a line are two people
        ("Morrison, Rogers and Torres founded it.", "Rogers", False),  # a sentence, not a firm
    ],
)
def test_partners_naming_a_firm(text: str, name: str, firm: bool) -> None:
    start = text.index(name)
    assert in_firm_name(text, start, start + len(name)) is firm


def test_spans_of_ordinary_words_are_not_people(detector: PresidioPII) -> None:
    vocab = load_pipeline(DEFAULT_MODELS["en"], ENGLISH_EXCLUDE).vocab
    frequencies = Truecaser.from_vectors(vocab)
    assert frequencies is not None
    assert ordinary_words(frequencies, "Guilty Pleasures") and ordinary_words(frequencies, "Cinematographer")
    assert not ordinary_words(frequencies, "Will Smith") and not ordinary_words(frequencies, "Mark")
    assert not ordinary_words(None, "Letter")  # without frequencies nothing is dropped
    text = "For my take on Mrs. Baker, see Guilty Pleasures: 5 Musicians Of The 70s You're Supposed To Hate"
    people = [span for span, _ in _spans(detector, text, "PERSON")]
    assert "Baker" in people and not [p for p in people if "Guilty" in p]


def test_names_ending_in_a_firm_word_are_firms(detector: PresidioPII) -> None:
    text = "Galorath Incorporated is the brainchild of our founders, Anna Berg and Peter Novak."
    people = [span for span, _ in _spans(detector, text, "PERSON")]
    assert "Anna Berg" in people and not [p for p in people if "Galorath" in p]


@pytest.mark.parametrize(
    ("text", "name", "thing"),
    [
        ("Zoolander is a 2017 Polish action-comedy film directed by Maciej Borkowski", "Zoolander", True),
        ("Ramsey-Johnson is a Swedish multinational investment bank.", "Ramsey-Johnson", True),
        ("Dataweave was a startup.", "Dataweave", True),
        ("Smith is a film director", "Smith", False),  # the kind word does not end the phrase
        ("Lee is a bank clerk in Leeds", "Lee", False),
        ("Anna is the band's singer", "Anna", False),
        ("Anna is a friend of the company", "Anna", False),  # the kind is not what she is
        ("Anna was a member of the band.", "Anna", False),
        ("Scarlett Johansson is a film and stage actress", "Scarlett Johansson", False),  # "and" goes on
        ("Kim Kardashian is a brand in herself", "Kim Kardashian", False),
    ],
)
def test_spans_a_sentence_calls_a_thing(text: str, name: str, thing: bool) -> None:
    start = text.index(name)
    assert is_thing(text, start, start + len(name)) is thing


@pytest.mark.parametrize(
    ("text", "value", "score"),
    [
        ("write to john.smith at example dot com today", "john.smith at example dot com", 0.6),
        ("john.smith [at] example [dot] com", "john.smith [at] example [dot] com", 0.85),
        ("連絡は taro (at) example.jp まで", "taro (at) example.jp", 0.85),
        ("mail john_doe at example.org", "john_doe at example.org", 0.6),
        ("write to us [at] example [dot] com", "us [at] example [dot] com", 0.85),  # bracketed: an address
        ("taro at example dot jp", "taro at example dot jp", 0.6),
    ],
)
def test_email_written_out_is_found(detector: PresidioPII, text: str, value: str, score: float) -> None:
    found = detector.detect(TextItem(text), make_context())
    start = text.index(value)
    emails = [(f.span, f.score) for f in found if f.evidence["entity_type"] == "EMAIL_ADDRESS"]
    assert emails == [((start, start + len(value)), score)]
    assert_no_pii(found, [value])


@pytest.mark.parametrize(
    "text",
    ["meet me at example.com", "Mr. Smith at example.com", "x [at] y [dot] notatld", "find us at shop dot com",
     "write to me at example dot com"],
)  # fmt: skip
def test_at_without_an_address_is_no_email(detector: PresidioPII, text: str) -> None:
    found = detector.detect(TextItem(text), make_context())
    assert "EMAIL_ADDRESS" not in {f.evidence["entity_type"] for f in found}


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("My SSN is 536221234", 0.65),  # nine digits after an SSN word: above the policy's 0.5
        ("social security number: 53622-1234", 0.65),
        ("My SSN is 536-22-1234", 0.85),  # presidio's medium pattern and its context word, as before
    ],
)
def test_ssn_without_dashes_after_an_ssn_word(detector: PresidioPII, text: str, score: float) -> None:
    found = [f for f in detector.detect(TextItem(text), make_context()) if f.evidence["entity_type"] == "US_SSN"]
    assert [f.score for f in found] == [score]
