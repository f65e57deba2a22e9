"""Every registered detector honours the contract in detectors.base (via detectors.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.copyright import ProtectedIndex, work_hashes
from detectors.registry import available_detectors, load_detector
from detectors.testing import (
    SAMPLE_PII_VALUES,
    assert_detector_contract,
    make_context,
    sample_items,
    synthetic_image,
)

EXPECTED = {"pii", "denylist", "image_safety", "copyright"}


def test_builtin_detectors_are_registered() -> None:
    assert set(available_detectors()) >= EXPECTED


@pytest.fixture(scope="module")
def index() -> ProtectedIndex:
    return ProtectedIndex.from_hashes(work_hashes("sample-work", None, synthetic_image(0)))


@pytest.mark.parametrize("name", available_detectors())
def test_detector_contract(name: str, index: ProtectedIndex, tiny_clip: Path) -> None:
    # bias_image needs a CLIP folder (off by default); the others load with no options
    detector = load_detector(name, {"model": str(tiny_clip)} if name == "bias_image" else {})
    assert detector.name == name
    detector.load()
    ctx = make_context(
        terms=[{"term": "card number", "category": "financial"}],
        protected_index=index,
    )
    findings = assert_detector_contract(detector, sample_items(), ctx, pii_values=SAMPLE_PII_VALUES)
    if name in EXPECTED:
        # each built-in detector measures something on the samples, so the checks above ran on findings
        assert any(findings), f"{name} produced no findings on the sample items"
