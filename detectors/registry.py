"""Find detectors by name through the `mamori.detectors` entry-point group.

Third-party packages add a detector by declaring, in their own pyproject.toml::

    [project.entry-points."mamori.detectors"]
    my_detector = "my_package.my_module:MyDetector"

Config then enables it by name; there is no list of names in Mamori's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from detectors.base import Detector, DetectorError

__all__ = ["ENTRY_POINT_GROUP", "UnknownDetectorError", "available_detectors", "load_detector"]

ENTRY_POINT_GROUP = "mamori.detectors"


class UnknownDetectorError(DetectorError, LookupError):
    """No detector is registered under the requested name."""


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_detectors() -> list[str]:
    """The names of every registered detector, sorted."""
    return sorted(_entry_points())


def load_detector(name: str, options: Mapping[str, Any] | None = None) -> Detector:
    """Construct the detector registered as `name` with keyword `options` (`cls(**options)`).

    The detector is not loaded: call its `load()` once at startup.
    """
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        available = ", ".join(sorted(eps)) or "none"
        raise UnknownDetectorError(f"unknown detector {name!r}; available detectors: {available}")
    try:
        cls = ep.load()
    except Exception as exc:
        raise DetectorError(f"detector {name!r} ({ep.value}) could not be imported: {exc}") from exc
    try:
        detector = cls(**dict(options or {}))
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"invalid options for detector {name!r}: {exc}") from exc
    if not isinstance(detector, Detector):
        raise DetectorError(f"{ep.value} does not implement the Detector protocol")
    return detector
