"""The readings of a text that PresidioPII analyses (detectors.pii_views), and what the detector finds
through them: obfuscated values (full-width, zero-width characters), encoded payloads, spans that
stay offsets into the original text."""

from __future__ import annotations

import base64
import unicodedata

import pytest

import detectors.pii as pii_module
from detectors.base import TextItem
from detectors.normalize import INVISIBLE_CHARS
from detectors.pii import PresidioPII
from detectors.pii_views import MappedText, analysis_copy, latin_view, payload_views
from detectors.testing import assert_no_pii, found_spans, make_context

EMAIL = "john.smith@example.com"
FULL_WIDTH_EMAIL = "ｊｏｈｎ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ"


@pytest.fixture
def detector(default_pii: PresidioPII) -> PresidioPII:
    return default_pii  # one load per session (tests/detectors/conftest.py)


# ---------------------------------------------------------------- analysis_copy


@pytest.mark.parametrize("text", ["plain ASCII, john@example.com", "café résumé naïve", "山田太郎に連絡して", ""])
def test_text_already_normalized_needs_no_copy(text: str) -> None:
    assert analysis_copy(text) is None


def _assert_maps_back(copy: MappedText, original: str) -> None:
    assert len(copy.starts) == len(copy.ends) == len(copy.text)
    assert list(copy.starts) == sorted(copy.starts)
    for i in range(len(copy.text)):
        start, end = copy.to_original(i, i + 1)
        assert 0 <= start < end <= len(original)


def test_full_width_becomes_ascii_and_maps_back() -> None:
    text = "mail ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ now"
    copy = analysis_copy(text)
    assert copy is not None
    assert copy.text == "mail john@example.com now"
    _assert_maps_back(copy, text)
    start = copy.text.index("john")
    assert copy.to_original(start, start + len("john@example.com")) == (5, 21)


def test_invisible_characters_are_removed_and_spans_cover_them() -> None:
    text = "card 4111\u200b1111\u2060111\u00ad1\ufeff1111 end"
    copy = analysis_copy(text)
    assert copy is not None
    assert copy.text == "card 4111111111111111 end"
    _assert_maps_back(copy, text)
    assert copy.to_original(5, 21) == (5, len(text) - 4)  # the invisible characters inside are covered


def test_case_is_kept_and_marks_compose() -> None:
    text = "Ｊｏｈｎ Ｓｍｉｔｈ, Jose\u0301, ｶﾞｲﾄﾞ, ﬁle"
    copy = analysis_copy(text)
    assert copy is not None
    assert copy.text == "John Smith, José, ガイド, file"
    _assert_maps_back(copy, text)
    start = copy.text.index("é")
    assert copy.to_original(start, start + 1) == (text.index("e\u0301"), text.index("e\u0301") + 2)


@pytest.mark.parametrize(
    "text",
    [
        "a\u00a0b",
        "\u200bstart and end\u200d",
        "ASCII then ｆｕｌｌ ｗｉｄｔｈ then ASCII again",
        "e\u0301 and n\u0303 after ASCII, ｶﾞｲﾄﾞ after kana",
        "東京都（しぶや）\u3000電話：０３",
        "tags\U000e0041\U000e0042 hidden",
    ],
)
def test_copy_is_the_nfkc_of_the_visible_text(text: str) -> None:
    copy = analysis_copy(text)
    assert copy is not None
    visible = "".join(c for c in text if c not in INVISIBLE_CHARS)
    assert copy.text == unicodedata.normalize("NFKC", visible)
    _assert_maps_back(copy, text)


def test_dashes_between_digits_become_hyphens() -> None:
    copy = analysis_copy("０９０−１２３４ー５６７８, 212–555–0187, ダイヤー")
    assert copy is not None
    assert copy.text == "090-1234-5678, 212-555-0187, ダイヤー"


def test_latin_view_blanks_japanese_script_only() -> None:
    text = "メールはtaro@example.jpです、카드는4242"
    view = latin_view(text)
    assert len(view) == len(text)
    assert view.split() == ["taro@example.jp", "、", "4242"]
    english = "Hi John, 212-555-0187 — café"
    assert latin_view(english) == english


# ---------------------------------------------------------------- payload_views


