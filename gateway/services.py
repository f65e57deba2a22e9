"""The long-lived services one gateway process holds, built once in the app's lifespan."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import BlobStore
from audit.escalations import EscalationStore
from audit.store import AuditStore
from detectors.base import Detector
from gateway.keys import KeyStore
from gateway.metrics import Metrics
from gateway.policy import PolicyEngine
from gateway.protected import ProtectedRegistry
from gateway.protected_names import ProtectedNameRegistry
from gateway.provenance import Provenance
from gateway.settings import Settings
from gateway.state import RequestStore
from generators.base import ImageGenerator
from generators.transformers_text import TextGenerator


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyStore
    requests: RequestStore
    audit: AuditStore
    escalations: EscalationStore
    blobs: BlobStore
    protected: ProtectedRegistry
    protected_names: ProtectedNameRegistry
    policy: PolicyEngine
    provenance: Provenance
    prescreen_detectors: list[Detector]
    image_detectors: list[Detector]
    generator: ImageGenerator
    metrics: Metrics
    generator_pool: ThreadPoolExecutor  # bounds concurrent generation per backend
    detector_pool: ThreadPoolExecutor
    ready: dict[str, bool] = field(default_factory=dict)
    text_generator: TextGenerator | None = None  # chat completions (issue 7); None: the endpoint is off
    speech_generator: Any | None = None  # audio.speech (issue 7): a generators.transformers_speech.SpeechGenerator
    video_generator: Any | None = None  # /v1/videos (issue 7): a generators.diffusers_video.DiffusersVideoGenerator
    mesh_generator: Any | None = None  # /v1/3d (issue 7): a generators.diffusers_3d.DiffusersMeshGenerator
    sound_generator: Any | None = None  # audio.generations (issue 7): a generators.transformers_music.SoundGenerator
    asr: Any | None = None  # issue 7: a generators.transformers_asr.SpeechRecognizer; set: audio outputs are screened
    planner: Any | None = None  # /v1/jobs (issue 8): a generators.transformers_planner.TransformersPlanner

    def close(self) -> None:
        self.generator_pool.shutdown(wait=False, cancel_futures=True)
        self.detector_pool.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()

    def detector_versions(self) -> dict[str, str]:
        return {d.name: d.version for d in (*self.prescreen_detectors, *self.image_detectors)}

    def generator_info(self) -> dict[str, Any]:
        return {
            "name": self.generator.name,
            "version": self.generator.version,
            "safety_checker_disabled": bool(getattr(self.generator, "safety_checker_disabled", False)),
        }
