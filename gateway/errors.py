"""One exception hierarchy, mapped to JSON errors in OpenAI's error shape.

`{"error": {"message", "type", "param", "code"}, "mamori": {...}}` — existing OpenAI clients show
`message`; scripts read the stable `code`.
"""

from __future__ import annotations

from typing import Any


class MamoriError(Exception):
    status_code = 500
    error_type = "server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        mamori: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.mamori = mamori

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }
        if self.mamori is not None:
            out["mamori"] = self.mamori
        return out


class BadRequest(MamoriError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(MamoriError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "payload_too_large"


class Unauthorized(MamoriError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(MamoriError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class NotFound(MamoriError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(MamoriError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class Gone(MamoriError):
    status_code = 410
    error_type = "invalid_request_error"
    code = "expired"


class PolicyRefusal(MamoriError):
    """The policy refused the request (HTTP 400, code content_policy_violation)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "content_policy_violation"


class GatewayFault(MamoriError):
    """Something inside failed; the request failed closed (nothing unvetted released)."""

    status_code = 503
    error_type = "server_error"
    code = "mamori_fault"
