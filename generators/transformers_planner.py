"""A job planner: a local causal language model writes a plan as JSON under a schema (`outlines`).

`plan(instruction, schema)` formats the instruction with a short system message (through the
tokenizer's chat template when it has one), then decodes greedily with `outlines` constrained
generation under the given JSON schema: every token that would break the schema is masked, so
the text that comes back is JSON of the schema's shape even from a random-weight model (it may
still be cut short by `max_new_tokens`, or break a rule the schema could not state: the caller
validates). The schema is the caller's (`gateway.job_plans.plan_schema`); this backend knows
nothing of modalities or limits.

The model loads through `from_pretrained` from a local folder (`local_files_only` on by default).
Building the decoding index for a schema costs a fraction of a second for the tiny planner's
vocabulary and more for a real one, so the compiled generators are kept per schema (LRU). One
generation runs at a time (the logits processors hold per-generation state).

outlines_core masks logits with a `torch.compile`d kernel. On a CPU the first call compiles it
with a C compiler (~25 s per process); the kernel is a few tensor operations, so the planner runs
it eagerly (`torch.compiler.set_stance("force_eager")` around its own generation only).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from generators.base import GeneratorError
from generators.devices import describe, resolve_device, resolve_dtype_name

__all__ = ["SYSTEM_PROMPT", "TransformersPlanner"]

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You plan media generation jobs. Read the instruction and answer with a JSON plan: a list of "
    "steps, each one generation call (image, speech, sound or music, video, or a 3D model) with its "
    "own self-contained prompt, its parameters, and the earlier steps it builds on."
)
_DTYPES = ("auto", "float32", "float16", "bfloat16")


class TransformersPlanner:
    """Turns an instruction into plan JSON with a transformers causal LM and outlines."""

    name = "transformers_planner"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool = True,
        cached_schemas: int = 16,
        system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        if cached_schemas < 1:
            raise ValueError("cached_schemas must be at least 1")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self.system_prompt = system_prompt
        self._cached = cached_schemas
        try:
            self.version = f"outlines-{metadata.version('outlines')}"
        except metadata.PackageNotFoundError:  # pragma: no cover - a dependency
            self.version = "outlines-unknown"
        self._outlines_model: Any = None
        self._tokenizer: Any = None
        self._generators: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        try:
            self._load()
        except GeneratorError:
            raise
        except Exception as exc:
            raise GeneratorError(f"transformers_planner: cannot load {self.model!r}: {describe(exc)}") from exc

    def _load(self) -> None:
        import outlines
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(self.device)
        dtype_name = resolve_dtype_name(self.dtype, device, on_cuda="bfloat16")
        tokenizer: Any = AutoTokenizer.from_pretrained(self.model, local_files_only=self.local_files_only)
        model: Any = AutoModelForCausalLM.from_pretrained(
            self.model, dtype=getattr(torch, dtype_name), local_files_only=self.local_files_only
        )
        model = model.to(device).eval()
        self._tokenizer = tokenizer
        self._outlines_model = outlines.from_transformers(model, tokenizer)
        logger.info("transformers_planner: loaded %s on %s (%s)", self.model, device, dtype_name)

    @property
    def loaded(self) -> bool:
        return self._outlines_model is not None

    def prompt_for(self, instruction: str) -> str:
        """The model input for one instruction (the chat template when the tokenizer has one)."""
        if self._tokenizer is None:
            raise GeneratorError("transformers_planner: load() first")
        if getattr(self._tokenizer, "chat_template", None):
            messages = [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": instruction},
            ]
            text: str = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return text
        return f"{self.system_prompt}\n\nInstruction: {instruction}\nPlan (JSON): "

    def _generator(self, schema: Mapping[str, Any]) -> Any:
        import outlines
        from outlines.types import JsonSchema

        key = json.dumps(schema, separators=(",", ":"))  # property order is the order the model writes
        generator = self._generators.get(key)
        if generator is None:
            generator = outlines.Generator(self._outlines_model, JsonSchema(key))
            self._generators[key] = generator
            while len(self._generators) > self._cached:
                self._generators.popitem(last=False)
        else:
            self._generators.move_to_end(key)
        return generator

    def plan(self, instruction: str, schema: Mapping[str, Any], *, max_new_tokens: int = 1024) -> str:
        """Decode a plan for `instruction` under `schema` (greedy, so the same input gives the same plan)."""
        import torch

        if self._outlines_model is None:
            raise GeneratorError("transformers_planner: load() first")
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        prompt = self.prompt_for(instruction)
        with self._lock:
            try:
                generator = self._generator(schema)
                with torch.compiler.set_stance("force_eager"), torch.inference_mode():
                    text = generator(prompt, max_new_tokens=max_new_tokens, do_sample=False)
            except Exception as exc:
                raise GeneratorError(f"transformers_planner: generation failed: {describe(exc)}") from exc
        if not isinstance(text, str):
            raise GeneratorError("transformers_planner: the model returned no text")
        return text
