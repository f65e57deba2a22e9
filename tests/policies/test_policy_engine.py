"""The embedded policy engine (regopy): bundle loading, decisions, fail-closed errors, reload."""

from __future__ import annotations

import json
import math
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import (
    Decision,
    PolicyEngine,
    PolicyError,
    Reason,
    RegoEngine,
    create_engine,
    default_bundle_dir,
    load_bundle,
)

BUNDLE = default_bundle_dir()
ROLES = ["requester", "supervisor", "auditor", "compliance", "admin"]
ENDPOINTS = [
    "images.generations",
    "images.edits",
    "chat.completions",
    "audio.speech",
    "audio.generations",
    "videos.create",
    "videos.read",
    "meshes.create",
    "meshes.read",
    "requests.read",
    "escalations.list",
    "escalations.decide",
    "escalations.claim",
    "reports.read",
    "web.supervisor",
    "web.legal",
    "protected.write",
    "audit.read",
    "keys.admin",
    "assets.read",
    "policy.admin",
    "policy.data",
    "policy.evaluate",
    "templates.read",
    "templates.generate",
    "templates.write",
    "templates.approve",
    "web.staff",
    "jobs.create",
    "jobs.read",
]
PERMITTED = {
    "requester": {
        "images.generations",
        "images.edits",
        "chat.completions",
        "audio.speech",
        "audio.generations",
        "videos.create",
        "videos.read",
        "meshes.create",
        "meshes.read",
        "requests.read",
        "assets.read",
        "templates.read",
        "templates.generate",
        "web.staff",
        "jobs.create",
        "jobs.read",
    },
    "supervisor": {
        "escalations.list",
        "escalations.decide",
        "escalations.claim",
        "requests.read",
        "assets.read",
        "web.supervisor",
        "reports.read",
    },
    "auditor": {"audit.read", "requests.read", "web.legal", "reports.read"},
    "compliance": {
        "protected.write",
        "audit.read",
        "policy.admin",
        "policy.data",
        "web.legal",
        "reports.read",
        "templates.read",
        "templates.approve",
    },
    "admin": set(ENDPOINTS),
}


def make_input(stage: str, findings: list[dict[str, Any]] | None = None, **principal: str) -> dict[str, Any]:
    who = {"key_id": "k1", "tenant": "acme", "role": "requester", **principal}
    return {
        "principal": who,
        "stage": stage,
        "request": {"id": "req-1", "endpoint": principal.pop("endpoint", "images.generations")},
        "findings": findings or [],
    }


def access(role: str, endpoint: str) -> dict[str, Any]:
    return {
        "principal": {"key_id": "k1", "tenant": "acme", "role": role},
        "stage": "access",
        "request": {"id": "req-1", "endpoint": endpoint},
    }


def finding(detector: str, category: str, score: float, **evidence: Any) -> dict[str, Any]:
    return {"detector": detector, "category": category, "score": score, "evidence": evidence}


@pytest.fixture(scope="module")
def engine() -> RegoEngine:
    return RegoEngine(BUNDLE)


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


# --- bundle -----------------------------------------------------------------------------------


def test_default_bundle_dir_is_beside_gateway() -> None:
    assert Path(__file__).resolve().parents[2] / "policies" == BUNDLE
    assert (BUNDLE / ".manifest").is_file()


def test_load_bundle_reads_manifest_data_and_modules() -> None:
    bundle = load_bundle(BUNDLE)
    manifest = json.loads((BUNDLE / ".manifest").read_text())
    assert bundle.revision == manifest["revision"]
    assert manifest["roots"] == ["mamori"]
    assert "mamori/decision.rego" in bundle.modules
    assert not any(name.endswith("_test.rego") for name in bundle.modules)
    assert {"mamori/access_test.rego", "mamori/decision_test.rego"} <= set(bundle.tests)
    terms = bundle.data["mamori"]["terms"]
    assert {"term": "forbidden-zebra", "category": "denied_term"} in terms


def test_every_module_has_a_test_file() -> None:
    bundle = load_bundle(BUNDLE)
    for name in bundle.modules:
        assert name.replace(".rego", "_test.rego") in bundle.tests, name