def test_payload_views_decode_base64_and_hex_with_the_payload_span() -> None:
    token = base64.b64encode(EMAIL.encode()).decode()
    text = f"decode this: {token} please"
    (payload,) = payload_views(text)
    assert payload.source == "base64"
    assert payload.text == EMAIL
    assert payload.span == (13, 13 + len(token))
    hexed = "Mail: " + b"John@Example.com".hex()
    (payload,) = payload_views(hexed)
    assert (payload.source, payload.text, payload.span) == ("hex", "John@Example.com", (6, len(hexed)))


def test_no_payload_looked_for_in_ordinary_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.pii_views as views

    def refuse(text: str) -> None:
        raise AssertionError("screen_views was called")

    monkeypatch.setattr(views, "screen_views", refuse)
    assert payload_views("A watercolor of a fox in the snow, call 212-555-0187") == []


# ---------------------------------------------------------------- the detector


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        (
            "contact me at ｊｏｈｎ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ please",
            "EMAIL_ADDRESS",
            "ｊｏｈｎ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        ),
        ("email john.sm\u200bith@exam\u200bple.com now", "EMAIL_ADDRESS", "john.sm\u200bith@exam\u200bple.com"),
        ("my card is 4111\u200b1111\u200b1111\u200b1111", "CREDIT_CARD", "4111\u200b1111\u200b1111\u200b1111"),
        ("my card is ４１１１ １１１１ １１１１ １１１１.", "CREDIT_CARD", "４１１１ １１１１ １１１１ １１１１"),
    ],
)
def test_obfuscated_values_are_found_on_their_original_span(
    detector: PresidioPII, text: str, entity: str, value: str
) -> None:
    found = found_spans(detector, text)
    assert (entity, value) in found
    kinds = {kind for kind, _ in found}
    assert "URL" not in kinds  # not the pieces of a split e-mail address
    assert "JP_MY_NUMBER" not in kinds  # not the first twelve digits of a card number


def test_base64_email_is_reported_on_the_payload_span(detector: PresidioPII) -> None:
    token = base64.b64encode(EMAIL.encode()).decode()
    text = f"decode this: {token}"
    findings = detector.detect(TextItem(text), make_context())
    emails = [f for f in findings if f.evidence["entity_type"] == "EMAIL_ADDRESS"]
    assert len(emails) == 1
    assert emails[0].span == (13, len(text))
    assert emails[0].evidence == {"entity_type": "EMAIL_ADDRESS", "recognizer": "EmailRecognizer", "view": "base64"}
    assert "base64" in emails[0].explanation
    assert_no_pii(findings, [EMAIL, token])


def test_payload_in_japanese_text_and_entities_option() -> None:
    token = base64.b64encode("電話番号は090-1234-5678です".encode()).decode()
    text = f"これを読んで {token}"
    only_email = PresidioPII(entities=["EMAIL_ADDRESS"], ner=False)
    only_email.load()
    assert only_email.detect(TextItem(text), make_context()) == []
    patterns = PresidioPII(ner=False)
    patterns.load()
    found = patterns.detect(TextItem(text), make_context())
    phones = [f for f in found if f.evidence["entity_type"] == "JP_PHONE_NUMBER"]
    assert [(f.span, f.evidence.get("view")) for f in phones] == [((7, len(text)), "base64")]


def test_ascii_english_text_is_read_as_it_is(detector: PresidioPII, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "Hi, I am John Smith. Email me at john.smith@example.com or call 212-555-0187. "
        "My card number is 4111 1111 1111 1111 and my SSN is 536-22-1234."
    )
    copies: list[object] = []
    real = pii_module.analysis_copy

    def spy(t: str) -> object:
        copies.append(real(t))
        return copies[-1]

    monkeypatch.setattr(pii_module, "analysis_copy", spy)
    findings = detector.detect(TextItem(text), make_context())
    assert copies == [None]
    # the findings of version 1.4.0, before the text was read through pii_views
    assert [(f.evidence["entity_type"], f.span, round(f.score, 2)) for f in findings] == [
        ("PERSON", (9, 19), 0.85),
        ("EMAIL_ADDRESS", (33, 55), 1.0),
        ("PHONE_NUMBER", (64, 76), 0.75),
        ("CREDIT_CARD", (96, 115), 1.0),
        ("US_SSN", (130, 141), 0.85),
    ]
    assert all(set(f.evidence) == {"entity_type", "recognizer"} for f in findings)


def test_text_of_invisible_characters_only(detector: PresidioPII) -> None:
    assert detector.detect(TextItem("\u200b\u200b\u200d"), make_context()) == []
