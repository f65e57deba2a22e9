"""The official `openai` client against a live uvicorn server: `audio.speech.create`, released and refused.

The server runs in a thread on a free loopback port and shares the session gateway's services
(loaded models, database, policy), so no model is loaded twice.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(gateway: Any) -> Iterator[tuple[str, str, Any]]:
    import uvicorn

    from gateway.app import create_app

    base = gateway.services
    update: dict[str, Any] = {}
    if "jobs_backend" in type(base.settings).model_fields:
        update["jobs_backend"] = "memory"  # no second job consumer on the session's queue
    settings = base.settings.model_copy(update=update)
    services = dataclasses.replace(base, settings=settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="speech-e2e-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1", gateway.keys["requester"], services
    finally:
        server.should_exit = True
        thread.join(timeout=20)


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
        client.audio.speech.create(model="mamori-tts", voice="alloy", input="hello", response_format="mp3")
    assert unsupported.value.code == "unsupported_response_format"
