"""Independent engines, one behaviour: the Rego tests and a corpus of recorded decision inputs give
identical results on regorus (opa-eval) and, where installed, the OPA Go engine
(opa-golib-python-bindings); the corpus decisions also on regopy (rego-cpp), the production engine,
whose test-plan builder runs out of memory on the decision tests (see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import Bundle, RegoEngine, TestReport, default_bundle_dir, load_bundle
from gateway.policy_engines import OpaGoEngine, RegorusEngine, flatten, list_test_rules, opa_available, rule_coverage

BUNDLE = default_bundle_dir()
CORPUS = json.loads((Path(__file__).parent / "decision_corpus.json").read_text(encoding="utf-8"))["cases"]
ENGINES = ["regopy", "regorus", "opa"]


def outcome(report: TestReport) -> dict[str, bool]:
    return {**{t: True for t in report.passed}, **{t: False for t in report.failed}}


def make_engine(kind: str, bundle: Bundle, tmp: Path, *, with_tests: bool = False) -> Any:
    if kind == "regopy":
        return RegoEngine(bundle.root)
    if kind == "regorus":
        pytest.importorskip("opa_eval")
        return RegorusEngine(bundle, tmp)
    if not opa_available():
        pytest.skip("opa-golib-python-bindings is not installed (see .ci/run)")
    return OpaGoEngine(bundle, with_tests=with_tests)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_engine(request.param, load_bundle(BUNDLE), tmp_path_factory.mktemp(request.param))


def test_corpus_is_broad() -> None:
    stages = {c["input"].get("stage") for c in CORPUS}
    assert {"access", "prescreen", "output", "release"} <= stages
    assert len(CORPUS) >= 40
    assert {c["expected"]["action"] for c in CORPUS} == {"allow", "redact", "escalate", "block"}


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_corpus_decisions(engine: Any, case: dict[str, Any]) -> None:
    decision = engine.decide(case["input"]).to_dict()
    assert {k: decision[k] for k in ("action", "reasons", "obligations")} == case["expected"]


@pytest.mark.parametrize("kind", ["opa"])
def test_rego_test_corpus_same_outcome(kind: str, tmp_path: Path, rego_report: TestReport) -> None:
    reference = outcome(rego_report)  # regorus
    assert reference and all(reference.values())
    other = make_engine(kind, load_bundle(BUNDLE), tmp_path, with_tests=True)
    assert outcome(other.run_tests()) == reference


@pytest.mark.parametrize("kind", ["opa"])
def test_a_mutated_bundle_fails_the_same_tests_everywhere(
    kind: str, tmp_path: Path, mutated_bundle: Path, mutated_report: TestReport
) -> None:
    reference = outcome(mutated_report)  # regorus
    assert not all(reference.values())
    other = make_engine(kind, load_bundle(mutated_bundle), tmp_path, with_tests=True)
    assert outcome(other.run_tests()) == reference


def test_flatten_names_and_coverage() -> None:
    bundle = load_bundle(BUNDLE)
    flat = flatten(bundle)
    assert flat.source.startswith("package flat")
    assert "mamori__decision__decision" in flat.source
    assert "data.mamori.thresholds" in flat.source  # data stays data
    assert "mamori.lib.floor_finding" in flat.rules["mamori.output.hits"].refs
    only = rule_coverage(flat, ["mamori.access_test.test_admin_unknown_endpoint_denied"])
    assert {r.name for r in only.covered["mamori/access.rego"]} == {"known_endpoint", "allowed"}
    assert only.covered["mamori/release.rego"] == []
    everything = rule_coverage(flat, list_test_rules(bundle))
    assert everything.percent == 100.0


def regenerate() -> None:
    """Re-record the expected decisions after a deliberate policy change:
    `python tests/policies/test_engines_agree.py` (then review the diff)."""
    path = Path(__file__).parent / "decision_corpus.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    engine = RegoEngine(BUNDLE)
    for case in document["cases"]:
        decision = engine.decide(case["input"]).to_dict()
        case["expected"] = {k: decision[k] for k in ("action", "reasons", "obligations")}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    regenerate()
