"""Build the services of one gateway process from settings: database, stores, policy, detectors, backend, signer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import LocalBlobStore
from audit.db import create_db_engine, session_factory
from audit.escalations import EscalationStore
from audit.store import AuditStore
from detectors.base import Detector
from detectors.copyright import MIN_QUALITY
from detectors.registry import load_detector
from gateway.keys import KeyStore
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.policy import create_engine, default_bundle_dir
from gateway.protected import ProtectedRegistry
from gateway.protected_names import ProtectedNameRegistry
from gateway.provenance import Provenance, ensure_local_ca
from gateway.services import Services
from gateway.settings import Settings, apply_offline_environment
from gateway.state import RequestStore
from generators.base import ImageGenerator
from generators.transformers_text import TextGenerator

log = get_logger("mamori.bootstrap")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")  # several issues may add revisions side by side


def open_database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.db_url)
    migrate(engine)
    return engine, session_factory(engine)


def load_provenance(settings: Settings) -> Provenance:
    if settings.signing_cert_chain and settings.signing_key and settings.trust_anchor:
        return Provenance.from_files(settings.signing_cert_chain, settings.signing_key, settings.trust_anchor)
    paths = ensure_local_ca(settings.pki_dir)
    return Provenance.from_files(paths.signer_chain, paths.signer_key, paths.ca_cert)


def load_audit_store(settings: Settings, sessions: sessionmaker[Session]) -> AuditStore:
    """The audit store with its checkpoint signing key and (if configured) the prompt cipher (issue 6)."""
    from audit.checkpoints import Checkpointer
    from audit.crypto import PromptCipher, SigningKey

    key = SigningKey.load_or_create(settings.audit_signing_key or settings.audit_dir / "signing.pem")
    checkpointer = Checkpointer(key, every=settings.audit_checkpoint_every, seconds=settings.audit_checkpoint_seconds)
    cipher = None
    if settings.prompt_storage == "encrypted":
        cipher = PromptCipher.load_or_create(settings.prompt_encryption_key or settings.audit_dir / "prompt.key")
    return AuditStore(sessions, checkpointer=checkpointer, prompt_cipher=cipher)


def load_generator(settings: Settings) -> ImageGenerator:
    cls = _backend("generator", settings.generator)
    options: dict[str, Any] = dict(settings.generator_options)
    if settings.generator == "diffusers" and "model" not in options:
        from generators.tiny import ensure_tiny_models

        tiny = ensure_tiny_models(settings.models_dir)
        options.update(model=str(tiny.text2img), edit_model=str(tiny.edit), inpaint_model=str(tiny.inpaint))
        log.warning("generator.tiny_default", detail="random-weight tiny pipeline; configure real weights")
    generator: ImageGenerator = cls(**options)
    generator.load()
    if getattr(generator, "safety_checker_disabled", False):
        log.warning("generator.safety_checker_disabled", backend=generator.name)
    return generator


def _backend(kind: str, name: str) -> Any:
    """The class behind entry point `name` in `mamori.generators`; a clear error names what exists."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="mamori.generators")}
    if name not in found:
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(sorted(found))}")
    return found[name].load()


def _is_remote(name: str) -> bool:
    """A remote backend names its upstream's model: it never falls back to a tiny local one."""
    return name.startswith("remote")


def load_text_generator(settings: Settings) -> TextGenerator | None:
    """The chat backend (issue 7), by entry-point name; without `text_model`, the tiny random-weight default."""
    if settings.text_generator is None:
        return None
    cls = _backend("text generator", settings.text_generator)
    options: dict[str, Any] = dict(settings.text_generator_options)
    if settings.text_model is not None:
        options["model"] = settings.text_model
    elif "model" not in options and not _is_remote(settings.text_generator):
        from generators.tiny_text import ensure_tiny_llm

        options["model"] = str(ensure_tiny_llm(settings.models_dir / "tiny-llm"))
        log.warning("text_generator.tiny_default", detail="random-weight tiny language model; configure text_model")
    generator: TextGenerator = cls(**options)
    generator.load()
    return generator


def load_speech_generator(settings: Settings) -> Any | None:
    """The text-to-speech backend (issue 7), by entry-point name; without `speech_model`, the tiny random default."""
    if settings.speech_generator is None:
        return None
    cls = _backend("speech generator", settings.speech_generator)
    options: dict[str, Any] = dict(settings.speech_generator_options)
    if settings.speech_model is not None:
        options["model"] = settings.speech_model
    elif "model" not in options and not _is_remote(settings.speech_generator):
        from generators.tiny_speech import ensure_tiny_tts

        options["model"] = str(ensure_tiny_tts(settings.models_dir / "tiny-tts"))
        log.warning("speech_generator.tiny_default", detail="random-weight tiny TTS model; configure speech_model")
    generator = cls(**options)
    generator.load()
    return generator


def load_video_generator(settings: Settings) -> Any:
    """The text-to-video backend (issue 7), by entry-point name; without `video_model`, the tiny random Wan 2.1."""
    from gateway.video_pipeline import FPS

    cls = _backend("video generator", settings.video_generator)
    options: dict[str, Any] = {"fps": FPS, **settings.video_generator_options}
    if settings.video_model is not None:
        options["model"] = settings.video_model
    elif "model" not in options and not _is_remote(settings.video_generator):
        from generators.tiny_video import ensure_tiny_wan

        options["model"] = ensure_tiny_wan(settings.models_dir / "tiny-wan")
        log.warning("video_generator.tiny_default", detail="random-weight tiny Wan 2.1 pipeline; configure video_model")
    return cls(**options)


