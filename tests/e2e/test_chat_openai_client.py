"""The official `openai` client against a live uvicorn server: chat completions, whole and streamed.

The server runs in a thread on a free loopback port and shares the session gateway's loaded models
and database (no second model load). Its policy bundle carries the text output rule the shipped
bundle does not have yet (see tests/gateway/test_chat.py), and its output term list holds two words
the seeded tiny model emits, so a stream is cut off by the rail.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.policy import create_engine, default_bundle_dir

pytestmark = pytest.mark.e2e

PROMPT = "write a short catalog line for a red teapot"
SEED = 11
WINDOW = 4

TEXT_OUTPUT_RULE = """package mamori.output

import rego.v1

import data.mamori.lib

hits contains {
	"action": "block",
	"code": "output.denied_term",
	"detector": "denylist",
	"message": concat("", ["the generated text contains a deny-listed term (category: ", lib.label(f.category), ")"]),
} if {
	some f in input.findings
	f.detector == "denylist"
	f.score >= lib.thresholds.denylist
}
"""


@dataclass
class LiveChat:
    url: str
    key: str
    services: Any
    full: str  # what the model says to PROMPT with SEED in 32 tokens, unguarded
    term: str  # two words of `full` on the output term list


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _term(text: str) -> str:
    words = text.split(" ")
    for i in range(WINDOW * 2 - 1, len(words) - 1, WINDOW):
        pair = f"{words[i]} {words[i + 1]}"
        if words[i].isalpha() and words[i + 1].isalpha() and pair not in " ".join(words[:i]):
            return pair
    raise AssertionError(f"no usable word pair in {text!r}")


@pytest.fixture(scope="module")
def live_chat(gateway: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveChat]:
    import uvicorn

    from gateway.app import create_app

    bundle = tmp_path_factory.mktemp("chat-bundle")
    shutil.copytree(default_bundle_dir(), bundle, dirs_exist_ok=True)
    (Path(bundle) / "mamori" / "text_output_rule_for_tests.rego").write_text(TEXT_OUTPUT_RULE, encoding="utf-8")

    base = gateway.services
    full = base.text_generator.generate([{"role": "user", "content": PROMPT}], max_tokens=32, seed=SEED)
    term = _term(full)
    update: dict[str, Any] = {
        "stream_window_tokens": WINDOW,
        "text_output_terms": [{"term": term, "category": "test_output_term"}],
    }
    if "jobs_backend" in type(base.settings).model_fields:
        update["jobs_backend"] = "memory"  # no second job consumer on the session's queue
    settings = base.settings.model_copy(update=update)
    services = dataclasses.replace(
        base,
        settings=settings,
        policy=create_engine("embedded", bundle),
        escalations=copy.copy(base.escalations),  # its own key for anything registered per escalation store
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="chat-e2e-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    try:
        yield LiveChat(f"http://127.0.0.1:{port}", gateway.keys["requester"], services, full, term)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


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
