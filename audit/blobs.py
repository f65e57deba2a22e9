"""Content-addressed blob storage for generated assets and large audit attachments."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["BlobStore", "LocalBlobStore", "validate_digest"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lower-case hex characters, else raise ``ValueError``."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise ValueError("a blob digest is 64 lower-case hex characters (sha256)")
    return digest


@runtime_checkable
class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 hex digest (storing the same bytes twice is a no-op)."""
        ...

    def get(self, digest: str) -> bytes:
        """The stored bytes; ``KeyError`` if absent."""
        ...

    def delete(self, digest: str) -> None:
        """Remove the blob; deleting an absent blob is not an error."""
        ...

    def exists(self, digest: str) -> bool: ...


class LocalBlobStore:
    """Blobs as files ``root/ab/cd/<digest>``, written atomically (temporary file + ``os.replace``).

    Digests are validated before they touch the file system, so no path traversal is possible.
    ``get`` re-hashes what it reads and raises ``ValueError`` if the file was altered.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        validate_digest(digest)
        return self._root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.is_file():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(digest) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"blob {digest} is corrupted (content does not match its digest)")
        return data

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()
