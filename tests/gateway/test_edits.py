"""Edits: instruction edit, inpainting with a mask, the source screened like an output, bad uploads."""

from __future__ import annotations

import base64
import io
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import brightness_safety

EDIT = "/v1/images/edits"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _source() -> bytes:
    rng = np.random.default_rng(3)
    return _png(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))


def _edit(gateway: Any, image: bytes, mask: bytes | None = None, **fields: Any) -> Any:
    files = {"image": ("src.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    data = {"prompt": "make it blue", "size": "64x64", "seed": "5", **fields}
    return gateway.client.post(EDIT, files=files, data=data, headers=gateway.auth("requester"))


def _pixels(body: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"]))).convert("RGB"))


def test_edit_and_inpaint(gateway: Any) -> None:
    plain = _edit(gateway, _source())
    assert plain.status_code == 200, plain.text
    report = gateway.services.provenance.read(base64.b64decode(plain.json()["data"][0]["b64_json"]), "image/png")
    assert report.validation_state == "Trusted"
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (16, 16, 48, 48))  # transparent = repaint, as in OpenAI's API
    masked = _edit(gateway, _source(), _png(mask))
    assert masked.status_code == 200, masked.text
    assert not np.array_equal(_pixels(plain.json()), _pixels(masked.json()))
    record = next(r for r in gateway.services.audit.for_request(masked.json()["mamori"]["request_id"]))
    assert record.payload["request"]["mask_sha256"]
    assert record.payload["request"]["kind"] == "edit"


def test_protected_source_cannot_be_laundered_through_an_edit(gateway: Any) -> None:
    rng = np.random.default_rng(99)
    work = _png(Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)))
    resp = gateway.client.post(
        "/v1/protected", files={"file": ("w.png", work, "image/png")}, headers=gateway.auth("admin")
    )
    assert resp.status_code == 200
    refused = _edit(gateway, work)
    assert refused.status_code == 400
    assert "prescreen.protected_source" in [r["code"] for r in refused.json()["mamori"]["reasons"]]
    # a mirrored copy is caught too
    mirrored = _png(Image.open(io.BytesIO(work)).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert _edit(gateway, mirrored).status_code == 400


def _bomb() -> bytes:
    """A PNG whose header claims 30000x30000 pixels; tiny on the wire."""
    raw = b"\x89PNG\r\n\x1a\n"

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    ihdr = (30000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return raw + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_bad_uploads(gateway: Any, monkeypatch: Any) -> None:
    not_image = _edit(gateway, b"this is not an image")
    assert not_image.status_code == 400
    assert not_image.json()["error"]["code"] == "invalid_image"
    bomb = _edit(gateway, _bomb())
    assert bomb.status_code == 400
    assert bomb.json()["error"]["code"] == "image_too_large"
    missing = gateway.client.post(EDIT, data={"prompt": "x"}, headers=gateway.auth("requester"))
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_image"
    monkeypatch.setattr(gateway.services.settings, "max_upload_bytes", 2048)
    big = _edit(gateway, b"\0" * 10_000)
    assert big.status_code == 413
    for resp in (not_image, bomb, missing):
        records = [r for r in gateway.services.audit.for_request(resp.headers["x-request-id"])]
        assert len(records) == 1 and records[0].payload["status"] == "refused"


def test_edit_n_zero_is_refused(gateway: Any) -> None:
    resp = _edit(gateway, _source(), n="0")
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_n"


def test_chunked_bodies_over_the_limit_are_413(gateway: Any) -> None:
    limit = gateway.settings.max_upload_bytes

    def chunks():  # no Content-Length: the body arrives chunked
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    resp = gateway.client.post(
        "/v1/images/generations",
        content=chunks(),
        headers={**gateway.auth("requester"), "content-type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "upload_too_large"
    record = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert len(record) == 1 and record[0].payload["http_status"] == 413

    def multipart():
        yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(limit // 65536 + 2):
            yield b"\0" * 65536

    resp = gateway.client.post(
        EDIT,
        content=multipart(),
        headers={**gateway.auth("requester"), "content-type": "multipart/form-data; boundary=xyz"},
    )
    assert resp.status_code == 413


def test_an_edited_upload_is_recorded_as_the_parent_ingredient(gateway: Any) -> None:
    first = gateway.client.post(
        "/v1/images/generations",
        json={"prompt": "a teapot", "size": "64x64", "seed": 31},
        headers=gateway.auth("requester"),
    )
    assert first.status_code == 200
    signed_source = base64.b64decode(first.json()["data"][0]["b64_json"])
    source_manifest = first.json()["mamori"]["manifest_ids"][0]

    edited = _edit(gateway, signed_source)
    assert edited.status_code == 200, edited.text
    out = base64.b64decode(edited.json()["data"][0]["b64_json"])
    report = gateway.services.provenance.read(out, "image/png")
    assert report.validation_state == "Trusted"
    active = report.raw["manifests"][report.raw["active_manifest"]]
    parents = [i for i in active.get("ingredients", []) if i.get("relationship") == "parentOf"]
    assert len(parents) == 1
    assert parents[0].get("active_manifest") == source_manifest  # the source's own manifest travels along
    record = gateway.services.audit.for_request(edited.json()["mamori"]["request_id"])[0]
    recorded = record.payload["request"]["source_manifest"]
    assert recorded["state"] == "Trusted" and recorded["manifest_id"] == source_manifest
    assert recorded["mamori_decision"] == "allow" and "mamori.decision" in recorded["labels"]

    plain = _edit(gateway, _source())  # an unsigned upload: still the parent, with no manifest of its own
    record = gateway.services.audit.for_request(plain.json()["mamori"]["request_id"])[0]
    assert record.payload["request"]["source_manifest"]["manifest_id"] is None


# ---------------------------------------------------------------- the upload's own manifest (issue 7)


def _signed_source(gateway: Any, extra_assertions: list[dict[str, Any]], decision: str = "allow") -> bytes:
    """A PNG signed under the gateway's trust anchor with extra assertions (as another C2PA tool would)."""
    import json

    import c2pa

    from gateway.provenance import ensure_local_ca

    paths = ensure_local_ca(gateway.settings.pki_dir)
    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, paths.signer_chain.read_bytes(), paths.signer_key.read_bytes(), None
    )
    created = {
        "action": "c2pa.created",
        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
    }
    manifest = {
        "claim_generator_info": [{"name": "camera-app", "version": "1.0"}],
        "title": "source.png",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [created]}},
            {"label": "mamori.decision", "data": {"request_id": "req_other", "decision": decision}},
            *extra_assertions,
        ],
    }
    out = io.BytesIO()
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(json.dumps(manifest)) as builder:
        builder.sign(signer, "image/png", io.BytesIO(_source()), out)
    return out.getvalue()


def _refusal_codes(resp: Any) -> set[str]:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    return {r["code"] for r in body["mamori"]["reasons"]}


def test_the_policy_refuses_to_edit_uploads_whose_manifest_forbids_it(gateway: Any) -> None:
    plain = _signed_source(gateway, [])
    assert gateway.services.provenance.read(plain, "image/png").validation_state == "Trusted"
    assert _edit(gateway, plain).status_code == 200  # the control: a trusted, allowed source is edited

    blocked = _signed_source(gateway, [], decision="block")
    assert "prescreen.source_decision" in _refusal_codes(_edit(gateway, blocked))

    no_edit = _signed_source(gateway, [{"label": "mamori.no-edit", "data": {"reason": "contract"}}])
    assert "prescreen.source_no_edit" in _refusal_codes(_edit(gateway, no_edit))

    mining = {"entries": {"c2pa.ai_inference": {"use": "notAllowed"}, "c2pa.data_mining": {"use": "allowed"}}}
    no_ai = _signed_source(gateway, [{"label": "c2pa.training-mining", "data": mining}])
    resp = _edit(gateway, no_ai)
    assert "prescreen.source_no_ai_use" in _refusal_codes(resp)
    record = gateway.services.audit.for_request(resp.json()["mamori"]["request_id"])[0]
    assert record.payload["request"]["source_manifest"]["training_mining"]["c2pa.ai_inference"] == "notAllowed"
    assert record.payload["status"] == "refused"

    # changed after signing: a PNG text chunk inserted before IEND; the pixels still decode
    end = plain.rindex(b"IEND") - 4
    chunk = b"tEXt" + b"Comment\x00changed"
    tampered = (
        plain[:end] + len(chunk[4:]).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + plain[end:]
    )
    assert Image.open(io.BytesIO(tampered)).size == (64, 64)
    assert gateway.services.provenance.read(tampered, "image/png").validation_state == "Invalid"
    assert "prescreen.source_manifest_invalid" in _refusal_codes(_edit(gateway, tampered))


# ---------------------------------------------------------------- what the detectors see of the uploads


def _prescreen_roles(gateway: Any, resp: Any) -> set[tuple[str, str]]:
    record = gateway.services.audit.for_request(resp.headers["x-request-id"])[0].payload
    return {
        (f["detector"], f["evidence"]["role"])
        for f in record["findings"]
        if f["stage"] == "prescreen" and "role" in f["evidence"]
    }


def test_the_mask_is_screened_like_the_source(gateway: Any) -> None:
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (16, 16, 48, 48))
    resp = _edit(gateway, _source(), _png(mask))
    assert resp.status_code == 200, resp.text
    roles = _prescreen_roles(gateway, resp)
    assert {("image_safety", "edit_source"), ("image_safety", "mask")} <= roles


