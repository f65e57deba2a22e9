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


@pytest.fixture(scope="session")
def unsafe_minilm() -> Any:
    """UnsafeText as the gateway runs it (all-MiniLM-L6-v2 and the trained head), loaded once."""
    from detectors.unsafe_text import UnsafeText

    det = UnsafeText(model="minilm")
    det.load()
    return det


@pytest.fixture(scope="session")
def unsafe_lexicon() -> Any:
    """UnsafeText without a model (lexicons, cues, senses and the kana reading), loaded once."""
    from detectors.unsafe_text import UnsafeText

    det = UnsafeText(model=None)
    det.load()
    return det
