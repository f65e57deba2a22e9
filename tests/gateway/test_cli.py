"""The `mamori` command line against a real data folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from gateway.cli import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_keys_lifecycle(tmp_path: Path) -> None:
    code, out = _run("keys", "create", "--role", "requester", "--tenant", "acme", "--data-dir", str(tmp_path))
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    assert key.startswith("mamori_k")
    db = sqlite3.connect(tmp_path / "mamori.db")
    stored = db.execute("SELECT id, secret_hash FROM api_keys").fetchall()
    assert len(stored) == 1
    assert key.split("_")[-1] not in stored[0][1]  # only the hash is stored
    code, out = _run("keys", "list", "--data-dir", str(tmp_path))
    assert code == 0 and stored[0][0] in out and "active" in out and key not in out
    code, out = _run("keys", "revoke", stored[0][0], "--data-dir", str(tmp_path))
    assert code == 0
    code, out = _run("keys", "list", "--data-dir", str(tmp_path))
    assert "revoked" in out


def test_keys_create_refuses_bad_role_and_tenant(tmp_path: Path) -> None:
    assert _run("keys", "create", "--role", "boss", "--tenant", "acme", "--data-dir", str(tmp_path))[0] == 2
    assert _run("keys", "create", "--role", "admin", "--tenant", "Not_OK", "--data-dir", str(tmp_path))[0] == 2


def test_protected_add(tmp_path: Path) -> None:
    image = tmp_path / "work.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(image)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    code, out = _run("protected", "add", str(image), "--data-dir", str(tmp_path))
    assert code == 0, out
    assert "pw_" in out
    code, out = _run("protected", "add", str(bad), "--tenant", "acme", "--data-dir", str(tmp_path))
    assert code == 1


def test_audit_verify_detects_a_direct_edit(tmp_path: Path) -> None:
    for tenant in ("a", "b", "c"):
        assert _run("keys", "create", "--role", "requester", "--tenant", tenant, "--data-dir", str(tmp_path))[0] == 0
    code, out = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 0, out
    assert "OK: 3 records" in out
    db = sqlite3.connect(tmp_path / "mamori.db")
    db.execute("UPDATE audit_records SET tenant = 'z' WHERE seq = 2")
    db.commit()
    code, out = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 1
    assert "record 2" in out


def test_audit_verify_detects_a_deleted_record(tmp_path: Path) -> None:
    for tenant in ("a", "b", "c"):
        _run("keys", "create", "--role", "requester", "--tenant", tenant, "--data-dir", str(tmp_path))
    db = sqlite3.connect(tmp_path / "mamori.db")
    db.execute("DELETE FROM audit_records WHERE seq = 2")
    db.commit()
    code, out = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 1
    assert "deleted" in out


def test_config_precedence(tmp_path: Path, monkeypatch) -> None:
    from gateway.settings import load_settings

    (tmp_path / "mamori.yaml").write_text("port: 9100\nhost: 0.0.0.0\nlog_level: DEBUG\n")
    monkeypatch.setenv("MAMORI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAMORI_PORT", "9200")
    settings = load_settings(port=9300)
    assert settings.port == 9300  # flag beats environment
    settings = load_settings()
    assert settings.port == 9200  # environment beats YAML
    assert settings.host == "0.0.0.0"  # YAML beats default
    monkeypatch.delenv("MAMORI_DATA_DIR")
    assert load_settings(data_dir=tmp_path).log_level == "DEBUG"


def _random_png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)


def test_protected_import_folder(tmp_path: Path) -> None:
    works = tmp_path / "works"
    _random_png(works / "a.png", 1)
    _random_png(works / "b.PNG", 2)
    _random_png(works / "sub" / "c.png", 3)
    _random_png(works / ".hidden" / "d.png", 4)
    (works / "notes.txt").write_text("not an image")
    data = tmp_path / "data"
    code, out = _run("protected", "import-folder", str(works), "--data-dir", str(data))
    assert code == 0, out
    assert out.count("pw_") == 2
    assert "skipped (not an image)" in out and "notes.txt" in out
    assert "imported 2, failed 0, skipped 1" in out
    code, out = _run("protected", "import-folder", str(works / "sub"), "--data-dir", str(data))
    assert code == 0, out
    db = sqlite3.connect(data / "mamori.db")
    assert db.execute("SELECT count(*) FROM audit_records WHERE event_type = 'protected.add'").fetchone()[0] == 2


def test_protected_import_folder_recursive_with_tenant(tmp_path: Path) -> None:
    works = tmp_path / "works"
    _random_png(works / "a.png", 1)
    _random_png(works / "sub" / "deeper" / "c.jpg", 3)
    code, out = _run(
        "protected", "import-folder", str(works), "--recursive", "--tenant", "acme", "--data-dir", str(tmp_path)
    )
    assert code == 0, out
    assert "imported 2, failed 0, skipped 0" in out
    assert "tenant=acme" in out
    assert _run("protected", "import-folder", str(works), "--tenant", "Not_OK", "--data-dir", str(tmp_path))[0] == 2


def test_protected_import_folder_reports_failures(tmp_path: Path) -> None:
    works = tmp_path / "works"
    _random_png(works / "good.png", 1)
    (works / "broken.jpg").write_bytes(b"not really a jpeg")
    code, out = _run("protected", "import-folder", str(works), "--data-dir", str(tmp_path))
    assert code == 1
    assert "imported 1, failed 1, skipped 0" in out
    assert "broken.jpg" in out


def test_protected_import_folder_empty_and_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _run("protected", "import-folder", str(empty), "--data-dir", str(tmp_path))
    assert code == 0, out
    assert "imported 0, failed 0, skipped 0" in out
    assert _run("protected", "import-folder", str(tmp_path / "nope"), "--data-dir", str(tmp_path))[0] == 2


def _stored_and_recorded(data: Path) -> tuple[set[str], set[str], list[str]]:
    """The ids of the stored works, of the works the protected.add records name, and the event types."""
    import json

    db = sqlite3.connect(data / "mamori.db")
    stored = {row[0] for row in db.execute("SELECT id FROM protected_works")}
    recorded: set[str] = set()
    events = []
    for event, payload in db.execute("SELECT event_type, payload_json FROM audit_records ORDER BY seq"):
        events.append(event)
        if event == "protected.add":
            recorded |= {w["id"] for w in json.loads(payload)["works"]}
    return stored, recorded, events


def test_protected_import_hash_failure_midway_leaves_no_unaudited_work(tmp_path: Path, monkeypatch) -> None:
    """Hashing fails on the 2nd of 3 images: the other two are stored, each named in an audit
    record (which also names the failed file), and the command exits 1."""
    from gateway.protected import ProtectedRegistry

    works = tmp_path / "works"
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        _random_png(works / name, i + 1)
    real = ProtectedRegistry.prepare
    calls = []

    def flaky(self, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["name"])
        if len(calls) == 2:
            raise ValueError("boom")
        return real(self, **kwargs)

    monkeypatch.setattr(ProtectedRegistry, "prepare", flaky)
    data = tmp_path / "data"
    code, out = _run("protected", "import-folder", str(works), "--data-dir", str(data))
    assert code == 1, out
    assert "imported 2, failed 1, skipped 0" in out and "b.png" in out
    stored, recorded, events = _stored_and_recorded(data)
    assert len(stored) == 2 and stored <= recorded
    assert events == ["protected.add"]


def test_protected_import_store_failure_stores_nothing_unaudited(tmp_path: Path, monkeypatch) -> None:
    """Storing the batch fails: nothing is stored, the record written before is followed by
    protected.add_failed, and the command exits 1."""
    from gateway.protected import ProtectedRegistry

    works = tmp_path / "works"
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        _random_png(works / name, i + 1)

    def broken(self, works):  # type: ignore[no-untyped-def]
        raise RuntimeError("database gone")

    monkeypatch.setattr(ProtectedRegistry, "store", broken)
    data = tmp_path / "data"
    code, out = _run("protected", "import-folder", str(works), "--data-dir", str(data))
    assert code == 1, out
    assert "imported 0, failed 3" in out and "none of them was stored" in out
    stored, recorded, events = _stored_and_recorded(data)
    assert stored == set() and len(recorded) == 3
    assert events == ["protected.add", "protected.add_failed"]


def test_protected_import_in_batches(tmp_path: Path, monkeypatch) -> None:
    """A folder is stored batch by batch, each batch after its own record; a failure in a later
    batch keeps the earlier ones (audited) and stops the import."""
    import gateway.cli
    from gateway.protected import ProtectedRegistry

    monkeypatch.setattr(gateway.cli, "_BATCH", 2)
    works = tmp_path / "works"
    for i in range(5):
        _random_png(works / f"w{i}.png", i + 1)
    real = ProtectedRegistry.store
    batches = []

    def second_fails(self, prepared):  # type: ignore[no-untyped-def]
        batches.append(len(prepared))
        if len(batches) == 2:
            raise RuntimeError("disk full")
        return real(self, prepared)

    monkeypatch.setattr(ProtectedRegistry, "store", second_fails)
    data = tmp_path / "data"
    code, out = _run("protected", "import-folder", str(works), "--data-dir", str(data))
    assert code == 1, out
    assert "imported 2, failed 3" in out and "1 files after them were not tried" in out
    stored, recorded, events = _stored_and_recorded(data)
    assert len(stored) == 2 and stored <= recorded
    assert events == ["protected.add", "protected.add", "protected.add_failed"]


def test_protected_import_only_bad_files_is_audited(tmp_path: Path) -> None:
    works = tmp_path / "works"
    works.mkdir()
    (works / "broken.png").write_bytes(b"not an image")
    data = tmp_path / "data"
    code, out = _run("protected", "import-folder", str(works), "--data-dir", str(data))
    assert code == 1
    assert "imported 0, failed 1, skipped 0" in out
    stored, _, events = _stored_and_recorded(data)
    assert stored == set() and events == ["protected.rejected"]
