"""Japanese recognizers, GiNZA for Japanese script, and the pattern-only (no NER) mode of PresidioPII."""

from __future__ import annotations

import pytest

from detectors.base import TextItem
from detectors.pii import PresidioPII
from detectors.pii_ginza import _chunks, has_japanese
from detectors.pii_ja import BARE_MY_NUMBER_SCORE, my_number_reading, my_number_valid
from detectors.testing import assert_no_pii, found_spans, make_context

TEXT = (
    "田中太郎さんの電話番号は090-1234-5678、住所は〒150-0001 東京都渋谷区神宮前1-2-3です。"
    "マイナンバーは123456789018。Email: hanako@example.jp, IBAN DE89370400440532013000."
)
VALUES = ["田中太郎", "090-1234-5678", "150-0001", "東京都渋谷区神宮前1-2-3", "123456789018", "hanako@example.jp"]


@pytest.fixture(scope="module")
def patterns_only() -> PresidioPII:
    det = PresidioPII(ner=False)
    det.load()
    return det


def test_my_number_check_digit() -> None:
    assert my_number_valid("123456789018")
    assert my_number_valid("1234 5678 9018")
    assert not my_number_valid("123456789012")
    assert not my_number_valid("111111111111")


def test_japanese_entities(patterns_only: PresidioPII) -> None:
    found = patterns_only.detect(TextItem(TEXT), make_context())
    by_type = {f.evidence["entity_type"]: TEXT[f.span[0] : f.span[1]] for f in found if f.span}
    assert by_type["JP_PERSON"] == "田中太郎"
    assert by_type["JP_PHONE_NUMBER"] == "090-1234-5678"
    assert by_type["JP_POSTAL_CODE"] == "〒150-0001"
    assert by_type["JP_ADDRESS"].startswith("東京都渋谷区神宮前1-2-3")
    assert by_type["JP_MY_NUMBER"] == "123456789018"
    assert by_type["EMAIL_ADDRESS"] == "hanako@example.jp"
    assert by_type["IBAN_CODE"] == "DE89370400440532013000"
    assert_no_pii(found, VALUES)


def test_wrong_check_digit_and_short_numbers_are_not_pii(patterns_only: PresidioPII) -> None:
    found = patterns_only.detect(TextItem("注文番号 123456789012、内線 078-05-1120"), make_context())
    types = {f.evidence["entity_type"] for f in found}
    assert "JP_MY_NUMBER" not in types and "JP_PHONE_NUMBER" not in types


def test_english_patterns_without_ner(patterns_only: PresidioPII) -> None:
    text = "Card 4111 1111 1111 1111, mail john@example.com, call 212-555-0187. John Smith"
    types = {f.evidence["entity_type"] for f in patterns_only.detect(TextItem(text), make_context())}
    assert {"CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER"} <= types
    assert "PERSON" not in types  # no NER model in this mode


# ---------------------------------------------------------------- GiNZA for text in Japanese script


@pytest.fixture
def with_ginza(default_pii: PresidioPII) -> PresidioPII:
    return default_pii  # one load per session (tests/detectors/conftest.py)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("山田太郎に連絡して", [("PERSON", "山田太郎")]),
        (
            "佐藤花子と鈴木一郎は大阪に住んでいる",
            [("PERSON", "佐藤花子"), ("PERSON", "鈴木一郎"), ("LOCATION", "大阪")],
        ),
        ("株式会社トヨタの豊田章男社長が名古屋市で講演した", [("PERSON", "豊田章男"), ("LOCATION", "名古屋市")]),
    ],
)
def test_japanese_names_without_honorifics(with_ginza: PresidioPII, text: str, expected: list[tuple[str, str]]) -> None:
    assert found_spans(with_ginza, text) == expected


def test_honorific_name_and_patterns_with_ginza(with_ginza: PresidioPII) -> None:
    by_type = dict(found_spans(with_ginza, TEXT))
    assert by_type["PERSON"] == "田中太郎"  # GiNZA's span wins over the honorific pattern's
    assert by_type["JP_PHONE_NUMBER"] == "090-1234-5678"
    assert by_type["JP_MY_NUMBER"] == "123456789018"
    assert by_type["EMAIL_ADDRESS"] == "hanako@example.jp"