def test_a_mask_that_is_an_unsafe_picture_refuses_the_edit(gateway: Any, monkeypatch: Any) -> None:
    seen: list[Any] = []
    brightness_safety(gateway.services, monkeypatch, seen)
    dark = _png(Image.new("RGB", (64, 64), (15, 15, 15)))
    bright_picture = _png(Image.new("RGB", (64, 64), (250, 250, 250)))  # opaque: only its grey values mask
    resp = _edit(gateway, dark, bright_picture)
    assert resp.status_code == 400, resp.text
    assert "prescreen.unsafe_source" in {r["code"] for r in resp.json()["mamori"]["reasons"]}
    assert [item.role for item in seen] == ["edit_source", "mask"]
    assert seen[1].image.size == (64, 64)


def test_a_16_bit_source_is_edited_and_screened_as_its_picture(gateway: Any, monkeypatch: Any) -> None:
    seen: list[Any] = []
    brightness_safety(gateway.services, monkeypatch, seen)
    grey = np.full((64, 64), 100, dtype=np.uint16) * 257  # 16-bit mid grey: Pillow's RGB conversion made it white
    _edit(gateway, _png(Image.fromarray(grey)))
    source = next(item for item in seen if item.role == "edit_source")
    assert source.image.mode == "RGB"
    assert np.asarray(source.image).mean() == pytest.approx(100, abs=1)


def _animated(fmt: str = "GIF") -> bytes:
    frames = [Image.new("RGB", (64, 64), (v, v, v)) for v in (30, 220)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def test_an_animated_source_or_mask_is_refused(gateway: Any) -> None:
    for fmt in ("GIF", "PNG"):
        resp = _edit(gateway, _animated(fmt))
        assert resp.status_code == 400, resp.text
        assert (resp.json()["error"]["code"], resp.json()["error"]["param"]) == ("animated_image", "image")
        records = gateway.services.audit.for_request(resp.headers["x-request-id"])
        assert len(records) == 1 and records[0].payload["error"]["code"] == "animated_image"
    resp = _edit(gateway, _source(), _animated())
    assert resp.status_code == 400
    assert (resp.json()["error"]["code"], resp.json()["error"]["param"]) == ("animated_image", "mask")
