"""Request templates (issue 8): slot validation, the lifecycle through the API, governed fills, audit."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.templates import Slot, TemplateSpec, fill, validate_slots

SPEC: dict[str, Any] = {
    "name": "Catalog photo",
    "modality": "image",
    "pattern": "catalog photo of {product} on {background}, {count} items",
    "slots": [
        {"name": "product", "type": "text", "max_length": 20, "regex": "[A-Za-z {}._-]+"},
        {"name": "background", "type": "choice", "choices": ["white", "oak table"]},
        {"name": "count", "type": "integer", "minimum": 1, "maximum": 3, "default": 1},
    ],
    "params": {"size": "64x64", "steps": 2, "seed_policy": "per-request"},
}


# ------------------------------------------------------------------------------------------ pure functions


def test_slot_values_are_validated_with_codes_naming_the_slot() -> None:
    spec = TemplateSpec.model_validate(SPEC)
    ok, errors = validate_slots(spec, {"product": "blue kettle", "background": "white"})
    assert errors == [] and ok == {"product": "blue kettle", "background": "white", "count": 1}
    cases = {
        "slot_too_long": {"product": "k" * 21, "background": "white"},
        "slot_pattern_mismatch": {"product": "kettle; rm -rf", "background": "white"},
        "slot_not_a_choice": {"product": "kettle", "background": "marble"},
        "slot_out_of_range": {"product": "kettle", "background": "white", "count": 4},
        "slot_invalid_type": {"product": "kettle", "background": "white", "count": "two"},
        "slot_missing": {"background": "white"},
        "slot_unknown": {"product": "kettle", "background": "white", "colour": "red"},
        "slot_invalid_characters": {"product": "kettle\nIgnore", "background": "white"},
    }
    for code, values in cases.items():
        _, errors = validate_slots(spec, values)
        assert [e.code for e in errors] == [code], (code, errors)
    _, errors = validate_slots(spec, {"product": "kettle", "background": "white", "count": True})
    assert errors[0].code == "slot_invalid_type" and errors[0].slot == "count"


def test_filling_inserts_values_literally() -> None:
    spec = TemplateSpec.model_validate(SPEC)
    values, errors = validate_slots(spec, {"product": "{background.__doc__}", "background": "oak table"})
    assert not errors
    assert fill(spec, values) == "catalog photo of {background.__doc__} on oak table, 1 items"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"pattern": "photo of {product.__class__}"}, "bare slot name"),
        ({"pattern": "photo of {product!r} {background} {count}"}, "bare slot name"),
        ({"pattern": "photo of {product:>10} {background} {count}"}, "bare slot name"),
        ({"pattern": "photo of {} {product} {background} {count}"}, "bare slot name"),
        ({"pattern": "photo of {product}"}, "slots not used"),
        ({"pattern": "photo of {product} {background} {count} {extra}"}, "no slot for"),
        ({"params": {"seed_policy": "fixed"}}, "needs a seed"),
    ],
)
def test_malformed_templates_are_refused(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        TemplateSpec.model_validate({**SPEC, **change})


def test_slot_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="needs max_length"):
        Slot(name="a", type="text")
    with pytest.raises(ValueError, match="needs choices"):
        Slot(name="a", type="choice")
    with pytest.raises(ValueError, match="minimum must be at most maximum"):
        Slot(name="a", type="number", minimum=3, maximum=1)


# ------------------------------------------------------------------------------------------ the API


@pytest.fixture(scope="module")
def officers(gateway: Any) -> dict[str, dict[str, str]]:
    """Two compliance officers of tenant acme (the session gateway has none)."""
    out = {}
    for who in ("compliance", "compliance2"):
        _, secret = gateway.services.keys.create(role="compliance", tenant="acme", name=who)
        out[who] = {"Authorization": f"Bearer {secret}"}
    return out


def _approved(gateway: Any, officers: dict[str, dict[str, str]], spec: dict[str, Any]) -> str:
    c = gateway.client
    created = c.post("/v1/templates", json=spec, headers=gateway.auth("admin"))
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    assert c.post(f"/v1/templates/{tid}/submit", headers=gateway.auth("admin")).status_code == 200
    approved = c.post(f"/v1/templates/{tid}/approve", headers=officers["compliance"])
    assert approved.status_code == 200, approved.text
    return str(tid)


def _template_records(gateway: Any, tid: str) -> list[Any]:
    records = gateway.services.audit.search(tenant="acme", limit=1000)
    return sorted(
        (r for r in records if r.event_type.startswith("template.") and r.payload["template_id"] == tid),
        key=lambda r: r.seq,
    )


def _request_record(gateway: Any, request_id: str) -> dict[str, Any]:
    records = [r for r in gateway.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(records) == 1
    payload: dict[str, Any] = records[0].payload
    return payload


def test_lifecycle_only_approved_templates_are_used_and_every_change_is_audited(
    gateway: Any, officers: dict[str, dict[str, str]]
) -> None:
    c = gateway.client
    body = {"slots": {"product": "blue kettle", "background": "white"}, "seed": 11}
    assert c.post("/v1/templates", json=SPEC, headers=gateway.auth("requester")).status_code == 403
    created = c.post("/v1/templates", json=SPEC, headers=gateway.auth("admin"))
    assert created.status_code == 201 and created.json()["state"] == "draft"
    tid = created.json()["id"]

    # a draft cannot be used, nor seen by requesters
    draft_fill = c.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("requester"))
    assert draft_fill.status_code == 404 and draft_fill.json()["error"]["code"] == "template_not_found"
    assert c.get(f"/v1/templates/{tid}", headers=gateway.auth("requester")).status_code == 404
    # approving needs a submitted version; the author (admin may approve) cannot approve their own
    assert c.post(f"/v1/templates/{tid}/approve", headers=officers["compliance"]).status_code == 409
    assert c.post(f"/v1/templates/{tid}/submit", headers=gateway.auth("admin")).status_code == 200
    assert c.post(f"/v1/templates/{tid}/approve", headers=gateway.auth("requester")).status_code == 403
    own = c.post(f"/v1/templates/{tid}/approve", headers=gateway.auth("admin"))
    assert own.status_code == 403 and own.json()["error"]["code"] == "self_approval"
    assert c.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("requester")).status_code == 404
    approved = c.post(f"/v1/templates/{tid}/approve", headers=officers["compliance"])
    assert approved.status_code == 200 and approved.json()["state"] == "approved"

    listed = c.get("/v1/templates", headers=gateway.auth("requester")).json()["data"]
    assert any(t["id"] == tid and t["state"] == "approved" for t in listed)
    assert all(t["state"] == "approved" for t in listed)
    other = c.get("/v1/templates", headers=gateway.auth("other_tenant")).json()["data"]
    assert all(t["id"] != tid for t in other)
    assert c.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("other_tenant")).status_code == 404

    # editing an approved template makes a new draft version; the approved one stays in use
    edited = c.patch(f"/v1/templates/{tid}", json={"description": "v2"}, headers=gateway.auth("admin"))
    assert edited.status_code == 200 and edited.json()["version"] == 2 and edited.json()["state"] == "draft"
    shown = c.get(f"/v1/templates/{tid}", headers=gateway.auth("requester")).json()
    assert shown["version"] == 1 and shown["state"] == "approved"
    fill_ok = c.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("requester"))
    assert fill_ok.status_code == 200, fill_ok.text
    assert fill_ok.json()["mamori"]["template"] == {"id": tid, "version": 1, "name": "Catalog photo"}

    # retired: cannot be used any more
    retired = c.post(f"/v1/templates/{tid}/retire", headers=officers["compliance"])
    assert retired.status_code == 200
    gone = c.post(f"/v1/templates/{tid}/generate", json=body, headers=gateway.auth("requester"))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "template_not_found"
    assert _request_record(gateway, gone.headers["x-request-id"])["error"]["code"] == "template_not_found"

    records = _template_records(gateway, tid)
    steps = [(r.event_type, r.payload["version"], r.payload["from_state"], r.payload["to_state"]) for r in records]
    assert steps == [
        ("template.create", 1, None, "draft"),
        ("template.submit", 1, "draft", "submitted"),
        ("template.approve", 1, "submitted", "approved"),
        ("template.edit", 2, None, "draft"),
        ("template.retire", 1, "approved", "retired"),
        ("template.retire", 2, "draft", "retired"),
    ]
    assert records[2].payload["actor"]["role"] == "compliance"
    assert records[0].payload["actor"]["role"] == "admin"
    assert records[0].payload["digest"] == TemplateSpec.model_validate(SPEC).digest()
    assert records[3].payload["digest"] != records[0].payload["digest"]


def test_fill_gives_a_governed_signed_image_and_audits_the_template(
    gateway: Any, officers: dict[str, dict[str, str]]
) -> None:
    tid = _approved(gateway, officers, SPEC)
    resp = gateway.client.post(
        f"/v1/templates/{tid}/generate",
        json={"slots": {"product": "red teapot", "background": "oak table", "count": 2}, "seed": 5},
        headers=gateway.auth("requester"),
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["mamori"]["status"] == "released" and len(out["data"]) == 1
    png = base64.b64decode(out["data"][0]["b64_json"])
    report = gateway.services.provenance.read(png, "image/png")
    assert report.validation_state == "Trusted" and report.manifest_id in out["mamori"]["manifest_ids"]
    record = _request_record(gateway, out["mamori"]["request_id"])
    assert record["endpoint"] == "templates.generate" and record["status"] == "released"
    assert record["request"]["template"]["id"] == tid
    assert set(record["request"]["slots_sha256"]) == {"product", "background", "count"}
    assert "red teapot" not in str(record)  # slot values are hashed, never stored
    prescreen = next(d for d in record["decisions"] if d["stage"] == "prescreen")
    assert prescreen["input"]["request"]["template"] == {
        "id": tid,
        "version": 1,
        "name": "Catalog photo",
        "approved": True,
        "rules_out": [],
    }


def test_bad_slots_are_a_400_naming_the_slot_and_audited(gateway: Any, officers: dict[str, dict[str, str]]) -> None:
    tid = _approved(gateway, officers, SPEC)
    resp = gateway.client.post(
        f"/v1/templates/{tid}/generate",
        json={"slots": {"product": "k" * 30, "background": "white"}},
        headers=gateway.auth("requester"),
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "slot_too_long" and error["param"] == "slots.product"
    record = _request_record(gateway, resp.headers["x-request-id"])
    assert record["error"]["code"] == "slot_too_long" and record["status"] == "refused"
    fixed = gateway.client.post(
        f"/v1/templates/{tid}/generate",
        json={"slots": {"product": "kettle", "background": "white"}, "seed": -1},
        headers=gateway.auth("requester"),
    )
    assert fixed.status_code == 400 and fixed.json()["error"]["param"] == "seed"


def test_filled_slots_are_screened_and_a_refusal_is_audited(gateway: Any, officers: dict[str, dict[str, str]]) -> None:
    tid = _approved(gateway, officers, {**SPEC, "rules_out": ["protected_name"]})
    resp = gateway.client.post(
        f"/v1/templates/{tid}/generate",
        json={"slots": {"product": "forbidden-zebra", "background": "white"}},
        headers=gateway.auth("requester"),
    )
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert "prescreen.denied_term" in [r["code"] for r in body["mamori"]["reasons"]]
    record = _request_record(gateway, body["mamori"]["request_id"])
    assert record["decision"] == "block" and record["assets"] == []


def test_an_approved_template_waives_review_only_for_what_it_rules_out(
    gateway: Any, officers: dict[str, dict[str, str]]
) -> None:
    """The same output matches a protected work: held normally, released from a template ruling that out."""
    fixed = {**SPEC, "pattern": "waiver test {product} {background} {count}"}
    fixed["params"] = {"size": "64x64", "steps": 2, "seed_policy": "fixed", "seed": 8101}
    plain = _approved(gateway, officers, fixed)
    waiving = _approved(gateway, officers, {**fixed, "name": "Catalog (own works)", "rules_out": ["protected_work"]})
    slots = {"slots": {"product": "lamp", "background": "white"}}
    c = gateway.client
    first = c.post(f"/v1/templates/{plain}/generate", json=slots, headers=gateway.auth("requester"))
    assert first.status_code == 200, first.text
    png = base64.b64decode(first.json()["data"][0]["b64_json"])
    work = c.post("/v1/protected", files={"file": ("w.png", png, "image/png")}, headers=gateway.auth("admin"))
    assert work.status_code in (200, 201), work.text

    held = c.post(f"/v1/templates/{plain}/generate", json=slots, headers=gateway.auth("requester"))
    assert held.status_code == 202, held.text
    assert held.json()["mamori"]["status"] == "held" and held.json()["mamori"]["poll_url"]

    waived = c.post(f"/v1/templates/{waiving}/generate", json=slots, headers=gateway.auth("requester"))
    assert waived.status_code == 200, waived.text
    mamori = waived.json()["mamori"]
    assert mamori["status"] == "released"
    assert "template.review_waived" in [r["code"] for r in mamori["reasons"]]
    assert any(f["category"] == "protected_work" for f in mamori["findings"])  # still detected and recorded


def test_a_modality_whose_backend_is_off_is_a_clear_400(
    gateway: Any, officers: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {**SPEC, "modality": "3d", "params": {"seed_policy": "random"}}
    tid = _approved(gateway, officers, spec)
    monkeypatch.setattr(gateway.services, "mesh_generator", None)
    resp = gateway.client.post(
        f"/v1/templates/{tid}/generate",
        json={"slots": {"product": "kettle", "background": "white"}},
        headers=gateway.auth("requester"),
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "modality_unavailable"
    record = _request_record(gateway, resp.headers["x-request-id"])
    assert record["error"]["code"] == "modality_unavailable" and record["assets"] == []


def test_invalid_template_bodies_are_400(gateway: Any) -> None:
    bad = gateway.client.post("/v1/templates", json={**SPEC, "pattern": "{product.x}"}, headers=gateway.auth("admin"))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_template"
