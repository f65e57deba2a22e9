"""Jailbreak and prompt-injection attempts: instruction override, role-play framing, DAN-style
templates, restriction removal and system-prompt extraction, in English and Japanese.

Patterns (`detectors.lexicons.JAILBREAK`) run over every screening view of the text, so an
override hidden in base64 or written with homoglyphs still counts; a space in a pattern matches
any run of whitespace, "-" or "_" (`spaced`), so doubled spaces or tabs do not split a phrase. Each matched kind adds
evidence; the score combines them as independent signals (1 - prod(1 - w)), so one role-play
phrase alone stays low while "ignore previous instructions" or a DAN template scores high. A long
text with several kinds (the typical in-the-wild jailbreak) gets a small length bonus.
A text that hides more encoded payloads or rot13 than the screen reads (`ScreenViews.unread`)
counts as the kind "unread_payloads" (0.7: review), so an attacker cannot bury a payload behind
decoys. One finding, category "jailbreak", with the kinds found. The policy decides.
"""

from __future__ import annotations

import re

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.lexicons import JAILBREAK
from detectors.normalize import screen_views, word_costs

__all__ = ["Jailbreak", "spaced"]

#: What a space between two words of a pattern matches: any run of whitespace, "-" or "_", so
#: "ignore  all previous instructions" (two spaces, tabs, line breaks, "ignore-all-previous...")
#: reads as the phrase. Wrapped in a group, so "x ?y" stays "x, optionally a break, y"; possessive,
#: since no pattern goes on with a break character, so a long run of them is read once.
_BREAK = r"(?:[\s_-]++)"


def spaced(pattern: str) -> str:
    """`pattern` with each literal space outside a character class made `_BREAK`; escapes and
    character classes ("[- ]") are left as they are, so nothing else it matches changes."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            out.append(c)
        elif c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
            out.append(c)
        elif c == " ":
            out.append(_BREAK)
        else:
            out.append(c)
        i += 1
    return "".join(out)


#: The weight of a text holding more encoded payloads or rot13 than `screen_views` reads (its
#: budget of decoded characters is spent): review, since the unread part was never screened.
_UNREAD_WEIGHT = 0.7


class Jailbreak:
    """Scores instruction-override, role-play and DAN-style prompts."""

    name = "jailbreak"
    version = "1.2.0"
    modalities = frozenset({"text"})

    def __init__(self, min_score: float = 0.2) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError("min_score must be within [0, 1]")
        self.min_score = float(min_score)
        self._rules = [(re.compile(spaced(p)), w, kind) for p, w, kind in JAILBREAK]

    def load(self) -> None:
        screen_views("warm up")
        word_costs()  # the word list for re-segmenting spaced-out letters, read once here

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        if not item.text.strip():
            return []
        try:
            views = screen_views(item.text)
        except Exception as exc:
            raise DetectorError(f"jailbreak: could not read the text: {exc}") from exc
        best: dict[int, tuple[float, str, tuple[int, int] | None, str]] = {}
        for view in views:
            for i, (pattern, weight, kind) in enumerate(self._rules):
                if i in best:
                    continue
                m = pattern.search(view.text)
                if m is not None:
                    span = view.to_original(m.start(), m.end()) if m.end() > m.start() else None
                    best[i] = (weight, kind, span, view.source)
        unread = int(getattr(views, "unread", 0))
        if unread:  # more encoded text than the screen reads: what it did not read is not vetted
            best[-1] = (_UNREAD_WEIGHT, "unread_payloads", None, "text")
        if not best:
            return []
        remaining = 1.0
        kinds: dict[str, float] = {}
        for weight, kind, _, _ in best.values():
            remaining *= 1.0 - weight
            kinds[kind] = max(kinds.get(kind, 0.0), weight)
        score = 1.0 - remaining
        if len(item.text) > 600 and len(kinds) >= 2:
            score = min(1.0, score + 0.1)
        if score < self.min_score:
            return []
        strongest = max(best.values(), key=lambda b: b[0])
        views_used = sorted({b[3] for b in best.values()})
        return [
            Finding(
                detector=self.name,
                category="jailbreak",
                score=round(score, 6),
                explanation=f"jailbreak patterns: {', '.join(sorted(kinds))}",
                evidence={"kinds": sorted(kinds), "views": views_used, "matches": len(best), "unread": unread},
                span=strongest[2] if strongest[2] and strongest[2][1] > strongest[2][0] else None,
            )
        ]
