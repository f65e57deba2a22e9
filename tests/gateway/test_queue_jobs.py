"""The job queue runs the review's time-driven work: a check scheduled for an item's deadline is
run by a real consumer, in-process threads (embedded SQLite, Redis) and a separate `mamori worker`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _settings(tmp_path: Path, backend: str, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path, jobs_backend=backend, jobs_queue_name="t" + uuid.uuid4().hex[:12], **extra)


def _overdue_item(ctx: Any) -> str:
    e = ctx.escalations.create(
        request_id="req_" + uuid.uuid4().hex,
        tenant="acme",
        requester_key_id="k-req",
        reasons=[{"code": "output.protected_work"}],
        obligations={"review": {"approvals": 1, "priority": "normal"}},
        deadline_at=datetime.now(UTC) - timedelta(seconds=1),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    return str(e.id)


def _wait(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("the job did not run in time")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_in_process_consumer_runs_a_scheduled_deadline_check(tmp_path: Path, backend: str) -> None:
    if backend == "redis" and not _redis_up():
        pytest.skip("Redis at 127.0.0.1:6379 is not running")
    from gateway.jobs import JobQueue, worker_context

    settings = _settings(tmp_path, backend)
    ctx = worker_context(settings)
    queue = JobQueue(settings, ctx).attach()
    eid = _overdue_item(ctx)
    queue.schedule_check(eid, datetime.now(UTC) + timedelta(seconds=1))
    assert ctx.escalations.get(eid).priority == "normal"
    queue.start()
    try:
        _wait(lambda: ctx.escalations.get(eid).priority == "high")
    finally:
        queue.stop()
        queue.detach()
    assert ctx.escalations.get(eid).deadline_missed_at is not None
    actions = [r.payload["action"] for r in ctx.audit.search(event_type="escalation") if r.payload]
    assert "deadline_missed" in actions


def test_memory_backend_runs_tasks_at_once(tmp_path: Path) -> None:
    from gateway.jobs import JobQueue, worker_context

    settings = _settings(tmp_path, "memory")
    ctx = worker_context(settings)
    queue = JobQueue(settings, ctx)
    eid = _overdue_item(ctx)
    assert queue.check_escalation(eid)() == {"leases_lapsed": 0, "deadlines_missed": 1, "expired": 0}
    assert queue.sweep_queue.call_local() == {"leases_lapsed": 0, "deadlines_missed": 0, "expired": 0}


def test_a_separate_worker_process_consumes_the_queue(tmp_path: Path) -> None:
    backend = "redis" if _redis_up() else "sqlite"
    from gateway.jobs import JobQueue, worker_context

    settings = _settings(tmp_path, backend, jobs_consumer="none")
    ctx = worker_context(settings)
    queue = JobQueue(settings, ctx)
    eid = _overdue_item(ctx)
    queue.schedule_check(eid, datetime.now(UTC))
    env = {
        **os.environ,
        "MAMORI_JOBS_BACKEND": backend,
        "MAMORI_JOBS_QUEUE_NAME": settings.jobs_queue_name,
        "MAMORI_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import app; app()", "worker", "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: ctx.escalations.get(eid).priority == "high", timeout=30)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert b"mamori worker" in out
