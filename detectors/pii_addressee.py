"""Person names at the head of a postal address block (mailing labels, letter headers, billing
addresses), which the English NER misses because the line around them is no sentence.

    >Gyala Antall                    Billing address: Noelle Martinsson
    >Google Public Data Explorer         1593 Pagari 18 Suite 932
    >Gyala Antall                        Põlluküla
    >3369 24 Clarke Avenue
    >Apt. 805

A line is an addressee line when, after any quoting ("> ") and an address label ("Billing
address:", "Ship to:", "Attn:"), it holds nothing but a name of two to four words (capitalised
words, initials, and the particles of names such as "ten", "van" or "de"), and a street line
follows within three lines: a house number before a word ("3369 24 Clarke Avenue", "91215
Harjukuja 54") or a post-office box. The address must be confirmed by a street designator on the
street line (not before a hyphen: "close-up"), or by a unit (Apt, Suite, Unit), a post-office box
or a postcode next to a place name ("Finland 38524") on it or on the three lines after it; so a
recipe ("2 eggs\nPlace in a hot wok") is no address. A bounded number of lines is read after each
line, so the scan stays linear in the length of the text. A name line whose words are mostly ordinary words
("Google Public Data Explorer", "Chocolate Cake"), judged by the frequency ranks of the words
written in lowercase and capitalised (`detectors.pii_truecase.Truecaser`), is a company or a
heading, not a person. Lines with digits, commas or "and" are never names (firms such as
"Barnett, Melton and Garcia").

`firm_line` tells the NER recognizer (`detectors.pii_recognizers`) that a single word alone on its
line right under the addressee of an address block ("> Flightaware") is the firm of a mailing
label, not a person; `heads_address_block` tells it which lines sit in such a block.

Measured with bench/eval_pii.py on presidio's synthetic set, PERSON recall on even rows 0.862 ->
0.886 (11 names more, 1 firm more: "Morgan Stanley", a firm named like a person); latency is
unchanged, since a text without a line break and a digit is not scanned.
"""

from __future__ import annotations

from typing import Any

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult

from detectors.pii_results import explained_result
from detectors.pii_truecase import Truecaser

__all__ = [
    "ADDRESSEE_SCORE",
    "addressee_recognizer",
    "addressee_spans",
    "ends_with_firm_word",
    "firm_line",
    "heads_address_block",
]

#: Score of a name found at the head of an address block: above the policy's PII threshold (0.5),
#: below the NER's own PERSON score (0.85), which wins where both find a name.
ADDRESSEE_SCORE = 0.7

_WORD = r"\p{Lu}[\p{Ll}\p{Lm}'’]+(?:-\p{Lu}?[\p{Ll}\p{Lm}'’]+)?"
_INITIAL = r"\p{Lu}\.?"
_PARTICLE = r"(?:van|von|der|den|de|del|della|di|da|dos|das|du|la|le|ten|ter|bin|ibn|al)"
_LABEL = (
    r"(?i:(?:(?:billing|shipping|mailing|postal|delivery|home|work|return)[ ]+)?address|"
    r"ship[ ]+to|deliver[ ]+to|send[ ]+to|attn\.?|attention|recipient|addressee)[ \t]*:"
)
_NAME_PART = rf"{_WORD}(?:[ ](?:{_INITIAL}|{_PARTICLE})){{0,2}}"  # "Agatha Á", "Willemine ten"
_NAME_LINE = regex.compile(rf"^[ \t>]*(?:{_LABEL}[ \t]*)?(?P<name>{_NAME_PART}(?:[ ]{_NAME_PART}){{1,3}})[ \t\r]*$")
_UNIT_OF_MEASURE = r"(?i:am|pm|x|kg|g|ml|l|cm|mm|m|km|min|h)\b"  # "200 g flour", "10 am"
_STREET_LINE = regex.compile(
    rf"^[ \t>]*(?:\d{{1,6}}[A-Za-z]?[ \t]+(?!{_UNIT_OF_MEASURE})[\p{{L}}\d]|(?i:p\.?[ ]?o\.?[ ]+box)\b)"
)
_DESIGNATOR = regex.compile(
    r"(?i)\b(?:street|st|str|avenue|ave|road|rd|drive|dr|boulevard|blvd|lane|ln|way|court|ct|place|pl|"
    r"terrace|crescent|highway|hwy|parkway|pkwy|square|plaza|alley|close|rue|rua|via|calle|strasse|straße|"
    r"gasse|weg|laan|vej|gade|tie|katu|kuja|gatan|vägen)\b(?!-)"
)
_UNIT_OR_BOX = regex.compile(r"(?i)\b(?:apt|apartment|suite|ste|unit|flat|p\.?[ ]?o\.?[ ]+box)\.?[ ]*#?\d+")
# a place name then a postcode, or a postcode then a place name ("Finland 38524", "1017 Amsterdam");
# the place name's start is anchored, or a long run of letters is retried from each of its letters
_POSTCODE = regex.compile(r"(?<!\p{L})\p{L}{2,}[ \t,]+\d{4,6}\b|\b\d{4,6}[ \t]+\p{Lu}\p{L}+")
# the last word of a firm's name: "Rand Corporation", "Palantir Technologies"
_FIRM = regex.compile(
    r"(?i)[ ](?:inc|incorporated|llc|llp|ltd|limited|plc|corp|corporation|co|company|companies|group|holdings|"
    r"partners|associates|technologies|technology|systems|solutions|software|labs|industries|enterprises|"
    r"international|consulting|services|bank|foundation|institute|university|college|gmbh|ag|sa|bv|nv|oy|ab|"
    r"as|kk)\.?$"
)
_LOOKAHEAD = 3  # lines between the name and its street line (a company, the name again), and after it
_SCAN = 12  # lines read after a candidate line, blank ones included: the work per line stays bounded


