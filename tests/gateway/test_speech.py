"""`POST /v1/audio/speech`: governed text to speech, a C2PA-signed WAV, refusals in OpenAI's error shape."""

from __future__ import annotations

import hashlib
import io
import wave
from typing import Any

import pytest

from gateway.provenance import DECISION_LABEL

SPEECH = "/v1/audio/speech"
TEXT = "Welcome to the catalog. This is the red teapot."


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "mamori-tts", "input": TEXT, "voice": "alloy", "response_format": "wav", "seed": 3, **extra}


def request_record(gateway: Any, request_id: str) -> dict[str, Any]:
    records = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1, f"expected exactly one request record, got {len(records)}"
    payload: dict[str, Any] = records[0].payload
    return payload


def test_speech_is_released_as_a_signed_wav(gateway: Any) -> None:
    resp = gateway.client.post(SPEECH, json=body(), headers=gateway.auth("requester"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/wav"
    request_id = resp.headers["x-mamori-request-id"]
    manifest_id = resp.headers["x-mamori-manifest-id"]
    data = resp.content
    with wave.open(io.BytesIO(data)) as w:  # still a WAV with the manifest inside
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        assert w.getnframes() > 0

    report = gateway.services.provenance.read(data, "audio/wav")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == manifest_id
    decision = report.assertions[DECISION_LABEL]
    assert decision["request_id"] == request_id
    assert decision["decision"] == "allow"

    record = request_record(gateway, request_id)
    assert record["endpoint"] == "audio.speech"
    assert record["status"] == "released"
    assert record["http_status"] == 200
    assert [d["stage"] for d in record["decisions"]] == ["access", "prescreen", "output"]
    assert record["request"]["output_screening"] == "none"  # no ASR model configured
    assert record["request"]["input_sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    assert TEXT not in str(record)  # a hash, not the text
    asset = record["assets"][0]
    assert asset["mime"] == "audio/wav"
    assert asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert asset["manifest_id"] == manifest_id
    assert record["generator"]["kind"] == "speech"

    state = gateway.services.requests.get(request_id)
    assert state is not None and state.status == "released"


def test_same_seed_same_audio(gateway: Any) -> None:
    first = gateway.client.post(SPEECH, json=body(seed=9), headers=gateway.auth("requester"))
    again = gateway.client.post(SPEECH, json=body(seed=9), headers=gateway.auth("requester"))
    assert first.status_code == again.status_code == 200

    def frames(data: bytes) -> bytes:
        with wave.open(io.BytesIO(data)) as w:
            out: bytes = w.readframes(w.getnframes())
            return out

    assert frames(first.content) == frames(again.content)  # the manifests differ, the samples do not


def test_denied_term_is_refused_and_audited(gateway: Any) -> None:
    resp = gateway.client.post(SPEECH, json=body(input="say forbidden-zebra aloud"), headers=gateway.auth("requester"))
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["error"]["code"] == "content_policy_violation"
    assert err["error"]["type"] == "invalid_request_error"
    assert "prescreen.denied_term" in [r["code"] for r in err["mamori"]["reasons"]]
    assert err["mamori"]["manifest_ids"] == []
    record = request_record(gateway, err["mamori"]["request_id"])
    assert record["status"] == "refused"
    assert record["http_status"] == 400
    assert record["assets"] == []
    assert [d["stage"] for d in record["decisions"]] == ["access", "prescreen"]  # nothing was synthesized
    assert "generate" not in record["timings_ms"]


@pytest.mark.parametrize("fmt", ["opus", "flac", "pcm", "aac", "ogg"])  # mp3: tests/gateway/test_sound.py
def test_other_formats_are_refused_with_a_clear_code(gateway: Any, fmt: str) -> None:
    resp = gateway.client.post(SPEECH, json=body(response_format=fmt), headers=gateway.auth("requester"))
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "unsupported_response_format"
    assert err["param"] == "response_format"
    assert "wav" in err["message"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"input": "   "}, "invalid_request"),
        ({"input": "a" * 5000}, "input_too_long"),
        ({"speed": 9.0}, "invalid_request"),
        ({"voice": None}, "invalid_request"),
        ({"instructions": "whisper"}, "unsupported_parameter"),
    ],
)
def test_bad_bodies_are_refused(gateway: Any, change: dict[str, Any], code: str) -> None:
    resp = gateway.client.post(SPEECH, json=body(**change), headers=gateway.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code


def test_roles_without_the_endpoint_are_forbidden(gateway: Any) -> None:
    resp = gateway.client.post(SPEECH, json=body(), headers=gateway.auth("auditor"))
    assert resp.status_code == 403
    resp = gateway.client.post(SPEECH, json=body())
    assert resp.status_code == 401


def test_backend_failure_fails_closed_and_releases_nothing(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(gateway.services.speech_generator, "synthesize", boom)
    resp = gateway.client.post(SPEECH, json=body(), headers=gateway.auth("requester"))
    assert resp.status_code == 503
    err = resp.json()
    assert err["error"]["code"] == "mamori_fault"
    assert "system.backend_error" in [r["code"] for r in err["mamori"]["reasons"]]
    assert resp.headers["content-type"].startswith("application/json")
    record = request_record(gateway, resp.headers["x-request-id"])
    assert record["status"] == "refused"
    assert record["assets"] == []
    assert record["faults"][0]["component"] == "speech_generator"
    state = gateway.services.requests.get(resp.headers["x-request-id"])
    assert state is not None and state.status == "refused"


def test_signing_failure_fails_closed(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(gateway.services.provenance, "sign", boom)
    resp = gateway.client.post(SPEECH, json=body(), headers=gateway.auth("requester"))
    assert resp.status_code == 503
    assert "system.signing_error" in [r["code"] for r in resp.json()["mamori"]["reasons"]]
    record = request_record(gateway, resp.headers["x-request-id"])
    assert record["assets"][0]["status"] == "refused"