def test_english_model_does_not_guess_on_japanese(with_ginza: PresidioPII) -> None:
    # the English model alone tagged each of these whole prompts as a PERSON
    for text in ("桜の季節をテーマにした短い詩を書いて", "宇宙飛行士が馬に乗っている絵", "動物園のキリン"):
        assert found_spans(with_ginza, text) == []


def test_mixed_script_uses_both_models(with_ginza: PresidioPII) -> None:
    text = "山田太郎に連絡して。John Smithさんにもメールしてください"
    found = found_spans(with_ginza, text)
    assert ("PERSON", "山田太郎") in found
    assert any(kind == "PERSON" and "Smith" in value for kind, value in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the English pass tagged "、" and the blanks beside it (Japanese script blanked) as a PERSON
        (
            "連絡先：taro@example.com、電話090-1234-5678",
            [("EMAIL_ADDRESS", "taro@example.com"), ("JP_PHONE_NUMBER", "090-1234-5678")],
        ),
        # the English span took the blanked honorific and the comma with the name
        ("Johnさん、こんにちは", [("PERSON", "John")]),
        ("「Taylor Swift」の写真", [("PERSON", "Taylor Swift")]),
        ("John Smith、電話して", [("PERSON", "John Smith")]),
        # the English pass's time no longer takes the Japanese after it; a bare time is no DATE_TIME
        # here, as in English text ("Meeting with John at 10:30." gives John only)
        ("Meeting with John at 10:30 の予定", [("PERSON", "John")]),
    ],
)
def test_latin_names_in_japanese_text_stop_at_japanese_punctuation(
    with_ginza: PresidioPII, text: str, expected: list[tuple[str, str]]
) -> None:
    assert found_spans(with_ginza, text) == expected


def test_english_text_never_runs_ginza(with_ginza: PresidioPII, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = with_ginza._analyzer.nlp_engine  # type: ignore[union-attr]
    calls: list[str] = []
    real = engine.japanese

    def counting(text: str) -> object:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(engine, "japanese", counting)
    found_spans(with_ginza, "Hi, I am John Smith, call me on 212-555-0187.")
    assert calls == []
    found_spans(with_ginza, "山田太郎に連絡して")
    assert calls == ["山田太郎に連絡して"]


def test_chunks_concatenate_back_and_cut_after_sentences() -> None:
    text = "今日は晴れています。" * 30 + "改行\n" + "あ" * 50
    pieces = _chunks(text, 64)
    assert "".join(pieces) == text
    assert all(len(p) <= 64 for p in pieces)
    assert pieces[0].endswith("。")


def test_long_japanese_text_is_parsed_in_chunks(with_ginza: PresidioPII, monkeypatch: pytest.MonkeyPatch) -> None:
    # Sudachi refuses more than 49,149 bytes at once, so long text goes to GiNZA in pieces (small here)
    import detectors.pii_ginza as pii_ginza

    monkeypatch.setattr(pii_ginza, "_CHUNK_CHARS", 40)
    text = "今日は晴れています。" * 8 + "山田太郎に連絡して。" + "明日は雨です。" * 3
    assert len(pii_ginza._chunks(text)) > 2
    assert ("PERSON", "山田太郎") in found_spans(with_ginza, text)


def test_has_japanese() -> None:
    assert has_japanese("山田") and has_japanese("カタカナ") and has_japanese("ひらがな")
    assert not has_japanese("John Smith, 212-555-0187 — café")


def test_patterns_only_mode_loads_no_ginza(patterns_only: PresidioPII) -> None:
    assert patterns_only._analyzer.nlp_engine.japanese is None  # type: ignore[union-attr]


def test_my_number_card_is_not_a_payment_card(patterns_only: PresidioPII) -> None:
    # 618594685850 passes both the My Number check digit and Luhn, and starts like a Maestro card
    text = "マイナンバーカードの番号は618594685850です"
    types = {f.evidence["entity_type"] for f in patterns_only.detect(TextItem(text), make_context())}
    assert "JP_MY_NUMBER" in types and "CREDIT_CARD" not in types


# ---------------------------------------------------------------- as Japanese is typed


def test_full_width_phone_number_typed_by_an_ime(patterns_only: PresidioPII) -> None:
    for text in ("電話番号は０９０−１２３４−５６７８です", "電話番号は０９０ー１２３４ー５６７８です"):
        found = patterns_only.detect(TextItem(text), make_context())
        phones = [f for f in found if f.evidence["entity_type"] == "JP_PHONE_NUMBER"]
        assert len(phones) == 1
        assert phones[0].span == (5, 18)  # "０９０−１２３４−５６７８" in the original text
        assert phones[0].score == pytest.approx(1.0)
        assert "PHONE_NUMBER" not in {f.evidence["entity_type"] for f in found}


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("メールはtaro@example.jpです", "EMAIL_ADDRESS", "taro@example.jp"),
        ("私のSSNは536-22-1234です", "US_SSN", "536-22-1234"),
        ("カードは4242424242424242です", "CREDIT_CARD", "4242424242424242"),
        ("カード番号は4111-1111-1111-1111です", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("電話は212-555-0187までお願いします", "PHONE_NUMBER", "212-555-0187"),
        ("口座はDE89370400440532013000です", "IBAN_CODE", "DE89370400440532013000"),
    ],
)
@pytest.mark.parametrize("fixture", ["patterns_only", "with_ginza"])
def test_ascii_values_glued_to_japanese_script(
    fixture: str, text: str, entity: str, value: str, request: pytest.FixtureRequest
) -> None:
    det: PresidioPII = request.getfixturevalue(fixture)
    found = det.detect(TextItem(text), make_context())
    assert [(f.evidence["entity_type"], text[f.span[0] : f.span[1]]) for f in found if f.span] == [(entity, value)]
    assert found[0].score >= 0.5  # what the policy redacts
    assert_no_pii(found, [value])


