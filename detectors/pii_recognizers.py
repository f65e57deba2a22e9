"""Mamori's replacements and additions to presidio's predefined recognizers (language-neutral text).

- Payment cards: presidio's pattern knows neither 2-series Mastercard, 15-digit JCB, 19-digit Visa
  nor 12-digit Maestro numbers. Here any 12-19 digit number (in groups of spaces or dashes) with a
  right Luhn check digit is a candidate, kept when its issuer prefix allows its length (score 1.0,
  as presidio's validated cards). Twelve-digit numbers (Maestro only, and as long as other
  identifiers such as Japan's My Number) also need a card word nearby. A number of 13-19 digits
  outside the known issuer ranges is kept only next to a card word, with a lower score (0.6).
  Thirteen digits with a right EAN-13 check digit are a barcode (JAN codes start with 45 or 49,
  as Visa cards do, and one in ten passes Luhn): a card only next to a card word and no barcode
  word (JAN, EAN, GTIN, barcode, バーコード, 商品コード).
- Phone numbers: presidio's `PhoneRecognizer` accepts only numbers that libphonenumber validates
  for eight regions, so local formats ("467 3395"), unallocated ranges and many countries' numbers
  are missed. Kept as it is, and a second tier adds phone-shaped digit groups (7-15 digits, with
  `+`, `(0)`, area codes in parentheses, dots, dashes or spaces, and an extension) when a phone word
  stands next to them (phone, tel, mobile, fax, call, ... before; or a label such as "office" right
  before or after; the Japanese words 電話, 携帯, 連絡先, ファックス count too). An extension after
  a validated number is included in its span.
- Values written in ASCII glued to Japanese script ("カードは4242424242424242です", "私のSSNは
  536-22-1234です", "IPは192.168.0.1です"): the card, phone and US_SSN recognizers, and presidio's other
  pattern recognizers (`LATIN_VIEW_RECOGNIZERS`: URL, IP and MAC address, crypto wallet, US passport
  and ITIN, medical licence, date, UUID; not the weak or checksum-only UK NHS, US bank and licence
  ones, `TEXT_AS_WRITTEN_RECOGNIZERS`), match on
  `detectors.pii_views.latin_view` (Japanese, Chinese and Korean characters blanked, same length),
  since regular-expression word boundaries do not split kana or kanji from ASCII; their context
  words are read in the text. A URL stops at Japanese punctuation ("https://example.com/a」です" is
  "https://example.com/a"), and goes on over Japanese script right after a path or query delimiter
  (an IRI, RFC 3987: "https://ja.wikipedia.org/wiki/東京", "?q=東京"), up to a space or a
  punctuation mark; after other characters the Japanese script is the sentence going on
  ("https://example.com/aです").
- URLs: presidio's pattern has no left boundary and is tried at every position, where it scans 253
  characters and tests ~500 top-level domains at each dot ("a."*2000: 3 s). It is tried only at the
  positions where a match can start (`url_match_starts`: up to 253 host characters before a dot and
  a top-level domain), which finds what presidio finds in linear time.
- E-mail addresses written out ("taro (at) example.jp", "john.smith at example dot com",
  `written_email_recognizer`); nine digits without dashes right after an SSN word ("My SSN is
  536221234", 0.65 instead of presidio's 0.4).
- My Number or card: `is_card_number` says whether digits are reported as a card number (Luhn,
  then issuer range and length or a card word), for the My Number recognizer
  (`detectors.pii_ja`) to tell twelve digits written beside a fourth group of four from the
  middle of a card number.
- Person names from cues: a capitalised name after a title (Mr, Ms, Dr, ...) or after "name is",
  "Name:", "call me" ("called"/"named" score lower: things are called too); after a role written
  as a title ("Producer Vilhjálmur Georgsson", 0.7; not ordinary words: "CEO Summit"); the subject
  of "lives at / on / in" an address with a number ("Timotea lives on Via dei Fiorentini 17",
  not a pronoun); the speaker named after a quotation ('"...," says Navrátilová.', "... ! said
  Gladys to Logan"; as high as the NER's own score, so that the cue stands beside the model's
  reading of an unfamiliar name as a place). The speaker, role and lives-at cues skip what the NER
  reads as an organisation or product made of known words ('"...," said Microsoft.'). In text
  written in lowercase, a name capitalised in its truecased copy (`detectors.pii_truecase`).
- The NER recognizer drops PERSON and NRP spans holding digits (street names, dates and phone
  numbers the model mistakes for people), "://" or "@" (URLs and e-mail addresses: GiNZA tags
  "https://example.com/a" in Japanese text as a person) and spans with fewer than two letters, trims the
  whitespace, quoting and final full stop it sometimes includes, and cuts a PERSON or NRP span
  at a line break (a name does not run over two lines).
- Street names are not people: the NER recognizer drops a PERSON span that is part of a street
  address, that is one that holds or is followed by a street designator ("Zachary Cliffs",
  "Main St.", "Hoge Wei 32 St."), follows a street word written before the name
  ("Rue de Virton", "Rua João Pessoa", "ul. Cicha", "Via ...") or a ship's name in a military
  postal address ("USNV Vincent"), or stands between a house number and another number
  ("03751 Gerrit Achterberghove 137", "83393 Pärna 33"). Designators count only when
  capitalised (or after a name written in lowercase: "alameda street"); those that are also
  names (Way, Lane, Court, ...) only after a house number ("1317 Kimberly Way"), and those that
  are common surnames (Hill, Green, Park, ...) not at all. Nor are the two streets of a corner
  ("the corner of Kuusiku 7 and Alexander Flat", "Maarit and Hersnapvej 75."; not "In the corner
  of the frame, Barack Obama" nor "Obama and Biden 2012.") or the town after a unit number ("Apt.
  417 Csipkerek Vas").
- Words are not people: with the pipeline's word frequencies (`detectors.pii_truecase.Truecaser`)
  the NER recognizer drops a PERSON span made only of words written in lowercase at least twice
  as often as capitalised ("Guilty Pleasures", "Letter", "Developer Mode", "Maximum"). On
  benign, jailbreak and I2P prompts this removed 272 of 10,375 PERSON findings at score 0.5 or
  more; the only names among them are "Guy", a cartoon villain ("Scar") and "jfk assassination".
- Things are not people: a span that its sentence calls a film, a book, a company, a band, ...
  ("Zoolander is a 1996 Scottish action-comedy film directed by ..."), or that ends with a firm
  word ("Galorath Incorporated"); nor is the place of one word that one comes from ("originally
  from Eckenroth"; journeys "to" are not read: "the ball flew to Ronaldo").
- Partners naming a firm are not people: a list of single words alone on its line in an address
  block ("Barnett, Melton and Garcia", "Slaughter & May"; a cast list stays people) or before a
  firm word ("Clark, Romero and Hall Orchestra"), nor is a single word alone on its line right
  under the addressee of an address block (the firm line of a mailing label,
  `detectors.pii_addressee.firm_line`).
- The checks of the last three points run on the NER span once trimmed and cut at its line break.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable
from typing import Any

import regex
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    DateRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    MedicalLicenseRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UrlRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
    UuidRecognizer,
)

from detectors.pii_addressee import ends_with_firm_word, firm_line, heads_address_block
from detectors.pii_results import explained_result
from detectors.pii_truecase import TruecasedNlpArtifacts, Truecaser, is_uncased
from detectors.pii_views import latin_view

__all__ = [
    "LATIN_VIEW_RECOGNIZERS",
    "TEXT_AS_WRITTEN_RECOGNIZERS",
    "card_number_plausible",
    "ean13_valid",
    "in_firm_name",
    "in_street_address",
    "is_card_number",
    "is_place",
    "is_thing",
    "latin_view_recognizer",
    "luhn_valid",
    "mamori_ner_recognizer",
    "ordinary_words",
    "payment_card_recognizer",
    "person_cue_recognizer",
    "phone_recognizer",
    "text_as_written_recognizer",
    "us_ssn_recognizer",
    "written_email_recognizer",
]

# ---------------------------------------------------------------- payment cards

_CARD_CONTEXT = re.compile(
    r"card|credit|debit|visa|master\s?card|maestro|amex|american express|discover|jcb|diners|unionpay|"
    r"カード|クレジット|デビット",
    re.IGNORECASE,
)
_MY_NUMBER_CONTEXT = re.compile(r"マイナンバー|個人番号|my\s?number", re.IGNORECASE)
_BARCODE_CONTEXT = re.compile(
    r"バーコード|商品コード|JANコード|(?<![a-z])(?:jan|ean|ean-?13|gtin|barcode|bar code|isbn|upc)(?![a-z])",
    re.IGNORECASE,
)


def ean13_valid(digits: str) -> bool:
    """The check digit of an EAN-13 (JAN, GTIN-13, ISBN-13) barcode number."""
    if len(digits) != 13 or not digits.isdigit():
        return False
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == int(digits[12])


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return bool(digits) and total % 10 == 0


def _prefix_in(digits: str, low: int, high: int) -> bool:
    width = len(str(low))
    return len(digits) >= width and low <= int(digits[:width]) <= high


def card_number_plausible(digits: str) -> bool:
    """Whether an issuer uses this prefix with this length (ISO/IEC 7812 issuer ranges)."""
    n = len(digits)
    rules: list[tuple[bool, range | tuple[int, ...]]] = [
        (digits.startswith("4"), (13, 16, 19)),  # Visa
        (_prefix_in(digits, 51, 55) or _prefix_in(digits, 2221, 2720), (16,)),  # Mastercard
        (digits[:2] in ("34", "37"), (15,)),  # American Express
        (_prefix_in(digits, 300, 305) or digits[:2] in ("36", "38", "39") or digits[:4] == "3095", range(14, 20)),
        (digits[:4] == "6011" or _prefix_in(digits, 644, 649) or digits[:2] == "65", range(16, 20)),  # Discover
        (_prefix_in(digits, 3528, 3589), range(16, 20)),  # JCB
        (digits[:4] in ("2131", "1800"), (15,)),  # JCB, 15 digits
        (digits[:2] in ("62", "81"), range(16, 20)),  # UnionPay
        (_prefix_in(digits, 2200, 2204), range(16, 20)),  # Mir
        (digits[:2] == "60" or digits[:3] == "508", (16,)),  # RuPay
        (digits.startswith("1"), (15,)),  # UATP
        (digits[:2] == "50" or _prefix_in(digits, 56, 69), range(12, 20)),  # Maestro
    ]
    return any(match and n in lengths for match, lengths in rules)


def _card_reading(text: str, start: int, end: int) -> str | None:
    """How text[start:end], digits with a right Luhn check digit, reads as a card number: "issuer"
    (an issuer uses its prefix with its length; twelve digits only next to a card word, and not a
    My Number card's), "card_word" (13 digits or more outside the known ranges, next to a card
    word), or None (no card number)."""
    digits = re.sub(r"\D", "", text[start:end])
    window = text[max(0, start - 48) : start] + text[end : end + 16]
    near_card_word = _CARD_CONTEXT.search(window) is not None
    if len(digits) == 13 and ean13_valid(digits) and (_BARCODE_CONTEXT.search(window) or not near_card_word):
        # a JAN (EAN-13) barcode: every Japanese one starts with 45 or 49, like a Visa card, and one
        # in ten passes Luhn; thirteen-digit cards (old Visa only) count only when called a card
        return None
    if card_number_plausible(digits):
        if len(digits) == 12 and (not near_card_word or _MY_NUMBER_CONTEXT.search(window)):
            return None  # 12 digits: a Maestro card only when called a card, not a My Number card
        return "issuer"
    if near_card_word and len(digits) >= 13:
        return "card_word"
    return None


def is_card_number(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is reported as a payment card number (`payment_card_recognizer`):
    a right Luhn check digit, and an issuer range that allows its length or a card word nearby."""
    return luhn_valid(re.sub(r"\D", "", text[start:end])) and _card_reading(text, start, end) is not None


