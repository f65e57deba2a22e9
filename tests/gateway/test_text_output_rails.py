"""Output rails on generated text: a toxic answer is refused (or cut off mid-stream) and audited,
personal data in an answer is redacted (also when a stream brings it piece by piece), a clean
answer passes.

The tiny random-weight LLM never says anything toxic, so the session gateway's chat backend is
swapped for the real remote backend (`generators.remote_text.RemoteTextGenerator`) pointed at an
OpenAI-compatible upstream served here on loopback that answers with fixed text: a double of the
external service, not of Mamori. Everything between the client and that upstream (prescreen,
detectors, policy, redaction, streaming windows, audit) is the shipped code and the shipped bundle.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway import text_pipeline
from generators.remote_text import RemoteTextGenerator

CHAT = "/v1/chat/completions"

#: What the upstream answers, by the user's message "answer: <key>".
ANSWERS: dict[str, str] = {
    "clean": "A red enamel teapot with a beech handle, made for slow spring afternoons.",
    "insult": "Honestly, you are a worthless idiot and nobody likes you.",
    "threat": "Listen carefully. I know where you live and I will hurt you.",
    "hate": "Those immigrants are vermin and should be wiped out.",
    "ja": "お前は本当にバカだな。二度と来るな。",
    "pii": "You can write to the author at jane.doe@example.com for the full catalogue.",
    "stream": (
        "Here is a calm opening sentence about teapots that is perfectly fine to send right away. "
        "But you are a pathetic little moron and everyone laughs at you."
    ),
    "phone": (
        "one two three four five six seven eight nine ten eleven twelve: call them 212 555 0187 any time after nine."
    ),
    "card": "one two three four five six seven eight nine ten eleven: the card 4111 1111 1111 1111 expires next year.",
    # a hundred digits, one word each: longer than the stream holds back (STREAM_HOLD_BACK_CHARS)
    "digits": "Digits: " + " ".join(str(i % 10) for i in range(100)) + ".",
}

#: Answers the upstream streams in these pieces (one piece, one token) rather than word by word.
PIECES: dict[str, list[str]] = {
    "email": ["Please ", "write ", "to ", "jane", ".doe@", "example", ".com ", "for ", "the ", "full ", "catalogue."],
    # two addresses in aligned columns, two spaces apart: redacted, they merge into one placeholder
    "emails": ["Contacts: ", "jane", ".doe@", "example.com  ", "john", ".roe@example", ".org ", "for ", "a ", "list."],
}


def pieces_of(key: str) -> list[str]:
    """What the upstream streams for `key`: its pieces, or its answer word by word."""
    return PIECES[key] if key in PIECES else re.findall(r"\S+\s*", ANSWERS.get(key, ANSWERS["clean"]))


def answer_of(key: str) -> str:
    return "".join(pieces_of(key))


class _Upstream(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` in OpenAI's shape: one JSON answer, or server-sent events word by word."""

    server: _UpstreamServer

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append(body)
        key = str(body["messages"][-1]["content"]).removeprefix("answer: ")
        text = answer_of(key)
        if not body.get("stream"):
            payload = json.dumps(
                {
                    "id": "up-1",
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 9, "completion_tokens": len(text.split())},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        pieces = pieces_of(key)
        for piece in pieces:
            self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        self._event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(pieces)}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, chunk: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps({'id': 'up-1', 'object': 'chat.completion.chunk', **chunk})}\n\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Upstream)
        self.calls: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture(scope="module")
