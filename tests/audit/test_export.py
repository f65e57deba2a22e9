"""Evidence export and its offline verification, also for sub-ranges, corrupt and forged archives."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.blobs import LocalBlobStore
from audit.crypto import SigningKey
from audit.export import PolicyBundle, verify_export, write_export


def _export(signed: Any, out: Path, **kwargs: Any) -> Any:
    return write_export(out, store=signed.store, sessions=signed.sessions, key=signed.key, **kwargs)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    """Copy a zip, replacing (or with None, dropping) some members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in change:
                data = change[item.filename]
                if data is not None:
                    zout.writestr(item.filename, data)
            else:
                zout.writestr(item, zin.read(item.filename))


def _member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(name)


def test_full_export_verifies(signed: Any, tmp_path: Path) -> None:
    signed.fill(12)
    summary = _export(signed, tmp_path / "e.zip")
    assert (summary.records, summary.first_seq, summary.last_seq, summary.chain_to_seq) == (12, 1, 12, 12)
    assert summary.revisions == ["rev-1"]
    report = verify_export(tmp_path / "e.zip", trusted_keys=signed.keys())
    assert report.ok, report.problems
    assert (report.records, report.chain_links, report.checkpoints) == (12, 12, 3)  # 5, 10 and the export's 12
    assert report.signed_by == signed.key.key_id
    names = zipfile.ZipFile(tmp_path / "e.zip").namelist()
    for name in ("README.md", "records.jsonl", "records.csv", "chain.jsonl", "checkpoints.jsonl", "manifest.json"):
        assert name in names
    csv_text = _member(tmp_path / "e.zip", "records.csv").decode()
    assert csv_text.splitlines()[0].startswith("seq,id,event_type")
    assert len(csv_text.splitlines()) == 13


def test_tenant_subrange_export_hides_other_tenants(signed: Any, tmp_path: Path) -> None:
    signed.fill(20)
    records = list(signed.store.between())
    start, end = records[5].created_at, records[14].created_at  # seq 6 .. 14
    summary = _export(signed, tmp_path / "t.zip", start=start, end=end, tenant="globex")
    assert (summary.records, summary.first_seq, summary.last_seq) == (5, 6, 14)  # 6, 8, 10, 12, 14
    assert summary.chain_to_seq == 15  # the checkpoint after the last record
    report = verify_export(tmp_path / "t.zip", trusted_keys=signed.keys())
    assert report.ok, report.problems
    assert report.chain_links == 10
    manifest = json.loads(_member(tmp_path / "t.zip", "manifest.json"))
    assert manifest["chain"]["start_prev_hash"] == signed.store.get(6).prev_hash
    body = b"".join(_member(tmp_path / "t.zip", n) for n in ("records.jsonl", "records.csv", "chain.jsonl"))
    assert b"acme" not in body
    assert b'"r7"' not in body and b",r7," not in body


def test_export_without_matches_is_empty_but_valid(signed: Any, tmp_path: Path) -> None:
    signed.fill(3)
    later = datetime.now(UTC) + timedelta(days=1)
    summary = _export(signed, tmp_path / "none.zip", start=later)
    assert summary.records == 0
    report = verify_export(tmp_path / "none.zip", trusted_keys=signed.keys())
    assert report.ok, report.problems
    assert report.records == 0


def test_export_includes_assets_and_policy(signed: Any, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    png = b"\x89PNG fake signed image"
    digest = blobs.put(png)
    signed.store.append(
        "request",
        {
            "decisions": [{"revision": "rev-9"}],
            "assets": [{"asset_id": "a1", "sha256": digest, "manifest_id": "urn:x"}],
        },
        request_id="req-a",
        tenant="acme",
    )
    bundle_dir = tmp_path / "bundle"
    (bundle_dir / "mamori").mkdir(parents=True)
    (bundle_dir / "data.yaml").write_text("mamori: {}\n")
    (bundle_dir / "mamori" / "decision.rego").write_text("package mamori\n")

    def reader(data: bytes, mime: str, sidecar: bytes | None) -> dict[str, Any]:
        return {"active_manifest": "urn:x", "mime": mime}

    _export(signed, tmp_path / "a.zip", blobs=blobs, manifest_reader=reader, bundle=PolicyBundle("rev-9", bundle_dir))
    names = set(zipfile.ZipFile(tmp_path / "a.zip").namelist())
    assert f"assets/{digest}.png" in names
    assert f"assets/{digest}.manifest.json" in names
    assert {"policy/rev-9/data.yaml", "policy/rev-9/mamori/decision.rego", "policy/revisions.json"} <= names
    revisions = json.loads(_member(tmp_path / "a.zip", "policy/revisions.json"))
    assert revisions["rev-9"]["files_included"] is True
    report = verify_export(tmp_path / "a.zip", trusted_keys=signed.keys())
    assert report.ok, report.problems
    assert report.assets == 1


# --- bad input -----------------------------------------------------------------------------------


@pytest.fixture
def exported(signed: Any, tmp_path: Path) -> tuple[Any, Path]:
    signed.fill(12)
    _export(signed, tmp_path / "good.zip")
    return signed, tmp_path / "good.zip"


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"hello")
    report = verify_export(path)
    assert not report.ok
    assert "not a readable zip archive" in report.problems[0]
    assert not verify_export(tmp_path / "missing.zip").ok


