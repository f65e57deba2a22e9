"""Database plumbing shared by every Mamori table: the declarative ``Base`` and engine setup.

SQLite is configured for several gateway processes sharing one file: WAL journal, a 30 s busy
timeout, foreign keys on, and SQLAlchemy (not the ``sqlite3`` module) emitting ``BEGIN`` so that a
writer can ask for ``BEGIN IMMEDIATE`` (see :func:`write_lock`; explicit transactions of
:func:`session_factory`'s sessions always do, see :class:`WriteIntentSession`). PostgreSQL goes
through psycopg 3.
"""

from __future__ import annotations

import hashlib
import warnings
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "Base",
    "UTCDateTime",
    "WriteIntentSession",
    "create_db_engine",
    "lock_key",
    "session_factory",
    "write_lock",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option read by the ``begin`` listener: when true, SQLite opens the transaction with
# ``BEGIN IMMEDIATE`` (takes the write lock up front) instead of a deferred ``BEGIN``.
_SQLITE_IMMEDIATE = "mamori_sqlite_immediate"

# Stable names for constraints and indexes so Alembic autogenerate produces the same names on
# SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for all Mamori tables (audit and gateway alike)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zones: values are stored as naive UTC and come back tagged as UTC.
    Naive datetimes are refused on the way in, so a local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _normalize_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``sqlite:///path`` or ``postgresql+psycopg://…`` (``postgresql://`` is
    accepted and mapped to psycopg)."""
    url = _normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    in_memory = parsed.database in (None, "", ":memory:") or "mode=memory" in url
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    }
    if in_memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or each checkout sees a new DB
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (the sqlite3 module's implicit transactions cannot do
        # BEGIN IMMEDIATE and commit behind our back before DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class WriteIntentSession(Session):
    """A session whose explicit transactions (``session.begin()``, ``sessionmaker.begin()``) are
    writes: on SQLite they open with ``BEGIN IMMEDIATE``, taking the write lock up front.

    A deferred SQLite transaction that reads and then writes fails at once with "database is
    locked" when another connection committed a write in between (WAL's SQLITE_BUSY_SNAPSHOT; the
    busy timeout does not apply), which a video job's progress update met beside a gateway that
    kept writing audit records. With the lock taken at ``begin()`` the second writer waits its turn
    instead. Reads go through autobegin (``with sessions() as session: ...``) and stay deferred, so
    readers never wait for writers. PostgreSQL is unaffected.

    One consequence: a write transaction opened while the same thread holds another one on the same
    SQLite file waits the busy timeout and fails (it used to proceed until its first write), so
    write blocks are never nested. If the lock cannot be had, ``begin()`` raises and leaves no
    transaction open.
    """

    def begin(self, nested: bool = False) -> SessionTransaction:
        transaction = super().begin(nested=nested)
        if not nested and self.get_bind().dialect.name == "sqlite":
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a connection already bound keeps its own options
                    self.connection(execution_options={_SQLITE_IMMEDIATE: True})
            except BaseException:
                self.rollback()
                raise
        return transaction


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to ``engine``, whose explicit transactions are writes
    (`WriteIntentSession`); objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False, class_=WriteIntentSession)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` derived from ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def write_lock(session: Session, name: str) -> None:
    """Start ``session``'s transaction holding a database-wide write lock named ``name``.

    Must be the first statement of the transaction. SQLite: the transaction is opened with
    ``BEGIN IMMEDIATE`` (one writer per file, others wait up to the busy timeout). PostgreSQL: a
    transaction-scoped advisory lock, released at commit or rollback. Anything read after this
    call cannot be changed by another writer that uses the same lock before we commit.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "execution_options ignored": turned into an error below
            conn = session.connection(execution_options={_SQLITE_IMMEDIATE: True})
        if not conn.get_execution_options().get(_SQLITE_IMMEDIATE, False):
            raise RuntimeError("write_lock() must be the first statement of its transaction")
    elif bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect {bind.dialect.name!r}")