def upstream() -> Iterator[_UpstreamServer]:
    server = _UpstreamServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def rails(gateway: Any, upstream: _UpstreamServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session gateway with the remote chat backend on the upstream double and a 4-token window."""
    assert "toxicity" in [d.name for d in gateway.services.prescreen_detectors], "toxicity is a default detector"
    backend = RemoteTextGenerator(base_url=upstream.url, model="upstream-double", timeout_s=30)
    backend.load()
    settings = gateway.services.settings.model_copy(update={"stream_window_tokens": 4})
    monkeypatch.setattr(gateway.services, "text_generator", backend)
    monkeypatch.setattr(gateway.services, "settings", settings)
    upstream.calls.clear()
    yield gateway
    backend.close()


def ask(gateway: Any, key: str, **extra: Any) -> Any:
    body = {"model": "upstream-double", "messages": [{"role": "user", "content": f"answer: {key}"}], **extra}
    return gateway.client.post(CHAT, json=body, headers=gateway.auth("requester"))


def request_record(gateway: Any, request_id: str) -> dict[str, Any]:
    records = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1
    payload: dict[str, Any] = records[0].payload
    return payload


def codes(mamori: dict[str, Any]) -> list[str]:
    return [r["code"] for r in mamori["reasons"]]


@pytest.mark.parametrize(
    ("key", "category", "marker"),
    [("insult", "insult", "idiot"), ("threat", "threat", "hurt"), ("hate", "hate", "vermin"), ("ja", "insult", "バカ")],
)
def test_a_toxic_answer_is_refused_and_audited(rails: Any, upstream: Any, key: str, category: str, marker: str) -> None:
    resp = ask(rails, key)
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["error"]["code"] == "content_policy_violation"
    assert "output.toxicity" in codes(err["mamori"])
    assert err["mamori"]["status"] == "refused"
    assert len(upstream.calls) == 1  # the prompt passed; the answer did not
    answer = ANSWERS[key]
    assert marker not in resp.text

    record = request_record(rails, err["mamori"]["request_id"])
    assert record["status"] == "refused"
    assert record["http_status"] == 400
    assert record["generator"]["name"] == "remote_text"
    (asset,) = record["assets"]
    assert asset["status"] == "refused"
    assert asset["released_chars"] == 0
    assert asset["generated_chars"] == len(answer)
    toxic = [f for f in record["findings"] if f["detector"] == "toxicity" and f["stage"] == "output"]
    assert category in {f["category"] for f in toxic}
    assert max(f["score"] for f in toxic if f["category"] == category) >= 0.8
    output = [d for d in record["decisions"] if d["stage"] == "output"]
    assert output and output[-1]["action"] == "block"
    assert answer not in json.dumps(record, ensure_ascii=False)  # hashes and measurements, not the text


def test_a_clean_answer_is_released(rails: Any) -> None:
    resp = ask(rails, "clean")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["choices"][0]["message"]["content"] == ANSWERS["clean"]
    assert data["mamori"]["decision"] == "allow"
    record = request_record(rails, data["mamori"]["request_id"])
    assert record["status"] == "released"
    assert not [f for f in record["findings"] if f["detector"] == "toxicity" and f["score"] >= 0.5]


def test_personal_data_in_an_answer_is_redacted(rails: Any) -> None:
    resp = ask(rails, "pii")
    assert resp.status_code == 200, resp.text
    data = resp.json()
    text = data["choices"][0]["message"]["content"]
    assert "jane.doe@example.com" not in text
    assert text == ANSWERS["pii"].replace("jane.doe@example.com", "<EMAIL_ADDRESS>")
    assert data["mamori"]["decision"] == "redact"
    assert "output.pii" in codes(data["mamori"])
    record = request_record(rails, data["mamori"]["request_id"])
    assert "jane.doe" not in json.dumps(record)
    (asset,) = record["assets"]
    assert asset["released_chars"] == len(text) < asset["generated_chars"]


def test_a_toxic_stream_is_cut_off_where_it_turns(rails: Any) -> None:
    body = {"model": "upstream-double", "messages": [{"role": "user", "content": "answer: stream"}], "stream": True}
    with rails.client.stream("POST", CHAT, json=body, headers=rails.auth("requester")) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert resp.status_code == 200
    events = [json.loads(x.removeprefix("data: ")) for x in lines if x != "data: [DONE]"]
    final = events[-1]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert final["mamori"]["status"] == "refused"
    assert "output.toxicity" in codes(final["mamori"])

    received = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    full = ANSWERS["stream"]
    assert received and full.startswith(received)  # the calm opening went out, window by window
    assert "pathetic" not in received and "moron" not in received
    assert "pathetic" not in "".join(lines)

    record = request_record(rails, resp.headers["x-request-id"])
    assert record["status"] == "refused"
    (asset,) = record["assets"]
    assert asset["status"] == "partial"
    assert asset["finish_reason"] == "content_filter"
    assert asset["released_chars"] == len(received) < asset["generated_chars"]
    blocks = [d for d in record["decisions"] if d["stage"] == "output" and d["action"] == "block"]
    assert len(blocks) == 1
    assert any(r["code"] == "output.toxicity" for r in blocks[0]["reasons"])


def test_an_abusive_streamed_prompt_is_refused_before_the_upstream_sees_it(rails: Any, upstream: Any) -> None:
    """The prompt rule escalates; a stream cannot wait for a reviewer, so it is refused up front."""
    body = {
        "model": "upstream-double",
        "messages": [{"role": "user", "content": "You worthless idiot, nobody likes you. Kill yourself."}],
        "stream": True,
    }
    resp = rails.client.post(CHAT, json=body, headers=rails.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert "prescreen.toxicity_review" in codes(resp.json()["mamori"])
    assert upstream.calls == []
    record = request_record(rails, resp.json()["mamori"]["request_id"])
    assert "output" not in {d["stage"] for d in record["decisions"]}


# ---------------------------------------------------------------- personal data in a stream


def stream_answer(gateway: Any, key: str) -> tuple[list[str], dict[str, Any], str]:
    """Stream the answer to `key`: the content pieces the client received (one per chunk), the final
    chunk, and everything that went over the wire."""
    body = {"model": "upstream-double", "messages": [{"role": "user", "content": f"answer: {key}"}], "stream": True}
    with gateway.client.stream("POST", CHAT, json=body, headers=gateway.auth("requester")) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert resp.status_code == 200
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(x.removeprefix("data: ")) for x in lines[:-1]]
    deltas = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    return [d for d in deltas if d], events[-1], "\n".join(lines)


def whole_answer(gateway: Any, key: str) -> str:
    resp = ask(gateway, key)
    assert resp.status_code == 200, resp.text
    text: str = resp.json()["choices"][0]["message"]["content"]
    return text


def with_window(gateway: Any, monkeypatch: pytest.MonkeyPatch, tokens: int) -> None:
    settings = gateway.services.settings.model_copy(update={"stream_window_tokens": tokens})
    monkeypatch.setattr(gateway.services, "settings", settings)


def assert_released_whole(gateway: Any, key: str, final: dict[str, Any], received: str) -> dict[str, Any]:
    """The stream ended normally, redacted, with no conflict; its record says what left."""
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["mamori"]["status"] == "released"
    assert final["mamori"]["decision"] == "redact"
    assert codes(final["mamori"]) == ["output.pii"]
    record = request_record(gateway, final["mamori"]["request_id"])
    assert record["status"] == "released"
    assert not record.get("faults")
    (asset,) = record["assets"]
    assert asset["status"] == "released"
    assert asset["finish_reason"] == "stop"
    assert asset["released_chars"] == len(received)
    assert asset["generated_chars"] == len(answer_of(key))
    return record


@pytest.mark.parametrize("window", [4, 16])
@pytest.mark.parametrize(
    ("key", "number", "entity"),
    [("phone", "212 555 0187", "PHONE_NUMBER"), ("card", "4111 1111 1111 1111", "CREDIT_CARD")],
)
def test_a_number_split_over_tokens_is_redacted_whole_in_a_stream(
    rails: Any, monkeypatch: pytest.MonkeyPatch, key: str, number: str, entity: str, window: int
) -> None:
    """Each group of the number is a token of its own. A stream holds the groups back until the
    number is whole (and a phone word could no longer follow it), then releases it redacted: the
    client gets what the whole answer says, and no digit of the number."""
    with_window(rails, monkeypatch, window)
    pieces, final, _ = stream_answer(rails, key)
    received = "".join(pieces)
    expected = ANSWERS[key].replace(number, f"<{entity}>")
    assert received == expected
    assert received == whole_answer(rails, key)
    # the text before the number went out ahead of it; the number waited until it was whole (and until a
    # phone word after it could no longer change it), and went out redacted with the rest
    assert "".join(pieces[:-1]) == expected[: expected.index(f"<{entity}>")]
    assert not any(c.isdigit() for c in received)
    record = assert_released_whole(rails, key, final, received)
    if key == "card":
        # the first twelve digits, held back, are no My Number after "card" (a word naming another
        # number), and then part of the card
        output = [d for d in record["decisions"] if d["stage"] == "output"]
        messages = [r["message"] for d in output for r in d["reasons"] if r["code"] == "output.pii"]
        assert not any("JP_MY_NUMBER" in m for m in messages)
        assert "CREDIT_CARD" in messages[-1]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("email", "Please write to <EMAIL_ADDRESS> for the full catalogue."),
        # two addresses two spaces apart are redacted as one; the first is not released before the second comes
        ("emails", "Contacts: <EMAIL_ADDRESS> for a list."),
    ],
)
def test_an_address_split_over_tokens_is_redacted_whole_in_a_stream(rails: Any, key: str, expected: str) -> None:
    pieces, final, wire = stream_answer(rails, key)
    received = "".join(pieces)
    assert received == expected
    assert received == whole_answer(rails, key)
    assert "jane" not in wire and "john" not in wire and "example" not in wire
    assert_released_whole(rails, key, final, received)


def test_a_long_run_of_digits_is_held_back_no_further_than_the_bound(rails: Any) -> None:
    """A run of digits may always grow into a number, but the stream does not stall on it: all but
    its last 64 characters (`STREAM_HOLD_BACK_CHARS`) go out at each check.

    The answer is 101 tokens: "Digits: ", then the digits 0 to 9 over and over, each a token with its
    space ("9." is the last). The rails run every 4 tokens: the first check releases "Digits: "; the
    ninth (35 digits seen) the first 3 digits, keeping the last 32 (64 characters); each later check 4
    more, up to the 25th (99 digits seen); the end releases the 33 left.
    """
    assert text_pipeline.STREAM_HOLD_BACK_CHARS == 64
    pieces, final, _ = stream_answer(rails, "digits")
    digits = [f"{i % 10} " for i in range(100)]
    assert pieces == [
        "Digits: ",
        "".join(digits[:3]),
        *["".join(digits[i : i + 4]) for i in range(3, 67, 4)],
        "".join(digits[67:]).rstrip() + ".",
    ]
    received = "".join(pieces)
    assert received == ANSWERS["digits"] == whole_answer(rails, "digits")
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["mamori"]["decision"] == "allow"


def test_a_redaction_that_reaches_into_released_text_stops_the_stream(
    rails: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: with a hold-back of 4 characters the first group of the phone number leaves
    before the number is whole; when it is, its redaction would change released text, so the stream
    stops there and the record says why."""
    monkeypatch.setattr(text_pipeline, "STREAM_HOLD_BACK_CHARS", 4)
    pieces, final, _ = stream_answer(rails, "phone")
    received = "".join(pieces)
    assert received == ANSWERS["phone"][: ANSWERS["phone"].index("555")]  # "... call them 212 "
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert final["mamori"]["status"] == "refused"
    assert codes(final["mamori"]) == ["output.pii", "system.redaction_conflict"]

    record = request_record(rails, final["mamori"]["request_id"])
    assert record["status"] == "refused"
    assert record["decision"] == "block"
    assert {"component": "output_rails", "stage": "stream", "error": "redaction_conflict"} in record["faults"]
    conflicts = [d for d in record["decisions"] if any(r["code"] == "system.redaction_conflict" for r in d["reasons"])]
    assert [(d["stage"], d["action"]) for d in conflicts] == [("output", "block")]
    (asset,) = record["assets"]
    assert asset["status"] == "partial"
    assert asset["finish_reason"] == "content_filter"
    assert asset["released_chars"] == len(received) == record["request"]["released_chars"]
