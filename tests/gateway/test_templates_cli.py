"""`mamori templates import | export | list`: a YAML round trip through two data folders."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli_templates import STARTER_DIR
from gateway.templates import TemplateSpec

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_starter_templates_cover_the_five_uses() -> None:
    specs = [TemplateSpec.model_validate(yaml.safe_load(p.read_text())) for p in sorted(STARTER_DIR.glob("*.yaml"))]
    assert {s.modality for s in specs} == {"image", "speech", "video", "3d"}
    assert {s.name for s in specs} == {
        "Catalog photo",
        "Manual illustration",
        "Product narration",
        "Safety-training clip",
        "3D mock-up",
    }


def test_yaml_round_trip(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    code, out = _run("templates", "import", "--starter", "--tenant", "acme", "--data-dir", str(first))
    assert code == 0, out
    assert out.count("created\t") == 5 and "\tdraft\t" in out  # approvals never travel: drafts
    exported = tmp_path / "templates.yaml"
    code, out = _run("templates", "export", "--out", str(exported), "--data-dir", str(first))
    assert code == 0, out
    entries = yaml.safe_load(exported.read_text())["templates"]
    assert len(entries) == 5 and all(e["tenant"] == "acme" for e in entries)

    code, out = _run("templates", "import", str(exported), "--data-dir", str(second))
    assert code == 0, out
    again = tmp_path / "again.yaml"
    assert _run("templates", "export", "--out", str(again), "--data-dir", str(second))[0] == 0
    round_tripped = yaml.safe_load(again.read_text())["templates"]
    assert [(e["id"], e["digest"], e["spec"]) for e in round_tripped] == [
        (e["id"], e["digest"], e["spec"]) for e in entries
    ]
    # importing the same file again changes nothing; a changed spec becomes a new draft of that id
    code, out = _run("templates", "import", str(exported), "--data-dir", str(second))
    assert code == 0 and out.count("unchanged\t") == 5
    entries[0]["spec"]["description"] = "changed"
    exported.write_text(yaml.safe_dump({"templates": entries}))
    code, out = _run("templates", "import", str(exported), "--data-dir", str(second))
    assert code == 0 and out.count("updated\t") == 1
    code, out = _run("templates", "list", "--data-dir", str(second))
    assert code == 0 and len(out.strip().splitlines()) == 5  # a draft is edited in place: still version 1
    assert _run("templates", "export", "--out", str(again), "--data-dir", str(second))[0] == 0
    changed = [e for e in yaml.safe_load(again.read_text())["templates"] if e["id"] == entries[0]["id"]]
    assert changed[0]["spec"]["description"] == "changed" and changed[0]["version"] == 1


def test_import_refuses_bad_templates(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "modality": "image", "pattern": "{a.__class__}", "slots": []}))
    code, out = _run("templates", "import", str(bad), "--tenant", "acme", "--data-dir", str(tmp_path))
    assert code == 1 and "bare slot name" in out
    code, out = _run("templates", "import", "--data-dir", str(tmp_path))
    assert code == 2
