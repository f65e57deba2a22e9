"""Request templates (issue 8): a named, versioned request pattern with typed slots, approved by compliance.

A template's `pattern` uses `{slot}` fields (``str.format``'s syntax, parsed once with
``string.Formatter().parse``). Filling never calls ``str.format`` and never evaluates anything: the
parsed pieces are joined with the validated slot values as plain text, so a value such as
``{product.__class__}`` or ``{{`` is inserted literally and cannot reach another field, an attribute
or a template engine. Slot values are validated against their types first (text with a length limit
and an optional regular expression, a choice from a list, an integer or number within bounds); the
filled prompt then goes through the usual governed path of the template's modality, where the
detectors screen it like any other prompt.

This module holds the public shapes (pydantic, for the API and YAML) and the pure functions;
`gateway.template_store` keeps versions and their lifecycle in the database.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audit.canonical import canonical_json

MODALITIES = ("image", "speech", "video", "3d", "audio")
Modality = Literal["image", "speech", "video", "3d", "audio"]
SeedPolicy = Literal["fixed", "random", "per-request"]
State = Literal["draft", "submitted", "approved", "retired"]
STATES: tuple[State, ...] = ("draft", "submitted", "approved", "retired")
MAX_TEXT_CHARS = 500
MAX_PATTERN_CHARS = 2000
_NAME = r"^[a-z][a-z0-9_]{0,39}$"
_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")


class Slot(BaseModel):
    """One typed slot. `text`: max_length (required) and an optional full-match `regex`; `choice`: `choices`;
    `integer` / `number`: `minimum` and `maximum` (both required)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=_NAME)]
    type: Literal["text", "choice", "integer", "number"]
    label: Annotated[str, Field(max_length=120)] = ""
    label_ja: Annotated[str, Field(max_length=120)] = ""
    max_length: Annotated[int | None, Field(ge=1, le=MAX_TEXT_CHARS)] = None
    regex: Annotated[str | None, Field(max_length=200)] = None
    choices: Annotated[list[Annotated[str, Field(min_length=1, max_length=120)]] | None, Field(max_length=50)] = None
    minimum: float | None = None
    maximum: float | None = None
    default: str | int | float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Slot:
        if self.type == "text":
            if self.max_length is None:
                raise ValueError(f"text slot {self.name!r} needs max_length")
            if self.regex is not None:
                try:
                    re.compile(self.regex)
                except re.error as exc:
                    raise ValueError(f"slot {self.name!r}: regex does not compile: {exc}") from exc
        elif self.regex is not None or self.max_length is not None:
            raise ValueError(f"slot {self.name!r}: max_length and regex are for text slots")
        if self.type == "choice":
            if not self.choices:
                raise ValueError(f"choice slot {self.name!r} needs choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"choice slot {self.name!r} lists a choice twice")
        elif self.choices is not None:
            raise ValueError(f"slot {self.name!r}: choices are for choice slots")
        if self.type in ("integer", "number"):
            if self.minimum is None or self.maximum is None:
                raise ValueError(f"{self.type} slot {self.name!r} needs minimum and maximum")
            if not (math.isfinite(self.minimum) and math.isfinite(self.maximum)) or self.minimum > self.maximum:
                raise ValueError(f"slot {self.name!r}: minimum must be at most maximum")
            if self.type == "integer" and not (float(self.minimum).is_integer() and float(self.maximum).is_integer()):
                raise ValueError(f"integer slot {self.name!r} needs whole-number bounds")
        elif self.minimum is not None or self.maximum is not None:
            raise ValueError(f"slot {self.name!r}: minimum and maximum are for integer and number slots")
        if self.default is not None:
            error = check_value(self, self.default)
            if error is not None:
                raise ValueError(f"slot {self.name!r}: the default is invalid ({error.message})")
        return self


class Params(BaseModel):
    """Backend parameters the template fixes: `size` for image and video, `voice` for speech, `seconds` for video
    and for sound (`audio`: the duration; without it, 5 seconds as `POST /v1/audio/generations`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Annotated[str | None, Field(max_length=11)] = None
    steps: Annotated[int | None, Field(ge=1, le=200)] = None
    seed_policy: SeedPolicy = "random"
    seed: Annotated[int | None, Field(ge=0, le=2**32 - 1)] = None
    voice: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    seconds: Annotated[int | None, Field(ge=1, le=60)] = None

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.size is not None and not _SIZE.match(self.size):
            raise ValueError("size must be WIDTHxHEIGHT")
        if self.seed_policy == "fixed" and self.seed is None:
            raise ValueError("seed_policy 'fixed' needs a seed")
        if self.seed_policy != "fixed" and self.seed is not None:
            raise ValueError("a seed is only given with seed_policy 'fixed'")
        return self


class TemplateSpec(BaseModel):
    """The content of one template version: what an author writes and compliance approves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[str, Field(max_length=1000)] = ""
    modality: Modality
    pattern: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_CHARS)]
    slots: list[Slot] = Field(default_factory=list, max_length=20)
    params: Params = Field(default_factory=Params)
    rules_out: list[Annotated[str, Field(pattern=_NAME)]] = Field(default_factory=list, max_length=20)

    @field_validator("rules_out")
    @classmethod
    def _sorted(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _fields_match_slots(self) -> TemplateSpec:
        names = [s.name for s in self.slots]
        if len(set(names)) != len(names):
            raise ValueError("two slots have the same name")
        used = set(pattern_fields(self.pattern))  # raises ValueError on a malformed pattern
        if used != set(names):
            missing, unused = sorted(used - set(names)), sorted(set(names) - used)
            raise ValueError(f"pattern fields and slots differ (no slot for {missing}; slots not used {unused})")
        return self

    def digest(self) -> str:
        """sha256 of the RFC 8785 JSON of the spec: what the audit records and compliance approves."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json"))).hexdigest()


# ---------------------------------------------------------------------------------- the pattern

Piece = tuple[str, str | None]  # (literal text, slot name or None)


def parse_pattern(pattern: str) -> list[Piece]:
    """The pattern as literal pieces and slot names. Only bare `{name}` fields: no index, attribute,
    conversion or format spec, no positional `{}`; `{{` and `}}` are literal braces."""
    pieces: list[Piece] = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValueError(f"malformed pattern: {exc}") from exc
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
            continue
        if spec or conversion or not re.fullmatch(_NAME, field):
            raise ValueError(f"pattern field {{{field}}} must be a bare slot name (no format spec, index or attribute)")
        pieces.append((literal, field))
    return pieces


def pattern_fields(pattern: str) -> list[str]:
    return [name for _, name in parse_pattern(pattern) if name is not None]


# ---------------------------------------------------------------------------------- slot values


@dataclass(frozen=True)
class SlotError:
    """Why a value does not fit its slot: a machine-readable code and the slot's name."""

    code: str
    slot: str
    message: str


SlotValue = str | int | float


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def check_value(slot: Slot, value: Any) -> SlotError | None:
    """None when `value` fits `slot`, otherwise the reason."""
    name = slot.name
    if slot.type in ("text", "choice"):
        if not isinstance(value, str):
            return SlotError("slot_invalid_type", name, f"slot {name!r} takes text")
        if slot.type == "choice":
            assert slot.choices is not None
            if value not in slot.choices:
                return SlotError("slot_not_a_choice", name, f"slot {name!r} must be one of: {', '.join(slot.choices)}")
            return None
        assert slot.max_length is not None
        if not value.strip():
            return SlotError("slot_empty", name, f"slot {name!r} is empty")
        if len(value) > slot.max_length:
            return SlotError(
                "slot_too_long",
                name,
                f"slot {name!r} holds {len(value)} characters, over its limit of {slot.max_length}",
            )
        if _has_control(value):
            return SlotError("slot_invalid_characters", name, f"slot {name!r} holds line breaks or control characters")
        if slot.regex is not None and re.fullmatch(slot.regex, value) is None:
            return SlotError("slot_pattern_mismatch", name, f"slot {name!r} does not match its required pattern")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return SlotError("slot_invalid_type", name, f"slot {name!r} takes a number")
    if slot.type == "integer" and not (isinstance(value, int) or float(value).is_integer()):
        return SlotError("slot_invalid_type", name, f"slot {name!r} takes a whole number")
    if not math.isfinite(value):
        return SlotError("slot_invalid_type", name, f"slot {name!r} takes a finite number")
    assert slot.minimum is not None
    assert slot.maximum is not None
    if not slot.minimum <= value <= slot.maximum:
        low, high = _number_text(slot.minimum), _number_text(slot.maximum)
        return SlotError("slot_out_of_range", name, f"slot {name!r} must be between {low} and {high}")
    return None


def _number_text(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def coerce_form_value(slot: Slot, raw: str) -> SlotValue:
    """A web form's string as the slot's type (numbers parsed); validation happens in `validate_slots`."""
    if slot.type == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            return raw
    if slot.type == "number":
        try:
            return float(raw.strip())
        except ValueError:
            return raw
    return raw


def validate_slots(spec: TemplateSpec, values: dict[str, Any]) -> tuple[dict[str, SlotValue], list[SlotError]]:
    """Every slot's value (defaults filled in), or the list of problems (unknown, missing, invalid)."""
    errors: list[SlotError] = []
    known = {s.name for s in spec.slots}
    for name in sorted(values):
        if name not in known:
            errors.append(SlotError("slot_unknown", str(name)[:40], f"the template has no slot {str(name)[:40]!r}"))
    out: dict[str, SlotValue] = {}
    for slot in spec.slots:
        value = values.get(slot.name, slot.default)
        if value is None:
            errors.append(SlotError("slot_missing", slot.name, f"slot {slot.name!r} needs a value"))
            continue
        error = check_value(slot, value)
        if error is not None:
            errors.append(error)
        else:
            out[slot.name] = int(value) if slot.type == "integer" else value
    return out, errors


def fill(spec: TemplateSpec, values: dict[str, SlotValue]) -> str:
    """The pattern with each field replaced by its (validated) value as plain text."""
    parts: list[str] = []
    for literal, name in parse_pattern(spec.pattern):
        parts.append(literal)
        if name is not None:
            value = values[name]
            parts.append(_number_text(value) if isinstance(value, int | float) else value)
    return "".join(parts)


def slot_label(slot: Slot, lang: str) -> str:
    if lang == "ja" and slot.label_ja:
        return slot.label_ja
    return slot.label or slot.name.replace("_", " ")
