"""Rego test runs are slow (each builds every test plan), so each bundle is run once per session here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy import RegoEngine, TestReport, default_bundle_dir

BUNDLE = default_bundle_dir()

EXTRA_TEST = "package mamori.extra_test\n\nimport rego.v1\n\ntest_false if {\n\tfalse\n}\n\ntest_true if {\n\ttrue\n}\n"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="session")
def rego_report() -> TestReport:
    """The shipped bundle's Rego tests on the embedded engine (regopy)."""
    return RegoEngine(BUNDLE).run_tests()


@pytest.fixture(scope="session")
def mutated_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle with a loosened threshold, a broken access rule and a deliberately failing test."""
    target = tmp_path_factory.mktemp("mutated") / "bundle"
    shutil.copytree(BUNDLE, target)
    _edit(target / "data.yaml", "image_sexual_block: 0.8", "image_sexual_block: 0.95")
    _edit(target / "mamori" / "access.rego", 'permitted in {input.request.endpoint, "*"}', "true")
    (target / "mamori" / "extra_test.rego").write_text(EXTRA_TEST)
    return target


@pytest.fixture(scope="session")
def mutated_report(mutated_bundle: Path) -> TestReport:
    return RegoEngine(mutated_bundle).run_tests()
