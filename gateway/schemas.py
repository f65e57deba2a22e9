"""Public API models (pydantic). Internal values are frozen dataclasses elsewhere."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageGenerationRequest(BaseModel):
    """OpenAI's images.generate body, plus an optional `seed`. Unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    model: str | None = Field(default=None, max_length=200)
    n: int = Field(default=1, ge=1)
    size: str | None = Field(default=None, max_length=20)
    response_format: Literal["b64_json", "url"] | None = None
    quality: str | None = None
    style: str | None = None
    user: str | None = Field(default=None, max_length=256)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    callback_url: str | None = Field(default=None, max_length=2000)  # webhook for a held request's decision


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class MamoriObject(BaseModel):
    """Documentation model of the `mamori` object every governed answer carries."""

    request_id: str
    status: Literal["released", "held", "refused", "expired"]
    decision: Literal["allow", "redact", "escalate", "block"]
    reasons: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    manifest_ids: list[str]
    escalation_id: str | None = None
    poll_url: str | None = None
