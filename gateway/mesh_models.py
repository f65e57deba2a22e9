"""The state of asynchronous 3D jobs (`/v1/3d`, issue 7), on the shared `audit.db.Base`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.db import Base, UTCDateTime


class MeshRow(Base):
    """One 3D job: queued → in_progress → completed | failed.

    The GLB and its sidecar C2PA manifest are blobs (by digest). The prompt is never stored here.
    """

    __tablename__ = "meshes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    model: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    guidance: Mapped[float | None] = mapped_column(Float, nullable=True)
    blob_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    manifest_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    manifest_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    mamori_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
