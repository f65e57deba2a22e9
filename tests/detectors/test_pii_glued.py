"""Values written in ASCII glued to Japanese script, which regular-expression word boundaries do not
split from kana and kanji: presidio's URL, IP address, crypto wallet, US passport and other pattern
recognizers match on `detectors.pii_views.latin_view` as the e-mail, card, phone and SSN ones do; and e-mail
addresses whose local part is written in Japanese script (RFC 6531)."""

from __future__ import annotations

import pytest

from detectors.base import TextItem
from detectors.pii import PresidioPII
from detectors.pii_views import email_view, latin_view
from detectors.testing import assert_no_pii, found_spans, make_context


@pytest.fixture(scope="module")
def patterns_only() -> PresidioPII:
    det = PresidioPII(ner=False)
    det.load()
    return det


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("サイトはhttps://example.com/aです", "URL", "https://example.com/a"),
        ("詳しくはwww.example.comを見て", "URL", "www.example.com"),
        ("IPは192.168.0.1です", "IP_ADDRESS", "192.168.0.1"),
        ("サーバー10.0.0.12に接続", "IP_ADDRESS", "10.0.0.12"),
        ("IPv6は2001:db8::1です", "IP_ADDRESS", "2001:db8::1"),
        ("ビットコインは1BoatSLRHtKNngkdXEeobR76b53LETtpyTに送金", "CRYPTO", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"),
        ("MACアドレスは00:1A:2B:3C:4D:5Eです", "MAC_ADDRESS", "00:1A:2B:3C:4D:5E"),
        ("IDは123e4567-e89b-12d3-a456-426614174000です", "UUID", "123e4567-e89b-12d3-a456-426614174000"),
        ("ITINは912-78-1234です", "US_ITIN", "912-78-1234"),
        ("日付は2024-05-01です", "DATE_TIME", "2024-05-01"),
        ("DEA番号BB1388568", "MEDICAL_LICENSE", "BB1388568"),
    ],
)
@pytest.mark.parametrize("fixture", ["patterns_only", "default_pii"])
def test_values_glued_to_japanese_script(
    fixture: str, text: str, entity: str, value: str, request: pytest.FixtureRequest
) -> None:
    det: PresidioPII = request.getfixturevalue(fixture)
    found = det.detect(TextItem(text), make_context())
    spans = [(f.evidence["entity_type"], text[f.span[0] : f.span[1]]) for f in found if f.span]
    assert (entity, value) in spans
    assert [kind for kind, _ in spans].count(entity) == 1
    assert_no_pii(found, [value])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("サイトは「https://example.com/a」です", "https://example.com/a"),  # Japanese punctuation ends it
        ("サイトはhttps://example.com/a。次に", "https://example.com/a"),
        ("ここhttps://example.com/a?q=1を見て", "https://example.com/a?q=1"),
        # Japanese script right after a path or query delimiter is the IRI going on (RFC 3987)
        ("記事https://ja.wikipedia.org/wiki/東京、読んで", "https://ja.wikipedia.org/wiki/東京"),
        ("検索https://example.com/search?q=山田太郎 です", "https://example.com/search?q=山田太郎"),
        ("see https://ja.wikipedia.org/wiki/東京 now", "https://ja.wikipedia.org/wiki/東京"),
    ],
)
def test_url_ends_where_japanese_text_goes_on(patterns_only: PresidioPII, text: str, value: str) -> None:
    assert found_spans(patterns_only, text) == [("URL", value)]


def test_url_is_no_name_to_ginza(default_pii: PresidioPII) -> None:
    # GiNZA tagged the URL, glued or not, as a PERSON that outscored the URL recognizer
    for text in ("サイトはhttps://example.com/aです", "サイトは https://example.com/a です"):
        assert found_spans(default_pii, text) == [("URL", "https://example.com/a")]


