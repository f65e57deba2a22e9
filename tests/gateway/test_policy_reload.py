"""Term lists are data of the policy bundle: one reload changes what is refused, with no restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import RegoEngine, default_bundle_dir

GEN = "/v1/images/generations"


def _own_bundle(gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the default policy bundle that the gateway evaluates for this test only."""
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    monkeypatch.setattr(gateway.services, "policy", RegoEngine(bundle))
    return bundle


def test_reload_changes_the_term_list(gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _own_bundle(gateway, tmp_path, monkeypatch)
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
    bundle = _own_bundle(gateway, tmp_path, monkeypatch)
    (bundle / "mamori" / "output.rego").write_text("package mamori.output\n\nthis is not rego {\n")
    resp = gateway.client.post("/v1/policy/reload", headers=gateway.auth("admin"))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "policy_invalid"
    ok = gateway.client.post(GEN, json={"prompt": "a cup", "size": "64x64"}, headers=gateway.auth("requester"))
    assert ok.status_code == 200


def _compliance_key(gateway: Any) -> dict[str, str]:
    if "compliance" not in gateway.keys:
        _, gateway.keys["compliance"] = gateway.services.keys.create(
            role="compliance", tenant="acme", name="compliance"
        )
    return gateway.auth("compliance")


def test_policy_data_change_through_the_api(gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _own_bundle(gateway, tmp_path, monkeypatch)
    compliance = _compliance_key(gateway)
    patch = {"terms": [{"term": "purple-walrus", "category": "denied_term"}]}

    assert gateway.client.patch("/v1/policy/data", json=patch, headers=gateway.auth("requester")).status_code == 403
    assert gateway.client.patch("/v1/policy/data", json=patch, headers=gateway.auth("supervisor")).status_code == 403
    before = gateway.services.policy.revision
    changed = gateway.client.patch("/v1/policy/data", json=patch, headers=compliance)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["previous_revision"] == before and body["revision"] != before
    assert body["summary"]["terms"] == {"added": 1, "removed": 5, "count": 1, "categories_added": ["denied_term"]}

    refused = gateway.client.post(
        GEN, json={"prompt": "a purple-walrus in the snow", "size": "64x64"}, headers=gateway.auth("requester")
    )
    assert refused.status_code == 400
    assert "prescreen.denied_term" in [r["code"] for r in refused.json()["mamori"]["reasons"]]

    events = gateway.services.audit.search(event_type="policy.data_change", limit=1)
    assert events[0].payload["revision_before"] == before
    assert events[0].payload["revision_after"] == body["revision"]
    assert events[0].payload["by"]["role"] == "compliance"
    assert "purple-walrus" not in str(events[0].payload)  # a summary, not the terms

    current = gateway.client.get("/v1/policy/data", headers=compliance).json()
    assert current["revision"] == body["revision"] and current["data"]["terms"] == patch["terms"]
    put = gateway.client.put("/v1/policy/data", json=current["data"], headers=gateway.auth("admin"))
    assert put.status_code == 200, put.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"tenants": {"acme": {"thresholds": {"image_sexual_block": 0.99}}}}, "would loosen the global 0.8"),
        ({"tenants": {"acme": {"floor": {"min_score": 1}}}}, "a tenant cannot change the floor"),
        ({"floor": {"categories": []}}, "floor: not changeable through the API"),
        ({"thresholds": {"pii": "high"}}, "thresholds.pii must be a number"),
        ([1, 2], "the body must be a JSON object"),
    ],
)
def test_invalid_policy_data_is_refused(
    gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: Any, fragment: str
) -> None:
    bundle = _own_bundle(gateway, tmp_path, monkeypatch)
    before = gateway.services.policy.revision, (bundle / "data.yaml").read_text()
    resp = gateway.client.patch("/v1/policy/data", json=body, headers=_compliance_key(gateway))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "policy_data_invalid"
    assert fragment in resp.json()["error"]["message"]
    assert (gateway.services.policy.revision, (bundle / "data.yaml").read_text()) == before


def test_the_shipped_bundle_is_not_changed_in_place(gateway: Any) -> None:
    resp = gateway.client.patch("/v1/policy/data", json={"thresholds": {"pii": 0.6}}, headers=gateway.auth("admin"))
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "policy_read_only"


