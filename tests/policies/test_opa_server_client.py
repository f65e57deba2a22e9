"""The OPA-server engine against `gateway.opa_rest` on loopback: same decisions as in process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.opa_rest import create_app
from gateway.policy import OpaServerEngine, PolicyEngine, PolicyError, RegoEngine, create_engine, default_bundle_dir

BUNDLE = default_bundle_dir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test OPA server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def embedded() -> RegoEngine:
    return RegoEngine(BUNDLE)


@pytest.fixture(scope="module")
def opa_server(embedded: RegoEngine) -> Iterator[ServerThread]:
    with ServerThread(create_app(engine=embedded)) as server:
        yield server


@pytest.fixture(scope="module")
def remote(opa_server: ServerThread) -> Iterator[OpaServerEngine]:
    engine = OpaServerEngine(opa_server.url, BUNDLE)
    yield engine
    engine.close()


def finding(detector: str, category: str, score: float, **evidence: Any) -> dict[str, Any]:
    return {"detector": detector, "category": category, "score": score, "evidence": evidence}


def make_input(
    stage: str, findings: Any = (), role: str = "requester", endpoint: str = "images.generations", tenant: str = "acme"
) -> dict[str, Any]:
    return {
        "principal": {"key_id": "k1", "tenant": tenant, "role": role},
        "stage": stage,
        "request": {"id": "req-1", "endpoint": endpoint},
        "findings": list(findings),
    }


INPUTS = [
    make_input("access"),
    make_input("access", endpoint="keys.admin"),
    make_input("access", role="admin", endpoint="keys.admin"),
    make_input("access", role="auditor", endpoint="audit.read"),
    make_input("access", role="ghost"),
    make_input("prescreen"),
    make_input("prescreen", [finding("denylist", "denied_term", 1.0, term_index=4)]),
    make_input(
        "prescreen",
        [finding("pii", "pii", 0.9, entity_type="PERSON"), finding("pii", "pii", 0.7, entity_type="EMAIL_ADDRESS")],
    ),
    make_input("prescreen", [finding("pii", "pii", 0.9, entity_type="PERSON"), finding("denylist", "weapons", 0.9)]),
    make_input("prescreen", [finding("image_safety", "sexual", 0.95, role="edit_source")]),
    make_input("prescreen", [finding("copyright", "protected_work", 0.95, role="edit_source")]),
    make_input("output", [finding("image_safety", "sexual", 0.1)]),
    make_input("output", [finding("image_safety", "sexual", 0.5)]),
    make_input("output", [finding("image_safety", "sexual", 0.9), finding("copyright", "protected_work", 0.9)]),
    make_input("output", [finding("copyright", "protected_work", 0.9), finding("image_safety", "sexual", 0.45)]),
    make_input("output", [finding("image_safety", "sexual", 0.65)], tenant="example-strict"),
    make_input("output", [{"detector": "image_safety", "category": "sexual", "score": "high"}]),
    make_input("sideways"),
    {},
]


def comparable(decision: Any) -> dict[str, Any]:
    document = decision.to_dict()
    document.pop("decision_id")
    return document


def test_protocol(remote: OpaServerEngine) -> None:
    assert isinstance(remote, PolicyEngine)
    assert remote.revision == "mamori-policies-0.1.0"
    assert any(t["term"] == "forbidden-zebra" for t in remote.data()["mamori"]["terms"])


@pytest.mark.parametrize("inp", INPUTS)
def test_same_decisions_as_embedded(embedded: RegoEngine, remote: OpaServerEngine, inp: dict[str, Any]) -> None:
    over_rest = remote.decide(inp)
    in_process = embedded.decide(inp)
    assert comparable(over_rest) == comparable(in_process)
    assert over_rest.decision_id != in_process.decision_id


def test_create_engine_opa(opa_server: ServerThread) -> None:
    engine = create_engine("opa", BUNDLE, opa_url=opa_server.url)
    assert engine.decide(make_input("access")).action == "allow"


def test_unreachable_server_is_policy_error() -> None:
    engine = OpaServerEngine(f"http://127.0.0.1:{free_port()}", BUNDLE, timeout_s=0.5)
    start = time.perf_counter()
    with pytest.raises(PolicyError, match="failed"):
        engine.decide(make_input("access"))
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("url", ["ftp://host", "127.0.0.1:8181", "http://host:8181/v1"])
def test_bad_url(url: str) -> None:
    with pytest.raises(PolicyError, match="OPA URL"):
        OpaServerEngine(url, BUNDLE)


def stub_server(body: Any, status: int = 200) -> ServerThread:
    async def answer(request: Request) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    return ServerThread(Starlette(routes=[Route("/v1/data/{path:path}", answer, methods=["POST"])]))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 200, "undefined"),
        ({"result": {"action": "allow"}}, 200, "malformed"),
        ({"result": "allow"}, 200, "malformed"),
        ({"code": "internal_error", "message": "boom"}, 500, "failed"),
    ],
)
def test_bad_server_answers_are_policy_errors(body: Any, status: int, message: str) -> None:
    with stub_server(body, status) as server:
        engine = OpaServerEngine(server.url, BUNDLE)
        with pytest.raises(PolicyError, match=message):
            engine.decide(make_input("access"))


def test_server_revision_and_decision_id_are_used() -> None:
    body = {
        "result": {"action": "allow", "reasons": [], "obligations": {}},
        "decision_id": "opa-decision-1",
        "provenance": {"version": "1.0", "bundles": {"main": {"revision": "server-rev"}}},
    }
    with stub_server(body) as server:
        decision = OpaServerEngine(server.url, BUNDLE).decide(make_input("access"))
    assert (decision.revision, decision.decision_id) == ("server-rev", "opa-decision-1")


# --- the REST app itself ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(embedded: RegoEngine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=embedded)) as test_client:
        yield test_client


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {})


def test_post_decision_and_provenance(client: TestClient) -> None:
    response = client.post("/v1/data/mamori/decision/decision?provenance=true", json={"input": make_input("access")})
    assert response.status_code == 200
    body = response.json()
    assert body["result"]["action"] == "allow"
    assert body["provenance"]["bundles"]["mamori"]["revision"] == "mamori-policies-0.1.0"


def test_other_paths_and_undefined(client: TestClient) -> None:
    response = client.get("/v1/data/mamori/lib/required_thresholds")
    assert response.status_code == 200
    assert "pii" in response.json()["result"]
    assert client.post("/v1/data/mamori/nothing_here", json={"input": {}}).json() == {}


@pytest.mark.parametrize(
    ("path", "content", "status"),
    [
        ("/v1/data/mamori/decision/decision", b"{not json", 400),
        ("/v1/data/mamori/decision/decision", b"[1]", 400),
        ("/v1/data/mamori/decision/decision", b'{"input": [1]}', 400),
        ("/v1/data/mamori/decision;x", b'{"input": {}}', 500),
    ],
)
def test_bad_requests(client: TestClient, path: str, content: bytes, status: int) -> None:
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert set(response.json()) == {"code", "message"}