def test_truncated_zip(exported: tuple[Any, Path], tmp_path: Path) -> None:
    _, good = exported
    data = good.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    report = verify_export(cut)
    assert not report.ok
    assert report.problems


def test_edited_record_in_export(exported: tuple[Any, Path], tmp_path: Path) -> None:
    signed, good = exported
    lines = _member(good, "records.jsonl").splitlines()
    record = json.loads(lines[2])
    record["tenant"] = "evil"
    lines[2] = json.dumps(record).encode()
    bad = tmp_path / "bad.zip"
    _rewrite(good, bad, {"records.jsonl": b"\n".join(lines) + b"\n"})
    report = verify_export(bad, trusted_keys=signed.keys())
    assert not report.ok
    assert any(p.startswith("records.jsonl: content does not match") for p in report.problems)
    assert any("records.jsonl line 3: seq 3: record does not match its hash" in p for p in report.problems)


def test_forged_export_with_new_manifest_fails_signature(exported: tuple[Any, Path], tmp_path: Path) -> None:
    # a forger drops record 3 from the chain and rewrites manifest.json to match; the signature fails
    signed, good = exported
    chain = [line for line in _member(good, "chain.jsonl").splitlines() if not line.endswith(b'"seq":3}')]
    new_chain = b"\n".join(chain) + b"\n"
    manifest = json.loads(_member(good, "manifest.json"))
    import hashlib

    manifest["files"]["chain.jsonl"] = hashlib.sha256(new_chain).hexdigest()
    bad = tmp_path / "forged.zip"
    _rewrite(good, bad, {"chain.jsonl": new_chain, "manifest.json": json.dumps(manifest).encode()})
    report = verify_export(bad, trusted_keys=signed.keys())
    assert not report.ok
    assert any("manifest.sig.json: the signature over manifest.json is invalid" in p for p in report.problems)
    assert any("chain.jsonl line 3: seq 4 where 3 was expected" in p for p in report.problems), report.problems


def test_wrong_trusted_key(exported: tuple[Any, Path]) -> None:
    _, good = exported
    other = SigningKey.generate()
    report = verify_export(good, trusted_keys={other.key_id: other.public})
    assert not report.ok
    assert any("not trusted" in p for p in report.problems)
    assert any("unknown key" in p for p in report.problems)
    # without trusted keys, the ones inside are used and the report says so
    inside = verify_export(good)
    assert inside.ok
    assert not inside.keys_trusted


def test_missing_and_extra_members(exported: tuple[Any, Path], tmp_path: Path) -> None:
    signed, good = exported
    bad = tmp_path / "missing.zip"
    _rewrite(good, bad, {"checkpoints.jsonl": None})
    report = verify_export(bad, trusted_keys=signed.keys())
    assert not report.ok
    assert "checkpoints.jsonl: missing from the archive" in report.problems
    extra = tmp_path / "extra.zip"
    _rewrite(good, extra, {})
    with zipfile.ZipFile(extra, "a") as z:
        z.writestr("records-extra.jsonl", b"{}")
    assert (
        "records-extra.jsonl: not listed in manifest.json" in verify_export(extra, trusted_keys=signed.keys()).problems
    )


def test_garbage_manifest(exported: tuple[Any, Path], tmp_path: Path) -> None:
    _, good = exported
    bad = tmp_path / "m.zip"
    _rewrite(good, bad, {"manifest.json": b"{not json"})
    report = verify_export(bad)
    assert not report.ok
    assert report.problems[0].startswith("manifest.json: unusable")


def test_unsealed_export_is_not_ok(signed: Any, tmp_path: Path) -> None:
    signed.fill(7)
    # an export written by a store that cannot sign: the last records are covered by no checkpoint
    from audit.store import AuditStore

    plain = AuditStore(signed.sessions)
    write_export(tmp_path / "u.zip", store=plain, sessions=signed.sessions)
    report = verify_export(tmp_path / "u.zip", trusted_keys=signed.keys())
    assert not report.ok
    assert any("no signed checkpoint covers seq 7" in p for p in report.problems)
    assert "manifest.sig.json: missing from the archive" in report.problems


def test_find_asset_by_hash_or_manifest_id(signed: Any) -> None:
    signed.fill(2)
    digest = "ab" * 32
    entry = {"asset_id": "a1", "sha256": digest, "manifest_id": "urn:c2pa:1_%x"}
    signed.store.append("request", {"assets": [entry]}, request_id="req-x", tenant="acme")
    signed.store.append("request", {"note": f"mentions {digest} but names no asset"}, tenant="acme")
    assert [r.seq for r in signed.store.find_asset(sha256=digest)] == [3]
    assert [r.seq for r in signed.store.find_asset(manifest_id="urn:c2pa:1_%x")] == [3]
    assert signed.store.find_asset(manifest_id="urn:c2pa:1_") == []
    signed.store.delete_payload(3)
    assert signed.store.find_asset(sha256=digest) == []
    with pytest.raises(ValueError, match="sha256 or a manifest id"):
        signed.store.find_asset()
