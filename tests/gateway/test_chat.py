"""The governed text path: `POST /v1/chat/completions`, whole answers and streams, with every stage real.

The shipped policy acts on deny-list findings in generated text (`output.denied_term`) but does not
review generated text that names a protected brand. To test an output escalation, these tests load
the bundle with one extra file in package `mamori.output` holding that rule: the hold (or, in a
stream, the cut-off) is decided by the policy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import PolicyError, create_engine, default_bundle_dir
from tests.conftest import screen_random_words_with_lexicons

CHAT = "/v1/chat/completions"
PROMPT = "write a short catalog line for a red teapot"
SEED = 11
BRAND = "Kettlewave"

OUTPUT_REVIEW_RULE = """package mamori.output

import rego.v1

import data.mamori.lib

# Generated text that names a protected brand, person or character goes to review (for tests).
hits contains {
	"action": "escalate",
	"code": "output.protected_name_review",
	"detector": "protected_names",
	"message": "the generated text names a protected name",
	"review_category": "protected_name",
} if {
	some f in input.findings
	f.detector == "protected_names"
	f.score >= lib.thresholds.protected_name
}
"""


def bundle_with_output_review(dest: Path) -> Path:
    shutil.copytree(default_bundle_dir(), dest, dirs_exist_ok=True)
    (dest / "mamori" / "output_review_rule_for_tests.rego").write_text(OUTPUT_REVIEW_RULE, encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def text_policy(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return create_engine("embedded", bundle_with_output_review(tmp_path_factory.mktemp("bundle")))


@pytest.fixture
def chat(gateway: Any, text_policy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session gateway with the output review rule, a small stream window and the tiny model's
    random words read by unsafe_text's lexicons (`screen_random_words_with_lexicons`); restored afterwards."""
    settings = gateway.services.settings.model_copy(update={"stream_window_tokens": 4})
    monkeypatch.setattr(gateway.services, "settings", settings)
    monkeypatch.setattr(gateway.services, "policy", text_policy)
    screen_random_words_with_lexicons(gateway.services, monkeypatch)
    return gateway


def protect_names(gateway: Any, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """The real protected-names detector among the text detectors (prescreen and output rails)."""
    from detectors.protected_names import ProtectedNames

    detector = ProtectedNames(names=[{"name": n, "kind": "brand"} for n in names])
    detector.load()
    monkeypatch.setattr(gateway.services, "prescreen_detectors", [*gateway.services.prescreen_detectors, detector])


def with_output_terms(gateway: Any, monkeypatch: pytest.MonkeyPatch, *terms: str) -> None:
    entries = [{"term": t, "category": "test_output_term"} for t in terms]
    settings = gateway.services.settings.model_copy(update={"text_output_terms": entries})
    monkeypatch.setattr(gateway.services, "settings", settings)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "mamori-text", "messages": [{"role": "user", "content": PROMPT}], "seed": SEED, **extra}


def unguarded(gateway: Any, max_tokens: int, prompt: str = PROMPT) -> str:
    """What the seeded tiny model says to `prompt`, straight from the backend (no rails)."""
    messages = [{"role": "user", "content": prompt}]
    text: str = gateway.services.text_generator.generate(messages, max_tokens=max_tokens, seed=SEED)
    return text


def request_record(gateway: Any, request_id: str) -> dict[str, Any]:
    records = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1, f"expected exactly one request record, got {len(records)}"
    payload: dict[str, Any] = records[0].payload
    return payload


def sse(gateway: Any, who: str = "requester", **extra: Any) -> tuple[Any, list[Any]]:
    """POST a streaming request; the response and its decoded events ("[DONE]" stays a string)."""
    with gateway.client.stream("POST", CHAT, json=body(stream=True, **extra), headers=gateway.auth(who)) as resp:
        lines = [line for line in resp.iter_lines() if line]
    events: list[Any] = []
    for line in lines:
        assert line.startswith("data: "), line
        data = line.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return resp, events


