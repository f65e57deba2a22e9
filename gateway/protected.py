"""The registry of protected reference works, kept in the database; the hash index is rebuilt when it changes.

Registering is two steps so that a batch is all or nothing: `prepare` hashes one work and stores
nothing (a bad image fails here, before anything is kept), `store` writes a batch of prepared
works in one transaction. The callers (`POST /v1/protected`, `mamori protected add`) append the
`protected.add` audit record between the two, so no work is ever stored without a record.

A work is hashed as it is shown: where its file has transparency (a logo on a transparent
background) or 16-bit samples, which the callers' RGB conversion drops or clips, the file is read
again for hashing, and a work with transparency is registered on white and on black
(`detectors.copyright.work_hashes`). A work too uniform for the copyright detector ever to match
(PDQ quality below `min_quality`: a flat colour, a blank page, a 1 x 1 image) is refused with
`BadRequest` code "unhashable_image".
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL.Image import Image
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import BlobStore
from detectors.copyright import MIN_QUALITY, ProtectedIndex, UnhashableImage, WorkHash, work_hashes
from gateway.errors import BadRequest
from gateway.models import ProtectedHashRow, ProtectedWorkRow

_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1
_NAME_CHARS = 300  # the width of protected_works.name


def _to_signed(value: int) -> int:
    return value - _U64 if value > _I64_MAX else value


@dataclass(frozen=True)
class ProtectedWork:
    """A registered work. `hashes` counts whole hashes (a 256-bit PDQ hash once), as
    `ProtectedIndex.__len__` does."""

    id: str
    tenant: str | None
    name: str
    sha256: str
    hashes: int
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "protected_work",
            "name": self.name,
            "tenant": self.tenant,
            "sha256": self.sha256,
            "hashes": self.hashes,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class PreparedWork:
    """A work hashed and given its id, not stored yet (`ProtectedRegistry.store`). `data` is
    kept only when the registry keeps works' bytes (`blobs`)."""

    id: str
    tenant: str | None
    name: str
    sha256: str
    hashes: tuple[WorkHash, ...]
    data: bytes | None = None

    def summary(self) -> dict[str, Any]:
        """What the audit record says about the work (never its bytes)."""
        return {"id": self.id, "name": self.name, "tenant": self.tenant, "sha256": self.sha256}


def _as_shown(image: Image, data: bytes) -> Image:
    """The picture to hash: `image`, or, where the callers' RGB conversion lost what the file
    `data` holds (transparency, 16-bit samples), the file's own first frame decoded again. Only a
    file of the same size as `image` (which the caller decoded and checked) is used."""
    if image.has_transparency_data or image.mode not in ("RGB", "L"):
        return image  # the caller kept the file's own mode
    from PIL import Image as PILImage

    try:
        source = PILImage.open(io.BytesIO(data))
        if source.size != image.size or not (source.has_transparency_data or source.mode.startswith("I")):
            return image
        source.load()
    except Exception:  # the caller decoded it once; a second decode that fails keeps what it has
        return image
    return source


def _is_whole_hash(algorithm: Any) -> Any:
    """A SQL condition: the row is a whole hash or the first word of a wider one ("pdq:0")."""
    return or_(~algorithm.contains(":"), algorithm.like("%:0"))


