"""The protected-names registry: API, CLI, audit, tenants, and the pre-screen reading it (issue 4)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


def _records(gateway: Any, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the event type, oldest first."""
    records = gateway.services.audit.search(event_type=event_type, limit=1000)
    return [r.payload for r in reversed(records)]


def _moderate(gateway: Any, text: str, who: str = "requester") -> dict[str, Any]:
    r = gateway.client.post("/v1/moderations", json={"input": text}, headers=gateway.auth(who))
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["mamori"]["results"][0]
    return result


def _codes(result: dict[str, Any]) -> set[str]:
    return {r["code"] for r in result["reasons"]}


@pytest.fixture
def names(gateway: Any) -> Iterator[dict[str, str]]:
    """A person and a brand with made-up names, registered for every tenant; removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    person, brand = f"Zorblax Quuxington{tag}", f"Frobnitzia{tag}"
    r = gateway.client.post(
        "/v1/protected-names",
        json={
            "names": [{"name": person, "kind": "person"}, {"name": brand, "kind": "brand", "aliases": ["FRBZ" + tag]}]
        },
        headers=gateway.auth("admin"),
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    ids = {f"{d['kind']}_id": d["registry_id"] for d in data}
    yield {"person": person, "brand": brand, "alias": "FRBZ" + tag, **ids}
    for d in data:
        gateway.client.delete(f"/v1/protected-names/{d['registry_id']}", headers=gateway.auth("admin"))


def test_registered_names_are_screened_by_the_policy(gateway: Any, names: dict[str, str]) -> None:
    # a protected person in a defamatory fake: blocked
    result = _moderate(gateway, f"a fake photo of {names['person']} being arrested for shoplifting")
    assert result["decision"] == "block", result
    assert "prescreen.protected_person_harm" in _codes(result)
    # the brand, through its alias, in leetspeak-free text: reviewed
    result = _moderate(gateway, f"a mug with the {names['alias']} logo")
    assert result["decision"] == "escalate", result
    assert "prescreen.protected_name" in _codes(result)
    found = [f for f in result["findings"] if f["detector"] == "protected_names"]
    assert found and found[0]["evidence"]["kind"] == "brand"


def test_list_get_and_roles(gateway: Any, names: dict[str, str]) -> None:
    listed = gateway.client.get("/v1/protected-names?limit=1000", headers=gateway.auth("auditor"))
    assert listed.status_code == 200, listed.text
    assert {names["person"], names["brand"]} <= {n["name"] for n in listed.json()["data"]}
    one = gateway.client.get(f"/v1/protected-names/{names['brand_id']}", headers=gateway.auth("supervisor"))
    assert one.status_code == 200 and one.json()["aliases"] == [names["alias"]]
    assert gateway.client.get("/v1/protected-names/pn_nope", headers=gateway.auth("admin")).status_code == 404
    assert gateway.client.get("/v1/protected-names", headers=gateway.auth("requester")).status_code == 403
    denied = gateway.client.post(
        "/v1/protected-names", json={"names": [{"name": "X Y", "kind": "person"}]}, headers=gateway.auth("auditor")
    )
    assert denied.status_code == 403


def test_a_bad_entry_registers_nothing_and_is_audited(gateway: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    before = len(_records(gateway, "protected_names.rejected"))
    body = {"names": [{"name": f"Good Name{tag}", "kind": "person"}, {"name": f"Bad{tag}", "kind": "planet"}]}
    r = gateway.client.post("/v1/protected-names", json=body, headers=gateway.auth("admin"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_name"
    assert "names[1]" in r.json()["error"]["message"]
    listed = gateway.client.get("/v1/protected-names?limit=1000", headers=gateway.auth("admin")).json()["data"]
    assert not any(tag in n["name"] for n in listed)  # the good entry was not stored either
    rejected = _records(gateway, "protected_names.rejected")
    assert len(rejected) == before + 1 and rejected[-1]["code"] == "invalid_name"
    for bad in ({"names": []}, {"names": "x"}, [1], {"names": [{"name": "A B", "kind": "person"}], "tenant": 5}):
        assert gateway.client.post("/v1/protected-names", json=bad, headers=gateway.auth("admin")).status_code == 400


def test_duplicate_ids_conflict(gateway: Any, names: dict[str, str]) -> None:
    existing = gateway.client.get(f"/v1/protected-names/{names['person_id']}", headers=gateway.auth("admin")).json()
    body = {"names": [{"name": "Some One Else", "kind": "person", "id": existing["id"]}]}
    r = gateway.client.post("/v1/protected-names", json=body, headers=gateway.auth("admin"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_name"


def test_tenant_names_apply_to_their_tenant_only(gateway: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    person = f"Quillon Varnack{tag}"
    r = gateway.client.post(
        "/v1/protected-names",
        json={"names": [{"name": person, "kind": "character"}], "tenant": "globex"},
        headers=gateway.auth("admin"),
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["data"]
    assert entry["tenant"] == "globex"
    try:
        assert "prescreen.protected_name" in _codes(_moderate(gateway, f"draw {person}", who="other_tenant"))
        assert "prescreen.protected_name" not in _codes(_moderate(gateway, f"draw {person}", who="requester"))
        # an acme reader does not see globex's names
        seen = gateway.client.get(f"/v1/protected-names/{entry['registry_id']}", headers=gateway.auth("auditor"))
        assert seen.status_code == 404
    finally:
        gateway.client.delete(f"/v1/protected-names/{entry['registry_id']}", headers=gateway.auth("admin"))


def test_delete_stops_screening_and_is_audited(gateway: Any, names: dict[str, str]) -> None:
    assert "prescreen.protected_name" in _codes(_moderate(gateway, f"a logo for {names['brand']}"))
    r = gateway.client.delete(f"/v1/protected-names/{names['brand_id']}", headers=gateway.auth("admin"))
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert "prescreen.protected_name" not in _codes(_moderate(gateway, f"a logo for {names['brand']}"))
    deleted = _records(gateway, "protected_names.delete")
    assert deleted and deleted[-1]["names"][0]["name"] == names["brand"]
    again = gateway.client.delete(f"/v1/protected-names/{names['brand_id']}", headers=gateway.auth("admin"))
    assert again.status_code == 404


def test_another_process_sees_new_names(gateway: Any, tmp_path: Path) -> None:
    from detectors.protected_names import protected_name
    from gateway.protected_names import ProtectedNameRegistry

    ours = ProtectedNameRegistry(gateway.services.sessions)  # a second process's registry on the same database
    tag = uuid.uuid4().hex[:6]
    size = len(ours.matcher())
    (added,) = gateway.services.protected_names.add([protected_name({"name": f"Nimbo Tarrix{tag}", "kind": "person"})])
    try:
        assert len(ours.matcher()) == size + 1
    finally:
        gateway.services.protected_names.delete(added.row_id)
    assert len(ours.matcher()) == size


def test_cli_import_list_remove(tmp_path: Path) -> None:
    from gateway.cli import app

    runner = CliRunner()
    good = tmp_path / "names.yaml"
    good.write_text(
        "names:\n  - {name: Jane Example, kind: person, aliases: [J. Example]}\n  - {name: Acme, kind: brand}\n"
    )
    out = runner.invoke(app, ["protected-names", "import", str(good), "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    listed = runner.invoke(app, ["protected-names", "list", "--data-dir", str(tmp_path)])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert {r["name"] for r in rows} == {"Jane Example", "Acme"}
    # a file with a bad entry, or an id already there, registers nothing
    bad = tmp_path / "bad.csv"
    bad.write_text("name,kind\nNew Person,person\nOops,planet\n")
    assert runner.invoke(app, ["protected-names", "import", str(bad), "--data-dir", str(tmp_path)]).exit_code == 2
    again = runner.invoke(app, ["protected-names", "import", str(good), "--data-dir", str(tmp_path)])
    assert again.exit_code == 2 and "already registered" in again.output
    listed = runner.invoke(app, ["protected-names", "list", "--data-dir", str(tmp_path)])
    assert len(listed.output.splitlines()) == 2
    acme = next(r for r in rows if r["name"] == "Acme")
    assert (
        runner.invoke(app, ["protected-names", "remove", acme["registry_id"], "--data-dir", str(tmp_path)]).exit_code
        == 0
    )
    listed = runner.invoke(app, ["protected-names", "list", "--data-dir", str(tmp_path)])
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == ["Jane Example"]


def test_the_revision_moves_with_every_change(gateway: Any) -> None:
    """Another process rebuilds its matcher after any change: also a delete plus an add whose
    clock runs behind (the same row count, and no newer time)."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from detectors.protected_names import protected_name
    from gateway.protected_names import ProtectedNameRegistry

    ours, theirs = gateway.services.protected_names, ProtectedNameRegistry(gateway.services.sessions)
    tag = uuid.uuid4().hex[:6]
    (alpha,) = ours.add([protected_name({"name": f"Alpha Person{tag}", "kind": "person"})])
    seen = {e.id for e in theirs.matcher().entries}
    assert alpha.entry.id in seen
    (charlie,) = ours.prepare([protected_name({"name": f"Charlie Person{tag}", "kind": "person"})])
    charlie = replace(charlie, created_at=datetime(2000, 1, 1, tzinfo=UTC))  # a host whose clock is behind
    ours.delete(alpha.row_id)
    ours.store([charlie])
    try:
        ids = {e.id for e in theirs.matcher().entries}
        assert charlie.entry.id in ids and alpha.entry.id not in ids
    finally:
        ours.delete(charlie.row_id)


