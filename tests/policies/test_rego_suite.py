"""The Rego unit tests (`policies/**/*_test.rego`) run through the embedded engine, like `opa test`."""

from __future__ import annotations

import pytest

from gateway.policy import TestReport, default_bundle_dir, load_bundle

BUNDLE = default_bundle_dir()


@pytest.fixture
def report(rego_report: TestReport) -> TestReport:
    return rego_report


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


def test_a_loosened_threshold_fails_tests(mutated_report: TestReport) -> None:
    assert "mamori.output_test.test_sexual_image_blocks" in mutated_report.failed
    assert "mamori.decision_test.test_block_beats_escalate" in mutated_report.failed
    assert "mamori.access_test.test_requester_may_generate" in mutated_report.passed


def test_a_broken_rule_fails_tests(mutated_report: TestReport) -> None:
    assert "mamori.access_test.test_requester_may_not_decide_escalations" in mutated_report.failed
    assert "mamori.access_test.test_supervisor" in mutated_report.failed
    assert "mamori.access_test.test_admin_unknown_endpoint_denied" in mutated_report.passed  # known_endpoint holds
    assert "mamori.access_test.test_unknown_role_denied" in mutated_report.passed


def test_a_failing_test_reports_why(mutated_report: TestReport) -> None:
    assert "mamori.extra_test.test_false" in mutated_report.failed
    assert mutated_report.errors["mamori.extra_test.test_false"] == "undefined"
    assert "mamori.extra_test.test_true" in mutated_report.passed
    assert not mutated_report.ok
