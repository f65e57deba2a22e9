"""Orchestrated jobs (issue 8) with 3D and sound steps, and held steps of every holdable modality.

As in test_orchestrated_jobs, the session gateway's services are served by this module's own app
whose job queue runs in Huey's immediate mode (a job runs inside the request that queues it), with
plan sizes of 64x64 and sounds of one second so the tiny pipelines stay fast. The planner decodes
greedily: asking it with a job's own limits shows the plan that job will get, which is how a test
finds a word of a step's prompt to register as a protected name (so that step, and only it, is
held for review) without that word being in the instruction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.job_plans import JOB_LABEL, PlanLimits, parse_plan, plan_schema
from gateway.provenance import DECISION_LABEL

JOBS = "/v1/jobs"
MEDIA_INSTRUCTION = "a catalog photo of the blue kettle, a 3D mock-up of it and a short jingle"
HELD_INSTRUCTION = "a short clip welcoming new staff"
GLB = "model/gltf-binary"


@dataclasses.dataclass
class MediaJobs:
    client: TestClient
    services: Any
    auth: Any

    def create(self, body: dict[str, Any], who: str = "requester") -> dict[str, Any]:
        resp = self.client.post(JOBS, json=body, headers=self.auth(who))
        assert resp.status_code == 202, resp.text
        job: dict[str, Any] = resp.json()
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        resp = self.client.get(f"{JOBS}/{job_id}", headers=self.auth("requester"))
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        return job

    def fetch(self, url: str) -> Any:
        resp = self.client.get(url, headers=self.auth("requester"))
        assert resp.status_code == 200, resp.text
        return resp


@pytest.fixture(scope="module")
def media(gateway: Any) -> Iterator[MediaJobs]:
    from gateway.app import create_app

    base = gateway.services
    update = {"jobs_backend": "memory", "job_sizes": ["64x64"], "max_sound_seconds": 1.0}
    settings = base.settings.model_copy(update=update)
    services = dataclasses.replace(base, settings=settings)
    with TestClient(create_app(settings, services)) as client:
        yield MediaJobs(client, services, gateway.auth)


def _records(svc: Any, request_id: str, event: str) -> list[dict[str, Any]]:
    return [r.payload for r in svc.audit.for_request(request_id) if r.event_type == event]


# ---------------------------------------------------------------------- 3D and sound steps


def test_a_job_with_3d_and_sound_steps_makes_governed_signed_assets(media: MediaJobs) -> None:
    from gateway.provenance_sidecar import read_sidecar

    body = {"instruction": MEDIA_INSTRUCTION, "max_steps": 3, "modalities": ["image", "3d", "sound"], "seed": 21}
    job = media.create(body)
    assert job["status"] == "completed", job
    assert [s["modality"] for s in job["steps"]] == ["image", "3d", "sound"]
    assert [s["status"] for s in job["steps"]] == ["released"] * 3
    # the greedy plan: the mock-up and the jingle both build on the photo; a 3D step has no parameters
    assert [s["depends_on"] for s in job["steps"]] == [[], [0], [0]]
    assert job["steps"][1]["params"] == {} and job["steps"][2]["params"] == {"seconds": 1}
    image, mesh, sound = job["assets"]
    assert (image["mime"], mesh["mime"], sound["mime"]) == ("image/png", GLB, "audio/wav")
    svc = media.services
    photo = media.fetch(image["url"]).content
    assert hashlib.sha256(photo).hexdigest() == image["sha256"]

    # the 3D step: the GLB is released with a sidecar manifest carrying the job and naming the photo
    mesh_id = job["steps"][1]["mesh_id"]
    assert mesh["url"] == f"/v1/3d/{mesh_id}/content" and mesh["manifest_url"] == f"/v1/3d/{mesh_id}/manifest"
    glb = media.fetch(mesh["url"]).content
    assert glb[:4] == b"glTF" and hashlib.sha256(glb).hexdigest() == mesh["sha256"]
    manifest = media.fetch(mesh["manifest_url"])
    assert manifest.headers["content-type"] == "application/c2pa"
    report = read_sidecar(svc.provenance, glb, GLB, manifest.content)
    assert report.validation_state == "Trusted" and report.manifest_id == mesh["manifest_id"]
    assert report.assertions[JOB_LABEL] == {
        "job_id": job["id"],
        "step": 1,
        "plan_sha256": job["plan_sha256"],
        "sources": [{"step": 0, "mime": "image/png", "sha256": image["sha256"], "manifest_id": image["manifest_id"]}],
    }
    assert report.assertions[DECISION_LABEL]["request_id"] == mesh["request_id"]
    ingredients = report.raw["manifests"][report.manifest_id]["ingredients"]
    assert [(i["title"], i["relationship"]) for i in ingredients] == [(f"{job['id']}-step0", "inputTo")]
    state = media.fetch(f"/v1/3d/{mesh_id}").json()
    assert state["status"] == "completed" and state["mamori"]["manifest_ids"] == [mesh["manifest_id"]]

    # the sound step: a signed WAV whose embedded manifest carries the job and the photo as an ingredient
    wav = media.fetch(sound["url"]).content
    assert wav[:4] == b"RIFF"
    heard = svc.provenance.read(wav, "audio/wav")
    assert heard.validation_state == "Trusted"
    assert heard.assertions[JOB_LABEL] == {"job_id": job["id"], "step": 2, "plan_sha256": job["plan_sha256"]}
    ingredients = heard.raw["manifests"][heard.manifest_id]["ingredients"]
    assert [(i["title"], i["relationship"]) for i in ingredients] == [(f"{job['id']}-step0", "inputTo")]

    # each step is audited as a direct request of its modality, linked to the job
    link = {"job_id": job["id"], "plan_sha256": job["plan_sha256"]}
    for step, endpoint in enumerate(["images.generations", "meshes.create", "audio.generations"]):
        [record] = _records(svc, job["assets"][step]["request_id"], "request")
        assert record["endpoint"] == endpoint
        assert record["request"]["job"] == {**link, "step": step}
    [completed] = _records(svc, mesh["request_id"], "mesh.completed")
    assert completed["mamori"]["manifest_ids"] == [mesh["manifest_id"]]
    actions = [r["action"] for r in _records(svc, job["request_id"], "job")]
    assert actions == ["planned", "completed"]


def test_a_glb_source_is_named_by_hash_where_it_cannot_be_an_ingredient(gateway: Any) -> None:
    """c2pa reads no GLB, so an embedded manifest names a 3D source in the job assertion instead."""
    import trimesh
    from PIL import Image

    from gateway.job_plans import JobLink
    from gateway.orchestration import JobProvenance, StepSource
    from gateway.provenance import Ingredient

    provenance = gateway.services.provenance
    glb = trimesh.creation.box().export(file_type="glb")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="PNG")
    photo = provenance.sign(buf.getvalue(), "image/png", title="photo.png", decision={"decision": "allow"})
    sources = (
        StepSource(0, Ingredient(photo.data, "image/png", "job_x-step0", "inputTo"), "aa" * 32, photo.manifest_id),
        StepSource(1, Ingredient(glb, GLB, "job_x-step1", "inputTo"), hashlib.sha256(glb).hexdigest(), "urn:c2pa:m"),
    )
    signer = JobProvenance(provenance, JobLink("job_x", 2, "ff" * 32, sources))
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 30, 200)).save(buf, format="PNG")
    signed = signer.sign(buf.getvalue(), "image/png", title="step2.png", decision={"decision": "allow"})
    report = provenance.read(signed.data, "image/png")
    assert report.validation_state == "Trusted"
    assert report.assertions[JOB_LABEL] == {
        "job_id": "job_x",
        "step": 2,
        "plan_sha256": "ff" * 32,
        "sources": [{"step": 1, "mime": GLB, "sha256": hashlib.sha256(glb).hexdigest(), "manifest_id": "urn:c2pa:m"}],
    }
    ingredients = report.raw["manifests"][report.manifest_id]["ingredients"]
    assert [(i["title"], i["relationship"]) for i in ingredients] == [("job_x-step0", "inputTo")]


# ---------------------------------------------------------------------- held steps


def _plan_word(media: MediaJobs, outline: tuple[str, ...], instruction: str = HELD_INSTRUCTION) -> str:
    """A word the planner will write into the job's first step and that is not in the instruction."""
    from gateway.orchestration import limits_for

    svc = media.services
    limits: PlanLimits = limits_for(svc, max_steps=len(outline), outline=outline)
    text = svc.planner.plan(instruction, plan_schema(limits), max_new_tokens=svc.settings.planner_max_new_tokens)
    plan = parse_plan(text, limits)
    words = sorted(set(re.findall(r"[a-z]{4,}", plan.steps[0].prompt.lower())) - set(instruction.lower().split()))
    assert words, plan
    return words[0]


