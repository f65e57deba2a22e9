"""Prompt encryption (AES-256-GCM) and key files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from audit.crypto import DecryptionError, KeyFileError, PromptCipher


def test_prompt_round_trip_and_key_file(tmp_path: Path) -> None:
    path = tmp_path / "prompt.key"
    cipher = PromptCipher.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = cipher.encrypt("a portrait of Jane Doe, jane@example.com")
    assert "jane" not in str(sealed)
    assert sealed["alg"] == "AES-256-GCM"
    assert PromptCipher.load_or_create(path).decrypt(sealed) == "a portrait of Jane Doe, jane@example.com"
    assert cipher.encrypt("x")["nonce"] != cipher.encrypt("x")["nonce"]


def test_wrong_key_and_tampering_are_clear_errors(tmp_path: Path) -> None:
    cipher = PromptCipher.load_or_create(tmp_path / "a.key")
    other = PromptCipher.load_or_create(tmp_path / "b.key")
    sealed = cipher.encrypt("secret")
    with pytest.raises(DecryptionError, match="not with this key"):
        other.decrypt(sealed)
    forged = {**sealed, "ciphertext": sealed["ciphertext"][:-4] + "AAA="}
    with pytest.raises(DecryptionError, match="changed or the key is wrong"):
        cipher.decrypt(forged)
    with pytest.raises(DecryptionError, match="malformed"):
        cipher.decrypt({**sealed, "nonce": "***"})


def test_bad_prompt_key_file(tmp_path: Path) -> None:
    path = tmp_path / "short.key"
    path.write_text("c2hvcnQ=\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"short\.key: the key is 5 bytes"):
        PromptCipher.load_or_create(path)
