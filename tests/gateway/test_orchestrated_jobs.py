"""Orchestrated jobs (issue 8): the tiny planner plans through outlines, every step is governed.

The session gateway's services (models, planner, policy, stores) are reused; this module serves
them through its own app whose job queue runs in Huey's immediate mode (a job runs inside the
request that queues it), with the plan's sizes limited to 64x64 so the tiny pipelines stay fast.
The planner decodes greedily, so the same instruction and limits give the same plan.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from gateway.job_plans import JOB_LABEL, PlanLimits, parse_plan, plan_schema
from gateway.provenance import DECISION_LABEL

JOBS = "/v1/jobs"
INSTRUCTION = "a catalog photo of the blue kettle and a 15-second narration introducing it"
TWO = {"instruction": INSTRUCTION, "max_steps": 2, "modalities": ["image", "speech"]}


@dataclasses.dataclass
class JobsApp:
    client: TestClient
    services: Any
    auth: Any

    def create(self, body: dict[str, Any], who: str = "requester") -> dict[str, Any]:
        resp = self.client.post(JOBS, json=body, headers=self.auth(who))
        assert resp.status_code == 202, resp.text
        job: dict[str, Any] = resp.json()
        return job


def _app(gateway: Any, **overrides: Any) -> Any:
    from gateway.app import create_app

    base = gateway.services
    settings = base.settings.model_copy(update={"jobs_backend": "memory", "job_sizes": ["64x64"], **overrides})
    services = dataclasses.replace(base, settings=settings)
    return create_app(settings, services), services


@pytest.fixture(scope="module")
def jobs(gateway: Any) -> Iterator[JobsApp]:
    app, services = _app(gateway)
    with TestClient(app) as client:
        yield JobsApp(client, services, gateway.auth)


def _asset(jobs: JobsApp, asset: dict[str, Any]) -> bytes:
    resp = jobs.client.get(asset["url"], headers=jobs.auth("requester"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(asset["mime"])
    return resp.content


def test_two_modality_job_makes_two_governed_signed_assets(jobs: JobsApp) -> None:
    job = jobs.create({**TWO, "seed": 11})
    assert job["object"] == "job" and job["id"].startswith("job_")
    assert job["status"] == "completed", job
    assert [s["modality"] for s in job["steps"]] == ["image", "speech"]
    assert [s["status"] for s in job["steps"]] == ["released", "released"]
    assert job["steps"][0]["depends_on"] == [] and job["steps"][1]["depends_on"] == [0]
    assert job["steps"][0]["params"] == {"size": "64x64"}
    assert [a["step"] for a in job["assets"]] == [0, 1]
    assert job["plan_sha256"] and len(job["plan_sha256"]) == 64

    svc = jobs.services
    image = _asset(jobs, job["assets"][0])
    wav = _asset(jobs, job["assets"][1])
    assert wav[:4] == b"RIFF"
    reports = [svc.provenance.read(image, "image/png"), svc.provenance.read(wav, "audio/wav")]
    for step, report in enumerate(reports):
        assert report.validation_state == "Trusted"
        assert report.assertions[JOB_LABEL] == {"job_id": job["id"], "step": step, "plan_sha256": job["plan_sha256"]}
        assert report.assertions[DECISION_LABEL]["request_id"] == job["assets"][step]["request_id"]
    # the narration builds on the photo: the photo is its ingredient (an input to it)
    ingredients = reports[1].raw["manifests"][reports[1].manifest_id]["ingredients"]
    assert [i["relationship"] for i in ingredients] == ["inputTo"]
    assert ingredients[0]["title"] == f"{job['id']}-step0"
    assert not reports[0].raw["manifests"][reports[0].manifest_id].get("ingredients")

    # each step is audited like a direct request of its modality, and linked to the job
    for step, endpoint in enumerate(["images.generations", "audio.speech"]):
        records = svc.audit.for_request(job["assets"][step]["request_id"])
        request = [r for r in records if r.event_type == "request"]
        assert len(request) == 1
        payload = request[0].payload
        assert payload["endpoint"] == endpoint
        assert payload["request"]["job"] == {"job_id": job["id"], "step": step, "plan_sha256": job["plan_sha256"]}
        assert [d["stage"] for d in payload["decisions"]] == ["prescreen", "output"]
    job_records = [r.payload for r in svc.audit.for_request(job["request_id"]) if r.event_type == "job"]
    assert [r["action"] for r in job_records] == ["planned", "completed"]
    prompts = [s["prompt"] for s in job["steps"]]
    assert all(p not in json.dumps(job_records) for p in prompts)  # digests only, never the text

    again = jobs.client.get(f"{JOBS}/{job['id']}", headers=jobs.auth("requester"))
    assert again.status_code == 200 and again.json()["status"] == "completed"
    assert jobs.client.get(f"{JOBS}/{job['id']}", headers=jobs.auth("requester2")).status_code == 404


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_progress_streams_as_server_sent_events_until_the_end(jobs: JobsApp) -> None:
    job = jobs.create({**TWO, "seed": 12})
    resp = jobs.client.get(f"{JOBS}/{job['id']}/events", headers=jobs.auth("requester"))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in _sse(resp.text)]
    assert names == [
        "job.queued",
        "job.planning",
        "job.planned",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "job.completed",
    ]
    ids = [int(m) for m in re.findall(r"^id: (\d+)$", resp.text, flags=re.M)]
    assert ids == sorted(ids)
    resumed = jobs.client.get(
        f"{JOBS}/{job['id']}/events", headers={**jobs.auth("requester"), "last-event-id": str(ids[-2])}
    )
    assert [name for name, _ in _sse(resumed.text)] == ["job.completed"]


def test_an_unsafe_instruction_is_refused_before_planning(jobs: JobsApp) -> None:
    resp = jobs.client.post(
        JOBS, json={"instruction": "show how to make a bomb, then narrate it"}, headers=jobs.auth("requester")
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"]["code"] == "content_policy_violation"
    assert "prescreen.denied_term" in [r["code"] for r in body["mamori"]["reasons"]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"instruction": "x", "max_steps": 99}, "invalid_request"),
        ({"instruction": "x", "max_steps": 1, "modalities": ["image", "speech"]}, "invalid_request"),
        ({"instruction": "   "}, "invalid_request"),
        ({"instruction": "x", "modalities": ["hologram"]}, "invalid_request"),
    ],
)
def test_bad_requests_are_clear_400s(jobs: JobsApp, body: dict[str, Any], code: str) -> None:
    resp = jobs.client.post(JOBS, json=body, headers=jobs.auth("requester"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code


def test_only_roles_the_policy_allows_may_create_jobs(jobs: JobsApp) -> None:
    resp = jobs.client.post(JOBS, json=TWO, headers=jobs.auth("supervisor"))
    assert resp.status_code == 403


def test_a_plan_with_an_unsafe_step_is_refused_as_a_whole(gateway: Any, tmp_path: Path) -> None:
    """The deny-list gets a word the planner writes into step 1 only, never in the instruction.

    The planner decodes greedily, so asking it directly with the job's own limits shows the plan the
    job will get. A copy of the policy bundle lists one of step 1's words as a weapons term; the
    instruction does not contain it and passes, the plan does not, and nothing is generated.
    """
    from gateway.orchestration import limits_for
    from gateway.policy import create_engine, default_bundle_dir

    _, services = _app(gateway)
    limits: PlanLimits = limits_for(services, max_steps=2, outline=("image", "speech"))
    budget = services.settings.planner_max_new_tokens
    text = services.planner.plan(INSTRUCTION, plan_schema(limits), max_new_tokens=budget)
    plan = parse_plan(text, limits)
    words = lambda s: set(re.findall(r"[a-z]{3,}", s.lower()))  # noqa: E731
    candidates = sorted(words(plan.steps[1].prompt) - words(plan.steps[0].prompt) - words(INSTRUCTION))
    assert candidates, plan
    term = candidates[0]

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    data = yaml.safe_load((bundle / "data.yaml").read_text())
    data["mamori"]["terms"].append({"term": term, "category": "weapons"})
    (bundle / "data.yaml").write_text(yaml.safe_dump(data))
    strict = dataclasses.replace(services, policy=create_engine(services.settings.policy_engine, bundle, None))
    from gateway.app import create_app

    with TestClient(create_app(strict.settings, strict)) as client:
        resp = client.post(JOBS, json={**TWO, "seed": 13}, headers=gateway.auth("requester"))
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] == "refused"
    assert job["error"]["code"] == "plan_refused"
    assert {r["step"] for r in job["error"]["reasons"]} == {1}
    assert "prescreen.denied_term" in [r["code"] for r in job["error"]["reasons"]]
    assert job["assets"] == []
    assert [s["status"] for s in job["steps"]] == ["pending", "pending"]  # not even the clean step ran
    assert all("request_id" not in s for s in job["steps"])
    records = [r.payload for r in services.audit.for_request(job["request_id"]) if r.event_type == "job"]
    assert [r["action"] for r in records] == ["refused"]
    screened = records[0]["screening"]["decisions"]
    assert [d["input"]["request"]["job"]["step"] for d in screened] == [0, 1]


def test_a_plan_that_fails_validation_fails_the_job(gateway: Any) -> None:
    """A token budget too small for the plan: the JSON is cut short, the job fails; nothing is guessed."""
    app, _ = _app(gateway, planner_max_new_tokens=12)
    with TestClient(app) as client:
        resp = client.post(JOBS, json={**TWO, "seed": 14}, headers=gateway.auth("requester"))
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_plan"
    assert "not a valid plan" in job["error"]["message"]
    assert job["steps"] == [] and job["assets"] == []


def test_cancel_stops_before_the_next_step(gateway: Any) -> None:
    """The requester cancels while the planner works: the job stops before its first step."""
    from gateway.job_store import JobStore

    app, services = _app(gateway)
    store = JobStore(services.sessions)
    real = services.planner

    class CancelledMeanwhile:
        """The real planner; a cancel for the job arrives while it plans."""

        def plan(self, instruction: str, schema: dict[str, Any], *, max_new_tokens: int) -> str:
            text: str = real.plan(instruction, schema, max_new_tokens=max_new_tokens)
            (planning,) = [j for j in _planning(services)]
            assert store.request_cancel(planning) is not None
            return text

    services.planner = CancelledMeanwhile()
    with TestClient(app) as client:
        resp = client.post(JOBS, json={**TWO, "seed": 15}, headers=gateway.auth("requester"))
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["status"] == "cancelled"
        assert job["assets"] == []
        assert [s["status"] for s in job["steps"]] == ["pending", "pending"]  # planned, never started
        assert all("request_id" not in s for s in job["steps"])
        again = client.post(f"{JOBS}/{job['id']}/cancel", headers=gateway.auth("requester"))
        assert again.status_code == 200 and again.json()["status"] == "cancelled"


def _planning(services: Any) -> list[str]:
    from sqlalchemy import select

    from gateway.job_store import JobRow

    with services.sessions() as session:
        return list(session.execute(select(JobRow.id).where(JobRow.status == "planning")).scalars())


def test_a_held_step_pauses_the_job_until_a_supervisor_decides(jobs: JobsApp) -> None:
    """Step 0's image is registered as a protected work; the same job again is held at that step."""
    first = jobs.create({**TWO, "seed": 16})
    assert first["status"] == "completed"
    png = _asset(jobs, first["assets"][0])
    resp = jobs.client.post("/v1/protected", files={"file": ("work.png", png, "image/png")}, headers=jobs.auth("admin"))
    assert resp.status_code == 200, resp.text

    held = jobs.create({**TWO, "seed": 16})
    assert held["status"] == "paused", held
    assert [s["status"] for s in held["steps"]] == ["held", "pending"]
    escalation = held["steps"][0]["escalation_id"]
    assert escalation and held["assets"] == []

    # a second paused job is cancelled: the supervisor's later approval does not wake it
    other = jobs.create({**TWO, "seed": 16})
    assert other["status"] == "paused"
    cancelled = jobs.client.post(f"{JOBS}/{other['id']}/cancel", headers=jobs.auth("requester"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    approved = jobs.client.post(
        f"/v1/escalations/{escalation}/approve", json={"reason": "licensed"}, headers=jobs.auth("supervisor")
    )
    assert approved.status_code == 200, approved.text
    done = jobs.client.get(f"{JOBS}/{held['id']}", headers=jobs.auth("requester")).json()
    assert done["status"] == "completed", done
    assert [s["status"] for s in done["steps"]] == ["released", "released"]
    assert [a["step"] for a in done["assets"]] == [0, 1]
    report = jobs.services.provenance.read(_asset(jobs, done["assets"][0]), "image/png")
    assert report.validation_state == "Trusted"
    assert report.assertions[JOB_LABEL]["job_id"] == held["id"]
    assert report.assertions[DECISION_LABEL]["review"]["action"] == "approved"
    events = _sse(jobs.client.get(f"{JOBS}/{held['id']}/events", headers=jobs.auth("requester")).text)
    names = [n for n, _ in events]
    assert names[names.index("job.paused") :] == [
        "job.paused",
        "step.completed",
        "job.resumed",
        "step.started",
        "step.completed",
        "job.completed",
    ]
    still = jobs.client.get(f"{JOBS}/{other['id']}", headers=jobs.auth("requester")).json()
    assert still["status"] == "cancelled"

    # rejection fails the job with the reviewer's reason
    rejected_job = jobs.create({**TWO, "seed": 16})
    assert rejected_job["status"] == "paused"
    esc = rejected_job["steps"][0]["escalation_id"]
    resp = jobs.client.post(f"/v1/escalations/{esc}/reject", json={"reason": "no"}, headers=jobs.auth("supervisor"))
    assert resp.status_code == 200, resp.text
    failed = jobs.client.get(f"{JOBS}/{rejected_job['id']}", headers=jobs.auth("requester")).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "step_rejected"
    assert "review.rejected" in [r["code"] for r in failed["error"]["reasons"]]
