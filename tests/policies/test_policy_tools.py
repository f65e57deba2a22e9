"""`mamori policy test|serve|reload|replay`, policy data changes, the file watch and the release helper."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli import app
from gateway.policy import OpaServerEngine, PolicyError, RegoEngine, default_bundle_dir, start_policy_watch
from gateway.policy_data import PolicyDataError, change_data, merge_patch, validate
from gateway.release import release_decision

BUNDLE = default_bundle_dir()
CORPUS = json.loads((Path(__file__).parent / "decision_corpus.json").read_text(encoding="utf-8"))["cases"]
runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(BUNDLE, target, ignore=shutil.ignore_patterns(".mamori.lock", ".reload"))
    return target


def mamori_data(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((bundle / "data.yaml").read_text())["mamori"]
    return data


# --- mamori policy test -------------------------------------------------------------------------


def test_policy_test_passes_and_reports_coverage() -> None:
    code, out = _run("policy", "test", "--engine", "regorus")
    assert code == 0, out
    assert "regorus: 93 passed, 0 failed" in out or "passed, 0 failed" in out
    assert "rule coverage" in out and "mamori/release.rego" in out


def test_policy_test_fails_on_a_failing_test(bundle: Path) -> None:
    data = bundle / "data.yaml"
    data.write_text(data.read_text().replace("image_sexual_block: 0.8", "image_sexual_block: 0.95"))
    code, out = _run("policy", "test", "--bundle", str(bundle), "--engine", "regorus")
    assert code == 1
    assert "FAIL mamori.output_test.test_sexual_image_blocks" in out


def test_policy_test_names_file_and_line_of_a_compile_error(bundle: Path) -> None:
    (bundle / "mamori" / "output.rego").write_text(
        "package mamori.output\n\nimport rego.v1\n\nx := 1\n\nthis is not rego {\n"
    )
    code, out = _run("policy", "test", "--bundle", str(bundle))
    assert code == 1
    assert "mamori/output.rego:7" in out


def test_policy_test_refuses_a_bad_data_file(bundle: Path) -> None:
    (bundle / "data.yaml").write_text("mamori: [unclosed\n")
    code, out = _run("policy", "test", "--bundle", str(bundle))
    assert code == 1
    assert "data.yaml" in out and "line" in out


# --- policy data changes --------------------------------------------------------------------------


def test_patch_changes_a_threshold_atomically(bundle: Path) -> None:
    engine = RegoEngine(bundle)
    before = engine.revision
    change = change_data(bundle, patch={"thresholds": {"pii": 0.7}, "terms": [{"term": "x-ray", "category": "t"}]})
    assert change.revision_before == before and change.revision_after.startswith(before + "+data.")
    assert change.summary["thresholds"] == {"pii": {"before": 0.5, "after": 0.7}}
    assert change.summary["terms"]["count"] == 1 and "x-ray" not in json.dumps(change.summary)
    engine.reload()
    assert engine.revision == change.revision_after
    assert engine.data()["mamori"]["thresholds"]["pii"] == 0.7
    assert engine.data()["mamori"]["floor"]["categories"] == ["csam", "sexual_minors"]  # untouched


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"thresholds": {"pii": 1.5}}, "thresholds.pii must be a number from 0 to 1"),
        ({"thresholds": {"pii": None}}, "thresholds.pii is required"),
        ({"tenants": {"lax": {"thresholds": {"image_sexual_block": 0.95}}}}, "would loosen the global 0.8"),
        ({"tenants": {"lax": {"floor": {"categories": []}}}}, "a tenant cannot change the floor"),
        ({"tenants": {"lax": {"review": {"sexual": {"approvals": 0}}}}}, "approvals must be an integer"),
        ({"terms": [{"term": "", "category": "x"}]}, "terms[0].term"),
        ({"floor": {"categories": []}}, "floor: not changeable through the API"),
        ({"roles": {"compliance": ["*"]}}, "roles: not changeable"),
        ({"review": {"sexual": {"priority": "urgent"}}}, "review.sexual.priority must be one of"),
    ],
)
def test_invalid_data_is_refused_and_nothing_changes(bundle: Path, patch: Any, reason: str) -> None:
    before = (bundle / "data.yaml").read_text(), (bundle / ".manifest").read_text()
    with pytest.raises(PolicyDataError) as info:
        change_data(bundle, patch=patch)
    assert reason in str(info.value)
    assert ((bundle / "data.yaml").read_text(), (bundle / ".manifest").read_text()) == before


def test_put_needs_every_changeable_key(bundle: Path) -> None:
    with pytest.raises(PolicyDataError, match="terms is required in a PUT"):
        change_data(bundle, replace={"thresholds": mamori_data(bundle)["thresholds"]})
    current = mamori_data(bundle)
    body = {k: current[k] for k in ("thresholds", "terms", "tenants", "review")}
    body["tenants"] = {}
    change = change_data(bundle, replace=body)
    assert mamori_data(bundle)["tenants"] == {}
    assert change.summary["tenants"]["removed"] == ["example-strict"]


def test_validate_shipped_data_and_merge_patch() -> None:
    assert validate(yaml.safe_load((BUNDLE / "data.yaml").read_text())["mamori"]) == []
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}


# --- hot reload: the file watch and `mamori policy reload` ---------------------------------------------


def test_watch_reloads_on_change_and_keeps_the_old_bundle_when_invalid(bundle: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    audit = SimpleNamespace(append=lambda event, payload, **_: events.append((event, payload)))
    services = SimpleNamespace(policy=RegoEngine(bundle), audit=audit)
    stop = start_policy_watch(services, interval_s=0.1)
    try:
        before = services.policy.revision
        change_data(bundle, patch={"thresholds": {"pii": 0.9}})
        assert wait_for(lambda: services.policy.revision != before)
        assert services.policy.data()["mamori"]["thresholds"]["pii"] == 0.9
        assert wait_for(lambda: any(e == "policy.reload" for e, _ in events))
        good = services.policy.revision
        (bundle / "mamori" / "output.rego").write_text("package mamori.output\n\nthis is not rego {\n")
        assert wait_for(lambda: any(e == "policy.reload_rejected" for e, _ in events))
        assert services.policy.revision == good
        assert services.policy.decide(CORPUS[0]["input"]).action == CORPUS[0]["expected"]["action"]
    finally:
        stop()


def test_reload_command_marks_a_valid_bundle_and_refuses_an_invalid_one(bundle: Path) -> None:
    code, out = _run("policy", "reload", "--bundle", str(bundle))
    assert code == 0, out
    assert (bundle / ".reload").exists()
    marker = (bundle / ".reload").read_text()
    (bundle / "mamori" / "lib.rego").write_text("package mamori.lib\n\nthis is not rego {\n")
    code, out = _run("policy", "reload", "--bundle", str(bundle))
    assert code == 1 and "mamori/lib.rego:3" in out
    assert (bundle / ".reload").read_text() == marker  # running gateways are not told


def test_reload_marker_triggers_the_watch(bundle: Path) -> None:
    services = SimpleNamespace(policy=RegoEngine(bundle), audit=None)
    data = bundle / "data.yaml"
    text = data.read_text().replace("pii: 0.5 ", "pii: 0.6 ")
    stat = data.stat()
    data.write_text(text)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the watch cannot see it
    stop = start_policy_watch(services, interval_s=0.1)  # started after the edit, so no race with it
    try:
        assert not wait_for(lambda: services.policy.data()["mamori"]["thresholds"]["pii"] == 0.6, 0.5)
        assert _run("policy", "reload", "--bundle", str(bundle))[0] == 0
        assert wait_for(lambda: services.policy.data()["mamori"]["thresholds"]["pii"] == 0.6)
    finally:
        stop()


# --- replay ---------------------------------------------------------------------------------------------


def _audit(tmp_path: Path) -> Any:
    from audit.store import AuditStore
    from gateway.bootstrap import open_database
    from gateway.settings import Settings

    engine, sessions = open_database(Settings(data_dir=tmp_path / "data"))
    return engine, sessions, AuditStore(sessions)


def test_replay_reports_changed_decisions_without_writing(tmp_path: Path, bundle: Path) -> None:
    engine, _sessions, store = _audit(tmp_path)
    policy = RegoEngine(BUNDLE)
    for i, case in enumerate(CORPUS):
        d = policy.decide(case["input"]).to_dict()
        tenant = case["input"].get("principal", {}).get("tenant")
        decisions = [{"stage": case["input"].get("stage"), **d, "input": case["input"]}]
        store.append("request", {"decisions": decisions}, request_id=f"req-{i}", tenant=tenant)
    store.append("policy.reload", {"by": "test"})
    engine.dispose()
    head = store.head()
    count = head.seq

    change_data(bundle, patch={"thresholds": {"image_sexual_review": 0.55}})
    data_dir = str(tmp_path / "data")
    code, out = _run("policy", "replay", "--bundle", str(bundle), "--data-dir", data_dir, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["records"] == len(CORPUS) and report["decisions"] == len(CORPUS)
    changed = {c["request_id"]: c for c in report["changes"]}
    expected = {
        f"req-{i}"
        for i, c in enumerate(CORPUS)
        if c["input"].get("stage") == "output"
        and c["expected"]["action"] == "escalate"
        and any(f.get("category") == "sexual" and 0.4 <= f["score"] < 0.55 for f in c["input"]["findings"])
        and c["input"]["principal"]["tenant"] == "acme"
    }
    assert expected and expected <= set(changed)
    assert report["by_action"].get("escalate->allow", 0) >= 1
    assert report["reasons_removed"]["output.unsafe_image_review"] >= 1
    some = changed[sorted(expected)[0]]
    assert some["before"]["action"] == "escalate" and some["after"]["action"] in ("allow", "escalate")

    code, out = _run("policy", "replay", "--bundle", str(bundle), "--data-dir", data_dir, "--tenant", "nobody")
    assert code == 0 and "replayed 0 decisions" in out
    code, out = _run("policy", "replay", "--bundle", str(BUNDLE), "--data-dir", data_dir, "--since", "2000-01-01")
    assert code == 0 and "0 would change" in out
    code, out = _run("policy", "replay", "--bundle", str(bundle), "--data-dir", data_dir, "--until", "2000-01-01")
    assert "replayed 0 decisions" in out
    assert _run("policy", "replay", "--bundle", str(bundle), "--data-dir", data_dir, "--since", "yesterday")[0] == 2

    after = store.head()
    assert (after.seq, after.record_hash) == (count, head.record_hash)  # nothing was written


# --- release helper ------------------------------------------------------------------------------------


def test_release_decision_helper() -> None:
    policy = RegoEngine(BUNDLE)
    supervisor = {"key_id": "k_sup", "tenant": "acme", "role": "supervisor"}
    request = {"id": "r1", "endpoint": "images.generations", "review": {"approvals": 2, "category": "sexual"}}
    held = release_decision(policy, supervisor, request, [{"key_id": "k_sup", "role": "supervisor"}], "k_req")
    assert held.action == "escalate" and held.obligations["review"]["have"] == 1
    mine = release_decision(policy, supervisor, request, [{"key_id": "k_req", "role": "admin"}], "k_req")
    assert [r.code for r in mine.reasons] == ["release.awaiting_approvals", "release.self_approval"]
    two = [{"key_id": "a", "role": "supervisor"}, {"key_id": "b", "role": "compliance"}]
    assert release_decision(policy, supervisor, request, two, "k_req").action == "allow"
    minors = {**request, "findings": [{"detector": "image_safety", "category": "sexual_minors", "score": 0.9}]}
    assert release_decision(policy, supervisor, minors, two, "k_req").action == "block"


# --- mamori policy serve + the OPA-server engine -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "policy", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return process.poll() is not None

        assert wait_for(up, 30.0)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_opa_server_engine_against_policy_serve_matches_in_process(served: str) -> None:
    remote = OpaServerEngine(served, BUNDLE)
    local = RegoEngine(BUNDLE)
    try:
        for case in CORPUS:
            a, b = remote.decide(case["input"]).to_dict(), local.decide(case["input"]).to_dict()
            assert {k: a[k] for k in ("action", "reasons", "obligations")} == case["expected"], case["name"]
            assert {k: b[k] for k in ("action", "reasons", "obligations")} == case["expected"], case["name"]
            assert a["revision"] == b["revision"]
    finally:
        remote.close()


def test_policy_serve_refuses_a_broken_bundle(bundle: Path) -> None:
    (bundle / "mamori" / "decision.rego").write_text("package mamori.decision\n\nx := \n")
    code, out = _run("policy", "serve", "--bundle", str(bundle), "--port", str(_free_port()))
    assert code == 1 and "mamori/decision.rego" in out


def test_policy_error_is_exported() -> None:
    assert issubclass(PolicyDataError, PolicyError)
