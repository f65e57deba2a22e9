"""SQLite write transactions take the write lock up front, so a read-then-write never meets a
writer that committed in between ("database is locked" at once, whatever the busy timeout)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from audit.db import WriteIntentSession, create_db_engine, session_factory, write_lock


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'race.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counters VALUES (1, 0), (2, 0)")
    return engine


def _race(sessions: sessionmaker[Session], wait: float) -> tuple[list[BaseException], int]:
    """A reads counter 1; meanwhile another thread writes counter 2 and commits; then A writes
    counter 1. Returns the errors of both writers and the final sum of the counters."""
    errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            with sessions.begin() as session:
                session.execute(text("UPDATE counters SET n = n + 1 WHERE id = 2"))
        except BaseException as exc:  # surfaced to the caller
            errors.append(exc)

    try:
        with sessions.begin() as session:
            n = session.execute(text("SELECT n FROM counters WHERE id = 1")).scalar_one()
            other = threading.Thread(target=other_writer)
            other.start()
            other.join(timeout=wait)  # done at once if it need not wait for us
            session.execute(text("UPDATE counters SET n = :n WHERE id = 1"), {"n": n + 1})
    except OperationalError as exc:
        errors.append(exc)
    other.join()
    with sessions() as session:
        total = session.execute(text("SELECT sum(n) FROM counters")).scalar_one()
    return errors, int(total)


def test_read_then_write_waits_for_no_one_and_loses_nothing(engine: Engine) -> None:
    sessions = session_factory(engine)
    assert issubclass(sessions.class_, WriteIntentSession)
    assert _race(sessions, wait=0.5) == ([], 2)  # the other writer waits for us, however long we take


def test_a_deferred_read_then_write_is_what_failed(engine: Engine) -> None:
    # the plain Session's deferred BEGIN: the other writer commits between our read and our write
    errors, total = _race(sessionmaker(bind=engine, expire_on_commit=False), wait=30.0)
    assert len(errors) == 1 and "database is locked" in str(errors[0])
    assert total == 1  # our update was lost


def test_reads_stay_deferred_and_write_lock_still_checks_its_place(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as writer, sessions() as reader:
        writer.execute(text("UPDATE counters SET n = 5 WHERE id = 1"))
        # a reader is not blocked by the writer's lock, and sees the committed state
        assert reader.execute(text("SELECT n FROM counters WHERE id = 1")).scalar_one() == 0
    with sessions() as session:  # autobegin: deferred
        session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="first statement"):
            write_lock(session, "x")


def test_a_begin_that_cannot_lock_leaves_no_transaction(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    engine = create_db_engine(f"sqlite:///{path}")
    sessions = session_factory(engine)
    session = sessions()
    session.connection().exec_driver_sql("PRAGMA busy_timeout=0")  # fail at once, not in 30 s
    session.commit()
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(OperationalError, match="locked"):
            session.begin()
        assert not session.in_transaction()
    finally:
        holder.close()
    with session.begin():  # the same session works once the lock is free
        session.execute(text("SELECT 1"))
    session.close()
