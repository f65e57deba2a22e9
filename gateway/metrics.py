"""Prometheus metrics, on a registry of the app's own so several apps can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mamori_requests_total",
            "Governed requests by endpoint and final status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "mamori_decisions_total",
            "Policy decisions by stage and action",
            ["stage", "action"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "mamori_stage_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.faults = Counter(
            "mamori_faults_total",
            "Internal faults that made a request fail closed",
            ["component"],
            registry=self.registry,
        )
