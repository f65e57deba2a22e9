"""/v1/protected: registration is all or nothing and always audited; works can be read back by
the id a copyright finding names; a moderation's copyright finding names the work."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from gateway.models import ProtectedWorkRow

TENANT = "protected-zeta"  # works registered here are seen by this tenant's keys only
OTHER = "protected-omega"


def _png(seed: int, size: int = 128) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def keys(gateway: Any) -> dict[str, dict[str, str]]:
    out = {}
    for who, role, tenant in [
        ("compliance", "compliance", TENANT),
        ("compliance_other", "compliance", OTHER),
        ("requester", "requester", TENANT),
        ("supervisor", "supervisor", TENANT),
        ("auditor", "auditor", TENANT),
    ]:
        _, secret = gateway.services.keys.create(role=role, tenant=tenant, name=f"protected-api {who}")
        out[who] = {"Authorization": f"Bearer {secret}"}
    for who in ("admin", "requester", "supervisor", "auditor"):
        out[f"acme_{who}"] = gateway.auth(who)
    return out


def _stored(gateway: Any) -> int:
    with gateway.services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ProtectedWorkRow)) or 0)


def _records(gateway: Any, event: str, request_id: str) -> list[Any]:
    return [r for r in gateway.services.audit.search(event_type=event, limit=1000) if r.request_id == request_id]


def _post(gateway: Any, headers: dict[str, str], *files: tuple[str, bytes, str]) -> Any:
    parts = [("file", f) for f in files]
    return gateway.client.post("/v1/protected", files=parts, headers=headers)


@pytest.fixture(scope="module")
def registered(gateway: Any, keys: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    r = _post(
        gateway,
        keys["compliance"],
        ("Kegon Falls.png", _png(1), "image/png"),
        ("Senjogahara.png", _png(2), "image/png"),
    )
    assert r.status_code == 200, r.text
    works: list[dict[str, Any]] = r.json()["data"]
    assert [w["name"] for w in works] == ["Kegon Falls.png", "Senjogahara.png"]
    assert all(w["tenant"] == TENANT and w["id"].startswith("pw_") for w in works)
    (record,) = _records(gateway, "protected.add", r.headers["x-request-id"])
    assert [w["id"] for w in record.payload["works"]] == [w["id"] for w in works]
    return works


def test_get_one_work_by_id(gateway: Any, keys: dict[str, dict[str, str]], registered: list[dict[str, Any]]) -> None:
    work = registered[0]
    for who in ("compliance", "supervisor", "auditor", "acme_admin"):
        r = gateway.client.get(f"/v1/protected/{work['id']}", headers=keys[who])
        assert r.status_code == 200, (who, r.text)
        body = r.json()
        assert body["id"] == work["id"] and body["name"] == "Kegon Falls.png" and body["tenant"] == TENANT
        assert body["object"] == "protected_work" and body["sha256"] == work["sha256"]
        assert body["hashes"] == work["hashes"] > 0 and body["created_at"]


def test_get_unknown_or_other_tenants_work_is_404(
    gateway: Any, keys: dict[str, dict[str, str]], registered: list[dict[str, Any]]
) -> None:
    r = gateway.client.get("/v1/protected/pw_doesnotexist", headers=keys["compliance"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "protected_work_not_found"
    for who in ("compliance_other", "acme_supervisor", "acme_auditor"):
        r = gateway.client.get(f"/v1/protected/{registered[0]['id']}", headers=keys[who])
        assert r.status_code == 404 and r.json()["error"]["code"] == "protected_work_not_found", who


def test_reading_needs_a_key_and_a_role(
    gateway: Any, keys: dict[str, dict[str, str]], registered: list[dict[str, Any]]
) -> None:
    url = f"/v1/protected/{registered[0]['id']}"
    assert gateway.client.get(url).status_code == 401
    assert gateway.client.get("/v1/protected").status_code == 401
    for who in ("requester", "acme_requester"):
        r = gateway.client.get(url, headers=keys[who])
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", who
        assert gateway.client.get("/v1/protected", headers=keys[who]).status_code == 403


def test_list_is_scoped_and_paginated(
    gateway: Any, keys: dict[str, dict[str, str]], registered: list[dict[str, Any]]
) -> None:
    ids = {w["id"] for w in registered}
    mine = gateway.client.get("/v1/protected", headers=keys["compliance"]).json()
    assert mine["object"] == "list" and ids <= {w["id"] for w in mine["data"]}
    assert all(w["tenant"] in (None, TENANT) for w in mine["data"])
    other = gateway.client.get("/v1/protected", headers=keys["compliance_other"]).json()
    assert not ids & {w["id"] for w in other["data"]}
    admin = gateway.client.get("/v1/protected?limit=1000", headers=keys["acme_admin"]).json()
    assert ids <= {w["id"] for w in admin["data"]}

    assert mine["total"] == len(mine["data"]) and (mine["limit"], mine["offset"]) == (100, 0)
    seen: list[str] = []
    for offset in range(mine["total"]):
        page = gateway.client.get("/v1/protected", params={"limit": 1, "offset": offset}, headers=keys["supervisor"])
        assert page.status_code == 200, page.text
        seen += [w["id"] for w in page.json()["data"]]
    assert seen == [w["id"] for w in mine["data"]]  # newest first, in a stable order
    past = gateway.client.get("/v1/protected", params={"offset": mine["total"]}, headers=keys["compliance"]).json()
    assert past["data"] == [] and past["total"] == mine["total"]
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        r = gateway.client.get("/v1/protected", params=params, headers=keys["compliance"])
        assert r.status_code == 400, params


def test_mixed_upload_is_rejected_whole_and_audited(gateway: Any, keys: dict[str, dict[str, str]]) -> None:
    """A good PNG and a text file: 400 naming the bad part, nothing stored, the rejection audited."""
    before = _stored(gateway)
    r = _post(
        gateway,
        keys["compliance"],
        ("good.png", _png(3), "image/png"),
        ("notes.txt", b"not an image", "text/plain"),
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_image" and error["param"] == "file"
    assert "notes.txt" in error["message"] and "nothing was stored" in error["message"]
    (bad,) = r.json()["mamori"]["rejected"]
    assert (bad["part"], bad["filename"], bad["code"]) == (1, "notes.txt", "invalid_image")
    assert _stored(gateway) == before
    request_id = r.headers["x-request-id"]
    (record,) = _records(gateway, "protected.rejected", request_id)
    assert record.payload["code"] == "invalid_image" and record.payload["rejected"][0]["part"] == 1
    assert record.payload["by"]["role"] == "compliance" and record.tenant == TENANT
    assert _records(gateway, "protected.add", request_id) == []


def test_missing_file_is_audited(gateway: Any, keys: dict[str, dict[str, str]]) -> None:
    r = gateway.client.post("/v1/protected", data={"tenant": "x"}, headers=keys["compliance"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_file"
    (record,) = _records(gateway, "protected.rejected", r.headers["x-request-id"])
    assert record.payload["code"] == "missing_file"


def test_a_failed_store_stores_nothing_and_is_audited(
    gateway: Any, keys: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(works: Any) -> Any:
        raise RuntimeError("database gone")

    monkeypatch.setattr(gateway.services.protected, "store", broken)
    before = _stored(gateway)
    r = _post(gateway, keys["compliance"], ("a.png", _png(4), "image/png"), ("b.png", _png(5), "image/png"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "protected_store_failed"
    assert _stored(gateway) == before
    request_id = r.headers["x-request-id"]
    (added,) = _records(gateway, "protected.add", request_id)
    (failed,) = _records(gateway, "protected.add_failed", request_id)
    assert failed.payload["works"] == [w["id"] for w in added.payload["works"]]
    assert failed.payload["error"] == "RuntimeError"


def test_moderation_finding_names_the_work(
    gateway: Any, keys: dict[str, dict[str, str]], registered: list[dict[str, Any]]
) -> None:
    """The check-only moderation API: a copyright match names the protected work (its registered
    name and id) and the distance; the id can be looked up."""
    url = "data:image/png;base64," + base64.b64encode(_png(1)).decode()
    body = {"input": [{"type": "image_url", "image_url": {"url": url}}]}
    r = gateway.client.post("/v1/moderations", json=body, headers=keys["requester"])
    assert r.status_code == 200, r.text
    (result,) = r.json()["mamori"]["results"]
    (finding,) = [f for f in result["findings"] if f["detector"] == "copyright"]
    evidence = finding["evidence"]
    assert evidence["work_id"] == registered[0]["id"]
    assert evidence["work_name"] == "Kegon Falls.png"
    assert evidence["distance"] == 0 and finding["score"] == 1
    assert "Kegon Falls.png" in finding["explanation"] and registered[0]["id"] in finding["explanation"]
    # another tenant's requester does not see this tenant's work
    other = gateway.client.post("/v1/moderations", json=body, headers=keys["acme_requester"])
    assert other.status_code == 200
    assert not [f for f in other.json()["mamori"]["results"][0]["findings"] if f["detector"] == "copyright"]


def test_a_part_that_cannot_be_hashed_rejects_them_all(
    gateway: Any, keys: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = gateway.services.protected
    real = registry.prepare
    calls: list[str] = []

    def second_fails(**kwargs: Any) -> Any:
        calls.append(kwargs["name"])
        if len(calls) == 2:
            raise ValueError("degenerate")
        return real(**kwargs)

    monkeypatch.setattr(registry, "prepare", second_fails)
    before = _stored(gateway)
    r = _post(gateway, keys["compliance"], ("a.png", _png(6), "image/png"), ("b.png", _png(7), "image/png"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "unhashable_image"
    assert r.json()["mamori"]["rejected"][0]["part"] == 1
    assert _stored(gateway) == before
    request_id = r.headers["x-request-id"]
    assert len(_records(gateway, "protected.rejected", request_id)) == 1
    assert _records(gateway, "protected.add", request_id) == []


def _encode(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _transparent_logo(seed: int) -> Image.Image:
    """A picture inside a circle on a transparent background (black under the transparent pixels)."""
    from PIL import ImageDraw

    alpha = Image.new("L", (192, 192), 0)
    ImageDraw.Draw(alpha).ellipse((32, 32, 160, 160), fill=255)
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    logo = Image.fromarray(pixels, "RGB").resize((192, 192), Image.Resampling.BICUBIC).convert("RGBA")
    logo.putalpha(alpha)
    arr = np.asarray(logo).copy()
    arr[arr[..., 3] == 0, :3] = 0
    return Image.fromarray(arr, "RGBA")


def _copyright_findings(gateway: Any, headers: dict[str, str], image: Image.Image) -> list[dict[str, Any]]:
    url = "data:image/png;base64," + base64.b64encode(_encode(image)).decode()
    body = {"input": [{"type": "image_url", "image_url": {"url": url}}]}
    r = gateway.client.post("/v1/moderations", json=body, headers=headers)
    assert r.status_code == 200, r.text
    (result,) = r.json()["mamori"]["results"]
    return [f for f in result["findings"] if f["detector"] == "copyright"]


def test_a_transparent_logo_matches_on_white_and_black(gateway: Any, keys: dict[str, dict[str, str]]) -> None:
    """The route hands the registry the image converted to RGB (transparent pixels black); the
    registry reads the transparency back from the file and stores the work on white and black."""
    logo = _transparent_logo(11)
    r = _post(gateway, keys["compliance"], ("logo.png", _encode(logo), "image/png"))
    assert r.status_code == 200, r.text
    (work,) = r.json()["data"]
    for colour, variant in (("white", "original"), ("black", "black_original")):
        shown = Image.new("RGB", logo.size, colour)
        shown.paste(logo, mask=logo.getchannel("A"))
        (finding,) = _copyright_findings(gateway, keys["requester"], shown)
        assert finding["evidence"]["work_id"] == work["id"], colour
        assert finding["evidence"]["variant"] == variant and finding["score"] == 1


def test_a_16_bit_png_is_hashed_as_shown(gateway: Any, keys: dict[str, dict[str, str]]) -> None:
    """Pillow's RGB conversion clips 16-bit samples (nearly all white); the registry hashes the
    file's own samples, so the picture shown in 8 bits matches."""
    grey = np.asarray(Image.open(io.BytesIO(_png(12))).convert("L").resize((96, 96)).resize((192, 192)))
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    r = _post(gateway, keys["compliance"], ("deep.png", _encode(sixteen), "image/png"))
    assert r.status_code == 200, r.text
    (work,) = r.json()["data"]
    (finding,) = _copyright_findings(gateway, keys["requester"], Image.fromarray(grey).convert("RGB"))
    assert finding["evidence"]["work_id"] == work["id"] and finding["score"] >= 0.95