def test_card_number_is_redacted_whole_not_as_a_my_number(with_ginza: PresidioPII) -> None:
    from gateway.redaction import redact_text

    text = "カード番号は4111-1111-1111-1111です"
    found = with_ginza.detect(TextItem(text), make_context())
    assert [(f.evidence["entity_type"], f.span) for f in found] == [("CREDIT_CARD", (6, 25))]
    assert redact_text(text, found) == "カード番号は<CREDIT_CARD>です"


@pytest.mark.parametrize(
    "text",
    [
        "4111-1111-1111-1111",  # 411111111111 has a right My Number check digit too
        "4111 1111 1111 1111",
        "4556-6789-0125-0004",  # a card number whose first twelve digits make a My Number
        "4111 1000 0000 0030",  # ... whose last twelve do
        "1234 5678 9018 1234 5678",  # five groups: a longer number
        "1234567890181",  # digits right next to it
        "1123456789018",
        "1234567890182024",  # sixteen digits in one run: one number
    ],
)
def test_my_number_is_not_part_of_a_longer_digit_group(patterns_only: PresidioPII, text: str) -> None:
    found = patterns_only.detect(TextItem(f"番号は{text}です"), make_context())
    assert "JP_MY_NUMBER" not in {f.evidence["entity_type"] for f in found}


