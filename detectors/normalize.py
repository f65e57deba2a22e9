"""Text normalization that undoes common obfuscation before matching.

`normalize_text` applies, in order:

1. removal of invisible characters (zero-width space/joiners, directional marks and isolates,
   word joiner and invisible operators, BOM, soft hyphen, variation selectors, Unicode tag
   characters U+E0000..U+E007F);
2. NFKC (full-width letters, ligatures, mathematical alphanumerics, ...);
3. confusable folding: a non-ASCII character that Unicode's confusables data lists as a homoglyph
   of an ASCII letter or digit becomes that character (Cyrillic а/е/о/р/с, Greek ο, ...);
4. casefolding (then a second folding pass for characters that only appear after casefolding).

Every output character remembers the span of original characters it came from, so a match in the
normalized text maps back to the original (`NormalizedText.to_original`).

The folding is deliberately aggressive: a Russian word written entirely in Cyrillic letters that
look Latin (e.g. "рос") folds to Latin ("poc"). That is what defeats homoglyph evasion; matching
code should treat it as a measurement, not a verdict.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["INVISIBLE_CHARS", "NormalizedText", "fold_map", "normalize_text"]


def _invisible() -> frozenset[str]:
    points: list[int] = [0x00AD, 0x034F, 0x061C, 0x180E, 0xFEFF]
    points += range(0x200B, 0x2010)  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    points += range(0x202A, 0x202F)  # bidi embeddings and overrides
    points += range(0x2060, 0x2065)  # word joiner, invisible operators
    points += range(0x2066, 0x206A)  # bidi isolates
    points += range(0xFE00, 0xFE10)  # variation selectors
    points += range(0xE0000, 0xE0080)  # tag characters
    return frozenset(chr(p) for p in points)


INVISIBLE_CHARS: frozenset[str] = _invisible()


@lru_cache(maxsize=1)
def fold_map() -> dict[str, str]:
    """Map each non-ASCII confusable of an ASCII letter or digit to that (lower-case) character.

    Built once from the confusables data bundled with `confusable-homoglyphs` (Unicode's
    confusables.txt). Unicode's skeleton maps capital I to "l"; for an upper-case source
    character we read that target as "i", which is what a reader sees.
    """
    from confusable_homoglyphs.utils import load

    data: dict[str, list[dict[str, str]]] = load("confusables.json")
    out: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        targets = sorted({h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()})
        if not targets:
            continue
        target = targets[0]
        if target == "l" and unicodedata.category(char) == "Lu":
            target = "i"
        out[char] = target.lower()
    return out


@dataclass(frozen=True)
class NormalizedText:
    """The normalized text, the original, and where each normalized character came from."""

    text: str
    original: str
    transforms: frozenset[str]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span `[start, end)` of `text` to the span of `original` it was derived from."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span ({start}, {end}) is outside the normalized text")
        return self.starts[start], self.ends[end - 1]


def _clusters(text: str) -> list[tuple[int, int]]:
    """Split into a starter plus following combining marks (and Hangul medial/final jamo)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text):
            spans.append((start, i))
            break
        ch = text[i]
        cp = ord(ch)
        if unicodedata.combining(ch) or 0x1160 <= cp <= 0x11FF or 0xD7B0 <= cp <= 0xD7FF:
            continue
        spans.append((start, i))
        start = i
    return spans


def normalize_text(text: str) -> NormalizedText:
    """Normalize `text` for matching; see the module docstring for the steps."""
    transforms: set[str] = set()

    # 1. drop invisible characters, keeping each survivor's original index
    kept: list[int] = []
    for i, ch in enumerate(text):
        if ch in INVISIBLE_CHARS:
            transforms.add("zero_width")
        else:
            kept.append(i)
    visible = "".join(text[i] for i in kept)

    # 2. NFKC per cluster so positions stay traceable
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for cs, ce in _clusters(visible) if visible else []:
        chunk = visible[cs:ce]
        norm = unicodedata.normalize("NFKC", chunk)
        if norm != chunk:
            transforms.add("nfkc")
        o_start, o_end = kept[cs], kept[ce - 1] + 1
        for out in norm:
            chars.append(out)
            starts.append(o_start)
            ends.append(o_end)

    # 3 + 4. fold confusables, casefold, fold again
    folds = fold_map()
    f_chars: list[str] = []
    f_starts: list[int] = []
    f_ends: list[int] = []
    for ch, s, e in zip(chars, starts, ends, strict=True):
        folded = folds.get(ch)
        if folded is not None:
            transforms.add("homoglyph")
            ch = folded
        for low in ch.casefold():
            again = folds.get(low)
            if again is not None:
                transforms.add("homoglyph")
                low = again
            f_chars.append(low)
            f_starts.append(s)
            f_ends.append(e)

    return NormalizedText(
        text="".join(f_chars),
        original=text,
        transforms=frozenset(transforms),
        starts=tuple(f_starts),
        ends=tuple(f_ends),
    )
