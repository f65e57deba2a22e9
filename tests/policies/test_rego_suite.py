"""The Rego unit tests (`policies/**/*_test.rego`) run through the embedded engine, like `opa test`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy import RegoEngine, default_bundle_dir, load_bundle

BUNDLE = default_bundle_dir()


@pytest.fixture(scope="module")
def report() -> object:
    return RegoEngine(BUNDLE).run_tests()


def test_every_rego_test_passes(report: object) -> None:
    from gateway.policy import TestReport

    assert isinstance(report, TestReport)
    details = "\n".join(f"{name}: {report.errors.get(name, '')}" for name in report.failed)
    assert not report.failed, details
    assert report.ok
    assert len(report.passed) >= 50


def test_every_test_rule_is_found(report: object) -> None:
    from gateway.policy import TestReport

    assert isinstance(report, TestReport)
    bundle = load_bundle(BUNDLE)
    declared = sum(
        len({line.split()[0] for line in source.splitlines() if line.startswith("test_")})
        for source in bundle.tests.values()
    )
    assert len(report.passed) + len(report.failed) == declared
    for package in ("access", "prescreen", "output", "decision", "lib"):
        assert any(name.startswith(f"mamori.{package}_test.") for name in report.passed), package


def edited_bundle(tmp_path: Path, file: str, old: str, new: str) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(BUNDLE, target)
    text = (target / file).read_text()
    assert old in text
    (target / file).write_text(text.replace(old, new))
    return target


def test_a_loosened_threshold_fails_tests(tmp_path: Path) -> None:
    path = edited_bundle(tmp_path, "data.yaml", "image_sexual_block: 0.8", "image_sexual_block: 0.95")
    report = RegoEngine(path).run_tests()
    assert "mamori.output_test.test_sexual_image_blocks" in report.failed
    assert "mamori.decision_test.test_block_beats_escalate" in report.failed
    assert "mamori.access_test.test_requester_may_generate" in report.passed


def test_a_broken_rule_fails_tests(tmp_path: Path) -> None:
    path = edited_bundle(
        tmp_path,
        "mamori/access.rego",
        'permitted in {input.request.endpoint, "*"}',
        "true",
    )
    report = RegoEngine(path).run_tests()
    assert "mamori.access_test.test_requester_may_not_decide_escalations" in report.failed
    assert "mamori.access_test.test_supervisor" in report.failed
    assert "mamori.access_test.test_admin_unknown_endpoint_denied" in report.passed  # known_endpoint holds
    assert "mamori.access_test.test_unknown_role_denied" in report.passed


def test_a_failing_test_reports_why(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    shutil.copytree(BUNDLE, target)
    (target / "mamori" / "extra_test.rego").write_text(
        "package mamori.extra_test\n\nimport rego.v1\n\ntest_false if {\n\tfalse\n}\n\ntest_true if {\n\ttrue\n}\n"
    )
    report = RegoEngine(target).run_tests()
    assert "mamori.extra_test.test_false" in report.failed
    assert report.errors["mamori.extra_test.test_false"] == "undefined"
    assert "mamori.extra_test.test_true" in report.passed
    assert not report.ok