def test_card_numbers_of_these_tests_hold_a_my_number() -> None:
    from detectors.pii_recognizers import card_number_plausible, luhn_valid

    for card, twelve in (("4556678901250004", "455667890125"), ("4111100000000030", "100000000030")):
        assert luhn_valid(card) and card_number_plausible(card) and twelve in card
        assert my_number_valid(twelve)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        # sixteen digits in four groups whose Luhn check digit is wrong are no card number: the
        # twelve digits with a right My Number check digit are one, the fourth group is not
        ("1234-5678-9018-1234", "1234-5678-9018"),
        ("2024 1234 5678 9018", "1234 5678 9018"),
        ("1234 5678 9018 1234", "1234 5678 9018"),
        # both twelve-digit windows have a right check digit: the one finding covers all sixteen
        ("1234 1234 5678 9018", "1234 1234 5678 9018"),
        ("1234 5678 9018 2024", "1234 5678 9018"),
        # a right Luhn check digit, but no issuer uses "1234" for sixteen digits and no card word
        # is near: no card number either
        ("1234 5678 9018 0007", "1234 5678 9018"),
    ],
)
def test_my_number_beside_a_group_that_makes_no_card(patterns_only: PresidioPII, text: str, number: str) -> None:
    found = patterns_only.detect(TextItem(f"個人番号は{text}です"), make_context())
    start = 5 + text.index(number)
    assert [(f.evidence["entity_type"], f.span) for f in found if f.span] == [
        ("JP_MY_NUMBER", (start, start + len(number)))
    ]
    assert_no_pii(found, [number, text])
    # without a My Number word before it, such a grouped number is an order or parcel number
    # (one in five has a twelve-digit half whose check digit holds by chance)
    assert not [f for f in patterns_only.detect(TextItem(f"注文番号は{text}です"), make_context()) if f.span]
    assert not [f for f in patterns_only.detect(TextItem(f"Order no. {text}"), make_context()) if f.span]


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("カード番号は4556 6789 0125 0004です", "4556 6789 0125 0004"),  # Visa, holds a My Number
        ("個人番号ではなくカード番号4556-6789-0125-0004", "4556-6789-0125-0004"),
        ("カード番号は1234 5678 9018 0007です", "1234 5678 9018 0007"),  # unknown issuer, called a card
    ],
)
def test_card_number_holding_a_my_number_is_one_card(patterns_only: PresidioPII, text: str, card: str) -> None:
    found = patterns_only.detect(TextItem(text), make_context())
    start = text.index(card)
    assert [(f.evidence["entity_type"], f.span) for f in found if f.span] == [
        ("CREDIT_CARD", (start, start + len(card)))
    ]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        # a neighbour that does not make a card number (cards are four groups of four joined by one
        # separator, or sixteen digits): a list number, or a four-digit code joined to the plain
        # twelve digits by a dash, is a separate number
        ("1 1234 5678 9018", "1234 5678 9018"),
        ("1234-123456789018", "123456789018"),
        ("123456789018-1234", "123456789018"),
        ("1234-5678-9018 1234", "1234-5678-9018"),  # the next group joined by another separator
    ],
)
def test_my_number_next_to_a_separate_number(patterns_only: PresidioPII, text: str, number: str) -> None:
    found = patterns_only.detect(TextItem(f"番号は{text}です"), make_context())
    spans = [f.span for f in found if f.evidence["entity_type"] == "JP_MY_NUMBER"]
    start = 3 + text.index(number)
    assert spans == [(start, start + len(number))]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("マイナンバー 123456789018 2024年", "123456789018"),
        ("個人番号: 山田太郎 1980-01-01 123456789018", "123456789018"),
        ("個人番号 1234 5678 9018 3人", "1234 5678 9018"),
        ("個人番号 1234 5678 9018 2024年", "1234 5678 9018"),  # 1234567890182024 fails Luhn: no card
        ("個人番号 1234-5678-9018-2024", "1234-5678-9018"),
    ],
)
@pytest.mark.parametrize("fixture", ["patterns_only", "with_ginza"])
def test_my_number_next_to_other_numbers_is_found_and_redacted(
    fixture: str, text: str, number: str, request: pytest.FixtureRequest
) -> None:
    from gateway.redaction import redact_text

    det: PresidioPII = request.getfixturevalue(fixture)
    found = det.detect(TextItem(text), make_context())
    mine = [f for f in found if f.evidence["entity_type"] == "JP_MY_NUMBER"]
    start = text.index(number)
    assert [f.span for f in mine] == [(start, start + len(number))]
    assert mine[0].score >= 0.5  # what the policy redacts
    assert redact_text(text, mine) == text.replace(number, "<JP_MY_NUMBER>")
    assert number not in redact_text(text, found)


@pytest.mark.parametrize("number", ["123456789018", "1234 5678 9018", "1234-5678-9018", "１２３４５６７８９０１８"])
def test_my_number_still_found_alone(patterns_only: PresidioPII, number: str) -> None:
    text = f"マイナンバーは{number}です。"
    found = patterns_only.detect(TextItem(text), make_context())
    spans = [f.span for f in found if f.evidence["entity_type"] == "JP_MY_NUMBER"]
    assert spans == [(7, 7 + len(number))]


