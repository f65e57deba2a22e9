"""ORM tables of signed audit checkpoints and the public keys that signed them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from audit.db import Base, UTCDateTime

__all__ = ["AuditCheckpointRow", "AuditKeyRow"]


class AuditCheckpointRow(Base):
    """A signature over the chain head at ``head_seq``. ``number`` runs 1, 2, 3… without gaps and each
    checkpoint names the digest of the one before (``prev_digest``), so checkpoints form a chain too."""

    __tablename__ = "audit_checkpoints"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    prev_digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class AuditKeyRow(Base):
    """A public key that signed checkpoints (informative: verification trusts key files, not this table)."""

    __tablename__ = "audit_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