def content_of(events: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def term_split_across_windows(text: str, window: int) -> str:
    """Two words the model emits (each word is one token) whose pair straddles two windows."""
    words = text.split(" ")
    for i in range(window * 2 - 1, len(words) - 1, window):
        pair = f"{words[i]} {words[i + 1]}"
        if words[i].isalpha() and words[i + 1].isalpha() and pair not in " ".join(words[:i]):
            return pair
    raise AssertionError(f"no usable word pair in {text!r}")


# ---------------------------------------------------------------- whole answers


def test_chat_is_released_in_openai_shape_and_audited(chat: Any) -> None:
    resp = chat.client.post(CHAT, json=body(max_tokens=16), headers=chat.auth("requester"))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert text == unguarded(chat, 16)  # same seed, same text
    assert choice["finish_reason"] in ("stop", "length")
    assert data["usage"]["completion_tokens"] <= 16
    mamori = data["mamori"]
    assert mamori["status"] == "released"
    assert mamori["decision"] == "allow"
    assert mamori["request_id"] == resp.headers["x-request-id"]

    record = request_record(chat, mamori["request_id"])
    assert record["endpoint"] == "chat.completions"
    assert record["status"] == "released"
    assert {d["stage"] for d in record["decisions"]} >= {"access", "prescreen", "output"}
    (asset,) = record["assets"]
    assert asset["mime"] == "text/plain"
    assert asset["sha256"] == sha256(text)
    assert asset["released_chars"] == len(text)
    assert PROMPT not in json.dumps(record)  # hashes, not the text
    assert text not in json.dumps(record)


def test_denied_term_in_a_message_is_refused(chat: Any) -> None:
    payload = body()
    payload["messages"] = [
        {"role": "system", "content": "be helpful"},
        {"role": "user", "content": "tell me about the forbidden-zebra"},
    ]
    resp = chat.client.post(CHAT, json=payload, headers=chat.auth("requester"))
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["error"]["code"] == "content_policy_violation"
    assert "prescreen.denied_term" in [r["code"] for r in err["mamori"]["reasons"]]
    record = request_record(chat, err["mamori"]["request_id"])
    assert record["status"] == "refused"
    assert record["http_status"] == 400
    assert [f["message"] for f in record["findings"] if f["detector"] == "denylist"] == [1]
    assert "output" not in {d["stage"] for d in record["decisions"]}  # nothing was generated


def test_pii_in_a_message_is_redacted_before_generation(chat: Any) -> None:
    payload = body(max_tokens=4)
    payload["messages"][0]["content"] = "write to john.smith@example.com about the teapot"
    resp = chat.client.post(CHAT, json=payload, headers=chat.auth("requester"))
    assert resp.status_code == 200, resp.text
    mamori = resp.json()["mamori"]
    assert mamori["decision"] == "redact"
    record = request_record(chat, mamori["request_id"])
    assert record["request"]["prompt_redacted_for_generation"] is True
    assert "john.smith" not in json.dumps(record)


def test_output_term_refuses_a_whole_answer(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    term = term_split_across_windows(unguarded(chat, 24), 4)
    with_output_terms(chat, monkeypatch, term)
    resp = chat.client.post(CHAT, json=body(max_tokens=24), headers=chat.auth("requester"))
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["error"]["code"] == "content_policy_violation"
    assert term not in resp.text
    assert "output.denied_term" in [r["code"] for r in err["mamori"]["reasons"]]
    record = request_record(chat, err["mamori"]["request_id"])
    assert record["assets"][0]["status"] == "refused"
    assert record["assets"][0]["released_chars"] == 0


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"n": 2}, "invalid_n"),
        ({"max_tokens": 10**6}, "invalid_max_tokens"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "invalid_role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "unsupported_content"),
        ({"messages": []}, "invalid_request"),
    ],
)
def test_bad_requests_are_400_and_audited(chat: Any, payload: dict[str, Any], code: str) -> None:
    resp = chat.client.post(CHAT, json=body(**payload), headers=chat.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    assert request_record(chat, resp.headers["x-request-id"])["status"] == "refused"


def test_roles_without_permission_are_forbidden(chat: Any) -> None:
    resp = chat.client.post(CHAT, json=body(), headers=chat.auth("auditor"))
    assert resp.status_code == 403


def test_backend_failure_fails_closed(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(chat.services.text_generator, "complete", boom)
    resp = chat.client.post(CHAT, json=body(), headers=chat.auth("requester"))
    assert resp.status_code == 503
    assert "system.backend_error" in [r["code"] for r in resp.json()["mamori"]["reasons"]]
    record = request_record(chat, resp.headers["x-request-id"])
    assert record["status"] == "refused"
    assert record["faults"][0]["component"] == "text_generator"


# ---------------------------------------------------------------- streams


def test_stream_releases_everything_when_the_rails_pass(chat: Any) -> None:
    resp, events = sse(chat, max_tokens=20, stream_options={"include_usage": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] <= 20
    final = chunks[-2]
    assert final["choices"][0]["finish_reason"] in ("stop", "length")
    text = content_of(events)
    assert text == unguarded(chat, 20)
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 1  # windows
    mamori = final["mamori"]
    assert mamori["status"] == "released"

    record = request_record(chat, resp.headers["x-request-id"])
    assert record["status"] == "released"
    assert record["http_status"] == 200
    (asset,) = record["assets"]
    assert asset["sha256"] == sha256(text)
    assert asset["released_chars"] == len(text) == record["request"]["released_chars"]
    output_decisions = [d for d in record["decisions"] if d["stage"] == "output"]
    assert len(output_decisions) >= 2  # one per window, plus the final check


def test_stream_is_cut_off_by_an_output_rail(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    full = unguarded(chat, 32)
    term = term_split_across_windows(full, 4)  # a term whose words arrive in two different windows
    with_output_terms(chat, monkeypatch, term)

    resp, events = sse(chat, max_tokens=32)
    assert resp.status_code == 200
    assert events[-1] == "[DONE]"
    final = events[-2]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert final["mamori"]["status"] == "refused"
    assert "output.denied_term" in [r["code"] for r in final["mamori"]["reasons"]]

    received = content_of(events)
    assert received, "the vetted text before the term was released"
    assert received == full[: full.index(term)]  # everything before the term, not even half of it
    raw = "".join(str(e) for e in events)
    assert term not in raw

    record = request_record(chat, resp.headers["x-request-id"])
    assert record["status"] == "refused"
    assert record["decision"] == "block"
    (asset,) = record["assets"]
    assert asset["status"] == "partial"
    assert asset["finish_reason"] == "content_filter"
    assert asset["sha256"] == sha256(received)
    assert asset["released_chars"] == len(received) == record["request"]["released_chars"]
    assert asset["generated_chars"] > len(received)
    blocks = [d for d in record["decisions"] if d["stage"] == "output" and d["action"] == "block"]
    assert len(blocks) == 1
    assert term not in json.dumps(record["request"])


def test_stream_detector_failure_ends_with_content_filter(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = chat.services.prescreen_detectors[0]
    real = detector.detect

    def fails_on_output(item: Any, ctx: Any) -> Any:
        if ctx.stage == "output":
            raise RuntimeError("injected")
        return real(item, ctx)

    monkeypatch.setattr(detector, "detect", fails_on_output)
    resp, events = sse(chat, max_tokens=16)
    assert events[-1] == "[DONE]"
    final = events[-2]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert "system.detector_error" in [r["code"] for r in final["mamori"]["reasons"]]
    assert content_of(events) == ""  # the first window never passed
    record = request_record(chat, resp.headers["x-request-id"])
    assert record["status"] == "refused"
    assert record["assets"][0]["released_chars"] == 0


def test_stream_policy_failure_ends_with_content_filter(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = chat.services.policy
    real = policy.decide

    def fails_on_output(doc: Any) -> Any:
        if doc["stage"] == "output" and doc["request"].get("window", 0) >= 1:
            raise PolicyError("injected")
        return real(doc)

    monkeypatch.setattr(policy, "decide", fails_on_output)
    resp, events = sse(chat, max_tokens=24)
    final = events[-2]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert "system.policy_error" in [r["code"] for r in final["mamori"]["reasons"]]
    record = request_record(chat, resp.headers["x-request-id"])
    assert record["assets"][0]["sha256"] == sha256(content_of(events))


def test_stream_refused_at_prescreen_is_a_plain_error(chat: Any) -> None:
    payload = body(stream=True)
    payload["messages"][0]["content"] = "a forbidden-zebra story"
    resp = chat.client.post(CHAT, json=payload, headers=chat.auth("requester"))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "content_policy_violation"
    assert request_record(chat, resp.headers["x-request-id"])["status"] == "refused"


# ---------------------------------------------------------------- held for review


def held_answer(gateway: Any, prompt: str, max_tokens: int, who: str = "requester") -> dict[str, Any]:
    payload = body(max_tokens=max_tokens)
    payload["messages"][0]["content"] = prompt
    resp = gateway.client.post(CHAT, json=payload, headers=gateway.auth(who))
    assert resp.status_code == 202, resp.text
    held: dict[str, Any] = resp.json()
    assert held["object"] == "chat.completion" and held["id"].startswith("chatcmpl-")
    assert held["choices"] == []  # nothing leaves before a reviewer decides
    assert held["usage"]["completion_tokens"] > 0
    mamori = held["mamori"]
    assert (mamori["status"], mamori["decision"]) == ("held", "escalate")
    assert mamori["escalation_id"] and mamori["poll_url"] == f"/v1/requests/{mamori['request_id']}"
    assert mamori["request_id"] == resp.headers["x-request-id"]
    return held


def retrieve(gateway: Any, completion_id: str, who: str = "requester") -> Any:
    return gateway.client.get(f"{CHAT}/{completion_id}", headers=gateway.auth(who))


def test_escalated_answer_is_held_then_released_unsigned_on_approval(
    chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    protect_names(chat, monkeypatch, BRAND)
    prompt = f"write a short catalog line for a {BRAND.lower()} teapot"  # (capitalized, NER may take it for PII)
    expected = unguarded(chat, 12, prompt)
    held = held_answer(chat, prompt, 12)
    mamori = held["mamori"]
    assert "prescreen.protected_name" in [r["code"] for r in mamori["reasons"]]
    assert expected not in json.dumps(held)

    record = request_record(chat, mamori["request_id"])
    assert (record["status"], record["http_status"], record["decision"]) == ("held", 202, "escalate")
    (asset,) = record["assets"]
    assert asset["status"] == "held" and asset["held_sha256"] == sha256(expected)
    assert expected not in json.dumps(record) and prompt not in json.dumps(record)  # hashes, not the text
    escalation = chat.services.escalations.get(mamori["escalation_id"])
    assert escalation.prompt_masked == f"user: {prompt}"  # what the reviewer reads (no PII here)

    # polling before the decision: nothing yet, in both shapes
    waiting = retrieve(chat, held["id"])
    assert waiting.status_code == 200, waiting.text
    assert (waiting.json()["choices"], waiting.json()["mamori"]["status"]) == ([], "held")
    poll = chat.client.get(mamori["poll_url"], headers=chat.auth("requester")).json()
    assert (poll["data"], poll["mamori"]["status"]) == ([], "held")

    esc = f"/v1/escalations/{mamori['escalation_id']}"
    own = chat.client.post(f"{esc}/approve", json={"reason": "mine"}, headers=chat.auth("requester"))
    assert own.status_code == 403
    approved = chat.client.post(
        f"{esc}/approve", json={"reason": "our licensed brand"}, headers=chat.auth("supervisor")
    )
    assert approved.status_code == 200, approved.text

    done = retrieve(chat, held["id"])
    assert done.status_code == 200, done.text
    completion = done.json()
    assert completion["id"] == held["id"] and completion["model"] == "mamori-text"
    [choice] = completion["choices"]
    assert choice["message"] == {"role": "assistant", "content": expected, "refusal": None}
    assert choice["finish_reason"] in ("stop", "length")
    assert completion["mamori"]["status"] == "released"
    assert completion["mamori"]["review"]["action"] == "approved"
    assert completion["mamori"]["manifest_ids"] == []  # text carries no C2PA
    poll = chat.client.get(mamori["poll_url"], headers=chat.auth("requester")).json()
    assert base64.b64decode(poll["data"][0]["b64_json"]).decode("utf-8") == expected

    reviews = [r.payload for r in chat.services.audit.for_request(mamori["request_id"]) if r.event_type == "review"]
    [review] = reviews
    [released] = review["assets"]
    assert released["sha256"] == sha256(expected) and released["mime"] == "text/plain"
    assert released["manifest_id"] is None and released["manifest_binding"] == "none"
    assert expected not in json.dumps(review)
    # another key sees nothing of it
    assert retrieve(chat, held["id"], who="requester2").status_code == 404


def test_held_answer_is_made_from_the_redacted_prompt(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prescreen escalates (the brand) and asks to redact (the e-mail): the model never sees the
    address, the held answer is made from the redacted prompt, and the reviewer reads it masked."""
    protect_names(chat, monkeypatch, BRAND)
    prompt = f"write to ann@example.com about a {BRAND.lower()} teapot"
    expected = unguarded(chat, 8, f"write to <EMAIL_ADDRESS> about a {BRAND.lower()} teapot")
    held = held_answer(chat, prompt, 8)
    codes = [r["code"] for r in held["mamori"]["reasons"]]
    assert "prescreen.protected_name" in codes and "prescreen.pii" in codes
    record = request_record(chat, held["mamori"]["request_id"])
    assert record["request"]["prompt_redacted_for_generation"] is True
    assert record["assets"][0]["held_sha256"] == sha256(expected)
    masked = chat.services.escalations.get(held["mamori"]["escalation_id"]).prompt_masked
    assert masked == f"user: write to <EMAIL_ADDRESS> about a {BRAND.lower()} teapot"


def test_rejected_answer_is_never_released(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    protect_names(chat, monkeypatch, BRAND)
    prompt = f"a {BRAND} slogan, please"
    expected = unguarded(chat, 10, prompt)  # a length no other test holds: the text's blob is this request's alone
    held = held_answer(chat, prompt, 10)
    esc = f"/v1/escalations/{held['mamori']['escalation_id']}"
    rejected = chat.client.post(f"{esc}/reject", json={"reason": "off brand"}, headers=chat.auth("supervisor"))
    assert rejected.status_code == 200, rejected.text
    done = retrieve(chat, held["id"]).json()
    assert (done["choices"], done["mamori"]["status"]) == ([], "refused")
    assert "review.rejected" in [r["code"] for r in done["mamori"]["reasons"]]
    poll = chat.client.get(held["mamori"]["poll_url"], headers=chat.auth("requester")).json()
    assert (poll["data"], poll["mamori"]["status"]) == ([], "refused")
    assert not chat.services.blobs.exists(sha256(expected))  # the held text is gone (content-addressed)


def test_output_escalation_holds_a_whole_answer_and_cuts_off_a_stream(
    chat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = unguarded(chat, 24)
    words = full.split(" ")
    name = next(w for i, w in enumerate(words) if i >= 8 and w.isalpha() and w not in words[:i] and w not in PROMPT)
    protect_names(chat, monkeypatch, name)

    held = held_answer(chat, PROMPT, 24)
    assert "output.protected_name_review" in [r["code"] for r in held["mamori"]["reasons"]]
    assert request_record(chat, held["mamori"]["request_id"])["assets"][0]["held_sha256"] == sha256(full)

    resp, events = sse(chat, max_tokens=24)  # a stream cannot wait for a reviewer: it is cut off
    final = events[-2]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    codes = [r["code"] for r in final["mamori"]["reasons"]]
    assert "output.protected_name_review" in codes and "review.stream_not_held" in codes
    received = content_of(events)
    assert received and full.startswith(received) and name not in received
    record = request_record(chat, resp.headers["x-request-id"])
    assert record["status"] == "refused" and record["request"]["escalation_not_held"] == "stream"
    assert record["assets"][0]["status"] == "partial"
    assert final["mamori"].get("escalation_id") is None


def test_stream_escalated_at_prescreen_is_refused_with_the_reason(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    protect_names(chat, monkeypatch, BRAND)
    payload = body(stream=True)
    payload["messages"][0]["content"] = f"a {BRAND} story"
    resp = chat.client.post(CHAT, json=payload, headers=chat.auth("requester"))
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert err["error"]["code"] == "content_policy_violation"
    codes = [r["code"] for r in err["mamori"]["reasons"]]
    assert "prescreen.protected_name" in codes and "review.stream_not_held" in codes
    assert request_record(chat, resp.headers["x-request-id"])["status"] == "refused"


def test_holding_fails_closed(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.text_pipeline as text_pipeline

    def queue_down(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    protect_names(chat, monkeypatch, BRAND)
    monkeypatch.setattr(text_pipeline, "open_escalation", queue_down)
    payload = body(max_tokens=6)
    payload["messages"][0]["content"] = f"a {BRAND} poem"
    resp = chat.client.post(CHAT, json=payload, headers=chat.auth("requester"))
    assert resp.status_code == 503, resp.text
    err = resp.json()
    assert err["error"]["code"] == "mamori_fault"
    assert "system.hold_error" in [r["code"] for r in err["mamori"]["reasons"]]
    record = request_record(chat, resp.headers["x-request-id"])
    assert record["status"] == "refused" and record["assets"][0]["status"] == "refused"
    state = chat.services.requests.get(resp.headers["x-request-id"])
    assert state is not None and state.status == "refused" and state.assets == ()


def test_only_held_answers_can_be_retrieved(chat: Any) -> None:
    resp = chat.client.post(CHAT, json=body(max_tokens=4), headers=chat.auth("requester"))
    assert resp.status_code == 200, resp.text
    stored = retrieve(chat, resp.json()["id"])
    assert stored.status_code == 404 and stored.json()["error"]["code"] == "completion_not_stored"
    for missing in ("chatcmpl-nothing", "not-a-completion"):
        assert retrieve(chat, missing).status_code == 404
    assert retrieve(chat, resp.json()["id"], who="auditor").status_code in (403, 404)


# ---------------------------------------------------------------- image prompt expansion

IMAGES = "/v1/images/generations"


def expand(gateway: Any, prompt: str) -> Any:
    payload = {"prompt": prompt, "size": "64x64", "seed": 3, "mamori_expand_prompt": True}
    return gateway.client.post(IMAGES, json=payload, headers=gateway.auth("requester"))


def test_image_prompt_is_expanded_by_the_llm_and_screened_twice(chat: Any) -> None:
    resp = expand(chat, "teapot, catalog style")
    assert resp.status_code == 200, resp.text
    record = request_record(chat, resp.json()["mamori"]["request_id"])
    assert [d["stage"] for d in record["decisions"]].count("prescreen") == 2  # instruction, then expansion
    note = record["request"]["prompt_expansion"]
    assert note["instruction_sha256"] == sha256("teapot, catalog style")
    assert note["expanded_chars"] > 0
    assert "expand_prompt" in record["timings_ms"]


def test_a_denied_instruction_never_reaches_the_llm(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the text model saw a refused instruction")

    monkeypatch.setattr(chat.services.text_generator, "complete", must_not_run)
    resp = expand(chat, "a forbidden-zebra")
    assert resp.status_code == 400
    assert "prescreen.denied_term" in [r["code"] for r in resp.json()["mamori"]["reasons"]]
    assert request_record(chat, resp.headers["x-request-id"])["status"] == "refused"


def test_a_denied_expansion_is_refused_by_the_image_prescreen(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from generators.transformers_text import TextCompletion

    monkeypatch.setattr(
        chat.services.text_generator,
        "complete",
        lambda *_a, **_k: TextCompletion("a forbidden-zebra on a plain", "stop", 5, 6),
    )
    resp = expand(chat, "teapot")
    assert resp.status_code == 400
    assert "prescreen.denied_term" in [r["code"] for r in resp.json()["mamori"]["reasons"]]
    record = request_record(chat, resp.headers["x-request-id"])
    assert [d["action"] for d in record["decisions"] if d["stage"] == "prescreen"] == ["allow", "block"]
