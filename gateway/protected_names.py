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

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from detectors.protected_names import NameMatcher, ProtectedName, protected_name
from gateway.models import ProtectedNameRow

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
        self._revision: tuple[int, str] | None = None
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

    def add(self, entries: Sequence[ProtectedName]) -> list[RegisteredName]:
        """Store every entry in one transaction, or none (an id already registered for the same
        tenant raises `DuplicateName`)."""
        now = datetime.now(UTC)
        rows = [
            ProtectedNameRow(
                id="pn_" + uuid.uuid4().hex,
                key=e.id,
                tenant=e.tenant,
                name=e.name,
                kind=e.kind,
                aliases_json=json.dumps(list(e.aliases), ensure_ascii=False),
                created_at=now,
            )
            for e in entries
        ]
        with self._sessions.begin() as session:
            keys = [e.id for e in entries]
            for tenant in {e.tenant for e in entries}:
                clash = session.scalar(
                    select(ProtectedNameRow.key).where(
                        ProtectedNameRow.key.in_(keys),
                        ProtectedNameRow.tenant.is_(None) if tenant is None else ProtectedNameRow.tenant == tenant,
                    )
                )
                if clash is not None:
                    raise DuplicateName(f"the id {clash!r} is already registered")
            session.add_all(rows)
        return [_registered(r) for r in rows]

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
            return gone

    def remove_many(self, row_ids: Sequence[str]) -> None:
        """Take out names just added (when their audit record could not be written)."""
        with self._sessions.begin() as session:
            session.execute(delete(ProtectedNameRow).where(ProtectedNameRow.id.in_(list(row_ids))))

    def matcher(self) -> NameMatcher:
        """The compiled names of the whole table; rebuilt when another process (or this one) changed it."""
        with self._sessions() as session:
            count, newest, ids = session.execute(
                select(
                    func.count(ProtectedNameRow.id),
                    func.max(ProtectedNameRow.created_at),
                    func.max(ProtectedNameRow.id),
                )
            ).one()
            revision = (int(count or 0), f"{newest}|{ids}")
            with self._lock:
                if revision == self._revision:
                    return self._matcher
                rows = session.scalars(select(ProtectedNameRow)).all()
                self._matcher = NameMatcher([_registered(r).entry for r in rows])
                self._revision = revision
                return self._matcher
