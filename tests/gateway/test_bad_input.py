"""The shared JSON body loader: text that is not Unicode and over-deep nesting are clear, audited 400s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.api.bodies import MAX_DEPTH, load_json
from gateway.errors import BadRequest

MARK = "zq7probe"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b'{"prompt": "a \\ud800 b"}', "invalid_text", "prompt"),
        (b'{"messages": [{"content": "\\udfff"}]}', "invalid_text", "messages.0.content"),
        (b'{"a": {"\\ud83d": 1}}', "invalid_text", "a"),
        (b'"\\ud800"', "invalid_text", None),
        (b'{"meta": {"jane@example.com": ["\\ud800"]}}', "invalid_text", "meta.*.0"),
        ('{"prompt": "\\ud800"}'.encode("utf-16"), "invalid_text", "prompt"),
        (b'{"prompt": "\xed\xa0\x80"}', "invalid_json", None),  # an encoded surrogate is not UTF-8
        (b'{"a": ' + _nested(MAX_DEPTH) + b"}", "json_too_deep", None),
        (_nested(100_000), "json_too_deep", None),
        (b'{"a": ' + b"1" * 5000 + b"}", "invalid_json", None),
        (b"\xff\xfe{", "invalid_json", None),
    ],
)
def test_load_json_refuses_with_a_code(raw: bytes, code: str, param: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        load_json(raw)
    assert info.value.code == code
    assert info.value.param == param


def test_load_json_keeps_what_is_fine() -> None:
    assert load_json(b'{"a": "\\ud83d\\ude00 \\u00e9"}') == {"a": "\U0001f600 \u00e9"}
    deepest = _nested(MAX_DEPTH - 1)
    assert load_json(b'{"a": ' + deepest + b"}") == {"a": json.loads(deepest)}
    assert load_json(_nested(MAX_DEPTH)) == json.loads(_nested(MAX_DEPTH))
    brackets = '{"prompt": "' + "[{" * 100 + '\\"]", "n": [' + ",".join(["[]"] * 100) + "]}"
    assert load_json(brackets.encode())["prompt"] == "[{" * 100 + '"]'  # brackets in text do not nest


ROUTES = ["/v1/images/generations", "/v1/chat/completions", "/v1/moderations"]
BODIES = {
    "lone_surrogate": (
        '{"prompt": "MARK \\ud800", "messages": [{"role": "user", "content": "MARK \\udc00"}], '
        '"input": "MARK \\ud800", "size": "64x64"}',
        "invalid_text",
    ),
    "deep": ('{"prompt": "MARK", "input": ' + "[" * 50_000 + "]" * 50_000 + "}", "json_too_deep"),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", sorted(BODIES))
def test_every_governed_route_answers_400_and_audits(gateway: Any, route: str, case: str) -> None:
    body, code = BODIES[case]
    headers = {**gateway.auth("requester"), "content-type": "application/json"}
    resp = gateway.client.post(route, content=body.replace("MARK", MARK).encode(), headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    records = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert len(records) == 1
    assert records[0].payload["error"]["code"] == code
    assert MARK not in json.dumps(records[0].payload, ensure_ascii=False)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    with pytest.raises(BadRequest) as err:
        load_json(f'{{"input": "x", "n": {constant}}}'.encode())
    assert err.value.code == "invalid_json" and constant.lstrip("-") in err.value.message


def test_numbers_too_large_for_a_float_are_refused() -> None:
    with pytest.raises(BadRequest) as err:
        load_json(b'{"input": "x", "n": 1e999}')
    assert err.value.code == "invalid_json"
    assert load_json(b'{"n": 1.5e300}') == {"n": 1.5e300}
