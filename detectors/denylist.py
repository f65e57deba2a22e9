"""Deny-list terms from the policy bundle, matched on word boundaries after normalization.

The terms are not configured on the detector: they arrive with each request in
`ctx.resources["terms"]` (a list of `{"term": str, "category": str}` from the policy bundle's
data), so a policy reload changes them. Each distinct list is compiled once and cached.

Both the text and the terms go through `normalize_text`, so a term also matches when written
with homoglyphs (Cyrillic/Greek look-alikes), zero-width characters, full-width letters or in
another case.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.normalize import normalize_text

__all__ = ["CompiledTerms", "DenyList", "compile_terms"]

TermKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CompiledTerms:
    """One regular expression for a whole list, and the listed terms behind each normalized form."""

    pattern: re.Pattern[str] | None
    by_normalized: Mapping[str, tuple[tuple[str, str], ...]]


def compile_terms(terms: TermKey) -> CompiledTerms:
    """Compile `(term, category)` pairs into one word-bounded alternation, longest first."""
    by_norm: dict[str, list[tuple[str, str]]] = {}
    for term, category in terms:
        norm = normalize_text(term).text.strip()
        if not norm:
            continue
        entries = by_norm.setdefault(norm, [])
        if (term, category) not in entries:
            entries.append((term, category))
    if not by_norm:
        return CompiledTerms(pattern=None, by_normalized={})
    alternation = "|".join(re.escape(t) for t in sorted(by_norm, key=lambda t: (-len(t), t)))
    pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
    return CompiledTerms(pattern=pattern, by_normalized={k: tuple(v) for k, v in by_norm.items()})


def _term_key(raw: Any) -> TermKey:
    if raw is None:
        return ()
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise DetectorError("denylist: resources['terms'] must be a list of {term, category} objects")
    out: list[tuple[str, str]] = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            raise DetectorError("denylist: each term must be an object with 'term' and 'category'")
        term, category = entry.get("term"), entry.get("category")
        if not isinstance(term, str) or not isinstance(category, str) or not category:
            raise DetectorError("denylist: each term needs a string 'term' and a non-empty 'category'")
        out.append((term, category))
    return tuple(out)


class DenyList:
    """Finds listed terms in text. Measures only: score 1.0 per match; the policy decides."""

    name = "denylist"
    version = "1.0.0"
    modalities = frozenset({"text"})

    def __init__(self, cache_size: int = 8) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._cache_size = cache_size
        self._cache: OrderedDict[TermKey, CompiledTerms] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        from detectors.normalize import fold_map

        fold_map()  # build the confusables table at startup, not on the first request

    def _compiled(self, key: TermKey) -> CompiledTerms:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = compile_terms(key)  # outside the lock: compiling a big list may take a while
        with self._lock:
            self._cache[key] = compiled
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def precompile(self, terms: Sequence[Mapping[str, str]]) -> None:
        """Compile a term list ahead of use (e.g. right after a policy reload); optional."""
        key = _term_key(terms)
        if key:
            self._compiled(key)

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        key = _term_key(ctx.resources.get("terms"))
        if not key:
            return []
        compiled = self._compiled(key)
        if compiled.pattern is None:
            return []
        normalized = normalize_text(item.text)
        findings: list[Finding] = []
        for match in compiled.pattern.finditer(normalized.text):
            start, end = normalized.to_original(match.start(), match.end())
            transforms = sorted(normalize_text(item.text[start:end]).transforms)
            for term, category in compiled.by_normalized[match.group(0)]:
                how = f" (written with {', '.join(transforms)})" if transforms else ""
                findings.append(
                    Finding(
                        detector=self.name,
                        category=category,
                        score=1.0,
                        explanation=f"deny-listed term in category {category!r}{how}",
                        evidence={"term": term, "transforms": transforms},
                        span=(start, end),
                    )
                )
        return findings
