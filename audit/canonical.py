"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) and hashing helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

__all__ = ["canonical_json", "sha256_hex"]


def _plain(obj: Any) -> Any:
    """Turn read-only mappings and tuples into the dicts and lists ``rfc8785`` accepts."""
    if obj is None or isinstance(obj, str | int | float):  # bool is an int
        return obj
    if isinstance(obj, Mapping):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(value) for value in obj]
    raise TypeError(f"value of type {type(obj).__name__} is not JSON-serializable")


def canonical_json(obj: Any) -> bytes:
    """Serialize ``obj`` per RFC 8785: sorted keys, UTF-8, no insignificant whitespace.

    Raises ``TypeError`` for values JSON cannot represent and ``ValueError`` (``rfc8785``'s
    ``CanonicalizationError``) for NaN, infinities, integers beyond 2**53 or non-string keys.
    """
    return rfc8785.dumps(_plain(obj))


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
