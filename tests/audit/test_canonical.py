from __future__ import annotations

import hashlib
from types import MappingProxyType

import pytest

from audit.canonical import canonical_json, sha256_hex


def test_rfc8785_form() -> None:
    assert canonical_json({"b": 1, "a": [True, None, 1.5, "é"], "c": {"z": 0, "y": 1e21}}) == (
        '{"a":[true,null,1.5,"é"],"b":1,"c":{"y":1e+21,"z":0}}'.encode()
    )


def test_key_order_and_container_types_do_not_matter() -> None:
    assert canonical_json({"x": (1, 2), "y": MappingProxyType({"k": "v"})}) == canonical_json(
        {"y": {"k": "v"}, "x": [1, 2]}
    )


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": float("inf")}, {1: "a"}, {"x": 2**60}])
def test_unrepresentable_values_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        canonical_json(bad)


def test_non_json_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": b"bytes"})
    with pytest.raises(TypeError):
        canonical_json({"x": {1, 2}})


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(sha256_hex(b"")) == 64
