"""Japanese identity and account numbers, reported only beside the word that names them.

Their shapes are common ones (seven digits, twelve digits, two letters and seven digits are also
order, product and member numbers), so a number of the shape is reported only when a word naming
the document stands within `CUE_BEFORE` characters before it or `CUE_AFTER` after it, in Japanese
or English, and no word calling it another number (注文番号, 会員番号, 電話, order, ...:
`detectors.pii_ja.OTHER_NUMBER_CUE` and `_NOT_AN_ID`) stands nearer to it. The words are read in
the text itself, glued or not ("パスポート番号TK1234567"), since GiNZA does not split a glued word
from the number and presidio's context words need tokens.

- `JP_PASSPORT`: two letters and seven digits (TK1234567; TK 1234567 and TK-1234567 in capitals),
  near 旅券 / パスポート / passport.
- `JP_BANK_ACCOUNT`: a seven-digit account number (普通 1234567), with the branch number before
  it (店番123-1234567), near 口座, 預金, 振込先, 支店, ゆうちょ, 記号番号, bank account or account
  number, or right after 普通 / 当座 (the account type; elsewhere they are ordinary words); and
  Japan Post Bank's symbol and number (12345-12345671, 記号10120 番号12345671). A number after a
  currency sign (¥1234567) or before a currency or counter word (1234567円, 1234567件) is a
  quantity, not an account.
- `JP_DRIVER_LICENSE`: the twelve-digit driver's licence number, plain or in three groups of four
  (第123456789012号, 1234-5678-9012), near 免許 or driver's / driving licence. Twelve digits are
  also a My Number's shape: `detectors.pii_ja` counts 免許 among the words that make twelve digits
  another number, so beside 免許 they are a licence, not also a My Number, unless a My Number word
  is near too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from detectors.pii_ja import OTHER_NUMBER_CUE

__all__ = ["CUED_SCORE", "CUE_AFTER", "CUE_BEFORE", "ID_NUMBERS", "IdNumber", "cued", "japanese_id_recognizer"]

CUE_BEFORE = 30
CUE_AFTER = 12
#: a number of the document's shape beside a word that names the document
CUED_SCORE = 0.85
# read a little past each window, so that a word cut by the window's edge is read whole
# ("1234567 for accounting" has no "account" in it)
_SLACK = 24


@dataclass(frozen=True)
class IdNumber:
    """One kind of number: its entity type, its shapes and the words that name it."""

    entity: str
    shape: re.Pattern[str]
    cue: re.Pattern[str]
    description: str


#: Words that call a number something other than an identity or account number, beside
#: `OTHER_NUMBER_CUE`: phone and fax numbers, invoices.
_NOT_AN_ID = re.compile(r"電話|携帯|内線|ファックス|FAX|(?<![a-z])(?:tel|phone|fax)(?![a-z])|請求書", re.IGNORECASE)

# not glued to a letter, digit or hyphen before, nor after a decimal point ("1.1234567"); "No." is fine
_START = r"(?<![0-9A-Za-z\-,])(?<![0-9]\.)"
_END = r"(?![0-9\-]|[.,][0-9])"
# a quantity, not an account: after a currency sign, or before a currency or counter word
_NOT_AMOUNT_BEFORE = r"(?<![¥$€£])(?<![¥$€£] )(?<!JPY)(?<!JPY )(?<!USD)(?<!USD )"
_NOT_AMOUNT_AFTER = (
    r"(?!\s?(?:円|万|億|千|ドル|件|人|名|個|枚|口|株|社|台|本|回|点|冊|軒|"
    r"(?:yen|jpy|usd|dollars?|units?|items?|pcs|people|times)(?![a-z])))"
)

ID_NUMBERS: tuple[IdNumber, ...] = (
    IdNumber(
        "JP_PASSPORT",
        re.compile(rf"{_START}(?!NO|No|no)(?:[A-Z]{{2}}[ \-]?|[A-Za-z]{{2}})\d{{7}}(?![0-9A-Za-z])"),
        re.compile(r"旅券|パスポート|passport", re.IGNORECASE),
        "two letters and seven digits beside a passport word",
    ),
    IdNumber(
        "JP_BANK_ACCOUNT",
        re.compile(
            rf"{_START}{_NOT_AMOUNT_BEFORE}(?:\d{{3}}[\- ])?\d{{7}}{_END}{_NOT_AMOUNT_AFTER}"  # 普通 1234567
            rf"|{_START}1\d{{4}}(?:[\- ]|\s*番号\s*[:：]?\s*)\d{{7,8}}{_END}",  # ゆうちょ 12345-12345671
        ),
        re.compile(
            r"口座|預金|振込先|振り?込み先|支店|ゆうちょ|記号番号|(?:普通|当座)(?=[\s:：]*\d)"
            r"|(?<![a-z])(?:bank\s+acc(?:oun)?t|acc(?:oun)?t\.?\s*(?:number|no\b|#|:)|acct)(?![a-z])",
            re.IGNORECASE,
        ),
        "an account number's shape beside a bank-account word",
    ),
    IdNumber(
        "JP_DRIVER_LICENSE",
        # not three groups of a longer grouped number (a card's "1234 5678 9012 3456")
        re.compile(rf"{_START}(?<![0-9] )(?:\d{{12}}|\d{{4}}-\d{{4}}-\d{{4}}|\d{{4}} \d{{4}} \d{{4}}){_END}(?! \d)"),
        re.compile(r"免許|(?<![a-z])driv(?:er'?s?|ing)\s+licen[cs]e", re.IGNORECASE),
        "twelve digits beside a driver's licence word",
    ),
)


def _distance(match: re.Match[str], start: int, end: int) -> int | None:
    """How far a word is from text[start:end] (characters between them), or None when it overlaps
    the number or lies outside the windows."""
    if match.end() <= start:
        gap = start - match.end()
        return gap if gap < CUE_BEFORE else None
    if match.start() >= end:
        gap = match.start() - end
        return gap if gap < CUE_AFTER else None
    return None


def cued(kind: IdNumber, text: str, start: int, end: int) -> bool:
    """Whether a word naming `kind` stands within `CUE_BEFORE` characters before text[start:end]
    or `CUE_AFTER` after it, with no word calling it another number nearer (a word that is both,
    口座 or 免許, counts as the cue)."""
    lo, hi = max(0, start - CUE_BEFORE - _SLACK), min(len(text), end + CUE_AFTER + _SLACK)
    cues = [m for m in kind.cue.finditer(text, lo, hi) if _distance(m, start, end) is not None]
    if not cues:
        return False
    nearest = min(d for m in cues if (d := _distance(m, start, end)) is not None)
    spans = [m.span() for m in cues]
    for other in (OTHER_NUMBER_CUE, _NOT_AN_ID):
        for m in other.finditer(text, lo, hi):
            d = _distance(m, start, end)
            if d is None or any(a < m.end() and m.start() < b for a, b in spans):
                continue
            if d < nearest:
                return False  # "口座開設キャンペーン 会員番号1234567": a member number
    return True


def japanese_id_recognizer(language: str) -> Any:
    """A presidio recognizer reporting `ID_NUMBERS` (JP_PASSPORT, JP_BANK_ACCOUNT,
    JP_DRIVER_LICENSE), registered under `language`."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

    from detectors.pii_results import explained_result

    # the class name must not clash with presidio's own: its loader finds recognizers by name
    class MamoriJpIdNumberRecognizer(EntityRecognizer):
        def load(self) -> None:
            return None

        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
        ) -> list[RecognizerResult]:
            results: list[RecognizerResult] = []
            for kind in ID_NUMBERS:
                if entities and kind.entity not in entities:
                    continue
                for match in kind.shape.finditer(text):
                    if not cued(kind, text, *match.span()):
                        continue
                    results.append(
                        explained_result(
                            kind.entity,
                            match.start(),
                            match.end(),
                            CUED_SCORE,
                            kind.description,
                            recognizer=str(getattr(self, "name", "JpIdNumberRecognizer")),
                            explainer=type(self).__name__,
                            identifier=self.id,
                            context_enhanced=True,
                        )
                    )
            return results

    return MamoriJpIdNumberRecognizer(
        supported_entities=[kind.entity for kind in ID_NUMBERS],
        name="JpIdNumberRecognizer",
        supported_language=language,
    )
