"""Japanese recognizers and the pattern-only (no NER) mode of PresidioPII."""

from __future__ import annotations

import pytest

from detectors.base import TextItem
from detectors.pii import PresidioPII
from detectors.pii_ja import my_number_valid
from detectors.testing import assert_no_pii, make_context

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
