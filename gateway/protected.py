"""The registry of protected reference works, kept in the database; the hash index is rebuilt when it changes."""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL.Image import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import BlobStore
from detectors.copyright import ProtectedIndex, work_hashes
from gateway.models import ProtectedHashRow, ProtectedWorkRow

_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def _to_signed(value: int) -> int:
    return value - _U64 if value > _I64_MAX else value


@dataclass(frozen=True)
class ProtectedWork:
    id: str
    tenant: str | None
    name: str
    sha256: str
    hashes: int


class ProtectedRegistry:
    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore | None = None) -> None:
        self._sessions = sessions
        self.blobs = blobs  # when set, the work's bytes are kept so reviewers can see it side by side (issue 5)
        self._lock = threading.Lock()
        self._revision: tuple[int, int] | None = None
        self._index = ProtectedIndex.from_hashes([])

    def add(self, *, name: str, image: Image, data: bytes, tenant: str | None) -> ProtectedWork:
        work_id = "pw_" + uuid.uuid4().hex
        hashes = work_hashes(work_id, tenant, image)
        digest = hashlib.sha256(data).hexdigest()
        if self.blobs is not None:
            self.blobs.put(data)  # content-addressed: the blob's digest is the work's sha256
        with self._sessions.begin() as session:
            session.add(
                ProtectedWorkRow(
                    id=work_id, tenant=tenant, name=name[:300], sha256=digest, created_at=datetime.now(UTC)
                )
            )
            session.flush()
            session.add_all(
                ProtectedHashRow(
                    work_id=work_id,
                    tenant=tenant,
                    algorithm=h.algorithm,
                    variant=h.variant,
                    value=_to_signed(h.value),
                )
                for whole in hashes
                for h in whole.words()  # a 256-bit PDQ hash is stored as four BIGINT words ("pdq:0".."pdq:3")
            )
        return ProtectedWork(id=work_id, tenant=tenant, name=name, sha256=digest, hashes=len(hashes))

    def get(self, work_id: str) -> ProtectedWork | None:
        with self._sessions() as session:
            row = session.get(ProtectedWorkRow, work_id)
            if row is None:
                return None
            count = session.scalar(
                select(func.count()).select_from(ProtectedHashRow).where(ProtectedHashRow.work_id == work_id)
            )
            return ProtectedWork(row.id, row.tenant, row.name, row.sha256, int(count or 0))

    def index(self) -> ProtectedIndex:
        """The current index; rebuilt when another process (or this one) added works."""
        with self._sessions() as session:
            count, top = session.execute(select(func.count(ProtectedHashRow.id), func.max(ProtectedHashRow.id))).one()
            revision = (int(count or 0), int(top or 0))
            with self._lock:
                if revision == self._revision:
                    return self._index
                rows = session.execute(
                    select(
                        ProtectedHashRow.work_id,
                        ProtectedHashRow.tenant,
                        ProtectedHashRow.algorithm,
                        ProtectedHashRow.variant,
                        ProtectedHashRow.value,
                    )
                ).all()
                import numpy as np

                columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
                self._index = ProtectedIndex.from_rows(
                    list(columns[0]), list(columns[1]), list(columns[2]), list(columns[3]),
                    np.array(columns[4], dtype=np.int64),  # the signed BIGINTs as stored; from_rows reads the bits
                )  # fmt: skip
                self._revision = revision
                return self._index