def copy_bundle(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(BUNDLE, target)
    return target


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: (p / ".manifest").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "data.yaml").write_text("mamori: [unclosed"), "cannot parse"),
        (lambda p: (p / "data.yaml").write_text("- a list\n"), "must be a mapping"),
        (lambda p: (p / "extra.rego").write_text("package other\nx := 1\n"), "outside the bundle roots"),
        (lambda p: (p / "data.json").write_text('{"mamori": {}}'), "defined twice"),
        (lambda p: (p / "mamori" / "nopkg.rego").write_text("x := 1\n"), "no package"),
    ],
)
def test_load_bundle_rejects_bad_input(tmp_path: Path, edit: Any, message: str) -> None:
    path = copy_bundle(tmp_path)
    edit(path)
    with pytest.raises(PolicyError, match=message):
        load_bundle(path)


def test_load_bundle_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not a directory"):
        load_bundle(tmp_path / "nope")


def test_revision_defaults_to_content_digest(tmp_path: Path) -> None:
    path = copy_bundle(tmp_path)
    (path / ".manifest").unlink()
    assert load_bundle(path).revision.startswith("sha256:")


def test_engine_satisfies_protocol_and_exposes_data(engine: RegoEngine) -> None:
    assert isinstance(engine, PolicyEngine)
    assert engine.revision == load_bundle(BUNDLE).revision
    assert engine.data()["mamori"]["thresholds"]["protected_work"] == 0.75


# --- decisions --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_access_matrix(engine: RegoEngine, role: str, endpoint: str) -> None:
    decision = engine.decide(access(role, endpoint))
    if endpoint in PERMITTED[role]:
        assert decision.action == "allow"
        assert decision.reasons == ()
    else:
        assert decision.action == "block"
        assert codes(decision) == ["access.denied"]


@pytest.mark.parametrize(
    "inp",
    [
        access("root", "images.generations"),
        access("admin", "shell.exec"),
        {"stage": "access", "request": {"id": "r", "endpoint": "images.generations"}},
        {"principal": {"role": "admin"}, "stage": "access", "request": {"id": "r"}},
    ],
)
def test_access_default_deny(engine: RegoEngine, inp: dict[str, Any]) -> None:
    assert codes(engine.decide(inp)) == ["access.denied"]


@pytest.mark.parametrize("stage", ["postscreen", "", None])
def test_unknown_stage_blocks(engine: RegoEngine, stage: str | None) -> None:
    inp = make_input("x")
    inp["stage"] = stage
    decision = engine.decide(inp)
    assert decision.action == "block"
    assert codes(decision) == ["policy.unknown_stage"]


def test_empty_input_blocks(engine: RegoEngine) -> None:
    assert engine.decide({}).action == "block"


def test_prescreen_denied_term_blocks(engine: RegoEngine) -> None:
    decision = engine.decide(make_input("prescreen", [finding("denylist", "denied_term", 1.0, term_index=4)]))
    assert decision.action == "block"
    assert decision.reasons == (
        Reason(
            code="prescreen.denied_term",
            detector="denylist",
            message="the prompt contains a deny-listed term (category: denied_term)",
        ),
    )
    assert decision.obligations == {}


def test_prescreen_pii_redacts(engine: RegoEngine) -> None:
    findings = [
        finding("pii", "pii", 0.85, entity_type="PHONE_NUMBER"),
        finding("pii", "pii", 0.99, entity_type="EMAIL_ADDRESS"),
        finding("pii", "pii", 0.9, entity_type="PHONE_NUMBER"),
        finding("pii", "pii", 0.1, entity_type="PERSON"),
    ]
    decision = engine.decide(make_input("prescreen", findings))
    assert decision.action == "redact"
    assert codes(decision) == ["prescreen.pii"]
    assert decision.to_dict()["obligations"] == {"redact": ["EMAIL_ADDRESS", "PHONE_NUMBER"]}


def test_prescreen_block_beats_redact(engine: RegoEngine) -> None:
    findings = [finding("pii", "pii", 0.9, entity_type="PERSON"), finding("denylist", "weapons", 1.0)]
    decision = engine.decide(make_input("prescreen", findings))
    assert decision.action == "block"
    assert codes(decision) == ["prescreen.denied_term", "prescreen.pii"]
    assert decision.obligations == {}


