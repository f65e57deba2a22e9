"""Form bodies (multipart and urlencoded): text that is not valid UTF-8 in a field's value or name,
or in a file's name, is an audited 400 `invalid_text` with the field's path, as a lone surrogate is
in a JSON body; never silently read as Latin-1 or replaced with U+FFFD (what Starlette does)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

MARK = "zq7probe"  # beside the bad bytes: it must reach neither the error nor the audit record
BAD = {
    "invalid_utf8": b"\xff\xfe",
    "encoded_surrogate": b"\xed\xa0\x80",  # U+D800 as UTF-8 would spell it (CESU-8): not UTF-8
    "truncated": b"\xe6\x97",  # the first two bytes of a three-byte character
}
BOUNDARY = b"mamoriFormTextBoundary"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


Part = tuple[bytes, bytes | None, bytes]  # (name, file name or None for a text field, content)


def _multipart(parts: list[Part], charset: str = "") -> tuple[bytes, str]:
    """Raw multipart bytes (httpx would encode the names itself): each part exactly as given."""
    out = b""
    for name, filename, data in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        out += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition + b"\r\n"
        if filename is not None:
            out += b"Content-Type: image/png\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + BOUNDARY + b"--\r\n"
    return out, f"multipart/form-data; boundary={BOUNDARY.decode()}{charset}"


def _post(gateway: Any, path: str, body: bytes, content_type: str, who: str = "requester") -> Any:
    return gateway.client.post(path, content=body, headers={**gateway.auth(who), "content-type": content_type})


def _edit_parts(prompt: bytes = b"make it blue", filename: bytes = b"src.png", name: bytes = b"prompt") -> list[Part]:
    return [(name, None, prompt), (b"size", None, b"64x64"), (b"image", filename, _png())]


def _refused(gateway: Any, resp: Any, param: str | None, code: str = "invalid_text") -> Any:
    """A 400 with `code` and `param`, nothing of the text echoed, and exactly one audit record saying so."""
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (code, param, "invalid_request_error")
    assert MARK not in resp.text
    records = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert len(records) == 1, records
    assert MARK not in json.dumps(records[0].payload, ensure_ascii=False, default=str)
    return records[0]


def _governed(gateway: Any, resp: Any, param: str | None, code: str = "invalid_text") -> dict[str, Any]:
    record = _refused(gateway, resp, param, code)
    assert record.event_type == "request"
    payload: dict[str, Any] = record.payload
    assert payload["error"]["code"] == code and payload["http_status"] == 400
    assert payload["status"] == "refused" and payload["assets"] == []
    assert payload["principal"]["tenant"] == "acme"
    return payload


# ---------------------------------------------------------------- POST /v1/images/edits


@pytest.mark.parametrize("bad", sorted(BAD))
def test_edit_prompt_that_is_not_utf8(gateway: Any, bad: str) -> None:
    body, content_type = _multipart(_edit_parts(prompt=MARK.encode() + b" " + BAD[bad] + b" blue"))
    _governed(gateway, _post(gateway, "/v1/images/edits", body, content_type), "prompt")


@pytest.mark.parametrize("field", ["image", "image[]"])
def test_edit_file_name_that_is_not_utf8(gateway: Any, field: str) -> None:
    parts = _edit_parts(filename=MARK.encode() + BAD["encoded_surrogate"] + b".png")
    parts[-1] = (field.encode(), *parts[-1][1:])
    body, content_type = _multipart(parts)
    _governed(gateway, _post(gateway, "/v1/images/edits", body, content_type), f"{field}.filename")


def test_edit_field_name_that_is_not_utf8(gateway: Any) -> None:
    parts = [*_edit_parts(), (MARK.encode() + BAD["invalid_utf8"], None, b"x")]
    body, content_type = _multipart(parts)
    _governed(gateway, _post(gateway, "/v1/images/edits", body, content_type), None)  # a name is not echoed


def test_edit_repeated_field_names_its_position(gateway: Any) -> None:
    parts = [*_edit_parts(), (b"user", None, b"fine"), (b"user", None, MARK.encode() + BAD["truncated"])]
    body, content_type = _multipart(parts)
    _governed(gateway, _post(gateway, "/v1/images/edits", body, content_type), "user.1")


@pytest.mark.parametrize("escape", ["%ED%A0%80", "%FF", "%E6%97"])
def test_edit_urlencoded_escape_that_is_not_utf8(gateway: Any, escape: str) -> None:
    body = f"prompt={MARK}+{escape}+blue&size=64x64".encode()
    resp = _post(gateway, "/v1/images/edits", body, "application/x-www-form-urlencoded")
    _governed(gateway, resp, "prompt")  # before "an image is required": the text is checked as it is read


def test_edit_with_valid_non_ascii_text_still_works(gateway: Any) -> None:
    body, content_type = _multipart(_edit_parts(prompt="青い空 café 😀".encode(), filename="空.png".encode()))
    resp = _post(gateway, "/v1/images/edits", body, content_type)
    assert resp.status_code == 200, resp.text
    (record,) = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert record.payload["request"]["prompt_chars"] == len("青い空 café 😀")  # decoded as UTF-8, not Latin-1


def test_edit_declared_charset_is_honoured_or_refused(gateway: Any) -> None:
    body, content_type = _multipart(_edit_parts(prompt="café".encode("latin-1")), charset="; charset=latin-1")
    resp = _post(gateway, "/v1/images/edits", body, content_type)
    assert resp.status_code == 200, resp.text
    (record,) = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert record.payload["request"]["prompt_chars"] == 4
    body, content_type = _multipart(_edit_parts(), charset="; charset=rot13")  # not a text encoding
    _governed(gateway, _post(gateway, "/v1/images/edits", body, content_type), None, "invalid_multipart")


# ---------------------------------------------------------------- POST /v1/videos


@pytest.mark.parametrize("form", ["multipart", "urlencoded"])
def test_video_prompt_that_is_not_utf8_is_not_queued(gateway: Any, form: str) -> None:
    if form == "multipart":
        parts: list[Part] = [(b"prompt", None, MARK.encode() + BAD["invalid_utf8"]), (b"size", None, b"64x64")]
        body, content_type = _multipart(parts)
    else:
        body, content_type = f"prompt={MARK}%FF&size=64x64".encode(), "application/x-www-form-urlencoded"
    payload = _governed(gateway, _post(gateway, "/v1/videos", body, content_type), "prompt")
    assert "video_id" not in payload["request"]


def test_video_malformed_form_has_its_code(gateway: Any) -> None:
    resp = _post(gateway, "/v1/videos", MARK.encode(), f"multipart/form-data; boundary={BOUNDARY.decode()}")
    _governed(gateway, resp, None, "invalid_multipart")


# ---------------------------------------------------------------- POST /v1/protected


def test_protected_file_name_that_is_not_utf8_stores_nothing(gateway: Any) -> None:
    before = int(gateway.client.get("/v1/protected", headers=gateway.auth("admin")).json()["total"])
    parts: list[Part] = [
        (b"file", b"fine.png", _png()),
        (b"file", MARK.encode() + BAD["encoded_surrogate"] + b".png", _png()),
    ]
    body, content_type = _multipart(parts)
    record = _refused(gateway, _post(gateway, "/v1/protected", body, content_type, "admin"), "file.1.filename")
    assert record.event_type == "protected.rejected"
    assert (record.payload["code"], record.payload["param"]) == ("invalid_text", "file.1.filename")
    after = int(gateway.client.get("/v1/protected", headers=gateway.auth("admin")).json()["total"])
    assert after == before
