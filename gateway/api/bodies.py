"""Reading JSON request bodies into pydantic models, with 400s that carry a machine-readable code (never 422).

Beyond JSON syntax, `load_json` refuses what would crash or mislead later stages: text holding a
lone UTF-16 surrogate (`"\\ud800"` is valid JSON but not Unicode text; detectors, hashing and the
audit writer cannot encode it), code `invalid_text`; objects or arrays nested deeper than
`MAX_DEPTH` (recursive code downstream would fail), code `json_too_deep`; and `NaN`, `Infinity`
or a number too large for a float (`1e999`), which Python's decoder accepts or turns into infinity
but JSON and the audit record do not, code `invalid_json`.

The text check (`check_text`) is shared: `deps.read_form` runs it on form fields and file names.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.errors import BadRequest

Model = TypeVar("Model", bound=BaseModel)

#: How deep objects and arrays may nest in a request body; no request shape comes close.
MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")
#: An escape that may decode to a surrogate; a body without one cannot hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\[\])?")  # a form's "image[]" names a field too
#: Why `check_text` refuses text, unless the caller says otherwise (a form says "not valid UTF-8").
LONE_SURROGATE = "text holds a lone UTF-16 surrogate escape"


def load_json(raw: bytes) -> Any:
    """The decoded body, or BadRequest: `invalid_json`, `json_too_deep` or `invalid_text` (lone surrogate)."""
    try:
        # strict decoding (json.loads would pass encoded surrogates through): only escapes can make one
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8, UTF-16 or UTF-32 text: {exc.reason}", code="invalid_json") from exc
    try:
        payload = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError as exc:  # the decoder recurses per level: far too deep
        raise _too_deep() from exc
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise BadRequest(f"body is not valid JSON: {exc}", code="invalid_json") from exc
    if text.count("[") + text.count("{") > MAX_DEPTH and _nesting(text) > MAX_DEPTH:
        raise _too_deep()
    if _SURROGATE_ESCAPE.search(text):
        check_text(payload)
    return payload


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's decoder accepts them; the audit record could not hold them)."""
    raise ValueError(f"{name} is not a JSON value")


def _finite(literal: str) -> float:
    """A JSON number; one too large for a float (1e999) would become infinity: refused."""
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"{literal[:20]} is too large a number")
    return value


def _too_deep() -> BadRequest:
    return BadRequest(f"body nests objects and arrays deeper than {MAX_DEPTH} levels", code="json_too_deep")


def _nesting(text: str) -> int:
    """How deep arrays and objects nest in valid JSON `text` (brackets inside strings do not count)."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _segment(key: str | int) -> str:
    """A path segment for `param`: an index or a schema-like key; any other key (client data) is not echoed."""
    return str(key) if isinstance(key, int) or _KEY.fullmatch(key) else "*"


#: Where a node sits in the body: None at the top, else (where its container sits, its key there).
_Where = tuple[Any, str | int] | None


def _not_text(where: _Where, problem: str) -> BadRequest:
    path: list[str] = []
    while where is not None:
        where, key = where
        path.append(_segment(key))
    param = ".".join(reversed(path)) or None
    return BadRequest(f"{param or 'body'}: {problem}; send valid Unicode", code="invalid_text", param=param)


def check_text(payload: Any, problem: str = LONE_SURROGATE) -> None:
    """Refuse a lone surrogate in any string or key of decoded `payload` (strings, lists and dicts,
    nested no deeper than `MAX_DEPTH`): BadRequest `invalid_text`, with the path to it as `param`.

    `load_json` runs it on a body with a surrogate escape; `deps.read_form` on a form, whose parser
    keeps bytes that do not decode as lone surrogates, so this one check refuses them too.
    """
    try:
        json.dumps(payload, ensure_ascii=False).encode()  # fast: fails only on a surrogate
        return
    except UnicodeEncodeError:
        pass
    stack: list[tuple[Any, _Where]] = [(payload, None)]
    while stack:  # find where, for `param`
        node, where = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise _not_text(where, problem)
        elif isinstance(node, dict):
            if any(_SURROGATE.search(key) for key in node):
                raise _not_text(where, problem)
            stack.extend((value, (where, key)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (where, i)) for i, value in enumerate(node))


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