@pytest.mark.parametrize(
    ("found", "code"),
    [
        (finding("image_safety", "sexual", 0.9, role="edit_source"), "prescreen.unsafe_source"),
        (finding("copyright", "protected_work", 0.95, role="edit_source"), "prescreen.protected_source"),
    ],
)
def test_prescreen_edit_sources(engine: RegoEngine, found: dict[str, Any], code: str) -> None:
    decision = engine.decide(make_input("prescreen", [found]))
    assert (decision.action, codes(decision)) == ("block", [code])


@pytest.mark.parametrize(
    ("score", "action", "code"),
    [
        (0.05, "allow", None),
        (0.39, "allow", None),
        (0.4, "escalate", "output.unsafe_image_review"),
        (0.79, "escalate", "output.unsafe_image_review"),
        (0.8, "block", "output.unsafe_image"),
        (1.0, "block", "output.unsafe_image"),
    ],
)
def test_output_image_safety_thresholds(engine: RegoEngine, score: float, action: str, code: str | None) -> None:
    decision = engine.decide(make_input("output", [finding("image_safety", "sexual", score)]))
    assert decision.action == action
    assert codes(decision) == ([code] if code else [])


def test_output_escalation_carries_review_obligation(engine: RegoEngine) -> None:
    decision = engine.decide(make_input("output", [finding("copyright", "protected_work", 0.9, distance=6)]))
    assert decision.action == "escalate"
    assert codes(decision) == ["output.protected_work"]
    assert decision.to_dict()["obligations"] == {
        "review": {"approvals": 1, "priority": "normal", "deadline_s": 86400, "category": "protected_work"}
    }
    both = engine.decide(
        make_input("output", [finding("copyright", "protected_work", 0.9), finding("image_safety", "sexual", 0.5)])
    )
    assert codes(both) == ["output.protected_work", "output.unsafe_image_review"]
    assert both.obligations["review"]["priority"] == "high"


def test_output_protected_work_threshold_is_a_quarter_weighted_distance(engine: RegoEngine) -> None:
    at = engine.decide(make_input("output", [finding("copyright", "protected_work", 1 - 0.25)]))
    below = engine.decide(make_input("output", [finding("copyright", "protected_work", 1 - 0.26)]))
    assert at.action == "escalate"
    assert below.action == "allow"


def test_tenant_may_tighten_but_not_loosen(tmp_path: Path) -> None:
    path = copy_bundle(tmp_path)
    data = (path / "data.yaml").read_text()
    data = data.replace(
        "  tenants:\n",
        "  tenants:\n    lax:\n      thresholds:\n        image_sexual_block: 0.99\n        image_sexual_review: 0.9\n",
    )
    (path / "data.yaml").write_text(data)
    lax_engine = RegoEngine(path)
    sexual = [finding("image_safety", "sexual", 0.85)]
    assert lax_engine.decide(make_input("output", sexual, tenant="lax")).action == "block"
    strict = lax_engine.decide(make_input("output", [finding("image_safety", "sexual", 0.65)], tenant="example-strict"))
    assert strict.action == "block"
    default = lax_engine.decide(make_input("output", [finding("image_safety", "sexual", 0.65)]))
    assert default.action == "escalate"


@pytest.mark.parametrize(
    "findings",
    [
        [{"detector": "image_safety", "category": "sexual", "score": "0.1"}],
        [{"detector": "image_safety", "score": 0.1}],
        "not a list",
    ],
)
def test_malformed_findings_block(engine: RegoEngine, findings: Any) -> None:
    inp = make_input("output")
    inp["findings"] = findings
    assert codes(engine.decide(inp)) == ["policy.bad_input"]


def test_missing_findings_block(engine: RegoEngine) -> None:
    inp = make_input("prescreen")
    del inp["findings"]
    assert codes(engine.decide(inp)) == ["policy.bad_input"]