@pytest.fixture
def protect(media: MediaJobs, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Register a word as a protected brand: a prompt naming it escalates (prescreen.protected_name)."""
    from detectors.protected_names import ProtectedNames

    def register(word: str) -> None:
        detector = ProtectedNames(names=[{"name": word, "kind": "brand"}])
        detector.load()
        detectors = [*media.services.prescreen_detectors, detector]
        monkeypatch.setattr(media.services, "prescreen_detectors", detectors)

    return register


def _held_job(media: MediaJobs, protect: Any, modality: str, seed: int) -> dict[str, Any]:
    protect(_plan_word(media, (modality,)))
    body = {"instruction": HELD_INSTRUCTION, "max_steps": 1, "modalities": [modality], "seed": seed}
    job = media.create(body)
    assert job["status"] == "paused", job
    [step] = job["steps"]
    assert step["status"] == "held" and step["escalation_id"] and job["assets"] == []
    assert "prescreen.protected_name" in [r["code"] for r in step["reasons"]]
    return job


MIMES = {"speech": "audio/wav", "sound": "audio/wav", "video": "video/mp4", "3d": "model/gltf-binary"}


@pytest.mark.parametrize("modality", ["speech", "sound", "video", "3d"])
def test_a_held_step_of_any_holdable_modality_pauses_the_job_until_approved(
    media: MediaJobs, protect: Any, modality: str
) -> None:
    job = _held_job(media, protect, modality, seed=31)
    escalation = job["steps"][0]["escalation_id"]
    approved = media.client.post(
        f"/v1/escalations/{escalation}/approve", json={"reason": "our brand"}, headers=media.auth("supervisor")
    )
    assert approved.status_code == 200, approved.text
    done = media.get(job["id"])
    assert done["status"] == "completed", done
    assert [s["status"] for s in done["steps"]] == ["released"]
    [asset] = done["assets"]
    assert asset["mime"] == MIMES[modality]
    data = media.fetch(asset["url"]).content
    assert hashlib.sha256(data).hexdigest() == asset["sha256"]
    if modality == "3d":  # a GLB's manifest is a sidecar beside it, signed at approval with the job's assertion
        from gateway.provenance_sidecar import read_sidecar

        sidecar = media.fetch(asset["manifest_url"]).content
        report = read_sidecar(media.services.provenance, data, asset["mime"], sidecar)
    else:
        report = media.services.provenance.read(data, asset["mime"])
    assert report.validation_state == "Trusted" and report.manifest_id == asset["manifest_id"]
    assert report.assertions[JOB_LABEL]["job_id"] == job["id"] and report.assertions[JOB_LABEL]["step"] == 0
    assert report.assertions[JOB_LABEL]["plan_sha256"] == job["plan_sha256"]
    assert report.assertions[DECISION_LABEL]["review"]["action"] == "approved"
    if modality in ("video", "3d"):  # the held row's own object completes with the review
        row_url = {"video": "/v1/videos/{}", "3d": "/v1/3d/{}"}[modality]
        row_id = done["steps"][0]["video_id" if modality == "video" else "mesh_id"]
        row = media.fetch(row_url.format(row_id)).json()
        assert row["status"] == "completed" and row["mamori"]["review"]["action"] == "approved"
    actions = [r["action"] for r in _records(media.services, job["request_id"], "job")]
    assert actions == ["planned", "paused", "completed"]
    # the progress stream (it ends at the final state) shows the pause with its escalation, then the rest
    events = media.client.get(f"{JOBS}/{job['id']}/events", headers=media.auth("requester")).text
    names = re.findall(r"^event: (\S+)$", events, flags=re.M)
    assert names[names.index("job.paused") :] == [
        "job.paused",
        "step.completed",
        "job.resumed",
        "job.completed",
    ]
    paused = [block for block in events.split("\n\n") if "event: job.paused" in block]
    assert len(paused) == 1 and escalation in paused[0]


def test_a_rejected_held_step_fails_the_job(media: MediaJobs, protect: Any) -> None:
    job = _held_job(media, protect, "sound", seed=32)
    escalation = job["steps"][0]["escalation_id"]
    rejected = media.client.post(
        f"/v1/escalations/{escalation}/reject", json={"reason": "not ours"}, headers=media.auth("supervisor")
    )
    assert rejected.status_code == 200, rejected.text
    failed = media.get(job["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "step_rejected"
    assert "review.rejected" in [r["code"] for r in failed["error"]["reasons"]]
    assert failed["assets"] == [] and failed["steps"][0]["status"] == "refused"


# ---------------------------------------------------------------------- cancelling a paused job


@pytest.mark.parametrize("modality", ["speech", "video"])
def test_cancelling_a_paused_job_withdraws_its_review_item(media: MediaJobs, protect: Any, modality: str) -> None:
    svc = media.services
    job = _held_job(media, protect, modality, seed=34)
    escalation = job["steps"][0]["escalation_id"]
    request_id = job["steps"][0]["request_id"]
    held = svc.requests.get(request_id)
    assert held is not None and held.status == "held"
    blobs = [a.held_blob for a in held.assets if a.held_blob]
    assert blobs and all(svc.blobs.exists(b) for b in blobs)

    cancelled = media.client.post(f"{JOBS}/{job['id']}/cancel", headers=media.auth("requester"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    # the item left the queue, closed by the system with a reason; the held request is refused
    item = svc.escalations.get(escalation)
    assert item.status == "rejected" and item.decided_by == "system"
    assert job["id"] in (item.decision_reason or "")
    assert escalation not in [e.id for e in svc.escalations.list(tenant="acme", status="open", limit=1000)]
    polled = media.fetch(f"/v1/requests/{request_id}").json()
    assert polled["mamori"]["status"] == "refused" and polled["data"] == []
    assert "job.cancelled" in [r["code"] for r in polled["mamori"]["reasons"]]
    assert not any(svc.blobs.exists(b) for b in blobs)  # dropped as after a rejection (no retention set)
    if modality == "video":
        video = media.fetch(f"/v1/videos/{job['steps'][0]['video_id']}").json()
        assert video["status"] == "failed"
        gone = media.client.get(f"/v1/videos/{video['id']}/content", headers=media.auth("requester"))
        assert gone.status_code == 404

    # audited: the withdrawal (a review record) and the job's cancel, which names it
    [review] = [r for r in _records(svc, request_id, "review") if r["action"] == "withdrawn"]
    assert review["escalation_id"] == escalation and review["job_id"] == job["id"]
    assert review["reviewer"] == {"key_id": "system", "role": "system"}
    cancel = [r for r in _records(svc, job["request_id"], "job") if r["action"] == "cancelled"]
    assert cancel[-1]["withdrawn"] == {"escalation_id": escalation, "request_id": request_id}

    # a supervisor can no longer act on it, and nothing wakes the job
    late = media.client.post(
        f"/v1/escalations/{escalation}/approve", json={"reason": "late"}, headers=media.auth("supervisor")
    )
    assert late.status_code == 409, late.text
    assert media.get(job["id"])["status"] == "cancelled"


def test_a_cancel_that_arrives_while_a_step_runs_withdraws_the_step_it_held(
    media: MediaJobs, protect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requester cancels while the speech backend renders; the step is then held: nothing stays open."""
    from gateway.job_store import JobRow, JobStore

    svc = media.services
    store = JobStore(svc.sessions)
    real = svc.speech_generator.synthesize

    def cancelled_meanwhile(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy import select

        with svc.sessions() as session:
            running = list(session.execute(select(JobRow.id).where(JobRow.status == "running")).scalars())
        for job_id in running:
            assert store.request_cancel(job_id) is not None
        return real(*args, **kwargs)

    protect(_plan_word(media, ("speech",)))
    monkeypatch.setattr(svc.speech_generator, "synthesize", cancelled_meanwhile)
    job = media.create({"instruction": HELD_INSTRUCTION, "max_steps": 1, "modalities": ["speech"], "seed": 35})
    assert job["status"] == "cancelled", job
    [step] = job["steps"]
    assert step["status"] == "held" and job["assets"] == []
    item = svc.escalations.get(step["escalation_id"])
    assert item.status == "rejected" and item.decided_by == "system"
    actions = [r["action"] for r in _records(svc, job["request_id"], "job")]
    assert actions == ["planned", "paused", "cancelled"]