def _confirms_address(street: str, after: list[str]) -> bool:
    """A street line is an address with a designator on it ("24 Clarke Avenue"), or a unit, a PO box
    or a postcode on it or on the lines after it ("Suite 727", "Finland 38524")."""
    return _DESIGNATOR.search(street) is not None or any(
        _UNIT_OR_BOX.search(line) or _POSTCODE.search(line) for line in [street, *after]
    )


def ends_with_firm_word(name: str) -> bool:
    """Whether a name of several words ends with a word that names a firm ("Galorath Incorporated",
    "Palantir Technologies", "Rand Corporation")."""
    return _FIRM.search(name.rstrip()) is not None


def _heads_address(following: list[str]) -> bool:
    """Whether a street line, confirmed as an address, is among the first three non-blank lines of
    `following` (the lines after a candidate line)."""
    lines = [line for line in following[:_SCAN] if line.strip(" \t\r>")]
    for k, line in enumerate(lines[:_LOOKAHEAD]):
        if _STREET_LINE.match(line):
            return _confirms_address(line, lines[k + 1 : k + 1 + _LOOKAHEAD])
    return False


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    line_end = text.find("\n", end)
    return text.rfind("\n", 0, start) + 1, len(text) if line_end < 0 else line_end


def heads_address_block(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is alone on its line (after quoting) and that line heads or sits in a
    postal address block: a confirmed street line follows within three lines."""
    line_start, line_end = _line_bounds(text, start, end)
    if text[line_start:start].strip(" \t>") or text[end:line_end].strip():
        return False
    return _heads_address(text[line_end + 1 :].split("\n", _SCAN)[:_SCAN])


def firm_line(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is a single word alone on its line right under the addressee of an
    address block: the firm line of a mailing label ("> Elizabeth Hanson\n> Flightaware\n> 077
    Mellemstræde 74\n> Apt. 316"), which the NER takes for a person. A single word under anything
    else stays a person ("Best,\nJohn\n12 Main Street")."""
    if len(text[start:end].split()) != 1 or not heads_address_block(text, start, end):
        return False
    line_start, _ = _line_bounds(text, start, end)
    previous = [line for line in text[:line_start].rsplit("\n", _SCAN)[-_SCAN:] if line.strip(" \t\r>")]
    return bool(previous) and _NAME_LINE.match(previous[-1]) is not None


def addressee_spans(text: str, truecaser: Truecaser | None) -> list[tuple[int, int]]:
    """Character spans of the names heading the address blocks of `text`."""
    if "\n" not in text or not any(c.isdigit() for c in text):
        return []  # a block has several lines and a house number: most prompts end here
    lines = text.split("\n")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    spans: list[tuple[int, int]] = []
    for i, line in enumerate(lines):
        match: regex.Match[str] | None = _NAME_LINE.match(line)
        if match is None or ends_with_firm_word(match["name"]):
            continue
        if not _heads_address(lines[i + 1 : i + 1 + _SCAN]):
            continue
        words = [w for w in regex.findall(r"\p{L}[\p{L}'’-]+", match["name"]) if not regex.fullmatch(_PARTICLE, w)]
        if truecaser is not None:
            common = truecaser.ordinary(words)
            if sum(common) >= 2 or all(common):
                continue  # "Google Public Data Explorer", "Chocolate Cake": a firm or a heading
        start = offsets[i] + match.start("name")
        spans.append((start, start + len(match["name"])))
    return spans


def addressee_recognizer(language: str, truecaser: Truecaser | None) -> Any:
    """PERSON: the name heading a postal address block (see the module docstring). `truecaser`
    holds the word frequencies that tell names from ordinary words (None: no such check)."""

    class AddresseeRecognizer(EntityRecognizer):
        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
            if "PERSON" not in entities:
                return []
            return [
                explained_result(
                    "PERSON",
                    start,
                    end,
                    ADDRESSEE_SCORE,
                    "a name heading a postal address block",
                    recognizer="AddresseeRecognizer",
                    identifier=self.id,
                )
                for start, end in addressee_spans(text, truecaser)
            ]

    return AddresseeRecognizer(supported_entities=["PERSON"], supported_language=language, name="AddresseeRecognizer")
