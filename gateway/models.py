"""The gateway's own tables (keys, request state, assets, protected works and names), on the shared `audit.db.Base`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from audit.db import Base, UTCDateTime


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RequestRow(Base):
    """The state of one governed request, so any gateway process can answer a poll."""

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    response_format: Mapped[str] = mapped_column(String(16), default="b64_json")
    mamori_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AssetRow(Base):
    """One generated asset. `blob` is the content address of the signed file once released,
    `held_blob` that of the unsigned output while it waits for review."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    mime: Mapped[str] = mapped_column(String(64))
    blob: Mapped[str | None] = mapped_column(String(64), nullable=True)
    held_blob: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    manifest_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProtectedWorkRow(Base):
    __tablename__ = "protected_works"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProtectedNameRow(Base):
    """A protected person, brand or character that the pre-screen looks for (issue 4)."""

    __tablename__ = "protected_names"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # "pn_" + uuid
    key: Mapped[str] = mapped_column(String(120))  # the entry's own id (findings name it), unique per tenant
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # None: every tenant
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    aliases_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProtectedNamesRevisionRow(Base):
    """One row: bumped in the transaction of every change to `protected_names`, so that each
    gateway process knows when to rebuild its matcher."""

    __tablename__ = "protected_names_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)


class ProtectedHashRow(Base):
    __tablename__ = "protected_hashes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    work_id: Mapped[str] = mapped_column(ForeignKey("protected_works.id"), index=True)
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    variant: Mapped[str] = mapped_column(String(32))
    # 64-bit unsigned hash stored as a signed BIGINT (two's complement) so every database can hold it
    value: Mapped[int] = mapped_column(BigInteger)
