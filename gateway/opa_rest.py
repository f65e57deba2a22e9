"""A small OPA-REST-compatible server that serves a policy bundle with the in-process engine.

It answers the part of OPA's REST API that Mamori's `OpaServerEngine` uses:

- `POST /v1/data/{path}` with `{"input": ...}` -> `{"result": ...}` (`{}` when undefined);
  `?provenance=true` adds `{"provenance": {"bundles": {"mamori": {"revision": ...}}}}` like OPA.
- `GET /v1/data/{path}` evaluates without input.
- `GET /health` -> `{}` (200).

Errors use OPA's shape `{"code": ..., "message": ...}`. It lets the OPA-server client path be
tested where no `opa` binary exists, and backs `mamori policy serve`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.policy import PolicyError, RegoEngine, default_bundle_dir, start_policy_watch

BUNDLE_NAME = "mamori"


def create_app(bundle_dir: Path | None = None, engine: RegoEngine | None = None, *, watch: bool = False) -> Starlette:
    """The Starlette app; pass an `engine` to share one, or a `bundle_dir` to load one.

    With `watch`, the bundle folder is watched while the app runs and reloaded when it changes
    (an invalid bundle is rejected and the old one keeps answering), like `opa run --watch`.
    """
    policy = engine if engine is not None else RegoEngine(bundle_dir or default_bundle_dir())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = start_policy_watch(SimpleNamespace(policy=policy, audit=None)) if watch else None
        try:
            yield
        finally:
            if stop is not None:
                stop()

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message}, status_code=status)

    def answer(request: Request, path: str, input: Any) -> JSONResponse:
        try:
            body = policy.evaluate(path, input)
        except PolicyError as exc:
            return error(500, "internal_error", str(exc))
        if request.query_params.get("provenance", "").lower() in ("true", "1"):
            body["provenance"] = {
                "version": "mamori-opa-rest",
                "bundles": {BUNDLE_NAME: {"revision": policy.revision}},
            }
        return JSONResponse(body)

    async def post_data(request: Request) -> JSONResponse:
        raw = await request.body()
        document: Any = {}
        if raw.strip():
            try:
                document = json.loads(raw)
            except ValueError as exc:
                return error(400, "invalid_parameter", f"body is not JSON: {exc}")
        if not isinstance(document, dict):
            return error(400, "invalid_parameter", "body must be a JSON object")
        input = document.get("input")
        if input is not None and not isinstance(input, dict):
            return error(400, "invalid_parameter", "input must be a JSON object")
        # Evaluation takes well under a millisecond for the decision, so it runs on the loop.
        return answer(request, request.path_params["path"], input)

    async def get_data(request: Request) -> JSONResponse:
        return answer(request, request.path_params["path"], None)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({})

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/v1/data/{path:path}", post_data, methods=["POST"]),
            Route("/v1/data/{path:path}", get_data, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
    )
