"""A registry of protected names (real people, brands, characters) that an admin loads.

Entries come from `names=[{"name": ..., "kind": "person"|"brand"|"character", "aliases": [...],
"id": ...}]` and/or a file `path` (YAML: a list of such objects, or `{"names": [...]}`; CSV with
columns `name,kind[,aliases][,id]`, aliases separated by `|`). Names and aliases are matched after
normalization in every screening view of the text (homoglyphs, spacing, leetspeak, encodings), on
word boundaries for Latin script and as substrings for Japanese and Chinese.

One finding per matched entry: category "protected_name", evidence {kind, id, name, alias}.
The policy decides (a real person next to sexual or violent content: block; a brand: review).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.normalize import normalize_text, screen_views

__all__ = ["KINDS", "ProtectedName", "ProtectedNames", "load_names"]

KINDS = frozenset({"person", "brand", "character"})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


@dataclass(frozen=True)
class ProtectedName:
    id: str
    name: str
    kind: str
    aliases: tuple[str, ...] = ()


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


class ProtectedNames:
    """Finds registered names of people, brands and characters in text."""

    name = "protected_names"
    version = "1.0.0"
    modalities = frozenset({"text"})

    def __init__(self, path: str | None = None, names: Sequence[Mapping[str, Any]] | None = None) -> None:
        entries = [_entry(n, "names") for n in (names or ())]
        if path is not None:
            entries += load_names(path)
        self.path = path
        self.entries = entries
        self._pattern: re.Pattern[str] | None = None
        self._by_form: dict[str, list[tuple[ProtectedName, str]]] = {}

    def load(self) -> None:
        forms: dict[str, list[tuple[ProtectedName, str]]] = {}
        for entry in self.entries:
            for alias in (entry.name, *entry.aliases):
                form = re.sub(r"\s+", " ", normalize_text(alias).text.strip())
                if len(form) < 2:
                    continue
                forms.setdefault(form, []).append((entry, alias))
        self._by_form = {}
        for form, owners in forms.items():
            self._by_form.setdefault(form.replace(" ", ""), []).extend(owners)
        if not forms:
            self._pattern = None
            return
        parts = []
        for form in sorted(forms, key=lambda f: (-len(f), f)):
            body = r"\s*".join(re.escape(w) for w in form.split(" "))
            parts.append(body if _CJK.search(form) else rf"(?<!\w){body}(?!\w)")
        self._pattern = re.compile("|".join(parts))

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem) or not item.text.strip():
            return []
        if self._pattern is None:
            if self.entries:
                raise DetectorError("protected_names: load() was not called")
            return []
        found: dict[str, Finding] = {}
        for view in screen_views(item.text):
            for m in self._pattern.finditer(view.text):
                form = re.sub(r"\s+", "", m.group(0))
                for entry, alias in self._by_form.get(form, []):
                    if entry.id in found:
                        continue
                    span = view.to_original(m.start(), m.end())
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
