"""The readings of a text that `detectors.pii.PresidioPII` analyses, each mapped back to the original.

- `analysis_copy`: the text as presidio should read it, case kept (spaCy's NER needs the capitals,
  so not `detectors.normalize.normalize_text`, which casefolds): invisible characters (zero-width
  space and joiners, bidirectional marks, soft hyphen, variation selectors, tag characters; the
  set of `detectors.normalize.INVISIBLE_CHARS`) removed, NFKC applied per character with its
  combining marks (full-width letters and digits become ASCII), and a dash between two digits
  that is not ASCII (U+2010..U+2015, the minus sign, the prolonged sound mark "ー" that Japanese
  IMEs put in phone numbers) made "-". Each character of the copy remembers the span of the
  original it came from, so a finding in the copy maps back to the original (the gateway redacts
  the original with these spans). `None` when the text is already so: ASCII text costs one flag
  test.
- `latin_view`: the text with each character of Japanese (or Chinese, Korean) script replaced by
  a space, same length: regular-expression word boundaries do not split kana or kanji from ASCII
  (both are `\\w`), so "メールはtaro@example.jpです" has no e-mail address for presidio's pattern.
  The pattern recognizers of values written in ASCII (e-mail, card, phone, SSN) match on this
  view; their context words are still read in the text itself.
- `payload_views`: the encoded payloads (base64, hex, nested) that `detectors.normalize.screen_views`
  decodes, with the span of the original they come from; only looked for when the text holds a
  token that may be one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from detectors.normalize import INVISIBLE_CHARS, screen_views

__all__ = ["MappedText", "Payload", "analysis_copy", "latin_view", "payload_views"]


def _ranges_class(chars: frozenset[str]) -> re.Pattern[str]:
    """A regex class of `chars` written as code point ranges (a class of many single characters
    outside the BMP searches slowly)."""
    ranges: list[list[int]] = []
    for cp in sorted(ord(c) for c in chars):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)
    return re.compile(f"[{body}]")


_INVISIBLE = _ranges_class(INVISIBLE_CHARS)
# a dash that is not ASCII between two digits (after NFKC: full-width digits are ASCII by then)
_DIGIT_DASH = re.compile(r"(?<=[0-9０-９])[\u2010-\u2015\u2212\u30fc\uff70](?=[0-9０-９])")
# marks that NFKC composes with the character before them: combining marks, and the half-width
# (sound) voiced marks of half-width katakana (ｶﾞ -> ガ), which are no combining marks in Unicode
_HALFWIDTH_VOICED = frozenset("\uff9e\uff9f")
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")

# Hiragana, katakana (full and half width), CJK ideographs (extension A, compatibility), the 々
# iteration mark, Hangul syllables.
_CJK = re.compile(
    r"[\u3041-\u3096\u30a1-\u30fa\u30fc\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7a3]"
)

# a token that may be an encoded payload (the shapes `detectors.normalize` decodes, loosely)
_PAYLOAD_TOKEN = re.compile(
    r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])"
    r"|(?<!\w)[0-9a-fA-F]{2}(?:[ :]?[0-9a-fA-F]{2}){7,}(?!\w)"
)
#: view sources that re-read the text or a payload rather than decode one
_READINGS = frozenset({"text", "spaced", "words", "leet", "rot13"})


@dataclass(frozen=True)
class MappedText:
    """A copy of a text and, for each of its characters, the span of the original it came from."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span `[start, end)` of the copy to the span of the original it was derived from."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span ({start}, {end}) is outside the copy")
        return self.starts[start], self.ends[end - 1]


def _needs_copy(text: str) -> bool:
    if text.isascii():  # O(1) in CPython: ASCII is NFKC and has no invisible character
        return False
    return (
        not unicodedata.is_normalized("NFKC", text)
        or _INVISIBLE.search(text) is not None
        or _DIGIT_DASH.search(text) is not None
    )


def _joins_previous(ch: str) -> bool:
    return bool(unicodedata.combining(ch)) or ch in _HALFWIDTH_VOICED


def _copy_part(text: str, start: int, stop: int, chars: list[str], starts: list[int], ends: list[int]) -> None:
    """Append the copy of `text[start:stop]` (no ASCII run there, or one character before marks)."""
    kept = [i for i in range(start, stop) if text[i] not in INVISIBLE_CHARS]
    k = 0
    while k < len(kept):
        j = k + 1
        while j < len(kept) and _joins_previous(text[kept[j]]):
            j += 1
        first, last = kept[k], kept[j - 1] + 1
        for ch in unicodedata.normalize("NFKC", "".join(text[i] for i in kept[k:j])):
            chars.append(ch)
            starts.append(first)
            ends.append(last)
        k = j


def analysis_copy(text: str) -> MappedText | None:
    """The copy of `text` that presidio reads (see the module docstring), or None when it would be
    `text` itself."""
    if not _needs_copy(text):
        return None
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    done = 0
    for run in _ASCII_RUN.finditer(text):  # ASCII is copied as it is, a run at a time
        start, stop = run.span()
        if stop < len(text) and _joins_previous(text[stop]):
            stop -= 1  # the last character composes with the marks after it
        if stop <= start:
            continue
        _copy_part(text, done, start, chars, starts, ends)
        chars.extend(text[start:stop])
        starts.extend(range(start, stop))
        ends.extend(range(start + 1, stop + 1))
        done = stop
    _copy_part(text, done, len(text), chars, starts, ends)
    copy = _DIGIT_DASH.sub("-", "".join(chars))  # one character for one: the map holds
    return MappedText(copy, tuple(starts), tuple(ends))


def latin_view(text: str) -> str:
    """`text` with every character of Japanese, Chinese or Korean script replaced by a space."""
    if text.isascii():
        return text
    return _CJK.sub(" ", text)


@dataclass(frozen=True)
class Payload:
    """A decoded payload: the view that decoded it ("base64", "hex", "base64>hex", ...), the
    decoded text (case kept) and the span of the original text it comes from."""

    source: str
    text: str
    span: tuple[int, int]


def payload_views(text: str, copy: MappedText | None = None) -> list[Payload]:
    """The payloads of `text` that `screen_views` decodes; none looked for without a token shaped
    like one in `text` or in its `copy` (`analysis_copy`: a token split by a zero-width space)."""
    if _PAYLOAD_TOKEN.search(text) is None and (copy is None or _PAYLOAD_TOKEN.search(copy.text) is None):
        return []
    out: list[Payload] = []
    seen: set[tuple[str, tuple[int, int]]] = set()
    for view in screen_views(text):
        parts = view.source.split(">")
        if any(part in _READINGS for part in parts):
            continue
        decoded = view.normalized.original  # the decoded text before casefolding
        key = (decoded, view.span)
        if decoded.strip() and key not in seen:
            seen.add(key)
            out.append(Payload(view.source, decoded, view.span))
    return out