def test_missing_threshold_blocks(tmp_path: Path) -> None:
    path = copy_bundle(tmp_path)
    data = (path / "data.yaml").read_text().replace("    pii: 0.5 ", "    pii_renamed: 0.5 ")
    (path / "data.yaml").write_text(data)
    decision = RegoEngine(path).decide(make_input("prescreen", [finding("pii", "pii", 0.9, entity_type="PERSON")]))
    assert codes(decision) == ["policy.misconfigured"]


def test_strings_with_quotes_survive(engine: RegoEngine) -> None:
    decision = engine.decide(make_input("prescreen", [finding("denylist", 'we"ird\\cat', 1.0)]))
    assert decision.reasons[0].message == 'the prompt contains a deny-listed term (category: we"ird\\cat)'


# --- decision values --------------------------------------------------------------------------


def test_decision_ids_and_revision(engine: RegoEngine) -> None:
    first = engine.decide(access("requester", "images.generations"))
    second = engine.decide(access("requester", "images.generations"))
    assert first.decision_id != second.decision_id
    assert uuid.UUID(first.decision_id).version == 4
    assert first.revision == engine.revision
    assert (first.action, first.reasons, dict(first.obligations)) == (
        second.action,
        second.reasons,
        dict(second.obligations),
    )


def test_decision_to_dict_is_json(engine: RegoEngine) -> None:
    decision = engine.decide(make_input("prescreen", [finding("pii", "pii", 0.9, entity_type="PERSON")]))
    document = decision.to_dict()
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {"decision_id", "revision", "action", "reasons", "obligations"}
    assert document["reasons"][0] == {
        "code": "prescreen.pii",
        "detector": "pii",
        "message": "the prompt contains personal data (PERSON)",
    }


def test_system_block() -> None:
    decision = Decision.system_block("detector.error", "pii", "the PII detector failed", revision="r1")
    assert decision.action == "block"
    assert decision.to_dict()["reasons"] == [
        {"code": "detector.error", "detector": "pii", "message": "the PII detector failed"}
    ]
    assert decision.revision == "r1"
    assert uuid.UUID(decision.decision_id).version == 4
    assert Decision.system_block("a", "b", "c", "r").decision_id != decision.decision_id


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"action": "maybe", "reasons": [], "obligations": {}},
        {"action": "allow", "reasons": "none", "obligations": {}},
        {"action": "allow", "reasons": [{"code": 1, "detector": "x", "message": "m"}], "obligations": {}},
        {"action": "allow", "reasons": [], "obligations": []},
        {"action": "block", "reasons": [], "obligations": {}},
    ],
)
def test_malformed_decision_documents(document: Any) -> None:
    with pytest.raises(PolicyError, match="malformed decision"):
        Decision.from_document(document, revision="r")


# --- failures ---------------------------------------------------------------------------------


def test_non_json_input_is_policy_error(engine: RegoEngine) -> None:
    with pytest.raises(PolicyError, match="JSON"):
        engine.decide(make_input("output", [finding("image_safety", "sexual", math.nan)]))
    with pytest.raises(PolicyError, match="JSON"):
        engine.decide({"principal": object()})


def write_bundle(path: Path, decision_rego: str) -> Path:
    (path / "mamori").mkdir(parents=True)
    (path / ".manifest").write_text('{"revision": "t1", "roots": ["mamori"]}')
    (path / "mamori" / "decision.rego").write_text(decision_rego)
    return path


def test_compile_error_is_policy_error(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "b", "package mamori.decision\n\ndecision := if {\n")
    with pytest.raises(PolicyError, match="does not compile"):
        RegoEngine(path)


def test_undefined_decision_is_policy_error(tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "b", 'package mamori.decision\n\ndecision := {"action": "allow"} if input.x\n')
    with pytest.raises(PolicyError, match="undefined"):
        RegoEngine(path)


def test_malformed_decision_from_policy_is_policy_error(tmp_path: Path) -> None:
    rego = (
        "package mamori.decision\n\n"
        'default decision := {"action": "allow", "reasons": [], "obligations": {}}\n\n'
        'decision := {"action": "approve"} if input.x == 1\n'
    )
    engine = RegoEngine(write_bundle(tmp_path / "b", rego))
    assert engine.decide({"x": 0}).action == "allow"
    with pytest.raises(PolicyError, match="malformed decision"):
        engine.decide({"x": 1})


