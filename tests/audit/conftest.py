"""One database per test: SQLite in a temporary folder, or (marked ``postgres``) a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

import audit.checkpoint_models  # noqa: F401  (tables for create_all)
from audit.checkpoints import Checkpointer
from audit.crypto import SigningKey
from audit.db import Base, create_db_engine, session_factory
from audit.store import AuditStore

PG_URL = os.environ.get("MAMORI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_schema_url() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped afterwards."""
    admin = create_db_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_URL} does not answer: {type(exc).__name__}: {exc}")
    schema = f"mamori_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield from postgres_schema_url()


# --- signed checkpoints (issue 6) ------------------------------------------------------------------


@dataclass
class Signed:
    """An audit store that signs checkpoints, on a fresh database, plus raw SQL for tampering."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    store: AuditStore
    key: SigningKey

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params)

    def keys(self) -> dict[str, Any]:
        return {self.key.key_id: self.key.public}

    def verify(self, **kwargs: Any) -> Any:
        from audit.verify import verify_chain

        kwargs.setdefault("keys", self.keys())
        return verify_chain(self.sessions, **kwargs)

    def fill(self, n: int, *, tenant_of: Any = None) -> None:
        for i in range(1, n + 1):
            tenant = tenant_of(i) if tenant_of else ("acme" if i % 2 else "globex")
            payload = {"n": i, "decisions": [{"revision": "rev-1"}]}
            self.store.append("request", payload, request_id=f"r{i}", tenant=tenant)


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.load_or_create(tmp_path_factory.mktemp("keys") / "signing.pem")


@pytest.fixture
def signed(db_url: str, signing_key: SigningKey) -> Iterator[Signed]:
    engine = create_db_engine(db_url)
    Base.metadata.create_all(engine)
    sessions = session_factory(engine)
    checkpointer = Checkpointer(signing_key, every=5, seconds=0)
    yield Signed(db_url, engine, sessions, AuditStore(sessions, checkpointer=checkpointer), signing_key)
    engine.dispose()
