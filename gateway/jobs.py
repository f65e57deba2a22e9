"""The job queue: Huey, embedded (SQLite file in the data folder, no server) or on Redis.

What runs here: webhook deliveries (retried with exponential backoff until a 2xx: at least once),
a check of one queue item scheduled at its deadline, expiry and lease end, and a periodic sweep
every minute that catches anything a scheduled check missed (all checks are idempotent), plus the
delayed deletion of a rejected asset's pixels.

The consumer runs as threads inside the gateway process (``jobs_consumer = "thread"``) or as its
own process (``mamori worker``), against the same storage. ``jobs_backend = "memory"`` runs every
task at once in the caller (Huey's immediate mode), for tests and single-shot tools.

Media jobs (``mamori.generate_video``) need the models, detectors, policy and signer. In the gateway
the queue runs them with the gateway's own services; a separate worker builds the same services
from the same settings on the first media job (:meth:`JobQueue.media_services`). Their prompt never
sits in the queue's storage in clear: :meth:`JobQueue.seal_text` encrypts it (AES-256-GCM, the key
the audit store uses for raw prompts, ``prompt_encryption_key`` or ``<data_dir>/audit/prompt.key``;
several machines must share that key file) bound to the job's id, and the task opens it.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import BlobStore, LocalBlobStore
from audit.crypto import PromptCipher
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
    sessions: sessionmaker[Session] | None = None  # the database (media jobs mark a video failed with it)


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
        sessions=sessions,
    )


class SealedTextError(Exception):
    """A queued task's sealed text cannot be opened (other key, changed, or sealed for another job)."""


def task_cipher(settings: Settings) -> PromptCipher:
    """The AES-GCM key for text in task arguments: the audit store's raw-prompt key (created 0600 if missing)."""
    return PromptCipher.load_or_create(settings.prompt_encryption_key or settings.audit_dir / "prompt.key")


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
        self._cipher: PromptCipher | None = None
        self._media: Any = None  # the services media jobs run with (see media_services)
        self._media_lock = threading.Lock()
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

        def generate_video(video_id: str, sealed_prompt: dict[str, str], principal: dict[str, str]) -> None:
            # issue 7: needs the full services (models, policy, signer): see media_services
            from gateway.video_pipeline import fail_video, run_video_job

            try:
                prompt = self.open_text(video_id, sealed_prompt)
                services = self.media_services()
            except Exception as exc:  # fail closed: the job cannot run, nothing is generated
                log.exception("jobs.video_setup_failed", video_id=video_id, error=type(exc).__name__)
                fail_video(self.ctx, video_id, "system.job_setup_error", "the job could not be started")
                return
            run_video_job(services, video_id, prompt, principal)

        def generate_mesh(mesh_id: str, sealed_prompt: dict[str, str], principal: dict[str, str]) -> None:
            # issue 7 (3D): like generate_video
            from gateway.mesh_pipeline import fail_mesh, run_mesh_job

            try:
                prompt = self.open_text(mesh_id, sealed_prompt)
                services = self.media_services()
            except Exception as exc:  # fail closed: the job cannot run, nothing is generated
                log.exception("jobs.mesh_setup_failed", mesh_id=mesh_id, error=type(exc).__name__)
                fail_mesh(self.ctx, mesh_id, "system.job_setup_error", "the job could not be started")
                return
            run_mesh_job(services, mesh_id, prompt, principal)

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
        self.generate_mesh: Any = huey.task(name="mamori.generate_mesh")(generate_mesh)

        def run_job(job_id: str, sealed_instruction: dict[str, str] | None, principal: dict[str, str]) -> None:
            # issue 8: an orchestrated job (plan, then governed steps); needs the full services
            from gateway.orchestration import fail_job
            from gateway.orchestration import run_job as run

            try:
                instruction = None if sealed_instruction is None else self.open_text(job_id, sealed_instruction)
                services = self.media_services()
            except Exception as exc:  # fail closed: the job cannot run, nothing is generated
                log.exception("jobs.job_setup_failed", job_id=job_id, error=type(exc).__name__)
                fail_job(self.ctx, job_id, "system.job_setup_error", "the job could not be started")
                return
            run(services, job_id, instruction, principal)

        self.run_job: Any = huey.task(name="mamori.run_job")(run_job)

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

    # ------------------------------------------------------------------ media jobs
    def media_services(self) -> Any:
        """The services media jobs need: the gateway's own, or (in `mamori worker`) built once from settings.

        The worker builds them with :func:`gateway.bootstrap.build_services`, so a job runs with the
        same detectors, policy, signer, audit and backends as in the gateway (an orchestrated job may
        call any modality, so nothing is left out). This queue also serves those services
        (escalations opened by a job are announced and scheduled).
        """
        from gateway.services import Services

        if isinstance(self.ctx, Services):
            return self.ctx
        with self._media_lock:
            if self._media is None:
                from gateway.bootstrap import build_services

                started = time.perf_counter()
                services = build_services(self.settings)
                with _QUEUES_LOCK:
                    _QUEUES.setdefault(services.escalations, self)
                log.info("jobs.media_services_built", seconds=round(time.perf_counter() - started, 2))
                self._media = services
            return self._media

    def seal_text(self, job_id: str, text: str) -> dict[str, str]:
        """Encrypt `text` (a prompt) for a task's arguments, bound to `job_id`."""
        return self._task_cipher().encrypt(json.dumps({"job": job_id, "text": text}, ensure_ascii=False))

    def open_text(self, job_id: str, sealed: dict[str, str]) -> str:
        """The text :meth:`seal_text` sealed for `job_id`; SealedTextError if it was not."""
        from audit.crypto import DecryptionError

        try:
            opened = json.loads(self._task_cipher().decrypt(sealed))
        except (DecryptionError, ValueError, TypeError) as exc:
            raise SealedTextError(f"the task's sealed text cannot be opened: {exc}") from exc
        if not isinstance(opened, dict) or opened.get("job") != job_id or not isinstance(opened.get("text"), str):
            raise SealedTextError("the task's sealed text belongs to another job")
        return str(opened["text"])

    def _task_cipher(self) -> PromptCipher:
        if self._cipher is None:
            self._cipher = task_cipher(self.settings)
        return self._cipher

    def submit_video(self, video_id: str, prompt: str, principal: dict[str, str]) -> None:
        """Queue a video job; the prompt travels sealed."""
        self.generate_video(video_id, self.seal_text(video_id, prompt), principal)

    def submit_mesh(self, mesh_id: str, prompt: str, principal: dict[str, str]) -> None:
        """Queue a 3D job; the prompt travels sealed."""
        self.generate_mesh(mesh_id, self.seal_text(mesh_id, prompt), principal)

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
        if self._media is not None and self._media is not self.ctx:
            with _QUEUES_LOCK:
                if _QUEUES.get(self._media.escalations) is self:
                    del _QUEUES[self._media.escalations]
            self._media.close()
            self._media = None
        try:
            self.huey.storage.close()
        except Exception:  # pragma: no cover - closing is best effort
            log.debug("jobs.close_failed")