def test_conflict_at_evaluation_is_policy_error(tmp_path: Path) -> None:
    rego = (
        "package mamori.decision\n\n"
        'default decision := {"action": "allow", "reasons": [], "obligations": {}}\n\n'
        'decision := {"action": "allow", "reasons": [], "obligations": {"a": 1}} if input.x == 1\n\n'
        'decision := {"action": "allow", "reasons": [], "obligations": {"a": 2}} if input.x == 1\n'
    )
    engine = RegoEngine(write_bundle(tmp_path / "b", rego))
    with pytest.raises(PolicyError):
        engine.decide({"x": 1})
    assert engine.decide({"x": 0}).action == "allow"  # the engine is still usable


def test_reload_is_atomic(tmp_path: Path) -> None:
    path = copy_bundle(tmp_path)
    engine = RegoEngine(path)
    zebra = make_input("prescreen", [finding("image_safety", "sexual", 0.7, role="edit_source")])
    assert engine.decide(zebra).action == "allow"

    good_data = (path / "data.yaml").read_text()
    (path / "data.yaml").write_text("mamori: [broken")
    with pytest.raises(PolicyError):
        engine.reload()
    (path / "mamori" / "output.rego").write_text("package mamori.output\n\nhits := \n")
    (path / "data.yaml").write_text(good_data)
    with pytest.raises(PolicyError):
        engine.reload()
    assert engine.decide(zebra).action == "allow"  # the old bundle still answers
    assert engine.revision == "mamori-policies-0.1.0"

    shutil.copy(BUNDLE / "mamori" / "output.rego", path / "mamori" / "output.rego")
    (path / "data.yaml").write_text(good_data.replace("image_sexual_block: 0.8", "image_sexual_block: 0.6"))
    (path / ".manifest").write_text('{"revision": "next", "roots": ["mamori"]}')
    engine.reload()
    assert engine.revision == "next"
    decision = engine.decide(zebra)
    assert (decision.action, decision.revision) == ("block", "next")


def test_thread_safety(engine: RegoEngine) -> None:
    inputs = [
        access("requester", "images.generations"),
        access("auditor", "keys.admin"),
        make_input("prescreen", [finding("pii", "pii", 0.9, entity_type="PERSON")]),
        make_input("output", [finding("image_safety", "sexual", 0.5)]),
        make_input("output", [finding("image_safety", "sexual", 0.9)]),
    ]
    expected = [engine.decide(i).action for i in inputs]

    def run(n: int) -> list[str]:
        return [engine.decide(inputs[(n + k) % len(inputs)]).action for k in range(100)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(8)))
    for n, actions in enumerate(results):
        assert actions == [expected[(n + k) % len(inputs)] for k in range(100)]


def test_create_engine(tmp_path: Path) -> None:
    assert isinstance(create_engine("embedded", BUNDLE), RegoEngine)
    with pytest.raises(PolicyError, match="URL"):
        create_engine("opa", BUNDLE)
    with pytest.raises(PolicyError, match="unknown"):
        create_engine("wasm", BUNDLE)  # type: ignore[arg-type]


# --- the same stage logic on a second engine (regorus through opa-eval), where installed ---------


def test_modules_parse_on_regorus() -> None:
    opa_eval = pytest.importorskip("opa_eval")
    data_json = json.dumps(load_bundle(BUNDLE).data)
    for file in sorted(BUNDLE.rglob("*.rego")):
        opa_eval.OpaEval(str(file), data_json, "data")  # raises RuntimeError on a parse error


def test_access_package_agrees_with_regorus(engine: RegoEngine) -> None:
    opa_eval = pytest.importorskip("opa_eval")
    data_json = json.dumps(load_bundle(BUNDLE).data)
    regorus = opa_eval.OpaEval(str(BUNDLE / "mamori" / "access.rego"), data_json, "data.mamori.access.allowed")
    for role in [*ROLES, "root"]:
        for endpoint in [*ENDPOINTS, "shell.exec"]:
            inp = access(role, endpoint)
            assert regorus.evaluate_parsed(json.dumps(inp)) == (engine.decide(inp).action == "allow"), (role, endpoint)