def test_a_change_is_never_without_its_record(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = uuid.uuid4().hex[:6]
    r = gateway.client.post(
        "/v1/protected-names",
        json={"names": [{"name": f"Keep Me{tag}", "kind": "person"}]},
        headers=gateway.auth("admin"),
    )
    (kept,) = r.json()["data"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(gateway.services.audit, "append", broken)
    try:
        gone = gateway.client.delete(f"/v1/protected-names/{kept['registry_id']}", headers=gateway.auth("admin"))
        assert gone.status_code >= 500
        body = {"names": [{"name": f"Never Stored{tag}", "kind": "person"}]}
        added = gateway.client.post("/v1/protected-names", json=body, headers=gateway.auth("admin"))
        assert added.status_code >= 500
    finally:
        monkeypatch.undo()
    # the removal did not happen, and the name that could not be recorded was not stored
    assert (
        gateway.client.get(f"/v1/protected-names/{kept['registry_id']}", headers=gateway.auth("admin")).status_code
        == 200
    )
    listed = gateway.client.get("/v1/protected-names?limit=1000", headers=gateway.auth("admin")).json()["data"]
    assert not any(n["name"] == f"Never Stored{tag}" for n in listed)
    gateway.client.delete(f"/v1/protected-names/{kept['registry_id']}", headers=gateway.auth("admin"))


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "Aa Bb", "kind": "person", "aliases": 5},
        {"name": "Aa Bb", "kind": "person", "aliases": True},
        {"name": {"x": 1}, "kind": "person"},
        {"name": "Aa Bb", "kind": "person", "aliases": ["x"] * 65},
    ],
)
def test_malformed_entries_are_audited_400s(gateway: Any, entry: dict[str, Any]) -> None:
    before = len(_records(gateway, "protected_names.rejected"))
    r = gateway.client.post("/v1/protected-names", json={"names": [entry]}, headers=gateway.auth("admin"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_name", r.text
    assert len(_records(gateway, "protected_names.rejected")) == before + 1


def test_a_tenant_compliance_officer_works_within_the_tenant(gateway: Any, names: dict[str, str]) -> None:
    _, key = gateway.services.keys.create(role="compliance", tenant="acme", name="compliance-acme")
    auth = {"Authorization": f"Bearer {key}"}
    tag = uuid.uuid4().hex[:6]
    r = gateway.client.post(
        "/v1/protected-names",
        json={"names": [{"name": f"Acme Only{tag}", "kind": "brand"}], "tenant": "globex"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["data"]
    assert entry["tenant"] == "acme"  # a compliance officer registers for the own tenant only
    # names that protect every tenant are not theirs to remove
    refused = gateway.client.delete(f"/v1/protected-names/{names['person_id']}", headers=auth)
    assert refused.status_code == 404
    assert gateway.client.get(f"/v1/protected-names/{names['person_id']}", headers=auth).status_code == 200
    assert gateway.client.delete(f"/v1/protected-names/{entry['registry_id']}", headers=auth).status_code == 200


def test_cli_refuses_malformed_yaml(tmp_path: Path) -> None:
    from gateway.cli import app

    bad = tmp_path / "names.yaml"
    bad.write_text("names: [ {name: Unclosed, kind: person\n")
    out = CliRunner().invoke(app, ["protected-names", "import", str(bad), "--data-dir", str(tmp_path)])
    assert out.exit_code == 2 and "nothing was registered" in out.output


def test_a_refused_administrative_call_is_audited(gateway: Any) -> None:
    before = len(_records(gateway, "access.denied"))
    r = gateway.client.post(
        "/v1/protected-names", json={"names": [{"name": "X Y", "kind": "person"}]}, headers=gateway.auth("requester")
    )
    assert r.status_code == 403
    denied = _records(gateway, "access.denied")
    assert len(denied) == before + 1
    assert denied[-1]["endpoint"] == "protected.write" and denied[-1]["by"]["role"] == "requester"
    assert "X Y" not in json.dumps(denied[-1])  # the refused body is not recorded
