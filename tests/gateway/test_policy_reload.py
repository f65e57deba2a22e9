"""Term lists are data of the policy bundle: one reload changes what is refused, with no restart."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import RegoEngine, default_bundle_dir

GEN = "/v1/images/generations"


def test_reload_changes_the_term_list(gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    monkeypatch.setattr(gateway.services, "policy", RegoEngine(bundle))
    body = {"prompt": "a purple-walrus in the snow", "size": "64x64", "seed": 2}
    assert gateway.client.post(GEN, json=body, headers=gateway.auth("requester")).status_code == 200

    data = bundle / "data.yaml"
    data.write_text(
        data.read_text().replace("  terms:\n", "  terms:\n    - {term: purple-walrus, category: denied_term}\n")
    )
    assert gateway.client.post("/v1/policy/reload", headers=gateway.auth("requester")).status_code == 403
    reloaded = gateway.client.post("/v1/policy/reload", headers=gateway.auth("admin"))
    assert reloaded.status_code == 200, reloaded.text

    refused = gateway.client.post(GEN, json=body, headers=gateway.auth("requester"))
    assert refused.status_code == 400
    assert "prescreen.denied_term" in [r["code"] for r in refused.json()["mamori"]["reasons"]]
    events = gateway.services.audit.search(event_type="policy.reload", limit=1)
    assert events and events[0].payload["revision_after"]


def test_a_broken_bundle_is_refused_and_the_old_one_stays(
    gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    monkeypatch.setattr(gateway.services, "policy", RegoEngine(bundle))
    (bundle / "mamori" / "output.rego").write_text("package mamori.output\n\nthis is not rego {\n")
    resp = gateway.client.post("/v1/policy/reload", headers=gateway.auth("admin"))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "policy_invalid"
    ok = gateway.client.post(GEN, json={"prompt": "a cup", "size": "64x64"}, headers=gateway.auth("requester"))
    assert ok.status_code == 200
