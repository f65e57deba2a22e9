"""Reading JSON request bodies into pydantic models, with 400s that carry a machine-readable code (never 422)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.errors import BadRequest

Model = TypeVar("Model", bound=BaseModel)


def load_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="invalid_json") from exc


def validate_object(model: type[Model], payload: Any) -> Model:
    if not isinstance(payload, dict):
        raise BadRequest("body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"{param}: {first['msg']}", code="invalid_request", param=param) from exc


def parse_body(raw: bytes, model: type[Model]) -> Model:
    """A JSON object body validated as `model`."""
    return validate_object(model, load_json(raw))
