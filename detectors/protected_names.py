"""A registry of protected names (real people, brands, characters) that an admin loads.

Entries come from `names=[{"name": ..., "kind": "person"|"brand"|"character", "aliases": [...],
"id": ...}]` and/or a file `path` (YAML: a list of such objects, or `{"names": [...]}`; CSV with
columns `name,kind[,aliases][,id]`, aliases separated by `|`), and from the gateway's registry in
the database (`POST /v1/protected-names`, `mamori protected-names import`), which the gateway
passes per request in the detection context. Names and aliases are matched after
normalization in every screening view of the text (homoglyphs, spacing, leetspeak, encodings), on
word boundaries for Latin script and as substrings for Japanese and Chinese.

One finding per matched entry: category "protected_name", evidence {kind, id, name, alias}.
The policy decides (a real person next to sexual or violent content: block; a brand: review).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.normalize import ScreenView, normalize_text, screen_views

__all__ = ["KINDS", "NameMatcher", "ProtectedName", "ProtectedNames", "load_names", "protected_name"]

KINDS = frozenset({"person", "brand", "character"})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


@dataclass(frozen=True)
class ProtectedName:
    id: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    tenant: str | None = None  # None: the name is protected for every tenant


def protected_name(raw: Mapping[str, Any], where: str = "names", tenant: str | None = None) -> ProtectedName:
    """One registry entry from `{name, kind, aliases, id}`; a clear ValueError when it is malformed."""
    entry = _entry(raw, where)
    return ProtectedName(entry.id, entry.name, entry.kind, entry.aliases, tenant)


def _entry(raw: Mapping[str, Any], where: str) -> ProtectedName:
    name = str(raw.get("name") or "").strip()
    kind = str(raw.get("kind") or "").strip().lower()
    if not name:
        raise ValueError(f"{where}: an entry has no name")
    if kind not in KINDS:
        raise ValueError(f"{where}: kind of {name!r} must be one of {sorted(KINDS)}, not {kind!r}")
    aliases_raw = raw.get("aliases") or ()
    if isinstance(aliases_raw, str):
        aliases_raw = [a for a in aliases_raw.split("|")]
    aliases = tuple(str(a).strip() for a in aliases_raw if str(a).strip())
    ident = str(raw.get("id") or re.sub(r"[^a-z0-9]+", "_", normalize_text(name).text).strip("_") or name)
    return ProtectedName(id=ident, name=name, kind=kind, aliases=aliases)


def load_names(path: str | Path) -> list[ProtectedName]:
    """Read a YAML or CSV registry file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"protected names file {p} does not exist")
    if p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            return [_entry(row, str(p)) for row in csv.DictReader(fh)]
    import yaml

    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    if isinstance(data, Mapping):
        data = data.get("names", [])
    if not isinstance(data, list) or not all(isinstance(d, Mapping) for d in data):
        raise ValueError(f"{p}: expected a list of {{name, kind, aliases}} objects")
    return [_entry(d, str(p)) for d in data]


class NameMatcher:
    """Compiled names: one regular expression over every normalized name and alias."""

    def __init__(self, entries: Sequence[ProtectedName]) -> None:
        forms: dict[str, list[tuple[ProtectedName, str]]] = {}
        for entry in entries:
            for alias in (entry.name, *entry.aliases):
                form = re.sub(r"\s+", " ", normalize_text(alias).text.strip())
                if len(form) < 2:
                    continue
                forms.setdefault(form, []).append((entry, alias))
        self.entries = tuple(entries)
        self._by_form: dict[str, list[tuple[ProtectedName, str]]] = {}
        for form, owners in forms.items():
            self._by_form.setdefault(form.replace(" ", ""), []).extend(owners)
        self._pattern: re.Pattern[str] | None = None
        if forms:
            parts = []
            for form in sorted(forms, key=lambda f: (-len(f), f)):
                body = r"\s*".join(re.escape(w) for w in form.split(" "))
                parts.append(body if _CJK.search(form) else rf"(?<!\w){body}(?!\w)")
            self._pattern = re.compile("|".join(parts))

    def __len__(self) -> int:
        return len(self.entries)

    def matches(
        self, views: Sequence[ScreenView], tenant: str
    ) -> Iterator[tuple[ProtectedName, str, ScreenView, int, int]]:
        """(entry, alias, view, start, end) for each name in the views; entries of another tenant
        are skipped (an entry without a tenant applies to every tenant)."""
        if self._pattern is None:
            return
        for view in views:
            for m in self._pattern.finditer(view.text):
                form = re.sub(r"\s+", "", m.group(0))
                for entry, alias in self._by_form.get(form, []):
                    if entry.tenant is None or entry.tenant == tenant:
                        yield entry, alias, view, m.start(), m.end()


class ProtectedNames:
    """Finds registered names of people, brands and characters in text.

    Two sources: the names given to the detector (`names=`, `path=`), and the gateway's registry
    in the database, which the gateway passes per request as `ctx.resources["protected_names"]`
    (a `NameMatcher`), so that names an admin registers through the API apply at once in every
    gateway process.
    """

    name = "protected_names"
    version = "1.1.0"
    modalities = frozenset({"text"})

    def __init__(self, path: str | None = None, names: Sequence[Mapping[str, Any]] | None = None) -> None:
        entries = [_entry(n, "names") for n in (names or ())]
        if path is not None:
            entries += load_names(path)
        self.path = path
        self.entries = entries
        self._matcher: NameMatcher | None = None

    def load(self) -> None:
        self._matcher = NameMatcher(self.entries)

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem) or not item.text.strip():
            return []
        if self._matcher is None:
            raise DetectorError("protected_names: load() was not called")
        registry = ctx.resources.get("protected_names")
        matchers = [m for m in (self._matcher, registry) if isinstance(m, NameMatcher) and len(m)]
        if not matchers:
            return []
        views = screen_views(item.text)
        found: dict[str, Finding] = {}
        for matcher in matchers:
            for entry, alias, view, start, end in matcher.matches(views, ctx.tenant):
                if entry.id in found:
                    continue
                span = view.to_original(start, end)
                how = "" if view.source == "text" else f" (in the {view.source} reading)"
                found[entry.id] = Finding(
                    detector=self.name,
                    category="protected_name",
                    score=1.0 if view.source == "text" else 0.9,
                    explanation=f"protected {entry.kind} {entry.name!r}{how}",
                    evidence={
                        "kind": entry.kind,
                        "id": entry.id,
                        "name": entry.name,
                        "alias": alias,
                        "view": view.source,
                    },
                    span=span if span[1] > span[0] else None,
                )
        return list(found.values())
