"""ProtectedNames: a registry of people, brands and characters loaded from options or a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.base import TextItem
from detectors.protected_names import ProtectedNames, load_names
from detectors.testing import assert_detector_contract, make_context

NAMES = [
    {"name": "Jane Example", "kind": "person", "aliases": ["ジェーン・エグザンプル"]},
    {"name": "Acme", "kind": "brand", "id": "acme-corp"},
    {"name": "Captain Kitten", "kind": "character"},
]


def _found(det: ProtectedNames, text: str) -> dict[str, str]:
    return {f.evidence["id"]: f.evidence["kind"] for f in det.detect(TextItem(text), make_context())}


@pytest.fixture(scope="module")
def det() -> ProtectedNames:
    d = ProtectedNames(names=NAMES)
    d.load()
    return d


def test_matches_names_aliases_and_kinds(det: ProtectedNames) -> None:
    assert _found(det, "a nude photo of Jane Example") == {"jane_example": "person"}
    assert _found(det, "ジェーン・エグザンプルの写真") == {"jane_example": "person"}
    assert _found(det, "the ACME logo on a mug") == {"acme-corp": "brand"}
    assert _found(det, "captain   kitten fights") == {"captain_kitten": "character"}


def test_word_boundaries(det: ProtectedNames) -> None:
    assert _found(det, "acmeville is a town") == {}


def test_evasions(det: ProtectedNames) -> None:
    assert "jane_example" in _found(det, "J a n e Ex4mple")
    assert "jane_example" in _found(det, "J\u0430ne Example")  # Cyrillic а


def test_span_points_at_the_name(det: ProtectedNames) -> None:
    text = "draw Captain Kitten now"
    (f,) = det.detect(TextItem(text), make_context())
    assert f.span is not None and text[f.span[0] : f.span[1]] == "Captain Kitten"
    assert f.category == "protected_name"


def test_yaml_and_csv_files(tmp_path: Path) -> None:
    y = tmp_path / "names.yaml"
    y.write_text("names:\n  - {name: Globex, kind: brand}\n  - {name: Rex, kind: character, aliases: [レックス]}\n")
    c = tmp_path / "names.csv"
    c.write_text("name,kind,aliases\nJohn Doe,person,JD|ジョン\n", encoding="utf-8")
    assert [n.name for n in load_names(y)] == ["Globex", "Rex"]
    assert load_names(c)[0].aliases == ("JD", "ジョン")
    det = ProtectedNames(path=str(c), names=[{"name": "Globex", "kind": "brand"}])
    det.load()
    assert set(_found(det, "ジョン likes Globex")) == {"john_doe", "globex"}


def test_bad_entries(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        ProtectedNames(names=[{"name": "X", "kind": "planet"}])
    with pytest.raises(ValueError, match="does not exist"):
        ProtectedNames(path=str(tmp_path / "missing.yaml"))


def test_empty_registry_finds_nothing() -> None:
    det = ProtectedNames()
    det.load()
    assert det.detect(TextItem("anything"), make_context()) == []


def test_contract(det: ProtectedNames) -> None:
    assert_detector_contract(det, [TextItem("Acme and Jane Example"), TextItem("nothing")], make_context())
