"""One database per test: SQLite in a temporary folder, or (marked ``postgres``) a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from audit.db import create_db_engine

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
