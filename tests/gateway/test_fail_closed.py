"""Faults inside the gateway fail closed: nothing unvetted is released, and the audit record is written."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.policy import PolicyError
from gateway.provenance import ProvenanceError

GEN = "/v1/images/generations"


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected fault")


def _assert_closed(gateway: Any, resp: Any, code: str) -> dict[str, Any]:
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert "data" not in body or body["data"] == []
    assert body["error"]["code"] == "mamori_fault"
    assert code in [r["code"] for r in body["mamori"]["reasons"]]
    records = gateway.services.audit.for_request(resp.headers["x-request-id"])
    assert len(records) == 1
    payload = records[0].payload
    assert payload["status"] == "refused"
    assert payload["faults"], "the fault is recorded"
    assert all(a["status"] != "released" for a in payload["assets"])
    return payload


def _generate(gateway: Any) -> Any:
    return gateway.client.post(
        GEN, json={"prompt": "a quiet harbour", "size": "64x64", "seed": 3}, headers=gateway.auth("requester")
    )


@pytest.mark.parametrize("which", ["prescreen", "image"])
def test_detector_crash_releases_nothing(gateway: Any, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    detectors = gateway.services.prescreen_detectors if which == "prescreen" else gateway.services.image_detectors
    monkeypatch.setattr(detectors[0], "detect", _boom)
    if hasattr(detectors[0], "detect_batch"):
        monkeypatch.setattr(detectors[0], "detect_batch", _boom)
    payload = _assert_closed(gateway, _generate(gateway), "system.detector_error")
    assert payload["faults"][0]["component"] == detectors[0].name


def test_detector_timeout_releases_nothing(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = gateway.services.image_detectors[-1]
    monkeypatch.setattr(detector, "detect", lambda *a, **k: time.sleep(2) or [])
    monkeypatch.setattr(gateway.services.settings, "detector_timeout_s", 0.2)
    _assert_closed(gateway, _generate(gateway), "system.detector_timeout")


def test_policy_failure_releases_nothing(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = gateway.services.policy
    real = policy.decide

    def failing(doc: Any) -> Any:
        if doc["stage"] == "output":
            raise PolicyError("injected")
        return real(doc)

    monkeypatch.setattr(policy, "decide", failing)
    payload = _assert_closed(gateway, _generate(gateway), "system.policy_error")
    assert payload["faults"][0]["component"] == "policy"


def test_backend_failure_releases_nothing(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.services.generator, "generate", _boom)
    _assert_closed(gateway, _generate(gateway), "system.backend_error")


def test_signing_failure_releases_nothing(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_sign(*_a: Any, **_k: Any) -> Any:
        raise ProvenanceError("injected")

    monkeypatch.setattr(gateway.services.provenance, "sign", bad_sign)
    _assert_closed(gateway, _generate(gateway), "system.signing_error")


def test_audit_failure_withholds_the_answer(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.services.audit, "append", _boom)
    resp = _generate(gateway)
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "audit_unavailable"
    assert "data" not in resp.json()


def test_audit_failure_also_withdraws_the_stored_request(gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(gateway.services.audit, "append", _boom)
        resp = _generate(gateway)
    assert resp.status_code == 500
    poll = gateway.client.get(f"/v1/requests/{resp.headers['x-request-id']}", headers=gateway.auth("requester"))
    assert poll.status_code == 200
    assert poll.json()["mamori"]["status"] == "refused"
    assert poll.json()["data"] == []
    assert "system.audit_error" in [r["code"] for r in poll.json()["mamori"]["reasons"]]


def test_a_timed_out_call_keeps_its_slot_until_it_really_ends() -> None:
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from gateway.pipeline import in_pool

    running = 0
    peak = 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1

    async def main() -> list[bool]:
        pool = ThreadPoolExecutor(1)

        async def one() -> bool:
            try:
                await in_pool(pool, slow, timeout=0.05)
            except TimeoutError:
                return False
            return True

        results = await asyncio.gather(*(one() for _ in range(4)))
        pool.shutdown(wait=True)
        return list(results)

    assert asyncio.run(main()) == [False] * 4
    assert peak == 1  # never two generations at once on a pool of one, timeouts or not


def test_generator_pool_is_bounded_by_the_configured_concurrency(gateway: Any) -> None:
    assert gateway.services.generator_pool._max_workers == gateway.services.settings.generator_concurrency


def _slow_finding(name: str, delay: float, log: list[tuple[str, str, float]]) -> Any:
    from detectors.base import Finding

    def detect(*_a: Any, **_k: Any) -> list[Finding]:
        log.append((name, "start", time.perf_counter()))
        time.sleep(delay)
        log.append((name, "end", time.perf_counter()))
        return [Finding(detector=name, category="probe", score=0.01, explanation="probe")]

    return detect


def test_prescreen_detectors_run_side_by_side_and_keep_their_order(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = gateway.services.prescreen_detectors[:2]
    log: list[tuple[str, str, float]] = []
    monkeypatch.setattr(first, "detect", _slow_finding(first.name, 0.6, log))  # ends last
    monkeypatch.setattr(second, "detect", _slow_finding(second.name, 0.2, log))
    resp = _generate(gateway)
    assert resp.status_code == 200, resp.text
    at = {(name, what): t for name, what, t in log}
    assert at[(second.name, "start")] < at[(first.name, "end")], "the second detector did not wait for the first"
    payload = gateway.services.audit.for_request(resp.headers["x-request-id"])[0].payload
    probes = [f["detector"] for f in payload["findings"] if f.get("category") == "probe"]
    assert probes == [first.name, second.name], "findings follow the configured detector order"


def test_a_prescreen_fault_fails_closed_after_the_other_detectors_end(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = gateway.services.prescreen_detectors[:2]
    log: list[tuple[str, str, float]] = []
    monkeypatch.setattr(first, "detect", _slow_finding(first.name, 0.3, log))
    monkeypatch.setattr(second, "detect", _boom)
    payload = _assert_closed(gateway, _generate(gateway), "system.detector_error")
    assert [f["component"] for f in payload["faults"]] == [second.name]
    assert (first.name, "end") in {(n, w) for n, w, _ in log}


# ---------------------------------------------------------------- an unexpected fault answers with a reason


def _edit_upload(gateway: Any) -> Any:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 140)).save(buf, format="PNG")
    files = {"image": ("src.png", buf.getvalue(), "image/png")}
    data = {"prompt": "make it blue", "size": "64x64"}
    return gateway.client.post("/v1/images/edits", files=files, data=data, headers=gateway.auth("requester"))


GOVERNED_CALLS = {
    "generations": _generate,
    "edits": _edit_upload,
    "videos": lambda gateway: gateway.client.post(
        "/v1/videos",
        json={"model": "wan-2.1-tiny", "prompt": "a quiet harbour", "seconds": "4", "size": "32x32", "seed": 7},
        headers=gateway.auth("requester"),
    ),
}


@pytest.mark.parametrize("route", list(GOVERNED_CALLS))
def test_an_unexpected_fault_answers_with_its_reason_and_request_id(
    gateway: Any, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    monkeypatch.setattr(gateway.services.policy, "data", _boom)  # fails in detection_context
    resp = GOVERNED_CALLS[route](gateway)
    assert resp.status_code == 500, resp.text
    body = resp.json()
    assert body["error"]["code"] == "mamori_fault" and "system.internal_error" in body["error"]["message"]
    assert "injected" not in resp.text and "RuntimeError" not in resp.text  # no exception text
    mamori = body["mamori"]
    assert mamori["request_id"] == resp.headers["x-request-id"]
    assert (mamori["status"], mamori["decision"]) == ("refused", "block")
    assert [r["code"] for r in mamori["reasons"]] == ["system.internal_error"]
    assert mamori["policy_revision"] == gateway.services.policy.revision
    (record,) = gateway.services.audit.for_request(resp.headers["x-request-id"])
    payload = record.payload
    assert payload["error"]["code"] == "mamori_fault" and payload["http_status"] == 500
    assert payload["faults"][-1] == {"component": "gateway", "stage": "unhandled", "error": "RuntimeError"}
    blocks = [d for d in payload["decisions"] if d["decision_id"] == mamori["decision_id"]]
    assert [(d["stage"], [r["code"] for r in d["reasons"]]) for d in blocks] == [("gateway", ["system.internal_error"])]


def test_an_unexpected_fault_off_the_governed_paths_names_its_reason_too(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway.services.policy, "data", _boom)
    resp = gateway.client.get("/v1/policy", headers=gateway.auth("admin"))
    assert resp.status_code == 500
    assert "injected" not in resp.text
    mamori = resp.json()["mamori"]
    assert mamori["request_id"] == resp.headers["x-request-id"]
    assert [r["code"] for r in mamori["reasons"]] == ["system.internal_error"]