def test_evaluate_dry_run(gateway: Any) -> None:
    doc = {
        "principal": {"key_id": "k1", "tenant": "acme", "role": "requester"},
        "stage": "output",
        "request": {"id": "r1", "endpoint": "images.generations"},
        "findings": [{"detector": "image_safety", "category": "sexual", "score": 0.5, "evidence": {}}],
    }
    assert (
        gateway.client.post("/v1/policy/evaluate", json={"input": doc}, headers=_compliance_key(gateway)).status_code
        == 403
    )
    resp = gateway.client.post("/v1/policy/evaluate", json={"input": doc}, headers=gateway.auth("admin"))
    assert resp.status_code == 200, resp.text
    decision = resp.json()["decision"]
    assert decision["action"] == "escalate"
    assert decision["obligations"]["review"] == {
        "approvals": 1,
        "priority": "high",
        "deadline_s": 3600,
        "category": "sexual",
    }
    assert decision["revision"] == gateway.services.policy.revision and decision["decision_id"]

    for bad, fragment in [
        ({"input": {**doc, "stage": "postscreen"}}, "input.stage must be one of"),
        ({"input": {**doc, "findings": [{"detector": "x", "score": 2}]}}, "input.findings[0]"),
        ({"input": {**doc, "principal": "admin"}}, "input.principal"),
        ({"input": [doc]}, "input must be a JSON object"),
        ({"nope": 1}, 'the body must be {"input"'),
        ({"input": {**doc, "stage": "release", "approvals": "all"}}, "input.approvals"),
    ]:
        resp = gateway.client.post("/v1/policy/evaluate", json=bad, headers=gateway.auth("admin"))
        assert resp.status_code == 400, bad
        assert fragment in resp.json()["error"]["message"]
    resp = gateway.client.post(
        "/v1/policy/evaluate",
        content=b"{not json",
        headers={**gateway.auth("admin"), "content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "param"),
    [
        (
            "PATCH",
            "/v1/policy/data",
            b'{"terms": [{"term": "a\\ud800b", "category": "denied_term"}]}',
            "invalid_text",
            "terms.0.term",
        ),
        ("PATCH", "/v1/policy/data", b'{"terms": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "json_too_deep", None),
        ("PUT", "/v1/policy/data", b'{"thresholds": {"pii": NaN}}', "invalid_json", None),
        (
            "POST",
            "/v1/policy/evaluate",
            b'{"input": {"stage": "prescreen", "request": {"prompt": "\\udc00"}}}',
            "invalid_text",
            "input.request.prompt",
        ),
        ("POST", "/v1/policy/evaluate", b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "json_too_deep", None),
    ],
    ids=["surrogate_term", "deep_data", "nan", "surrogate_input", "deep_input"],
)
def test_policy_bodies_are_read_like_every_other_json_body(
    gateway: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: bytes,
    code: str,
    param: str | None,
) -> None:
    """A lone surrogate was written into the bundle's data, and deep nesting was a 500: now 400s with a code."""
    bundle = _own_bundle(gateway, tmp_path, monkeypatch)
    before = gateway.services.policy.revision, (bundle / "data.yaml").read_text()
    headers = {**gateway.auth("admin"), "content-type": "application/json"}
    resp = gateway.client.request(method, path, content=body, headers=headers)
    assert resp.status_code == 400, resp.text
    assert (resp.json()["error"]["code"], resp.json()["error"]["param"]) == (code, param)
    assert (gateway.services.policy.revision, (bundle / "data.yaml").read_text()) == before


def _rejections(gateway: Any, resp: Any) -> list[dict[str, Any]]:
    records = gateway.services.audit.for_request(resp.headers["x-request-id"])
    return [r.payload for r in records if r.event_type == "policy.data_rejected"]


@pytest.mark.parametrize(
    ("method", "body", "status", "code", "param"),
    [
        ("PATCH", {"thresholds": {"pii": "zq7-secret-high"}}, 400, "policy_data_invalid", None),
        ("PATCH", b'{"terms": [{"term": "zq7-secret\\ud800", "category": "x"}]}', 400, "invalid_text", "terms.0.term"),
        ("PUT", b'{"terms": "zq7-secret', 400, "invalid_json", None),
        (
            "PATCH",
            {"tenants": {"acme": {"floor": {"min_score": 1}}}, "note": "zq7-secret"},
            400,
            "policy_data_invalid",
            None,
        ),
    ],
    ids=["bad_value", "surrogate", "not_json", "floor"],
)
def test_a_refused_data_change_is_audited_without_its_body(
    gateway: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    body: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    _own_bundle(gateway, tmp_path, monkeypatch)
    revision = gateway.services.policy.revision
    headers = {**_compliance_key(gateway), "content-type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = gateway.client.request(method, "/v1/policy/data", content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert (resp.json()["error"]["code"], resp.json()["error"]["param"]) == (code, param)
    (record,) = _rejections(gateway, resp)
    assert (record["code"], record["param"], record["http_status"], record["method"]) == (code, param, status, method)
    assert record["by"]["role"] == "compliance" and record["revision"] == revision
    assert "zq7" not in json.dumps(record, ensure_ascii=False), "the body is not recorded"


def test_a_change_to_the_shipped_bundle_is_audited_as_refused(gateway: Any) -> None:
    resp = gateway.client.patch("/v1/policy/data", json={"thresholds": {"pii": 0.6}}, headers=gateway.auth("admin"))
    assert resp.status_code == 409
    (record,) = _rejections(gateway, resp)
    assert (record["code"], record["http_status"], record["method"]) == ("policy_read_only", 409, "PATCH")
    assert record["by"]["role"] == "admin"


def test_a_refused_reload_is_audited(gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _own_bundle(gateway, tmp_path, monkeypatch)
    (bundle / "mamori" / "output.rego").write_text("package mamori.output\n\nthis is not rego {\n")
    resp = gateway.client.post("/v1/policy/reload", headers=gateway.auth("admin"))
    assert resp.status_code == 400
    records = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert [(r.event_type, r.payload["code"]) for r in records] == [("policy.reload_rejected", "policy_invalid")]
