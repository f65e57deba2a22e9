"""Japanese identity and account numbers, reported only beside the word that names them.

Their shapes are common ones (seven digits, twelve digits, two letters and seven digits are also
order, product and member numbers), so a number of the shape is reported only when a word naming
the document stands within `CUE_BEFORE` characters before it or `CUE_AFTER` after it, in Japanese
or English; the word is read in the text itself, glued or not ("パスポート番号TK1234567"), since
GiNZA does not split a glued word from the number and presidio's context words need tokens.

- `JP_PASSPORT`: two letters and seven digits (TK1234567), the Japanese passport's number, near
  旅券 / パスポート / passport.
- `JP_BANK_ACCOUNT`: a seven-digit account number (普通 1234567) near 口座, 預金, 普通, 当座,
  振込, 支店 or account; and Japan Post Bank's symbol and number (12345-12345671) near ゆうちょ,
  記号, 口座 or 振替. Seven digits followed by a currency (1234567円) are an amount, not an account.
- `JP_DRIVER_LICENSE`: the twelve-digit driver's licence number (第123456789012号) near 免許 or
  licence / license. Twelve digits are also a My Number's shape: `detectors.pii_ja` counts 免許
  among the words that make twelve digits another number, so the licence is not also a My Number
  unless a My Number word is nearer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["CUED_SCORE", "CUE_AFTER", "CUE_BEFORE", "ID_NUMBERS", "IdNumber", "cued", "japanese_id_recognizer"]

CUE_BEFORE = 30
CUE_AFTER = 12
#: a number of the document's shape beside a word that names the document
CUED_SCORE = 0.85


@dataclass(frozen=True)
class IdNumber:
    """One kind of number: its entity type, its shapes and the words that name it."""

    entity: str
    shape: re.Pattern[str]
    cue: re.Pattern[str]
    description: str


_NOT_LATIN_BEFORE = r"(?<![A-Za-z0-9])"
_NOT_ALNUM_BEFORE = r"(?<![\dA-Za-z\-.,])"  # "F162823540116" is no Japanese number
_NOT_DIGIT_AFTER = r"(?![\d\-]|[.,]\d)"
_AMOUNT_AFTER = r"(?!\s?(?:円|万|億|ドル|yen|jpy|usd|dollars?)(?![a-z]))"

ID_NUMBERS: tuple[IdNumber, ...] = (
    IdNumber(
        "JP_PASSPORT",
        re.compile(rf"{_NOT_LATIN_BEFORE}(?!NO)[A-Z]{{2}}\d{{7}}(?![0-9A-Za-z])"),  # not "NO1234567"
        re.compile(r"旅券|パスポート|passport", re.IGNORECASE),
        "two letters and seven digits beside a passport word",
    ),
    IdNumber(
        "JP_BANK_ACCOUNT",
        re.compile(
            rf"{_NOT_ALNUM_BEFORE}\d{{7}}{_NOT_DIGIT_AFTER}{_AMOUNT_AFTER}"  # 普通 1234567
            rf"|{_NOT_ALNUM_BEFORE}1\d{{4}}-\d{{7,8}}{_NOT_DIGIT_AFTER}",  # ゆうちょ 12345-12345671
            re.IGNORECASE,
        ),
        re.compile(
            r"口座|預金|普通|当座|振込|振り込み|振替|支店|ゆうちょ|記号番号|(?<![a-z])(?:bank\s+)?acc(?:oun)?t(?![a-z])",
            re.IGNORECASE,
        ),
        "an account number's shape beside a bank-account word",
    ),
    IdNumber(
        "JP_DRIVER_LICENSE",
        re.compile(rf"{_NOT_ALNUM_BEFORE}\d{{12}}{_NOT_DIGIT_AFTER}"),
        re.compile(r"免許|licen[cs]e", re.IGNORECASE),
        "twelve digits beside a driver's licence word",
    ),
)


def cued(kind: IdNumber, text: str, start: int, end: int) -> bool:
    """Whether a word naming `kind` stands within `CUE_BEFORE` characters before text[start:end]
    or `CUE_AFTER` after it."""
    return (
        kind.cue.search(text, max(0, start - CUE_BEFORE), start) is not None
        or kind.cue.search(text, end, end + CUE_AFTER) is not None
    )


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
