"""A job over real HTTP (httpx against the session's live server): create, stream its events, fetch the asset."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.job_plans import JOB_LABEL


def test_a_job_runs_and_streams_over_http(live_server: Any) -> None:
    headers = {"Authorization": f"Bearer {live_server.keys['requester']}"}
    body = {"instruction": "a short narration welcoming new staff", "max_steps": 1, "modalities": ["speech"]}
    with httpx.Client(base_url=live_server.root, headers=headers, timeout=120) as client:
        created = client.post("/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        job = created.json()
        names = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    names.append(line.removeprefix("event: "))
                if line.startswith("data: "):
                    assert json.loads(line.removeprefix("data: "))["job_id"] == job["id"]
        assert names[0] == "job.queued" and names[-1] == "job.completed"
        done = client.get(f"/v1/jobs/{job['id']}").json()
        assert done["status"] == "completed"
        (asset,) = done["assets"]
        wav = client.get(asset["url"])
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    report = live_server.services.provenance.read(wav.content, "audio/wav")
    assert report.validation_state == "Trusted"
    assert report.assertions[JOB_LABEL] == {"job_id": job["id"], "step": 0, "plan_sha256": done["plan_sha256"]}
