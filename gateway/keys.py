"""API keys: stored hashed, shown once. A key authenticates a principal (key id, tenant, role)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import ApiKeyRow

Role = Literal["requester", "supervisor", "auditor", "compliance", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TENANT_RE = re.compile(r"^[a-z0-9-]{1,64}$")
_KEY_RE = re.compile(r"^mamori_(k[0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class InvalidKeyInput(ValueError):
    """Invalid key input (bad role, tenant or expiry)."""


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    role: str
    name: str = ""

    def to_policy(self) -> dict[str, str]:
        return {"key_id": self.key_id, "tenant": self.tenant, "role": self.role}


@dataclass(frozen=True)
class KeyInfo:
    id: str
    tenant: str
    role: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        now = datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or _aware(self.expires_at) > now)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _hash_secret(secret: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is not brute-forceable.
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_tenant(tenant: str) -> str:
    if not TENANT_RE.fullmatch(tenant):
        raise InvalidKeyInput(f"tenant {tenant!r} must match [a-z0-9-]{{1,64}}")
    return tenant


class KeyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self, *, role: str, tenant: str, name: str = "", expires_at: datetime | None = None
    ) -> tuple[KeyInfo, str]:
        """Create a key; returns its info and the secret key string, which is never stored."""
        if role not in ROLES:
            raise InvalidKeyInput(f"role {role!r} is not one of {', '.join(ROLES)}")
        validate_tenant(tenant)
        now = datetime.now(UTC)
        if expires_at is not None and _aware(expires_at) <= now:
            raise InvalidKeyInput("expiry must be in the future")
        key_id = "k" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=key_id,
            secret_hash=_hash_secret(secret),
            tenant=tenant,
            role=role,
            name=name,
            created_at=now,
            expires_at=expires_at,
        )
        with self._sessions.begin() as session:
            session.add(row)
            info = _info(row)
        return info, f"mamori_{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        with self._sessions() as session:
            return [_info(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def get(self, key_id: str) -> KeyInfo | None:
        with self._sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            return _info(row) if row else None

    def revoke(self, key_id: str) -> KeyInfo:
        with self._sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise InvalidKeyInput(f"no key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return _info(row)

    @staticmethod
    def claimed_key_id(presented: str) -> str | None:
        """The key id a presented key names, if it has a key's shape (the id is not secret; the rest is)."""
        match = _KEY_RE.fullmatch(presented.strip())
        return match.group(1) if match else None

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for a presented key, or None (unknown, malformed, revoked or expired)."""
        match = _KEY_RE.fullmatch(presented.strip())
        if not match:
            return None
        key_id, secret = match.groups()
        with self._sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
                return None
            info = _info(row)
        if not info.active:
            return None
        return Principal(key_id=info.id, tenant=info.tenant, role=info.role, name=info.name)


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        tenant=row.tenant,
        role=row.role,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
