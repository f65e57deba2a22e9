"""Other mentions of a name: a text that names someone in full often names them again by their
given name or surname alone ("Valida spent a year at Mhealthcoach as the assistant to Valida M.
Ibragimov", "... directed by Maciej Borkowski and starring Borkowski"), and the NER, reading each
mention on its own, misses the short one or reads it as a place.

`other_mentions` takes the PERSON results of a text and adds one for each other occurrence of the
first or last word of a name of two words or more, capitalised as in the name, where no PERSON
result lies yet and no other capitalised word stands right beside it (then it is part of another
name: "Harrison Ford ... a red Ford Mustang", "Michael Jordan in Air Jordan sneakers"). Words of
three letters or fewer and ordinary words (`Truecaser.ordinary`: "Key",
"Will") are not followed, since they occur in text for other reasons. The added results score
`MENTION_SCORE`, below the NER's own 0.85, so that a place or firm the NER found at the same
spot, with its higher score, still covers them when overlaps are resolved.
"""

from __future__ import annotations

from typing import Any

import regex

from detectors.pii_results import explained_result
from detectors.pii_truecase import Truecaser

__all__ = ["MENTION_SCORE", "other_mentions"]

#: Score of another mention of a name found in full: above the policy's PII threshold (0.5).
MENTION_SCORE = 0.6
_PERSON = "PERSON"
_CAPITALISED_BEFORE = regex.compile(r"\p{Lu}[\p{L}'’-]*[ ]$")
_CAPITALISED_AFTER = regex.compile(r"[ ]\p{Lu}")
_NAME_WORD = regex.compile(r"\p{Lu}[\p{Ll}\p{Lm}'’]{3,}(?:-\p{Lu}?[\p{Ll}\p{Lm}'’]+)?")


def _name_ends(value: str) -> list[str]:
    """The first and last word of a name of two words or more written with capitals."""
    words = value.split()
    if len(words) < 2:
        return []
    return [w for w in {words[0], words[-1]} if _NAME_WORD.fullmatch(w)]


def other_mentions(text: str, results: list[Any], frequencies: Truecaser | None) -> list[Any]:
    """`results` plus a PERSON result for each other mention of a word of a name found in full."""
    persons = [r for r in results if r.entity_type == _PERSON]
    words = {w for r in persons for w in _name_ends(text[r.start : r.end])}
    if not words:
        return results
    candidates = sorted(words)
    if frequencies is not None:
        candidates = [
            w for w, ordinary in zip(candidates, frequencies.ordinary(candidates), strict=True) if not ordinary
        ]
    added: list[Any] = []
    for word in candidates:
        for match in regex.finditer(rf"(?<![\p{{L}}\p{{N}}_'’-]){regex.escape(word)}(?![\p{{L}}\p{{N}}_-])", text):
            start, end = match.span()
            if any(r.start < end and start < r.end for r in persons + added):
                continue
            if _CAPITALISED_BEFORE.search(text, max(0, start - 40), start) or _CAPITALISED_AFTER.match(text, end):
                continue  # part of another name: "a red Ford Mustang", "Air Jordan sneakers"
            added.append(
                explained_result(
                    _PERSON,
                    start,
                    end,
                    MENTION_SCORE,
                    "another mention of a name found in full in the text",
                    recognizer="NameMentions",
                )
            )
    return results + added