def payment_card_recognizer(language: str) -> Any:
    """A CREDIT_CARD recognizer: issuer prefix and length, Luhn, and a card word for 12 digits."""

    class MamoriCreditCardRecognizer(CreditCardRecognizer):
        UNKNOWN_ISSUER_SCORE = 0.6

        def validate_result(self, pattern_text: str) -> bool:
            return luhn_valid(re.sub(r"\D", "", pattern_text))

        def analyze(
            self,
            text: str,
            entities: list[str],
            nlp_artifacts: NlpArtifacts | None = None,
            regex_flags: int | None = None,
        ) -> list[RecognizerResult]:
            kept = []
            for r in super().analyze(latin_view(text), entities, nlp_artifacts, regex_flags):
                reading = _card_reading(text, r.start, r.end)
                if reading is None:
                    continue
                if reading == "card_word":
                    # Issuer tables lag behind new ranges: a Luhn-valid number called a card is kept,
                    # with a lower score.
                    r.score = self.UNKNOWN_ISSUER_SCORE
                    r.recognition_metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
                kept.append(r)
            return kept

    return MamoriCreditCardRecognizer(
        patterns=[Pattern("card_12_19_digits", r"(?<![\w.,/-])\d(?:[ -]?\d){11,18}(?![\w/-]|[.,]\d)", 0.3)],
        supported_language=language,
        name="CreditCardRecognizer",
    )


# ---------------------------------------------------------------- phone numbers

