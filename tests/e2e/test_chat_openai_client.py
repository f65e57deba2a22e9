"""The official `openai` client against the session's live server: chat completions, whole, streamed
and held for review.

The server is the session's one live server (tests/conftest.py `live_server`), sharing the session
gateway's settings, loaded models and database. For this module its settings get a small stream
window and an output term list holding two words the seeded tiny model emits, so a stream is cut
off by the shipped policy's `output.denied_term` rule, and its text rails read the tiny model's
random words with unsafe_text's lexicons (`screen_random_words_with_lexicons`); all are restored
afterwards.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import screen_random_words_with_lexicons

pytestmark = pytest.mark.e2e

PROMPT = "write a short catalog line for a red teapot"
SEED = 11
WINDOW = 4


@dataclass
class LiveChat:
    url: str  # the server's root
    key: str
    keys: dict[str, str]
    services: Any
    full: str  # what the model says to PROMPT with SEED in 32 tokens, unguarded
    term: str  # two words of `full` on the output term list


def _term(text: str) -> str:
    words = text.split(" ")
    for i in range(WINDOW * 2 - 1, len(words) - 1, WINDOW):
        pair = f"{words[i]} {words[i + 1]}"
        if words[i].isalpha() and words[i + 1].isalpha() and pair not in " ".join(words[:i]):
            return pair
    raise AssertionError(f"no usable word pair in {text!r}")


@pytest.fixture(scope="module")
def live_chat(live_server: Any) -> Iterator[LiveChat]:
    """The shared live server with this module's stream window and output term (set on the shared settings)."""
    services = live_server.services
    full = services.text_generator.generate([{"role": "user", "content": PROMPT}], max_tokens=32, seed=SEED)
    term = _term(full)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services.settings, "stream_window_tokens", WINDOW)
        patch.setattr(services.settings, "text_output_terms", [{"term": term, "category": "test_output_term"}])
        screen_random_words_with_lexicons(services, patch)
        yield LiveChat(live_server.root, live_server.keys["requester"], live_server.keys, services, full, term)


def _client(live: LiveChat) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=live.key, max_retries=0)


def _record(live: LiveChat, request_id: str) -> dict[str, Any]:
    records = [r for r in live.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1, f"expected exactly one request record, got {len(records)}"
    payload: dict[str, Any] = records[0].payload
    return payload


def test_openai_client_chat_completion(live_chat: LiveChat) -> None:
    client = _client(live_chat)
    result = client.chat.completions.create(
        model="mamori-text", messages=[{"role": "user", "content": PROMPT}], max_tokens=6, seed=SEED
    )
    text = result.choices[0].message.content or ""
    assert text and live_chat.full.startswith(text)
    assert result.choices[0].finish_reason == "length"
    mamori = (result.model_extra or {})["mamori"]
    assert mamori["status"] == "released"
    assert _record(live_chat, mamori["request_id"])["assets"][0]["sha256"] == hashlib.sha256(text.encode()).hexdigest()

    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="mamori-text", messages=[{"role": "user", "content": "a forbidden-zebra tale"}]
        )
    assert refused.value.code == "content_policy_violation"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live_chat.url}/v1", api_key="mamori_bad", max_retries=0).chat.completions.create(
            model="mamori-text", messages=[{"role": "user", "content": PROMPT}]
        )


def test_openai_client_stream_released(live_chat: LiveChat) -> None:
    stream = _client(live_chat).chat.completions.create(
        model="mamori-text",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=6,
        seed=SEED,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert live_chat.full.startswith(text) and text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_openai_client_stream_cut_off_by_an_output_rail(live_chat: LiveChat) -> None:
    stream = _client(live_chat).chat.completions.create(
        model="mamori-text",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=32,
        seed=SEED,
        stream=True,
    )
    chunks = list(stream)
    received = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert received == live_chat.full[: live_chat.full.index(live_chat.term)]
    last = chunks[-1]
    assert last.choices[0].finish_reason == "content_filter"
    mamori = (last.model_extra or {})["mamori"]
    assert mamori["status"] == "refused"
    record = _record(live_chat, mamori["request_id"])  # written before the last chunk was sent
    assert record["assets"][0]["status"] == "partial"
    assert record["assets"][0]["sha256"] == hashlib.sha256(received.encode()).hexdigest()
    assert record["request"]["released_chars"] == len(received)


def test_client_going_away_mid_stream_is_audited_and_stops_generation(live_chat: LiveChat) -> None:
    body = {
        "model": "mamori-text",
        "messages": [{"role": "user", "content": "tell a long story about a garden"}],
        "max_tokens": 1024,
        "seed": 5,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {live_chat.key}"}
    received = ""
    with httpx.stream("POST", f"{live_chat.url}/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line.removeprefix("data: "))
                received += chunk["choices"][0]["delta"].get("content") or ""
            if received:
                break  # the client hangs up after the first released text
    deadline = time.monotonic() + 20
    while not [r for r in live_chat.services.audit.for_request(request_id) if r.event_type == "request"]:
        assert time.monotonic() < deadline, "no audit record after the client went away"
        time.sleep(0.1)
    record = _record(live_chat, request_id)
    assert record["request"]["stream_interrupted"] is True
    assert record["status"] == "released"  # what left was vetted; the rest never did
    asset = record["assets"][0]
    assert asset["status"] == "partial"
    assert 0 < asset["completion_tokens"] < 1024  # the generation was stopped
    assert asset["released_chars"] >= len(received)


def test_openai_client_held_answer_is_retrieved_after_approval(
    live_chat: LiveChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt naming a protected brand is held (202); a supervisor approves over HTTP; the requester's
    `chat.completions.retrieve` then gets the text, which only the review released."""
    from detectors.protected_names import ProtectedNames

    names = ProtectedNames(names=[{"name": "Kettlewave", "kind": "brand"}])
    names.load()
    services = live_chat.services
    monkeypatch.setattr(services, "prescreen_detectors", [*services.prescreen_detectors, names])
    messages = [{"role": "user", "content": "a catalog line for the kettlewave teapot"}]
    expected = services.text_generator.generate(messages, max_tokens=8, seed=SEED)

    client = _client(live_chat)
    raw = client.chat.completions.with_raw_response.create(
        model="mamori-text", messages=messages, max_tokens=8, seed=SEED
    )
    assert raw.status_code == 202
    held = raw.parse()
    assert held.choices == []
    mamori = (held.model_extra or {})["mamori"]
    assert (mamori["status"], mamori["decision"]) == ("held", "escalate")
    assert client.chat.completions.retrieve(held.id).choices == []  # still held

    supervisor = {"Authorization": f"Bearer {live_chat.keys['supervisor']}"}
    approved = httpx.post(
        f"{live_chat.url}/v1/escalations/{mamori['escalation_id']}/approve",
        json={"reason": "our own brand"},
        headers=supervisor,
    )
    assert approved.status_code == 200, approved.text
    done = client.chat.completions.retrieve(held.id)
    assert done.id == held.id
    assert done.choices[0].message.content == expected
    assert (done.model_extra or {})["mamori"]["status"] == "released"
    reviews = [r for r in services.audit.for_request(mamori["request_id"]) if r.event_type == "review"]
    assert reviews[0].payload["assets"][0]["sha256"] == hashlib.sha256(expected.encode()).hexdigest()
