"""The job queue: Huey, embedded (SQLite file in the data folder, no server) or on Redis.

What runs here: webhook deliveries (retried with exponential backoff until a 2xx: at least once),
a check of one queue item scheduled at its deadline, expiry and lease end, and a periodic sweep
every minute that catches anything a scheduled check missed (all checks are idempotent), plus the
delayed deletion of a rejected asset's pixels.

The consumer runs as threads inside the gateway process (``jobs_consumer = "thread"``) or as its
own process (``mamori worker``), against the same storage. ``jobs_backend = "memory"`` runs every
task at once in the caller (Huey's immediate mode), for tests and single-shot tools.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from audit.blobs import BlobStore, LocalBlobStore
from audit.db import create_db_engine, session_factory
from audit.escalations import EscalationStore
from audit.store import AuditStore
from gateway.logs import get_logger
from gateway.settings import Settings
from gateway.state import RequestStore

log = get_logger("mamori.jobs")

# queue per database: the review code finds the queue of the services it was given
_QUEUES: weakref.WeakKeyDictionary[Any, JobQueue] = weakref.WeakKeyDictionary()
_QUEUES_LOCK = threading.Lock()


def queue_for(ctx: Any) -> JobQueue | None:
    """The job queue attached to these services (keyed by their escalation store), if any."""
    with _QUEUES_LOCK:
        return _QUEUES.get(ctx.escalations)


@dataclass
class WorkerContext:
    """The slice of the gateway's services that jobs need (no models, no policy engine)."""

    settings: Settings
    escalations: EscalationStore
    requests: RequestStore
    audit: AuditStore
    blobs: BlobStore


def worker_context(settings: Settings) -> WorkerContext:
    from gateway.bootstrap import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.db_url)
    migrate(engine)
    sessions = session_factory(engine)
    return WorkerContext(
        settings=settings,
        escalations=EscalationStore(sessions),
        requests=RequestStore(sessions),
        audit=AuditStore(sessions),
        blobs=LocalBlobStore(settings.blob_dir),
    )


def make_huey(settings: Settings) -> Huey:
    name = settings.jobs_queue_name
    if settings.jobs_backend == "redis":
        return RedisHuey(name=name, url=settings.redis_url, utc=True)
    if settings.jobs_backend == "memory":
        return MemoryHuey(name=name, immediate=True, utc=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name=name, filename=str(settings.data_dir / "jobs.db"), utc=True)


class _EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """Huey's consumer, without touching signal handlers: the web server owns those."""

    def _set_signal_handlers(self) -> None:
        return None


class JobQueue:
    """Tasks registered on one Huey instance, bound to one set of services."""

    def __init__(self, settings: Settings, ctx: Any) -> None:
        self.settings = settings
        self.ctx = ctx
        self.huey = make_huey(settings)
        self._consumer: _EmbeddedConsumer | None = None
        self._replaced: JobQueue | None = None
        huey = self.huey

        def deliver_webhook(url: str, event: dict[str, Any], check_url: bool) -> int:
            from gateway.webhooks import CallbackRefused, deliver

            try:
                return deliver(self.settings, url, event, check_url=check_url)
            except CallbackRefused as exc:  # not retried: the address will not become acceptable
                log.warning("webhook.refused", url_host=url.split("/")[2] if "//" in url else "?", error=str(exc))
                return 0

        def check_escalation(escalation_id: str) -> dict[str, int]:
            from gateway.review import run_sweep

            return run_sweep(self.ctx, ids=[escalation_id])

        def sweep_queue() -> dict[str, int]:
            from gateway.review import run_sweep

            return run_sweep(self.ctx)

        def delete_held_blob(digest: str, request_id: str) -> None:
            from gateway.review import drop_blob

            drop_blob(self.ctx, digest, request_id)

        def generate_video(video_id: str, prompt: str, principal: dict[str, str]) -> None:
            # issue 7: needs the full services (models, policy): the in-process consumer runs it
            from gateway.video_pipeline import run_video_job

            run_video_job(self.ctx, video_id, prompt, principal)

        # registered by name, so a separate `mamori worker` runs the same tasks from the same queue
        self.deliver_webhook: Any = huey.task(
            retries=settings.webhook_retries,
            retry_delay=settings.webhook_retry_delay_s,
            retry_backoff=2.0,
            name="mamori.deliver_webhook",
        )(deliver_webhook)
        self.check_escalation: Any = huey.task(name="mamori.check_escalation")(check_escalation)
        self.sweep_queue: Any = huey.periodic_task(crontab(minute="*"), name="mamori.sweep_queue")(sweep_queue)
        self.delete_held_blob: Any = huey.task(name="mamori.delete_held_blob")(delete_held_blob)
        self.generate_video: Any = huey.task(name="mamori.generate_video")(generate_video)

    # ------------------------------------------------------------------ attach to services
    def attach(self) -> JobQueue:
        # Several apps may share one Services (tests, benchmarks): the newest queue serves, and
        # detaching it gives the services back to the queue it replaced.
        with _QUEUES_LOCK:
            self._replaced = _QUEUES.get(self.ctx.escalations)
            _QUEUES[self.ctx.escalations] = self
        return self

    def detach(self) -> None:
        with _QUEUES_LOCK:
            if _QUEUES.get(self.ctx.escalations) is self:
                if self._replaced is not None:
                    _QUEUES[self.ctx.escalations] = self._replaced
                else:
                    del _QUEUES[self.ctx.escalations]

    # ------------------------------------------------------------------ enqueue
    def notify(self, event_type: str, data: dict[str, Any], *, callback_url: str | None = None) -> list[str]:
        """Queue one signed delivery per admin webhook URL (and the requester's callback). Returns event ids."""
        from gateway.webhooks import new_event

        ids = []
        targets = [(url, False) for url in self.settings.webhook_urls]
        if callback_url:
            targets.append((callback_url, True))
        for url, is_callback in targets:
            event = new_event(event_type, data)
            self.deliver_webhook(url, event, is_callback)
            ids.append(str(event["id"]))
        return ids

    def schedule_check(self, escalation_id: str, at: datetime) -> None:
        if self.settings.jobs_backend == "memory":
            return  # immediate mode has no scheduler: the periodic sweep (run_sweep) does it
        self.check_escalation.schedule(args=(escalation_id,), eta=at.astimezone(UTC))

    def schedule_blob_delete(self, digest: str, request_id: str, at: datetime) -> None:
        if self.settings.jobs_backend == "memory":
            self.delete_held_blob(digest, request_id)
            return
        self.delete_held_blob.schedule(args=(digest, request_id), eta=at.astimezone(UTC))

    # ------------------------------------------------------------------ consumer
    def consumer(self, *, workers: int | None = None, embedded: bool = True) -> Consumer:
        cls = _EmbeddedConsumer if embedded else Consumer
        return cls(
            self.huey,
            workers=workers or self.settings.jobs_workers,
            worker_type="thread",
            periodic=True,
            initial_delay=0.05,
            max_delay=1.0,
            scheduler_interval=1,
            shutdown_timeout=10.0,
        )

    def start(self) -> None:
        """Start the in-process consumer (threads) unless the config leaves it to `mamori worker`."""
        if self.settings.jobs_consumer != "thread" or self.settings.jobs_backend == "memory":
            return
        self._consumer = self.consumer()
        self._consumer.start()
        log.info("jobs.consumer_started", backend=self.settings.jobs_backend, workers=self.settings.jobs_workers)

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
        try:
            self.huey.storage.close()
        except Exception:  # pragma: no cover - closing is best effort
            log.debug("jobs.close_failed")
