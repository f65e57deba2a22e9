from __future__ import annotations

import pytest

from detectors.base import Detector, DetectorError
from detectors.denylist import DenyList
from detectors.registry import UnknownDetectorError, available_detectors, load_detector


def test_available_is_sorted_and_complete() -> None:
    names = available_detectors()
    assert names == sorted(names)
    assert {"pii", "denylist", "image_safety", "copyright"} <= set(names)


def test_load_detector_passes_options() -> None:
    detector = load_detector("copyright", {"max_distance": 0.2})
    assert isinstance(detector, Detector)
    assert detector.max_distance == 0.2  # type: ignore[attr-defined]
    assert isinstance(load_detector("denylist", {}), DenyList)


def test_unknown_name_lists_available() -> None:
    with pytest.raises(UnknownDetectorError, match=r"available detectors: .*denylist"):
        load_detector("no_such_detector", {})


def test_bad_options_are_a_detector_error() -> None:
    with pytest.raises(DetectorError, match="invalid options for detector 'copyright'"):
        load_detector("copyright", {"no_such_option": 1})
    with pytest.raises(DetectorError, match="invalid options"):
        load_detector("copyright", {"max_distance": 99})