_PHONE_WORDS = (
    r"phone|telephone|tel|mobile|mob|cell|cellphone|fax|call|calling|ring|sms|whatsapp|"
    r"contact|reach|dial|landline|hotline|switchboard|answering|voicemail"
)
# ... and in Japanese (no word boundaries there: "電話は212-555-0187まで")
_PHONE_WORDS_JA = r"電話|携帯|連絡先|ファックス|ファクス"
_PHONE_WORD_NEAR = re.compile(rf"\b(?:{_PHONE_WORDS})\b|{_PHONE_WORDS_JA}", re.IGNORECASE)
_LABEL_WORDS = r"office|desk|home|work|direct|main|personal|business"
_LABEL_BEFORE = re.compile(rf"\b(?:{_LABEL_WORDS})\s*[:.\-]?\s*$", re.IGNORECASE)
_LABEL_AFTER = re.compile(rf"^\s*[-,(]?\s*(?:office|desk|home|work|{_PHONE_WORDS})\b", re.IGNORECASE)
_PHONE_SHAPE = re.compile(
    r"""
    (?<![\w+/.-])(?<!\d,)
    (?:(?:\+|00)\d{1,3}[ .-]?(?:\(0\)[ .-]?)?)?       # +46 (0), 0044
    (?:\(\d{1,5}\)[ .-]?)?                            # (37), (579)
    (?:\d{7,15}|\d{1,5}(?:[ .-]\d{1,8}){1,5})          # 3660170548, 467 3395, 71-33-52-22, 030 12345678
    (?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?         # x769
    (?![\w/]|[.,-]\d)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6}\b", re.IGNORECASE)
_MIN_PHONE_DIGITS = 7


def _phone_context(text: str, start: int, end: int) -> bool:
    """A phone word within 40 characters before or 20 after, or a label word right next to it."""
    before, after = text[max(0, start - 40) : start], text[end : end + 20]
    return bool(
        _PHONE_WORD_NEAR.search(before)
        or _PHONE_WORD_NEAR.search(after)
        or _LABEL_BEFORE.search(before)
        or _LABEL_AFTER.match(after)
    )


def phone_recognizer(language: str) -> Any:
    """presidio's validated phone numbers, plus phone-shaped numbers next to a phone word."""

    class MamoriPhoneRecognizer(PhoneRecognizer):
        CONTEXT_SCORE = 0.6  # phone-shaped, next to a phone word
        VALIDATED_CONTEXT_SCORE = 0.75  # valid for a region, next to a phone word (presidio's 0.4 + 0.35)

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
            if sum(c.isdigit() for c in text) < _MIN_PHONE_DIGITS:
                return []  # nothing to find: spares libphonenumber's scan per region
            results: list[RecognizerResult] = []
            recognizer_name = str(getattr(self, "name", "PhoneRecognizer"))
            latin = latin_view(text)  # numbers glued to Japanese script ("電話は212-555-0187です")
            for r in super().analyze(latin, entities, nlp_artifacts):
                if sum(c.isdigit() for c in text[r.start : r.end]) < _MIN_PHONE_DIGITS:
                    continue
                ext = _EXTENSION.match(text, r.end)
                if ext:
                    r.end = ext.end()
                if _phone_context(text, r.start, r.end):  # presidio's own list lacks fax, tel, desk, ...
                    r.score = self.VALIDATED_CONTEXT_SCORE
                    r.recognition_metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
                results.append(r)
            for m in _PHONE_SHAPE.finditer(latin):
                start, end = m.span()
                number = _EXTENSION.split(m.group())[0]
                if not _MIN_PHONE_DIGITS <= sum(c.isdigit() for c in number) <= 15:
                    continue
                if any(start < r.end and r.start < end for r in results):
                    continue
                if not _phone_context(text, start, end):
                    continue
                results.append(
                    explained_result(
                        self.supported_entities[0],
                        start,
                        end,
                        self.CONTEXT_SCORE,
                        "phone-shaped number next to a phone word",
                        recognizer=recognizer_name,
                        explainer=type(self).__name__,
                        identifier=self.id,
                        context_enhanced=True,
                    )
                )
            return EntityRecognizer.remove_duplicates(results)

    return MamoriPhoneRecognizer(supported_language=language, name="PhoneRecognizer")


# ---------------------------------------------------------------- e-mail addresses written out

_OPEN, _CLOSE = r"[\[({<]", r"[\])}>]"
_AT_BRACKETED = rf"[ \t]*{_OPEN}[ \t]*at[ \t]*{_CLOSE}[ \t]*"
_DOT_WRITTEN = rf"(?:[ \t]*{_OPEN}[ \t]*dot[ \t]*{_CLOSE}[ \t]*|[ \t]+dot[ \t]+)"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_WRITTEN_EMAIL = re.compile(
    r"(?<![\w.%+-])(?P<local>[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?)"
    rf"(?P<at>{_AT_BRACKETED}|[ \t]+at[ \t]+)"
    rf"(?P<domain>{_LABEL}(?:(?:{_DOT_WRITTEN}|\.){_LABEL}){{1,6}})(?![\w@-]|\.\w)",
    re.IGNORECASE,
)
_DOT_SPLIT = re.compile(rf"{_DOT_WRITTEN}|\.", re.IGNORECASE)
#: Words that stand before a plain "at" in prose, not as an address's local part ("find us at shop
#: dot com", "write me at ..."): such an "at" is read only in brackets ("us [at] example [dot] com").
_PROSE_BEFORE_AT = frozenset({"i", "me", "we", "us", "you", "him", "her", "it", "them", "one", "everyone", "anyone"})


def written_email_recognizer(language: str) -> Any:
    """EMAIL_ADDRESS written out to dodge scrapers: "taro (at) example.jp", "john.smith [at] example
    [dot] com" (`BRACKETED_SCORE`), "john.smith at example dot com" (`SPELLED_SCORE`). An "at"
    without brackets counts only with a "dot" written out too, or a local part holding a dot, a
    digit or an underscore ("meet me at example.com" is no address), and never after a pronoun
    ("find us at shop dot com"); the domain must end in a known public suffix (tldextract's bundled
    list, offline)."""
    import tldextract

    extractor = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class WrittenEmailRecognizer(EntityRecognizer):
        BRACKETED_SCORE = 0.85
        SPELLED_SCORE = 0.6

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
            results = []
            for m in _WRITTEN_EMAIL.finditer(text):
                bracketed = "at" not in m.group("at").strip().lower()[:2]
                labels = _DOT_SPLIT.split(m.group("domain"))
                dot_written = len(labels) > m.group("domain").count(".") + 1
                if not bracketed and not dot_written and not re.search(r"[._\d]", m.group("local")):
                    continue
                if not bracketed and m.group("local").lower() in _PROSE_BEFORE_AT:
                    continue
                if not extractor(".".join(labels)).fqdn:
                    continue
                score = self.BRACKETED_SCORE if bracketed else self.SPELLED_SCORE
                results.append(
                    explained_result(
                        "EMAIL_ADDRESS",
                        m.start(),
                        m.end(),
                        score,
                        'an e-mail address with "at" or "dot" written out',
                        recognizer=str(getattr(self, "name", "WrittenEmailRecognizer")),
                        explainer=type(self).__name__,
                        identifier=self.id,
                    )
                )
            return results

    return WrittenEmailRecognizer(
        supported_entities=["EMAIL_ADDRESS"], supported_language=language, name="WrittenEmailRecognizer"
    )


# ---------------------------------------------------------------- SSN and presidio's other patterns: glued values


class _ReadsLatinView(PatternRecognizer):
    """A presidio pattern recognizer that matches on `latin_view` (context words are read in the
    text by presidio's context enhancer)."""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = super().analyze(latin_view(text), entities, nlp_artifacts, regex_flags)
        return results


# Class names must not clash with presidio's own: its loader finds recognizer classes by name.
_SSN_CUE = re.compile(r"(?<![a-z])(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?)(?![a-z])", re.IGNORECASE)
_SSN_CUE_WINDOW = 32


class MamoriUsSsnRecognizer(_ReadsLatinView, UsSsnRecognizer):
    """presidio's US_SSN recognizer, matching also where the number is glued to Japanese script.
    Nine digits without the usual dashes ("My SSN is 536221234": presidio's weak patterns, 0.05,
    0.4 with its context word) score `CUE_SCORE` right after an SSN word (within 32 characters)."""

    CUE_SCORE = 0.65
    WEAK_SCORE = 0.5  # presidio's "medium" pattern (536-22-1234): its context word raises it to 0.85

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for r in results:
            if r.score < self.WEAK_SCORE and _SSN_CUE.search(text, max(0, r.start - _SSN_CUE_WINDOW), r.start):
                r.score = self.CUE_SCORE
                r.recognition_metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
        return results


class MamoriIpRecognizer(_ReadsLatinView, IpRecognizer):
    """presidio's IP_ADDRESS recognizer, matching also where the address is glued to Japanese script."""


class MamoriCryptoRecognizer(_ReadsLatinView, CryptoRecognizer):
    """presidio's CRYPTO recognizer, matching also where the address is glued to Japanese script."""


class MamoriUsPassportRecognizer(_ReadsLatinView, UsPassportRecognizer):
    """presidio's US_PASSPORT recognizer, matching also where the number is glued to Japanese script."""


class MamoriUsItinRecognizer(_ReadsLatinView, UsItinRecognizer):
    """presidio's US_ITIN recognizer, matching also where the number is glued to Japanese script."""


class MamoriDateRecognizer(_ReadsLatinView, DateRecognizer):
    """presidio's DATE_TIME recognizer, matching also where the date is glued to Japanese script."""


class MamoriMedicalLicenseRecognizer(_ReadsLatinView, MedicalLicenseRecognizer):
    """presidio's MEDICAL_LICENSE recognizer, matching also where the number is glued to Japanese script."""


class MamoriMacAddressRecognizer(_ReadsLatinView, MacAddressRecognizer):
    """presidio's MAC_ADDRESS recognizer, matching also where the address is glued to Japanese script."""


class MamoriUuidRecognizer(_ReadsLatinView, UuidRecognizer):
    """presidio's UUID recognizer, matching also where the value is glued to Japanese script."""


# Japanese (and CJK) punctuation, which no URL holds as it is: 、。「」『』【】・ ... (not the wave
# dash 〜, which IMEs write for "~")
_CJK_PUNCTUATION = re.compile(r"[\u3000-\u301b\u301d-\u303f\u30fb]")
# what goes on an IRI after a delimiter: anything up to a space, a quote, a bracket or punctuation
_IRI_REST = re.compile(r"[^\s()<>\"'\u3000-\u301b\u301d-\u303f\u30fb]*")
_PATH_DELIMITERS = "/?=&#"


# presidio's URL pattern is `(www\d{0,3}[.])?[a-z0-9.\-]{1,253}[.](?:com|...)` (no left boundary):
# tried at every position, it scans 253 characters and tests its ~500 top-level domains at every
# dot before failing ("a."*2000: 3 s). A match needs a dot followed by a top-level domain (a "hit")
# at most 253 host characters after its host starts, so only those positions are tried.
_URL_HOST = regex.compile(r"(?i)[a-z0-9.\-]+")  # presidio's host characters, with its flags and engine
_URL_MAX_HOST = 253
_URL_WWW = regex.compile(r"(?i)www\d{0,3}[.]")
_URL_SCHEME = regex.compile(r"(?i)https?://")
_URL_QUOTED = regex.compile(r"[\"'](?i:https?://)?")
_TLD_GROUP = regex.search(r"\[\.\]\(\?:(.*?)\)\(\?:/", UrlRecognizer.BASE_URL_REGEX)
_URL_TLD_HIT = regex.compile(r"(?i)[.](?:" + _TLD_GROUP.group(1) + ")") if _TLD_GROUP else None
#: presidio's URL patterns, by name, whose start positions `url_match_starts` knows
URL_PATTERNS = frozenset({"Standard Url", "Non schema URL", "Quoted URL", "Quoted Non-schema URL"})


def _url_host_starts(text: str) -> list[tuple[int, int]]:
    """The positions from which presidio's host part (253 host characters at most, then a dot and a
    top-level domain) matches, as
    sorted disjoint ranges: within a run of host characters, up to 253 characters before a hit."""
    assert _URL_TLD_HIT is not None
    hits = [m.start() for m in _URL_TLD_HIT.finditer(text)]
    if not hits:
        return []
    ranges: list[tuple[int, int]] = []
    i = 0
    for run in _URL_HOST.finditer(text):
        while i < len(hits) and hits[i] < run.start():
            i += 1
        j = i
        while j < len(hits) and hits[j] < run.end():
            low = max(run.start(), hits[j] - _URL_MAX_HOST)
            if ranges and low <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], hits[j])
            else:
                ranges.append((low, hits[j]))
            j += 1
        i = j
    return ranges