# ---------------------------------------------------------------- twelve digits without a My Number word


@pytest.mark.parametrize(
    "text",
    [
        "注文番号 123456789018 の商品写真",
        "order no. 123456789018 product photo",
        "品番123456789018のバッグ",
        "tracking number 1234 5678 9018",
        "the card 4111 1111 1111",  # the first window of a card number streamed in pieces
        "カード番号は4111 1111 1111",
    ],
)
def test_twelve_digits_called_another_number_are_no_my_number(patterns_only: PresidioPII, text: str) -> None:
    assert my_number_valid("411111111111") and my_number_valid("123456789018")
    found = patterns_only.detect(TextItem(text), make_context())
    assert "JP_MY_NUMBER" not in {f.evidence["entity_type"] for f in found}


@pytest.mark.parametrize("text", ["123456789018", "山田太郎 1980-01-01 123456789018", "see 1234-5678-9018"])
def test_bare_twelve_digits_stay_below_the_redaction_threshold(patterns_only: PresidioPII, text: str) -> None:
    """One in eleven twelve-digit numbers has a right check digit: without a My Number word the
    number is reported, below the policy's `thresholds.pii` (0.5), and not redacted."""
    found = [
        f for f in patterns_only.detect(TextItem(text), make_context()) if f.evidence["entity_type"] == "JP_MY_NUMBER"
    ]
    assert [f.score for f in found] == [BARE_MY_NUMBER_SCORE]
    assert BARE_MY_NUMBER_SCORE < 0.5


@pytest.mark.parametrize(
    "text",
    [
        "マイナンバー 123456789018",
        "my number is 123456789018",
        "Individual Number: 1234 5678 9018",
        "123456789018 is my number",
        "マイナンバー（注文番号ではありません）123456789018",  # the My Number word wins
    ],
)
def test_twelve_digits_with_a_my_number_word_score_full(patterns_only: PresidioPII, text: str) -> None:
    found = [
        f for f in patterns_only.detect(TextItem(text), make_context()) if f.evidence["entity_type"] == "JP_MY_NUMBER"
    ]
    assert [f.score for f in found] == [1.0]


def test_my_number_reading() -> None:
    text = "注文番号 123456789018"
    assert my_number_reading(text, 5, 17) == "other"
    assert my_number_reading("123456789018", 0, 12) == "bare"
    assert my_number_reading("個人番号 123456789018", 5, 17) == "cue"


# ---------------------------------------------------------------- JAN (EAN-13) barcodes are no cards


@pytest.mark.parametrize(
    "text",
    [
        "JAN code 4901234567894 product shot",
        "JANコード4901234567894の商品",
        "barcode 4901234567894, card on the shelf",  # a barcode word wins over a card word
        "4901234567894",  # no word: a barcode number (thirteen-digit cards are old Visa only)
        "商品 4512345678999 の写真",
    ],
)
def test_jan_barcode_is_not_a_card_number(patterns_only: PresidioPII, text: str) -> None:
    from detectors.pii_recognizers import ean13_valid, luhn_valid

    digits = "".join(c for c in text if c.isdigit())
    assert ean13_valid(digits) and luhn_valid(digits)  # both check digits hold
    found = patterns_only.detect(TextItem(text), make_context())
    assert "CREDIT_CARD" not in {f.evidence["entity_type"] for f in found}


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("Visa 4222222222222", "4222222222222"),  # a thirteen-digit Visa test number (no EAN-13 check digit)
        ("card number 4901234567894", "4901234567894"),  # both check digits hold, called a card
        ("4222222222222", "4222222222222"),
    ],
)
def test_thirteen_digit_visa_is_still_a_card(patterns_only: PresidioPII, text: str, card: str) -> None:
    found = patterns_only.detect(TextItem(text), make_context())
    start = text.index(card)
    assert ("CREDIT_CARD", (start, start + len(card))) in [(f.evidence["entity_type"], f.span) for f in found]
