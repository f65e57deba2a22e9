from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from audit.blobs import BlobStore, LocalBlobStore


def test_put_get_roundtrip_and_layout(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"\x89PNG fake image bytes"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data
    assert store.exists(digest)
    assert (tmp_path / "blobs" / digest[:2] / digest[2:4] / digest).read_bytes() == data
    assert isinstance(store, BlobStore)


def test_same_content_same_digest_one_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    assert store.put(b"abc") == store.put(b"abc")
    assert store.put(b"abc") != store.put(b"abd")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 2  # and no temporary files left behind
    assert all(len(p.name) == 64 for p in files)


def test_missing_and_delete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put(b"x")
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(KeyError):
        store.get(digest)
    store.delete(digest)  # idempotent
    store.put(b"")  # empty blobs are fine
    assert store.get(hashlib.sha256(b"").hexdigest()) == b""


@pytest.mark.parametrize(
    "digest",
    [
        "../../../etc/passwd",
        "ab/../../" + "a" * 55,
        "/" + "a" * 63,
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "a" * 63 + "\n",
        "",
    ],
)
def test_traversal_and_malformed_digests_rejected(tmp_path: Path, digest: str) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    (tmp_path / "secret").write_bytes(b"secret")
    for call in (store.get, store.exists, store.delete):
        with pytest.raises(ValueError, match="digest"):
            call(digest)


def test_tampered_blob_is_refused(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put(b"original")
    (tmp_path / digest[:2] / digest[2:4] / digest).write_bytes(b"altered")
    with pytest.raises(ValueError, match="corrupted"):
        store.get(digest)
