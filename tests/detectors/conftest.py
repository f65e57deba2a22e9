"""Shared fixtures of the detector tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight CLIP folder (built once per session), loaded back through from_pretrained."""
    from detectors.bias_image import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def default_pii() -> Any:
    """The PII detector as the gateway runs it (English NER, GiNZA for Japanese script), loaded once."""
    from detectors.pii import PresidioPII

    det = PresidioPII()
    det.load()
    return det
