"""The template store: lifecycle rules and one audit record per change, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import gateway.template_store  # noqa: F401  (the table for create_all)
from audit.db import Base, create_db_engine, session_factory
from audit.store import AuditStore
from gateway.keys import Principal
from gateway.template_store import SelfApproval, TemplateNotFound, TemplateStateError, TemplateStore
from gateway.templates import TemplateSpec

AUTHOR = Principal(key_id="k_author", tenant="acme", role="admin", name="Aiko")
OFFICER = Principal(key_id="k_officer", tenant="acme", role="compliance", name="Ben")
SAME_PERSON = Principal(key_id="k_second_key", tenant="acme", role="compliance", name="aiko ")
SPEC = TemplateSpec.model_validate(
    {
        "name": "Narration",
        "modality": "speech",
        "pattern": "Introducing the {product}.",
        "slots": [{"name": "product", "type": "text", "max_length": 60}],
        "params": {"voice": "alloy", "seed_policy": "random"},
    }
)


class Env:
    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        Base.metadata.create_all(self.engine)
        self.sessions = session_factory(self.engine)
        self.audit = AuditStore(self.sessions)
        self.fail_audit = False

        def auditor(event_type: str, payload: dict[str, Any], tenant: str) -> None:
            if self.fail_audit:
                raise RuntimeError("audit down")
            self.audit.append(event_type, payload, tenant=tenant)

        self.store = TemplateStore(self.sessions, auditor)

    def records(self) -> list[Any]:
        return [r for r in self.audit.search(limit=100) if r.event_type.startswith("template.")][::-1]


@pytest.fixture
def env(db_url: str) -> Iterator[Env]:
    e = Env(db_url)
    yield e
    e.engine.dispose()


def test_lifecycle_and_audit(env: Env) -> None:
    s = env.store
    v1 = s.create(SPEC, tenant="acme", actor=AUTHOR)
    tid = v1.template_id
    assert (v1.version, v1.state) == (1, "draft") and s.approved(tid) is None
    with pytest.raises(TemplateStateError):
        s.approve(tid, actor=OFFICER)  # nothing submitted
    s.submit(tid, actor=AUTHOR)
    with pytest.raises(TemplateStateError):
        s.submit(tid, actor=AUTHOR)
    with pytest.raises(SelfApproval):
        s.approve(tid, actor=AUTHOR)
    with pytest.raises(SelfApproval):  # the same person under another key
        s.approve(tid, actor=SAME_PERSON)
    assert s.approve(tid, actor=OFFICER).state == "approved"
    assert s.approved(tid) is not None and s.approved(tid).version == 1  # type: ignore[union-attr]

    changed = SPEC.model_copy(update={"description": "v2"})
    v2 = s.edit(tid, changed, actor=AUTHOR)
    assert (v2.version, v2.state) == (2, "draft")
    again = s.edit(tid, changed.model_copy(update={"description": "v2b"}), actor=AUTHOR)
    assert (again.version, again.state) == (2, "draft")  # a draft is edited in place
    s.submit(tid, actor=AUTHOR)
    s.approve(tid, actor=OFFICER)
    assert [v.state for v in s.versions(tid)] == ["retired", "approved"]  # one usable version at a time
    s.retire(tid, actor=OFFICER)
    assert s.approved(tid) is None
    with pytest.raises(TemplateStateError):
        s.retire(tid, actor=OFFICER)
    with pytest.raises(TemplateNotFound):
        s.get("tpl_nope")

    records = env.records()
    assert [(r.event_type, r.payload["version"], r.payload["to_state"]) for r in records] == [
        ("template.create", 1, "draft"),
        ("template.submit", 1, "submitted"),
        ("template.approve", 1, "approved"),
        ("template.edit", 2, "draft"),
        ("template.edit", 2, "draft"),
        ("template.submit", 2, "submitted"),
        ("template.retire", 1, "retired"),
        ("template.approve", 2, "approved"),
        ("template.retire", 2, "retired"),
    ]
    assert all(r.tenant == "acme" for r in records)
    assert records[2].payload["actor"] == {"key_id": "k_officer", "role": "compliance", "tenant": "acme"}
    assert records[3].payload["digest"] != records[4].payload["digest"]


def test_a_change_whose_audit_record_fails_is_undone(env: Env) -> None:
    s = env.store
    tid = s.create(SPEC, tenant="acme", actor=AUTHOR).template_id
    s.submit(tid, actor=AUTHOR)
    env.fail_audit = True
    with pytest.raises(RuntimeError):
        s.approve(tid, actor=OFFICER)
    assert s.get(tid).state == "submitted" and s.approved(tid) is None
    with pytest.raises(RuntimeError):
        s.create(SPEC, tenant="acme", actor=AUTHOR, template_id="tpl_unaudited")
    with pytest.raises(TemplateNotFound):
        s.get("tpl_unaudited")
    env.fail_audit = False
    assert s.approve(tid, actor=OFFICER).state == "approved"


def test_listing_is_per_tenant(env: Env) -> None:
    s = env.store
    s.create(SPEC, tenant="acme", actor=AUTHOR)
    s.create(SPEC, tenant="globex", actor=Principal(key_id="k_g", tenant="globex", role="admin"))
    assert {v.tenant for v in s.list_versions(tenant="acme")} == {"acme"}
    assert len(s.list_versions(tenant=None)) == 2
    assert s.list_versions(tenant="acme", states=["approved"]) == []
