"""Japanese personal-data recognizers for Presidio (pattern based, no model).

- `JP_MY_NUMBER`: the 12-digit individual number, accepted only when its check digit is right and
  it is not part of a longer number (digits right next to it). One in eleven twelve-digit numbers
  has a right check digit, so the word around it decides (`my_number_reading`): with a My Number
  word (マイナンバー, 個人番号, my number, individual number) within 40 characters before or 20
  after it scores 1.0; without one, next to a word calling it another number (注文番号, 品番, JAN,
  伝票, order, tracking, account, card, ...: an order number, or the first twelve digits of a card
  number streamed in pieces) it is not reported; with no word either way it scores 0.4
  (`BARE_MY_NUMBER_SCORE`), reported but below the policy's redaction threshold (0.5). Twelve digits in groups of four
  beside a fourth group joined by the same separator ("1234 5678 9018 2024") are told from a card
  number by the checksums: the sixteen digits are a card number when the card recognizer reports
  them as one (`detectors.pii_recognizers.is_card_number`: Luhn, then the issuer range or a card
  word), and nothing in them is a My Number; otherwise (a wrong Luhn check digit is no card) the
  twelve digits on either side whose My Number check digit is right are one, reported on those
  twelve digits. Runs of five groups or more stay a longer number.
- `JP_PHONE_NUMBER`: fixed-line, mobile (070/080/090), IP (050) and +81 numbers.
- `JP_POSTAL_CODE`: 〒123-4567, or 123-4567 next to 郵便番号.
- `JP_ADDRESS`: a prefecture followed by a city, ward, town or village and the rest of the address.
- `JP_PERSON`: a name written in kanji/kana directly before an honorific (さん, 様, 氏, 先生, ...)
  or after a label (氏名, 名前, お名前). It finds only names that are marked that way; it is a
  pattern, and its score says so. With NER on (the default), GiNZA also reads text in Japanese
  script (`detectors.pii_ginza`) and reports PERSON and LOCATION without such marks; where both
  find the same name, GiNZA's stronger PERSON result is kept.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "BARE_MY_NUMBER_SCORE",
    "OTHER_NUMBER_CUE",
    "PREFECTURES",
    "japanese_recognizers",
    "my_number_reading",
    "my_number_valid",
]

PREFECTURES: tuple[str, ...] = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)  # fmt: skip

_KANJI = r"[\u4e00-\u9fff\u3005]"
_KANA = r"[\u3041-\u3096\u30a1-\u30fa\u30fc]"
# Twelve digits, plain or in groups of four ("1234 5678 9018"), that are not part of a longer number
# written as cards are: a group of exactly four digits joined to the first or last group by the same
# separator ("4111-1111-1111-1111", "4111 1111 1111 1111") makes them the middle of a card number.
# Any other neighbour is a separate number ("1980-01-01 123456789018", "1234 5678 9018 3人").
_GROUP4 = r"(?<!\d)\d{4}"  # a group of exactly four digits (ends where the look-behind starts)
_MY_NUMBER = (
    r"(?<!\d)"
    rf"(?:(?<!{_GROUP4}-)\d{{4}}-|(?<!{_GROUP4} )\d{{4}} |\d{{4}})"
    r"\d{4}"
    r"(?:-\d{4}(?!-\d{4}(?!\d))| \d{4}(?! \d{4}(?!\d))|\d{4})"
    r"(?!\d)"
)
# Exactly four groups of four digits joined by one separator, not part of a longer run of such groups
# (the twelve digits beside a fourth group that `_MY_NUMBER` leaves out)
_FOUR_GROUPS = re.compile(
    r"(?<!\d)"
    rf"(?:(?<!{_GROUP4}-)\d{{4}}(?:-\d{{4}}){{3}}(?!-\d{{4}}(?!\d))"
    rf"|(?<!{_GROUP4} )\d{{4}}(?: \d{{4}}){{3}}(?! \d{{4}}(?!\d)))"
    r"(?!\d)"
)
_TWELVE = 14  # twelve digits in three groups of four, with their two separators
_ADDR = r"(?:[\u4e00-\u9fff\u30a1-\u30fa\u30fc0-9０-９\-－‐ー−]|丁目|番地|の|ケ|ヶ)"


#: Before four groups of four digits that make no card, a My Number is reported only after one of
#: these words within `_CUE_WINDOW` characters: about one in five such order or parcel numbers has a
#: 12-digit half whose check digit holds by chance.
_MY_NUMBER_CUE = re.compile(r"マイナンバー|個人番号|my\s?number|individual\s+number", re.IGNORECASE)
_CUE_WINDOW = 40
_CUE_AFTER = 20  # "123456789018 is my number", "123456789018（注文番号）"

#: Words that call twelve digits something else: order, product, parcel, account, membership and
#: ticket numbers, barcodes, cards (the first twelve digits of a card number streamed in pieces), and
#: driver's licences (twelve digits too: `detectors.pii_ja_ids` reports them as JP_DRIVER_LICENSE).
OTHER_NUMBER_CUE = re.compile(
    r"注文|品番|商品|型番|製品|製造|伝票|追跡|配送|送り状|問い?合わ?せ|受付|会員|口座|請求|領収|予約|管理番号|免許|"
    r"シリアル|バーコード|カード|クレジット|チケット|お客様番号|顧客番号|"
    r"(?<![a-z])(?:order|invoice|tracking|parcel|shipment|shipping|sku|serial|product|item|ticket|booking|"
    r"reservation|account|acct|ref|reference|barcode|jan|ean|upc|gtin|isbn|card|credit|debit|visa|"
    r"mastercard|customer|member(?:ship)?|model|receipt|transaction|licen[cs]e)(?![a-z])",
    re.IGNORECASE,
)
#: the score of twelve digits with a right check digit and no word either way: one in eleven
#: twelve-digit numbers has one, so the number alone stays below the policy's `thresholds.pii` (0.5)
BARE_MY_NUMBER_SCORE = 0.4


def my_number_reading(text: str, start: int, end: int) -> str:
    """How text[start:end], twelve digits with a right My Number check digit, reads: "cue" (a My
    Number word within 40 characters before or 20 after), "other" (no such word, but a word that
    calls it an order, product, parcel, account, ... or card number), or "bare" (neither)."""
    before = text[max(0, start - _CUE_WINDOW) : start]
    after = text[end : end + _CUE_AFTER]
    if _MY_NUMBER_CUE.search(before) or _MY_NUMBER_CUE.search(after):
        return "cue"
    if OTHER_NUMBER_CUE.search(before) or OTHER_NUMBER_CUE.search(after):
        return "other"
    return "bare"


def my_number_valid(digits: str) -> bool:
    """The check digit of a 12-digit My Number (individual number)."""
    d = re.sub(r"\D", "", digits)
    if len(d) != 12 or len(set(d)) == 1:
        return False
    body = [int(c) for c in d[:11]]
    total = 0
    for n in range(1, 12):
        p = body[11 - n]
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    rem = total % 11
    check = 0 if rem <= 1 else 11 - rem
    return check == int(d[11])


def japanese_recognizers(language: str) -> list[Any]:
    """Presidio recognizers for Japanese personal data, registered under `language`."""
    from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

    from detectors.pii_recognizers import is_card_number
    from detectors.pii_results import explained_result

    # Class names must not clash with presidio's own: its loader finds recognizer classes by name.
    class MamoriJpMyNumberRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return my_number_valid(pattern_text)

        def analyze(
            self,
            text: str,
            entities: list[str],
            nlp_artifacts: NlpArtifacts | None = None,
            regex_flags: int | None = None,
        ) -> list[RecognizerResult]:
            results: list[RecognizerResult] = []
            for r in super().analyze(text, entities, nlp_artifacts, regex_flags):
                reading = my_number_reading(text, r.start, r.end)
                if reading == "other":
                    continue  # "注文番号 123456789018", "order no. 123456789018", "the card 4111 1111 1111"
                if reading == "bare" and r.score > BARE_MY_NUMBER_SCORE:
                    r.score = BARE_MY_NUMBER_SCORE
                    if r.analysis_explanation is not None:
                        r.analysis_explanation.set_improved_score(BARE_MY_NUMBER_SCORE)
                        r.analysis_explanation.append_textual_explanation_line(
                            "no My Number word near: one in eleven twelve-digit numbers has a right check digit"
                        )
                results.append(r)
            if sum(c.isdigit() for c in text) < 16:
                return results
            for run in _FOUR_GROUPS.finditer(text):
                if is_card_number(text, *run.span()):
                    continue  # a card number: its middle twelve digits are no My Number
                if _MY_NUMBER_CUE.search(text, max(0, run.start() - _CUE_WINDOW), run.start()) is None:
                    continue  # one in ten grouped numbers (orders, parcels) has a valid half: ask for a cue
                for start, end in ((run.start(), run.start() + _TWELVE), (run.end() - _TWELVE, run.end())):
                    if my_number_valid(text[start:end]):
                        results.append(
                            explained_result(
                                self.supported_entities[0],
                                start,
                                end,
                                EntityRecognizer.MAX_SCORE,
                                "My Number check digit right, beside a group of four digits that makes no card number",
                                recognizer=str(getattr(self, "name", "JpMyNumberRecognizer")),
                                explainer=type(self).__name__,
                                identifier=self.id,
                            )
                        )
            return results

    class MamoriJpPhoneRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            digits = re.sub(r"\D", "", pattern_text)
            if digits.startswith("81"):
                digits = "0" + digits[2:]
            return len(digits) == (11 if re.match(r"0[5-9]0", digits) else 10)

    prefectures = "|".join(PREFECTURES)
    return [
        MamoriJpMyNumberRecognizer(
            supported_entity="JP_MY_NUMBER",
            name="JpMyNumberRecognizer",
            supported_language=language,
            patterns=[Pattern("my_number", _MY_NUMBER, 0.5)],
            context=["マイナンバー", "個人番号", "my number"],
        ),
        MamoriJpPhoneRecognizer(
            supported_entity="JP_PHONE_NUMBER",
            name="JpPhoneRecognizer",
            supported_language=language,
            patterns=[
                Pattern("jp_mobile", r"(?<![\d-])0[5-9]0-?\d{4}-?\d{4}(?![\d-])", 0.75),
                Pattern("jp_fixed", r"(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])", 0.7),
                Pattern("jp_fixed_paren", r"(?<![\d-])0\d{1,4}\(\d{1,4}\)\d{3,4}(?![\d-])", 0.7),
                Pattern("jp_intl", r"\+81[- ]?\d{1,4}[- ]?\d{1,4}[- ]?\d{3,4}(?![\d-])", 0.8),
            ],
            context=["電話", "tel", "携帯", "連絡先", "phone"],
        ),
        PatternRecognizer(
            supported_entity="JP_POSTAL_CODE",
            name="JpPostalCodeRecognizer",
            supported_language=language,
            patterns=[
                Pattern("jp_postal_mark", r"〒\s?\d{3}-?\d{4}(?!\d)", 0.9),
                Pattern("jp_postal", r"(?<![\d-])\d{3}-\d{4}(?![\d-])", 0.1),
            ],
            context=["郵便番号", "〒", "住所"],
        ),
        PatternRecognizer(
            supported_entity="JP_ADDRESS",
            name="JpAddressRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "jp_address",
                    rf"(?:{prefectures}){_ADDR}{{0,12}}?(?:市|区|町|村|郡){_ADDR}{{0,30}}",
                    0.7,
                )
            ],
            context=["住所", "所在地", "在住"],
        ),
        PatternRecognizer(
            supported_entity="JP_PERSON",
            name="JpPersonRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "jp_name_honorific",
                    rf"{_KANJI}{{1,3}}[ \u3000]?(?:{_KANJI}|{_KANA}){{1,4}}(?=さん|様|さま|氏|先生|くん|君|ちゃん)",
                    0.55,
                ),
                Pattern(
                    "jp_name_label",
                    rf"(?<=氏名[:：]|名前[:：]|お名前[:：]|氏名は|名前は)\s?{_KANJI}{{1,3}}[ \u3000]?(?:{_KANJI}|{_KANA}){{1,4}}",  # noqa: E501
                    0.7,
                ),
            ],
        ),
    ]