def load_mesh_generator(settings: Settings) -> Any:
    """The text-to-3D backend (issue 7); without `mesh_model`, the tiny random Shap-E default."""
    from generators.diffusers_3d import DiffusersMeshGenerator

    options: dict[str, Any] = dict(settings.mesh_generator_options)
    if settings.mesh_model is not None:
        model: str | Path = settings.mesh_model
    else:
        from generators.tiny_3d import GRID_SIZE, ensure_tiny_shap_e

        model = ensure_tiny_shap_e(settings.models_dir / "tiny-shap-e")
        options = {"steps": 2, "grid_size": GRID_SIZE, **options}
        log.warning("mesh_generator.tiny_default", detail="random-weight tiny Shap-E pipeline; configure mesh_model")
    return DiffusersMeshGenerator(model, **options)


def load_sound_generator(settings: Settings) -> Any | None:
    """The text-to-sound backend (issue 7), by entry-point name; without `sound_model`, the tiny random MusicGen.

    `auto` picks `diffusers_audio` for a folder with a `model_index.json` (a diffusers pipeline such
    as AudioLDM 2; that backend is not shipped yet, so such a folder is refused at startup with the
    list of available backends) and `transformers_music` (MusicGen) otherwise.
    """

    name = settings.sound_generator
    if name is None:
        return None
    options: dict[str, Any] = dict(settings.sound_generator_options)
    if settings.sound_model is not None:
        options["model"] = settings.sound_model
    elif "model" not in options:
        from generators.tiny_music import ensure_tiny_musicgen

        options["model"] = str(ensure_tiny_musicgen(settings.models_dir / "tiny-musicgen"))
        log.warning("sound_generator.tiny_default", detail="random-weight tiny MusicGen model; configure sound_model")
    if name == "auto":
        name = "diffusers_audio" if (Path(options["model"]) / "model_index.json").is_file() else "transformers_music"
    generator = _backend("sound generator", name)(**{"max_seconds": settings.max_sound_seconds, **options})
    generator.load()
    return generator


def load_asr(settings: Settings) -> Any | None:
    """The speech recognizer that screens audio outputs (issue 7); None unless `asr_model` is set."""
    if settings.asr_model is None:
        return None
    from generators.transformers_asr import TransformersASR

    asr = TransformersASR(model=settings.asr_model, **settings.asr_options)
    asr.load()
    return asr


def load_planner(settings: Settings) -> Any | None:
    """The job planner (issue 8), by entry-point name; `planner_model`, else `text_model`, else the tiny default."""
    from importlib.metadata import entry_points

    if settings.planner_generator is None:
        return None
    found = {ep.name: ep for ep in entry_points(group="mamori.generators")}
    if settings.planner_generator not in found:
        raise ValueError(f"unknown planner {settings.planner_generator!r}; available: {', '.join(sorted(found))}")
    options: dict[str, Any] = dict(settings.planner_options)
    if settings.planner_model is not None or settings.text_model is not None:
        options["model"] = settings.planner_model or settings.text_model
    elif "model" not in options:
        from generators.tiny_planner import ensure_tiny_planner

        options["model"] = str(ensure_tiny_planner(settings.models_dir / "tiny-planner"))
        log.warning("planner.tiny_default", detail="random-weight tiny planner; configure planner_model")
    planner = found[settings.planner_generator].load()(**options)
    planner.load()
    return planner


def load_detectors(names: list[str], settings: Settings) -> list[Detector]:
    detectors = []
    for name in names:
        detector = load_detector(name, settings.detector_options.get(name, {}))
        detector.load()
        detectors.append(detector)
    return detectors


def registration_min_quality(settings: Settings) -> int:
    """The PDQ quality below which a protected work is refused: the copyright detector's own
    `min_quality`, since a work under it could never be matched."""
    return int(settings.detector_options.get("copyright", {}).get("min_quality", MIN_QUALITY))


def build_services(settings: Settings) -> Services:
    apply_offline_environment()
    engine, sessions = open_database(settings)
    bundle = settings.policy_bundle_dir or default_bundle_dir()
    policy = create_engine(settings.policy_engine, bundle, settings.opa_url)
    blobs = LocalBlobStore(settings.blob_dir)
    services = Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        keys=KeyStore(sessions),
        requests=RequestStore(sessions),
        audit=load_audit_store(settings, sessions),
        escalations=EscalationStore(sessions),
        blobs=blobs,
        protected=ProtectedRegistry(
            sessions,
            blobs=blobs,
            min_quality=registration_min_quality(settings),
        ),
        protected_names=ProtectedNameRegistry(sessions),
        policy=policy,
        provenance=load_provenance(settings),
        prescreen_detectors=load_detectors(settings.prescreen_detectors, settings),
        image_detectors=load_detectors(settings.image_detectors, settings),
        generator=load_generator(settings),
        metrics=Metrics(),
        generator_pool=ThreadPoolExecutor(settings.generator_concurrency, thread_name_prefix="mamori-generate"),
        detector_pool=ThreadPoolExecutor(settings.detector_concurrency, thread_name_prefix="mamori-detect"),
        text_generator=load_text_generator(settings),
        speech_generator=load_speech_generator(settings),
        video_generator=load_video_generator(settings),
        mesh_generator=load_mesh_generator(settings),
        sound_generator=load_sound_generator(settings),
        asr=load_asr(settings),
        planner=load_planner(settings),
    )
    services.ready.update(models=True, policy=True, database=True)
    return services
