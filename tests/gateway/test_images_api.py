"""The governed image path through the HTTP API, with every stage real."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gateway.provenance import DECISION_LABEL

GEN = "/v1/images/generations"
EDIT = "/v1/images/edits"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _decode(item: dict[str, Any]) -> bytes:
    return base64.b64decode(item["b64_json"])


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _request_record(gateway: Any, request_id: str) -> dict[str, Any]:
    records = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1, f"expected exactly one request record, got {len(records)}"
    return records[0].payload


def generate(gateway: Any, who: str = "requester", **body: Any) -> Any:
    payload = {"prompt": "a red teapot on a white table", "size": "64x64", "seed": 1, **body}
    return gateway.client.post(GEN, json=payload, headers=gateway.auth(who))


def test_generation_is_released_signed_and_audited(gateway: Any) -> None:
    resp = generate(gateway)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert resp.headers["x-request-id"] == body["mamori"]["request_id"]
    assert set(body) >= {"created", "data", "mamori"}
    mamori = body["mamori"]
    assert mamori["status"] == "released"
    assert mamori["decision"] == "allow"
    assert len(mamori["manifest_ids"]) == 1
    assert any(f["detector"] == "image_safety" for f in mamori["findings"])
    data = _decode(body["data"][0])
    assert Image.open(io.BytesIO(data)).size == (64, 64)

    report = gateway.services.provenance.read(data, "image/png")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == mamori["manifest_ids"][0]
    decision = report.assertions[DECISION_LABEL]
    assert decision["request_id"] == mamori["request_id"]
    assert decision["decision"] == "allow"
    assert decision["policy_revision"] == gateway.services.policy.revision

    record = _request_record(gateway, mamori["request_id"])
    assert record["status"] == "released"
    assert record["principal"]["tenant"] == "acme"
    assert {d["stage"] for d in record["decisions"]} >= {"access", "prescreen", "output"}
    assert record["assets"][0]["manifest_id"] == mamori["manifest_ids"][0]
    assert record["detectors"]["image_safety"]
    assert "a red teapot" not in str(record)  # the prompt itself is not in the searchable record


def test_same_seed_same_pixels_and_n_uses_seed_plus_i(gateway: Any) -> None:
    first = generate(gateway, seed=11).json()
    again = generate(gateway, seed=11).json()
    assert np.array_equal(_pixels(_decode(first["data"][0])), _pixels(_decode(again["data"][0])))
    pair = generate(gateway, seed=11, n=2).json()
    assert len(pair["data"]) == 2
    single_next = generate(gateway, seed=12).json()
    assert np.array_equal(_pixels(_decode(pair["data"][1])), _pixels(_decode(single_next["data"][0])))
    assert not np.array_equal(_pixels(_decode(pair["data"][0])), _pixels(_decode(pair["data"][1])))


def test_generates_at_requested_size(gateway: Any) -> None:
    resp = generate(gateway, size="64x128")
    assert resp.status_code == 200, resp.text
    assert Image.open(io.BytesIO(_decode(resp.json()["data"][0]))).size == (64, 128)


@pytest.mark.parametrize(
    ("prompt", "label"),
    [
        ("please draw a forbidden-zebra", "plain"),
        ("please draw a forbidden-z\u0435bra", "cyrillic homoglyph"),
        ("please draw a forbidden-\u200bzebra", "zero-width"),
        ("please draw a \uff46\uff4f\uff52\uff42\uff49\uff44\uff44\uff45\uff4e-zebra", "full-width"),
    ],
)
def test_denied_term_is_refused_and_audited(gateway: Any, prompt: str, label: str) -> None:
    resp = generate(gateway, prompt=prompt)
    assert resp.status_code == 400, label
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert body["error"]["type"] == "invalid_request_error"
    codes = [r["code"] for r in body["mamori"]["reasons"]]
    assert "prescreen.denied_term" in codes
    assert body["mamori"]["status"] == "refused"
    record = _request_record(gateway, body["mamori"]["request_id"])
    assert record["status"] == "refused"
    assert record["http_status"] == 400
    assert any(f["detector"] == "denylist" for f in record["findings"])


def test_pii_in_prompt_is_redacted_before_generation(gateway: Any) -> None:
    resp = generate(gateway, prompt="portrait for john.smith@example.com in a garden")
    assert resp.status_code == 200, resp.text
    mamori = resp.json()["mamori"]
    assert mamori["decision"] == "redact"
    assert "prescreen.pii" in [r["code"] for r in mamori["reasons"]]
    record = _request_record(gateway, mamori["request_id"])
    assert "john.smith@example.com" not in str(record)
    prescreen = next(d for d in record["decisions"] if d["stage"] == "prescreen")
    assert "EMAIL_ADDRESS" in prescreen["obligations"]["redact"]


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"prompt": "x", "size": "100x100"}}, 400, "invalid_size"),
        ({"json": {"prompt": "x", "size": "64x64", "n": 0}}, 400, "invalid_request"),
        ({"json": {"prompt": "x" * 5000, "size": "64x64"}}, 400, "prompt_too_long"),
        ({"json": {"size": "64x64"}}, 400, "invalid_request"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_json"),
        ({"json": ["a", "list"]}, 400, "invalid_json"),
    ],
)
def test_bad_input_is_a_clear_400_and_audited(gateway: Any, kwargs: dict[str, Any], status: int, code: str) -> None:
    headers = {**gateway.auth("requester"), **kwargs.pop("headers", {})}
    resp = gateway.client.post(GEN, headers=headers, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    record = _request_record(gateway, resp.headers["x-request-id"])
    assert record["error"]["code"] == code
    assert record["status"] == "refused"


def test_auth_errors(gateway: Any) -> None:
    resp = gateway.client.post(GEN, json={"prompt": "x", "size": "64x64"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_api_key"
    _request_record(gateway, resp.headers["x-request-id"])
    resp = gateway.client.post(GEN, json={"prompt": "x"}, headers={"Authorization": "Bearer mamori_nope"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    resp = generate(gateway, who="supervisor")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "forbidden"
    record = _request_record(gateway, resp.headers["x-request-id"])
    assert record["http_status"] == 403


def test_revoked_and_expired_keys_are_refused(gateway: Any) -> None:
    from datetime import UTC, datetime, timedelta

    info, key = gateway.services.keys.create(role="requester", tenant="acme")
    headers = {"Authorization": f"Bearer {key}"}
    assert gateway.client.post(GEN, json={"prompt": "a cup", "size": "64x64"}, headers=headers).status_code == 200
    gateway.services.keys.revoke(info.id)
    assert gateway.client.post(GEN, json={"prompt": "a cup", "size": "64x64"}, headers=headers).status_code == 401
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    _, short = gateway.services.keys.create(role="requester", tenant="acme", expires_at=soon)
    import time

    time.sleep(0.4)
    resp = gateway.client.post(GEN, json={"prompt": "a cup"}, headers={"Authorization": f"Bearer {short}"})
    assert resp.status_code == 401


def test_url_response_format_needs_the_requesters_key(gateway: Any) -> None:
    resp = generate(gateway, response_format="url")
    assert resp.status_code == 200
    url = resp.json()["data"][0]["url"]
    assert "/v1/assets/" in url
    path = url[url.index("/v1/assets/") :]
    assert gateway.client.get(path).status_code == 401
    assert gateway.client.get(path, headers=gateway.auth("requester2")).status_code == 404
    ok = gateway.client.get(path, headers=gateway.auth("requester"))
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "image/png"
    assert gateway.services.provenance.read(ok.content, "image/png").validation_state == "Trusted"


def test_url_expires(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = generate(gateway, response_format="url").json()["data"][0]["url"]
    path = url[url.index("/v1/assets/") :]
    monkeypatch.setattr(gateway.services.settings, "url_ttl_s", 0)
    resp = gateway.client.get(path, headers=gateway.auth("requester"))
    assert resp.status_code == 410
    assert resp.json()["error"]["code"] == "url_expired"


def test_trust_anchor_is_served(gateway: Any) -> None:
    resp = gateway.client.get("/v1/provenance/trust-anchor")
    assert resp.status_code == 200
    assert resp.text.startswith("-----BEGIN CERTIFICATE-----")
    assert resp.content == gateway.services.provenance.trust_anchor_pem


def test_health_ready_and_metrics(gateway: Any) -> None:
    assert gateway.client.get("/healthz").json() == {"status": "ok"}
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] is True
    generate(gateway)
    metrics = gateway.client.get("/metrics").text
    assert 'mamori_requests_total{endpoint="images.generations",status="released"}' in metrics
    assert "mamori_stage_seconds_bucket" in metrics
    assert 'mamori_decisions_total{action="allow",stage="output"}' in metrics
