"""The registry of protected people, brands and characters, kept in the database (issue 4).

Admins and compliance add names through `POST /v1/protected-names` or `mamori protected-names
import FILE`; the pre-screen's `protected_names` detector reads them per request from the
detection context (`matcher()`), so a name added through one gateway process is screened by every
process on its next request. The compiled matcher is rebuilt only when the table changed.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from detectors.protected_names import NameMatcher, ProtectedName, protected_name
from gateway.models import ProtectedNameRow, ProtectedNamesRevisionRow

__all__ = ["DuplicateName", "ProtectedNameRegistry", "RegisteredName"]

MAX_NAMES_PER_CALL = 1000


class DuplicateName(ValueError):
    """An entry's id is already registered for the same tenant (or twice in one call)."""


@dataclass(frozen=True)
class RegisteredName:
    row_id: str
    entry: ProtectedName
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry.id,
            "registry_id": self.row_id,
            "name": self.entry.name,
            "kind": self.entry.kind,
            "aliases": list(self.entry.aliases),
            "tenant": self.entry.tenant,
            "created_at": self.created_at.isoformat(),
        }


def _registered(row: ProtectedNameRow) -> RegisteredName:
    aliases = tuple(str(a) for a in json.loads(row.aliases_json))
    return RegisteredName(row.id, ProtectedName(row.key, row.name, row.kind, aliases, row.tenant), row.created_at)


class ProtectedNameRegistry:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._matcher = NameMatcher([])

    @staticmethod
    def parse(raw: Sequence[Mapping[str, Any]], tenant: str | None) -> list[ProtectedName]:
        """Validate entries (`{name, kind, aliases, id}`); ValueError names the first bad one."""
        if not raw:
            raise ValueError("send at least one name")
        if len(raw) > MAX_NAMES_PER_CALL:
            raise ValueError(f"at most {MAX_NAMES_PER_CALL} names per call")
        entries = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise ValueError(f"names[{i}] must be an object with name and kind")
            entry = protected_name(item, f"names[{i}]", tenant)
            if len(entry.name) > 300 or len(entry.id) > 120 or any(len(a) > 300 for a in entry.aliases):
                raise ValueError(f"names[{i}]: a name or alias is over 300 characters, or the id over 120")
            entries.append(entry)
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise DuplicateName(f"the id {entry.id!r} appears twice")
            seen.add(entry.id)
        return entries

    @staticmethod
    def prepare(entries: Sequence[ProtectedName]) -> list[RegisteredName]:
        """Registry ids and times for entries about to be stored (nothing is written), so that the
        audit record can name them before they are stored."""
        now = datetime.now(UTC)
        return [RegisteredName("pn_" + uuid.uuid4().hex, e, now) for e in entries]

    def clash(self, entries: Sequence[ProtectedName]) -> str | None:
        """The first entry id already registered for the same tenant, or None."""
        with self._sessions() as session:
            return self._clash(session, entries)

    @staticmethod
    def _clash(session: Session, entries: Sequence[ProtectedName]) -> str | None:
        keys = [e.id for e in entries]
        for tenant in {e.tenant for e in entries}:
            same = ProtectedNameRow.tenant.is_(None) if tenant is None else ProtectedNameRow.tenant == tenant
            clash = session.scalar(select(ProtectedNameRow.key).where(ProtectedNameRow.key.in_(keys), same))
            if clash is not None:
                return str(clash)
        return None

    def store(self, prepared: Sequence[RegisteredName]) -> None:
        """Store every prepared name in one transaction, or none (`DuplicateName` when an id is
        already registered for the same tenant)."""
        with self._sessions.begin() as session:
            clash = self._clash(session, [p.entry for p in prepared])
            if clash is not None:
                raise DuplicateName(f"the id {clash!r} is already registered")
            session.add_all(
                ProtectedNameRow(
                    id=p.row_id,
                    key=p.entry.id,
                    tenant=p.entry.tenant,
                    name=p.entry.name,
                    kind=p.entry.kind,
                    aliases_json=json.dumps(list(p.entry.aliases), ensure_ascii=False),
                    created_at=p.created_at,
                )
                for p in prepared
            )
            _bump(session)

    def add(self, entries: Sequence[ProtectedName]) -> list[RegisteredName]:
        """`prepare` and `store` in one call (for callers that audit afterwards, such as tests)."""
        prepared = self.prepare(entries)
        self.store(prepared)
        return prepared

    def list(self, *, tenant: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[RegisteredName], int]:
        """(a page of names, the total); with `tenant`, that tenant's names and those of every tenant."""
        where = [] if tenant is None else [(ProtectedNameRow.tenant == tenant) | ProtectedNameRow.tenant.is_(None)]
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(ProtectedNameRow).where(*where)) or 0
            rows = session.scalars(
                select(ProtectedNameRow)
                .where(*where)
                .order_by(ProtectedNameRow.created_at, ProtectedNameRow.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_registered(r) for r in rows], int(total)

    def get(self, row_id: str) -> RegisteredName | None:
        with self._sessions() as session:
            row = session.get(ProtectedNameRow, row_id)
            return None if row is None else _registered(row)

    def delete(self, row_id: str) -> RegisteredName | None:
        """Remove one name; what was removed, or None when there was no such name."""
        with self._sessions.begin() as session:
            row = session.get(ProtectedNameRow, row_id)
            if row is None:
                return None
            gone = _registered(row)
            session.delete(row)
            _bump(session)
            return gone

    def matcher(self) -> NameMatcher:
        """The compiled names of the whole table; rebuilt when the table's revision moved (every
        change bumps it in its own transaction, so another process's change is never missed)."""
        with self._sessions() as session:
            revision = int(session.scalar(select(ProtectedNamesRevisionRow.revision)) or 0)
            with self._lock:
                if revision == self._revision:
                    return self._matcher
                rows = session.scalars(select(ProtectedNameRow)).all()
                self._matcher = NameMatcher([_registered(r).entry for r in rows])
                self._revision = revision
                return self._matcher


def _bump(session: Session) -> None:
    """Move the registry's revision on, inside the caller's transaction."""
    moved = session.execute(
        update(ProtectedNamesRevisionRow)
        .where(ProtectedNamesRevisionRow.id == 1)
        .values(revision=ProtectedNamesRevisionRow.revision + 1)
    )
    if not getattr(moved, "rowcount", 0):
        session.add(ProtectedNamesRevisionRow(id=1, revision=1))
