"""Template versions in the database and their lifecycle: draft → submitted → approved → retired.

One row per (template id, version). Editing a draft changes it in place; editing any other version
adds a new draft version (an approved version is never changed, so what compliance approved stays
what runs). Compliance approves a submitted version, never its own author; approving a version
retires the template's previously approved one, so at most one version is usable at a time.

Every change is one audit record (``template.<action>``: actor, template id, version, from/to state,
content digest). Changes happen in one transaction behind a write lock; the audit record is written
right after it commits, and if that write fails the change is undone (no record, no change) and the
error is raised. Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from audit.db import Base, UTCDateTime, write_lock
from gateway.keys import Principal
from gateway.templates import TemplateSpec

_LOCK = "mamori.templates.change"
Auditor = Callable[[str, dict[str, Any], str], None]  # (event type, payload, tenant)


class TemplateVersionRow(Base):
    """One version of one template."""

    __tablename__ = "template_versions"

    template_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    author_key_id: Mapped[str] = mapped_column(String(32))
    author_name: Mapped[str] = mapped_column(String(200), default="")
    approved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TemplateError(Exception):
    code = "template_error"


class TemplateNotFound(TemplateError):
    code = "template_not_found"


class TemplateStateError(TemplateError):
    code = "template_state"


class SelfApproval(TemplateError):
    code = "self_approval"


@dataclass(frozen=True)
class TemplateVersion:
    template_id: str
    version: int
    tenant: str
    state: str
    spec: TemplateSpec
    digest: str
    author_key_id: str
    approved_by: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.template_id,
            "version": self.version,
            "tenant": self.tenant,
            "state": self.state,
            "digest": self.digest,
            "author_key_id": self.author_key_id,
            "approved_by": self.approved_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            **self.spec.model_dump(mode="json"),
        }

    def policy_view(self) -> dict[str, Any]:
        """What the policy input carries as `request.template`."""
        return {
            "id": self.template_id,
            "version": self.version,
            "name": self.spec.name,
            "approved": self.state == "approved",
            "rules_out": list(self.spec.rules_out),
        }


@dataclass(frozen=True)
class _Change:
    action: str
    before: dict[str, Any] | None  # the row's columns before (None: the row is new)
    after: TemplateVersion
    from_state: str | None


def _version(row: TemplateVersionRow) -> TemplateVersion:
    return TemplateVersion(
        template_id=row.template_id,
        version=row.version,
        tenant=row.tenant,
        state=row.state,
        spec=TemplateSpec.model_validate(json.loads(row.spec_json)),
        digest=row.digest,
        author_key_id=row.author_key_id,
        approved_by=row.approved_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_COLUMNS = ("state", "spec_json", "digest", "name", "approved_by", "updated_at", "author_key_id", "author_name")


def _snapshot(row: TemplateVersionRow) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _COLUMNS}


class TemplateStore:
    def __init__(self, sessions: sessionmaker[Session], auditor: Auditor) -> None:
        self._sessions = sessions
        self._audit = auditor

    # ------------------------------------------------------------------ reading

    def list_versions(self, *, tenant: str | None, states: Iterable[str] | None = None) -> list[TemplateVersion]:
        """Every version (newest first per template), of one tenant or (None) of all tenants."""
        with self._sessions() as session:
            query = select(TemplateVersionRow)
            if tenant is not None:
                query = query.where(TemplateVersionRow.tenant == tenant)
            if states is not None:
                query = query.where(TemplateVersionRow.state.in_(list(states)))
            rows = session.scalars(
                query.order_by(
                    TemplateVersionRow.name, TemplateVersionRow.template_id, TemplateVersionRow.version.desc()
                )
            ).all()
            return [_version(r) for r in rows]

    def versions(self, template_id: str) -> list[TemplateVersion]:
        with self._sessions() as session:
            rows = session.scalars(
                select(TemplateVersionRow)
                .where(TemplateVersionRow.template_id == template_id)
                .order_by(TemplateVersionRow.version)
            ).all()
            return [_version(r) for r in rows]

    def get(self, template_id: str, version: int | None = None) -> TemplateVersion:
        """One version, or (None) the latest; TemplateNotFound if there is none."""
        found = self.versions(template_id)
        if version is not None:
            found = [v for v in found if v.version == version]
        if not found:
            raise TemplateNotFound(f"no template {template_id!r}" + (f" version {version}" if version else ""))
        return found[-1]

    def approved(self, template_id: str) -> TemplateVersion | None:
        """The usable version: the approved one, or None."""
        usable = [v for v in self.versions(template_id) if v.state == "approved"]
        return usable[-1] if usable else None

    # ------------------------------------------------------------------ changing

    def create(
        self, spec: TemplateSpec, *, tenant: str, actor: Principal, template_id: str | None = None
    ) -> TemplateVersion:
        """A new template, version 1, as a draft."""
        template_id = template_id or "tpl_" + uuid4().hex[:24]

        def change(session: Session, now: datetime) -> list[_Change]:
            if session.get(TemplateVersionRow, (template_id, 1)) is not None:
                raise TemplateStateError(f"template {template_id!r} exists already")
            row = self._new_row(template_id, 1, tenant, spec, actor, now)
            session.add(row)
            return [_Change("create", None, _version(row), None)]

        return self._apply(change, actor)[0].after

    def edit(self, template_id: str, spec: TemplateSpec, *, actor: Principal) -> TemplateVersion:
        """Change the latest draft in place, or add a new draft version after any other state."""

        def change(session: Session, now: datetime) -> list[_Change]:
            latest = self._latest(session, template_id)
            if latest.state == "draft":
                before = _snapshot(latest)
                latest.spec_json = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
                latest.digest, latest.name, latest.updated_at = spec.digest(), spec.name, now
                latest.author_key_id, latest.author_name = actor.key_id, actor.name or ""
                return [_Change("edit", before, _version(latest), "draft")]
            row = self._new_row(template_id, latest.version + 1, latest.tenant, spec, actor, now)
            session.add(row)
            return [_Change("edit", None, _version(row), None)]

        return self._apply(change, actor)[0].after

    def submit(self, template_id: str, *, actor: Principal) -> TemplateVersion:
        """The latest draft goes to compliance for approval."""

        def change(session: Session, now: datetime) -> list[_Change]:
            latest = self._latest(session, template_id)
            if latest.state != "draft":
                raise TemplateStateError(f"only a draft can be submitted; version {latest.version} is {latest.state}")
            before = _snapshot(latest)
            latest.state, latest.updated_at = "submitted", now
            return [_Change("submit", before, _version(latest), "draft")]

        return self._apply(change, actor)[0].after

    def approve(self, template_id: str, *, actor: Principal) -> TemplateVersion:
        """Approve the submitted version (not by its author); the previously approved version is retired."""

        def change(session: Session, now: datetime) -> list[_Change]:
            rows = self._rows(session, template_id)
            submitted = [r for r in rows if r.state == "submitted"]
            if not submitted:
                raise TemplateStateError("no version of this template is submitted for approval")
            target = submitted[-1]
            if target.author_key_id == actor.key_id or (
                actor.name
                and target.author_name
                and actor.name.strip().casefold() == target.author_name.strip().casefold()
            ):
                raise SelfApproval("a template's author cannot approve it; another compliance officer must")
            changes = []
            for old in rows:
                if old.state == "approved":
                    before = _snapshot(old)
                    old.state, old.updated_at = "retired", now
                    changes.append(_Change("retire", before, _version(old), "approved"))
            before = _snapshot(target)
            target.state, target.approved_by, target.updated_at = "approved", actor.key_id, now
            changes.append(_Change("approve", before, _version(target), "submitted"))
            return changes

        return self._apply(change, actor)[-1].after

    def retire(self, template_id: str, *, actor: Principal) -> list[TemplateVersion]:
        """Retire every version not yet retired: the template can no longer be used."""

        def change(session: Session, now: datetime) -> list[_Change]:
            changes = []
            for row in self._rows(session, template_id):
                if row.state != "retired":
                    before = _snapshot(row)
                    from_state = row.state
                    row.state, row.updated_at = "retired", now
                    changes.append(_Change("retire", before, _version(row), from_state))
            if not changes:
                raise TemplateStateError("every version of this template is already retired")
            return changes

        return [c.after for c in self._apply(change, actor)]

    # ------------------------------------------------------------------ plumbing

    def _new_row(
        self, template_id: str, version: int, tenant: str, spec: TemplateSpec, actor: Principal, now: datetime
    ) -> TemplateVersionRow:
        return TemplateVersionRow(
            template_id=template_id,
            version=version,
            tenant=tenant,
            name=spec.name,
            state="draft",
            spec_json=json.dumps(spec.model_dump(mode="json"), sort_keys=True),
            digest=spec.digest(),
            author_key_id=actor.key_id,
            author_name=actor.name or "",
            approved_by=None,
            created_at=now,
            updated_at=now,
        )

    def _rows(self, session: Session, template_id: str) -> list[TemplateVersionRow]:
        rows = list(
            session.scalars(
                select(TemplateVersionRow)
                .where(TemplateVersionRow.template_id == template_id)
                .order_by(TemplateVersionRow.version)
            ).all()
        )
        if not rows:
            raise TemplateNotFound(f"no template {template_id!r}")
        return rows

    def _latest(self, session: Session, template_id: str) -> TemplateVersionRow:
        return self._rows(session, template_id)[-1]

    def _apply(self, change: Callable[[Session, datetime], list[_Change]], actor: Principal) -> list[_Change]:
        now = datetime.now(UTC)
        with self._sessions() as session, session.begin():
            write_lock(session, _LOCK)
            changes = change(session, now)
        try:
            for c in changes:
                self._audit(f"template.{c.action}", _payload(c, actor), c.after.tenant)
        except Exception:
            self._undo(changes)  # no record, no change
            raise
        return changes

    def _undo(self, changes: list[_Change]) -> None:
        with self._sessions() as session, session.begin():
            write_lock(session, _LOCK)
            for c in reversed(changes):
                row = session.get(TemplateVersionRow, (c.after.template_id, c.after.version))
                if row is None:
                    continue
                if c.before is None:
                    session.delete(row)
                else:
                    for column, value in c.before.items():
                        setattr(row, column, value)


def _payload(change: _Change, actor: Principal) -> dict[str, Any]:
    v = change.after
    return {
        "action": change.action,
        "template_id": v.template_id,
        "version": v.version,
        "name": v.spec.name,
        "modality": v.spec.modality,
        "from_state": change.from_state,
        "to_state": v.state,
        "digest": v.digest,
        "actor": {"key_id": actor.key_id, "role": actor.role, "tenant": actor.tenant},
    }
