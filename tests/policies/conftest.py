"""The bundle's Rego tests, run once per session on regorus (the reference here; OPA's Go engine must agree).

regopy (rego-cpp 1.5, the production engine) is not used for the unit tests: building a plan for one
decision test with `with input as` took over 20 GB once decision.rego gained the template waiver.
Its production decisions are checked against the other engines on the decision corpus instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy import TestReport, default_bundle_dir, load_bundle
from gateway.policy_engines import RegorusEngine

BUNDLE = default_bundle_dir()

EXTRA_TEST = "package mamori.extra_test\n\nimport rego.v1\n\ntest_false if {\n\tfalse\n}\n\ntest_true if {\n\ttrue\n}\n"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="session")
def rego_report(tmp_path_factory: pytest.TempPathFactory) -> TestReport:
    """The shipped bundle's Rego tests on regorus."""
    return RegorusEngine(load_bundle(BUNDLE), tmp_path_factory.mktemp("regorus")).run_tests()


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
def mutated_report(mutated_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> TestReport:
    return RegorusEngine(load_bundle(mutated_bundle), tmp_path_factory.mktemp("regorus-mutated")).run_tests()
