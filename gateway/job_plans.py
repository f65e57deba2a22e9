"""The plan of an orchestrated job (issue 8): its JSON schema, its validation and its digest.

A plan is `{"steps": [{"modality", "prompt", "params", "depends_on"}]}`. The planner LLM decodes
under the JSON schema `plan_schema` builds for one job (`generators.transformers_planner`, with
`outlines`), so even a random-weight model writes JSON of this shape. The schema bounds
everything a decoder can enforce: the number of steps, the modalities allowed, the length of each
prompt, each parameter as an enumeration (outlines' JSON-schema decoding does not enforce numeric
`minimum`/`maximum`, so numbers are offered as enumerations), and each `depends_on` as a list of
earlier step numbers where the steps are pinned.

`parse_plan` then checks what a schema cannot say (a dependency on a later step, a blank prompt,
a parameter outside the job's limits) and raises `PlanError` with a clear message: a plan that
fails is not repaired or guessed at, the job fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Modality = Literal["image", "speech", "video", "3d", "sound"]
MODALITIES: tuple[str, ...] = get_args(Modality)
VIDEO_SECONDS: tuple[int, ...] = (4, 8, 12)
SOUND_SECONDS: tuple[int, ...] = (1, 5, 10, 30)
DEFAULT_VOICES: tuple[str, ...] = ("alloy",)
JOB_LABEL = "mamori.job"
"""Label of the C2PA assertion each job asset carries: `{job_id, step, plan_sha256}`."""


class PlanError(ValueError):
    """The planner's output is not a valid plan for this job."""


@dataclass(frozen=True)
class PlanLimits:
    """What one job's plan may contain (from the settings and the request)."""

    max_steps: int
    prompt_chars: int
    image_sizes: tuple[str, ...]
    video_sizes: tuple[str, ...]
    voices: tuple[str, ...] = DEFAULT_VOICES
    allowed: tuple[str, ...] = MODALITIES
    outline: tuple[str, ...] | None = None  # the modalities of the steps, in order, when the request pins them
    video_seconds: tuple[int, ...] = VIDEO_SECONDS
    sound_seconds: tuple[int, ...] = SOUND_SECONDS

    def params_schema(self, modality: str) -> dict[str, Any]:
        """The parameters of one step of `modality` (a 3D step has none: Shap-E takes only its prompt)."""
        props: dict[str, Any]
        if modality == "image":
            props = {"size": {"type": "string", "enum": list(self.image_sizes)}}
        elif modality == "speech":
            props = {"voice": {"type": "string", "enum": list(self.voices)}}
        elif modality == "video":
            props = {
                "size": {"type": "string", "enum": list(self.video_sizes)},
                "seconds": {"type": "integer", "enum": list(self.video_seconds)},
            }
        elif modality == "sound":
            props = {"seconds": {"type": "integer", "enum": list(self.sound_seconds)}}
        else:
            props = {}
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    def step_schema(self, modality: str, depends: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "modality": {"const": modality},
                "prompt": {"type": "string", "minLength": 1, "maxLength": self.prompt_chars},
                "params": self.params_schema(modality),
                "depends_on": depends,
            },
            "required": ["modality", "prompt", "params", "depends_on"],
            "additionalProperties": False,
        }


def _earlier(index: int) -> dict[str, Any]:
    """`depends_on` of step `index`: distinct earlier step numbers (none for the first step)."""
    if index == 0:
        return {"type": "array", "maxItems": 0}
    return {"type": "array", "items": {"type": "integer", "enum": list(range(index))}, "maxItems": index}


