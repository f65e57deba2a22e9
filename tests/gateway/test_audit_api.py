"""The audit trail through the API and the CLI: tenant scope, read-only, export, asset cross-links, prompts."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.crypto import PromptCipher
from audit.export import verify_export
from gateway.audit_tools import trusted_keys
from gateway.cli import app as cli

GEN = "/v1/images/generations"
runner = CliRunner()


def generate(gateway: Any, who: str, prompt: str = "a blue kettle on a wooden shelf") -> dict[str, Any]:
    resp = gateway.client.post(GEN, json={"prompt": prompt, "size": "64x64", "seed": 3}, headers=gateway.auth(who))
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def released(gateway: Any) -> dict[str, Any]:
    """One released image of tenant acme, one of tenant globex."""
    acme = generate(gateway, "requester")
    globex = generate(gateway, "other_tenant")
    return {"acme": acme, "globex": globex}


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_auditor_reads_only_its_own_tenant(gateway: Any, released: dict[str, Any]) -> None:
    resp = gateway.client.get("/v1/audit/records", headers=gateway.auth("auditor"))
    assert resp.status_code == 200, resp.text
    records = resp.json()["records"]
    assert records and {r["tenant"] for r in records} == {"acme"}
    assert gateway.client.get("/v1/audit/records?tenant=globex", headers=gateway.auth("auditor")).status_code == 403

    globex_id = released["globex"]["mamori"]["request_id"]
    by_request = gateway.client.get(f"/v1/audit/records?request_id={globex_id}", headers=gateway.auth("auditor"))
    assert by_request.json()["records"] == []
    admin = gateway.client.get(f"/v1/audit/records?request_id={globex_id}", headers=gateway.auth("admin"))
    (record,) = admin.json()["records"]
    assert record["tenant"] == "globex" and record["event_type"] == "request"

    seq = record["seq"]
    assert gateway.client.get(f"/v1/audit/records/{seq}", headers=gateway.auth("auditor")).status_code == 404
    one = gateway.client.get(f"/v1/audit/records/{seq}", headers=gateway.auth("admin")).json()
    assert one["record_hash"] == record["record_hash"]
    payload = one["payload"]
    assert payload["client"] == "testclient"
    assert payload["principal"]["tenant"] == "globex"
    assert payload["assets"][0]["manifest_id"] == released["globex"]["mamori"]["manifest_ids"][0]
    assert all("revision" in d and "decision_id" in d for d in payload["decisions"])


def test_other_roles_cannot_read_the_audit_trail(gateway: Any) -> None:
    for who in ("requester", "supervisor"):
        assert gateway.client.get("/v1/audit/records", headers=gateway.auth(who)).status_code == 403
    assert gateway.client.get("/v1/audit/records").status_code == 401


def test_no_route_rewrites_history(gateway: Any, released: dict[str, Any]) -> None:
    paths = gateway.client.get("/openapi.json").json()["paths"]
    audit_paths = {p: set(ops) for p, ops in paths.items() if p.startswith("/v1/audit")}
    assert {"/v1/audit/records", "/v1/audit/records/{seq}", "/v1/audit/export", "/v1/audit/verify"} <= set(audit_paths)
    for path, methods in audit_paths.items():
        assert methods <= {"get", "head"}, path
    head = gateway.services.audit.head()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in (f"/v1/audit/records/{head.seq}", "/v1/audit/records", "/v1/audit/export"):
            resp = gateway.client.request(method, path, headers=gateway.auth("admin"))
            assert resp.status_code == 405, (method, path, resp.status_code)
    assert gateway.services.audit.get(head.seq) == head


def test_verify_endpoint(gateway: Any, released: dict[str, Any]) -> None:
    resp = gateway.client.get("/v1/audit/verify", headers=gateway.auth("auditor"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is True, body["problems"]
    assert body["checked"] >= 2


def test_export_endpoint_is_tenant_scoped_and_verifies(gateway: Any, released: dict[str, Any], tmp_path: Path) -> None:
    resp = gateway.client.get("/v1/audit/export", headers=gateway.auth("auditor"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/zip"
    path = tmp_path / "evidence.zip"
    path.write_bytes(resp.content)
    report = verify_export(path, trusted_keys=trusted_keys(gateway.settings))
    assert report.ok, report.problems
    assert report.assets >= 1
    with zipfile.ZipFile(path) as z:
        records = [json.loads(line) for line in z.read("records.jsonl").splitlines()]
        names = z.namelist()
        revisions = json.loads(z.read("policy/revisions.json"))
    assert records and {r["tenant"] for r in records} == {"acme"}
    digest = records[-1]["payload"]["assets"][0]["sha256"] if records[-1]["payload"].get("assets") else None
    if digest:
        assert f"assets/{digest}.png" in names and f"assets/{digest}.manifest.json" in names
    assert gateway.services.policy.revision in revisions
    assert revisions[gateway.services.policy.revision]["files_included"] is True
    bad = gateway.client.get("/v1/audit/export?tenant=globex", headers=gateway.auth("auditor"))
    assert bad.status_code == 403
    assert gateway.client.get("/v1/audit/export?from=yesterday", headers=gateway.auth("admin")).status_code == 400


def test_cli_find_and_check_asset(gateway: Any, released: dict[str, Any], tmp_path: Path) -> None:
    data_dir = str(gateway.settings.data_dir)
    image = base64.b64decode(released["acme"]["data"][0]["b64_json"])
    request_id = released["acme"]["mamori"]["request_id"]
    asset = tmp_path / "asset.png"
    asset.write_bytes(image)

    code, out = _cli("audit", "find", "--asset", str(asset), "--data-dir", data_dir)
    assert code == 0, out
    assert released["acme"]["mamori"]["manifest_ids"][0] in out
    assert request_id in out

    code, out = _cli("audit", "check-asset", str(asset), "--request", request_id, "--data-dir", data_dir)
    assert code == 0, out
    assert "MATCH" in out

    other = tmp_path / "other.png"
    other.write_bytes(base64.b64decode(released["globex"]["data"][0]["b64_json"]))
    code, out = _cli("audit", "check-asset", str(other), "--request", request_id, "--data-dir", data_dir)
    assert code == 1
    assert "NO MATCH" in out

    from PIL import Image

    stripped = tmp_path / "stripped.png"
    Image.open(io.BytesIO(image)).save(stripped)  # re-encoded: no manifest, another hash
    code, out = _cli("audit", "find", "--asset", str(stripped), "--data-dir", data_dir)
    assert code == 1
    assert "no audit record names this asset" in out

    code, out = _cli("audit", "find", "--asset", str(tmp_path / "nope.png"), "--data-dir", data_dir)
    assert code == 2


def test_cli_verify_export_and_verify_export(gateway: Any, released: dict[str, Any], tmp_path: Path) -> None:
    data_dir = str(gateway.settings.data_dir)
    code, out = _cli("audit", "verify", "--data-dir", data_dir)
    assert code == 0, out
    assert "OK:" in out and "signed checkpoint" in out
    out_zip = tmp_path / "all.zip"
    code, out = _cli("audit", "export", "--out", str(out_zip), "--tenant", "globex", "--data-dir", data_dir)
    assert code == 0, out
    public = gateway.settings.audit_dir / "public"
    code, out = _cli("audit", "verify-export", str(out_zip), "--trusted-key", str(public))
    assert code == 0, out
    assert "OK:" in out
    broken = tmp_path / "broken.zip"
    broken.write_bytes(out_zip.read_bytes()[:-200])
    code, out = _cli("audit", "verify-export", str(broken))
    assert code == 1
    assert "FAIL" in out
    code, out = _cli("audit", "export", "--out", str(out_zip), "--from", "soon", "--data-dir", data_dir)
    assert code == 2


def test_raw_prompt_encrypted_when_configured(gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cipher = PromptCipher.load_or_create(tmp_path / "prompt.key")
    monkeypatch.setattr(gateway.services.audit, "prompt_cipher", cipher)
    prompt = "a green lamp for Mary Example, mary@example.com"
    body = generate(gateway, "requester", prompt)
    (record,) = [
        r for r in gateway.services.audit.for_request(body["mamori"]["request_id"]) if r.event_type == "request"
    ]
    sealed = record.payload["prompt_encrypted"]
    assert cipher.decrypt(sealed) == prompt
    assert "mary@example.com" not in json.dumps(record.payload)
    monkeypatch.setattr(gateway.services.audit, "prompt_cipher", None)
    plain = generate(gateway, "requester", prompt)
    (record,) = [
        r for r in gateway.services.audit.for_request(plain["mamori"]["request_id"]) if r.event_type == "request"
    ]
    assert "prompt_encrypted" not in record.payload
    assert "mary@example.com" not in json.dumps(record.payload)
