"""The per-request trace: everything one audit record says about a request, filled in as it travels."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.keys import Principal


@dataclass
class Trace:
    request_id: str
    endpoint: str
    client: str | None
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    request: dict[str, Any] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    detectors: dict[str, str] = field(default_factory=dict)
    generator: dict[str, Any] | None = None
    status: str | None = None
    decision: str | None = None
    escalation_id: str | None = None
    http_status: int | None = None
    error: dict[str, Any] | None = None
    prompt_encrypted: dict[str, str] | None = None  # the raw prompt, AES-GCM sealed (settings.prompt_storage)
    template: dict[str, Any] | None = None  # issue 8: the approved template a request was filled from (policy input)
    audited: bool = False

    def add_timing(self, stage: str, seconds: float) -> None:
        self.timings_ms[stage] = round(self.timings_ms.get(stage, 0.0) + seconds * 1000.0, 3)

    def fault(self, component: str, stage: str, error: BaseException | str) -> None:
        kind = error if isinstance(error, str) else type(error).__name__
        self.faults.append({"component": component, "stage": stage, "error": kind})

    def audit_payload(self) -> dict[str, Any]:
        principal = self.principal.to_policy() if self.principal else None
        sealed = {"prompt_encrypted": self.prompt_encrypted} if self.prompt_encrypted else {}
        return {
            **sealed,
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "client": self.client,
            "principal": principal,
            "request": self.request,
            "status": self.status,
            "decision": self.decision,
            "http_status": self.http_status,
            "error": self.error,
            "decisions": self.decisions,
            "findings": self.findings,
            "faults": self.faults,
            "detectors": self.detectors,
            "generator": self.generator,
            "assets": self.assets,
            "escalation_id": self.escalation_id,
            "timings_ms": {**self.timings_ms, "total": round((time.perf_counter() - self.started) * 1000, 3)},
        }
