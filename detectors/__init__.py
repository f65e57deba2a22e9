"""Mamori detectors: each measures one thing and returns findings; none decides."""
