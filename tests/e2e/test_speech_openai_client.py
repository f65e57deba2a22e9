"""The official `openai` client against a live uvicorn server: `audio.speech.create`, released and refused.

The session's one live server (tests/conftest.py `live_server`) shares the gateway's loaded models.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def live(live_server: Any) -> tuple[str, str, Any]:
    return live_server.url, live_server.keys["requester"], live_server.services


def test_openai_client_speech_is_a_signed_wav(live: tuple[str, str, Any]) -> None:
    import openai

    url, key, services = live
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    result = client.audio.speech.create(
        model="mamori-tts", voice="alloy", input="The red teapot is back in the catalog.", response_format="wav"
    )
    data = result.read()
    assert result.response.headers["content-type"] == "audio/wav"
    report = services.provenance.read(data, "audio/wav")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == result.response.headers["x-mamori-manifest-id"]
    request_id = result.response.headers["x-mamori-request-id"]
    records = [r for r in services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1 and records[0].payload["status"] == "released"

    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(
            model="mamori-tts", voice="alloy", input="read the forbidden-zebra notice", response_format="wav"
        )
    assert refused.value.code == "content_policy_violation"
    assert "Mamori policy" in refused.value.message

    with pytest.raises(openai.BadRequestError) as unsupported:
        client.audio.speech.create(model="mamori-tts", voice="alloy", input="hello", response_format="opus")
    assert unsupported.value.code == "unsupported_response_format"
