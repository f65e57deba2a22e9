"""Mamori's one settings class.

Precedence: command-line flag (init arguments) > `MAMORI_*` environment > YAML file > default.
The YAML file is `--config FILE`, else `mamori.yaml` in the data folder. No other module reads
`os.environ`.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

OPENAI_SIZES = ("256x256", "512x512", "1024x1024")
_SIZE_RE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")


def default_data_dir() -> Path:
    env = os.environ.get("MAMORI_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".mamori"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_", extra="forbid", env_nested_delimiter="__")

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str | None = None
    public_url: str | None = None
    log_level: str = "INFO"

    # policy
    policy_engine: Literal["embedded", "opa"] = "embedded"
    policy_bundle_dir: Path | None = None
    opa_url: str | None = None

    # detectors (entry-point names, run in this order)
    # protected_names screens the database registry (POST /v1/protected-names) besides its options;
    # bias_text flags stereotyped descriptors pinned on a group (the policy sends them to review)
    prescreen_detectors: list[str] = [
        "denylist",
        "pii",
        "unsafe_text",
        "jailbreak",
        "toxicity",
        "protected_names",
        "bias_text",
    ]
    image_detectors: list[str] = ["image_safety", "copyright"]
    detector_options: dict[str, dict[str, Any]] = {}
    detector_timeout_s: float = Field(default=30.0, gt=0)
    detector_concurrency: int = Field(default=4, ge=1, le=64)
    # issue 4: a local CLIP folder; when set, the image-bias detector "bias_image" runs on output batches
    clip_model: Path | None = None

    # generation
    generator: str = "diffusers"
    generator_options: dict[str, Any] = {}
    generator_concurrency: int = Field(default=1, ge=1, le=64)
    generation_timeout_s: float = Field(default=300.0, gt=0)
    default_steps: int = Field(default=2, ge=1, le=200)
    extra_sizes: list[str] = []
    max_n: int = Field(default=4, ge=1, le=16)
    max_prompt_chars: int = Field(default=4000, ge=1)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=4096 * 4096, ge=64 * 64)
    # pixels one moderation call may decode, every frame of every image counted (an animation's
    # frames are decoded in turn, so all of them count); at least max_image_pixels
    max_request_pixels: int = Field(default=4 * 4096 * 4096, ge=64 * 64)

    # assets and provenance
    url_ttl_s: int = Field(default=3600, ge=1)
    signing_cert_chain: Path | None = None
    signing_key: Path | None = None
    trust_anchor: Path | None = None

    # text (issue 7, chat completions) ---------------------------------------------------------
    text_generator: str | None = "transformers"  # entry point in mamori.generators; None: no chat endpoint
    text_model: str | None = None  # local folder (or hub id with local files); None: the tiny random default
    text_generator_options: dict[str, Any] = {}  # device, dtype, top_p, local_files_only...
    text_max_tokens: int = Field(default=1024, ge=1, le=32768)  # cap on a request's max_tokens
    text_default_max_tokens: int = Field(default=256, ge=1, le=32768)
    text_max_input_chars: int = Field(default=32000, ge=1)  # all messages together
    stream_window_tokens: int = Field(default=16, ge=1, le=4096)  # held back until the output rails pass
    text_output_terms: list[dict[str, str]] = []  # extra deny-list for outputs: [{term, category}]

    # speech (issue 7, audio.speech) -----------------------------------------------------------
    speech_generator: str | None = "transformers_speech"  # entry point in mamori.generators; None: endpoint off
    speech_model: str | None = None  # local VITS/MMS-TTS folder (or hub id with local files); None: tiny default
    speech_generator_options: dict[str, Any] = {}  # device, dtype, voices {name: speaker id}, noise_scale...
    max_speech_chars: int = Field(default=4096, ge=1, le=100_000)  # OpenAI's own limit on `input`

    # video (issue 7, /v1/videos) -----------------------------------------------------------------
    video_generator: str = "diffusers_video"  # entry point in mamori.generators; "remote_video" for an upstream
    video_model: str | None = None  # local Wan 2.1 folder in diffusers layout; None: the tiny random default
    video_generator_options: dict[str, Any] = {}  # steps, device

    # 3D (issue 7, /v1/3d) ------------------------------------------------------------------------
    mesh_model: str | None = None  # local Shap-E folder in diffusers layout; None: the tiny random default
    mesh_generator_options: dict[str, Any] = {}  # steps, guidance_scale, grid_size, device, dtype

    # sound and music (issue 7, audio.generations) and ASR screening of audio outputs ----------
    sound_generator: str | None = "auto"  # entry point in mamori.generators; auto: by sound_model; None: off
    sound_model: str | None = None  # local MusicGen folder (or hub id with local files); None: tiny MusicGen
    sound_generator_options: dict[str, Any] = {}  # device, dtype, guidance_scale, steps...
    max_sound_seconds: float = Field(default=30.0, gt=0, le=300)  # bound on a request's duration_s
    asr_model: str | None = None  # local Whisper folder; set: speech and sound outputs are transcribed and screened
    asr_options: dict[str, Any] = {}  # device, dtype, language, max_new_tokens, batch_size

    @field_validator("text_output_terms")
    @classmethod
    def _output_terms_valid(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for entry in value:
            if not entry.get("term", "").strip() or not entry.get("category", "").strip():
                raise ValueError("each text_output_terms entry needs a non-empty 'term' and 'category'")
        return value

    # end of issue 7 text settings ---------------------------------------------------------------

    # audit trail (issue 6): signed checkpoints, prompt storage, retention
    audit_checkpoint_every: int = Field(default=1000, ge=0)  # records between checkpoints; 0 = off
    audit_checkpoint_seconds: float = Field(default=300.0, ge=0)  # seconds between checkpoints; 0 = off
    audit_signing_key: Path | None = None  # Ed25519 PEM; default <data_dir>/audit/signing.pem, created 0600
    audit_trusted_keys: list[Path] = []  # extra public keys (files or folders of *.pem) trusted by verify
    prompt_storage: Literal["none", "encrypted"] = "none"
    prompt_encryption_key: Path | None = None  # base64 32-byte AES key; default <data_dir>/audit/prompt.key
    audit_retention_days: dict[str, int] = {}  # tenant -> days to keep payloads; "*" = every other tenant

    # review queue, job queue, webhooks and web pages (issue 5) --------------------------------
    jobs_backend: Literal["sqlite", "redis", "memory"] = "sqlite"  # sqlite: huey file in data_dir, no server
    jobs_consumer: Literal["thread", "none"] = "thread"  # none: run `mamori worker` separately
    jobs_workers: int = Field(default=2, ge=1, le=32)
    redis_url: str = "redis://127.0.0.1:6379/0"
    jobs_queue_name: str = Field(default="mamori", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    review_lease_s: int = Field(default=900, ge=10, le=86400)  # a claim holds an item this long
    review_deadline_s: int = Field(default=4 * 3600, ge=1)  # when obligations give no deadline_s
    review_expiry_s: int = Field(default=72 * 3600, ge=1)  # then the item is rejected automatically
    rejected_retention_s: int = Field(default=0, ge=0)  # a rejected asset's pixels are kept this long
    webhook_urls: list[str] = []  # admins' endpoints: new items, decisions, missed deadlines
    webhook_secret: SecretStr | None = None  # HMAC key; default: a generated file in data_dir
    webhook_retries: int = Field(default=8, ge=0, le=30)
    webhook_retry_delay_s: float = Field(default=2.0, ge=0)  # doubled after each failed try
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    allow_private_callbacks: bool = False  # allow loopback, link-local and private callback hosts
    session_secret_path: Path | None = None  # web session key; default data_dir/web_session.key
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    web_languages: list[str] = ["en", "ja"]
    # end of issue 5 settings ----------------------------------------------------------------

    # orchestrated jobs (issue 8, /v1/jobs) ------------------------------------------------------
    planner_generator: str | None = "transformers_planner"  # entry point in mamori.generators; None: /v1/jobs off
    planner_model: str | None = None  # local causal-LM folder; None: text_model if set, else the tiny default
    planner_options: dict[str, Any] = {}  # device, dtype, local_files_only, system_prompt
    planner_max_new_tokens: int = Field(default=1024, ge=8, le=16384)  # the plan's token budget
    job_max_steps: int = Field(default=4, ge=1, le=16)  # cap on a plan's steps (a request may ask for fewer)
    job_prompt_chars: int = Field(default=240, ge=16, le=4000)  # cap on each planned step's prompt
    job_instruction_chars: int = Field(default=2000, ge=1, le=32000)
    job_sizes: list[str] = []  # sizes a plan may pick for images and videos; empty: the gateway's sizes
    # end of issue 8 job settings ----------------------------------------------------------------

    @field_validator("extra_sizes", "job_sizes")
    @classmethod
    def _sizes_valid(cls, value: list[str]) -> list[str]:
        for size in value:
            m = _SIZE_RE.match(size)
            if not m or int(m.group(1)) % 8 or int(m.group(2)) % 8:
                raise ValueError(f"size {size!r} must look like WIDTHxHEIGHT with multiples of 8")
        return value

    @field_validator("host")
    @classmethod
    def _host_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("host must not be empty")
        return value

    @model_validator(mode="after")
    def _clip_enables_bias_image(self) -> Settings:
        """A configured CLIP folder turns the image-bias detector on (off by default: no weights ship)."""
        if self.clip_model is not None:
            if "bias_image" not in self.image_detectors:
                self.image_detectors = [*self.image_detectors, "bias_image"]
            options = self.detector_options.get("bias_image", {})
            self.detector_options = {**self.detector_options, "bias_image": {"model": str(self.clip_model), **options}}
        return self

    @model_validator(mode="after")
    def _request_pixels_hold_an_image(self) -> Settings:
        if "max_request_pixels" not in self.model_fields_set:
            # not set: the default budget holds four images at the per-image limit, however raised
            self.max_request_pixels = max(self.max_request_pixels, 4 * self.max_image_pixels)
        elif self.max_request_pixels < self.max_image_pixels:
            raise ValueError("max_request_pixels must be at least max_image_pixels (one image at the limit)")
        return self

    @model_validator(mode="after")
    def _signing_complete(self) -> Settings:
        given = [p is not None for p in (self.signing_cert_chain, self.signing_key, self.trust_anchor)]
        if any(given) and not all(given):
            raise ValueError("signing_cert_chain, signing_key and trust_anchor must be set together")
        if self.policy_engine == "opa" and not self.opa_url:
            raise ValueError("policy_engine 'opa' needs opa_url")
        if self.opa_url and not self.opa_url.startswith(("http://", "https://")):
            raise ValueError("opa_url must be an http(s) URL")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_file = settings_cls.model_config.get("yaml_file")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    # derived values -------------------------------------------------------
    @property
    def sizes(self) -> tuple[str, ...]:
        return (*OPENAI_SIZES, *(s for s in self.extra_sizes if s not in OPENAI_SIZES))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mamori.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings with the documented precedence. `overrides` are command-line flags (None = not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    data_dir = Path(given["data_dir"]).expanduser() if "data_dir" in given else default_data_dir()
    yaml_path = config_file if config_file is not None else data_dir / "mamori.yaml"
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(yaml_file=yaml_path if yaml_path.is_file() else None)

    return _FileSettings(**given)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def hf_offline_environment() -> dict[str, str]:
    """Environment that keeps Hugging Face libraries from reaching a hub at run time."""
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def apply_offline_environment() -> None:
    for key, value in hf_offline_environment().items():
        os.environ.setdefault(key, value)
