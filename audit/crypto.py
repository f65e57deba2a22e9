"""Keys of the audit trail: the Ed25519 checkpoint signing key and the AES-GCM prompt key.

Both live in files. A missing file is created on first use with mode 0600, atomically and without
a race between two processes starting at once (the first one to link its file wins, the other
reads it). A file that exists but cannot be used is never replaced: that raises :class:`KeyFileError`
saying which file and why, since replacing a key would orphan everything signed or encrypted with it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "PROMPT_ALGORITHM",
    "DecryptionError",
    "KeyFileError",
    "PromptCipher",
    "SigningKey",
    "key_id_of",
    "load_public_key",
    "load_public_keys",
    "public_key_from_pem",
    "public_key_from_raw",
    "verify_signature",
]

PROMPT_ALGORITHM = "AES-256-GCM"
_PROMPT_AAD = b"mamori.audit.prompt.v1"


class KeyFileError(Exception):
    """A key file exists but cannot be used (unreadable, wrong format, wrong permissions)."""


class DecryptionError(Exception):
    """An encrypted value cannot be decrypted: wrong key, or the value was changed."""


def key_id_of(public: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 16 hex digits of the SHA-256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_key_from_raw(raw_b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(raw_b64, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise KeyFileError(f"not a raw Ed25519 public key: {exc}") from exc


def _write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` with mode 0600 unless it exists. True if this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".key")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another process created the file first
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_private(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise KeyFileError(f"{path}: key file is readable by others (mode {mode:o}); run chmod 600 {path}")
    return data


@dataclass(frozen=True)
class SigningKey:
    """The Ed25519 key that signs audit checkpoints and evidence exports."""

    private: Ed25519PrivateKey
    key_id: str
    path: Path | None = None

    @classmethod
    def generate(cls) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        return cls(private, key_id_of(private.public_key()))

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """Load the PEM (PKCS#8) key at ``path``; create it (0600) if there is no file."""
        path = Path(path)
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _write_new(path, pem)
        data = _read_private(path)
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path}: not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: not an Ed25519 key ({type(private).__name__})")
        key = cls(private, key_id_of(private.public_key()), path)
        key.publish(path.parent / "public")
        return key

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def public_raw_b64(self) -> str:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def public_pem(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def publish(self, directory: Path) -> Path:
        """Write the public key as ``<directory>/<key id>.pem`` (kept when the key is later rotated)."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{self.key_id.replace(':', '-')}.pem"
        if not target.exists():
            tmp = target.with_suffix(".tmp" + secrets.token_hex(4))
            tmp.write_bytes(self.public_pem())
            os.replace(tmp, target)
        return target

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature of ``message``."""
        return base64.b64encode(self.private.sign(message)).decode("ascii")


def verify_signature(public: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        public.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def public_key_from_pem(data: bytes) -> tuple[str, Ed25519PublicKey]:
    """A PEM public key (or a PEM private key, whose public half is taken) → (key id, key)."""
    key: Any
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise KeyFileError("not a PEM Ed25519 public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"not an Ed25519 key ({type(key).__name__})")
    return key_id_of(key), key


def load_public_key(path: Path) -> tuple[str, Ed25519PublicKey]:
    """:func:`public_key_from_pem` of a file; errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror or exc}") from exc
    try:
        return public_key_from_pem(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Key files and folders of ``*.pem`` files → {key id: key}."""
    out: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        files = sorted(Path(path).glob("*.pem")) if Path(path).is_dir() else [Path(path)]
        for file in files:
            key_id, key = load_public_key(file)
            out[key_id] = key
    return out


class PromptCipher:
    """AES-256-GCM encryption of raw prompts for the audit record; the key is 32 random bytes (base64 file)."""

    def __init__(self, key: bytes, key_id: str | None = None) -> None:
        if len(key) != 32:
            raise KeyFileError("a prompt encryption key is 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = key_id or "aes:" + hashlib.sha256(b"mamori.prompt.key-id" + key).hexdigest()[:16]

    @classmethod
    def load_or_create(cls, path: Path) -> PromptCipher:
        path = Path(path)
        if not path.exists():
            _write_new(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
        data = _read_private(path)
        try:
            key = base64.b64decode(data.strip(), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise KeyFileError(f"{path}: not a base64 key: {exc}") from exc
        if len(key) != 32:
            raise KeyFileError(f"{path}: the key is {len(key)} bytes; AES-256-GCM needs 32")
        return cls(key)

    def encrypt(self, text: str) -> dict[str, str]:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, text.encode("utf-8"), _PROMPT_AAD)
        return {
            "alg": PROMPT_ALGORITHM,
            "key_id": self.key_id,
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "ciphertext": base64.b64encode(sealed).decode("ascii"),
        }

    def decrypt(self, envelope: Mapping[str, Any]) -> str:
        if envelope.get("alg") != PROMPT_ALGORITHM:
            raise DecryptionError(f"unsupported algorithm {envelope.get('alg')!r}")
        if envelope.get("key_id") != self.key_id:
            raise DecryptionError(f"encrypted with key {envelope.get('key_id')!r}, not with this key ({self.key_id})")
        try:
            nonce = base64.b64decode(str(envelope["nonce"]), validate=True)
            sealed = base64.b64decode(str(envelope["ciphertext"]), validate=True)
            return self._aead.decrypt(nonce, sealed, _PROMPT_AAD).decode("utf-8")
        except (KeyError, ValueError, binascii.Error) as exc:
            raise DecryptionError(f"malformed encrypted prompt: {exc}") from exc
        except InvalidTag as exc:
            raise DecryptionError("the encrypted prompt was changed or the key is wrong") from exc