def test_english_urls_and_addresses_are_read_as_before(patterns_only: PresidioPII) -> None:
    text = "Docs at https://example.com/a/b?x=1, server 192.168.0.1, wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT."
    found = found_spans(patterns_only, text)
    assert ("URL", "https://example.com/a/b?x=1,") in found  # presidio's own span, unchanged
    assert ("IP_ADDRESS", "192.168.0.1") in found
    assert ("CRYPTO", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT") in found


# ---------------------------------------------------------------- e-mail local parts in Japanese script


def test_email_view_keeps_japanese_script_before_an_at_sign() -> None:
    text = "メールは山田@example.jpです、taro@example.jpも"
    view = email_view(text)
    assert len(view) == len(text)
    assert view.split() == ["は山田@example.jp", "、taro@example.jp"]
    assert email_view("お客様山田@x.jp").split() == ["お客様山田@x.jp"]
    assert email_view("メールはtaro@example.jpです") == latin_view("メールはtaro@example.jpです")
    assert email_view("no address here") == "no address here"
    long_run = "あ" * 30 + "@example.jp"  # a local part holds 64 octets: 21 characters of 3 octets
    assert email_view(long_run).split() == ["あ" * 21 + "@example.jp"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("山田@example.jp", "山田@example.jp"),
        ("連絡先: 山田太郎@example.jp まで", "山田太郎@example.jp"),
        ("「やまだ@example.jp」に送って", "やまだ@example.jp"),
        # glued to the words before it, the local part starts after a word labelling an address,
        # with the particle after it, which may be the name's first letter; without such a word it
        # cannot be told from the words before it, which are covered too
        ("メールは山田@example.jpです", "は山田@example.jp"),
        ("メールアドレスは山田太郎@example.jpです", "は山田太郎@example.jp"),
        ("お問い合わせ先はサポート@example.jpまで", "はサポート@example.jp"),
        ("宛先はるか@example.jp", "はるか@example.jp"),
        ("連絡先のりこ@example.jp", "のりこ@example.jp"),
        ("お客様山田@example.jpへ", "お客様山田@example.jp"),
        ("メールマガジン@example.jp", "メールマガジン@example.jp"),  # no particle: one word
        # an ASCII local part glued to Japanese script is the ASCII alone, as before
        ("メールはtaro@example.jpです", "taro@example.jp"),
    ],
)
@pytest.mark.parametrize("fixture", ["patterns_only", "default_pii"])
def test_email_with_a_japanese_local_part(fixture: str, text: str, value: str, request: pytest.FixtureRequest) -> None:
    from gateway.redaction import redact_text

    det: PresidioPII = request.getfixturevalue(fixture)
    found = det.detect(TextItem(text), make_context())
    emails = [f for f in found if f.evidence["entity_type"] == "EMAIL_ADDRESS"]
    assert [text[f.span[0] : f.span[1]] for f in emails] == [value]
    assert emails[0].score >= 0.5  # what the policy redacts
    assert "URL" not in {f.evidence["entity_type"] for f in found}  # not the domain alone
    redacted = redact_text(text, emails)
    assert "@" not in redacted and "example.jp" not in redacted
    assert_no_pii(found, [value])


def test_email_view_stays_linear_in_a_long_japanese_text() -> None:
    # the local-part pattern is anchored at the start of a run of Japanese script; unanchored it
    # rescanned the run from every position (32,000 characters: about 11 s)
    import time

    text = "あ" * 32_000 + " x@example.jp"
    start = time.perf_counter()
    view = email_view(text)
    assert time.perf_counter() - start < 0.5
    assert len(view) == len(text) and view.endswith("x@example.jp")


def test_every_pattern_recognizer_of_presidio_reads_the_latin_view(patterns_only: PresidioPII) -> None:
    """No presidio pattern recognizer is left that matches on the text as written, but UK_NHS's and
    the weak US bank and licence ones: each one loaded is replaced by one that reads `latin_view`,
    or by the project's own."""
    from presidio_analyzer import PatternRecognizer

    from detectors.pii_recognizers import _ReadsLatinView

    assert patterns_only._analyzer is not None
    kept = {"NhsRecognizer", "UsBankRecognizer", "UsLicenseRecognizer"}
    for recognizer in patterns_only._analyzer.registry.recognizers:
        mine = type(recognizer).__module__.startswith("detectors.")
        if not mine and isinstance(recognizer, PatternRecognizer) and recognizer.name not in kept:
            bounded = [p.name for p in recognizer.patterns if "\\b" in p.regex]
            assert not bounded, f"{recognizer.name} matches {bounded} on the text as written"
    names = {type(r).__name__ for r in patterns_only._analyzer.registry.recognizers if isinstance(r, _ReadsLatinView)}
    assert {"MamoriUsItinRecognizer", "MamoriDateRecognizer", "MamoriUuidRecognizer"} <= names


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("旅券番号はA12345678です", "US_PASSPORT"),
        ("パスポート番号 A12345678", "US_PASSPORT"),
        ("運転免許証は A12345678 です", "US_DRIVER_LICENSE"),
        ("My passport number is A12345678", "US_PASSPORT"),
    ],
)
def test_passport_or_licence_by_japanese_context_words(default_pii: PresidioPII, text: str, entity: str) -> None:
    """A letter and eight digits is a passport and a driver's licence number to presidio's
    patterns; the context words tell which, in Japanese as in English."""
    assert found_spans(default_pii, text) == [(entity, "A12345678")]


@pytest.mark.parametrize(
    "text", ["電話は0312345674です。", "注文番号0312345674の件", "伝票番号A1234567です", "注文番号12345678の件"]
)
def test_weak_shapes_glued_to_japanese_are_not_read(patterns_only: PresidioPII, text: str) -> None:
    """0312345674 passes the UK NHS checksum (as one ten-digit number in eleven does); glued to
    Japanese script it is a phone or order number, not a UK_NHS at 1.0. Glued order numbers and
    slip numbers are no bank numbers or driver's licences either."""
    kinds = {kind for kind, _ in found_spans(patterns_only, text)}
    assert not kinds & {"UK_NHS", "US_BANK_NUMBER", "US_DRIVER_LICENSE"}