@pytest.mark.parametrize("size", [(256, 256), (1, 1)], ids=["flat", "one-pixel"])
def test_an_unhashable_work_is_refused(gateway: Any, keys: dict[str, dict[str, str]], size: tuple[int, int]) -> None:
    """A work the detector could never match (PDQ quality below its minimum) is refused with
    "unhashable_image": nothing stored, the rejection audited."""
    before = _stored(gateway)
    flat = _encode(Image.new("RGB", size, (90, 120, 150)))
    r = _post(gateway, keys["compliance"], ("good.png", _png(13), "image/png"), ("flat.png", flat, "image/png"))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "unhashable_image" and "flat.png" in error["message"]
    (bad,) = r.json()["mamori"]["rejected"]
    assert (bad["part"], bad["code"]) == (1, "unhashable_image") and "too uniform" in bad["message"]
    assert _stored(gateway) == before
    (record,) = _records(gateway, "protected.rejected", r.headers["x-request-id"])
    assert record.payload["code"] == "unhashable_image"


def test_prepare_refuses_with_a_coded_error(gateway: Any) -> None:
    from gateway.errors import BadRequest

    flat = Image.new("RGB", (64, 64), (5, 5, 5))
    with pytest.raises(BadRequest) as caught:
        gateway.services.protected.prepare(name="flat.png", image=flat, data=_encode(flat), tenant=TENANT)
    assert caught.value.code == "unhashable_image"


def test_registration_uses_the_detector_s_min_quality(tmp_path: Any) -> None:
    """A work is refused where the copyright detector, as configured, would never match it."""
    from gateway.bootstrap import registration_min_quality
    from gateway.settings import Settings

    strict = Settings(data_dir=tmp_path, detector_options={"copyright": {"min_quality": 60}})
    assert registration_min_quality(strict) == 60
    assert registration_min_quality(Settings(data_dir=tmp_path)) == 10
