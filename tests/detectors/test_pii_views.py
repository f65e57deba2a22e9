"""The readings of a text that PresidioPII analyses (detectors.pii_views), and what the detector finds
through them: obfuscated values (full-width, zero-width characters), encoded payloads, ASCII hidden
in Unicode tag characters, spans that stay offsets into the original text."""

from __future__ import annotations

import base64
import unicodedata

import pytest

import detectors.pii as pii_module
from detectors.base import TextItem
from detectors.normalize import INVISIBLE_CHARS
from detectors.pii import PresidioPII
from detectors.pii_views import (
    MappedText,
    analysis_copy,
    latin_view,
    payload_views,
    shared_latin_views,
)
from detectors.testing import assert_no_pii, found_spans, make_context

EMAIL = "john.smith@example.com"
FULL_WIDTH_EMAIL = "ｊｏｈｎ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ"
FLAG_OF_SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


def tags(ascii_text: str) -> str:
    """`ascii_text` spelled in invisible Unicode tag characters ("ASCII smuggling")."""
    return "".join(chr(0xE0000 + ord(c)) for c in ascii_text)


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


@pytest.mark.parametrize(
    "text",
    [
        "A watercolor of a fox in the snow, call 212-555-0187",
        "山田太郎に電話して、café au lait",
        f"Go Scotland {FLAG_OF_SCOTLAND}!",  # a subdivision flag's tag characters are no message
        "zero\u200bwidth and ｆｕｌｌ ｗｉｄｔｈ",
    ],
)
def test_no_payload_looked_for_in_ordinary_text(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    import detectors.pii_views as views

    def refuse(text: str) -> None:
        raise AssertionError("screen_views was called")

    monkeypatch.setattr(views, "screen_views", refuse)
    assert payload_views(text, analysis_copy(text)) == []


def test_payload_views_read_ascii_hidden_in_tag_characters() -> None:
    hidden = "my ssn is 078-05-1120"
    text = "hello" + tags(hidden) + "!"
    (payload,) = payload_views(text)
    assert (payload.source, payload.text, payload.span) == ("tags", hidden, (5, 5 + len(hidden)))
    token = base64.b64encode(EMAIL.encode()).decode()
    text = "hi " + tags(f"read {token}") + " bye"
    found = {(p.source, p.text, p.span) for p in payload_views(text)}
    span = (3, 3 + len(f"read {token}"))
    assert found == {("tags", f"read {token}", span), ("tags>base64", EMAIL, span)}


# ---------------------------------------------------------------- latin_view, once per text


def test_latin_view_is_computed_once_per_text_in_an_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.pii_views as views

    calls: list[str] = []
    real = views._blank_cjk

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(views, "_blank_cjk", counting)
    text = "メールはtaro@example.jpです"
    other = "電話は212-555-0187まで"
    with shared_latin_views():
        first = latin_view(text)
        assert latin_view(text) is first and latin_view(other) == views._CJK.sub(" ", other)
        assert latin_view(text) is first
    assert calls == [text, other]
    latin_view(text)  # outside an analysis: computed, and not kept
    latin_view(text)
    assert calls == [text, other, text, text]
    assert latin_view("ASCII only") == "ASCII only" and len(calls) == 4


def test_the_detector_computes_one_latin_view_per_text(detector: PresidioPII, monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.pii_views as views

    calls: list[str] = []
    real = views._blank_cjk

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(views, "_blank_cjk", counting)
    text = "メールはtaro@example.jpです。カードは4242424242424242、電話は212-555-0187、IPは192.168.0.1です"
    found = found_spans(detector, text)
    assert {kind for kind, _ in found} >= {"EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER", "IP_ADDRESS"}
    assert calls == [text]  # read by the e-mail, card, phone, SSN and every other pattern recognizer


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


# ---------------------------------------------------------------- ASCII hidden in tag characters


def test_ssn_hidden_in_tag_characters_is_found_on_their_span(detector: PresidioPII) -> None:
    hidden = "my ssn is 536-22-1234"
    text = "hello" + tags(hidden) + "!"
    findings = detector.detect(TextItem(text), make_context())
    ssns = [f for f in findings if f.evidence["entity_type"] == "US_SSN"]
    assert [f.span for f in ssns] == [(5, 5 + len(hidden))]  # the tag characters in the original
    assert ssns[0].evidence == {"entity_type": "US_SSN", "recognizer": "UsSsnRecognizer", "view": "tags"}
    assert ssns[0].score >= 0.5  # what the policy redacts
    assert "tag characters" in ssns[0].explanation
    assert_no_pii(findings, ["536-22-1234", tags("536-22-1234"), text[5:-1]])


def test_values_hidden_in_tag_characters_of_japanese_text_and_payloads(detector: PresidioPII) -> None:
    token = base64.b64encode(EMAIL.encode()).decode()
    hidden = f"card 4111 1111 1111 1111, decode {token}"
    text = "こんにちは" + tags(hidden) + "。"
    findings = detector.detect(TextItem(text), make_context())
    got = {(f.evidence["entity_type"], f.evidence.get("view"), f.span) for f in findings}
    span = (5, 5 + len(hidden))
    assert ("CREDIT_CARD", "tags", span) in got
    assert ("EMAIL_ADDRESS", "tags>base64", span) in got
    assert_no_pii(findings, ["4111 1111 1111 1111", EMAIL, token])


def test_tag_text_after_a_black_flag_is_scanned() -> None:
    text = "mail \U0001f3f4" + tags(EMAIL)
    assert [(p.source, p.text, p.span) for p in payload_views(text)] == [("tags", EMAIL, (6, len(text)))]
    flag = "\U0001f3f4" + tags("gbeng") + "\U000e007f"
    assert payload_views(f"the flag {flag} of england") == []
