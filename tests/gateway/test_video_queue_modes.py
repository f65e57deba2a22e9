"""Video jobs on both task-queue modes (issue 7): embedded SQLite with an in-process consumer thread,
Redis, and a separate `mamori worker` process; the prompt never sits in the queue's storage in clear.

Each test uses its own queue name (Redis keys and SQLite rows are per name) and cleans up. The
session gateway's services are reused (one set of loaded models); the queue under test is attached
to them for the test's duration, so `POST /v1/videos` enqueues on it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway

PROMPT = "a teal zeppelin drifting over quiet green hills"
UNUSED_BACKENDS = ("text_generator", "speech_generator", "sound_generator", "planner_generator")


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _queue(gateway: Gateway, backend: str, **extra: Any) -> Any:
    from gateway.jobs import JobQueue

    if backend == "redis" and not _redis_up():
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable; the Redis mode cannot be tested here")
    update = {"jobs_backend": backend, "jobs_queue_name": "tv" + uuid.uuid4().hex[:12], **extra}
    return JobQueue(gateway.settings.model_copy(update=update), gateway.services).attach()


@pytest.fixture
def attached() -> Iterator[list[Any]]:
    queues: list[Any] = []
    yield queues
    for queue in reversed(queues):
        if queue.settings.jobs_backend == "redis":
            queue.huey.storage.flush_all()
        queue.stop()
        queue.detach()


def _create(gateway: Gateway) -> str:
    body = {"model": "wan-2.1-tiny", "prompt": PROMPT, "seconds": "4", "size": "32x32", "seed": 11}
    resp = gateway.client.post("/v1/videos", json=body, headers=gateway.auth("requester"))
    assert resp.status_code == 200, resp.text
    video: dict[str, Any] = resp.json()
    assert video["status"] == "queued", video  # nothing consumes yet
    return str(video["id"])


def _wait_done(gateway: Gateway, video_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        video: dict[str, Any] = gateway.client.get(f"/v1/videos/{video_id}", headers=gateway.auth("requester")).json()
        if video["status"] in ("completed", "failed"):
            return video
        assert time.monotonic() < deadline, f"the video job did not finish in {timeout} s: {video}"
        time.sleep(0.1)


def _assert_sealed(queue: Any) -> None:
    """The one queued task holds the prompt only AES-GCM sealed: no clear bytes in the storage."""
    raw: list[bytes] = queue.huey.storage.enqueued_items()
    assert len(raw) == 1
    assert PROMPT.encode() not in raw[0] and b"zeppelin" not in raw[0]
    [task] = queue.huey.pending()
    video_id, sealed, _principal = task.args
    assert sealed["alg"] == "AES-256-GCM" and set(sealed) == {"alg", "key_id", "nonce", "ciphertext"}
    assert queue.open_text(video_id, sealed) == PROMPT
    if queue.settings.jobs_backend == "sqlite":
        files = Path(queue.settings.data_dir).glob("jobs.db*")  # the database and its write-ahead log
        assert all(b"zeppelin" not in f.read_bytes() for f in files)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_in_process_consumer_runs_a_video_job(
    gateway: Gateway, attached: list[Any], backend: str, tmp_path: Path
) -> None:
    queue = _queue(gateway, backend, data_dir=tmp_path, jobs_consumer="thread")
    attached.append(queue)
    video_id = _create(gateway)
    _assert_sealed(queue)
    queue.start()  # the embedded consumer: threads in this process
    done = _wait_done(gateway, video_id, timeout=60)
    assert done["status"] == "completed", done
    content = gateway.client.get(f"/v1/videos/{video_id}/content", headers=gateway.auth("requester"))
    assert gateway.services.provenance.read(content.content, "video/mp4").validation_state == "Trusted"


def test_sealed_prompt_is_bound_to_its_job(gateway: Gateway, tmp_path: Path) -> None:
    from gateway.jobs import JobQueue, SealedTextError

    queue = JobQueue(gateway.settings.model_copy(update={"data_dir": tmp_path, "jobs_backend": "memory"}), None)
    sealed = queue.seal_text("video_a", PROMPT)
    assert queue.open_text("video_a", sealed) == PROMPT
    with pytest.raises(SealedTextError):
        queue.open_text("video_b", sealed)  # replayed for another job
    with pytest.raises(SealedTextError):
        queue.open_text("video_a", {**sealed, "ciphertext": sealed["nonce"]})


def test_a_separate_worker_process_runs_a_video_job(gateway: Gateway, attached: list[Any], tmp_path: Path) -> None:
    """The gateway side only enqueues (jobs_consumer none); `mamori worker` builds the services it needs
    (video backend, detectors, policy, signer, audit) from the same settings and completes the job."""
    backend = "redis" if _redis_up() else "sqlite"
    queue = _queue(gateway, backend, jobs_consumer="none")
    attached.append(queue)
    queue.start()  # does nothing: jobs_consumer = none
    video_id = _create(gateway)
    _assert_sealed(queue)
    from gateway.settings import Settings

    # the worker's config: the same queue, the session's tiny image models, and no backends a video job
    # never calls (chat, speech, sound, planner), so the worker starts in seconds
    config = {
        "jobs_backend": backend,
        "jobs_queue_name": queue.settings.jobs_queue_name,
        "generator_options": gateway.settings.generator_options,
        "log_level": "WARNING",
        **{name: None for name in UNUSED_BACKENDS if name in Settings.model_fields},
    }
    config_file = tmp_path / "worker.yaml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    data_dir = str(gateway.settings.data_dir)  # the same database, blobs, keys and (sqlite) queue file
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import app; app()", "worker", "--data-dir", data_dir,
         "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        done = _wait_done(gateway, video_id, timeout=240)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert done["status"] == "completed", (done, out.decode(errors="replace")[-3000:])
    assert b"mamori worker" in out
    content = gateway.client.get(f"/v1/videos/{video_id}/content", headers=gateway.auth("requester"))
    assert gateway.services.provenance.read(content.content, "video/mp4").validation_state == "Trusted"
    records = gateway.services.audit.for_request(done["mamori"]["request_id"])
    [completed] = [r for r in records if r.event_type == "video.completed"]
    assert completed.payload["detectors"] == gateway.services.detector_versions()