def url_match_starts(text: str) -> dict[str, list[int]]:
    """Per presidio URL pattern (`URL_PATTERNS`), the positions where a match may start: every
    position where one starts is in the list, so matching only there finds what `finditer` finds.
    Linear in the text: at most one position per character."""
    host = _url_host_starts(text)
    bounds = [b for _, b in host]

    def host_from(pos: int) -> bool:  # the host part matches from pos, with or without "www."
        www = _URL_WWW.match(text, pos)
        return any(
            k < len(host) and host[k][0] <= p < host[k][1]
            for p in ((pos, www.end()) if www else (pos,))
            for k in (bisect.bisect_right(bounds, p),)
        )

    non_schema = [s for a, b in host for s in range(a, b)]
    non_schema += [m.start() for m in _URL_WWW.finditer(text) if host_from(m.end())]
    standard = [m.start() for m in _URL_SCHEME.finditer(text) if host_from(m.end())]
    quoted = [m.start() for m in _URL_QUOTED.finditer(text) if host_from(m.end())]
    return {
        "Non schema URL": sorted(set(non_schema)),
        "Standard Url": standard,
        "Quoted URL": quoted,
        "Quoted Non-schema URL": quoted,
    }


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str, flags: int) -> Any:
    return regex.compile(pattern, flags=flags)


def _patterns(recognizer: PatternRecognizer) -> list[Pattern]:
    patterns: list[Pattern] = getattr(recognizer, "patterns", [])
    return patterns