class ProtectedRegistry:
    def __init__(
        self, sessions: sessionmaker[Session], blobs: BlobStore | None = None, min_quality: int = MIN_QUALITY
    ) -> None:
        self._sessions = sessions
        self.blobs = blobs  # when set, the work's bytes are kept so reviewers can see it side by side (issue 5)
        self.min_quality = min_quality  # works less structured than this are refused (the detector's min_quality)
        self._lock = threading.Lock()
        self._revision: tuple[int, int] | None = None
        self._index = ProtectedIndex.from_hashes([])

    def prepare(self, *, name: str, image: Image, data: bytes, tenant: str | None) -> PreparedWork:
        """Hash one work (every variant × every kind; a few hundred ms, twice that for a work
        with transparency); stores nothing. `image` is the decoded file `data`, possibly
        converted to RGB (`_as_shown` reads back what that dropped). A work too uniform to match
        raises `BadRequest` "unhashable_image"."""
        work_id = "pw_" + uuid.uuid4().hex
        try:
            hashes = tuple(work_hashes(work_id, tenant, _as_shown(image, data), min_quality=self.min_quality))
        except UnhashableImage as exc:
            raise BadRequest(str(exc), code="unhashable_image", param="file") from exc
        return PreparedWork(
            id=work_id,
            tenant=tenant,
            name=name[:_NAME_CHARS],
            sha256=hashlib.sha256(data).hexdigest(),
            hashes=hashes,
            data=data if self.blobs is not None else None,
        )

    def store(self, works: Sequence[PreparedWork]) -> list[ProtectedWork]:
        """Store prepared works in one transaction: all of them, or none."""
        if self.blobs is not None:
            for work in works:  # content-addressed: the blob's digest is the work's sha256; a blob alone is inert
                if work.data is not None:
                    self.blobs.put(work.data)
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            session.add_all(
                ProtectedWorkRow(id=w.id, tenant=w.tenant, name=w.name, sha256=w.sha256, created_at=now) for w in works
            )
            session.flush()
            session.add_all(
                ProtectedHashRow(
                    work_id=w.id,
                    tenant=w.tenant,
                    algorithm=h.algorithm,
                    variant=h.variant,
                    value=_to_signed(h.value),
                )
                for w in works
                for whole in w.hashes
                for h in whole.words()  # a 256-bit PDQ hash is stored as four BIGINT words ("pdq:0".."pdq:3")
            )
        return [ProtectedWork(w.id, w.tenant, w.name, w.sha256, len(w.hashes), now) for w in works]

    def add(self, *, name: str, image: Image, data: bytes, tenant: str | None) -> ProtectedWork:
        """Prepare and store one work, without an audit record (the callers that audit use
        `prepare` and `store` and append theirs in between)."""
        return self.store([self.prepare(name=name, image=image, data=data, tenant=tenant)])[0]

    def _counts(self, session: Session, work_ids: Sequence[str]) -> dict[str, int]:
        if not work_ids:
            return {}
        rows = session.execute(
            select(ProtectedHashRow.work_id, func.count())
            .where(ProtectedHashRow.work_id.in_(work_ids), _is_whole_hash(ProtectedHashRow.algorithm))
            .group_by(ProtectedHashRow.work_id)
        ).all()
        return {str(work_id): int(count) for work_id, count in rows}

    def get(self, work_id: str) -> ProtectedWork | None:
        with self._sessions() as session:
            row = session.get(ProtectedWorkRow, work_id)
            if row is None:
                return None
            count = self._counts(session, [work_id]).get(work_id, 0)
            return ProtectedWork(row.id, row.tenant, row.name, row.sha256, count, row.created_at)

    def list_works(
        self, *, tenant: str | None = None, every_tenant: bool = False, limit: int = 100, offset: int = 0
    ) -> tuple[list[ProtectedWork], int]:
        """A page of works, newest first, and how many there are in all. `every_tenant`: all
        works; else the works of `tenant` and those registered for every tenant (what its
        searches see)."""
        visible = or_(ProtectedWorkRow.tenant.is_(None), ProtectedWorkRow.tenant == tenant)
        with self._sessions() as session:
            query = select(ProtectedWorkRow)
            total_query = select(func.count()).select_from(ProtectedWorkRow)
            if not every_tenant:
                query, total_query = query.where(visible), total_query.where(visible)
            rows = session.scalars(
                query.order_by(ProtectedWorkRow.created_at.desc(), ProtectedWorkRow.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            counts = self._counts(session, [r.id for r in rows])
            works = [ProtectedWork(r.id, r.tenant, r.name, r.sha256, counts.get(r.id, 0), r.created_at) for r in rows]
            return works, int(session.scalar(total_query) or 0)

    def index(self) -> ProtectedIndex:
        """The current index, with each work's name; rebuilt when another process (or this one) added works."""
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
                names = {str(i): str(n) for i, n in session.execute(select(ProtectedWorkRow.id, ProtectedWorkRow.name))}
                columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
                self._index = ProtectedIndex.from_rows(
                    list(columns[0]), list(columns[1]), list(columns[2]), list(columns[3]),
                    np.array(columns[4], dtype=np.int64),  # the signed BIGINTs as stored; from_rows reads the bits
                    names=names,
                )  # fmt: skip
                self._revision = revision
                return self._index
