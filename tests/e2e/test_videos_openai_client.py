"""The official `openai` client against a live uvicorn server: `videos.create`, `retrieve`/`poll`,
`download_content` (a C2PA-signed MP4, Trusted under the served trust anchor) and a refused prompt.

The session's one live server (tests/conftest.py `live_server`) runs jobs in Huey's immediate mode,
so `create` already answers a finished job; `poll` still goes through `retrieve`.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_openai_client_creates_polls_and_downloads_a_signed_mp4(live_server: Any) -> None:
    import c2pa
    import httpx
    import openai

    client = openai.OpenAI(base_url=live_server.url, api_key=live_server.keys["requester"], max_retries=0)
    size: Any = "32x32"  # the gateway takes any WxH in multiples of 16; the client's type lists Sora's sizes
    created = client.videos.create(prompt="a paper boat on a calm pond", model="wan-2.1-tiny", seconds="4", size=size)
    assert created.object == "video" and created.id.startswith("video_")
    assert created.status in ("queued", "in_progress", "completed")
    assert created.prompt is None  # the prompt is never stored by the gateway

    video = client.videos.poll(created.id, poll_interval_ms=50)
    assert video.status == "completed", video
    assert video.progress == 100 and video.seconds == "4" and video.size == "32x32"
    assert video.error is None and video.completed_at is not None
    assert client.videos.retrieve(created.id).status == "completed"
    mamori: dict[str, Any] = video.model_extra["mamori"]  # type: ignore[index]
    assert mamori["decision"] == "allow" and len(mamori["manifest_ids"]) == 1

    content = client.videos.download_content(created.id)
    data = content.read()
    assert content.response.headers["content-type"] == "video/mp4"
    assert data[4:8] == b"ftyp"

    # validated independently of the gateway's own reader: c2pa with the anchor the gateway serves
    anchor = httpx.get(f"{live_server.root}/v1/provenance/trust-anchor").text
    context = c2pa.Context(settings=c2pa.Settings.from_dict({"trust": {"trust_anchors": anchor}}))
    with c2pa.Reader("video/mp4", io.BytesIO(data), context=context) as reader:
        assert reader.get_validation_state() == "Trusted"
        manifest = json.loads(reader.json())
    assert manifest["active_manifest"] == mamori["manifest_ids"][0]
    records = live_server.services.audit.for_request(mamori["request_id"])
    assert [r.event_type for r in records].count("video.completed") == 1


def test_openai_client_gets_a_policy_refusal(live_server: Any) -> None:
    import openai

    client = openai.OpenAI(base_url=live_server.url, api_key=live_server.keys["requester"], max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.videos.create(prompt="a forbidden-zebra parade", seconds="4")
    assert refused.value.code == "content_policy_violation"
    assert "Mamori policy" in refused.value.message
    assert refused.value.response.json()["mamori"]["decision"] == "block"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_" + "0" * 32)
