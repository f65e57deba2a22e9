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
  The pattern recognizers of values written in ASCII (e-mail, card, phone, SSN, URL, IP address,
  crypto wallet, US passport) match on this view; their context words are still read in the text
  itself. Inside `shared_latin_views()` (one analysis) the view of a text is computed once and
  shared by all of them.
- `email_view`: the latin view, except for Japanese script written right before an "@", which is
  kept: an e-mail local part may be written in it (RFC 6531), "山田@example.jp"; from after a
  word labelling an address, the particle after it kept ("メールは山田@example.jp": は山田).
- `payload_views`: the encoded payloads (base64, hex, nested) that `detectors.normalize.screen_views`
  decodes, and the ASCII hidden in invisible Unicode tag characters (its "tags" view, and the
  payloads decoded inside it), with the span of the original they come from; only looked for when
  the text holds a token that may be a payload, or tag characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from detectors.normalize import INVISIBLE, has_payload_shape, screen_views, tag_runs, visible_nfkc
from detectors.word_edges import HAN, HAN_COMPATIBILITY

__all__ = [
    "MappedText",
    "Payload",
    "analysis_copy",
    "email_view",
    "latin_view",
    "payload_views",
    "shared_latin_views",
]


# a dash that is not ASCII between two digits (after NFKC: full-width digits are ASCII by then)
_DIGIT_DASH = re.compile(r"(?<=[0-9０-９])[\u2010-\u2015\u2212\u30fc\uff70](?=[0-9０-９])")

# The letters of Japanese, Chinese and Korean script that presidio's patterns would read as word
# characters glued to ASCII: hiragana and katakana letters (U+3041..U+3096, U+30A1..U+30FA; not
# the marks and punctuation of the kana blocks, ゛ ゝ ・ ヽ, that `word_edges.KANA` holds), the
# prolonged sound mark ー, the iteration mark 々, the ideographs (`word_edges.HAN`, the
# compatibility ideographs), half-width katakana and the Hangul syllables. It reads the original
# text, not an NFKC view, hence the half-width and compatibility forms.
_CJK = re.compile(f"[\u3041-\u3096\u30a1-\u30fa\u30fc\u3005{HAN}{HAN_COMPATIBILITY}\uff66-\uff9f\uac00-\ud7a3]")

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
        or INVISIBLE.search(text) is not None
        or _DIGIT_DASH.search(text) is not None
    )


def analysis_copy(text: str) -> MappedText | None:
    """The copy of `text` that presidio reads (see the module docstring), or None when it would be
    `text` itself."""
    if not _needs_copy(text):
        return None
    chars, starts, ends = visible_nfkc(text)  # per character: the span of the original it came from
    copy = _DIGIT_DASH.sub("-", "".join(chars))  # one character for one: the map holds
    return MappedText(copy, tuple(starts), tuple(ends))


# Within `shared_latin_views`: id(text) -> (text, its latin view). The text is held, so its id is
# not reused while the entry lives; the dict lives as long as one analysis.
_SHARED_LATIN: ContextVar[dict[int, tuple[str, str]] | None] = ContextVar("mamori_shared_latin", default=None)


def _blank_cjk(text: str) -> str:
    return _CJK.sub(" ", text)


@contextmanager
def shared_latin_views() -> Iterator[None]:
    """Within this block (one analysis, in this thread or task), `latin_view` computes the view of
    each text object once: the recognizers that match on it share it. The views are dropped when
    the block ends."""
    token = _SHARED_LATIN.set({})
    try:
        yield
    finally:
        _SHARED_LATIN.reset(token)


def latin_view(text: str) -> str:
    """`text` with every character of Japanese, Chinese or Korean script replaced by a space
    (computed once per text object within `shared_latin_views`)."""
    if text.isascii():
        return text
    shared = _SHARED_LATIN.get()
    if shared is None:
        return _blank_cjk(text)
    entry = shared.get(id(text))
    if entry is None or entry[0] is not text:
        entry = (text, _blank_cjk(text))
        shared[id(text)] = entry
    return entry[1]


#: RFC 5321's limit on a local part, in octets (RFC 6531 keeps it for UTF-8 local parts)
_LOCAL_PART_OCTETS = 64
# Japanese (Chinese, Korean) script right before an "@"
# anchored at the start of a run: unanchored, every position of a long run rescanned it to the end
_CJK_AT = re.compile(rf"(?<!{_CJK.pattern}){_CJK.pattern}+(?=@)")
# A word that labels an address, followed by a particle, glued to a local part in Japanese script
# ("メールアドレスは山田@example.jp"): what is kept starts after the last one in the run.
# The particle is kept with the local part: it may be the name's first letter ("宛先はるか@": はるか).
_ADDRESS_LABEL = re.compile(
    r"(?:[EＥｅe]?メール(?:アドレス)?|メアド|アドレス|連絡先|宛先|送信先|送り先|返信先|問い?合わ?せ先)"
    r"(?=は|が|を|に|へ|も|の|まで|から|宛)"  # a particle is asked for: "メールマガジン@" is one word
)


def email_view(text: str) -> str:
    """`latin_view(text)`, with the Japanese (Chinese, Korean) script written right before an "@"
    kept, up to the 64 octets of a local part: "山田@example.jp" is an address (RFC 6531).
    Written without spaces, such a local part cannot be told from the words before it, so the
    run of that script before the "@" is kept from after the last word that labels an address
    and is followed by a particle, the particle kept ("メールアドレスは山田@example.jp": は山田;
    "宛先はるか@example.jp": はるか), or whole where no such word is in it ("お客様山田@example.jp"):
    the address is covered, with any other words glued to it. An
    ASCII local part glued to Japanese ("メールはtaro@example.jp") stays the ASCII alone, as in
    `latin_view`."""
    view = latin_view(text)
    if view is text or "@" not in text:
        return view
    runs = list(_CJK_AT.finditer(text))
    if not runs:
        return view
    chars = list(view)
    for m in runs:
        start = m.start()
        for label in _ADDRESS_LABEL.finditer(text, m.start(), m.end()):
            if label.end() < m.end():  # a label alone before the "@" is the local part itself
                start = label.end()
        octets = 0
        for i in range(m.end() - 1, start - 1, -1):
            octets += len(text[i].encode("utf-8"))
            if octets > _LOCAL_PART_OCTETS:
                break
            chars[i] = text[i]
    return "".join(chars)


@dataclass(frozen=True)
class Payload:
    """A decoded payload: the view that decoded it ("base64", "hex", "base64>hex", ...), the
    decoded text (case kept) and the span of the original text it comes from."""

    source: str
    text: str
    span: tuple[int, int]


def payload_views(text: str, copy: MappedText | None = None) -> list[Payload]:
    """The payloads of `text` that `screen_views` decodes, and the ASCII its tag characters spell
    (source "tags", and "tags>base64" ... for payloads inside it), each on the span of the original
    it comes from; none looked for without tag characters or a token shaped like a payload in
    `text` or in its `copy` (`analysis_copy`: a token split by a zero-width space)."""
    if not has_payload_shape(text) and (copy is None or not has_payload_shape(copy.text)) and not tag_runs(text):
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
