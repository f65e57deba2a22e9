"""`POST /v1/audio/generations` (sound and music), ASR screening of audio outputs, and held audio for review.

The session gateway serves the tiny config-built MusicGen (generators.tiny_music). ASR tests put a
tiny config-built Whisper (generators.tiny_asr) on the session's services for one test each.
"""

from __future__ import annotations

import base64
import hashlib
import io
import wave
from pathlib import Path
from typing import Any

import pytest

from gateway.provenance import DECISION_LABEL

SOUND = "/v1/audio/generations"
SPEECH = "/v1/audio/speech"
PROMPT = "a calm piano jingle for the kettle catalog video"


def body(**extra: Any) -> dict[str, Any]:
    return {"prompt": PROMPT, "duration_s": 1.0, "seed": 3, **extra}


def request_record(gateway: Any, request_id: str) -> dict[str, Any]:
    records = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1, f"expected exactly one request record, got {len(records)}"
    payload: dict[str, Any] = records[0].payload
    return payload


def frames(data: bytes) -> tuple[wave._wave_params, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getparams(), w.readframes(w.getnframes())


def test_sound_is_released_as_a_signed_wav(gateway: Any) -> None:
    resp = gateway.client.post(SOUND, json=body(), headers=gateway.auth("requester"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/wav"
    request_id = resp.headers["x-mamori-request-id"]
    params, pcm = frames(resp.content)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
    assert params.nframes == 16000  # exactly duration_s seconds
    assert len(set(pcm)) > 16  # not silence

    report = gateway.services.provenance.read(resp.content, "audio/wav")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == resp.headers["x-mamori-manifest-id"]
    assert report.assertions[DECISION_LABEL]["request_id"] == request_id

    record = request_record(gateway, request_id)
    assert record["endpoint"] == "audio.generations"
    assert record["status"] == "released"
    assert [d["stage"] for d in record["decisions"]] == ["access", "prescreen", "output"]
    assert record["request"]["kind"] == "sound"
    assert record["request"]["output_screening"] == "none"  # no ASR model on the session gateway
    assert record["request"]["prompt_sha256"] == hashlib.sha256(PROMPT.encode()).hexdigest()
    assert PROMPT not in str(record)
    assert record["generator"] == {
        "name": "transformers_music",
        "version": record["generator"]["version"],
        "kind": "sound",
    }
    asset = record["assets"][0]
    assert (asset["mime"], asset["sha256"]) == ("audio/wav", hashlib.sha256(resp.content).hexdigest())


def test_same_seed_same_sound_other_seed_other_sound(gateway: Any) -> None:
    first, again, other = (
        gateway.client.post(SOUND, json=body(seed=s), headers=gateway.auth("requester")) for s in (11, 11, 12)
    )
    assert first.status_code == again.status_code == other.status_code == 200
    assert frames(first.content)[1] == frames(again.content)[1]
    assert frames(first.content)[1] != frames(other.content)[1]


@pytest.mark.parametrize("path", [SOUND, SPEECH])
def test_mp3_is_signed_with_c2pa(gateway: Any, path: str) -> None:
    payload = body(response_format="mp3") if path == SOUND else {"model": "tts", "input": "hello there", "voice": "a"}
    payload["response_format"] = "mp3"
    resp = gateway.client.post(path, json=payload, headers=gateway.auth("requester"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "audio/mpeg"
    assert resp.content[:3] == b"ID3"  # the manifest travels in an ID3 tag before the MPEG frames
    report = gateway.services.provenance.read(resp.content, "audio/mpeg")
    assert report.validation_state == "Trusted"
    tampered = bytearray(resp.content)
    tampered[-100] ^= 0xFF
    assert gateway.services.provenance.read(bytes(tampered), "audio/mpeg").validation_state != "Trusted"
    record = request_record(gateway, resp.headers["x-mamori-request-id"])
    assert record["assets"][0]["mime"] == "audio/mpeg"
    assert record["timings_ms"]["encode"] >= 0


def test_denied_prompt_is_refused_and_audited(gateway: Any) -> None:
    resp = gateway.client.post(
        SOUND, json=body(prompt="a forbidden-zebra marching song"), headers=gateway.auth("requester")
    )
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["error"]["code"] == "content_policy_violation"
    assert "prescreen.denied_term" in [r["code"] for r in err["mamori"]["reasons"]]
    record = request_record(gateway, err["mamori"]["request_id"])
    assert (record["status"], record["http_status"], record["assets"]) == ("refused", 400, [])
    assert "generate" not in record["timings_ms"]  # nothing was generated


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"prompt": "  "}, "invalid_request"),
        ({"duration_s": 0}, "invalid_request"),
        ({"duration_s": 3600}, "duration_too_long"),
        ({"response_format": "ogg"}, "unsupported_response_format"),
        ({"voice": "alloy"}, "invalid_request"),  # unknown fields are refused
        ({"prompt": "x" * 5000}, "prompt_too_long"),
    ],
)
def test_bad_bodies_are_refused_and_audited(gateway: Any, change: dict[str, Any], code: str) -> None:
    resp = gateway.client.post(SOUND, json=body(**change), headers=gateway.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    record = request_record(gateway, resp.headers["x-request-id"])
    assert record["error"]["code"] == code


def test_roles_without_the_endpoint_are_forbidden(gateway: Any) -> None:
    assert gateway.client.post(SOUND, json=body(), headers=gateway.auth("auditor")).status_code == 403
    assert gateway.client.post(SOUND, json=body()).status_code == 401


def test_backend_fault_fails_closed_and_is_audited(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(gateway.services.sound_generator, "generate", boom)
    resp = gateway.client.post(SOUND, json=body(), headers=gateway.auth("requester"))
    assert resp.status_code == 503
    err = resp.json()
    assert err["error"]["code"] == "mamori_fault"
    assert "system.backend_error" in [r["code"] for r in err["mamori"]["reasons"]]
    record = request_record(gateway, resp.headers["x-request-id"])
    assert (record["status"], record["assets"]) == ("refused", [])
    assert record["faults"][0]["component"] == "sound_generator"
    state = gateway.services.requests.get(resp.headers["x-request-id"])
    assert state is not None and state.status == "refused"


# ---------------------------------------------------------------- held for review


@pytest.fixture
def brand_is_protected(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real protected-names detector in the prescreen: naming the brand escalates (prescreen.protected_name)."""
    from detectors.protected_names import ProtectedNames

    detector = ProtectedNames(names=[{"name": "Kettlewave", "kind": "brand"}])
    detector.load()
    monkeypatch.setattr(gateway.services, "prescreen_detectors", [*gateway.services.prescreen_detectors, detector])
    return "Kettlewave"


@pytest.mark.parametrize("path", [SOUND, SPEECH])
def test_escalated_audio_is_held_then_released_signed_on_approval(
    gateway: Any, brand_is_protected: str, path: str
) -> None:
    text = f"the {brand_is_protected} jingle"
    payload = body(prompt=text) if path == SOUND else {"model": "tts", "input": text, "voice": "alloy", "seed": 1}
    resp = gateway.client.post(path, json=payload, headers=gateway.auth("requester"))
    assert resp.status_code == 202, resp.text
    held = resp.json()
    mamori = held["mamori"]
    assert (held["data"], mamori["status"], mamori["decision"]) == ([], "held", "escalate")
    assert "prescreen.protected_name" in [r["code"] for r in mamori["reasons"]]
    assert mamori["poll_url"] == f"/v1/requests/{mamori['request_id']}"
    record = request_record(gateway, mamori["request_id"])
    assert record["status"] == "held" and record["http_status"] == 202
    assert record["assets"][0]["status"] == "held" and "manifest_id" not in record["assets"][0]

    poll = gateway.client.get(mamori["poll_url"], headers=gateway.auth("requester")).json()
    assert (poll["mamori"]["status"], poll["data"]) == ("held", [])
    esc = f"/v1/escalations/{mamori['escalation_id']}"
    assert (
        gateway.client.post(f"{esc}/approve", json={"reason": "mine"}, headers=gateway.auth("requester")).status_code
        == 403
    )
    approved = gateway.client.post(f"{esc}/approve", json={"reason": "licensed"}, headers=gateway.auth("supervisor"))
    assert approved.status_code == 200, approved.text

    done = gateway.client.get(mamori["poll_url"], headers=gateway.auth("requester")).json()
    assert done["mamori"]["status"] == "released"
    wav = base64.b64decode(done["data"][0]["b64_json"])
    assert frames(wav)[0].nframes > 0
    report = gateway.services.provenance.read(wav, "audio/wav")
    assert report.validation_state == "Trusted"
    decision = report.assertions[DECISION_LABEL]
    assert decision["request_id"] == mamori["request_id"]
    assert decision["review"]["action"] == "approved"
    assert decision["review"]["reviewer_role"] == "supervisor"


def test_rejected_audio_is_never_released(gateway: Any, brand_is_protected: str) -> None:
    resp = gateway.client.post(SOUND, json=body(prompt=f"{brand_is_protected} song"), headers=gateway.auth("requester"))
    assert resp.status_code == 202, resp.text
    mamori = resp.json()["mamori"]
    esc = f"/v1/escalations/{mamori['escalation_id']}"
    rejected = gateway.client.post(f"{esc}/reject", json={"reason": "no"}, headers=gateway.auth("supervisor"))
    assert rejected.status_code == 200, rejected.text
    done = gateway.client.get(mamori["poll_url"], headers=gateway.auth("requester")).json()
    assert (done["mamori"]["status"], done["data"]) == ("refused", [])


# ---------------------------------------------------------------- ASR screening of the output


@pytest.fixture(scope="module")
def tiny_asr(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from generators.tiny_asr import ensure_tiny_whisper
    from generators.transformers_asr import TransformersASR

    root: Path = ensure_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-whisper")
    asr = TransformersASR(model=str(root), device="cpu")
    asr.load()
    return asr


@pytest.fixture
def with_asr(gateway: Any, tiny_asr: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(gateway.services, "asr", tiny_asr)
    return tiny_asr


def with_output_terms(gateway: Any, monkeypatch: pytest.MonkeyPatch, *terms: str) -> None:
    entries = [{"term": t, "category": "test_output_term"} for t in terms]
    settings = gateway.services.settings.model_copy(update={"text_output_terms": entries})
    monkeypatch.setattr(gateway.services, "settings", settings)


def test_asr_transcript_is_screened_and_only_its_hash_is_kept(
    gateway: Any, with_asr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    resp = gateway.client.post(SOUND, json=body(seed=21), headers=gateway.auth("requester"))
    assert resp.status_code == 200, resp.text
    transcript = with_asr.transcribe(resp.content).text  # the signed WAV holds the same samples
    assert transcript.strip()
    record = request_record(gateway, resp.headers["x-mamori-request-id"])
    assert record["request"]["output_screening"] == "asr"
    assert record["request"]["transcript_sha256"] == hashlib.sha256(transcript.encode()).hexdigest()
    assert transcript not in str(record)
    assert record["decisions"][-1]["input"]["request"]["output_screening"] == "asr"

    # a word the tiny model hears in this very audio goes on the output term list: the same request is refused
    word = transcript.split()[0]
    with_output_terms(gateway, monkeypatch, word)
    refused = gateway.client.post(SOUND, json=body(seed=21), headers=gateway.auth("requester"))
    assert refused.status_code == 400, refused.text
    err = refused.json()
    assert "output.denied_term" in [r["code"] for r in err["mamori"]["reasons"]]
    record = request_record(gateway, err["mamori"]["request_id"])
    assert record["status"] == "refused"
    assert record["assets"][0]["status"] == "refused"
    found = [f for f in record["findings"] if f["stage"] == "output"]
    assert found and found[0]["source"] == "transcript"
    assert found[0]["transcript_sha256"] == hashlib.sha256(transcript.encode()).hexdigest()


def test_asr_fault_fails_closed(gateway: Any, with_asr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_wav: bytes) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(with_asr, "transcribe", boom)
    for path, payload in [(SOUND, body()), (SPEECH, {"model": "tts", "input": "hello", "voice": "alloy"})]:
        resp = gateway.client.post(path, json=payload, headers=gateway.auth("requester"))
        assert resp.status_code == 503, resp.text
        assert "system.asr_error" in [r["code"] for r in resp.json()["mamori"]["reasons"]]
        record = request_record(gateway, resp.headers["x-request-id"])
        assert record["faults"][0]["component"] == "asr"
        assert record["assets"][0]["status"] == "refused"


def test_asr_is_loaded_only_when_configured(gateway: Any, tiny_asr: Any) -> None:
    from gateway.bootstrap import load_asr

    assert load_asr(gateway.services.settings) is None  # no asr_model: outputs are not transcribed
    configured = gateway.services.settings.model_copy(
        update={"asr_model": tiny_asr.model, "asr_options": {"device": "cpu"}}
    )
    asr = load_asr(configured)
    assert asr is not None and asr.name == "transformers_asr"


def test_sound_can_be_turned_off(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.services, "sound_generator", None)
    resp = gateway.client.post(SOUND, json=body(), headers=gateway.auth("requester"))
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_enabled"
