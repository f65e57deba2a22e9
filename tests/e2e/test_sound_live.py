"""`POST /v1/audio/generations` with httpx against the session's live uvicorn server (OpenAI has no sound API).

Also the openai client's `audio.speech.create` with `response_format="mp3"`: a signed MP3.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_httpx_sound_is_a_signed_wav_and_a_refusal_is_clear(live_server: Any) -> None:
    import httpx

    services = live_server.services
    headers = {"Authorization": f"Bearer {live_server.keys['requester']}"}
    with httpx.Client(base_url=live_server.root, headers=headers, timeout=60) as client:
        resp = client.post("/v1/audio/generations", json={"prompt": "soft rain on a window", "duration_s": 1})
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "audio/wav"
        report = services.provenance.read(resp.content, "audio/wav")
        assert report.validation_state == "Trusted"
        assert report.manifest_id == resp.headers["x-mamori-manifest-id"]
        request_id = resp.headers["x-mamori-request-id"]
        records = [r for r in services.audit.for_request(request_id) if r.event_type == "request"]
        assert len(records) == 1 and records[0].payload["status"] == "released"

        refused = client.post("/v1/audio/generations", json={"prompt": "the forbidden-zebra anthem", "duration_s": 1})
        assert refused.status_code == 400
        err = refused.json()
        assert err["error"]["code"] == "content_policy_violation"
        assert "Mamori policy" in err["error"]["message"]
        assert err["mamori"]["status"] == "refused"


def test_openai_client_speech_as_signed_mp3(live_server: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=live_server.url, api_key=live_server.keys["requester"], max_retries=0)
    result = client.audio.speech.create(
        model="mamori-tts", voice="alloy", input="The blue kettle is back.", response_format="mp3"
    )
    data = result.read()
    assert result.response.headers["content-type"] == "audio/mpeg"
    report = live_server.services.provenance.read(data, "audio/mpeg")
    assert report.validation_state == "Trusted"