def _matches_at(compiled: Any, text: str, starts: list[int]) -> list[Any]:
    """What `compiled.finditer(text)` finds, when every match starts at one of `starts` (sorted)."""
    found = []
    end = 0
    for s in starts:
        if s < end:
            continue
        m = compiled.match(text, s)
        if m is not None and m.end() > m.start():
            found.append(m)
            end = m.end()
    return found


class MamoriUrlRecognizer(_ReadsLatinView, UrlRecognizer):
    """presidio's URL recognizer, matching also where the URL is glued to Japanese script: the URL
    stops at Japanese punctuation, and goes on over Japanese script only right after a path or
    query delimiter (module docstring). Its patterns are tried only where a match can start
    (`url_match_starts`), so crafted text ("a."*2000) costs linear time."""

    def _url_patterns(self, text: str, regex_flags: int | None) -> list[RecognizerResult]:
        """presidio's `PatternRecognizer` matching (score, explanation, duplicates), at the starts
        that `url_match_starts` gives."""
        flags: int = regex_flags or self.global_regex_flags or 0
        name = str(getattr(self, "name", "UrlRecognizer"))
        starts = url_match_starts(text)
        results = []
        for pattern in _patterns(self):
            for m in _matches_at(_compiled(pattern.regex, flags), text, starts[pattern.name]):
                explanation = AnalysisExplanation(
                    recognizer=name,
                    original_score=pattern.score,
                    pattern_name=pattern.name,
                    pattern=pattern.regex,
                    regex_flags=flags,
                    textual_explanation=f"Detected by `{name}` using pattern `{pattern.name}`",
                )
                results.append(
                    RecognizerResult(
                        entity_type=self.supported_entities[0],
                        start=m.start(),
                        end=m.end(),
                        score=pattern.score,
                        analysis_explanation=explanation,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        deduplicated: list[RecognizerResult] = EntityRecognizer.remove_duplicates(results)
        return deduplicated

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        if _URL_TLD_HIT is not None and {p.name for p in _patterns(self)} <= URL_PATTERNS:
            results = self._url_patterns(latin_view(text), regex_flags)
        else:  # another presidio release: its own patterns, tried everywhere
            results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        if text.isascii():
            return results
        latin = latin_view(text)
        kept = []
        for r in results:
            end = r.end
            if end < len(text) and latin[end] != text[end] and text[end - 1] in _PATH_DELIMITERS:
                rest = _IRI_REST.match(text, end)
                end = rest.end() if rest else end
            stop = _CJK_PUNCTUATION.search(text, r.start, end)
            r.end = stop.start() if stop else end
            if r.end > r.start:
                kept.append(r)
        return kept


#: presidio's UK_NHS, US bank number and US driver's licence recognizers stay on the text as written
#: (`TEXT_AS_WRITTEN_RECOGNIZERS`): one ten-digit number in eleven passes UK_NHS's checksum and scores
#: 1.0, and Japanese phone and order numbers glued to the text are ten digits; any 8 to 17 digits
#: are a bank number, and a letter and 4 to 9 digits a licence (at 0.01-0.3), so glued order
#: numbers, product codes and ISBNs would add weak findings to Japanese text.
_LATIN_VIEW_CLASSES: dict[str, Callable[..., PatternRecognizer]] = {
    "UrlRecognizer": MamoriUrlRecognizer,
    "IpRecognizer": MamoriIpRecognizer,
    "CryptoRecognizer": MamoriCryptoRecognizer,
    "UsPassportRecognizer": MamoriUsPassportRecognizer,
    "UsItinRecognizer": MamoriUsItinRecognizer,
    "DateRecognizer": MamoriDateRecognizer,
    "MedicalLicenseRecognizer": MamoriMedicalLicenseRecognizer,
    "MacAddressRecognizer": MamoriMacAddressRecognizer,
    "UuidRecognizer": MamoriUuidRecognizer,
}
#: presidio's recognizers (by name) replaced by ones that match on `latin_view`, beside the e-mail,
#: card, phone and US_SSN recognizers replaced with more changes
LATIN_VIEW_RECOGNIZERS: tuple[str, ...] = tuple(_LATIN_VIEW_CLASSES)


#: Japanese context words added to presidio's English ones (read in GiNZA's lemmas): a US passport
#: number is also a driver's licence number to presidio's patterns, and only context tells them
#: apart. Japanese passport (two letters, seven digits) and account numbers (seven digits) do not
#: have the US patterns' shapes: these words raise only numbers of those shapes.
_JAPANESE_CONTEXT: dict[str, tuple[str, ...]] = {
    "UsPassportRecognizer": ("旅券", "パスポート"),
    "UsLicenseRecognizer": ("免許",),
    "UsBankRecognizer": ("口座", "銀行"),
}
_TEXT_AS_WRITTEN_CLASSES: dict[str, Callable[..., PatternRecognizer]] = {
    "UsBankRecognizer": UsBankRecognizer,
    "UsLicenseRecognizer": UsLicenseRecognizer,
}
#: presidio's recognizers (by name) that match on the text as written, replaced by the same with
#: the Japanese context words of `_JAPANESE_CONTEXT`
TEXT_AS_WRITTEN_RECOGNIZERS: tuple[str, ...] = tuple(_TEXT_AS_WRITTEN_CLASSES)


def _with_japanese_context(cls: Callable[..., PatternRecognizer], name: str, language: str) -> Any:
    japanese = _JAPANESE_CONTEXT.get(name)
    if japanese is None:
        return cls(supported_language=language, name=name)
    return cls(supported_language=language, name=name, context=[*getattr(cls, "CONTEXT", ()), *japanese])


def latin_view_recognizer(name: str, language: str) -> Any:
    """The recognizer that replaces presidio's recognizer `name` (one of `LATIN_VIEW_RECOGNIZERS`),
    with presidio's patterns and context words (and the Japanese ones of `_JAPANESE_CONTEXT`),
    matching on `latin_view`."""
    return _with_japanese_context(_LATIN_VIEW_CLASSES[name], name, language)


def text_as_written_recognizer(name: str, language: str) -> Any:
    """presidio's recognizer `name` (one of `TEXT_AS_WRITTEN_RECOGNIZERS`) with the Japanese context
    words of `_JAPANESE_CONTEXT` added to its own."""
    return _with_japanese_context(_TEXT_AS_WRITTEN_CLASSES[name], name, language)


def us_ssn_recognizer(language: str) -> Any:
    """presidio's US_SSN recognizer, matching also where the number is glued to Japanese script."""
    return MamoriUsSsnRecognizer(supported_language=language, name="UsSsnRecognizer")


# ---------------------------------------------------------------- person names from cues

_NAME_WORD = r"\p{Lu}[\p{Ll}\p{Lm}'’]+(?:-\p{Lu}?[\p{Ll}'’]+)?"
_NAME = rf"{_NAME_WORD}(?:[ ](?:\p{{Lu}}\.?[ ])?{_NAME_WORD}){{0,2}}"
_TITLES = r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Mister"
# "name is", "Name:", "last name? X", "call me"; not the name of a file, a company, a product, ...
_NOT_PERSONAL = (
    r"company|product|file|user|brand|domain|project|team|band|business|street|place|display|host|model|app|"
    r"pet|song|book|store|shop|account|code"
)
_NAME_CUE = rf"(?i:(?<!\b(?:{_NOT_PERSONAL})[ ])\bname(?:[ ]is|'s|[ ]?[:?])|\bcalls?[ ]me)"


# speech attribution after a quotation: '"...," says Navrátilová.', "I'm so jealous! said Gladys to Logan"
_QUOTE_END = r"[,.!?…][\"”’']?[ ]"
_SPEECH = r"(?i:says|said|asks|asked|replies|replied|adds|added|explains|explained|shouts|shouted|whispers|whispered)"
_SPEAKER_END = r"[ ]*(?:[.,;:!?]|$|[ ]to[ ])"


# a role written before a name, as a title ("Producer Vilhjálmur Georgsson explained", "songwriter
# Zoe Young"); the name must not be ordinary words ("CEO Summit", "Director General")
_ROLES = (
    r"producer|director|ceo|cfo|cto|chairman|chairwoman|chairperson|founder|co-founder|songwriter|singer|"
    r"guitarist|drummer|bassist|pianist|violinist|composer|conductor|rapper|author|novelist|writer|poet|"
    r"actor|actress|artist|painter|sculptor|photographer|filmmaker|journalist|reporter|editor|columnist|"
    r"professor|coach|manager|senator|governor|mayor|minister|judge|detective|spokesperson|spokesman|"
    r"spokeswoman|designer|architect|scientist|researcher|economist|analyst|attorney|lawyer|chef|"
    r"footballer|striker|goalkeeper|quarterback"
)
# the subject of "lives at / on / in" an address with a number ("Timotea lives on Via dei Fiorentini 17")
_CLAUSE_START = r"(?:^|(?<=[.!?;:][ ]+)|(?<=\n[ \t>]*))"
_LIVES_AT_ADDRESS = r"(?=[ ]lives[ ](?:at|on|in)[ ][^.\n]*\d)"
_NOT_A_PRONOUN = r"(?!(?:He|She|It|They|We|You|One|Who|This|That|Everyone|Everybody|Someone|Somebody|Nobody)\b)"
#: cue patterns whose match must not be made of ordinary words only (`ordinary_words`, here any word
#: more frequent in lowercase: "Summit" 1.3x, "General" 1.1x; a name of one such word goes too), nor
#: be what the NER reads as an organisation or a product (firms are quoted and brands have designers)
_NAME_NOT_ORDINARY = frozenset({"speaker", "spoken_to", "role", "lives_at"})
_POSSESSIVE_END = re.compile(r"['’]s$")
_ORGANISATION_LABELS = frozenset({"ORG", "PRODUCT"})


#: a word ranked this high in the vector table's frequencies is a known word ("Microsoft", "Gucci");
#: rarer ones are the unfamiliar names that the NER often reads as firms ("Hauta-aho", "Shovda")
KNOWN_WORD_RANK = 100_000


def _read_as_organisation(doc: Any, start: int, end: int, frequencies: Truecaser | None) -> bool:
    """Whether the NER labelled text[start:end] an organisation or a product, and (with
    `frequencies`) each of its words is a known word rather than an unfamiliar name."""
    span = doc.char_span(start, end, alignment_mode="expand") if doc is not None else None
    if span is None or not any(token.ent_type_ in _ORGANISATION_LABELS for token in span):
        return False
    words = _WORDS.findall(span.text)
    ranks = frequencies.ranks(words) if frequencies is not None else []
    return all(rank is not None and rank < KNOWN_WORD_RANK for rank in ranks)


def person_cue_recognizer(language: str, frequencies: Truecaser | None = None) -> Any:
    """PERSON: a capitalised name right after a title, a role or a naming phrase, after a quotation
    as its speaker, or as the subject of "lives at" an address; in text written in lowercase, one
    capitalised in its truecased copy (`detectors.pii_truecase`: "my name is nyberg")."""

    class PersonCueRecognizer(PatternRecognizer):
        def analyze(
            self,
            text: str,
            entities: list[str],
            nlp_artifacts: NlpArtifacts | None = None,
            regex_flags: int | None = None,
        ) -> list[RecognizerResult]:
            if isinstance(nlp_artifacts, TruecasedNlpArtifacts):
                text = nlp_artifacts.truecased_text  # same length: the spans hold
            doc = getattr(nlp_artifacts, "tokens", None)
            kept = []
            for r in super().analyze(text, entities, nlp_artifacts, regex_flags):
                if _POSSESSIVE_END.search(text, r.start, r.end):
                    r.end -= 2  # "Designer Coco Chanel's studio": the name is "Coco Chanel"
                if getattr(r.analysis_explanation, "pattern_name", None) in _NAME_NOT_ORDINARY and (
                    ordinary_words(frequencies, text[r.start : r.end], ratio=1.0)
                    or _read_as_organisation(doc, r.start, r.end, frequencies)
                ):
                    continue  # "CEO Summit"; '"...," said Microsoft.', "designer Gucci"
                kept.append(r)
            return kept

    return PersonCueRecognizer(
        supported_entity="PERSON",
        name="PersonCueRecognizer",
        supported_language=language,
        patterns=[
            Pattern("title", rf"(?<=\b(?i:{_TITLES})\.?[ ]){_NAME}", 0.85),
            Pattern("name_is", rf"(?<={_NAME_CUE}[ \t]*\n?[ \t]*){_NAME}", 0.9),
            Pattern("called", rf"(?<=\b(?i:called|named)[ ]){_NAME}", 0.4),
            Pattern("speaker", rf"(?<={_QUOTE_END}{_SPEECH}[ ]){_NAME}(?={_SPEAKER_END})", 0.85),
            Pattern("spoken_to", rf"(?<={_QUOTE_END}{_SPEECH}[ ]{_NAME}[ ]to[ ]){_NAME}(?={_SPEAKER_END})", 0.85),
            Pattern("role", rf"(?<=\b(?i:{_ROLES})[ ]){_NAME}", 0.7),
            Pattern("lives_at", rf"{_CLAUSE_START}{_NOT_A_PRONOUN}{_NAME}{_LIVES_AT_ADDRESS}", 0.85),
        ],
        global_regex_flags=re.DOTALL | re.MULTILINE,
    )


# ---------------------------------------------------------------- NER clean-up

_TRIM = " \t\r\n>\"'“”‘’,;:|"
_WORDS = re.compile(r"[^\W\d_]{2,}")
#: how many times more often a word must be written in lowercase than capitalised for a PERSON span
#: made of such words only to be dropped (2: "Cinematographer" 2.5x, "Pleasures" 3.5x; "Mark" 0.6x)
ORDINARY_RATIO = 2.0
_NAME_TYPES = frozenset({"PERSON", "NRP"})
_URL_OR_ADDRESS = re.compile(r"://|@")

# Street designators written after the name (English, and some used across Europe), matched only
# when capitalised ("Let Jane drive" is no address). Those that are also names (Way, Lane, Court,
# ...) count only after a house number.
_STREET_AFTER = (
    r"street|st|str|avenue|ave|road|rd|drive|boulevard|blvd|terrace|crescent|highway|hwy|parkway|"
    r"pkwy|alley|plaza|square|flats|cliffs|causeway|expressway|freeway|turnpike|strasse|straße|"
    r"gasse|allee|platz"
)
_STREET_AFTER_NUMBERED = r"way|lane|ln|court|ct|place|pl|flat|cliff|pass|crossing|mews|weg|walk|row|close"
# ... and written before it (French, Portuguese, Spanish, Italian, Polish, Greek; ship names in US
# military postal addresses), case-sensitive: "sent via Jane Doe" is no address.
_STREET_BEFORE = (
    r"Rue|Rua|Avenida|Avenue|Av\.|Calle|Carrer|Via|Viale|Piazza|Corso|Praça|Travessa|ul\.|ulica|al\.|"
    r"Aleja|Plac|Λεωφόρος|Οδός|USNS|USNV|USS|USCGC"
)
_LAST_WORD = re.compile(rf"(?i)\s({_STREET_AFTER})\.?$")
_LAST_WORD_NUMBERED = re.compile(rf"(?i)\s({_STREET_AFTER}|{_STREET_AFTER_NUMBERED})\.?(?:\s|$)")
_NEXT_WORD = re.compile(rf"(?i)^[ \t]+(?:\d{{1,5}}[a-z]?[ \t]+)?({_STREET_AFTER})\b")
_NEXT_WORD_NUMBERED = re.compile(rf"(?i)^[ \t]+(?:\d{{1,5}}[a-z]?[ \t]+)?({_STREET_AFTER}|{_STREET_AFTER_NUMBERED})\b")
_STREET_PREFIX = re.compile(rf"^(?:{_STREET_BEFORE})\s|(?:^|\s)(?:{_STREET_BEFORE})[ \t]+$")
_NUMBER_BEFORE = re.compile(r"(?:^|[\s,])\d{1,6}[A-Za-z]?[ \t]+$")
_NUMBER_AFTER = re.compile(r"^[ \t]+\d{1,5}[A-Za-z]?\b")


def _capitalised(match: re.Match[str] | None, uncased: bool = False) -> bool:
    return match is not None and (uncased or match.group(1)[0].isupper())


def in_street_address(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], a name, is (part of) a street name in an address. After a name
    written in lowercase (found in a truecased copy) designators count without a capital too
    ("alameda street")."""
    uncased = is_uncased(text[start:end])
    span = text[start:end].strip()
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    before = text[max(line_start, start - 12) : start]
    after = text[end : len(text) if line_end < 0 else line_end]
    if _NUMBER_BEFORE.search(before):  # "1317 Kimberly Way", "83393 Pärna 33"
        if _capitalised(_LAST_WORD_NUMBERED.search(span), uncased) or _capitalised(
            _NEXT_WORD_NUMBERED.match(after), uncased
        ):
            return True
        if _NUMBER_AFTER.match(after):
            return True
    elif _capitalised(_LAST_WORD.search(span), uncased) or _capitalised(_NEXT_WORD.match(after), uncased):
        return True  # "Zachary Cliffs", "Main St.", "Hoge Wei 32 St."
    return bool(_STREET_PREFIX.search(span + " ") or _STREET_PREFIX.search(before))


_IN_BEFORE = re.compile(r"(?i)(?:^|\s)in[ \t]+$")  # "I am in Sutri": people are not places one is in
# "originally from Eckenroth", "we moved here from Tjæreborg": where one comes from, for a span of
# one word (a place's name; "Letters originally from Albert Einstein" keep their sender). Journeys
# "to" are left out: balls and cameras move to people too ("the ball flew to Ronaldo").
_FROM_PLACE_BEFORE = re.compile(
    r"(?i)(?:^|\s)(?:originally|(?:moved|emigrated|immigrated|relocated)(?:[ \t]+(?:here|there|back))?|hails?)"
    r"[ \t]+from[ \t]+$"
)
_POSSESSIVE_AFTER = re.compile(r"^['’]s\b")
_HOUSE_NUMBER_COMMA = re.compile(r"(?:\d{1,5}[A-Za-z]?|\b[Ss]tr?\.),[ \t]*$")  # "Jahu 80, Liiva"
_END_OF_ADDRESS_PART = re.compile(r"^[ \t]*(?:,|$)")
_UNIT = r"(?i)\b(?:apt|apartment|suite|ste|unit)\.?[ \t]*#?\d+"  # "Apt. 050", "Suite 417"
_UNIT_LINE = re.compile(rf"{_UNIT}[ \t]*$")
_UNIT_BEFORE = re.compile(rf"{_UNIT}[ \t]*,?[ \t]+$")
# "at the corner of X and Y": X right after "corner of" (a house number may come first), Y right
# after the "and" that follows within a few words ("In the corner of the frame, Barack Obama" and
# "the corner of the cafe where Ernest Hemingway" are people)
_CORNER_BEFORE = re.compile(
    r"(?i)\bcorner[ \t]+of[ \t]+(?:[^\W_][\w'’.-]*[ \t]+){0,4}?(?:and[ \t]+)?(?:\d{1,5}[a-z]?[ \t]+)?$"
)
_CORNER_FILLER = re.compile(r"(?i)\b(?:the|a|an|my|our|his|her|their|this|that|where|frame|room|picture|cafe)\b")
# "X and Hersnapvej 75." (a street and a house number of up to three digits that end the clause; not
# a year: "Obama and Biden 2012."): X is the other street
_AND_STREET_AFTER = re.compile(r"^[ \t]+and[ \t]+[^\W\d_][\w'’.-]*[ \t]+\d{1,3}[A-Za-z]?[ \t]*(?:[.,;:!?)\r]|$)")
_CONTEXT = 80  # characters of the line read on either side of a span


def is_place(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], tagged as a person, reads as a place: right after "in" ("I am in
    Sutri") or where one comes from ("originally from Eckenroth"), after the house number of
    a European address ("Jahu 80, Liiva"), after an apartment or suite number on its line ("Apt.
    417 Csipkerek Vas") or on the line after one ("Apt. 050" then "Broomfield"), or in a street
    corner ("the corner of Kuusiku 7 and Alexander Flat", "Maarit and Hersnapvej 75.")."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before = text[max(line_start, start - _CONTEXT) : start]
    after = text[end : min(line_end, end + _CONTEXT)]
    one_word = len(text[start:end].split()) == 1
    if not _POSSESSIVE_AFTER.match(after) and (  # "Maria's" is a person's
        _IN_BEFORE.search(before) or (one_word and _FROM_PLACE_BEFORE.search(before))
    ):
        return True
    if _HOUSE_NUMBER_COMMA.search(before) and _END_OF_ADDRESS_PART.match(after):
        return True
    if _UNIT_BEFORE.search(before) or _AND_STREET_AFTER.match(after):
        return True
    corner = _CORNER_BEFORE.search(before)
    if corner and not _CORNER_FILLER.search(corner.group()[len("corner of") :]):
        return True
    if line_start > 0 and _END_OF_ADDRESS_PART.match(after):
        previous = text[text.rfind("\n", 0, line_start - 1) + 1 : line_start - 1]
        return _UNIT_LINE.search(previous) is not None and not re.search(r"\w", before)
    return False


def ordinary_words(frequencies: Truecaser | None, value: str, ratio: float = ORDINARY_RATIO) -> bool:
    """Whether a span tagged PERSON is made of ordinary words only, each written in lowercase at
    least `ORDINARY_RATIO` times more often than capitalised ("Guilty Pleasures", "Letter",
    "Children", "Cinematographer": capitalised in a title or at a line start). Names that are also
    words, written alone, go too ("Hope", "Will"); beside another name they stay ("Will Smith")."""
    words = _WORDS.findall(value)
    return frequencies is not None and bool(words) and all(frequencies.ordinary(words, ratio))


# possessive, and a list starts at a word's start: without either, a long run of word characters
# ("山田さん"*1000) is scanned again from each of its characters (2.7 ms per name found)
_LIST_WORD = r"[^\W\d_][\w'’-]*+"
_LIST = rf"{_LIST_WORD}(?:,[ ]{_LIST_WORD})*,?[ ](?:and|&)[ ]{_LIST_WORD}"
# a firm named after its partners: alone on its line (letterheads, address blocks), or before a
# word that names a firm or an ensemble ("Clark, Romero and Hall Orchestra")
_FIRM_LIST_LINE = re.compile(  # three partners or more, or two joined by "&" ("Tom and Jerry" are two)
    rf"(?m)^[ \t>]*(?:{_LIST_WORD}(?:,[ ]{_LIST_WORD})+,?[ ](?:and|&)|{_LIST_WORD}[ ]&)[ ]{_LIST_WORD}[ \t\r]*$"
)
_FIRM_LIST_NOUN = re.compile(
    rf"(?<![\w'’-]){_LIST}[ ](?:LLP|LLC|Inc|Ltd|PLC|Co|Company|Group|Partners|Associates|Architects|Solicitors|"
    r"Attorneys|Orchestra|Band|Ensemble|Quartet|Trio)\b"
)


def in_firm_name(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], tagged as a person, is one of the surnames naming a firm: a list of
    single words alone on its line in an address block ("Barnett, Melton and Garcia" above a street
    line; not a cast list, "Characters:\nAlice, Bob and Carol") or before a firm word ("Clark,
    Romero and Hall Orchestra")."""
    window = (max(0, start - 200), min(len(text), end + 200))
    for match in _FIRM_LIST_NOUN.finditer(text, *window):
        if match.start() <= start and end <= match.end():
            return True
    for match in _FIRM_LIST_LINE.finditer(text, *window):
        if match.start() <= start and end <= match.end():
            listed = match.group().strip(" \t\r>")
            first = match.start() + match.group().index(listed)
            return heads_address_block(text, first, first + len(listed))
    return False


_KIND = (
    r"film|movie|documentary|novel|book|song|album|single|series|sitcom|show|opera|musical|play|painting|"
    r"video game|game|app|website|magazine|newspaper|company|corporation|conglomerate|firm|bank|brand|"
    r"band|startup|charity|non-?profit|organi[sz]ation|university|school|restaurant|hotel|airline|ship"
)
# words that link the kind to something else: "Anna is a member of the band", "a friend at the bank"
_LINK = r"(?:of|for|at|in|on|to|with|from|and|or|the|a|an|who|whose|that|which|'s)"
# "Zoolander is a 1996 Scottish action-comedy film directed by ...": a span that a sentence calls a
# thing (the noun ends the phrase, so "Smith is a film director", "Lee is a bank clerk" and
# "Johansson is a film and stage actress" are no things)
_IS_A_THING = re.compile(
    rf"(?i)[ \t]+(?:is|was)[ \t]+(?:a|an|the)[ \t]+(?:(?!{_LINK}\b)[\w'’-]+[ \t]+){{0,5}}?(?:{_KIND})"
    r"(?=[ \t]*(?:[.,;:!?)]|$)|[ \t]+(?:directed|starring|written|released|produced|founded|based|set|about|by|"
    r"that|which|headquartered|owned|created|developed|published|made)\b)"
)


def is_thing(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], tagged as a person, is what the sentence calls a film, a book, a
    company, a band, ... ("Zoolander is a 1996 Scottish action-comedy film directed by ...")."""
    return _IS_A_THING.match(text, end) is not None


def _not_a_person(text: str, start: int, end: int, frequencies: Truecaser | None) -> bool:
    """The checks on a PERSON span once trimmed and cut at its line break: ordinary words, a firm
    (partners, a firm word, the firm line of a mailing label) or a thing."""
    value = text[start:end]
    return (
        ordinary_words(frequencies, value)
        or ends_with_firm_word(value)
        or in_firm_name(text, start, end)
        or is_thing(text, start, end)
        or firm_line(text, start, end)
    )


def mamori_ner_recognizer(language: str, supported_entities: list[str], frequencies: Truecaser | None = None) -> Any:
    """presidio's SpacyRecognizer whose PERSON spans are trimmed, and dropped when they hold a digit,
    are part of an address, or (with `frequencies`) are made of ordinary words only."""

    class MamoriSpacyRecognizer(SpacyRecognizer):
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
            kept = []
            for r in super().analyze(text, entities, nlp_artifacts):
                value = text[r.start : r.end]
                if r.entity_type in _NAME_TYPES and (any(c.isdigit() for c in value) or _URL_OR_ADDRESS.search(value)):
                    continue  # "86036 Rua", "+1-903-140-4508x769" tagged NRP, "https://example.com/a": not names
                if r.entity_type == "PERSON" and (
                    in_street_address(text, r.start, r.end) or is_place(text, r.start, r.end)
                ):
                    continue  # "Alexander Flat", "Rue de Virton", "03751 Gerrit Achterberghove 137"
                lead = len(value) - len(value.lstrip(_TRIM))
                tail = len(value) - len(value.rstrip(_TRIM + "."))
                if sum(c.isalpha() for c in value) < 2 or lead + tail >= len(value):
                    continue
                r.start, r.end = r.start + lead, r.end - tail
                if r.entity_type in _NAME_TYPES and "\n" in text[r.start : r.end]:
                    # a name does not run over two lines: "Alma Jensen\n> Imedicare" -> "Alma Jensen"
                    first = text[r.start : r.end].split("\n", 1)[0].rstrip(_TRIM + ".")
                    if sum(c.isalpha() for c in first) < 2:
                        continue
                    r.end = r.start + len(first)
                if r.entity_type == "PERSON" and _not_a_person(text, r.start, r.end, frequencies):
                    continue  # "Letter", "Galorath Incorporated", "Zoolander is a ... film", "> Flightaware"
                kept.append(r)
            return kept

    return MamoriSpacyRecognizer(
        supported_language=language, supported_entities=supported_entities, name="SpacyRecognizer"
    )