def plan_schema(limits: PlanLimits) -> dict[str, Any]:
    """The JSON schema the planner decodes under, for these limits."""
    if limits.outline is not None:
        pinned = [limits.step_schema(m, _earlier(i)) for i, m in enumerate(limits.outline)]
        steps: dict[str, Any] = {
            "type": "array",
            "prefixItems": pinned,
            "items": False,
            "minItems": len(pinned),
            "maxItems": len(pinned),
        }
    else:
        anywhere = {
            "type": "array",
            "items": {"type": "integer", "enum": list(range(limits.max_steps))},
            "maxItems": max(limits.max_steps - 1, 0),
        }
        steps = {
            "type": "array",
            "items": {"anyOf": [limits.step_schema(m, anywhere) for m in limits.allowed]},
            "minItems": 1,
            "maxItems": limits.max_steps,
        }
    return {
        "title": "Plan",
        "type": "object",
        "properties": {"steps": steps},
        "required": ["steps"],
        "additionalProperties": False,
    }


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: Modality
    prompt: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: tuple[int, ...] = ()


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[PlanStep, ...] = Field(min_length=1)

    def canonical(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()


def _check_params(i: int, step: PlanStep, limits: PlanLimits) -> None:
    allowed = limits.params_schema(step.modality)["properties"]
    extra = sorted(set(step.params) - set(allowed))
    missing = sorted(set(allowed) - set(step.params))
    if extra or missing:
        raise PlanError(f"step {i} ({step.modality}) has parameters {extra or missing} that do not fit its modality")
    for name, rule in allowed.items():
        value = step.params[name]
        if value not in rule["enum"] or isinstance(value, bool):
            raise PlanError(f"step {i} ({step.modality}): {name} {value!r} is not one of {rule['enum']}")


def parse_plan(text: str, limits: PlanLimits) -> Plan:
    """Validate the planner's output against the job's limits; `PlanError` says what is wrong."""
    try:
        plan = Plan.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        message = errors[0]["msg"] if errors else "invalid"
        raise PlanError(f"the planner's output is not a valid plan ({where or 'plan'}: {message})") from None
    if len(plan.steps) > limits.max_steps:
        raise PlanError(f"the plan has {len(plan.steps)} steps, over the limit of {limits.max_steps}")
    if limits.outline is not None and tuple(s.modality for s in plan.steps) != limits.outline:
        raise PlanError(f"the plan's steps are not the requested modalities {list(limits.outline)}")
    for i, step in enumerate(plan.steps):
        if step.modality not in limits.allowed:
            raise PlanError(f"step {i} is a {step.modality} step, which this job does not allow")
        if not step.prompt.strip():
            raise PlanError(f"step {i} has a blank prompt")
        if len(step.prompt) > limits.prompt_chars:
            raise PlanError(f"step {i}'s prompt is over {limits.prompt_chars} characters")
        if len(set(step.depends_on)) != len(step.depends_on):
            raise PlanError(f"step {i} lists a dependency twice")
        for d in step.depends_on:
            if not 0 <= d < i:
                raise PlanError(f"step {i} depends on step {d}, which does not come before it")
        _check_params(i, step, limits)
    return plan


def step_view(plan: Plan) -> list[dict[str, Any]]:
    """The plan's steps as the job object shows them."""
    return [
        {
            "index": i,
            "modality": s.modality,
            "prompt": s.prompt,
            "params": dict(s.params),
            "depends_on": list(s.depends_on),
        }
        for i, s in enumerate(plan.steps)
    ]


@dataclass(frozen=True)
class JobLink:
    """What a job step adds to its asset's C2PA manifest: the `mamori.job` assertion and its sources.

    `sources` are `gateway.orchestration.StepSource` values: the released assets of the steps this
    one depends on. Those a manifest can carry as ingredients travel as C2PA ingredients; the others
    (a GLB, whose manifest is a sidecar; or any source of a sidecar manifest, which cannot embed an
    ingredient's bytes) are named in the assertion by step, media type and SHA-256 (`sources`).
    """

    job_id: str
    step: int
    plan_sha256: str
    sources: Sequence[Any] = field(default_factory=tuple)

    def assertion(self, referenced: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {"job_id": self.job_id, "step": self.step, "plan_sha256": self.plan_sha256}
        if referenced:
            out["sources"] = [dict(r) for r in referenced]
        return out
