"""Chat text generation with a local causal language model (Hugging Face transformers).

The model and tokenizer load through `from_pretrained` from a local folder or a hub id (with
`local_files_only` on by default, so nothing is fetched at run time). Messages go through the
tokenizer's own chat template.

Two ways to generate:

- `generate(...) -> str` (and `complete(...)`, which also says why it stopped and counts tokens);
- `stream(...) -> TextStream`, an iterator of text pieces fed by transformers' `TextIteratorStreamer`
  from a generation thread. It yields **one item per generated token** (an empty string when a
  token adds no printable text yet, for example half of a multi-byte character), so a caller can
  hold back windows measured in tokens. Closing the iterator early stops the generation thread.

Reproducibility: a request's `seed` seeds torch's RNG inside `torch.random.fork_rng`, under a lock
that serializes generations of this backend, so the same seed, messages and settings give the same
text and the caller's RNG state is untouched. Temperature 0 means greedy decoding.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal, Protocol, runtime_checkable

from generators.base import GeneratorError
from generators.devices import describe, resolve_device, resolve_dtype_name

__all__ = ["TextCompletion", "TextGenerator", "TextStream", "TransformersTextGenerator"]

logger = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "float16", "bfloat16")
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class TextCompletion:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


class TextStream(Iterator[str]):
    """Text pieces, one per generated token, fed by a generation thread.

    After the last piece, `finish_reason` ("stop" or "length") and `completion_tokens` are final.
    A failure of the generation thread is raised as `GeneratorError` from `next()`. `close()` (or
    leaving a `with` block) stops the generation early and waits for its thread.
    """

    def __init__(
        self,
        streamer: Any,
        stop: threading.Event,
        thread: threading.Thread,
        errors: list[BaseException],
        *,
        prompt_tokens: int,
        max_tokens: int,
    ) -> None:
        self._streamer = streamer
        self._stop = stop
        self._thread = thread
        self._errors = errors
        self._max_tokens = max_tokens
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None

    def __next__(self) -> str:
        if self._stop.is_set():
            raise StopIteration
        try:
            piece: str = next(self._streamer)
        except StopIteration:
            self._thread.join()
            if self._errors:
                raise GeneratorError(f"transformers: generation failed: {describe(self._errors[0])}") from None
            hit_limit = self._streamer.tokens >= self._max_tokens and not self._streamer.saw_eos
            self.finish_reason = "length" if hit_limit else "stop"
            raise
        except queue.Empty as exc:
            self.close()
            raise GeneratorError("transformers: the generation thread stalled") from exc
        self.completion_tokens += 1
        return piece

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@runtime_checkable
class TextGenerator(Protocol):
    """A chat backend. `load()` once at startup; the rest is blocking and called off the event loop.

    `messages` are `{"role": ..., "content": ...}` mappings (roles: system, user, assistant).
    """

    name: str
    version: str
    model: str

    def load(self) -> None: ...

    def generate(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> str: ...

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> TextCompletion: ...

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> TextStream: ...


class TransformersTextGenerator:
    """`TextGenerator` backed by a local transformers causal LM and its tokenizer's chat template."""

    name = "transformers"

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        top_p: float = 1.0,
        local_files_only: bool = True,
        stream_timeout_s: float = 300.0,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.top_p = top_p
        self.local_files_only = local_files_only
        self.stream_timeout_s = stream_timeout_s
        self.version: str = metadata.version("transformers")
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()  # one generation at a time: seeded RNG, one model
        self._loaded = False
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch_device = "cpu"

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load the model and tokenizer once (later calls return at once)."""
        with self._load_lock:
            if self._loaded:
                return
            try:
                self._load()
            except GeneratorError:
                raise
            except Exception as exc:
                raise GeneratorError(f"transformers: loading {self.model!r} failed: {describe(exc)}") from exc
            self._loaded = True

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(self.device)
        dtype_name = resolve_dtype_name(self.dtype, device, on_cuda="bfloat16")
        tokenizer = AutoTokenizer.from_pretrained(self.model, local_files_only=self.local_files_only)
        if not getattr(tokenizer, "chat_template", None):
            raise GeneratorError(f"transformers: the tokenizer of {self.model!r} has no chat template")
        model: Any = AutoModelForCausalLM.from_pretrained(
            self.model, dtype=getattr(torch, dtype_name), local_files_only=self.local_files_only
        )
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer
        self._torch_device = device

    # -- generation ------------------------------------------------------------------------

    def generate(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> str:
        return self.complete(messages, max_tokens=max_tokens, temperature=temperature, seed=seed).text

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> TextCompletion:
        """The whole answer at once."""
        inputs = self._encode(messages, max_tokens, temperature)
        prompt_len = int(inputs["input_ids"].shape[1])
        try:
            with self._generate_lock, _seeded(seed, self._torch_device):
                output = self._model.generate(**inputs, **self._sampling(max_tokens, temperature))
        except Exception as exc:
            raise GeneratorError(f"transformers: generation failed: {describe(exc)}") from exc
        new = output[0, prompt_len:].tolist()
        eos = set(_as_list(self._model.generation_config.eos_token_id))
        finish: FinishReason = "stop" if (new and new[-1] in eos) or len(new) < max_tokens else "length"
        text = self._tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return TextCompletion(str(text), finish, prompt_len, len(new))

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> TextStream:
        """Start generating in a thread; iterate the result for text pieces, one per token."""
        inputs = self._encode(messages, max_tokens, temperature)
        prompt_len = int(inputs["input_ids"].shape[1])
        streamer = _token_streamer_class()(self._tokenizer, timeout=self.stream_timeout_s)
        stop = threading.Event()
        errors: list[BaseException] = []
        streamer.eos_ids = set(_as_list(self._model.generation_config.eos_token_id))

        def run() -> None:
            try:
                with self._generate_lock, _seeded(seed, self._torch_device):
                    if stop.is_set():
                        return
                    self._model.generate(
                        **inputs,
                        **self._sampling(max_tokens, temperature),
                        streamer=streamer,
                        stopping_criteria=_stop_criteria(stop),
                    )
            except BaseException as exc:  # handed to the consumer, which raises GeneratorError
                errors.append(exc)
            finally:
                streamer.finish()

        thread = threading.Thread(target=run, name="mamori-text-stream", daemon=True)
        thread.start()
        return TextStream(streamer, stop, thread, errors, prompt_tokens=prompt_len, max_tokens=max_tokens)

    # -- helpers ---------------------------------------------------------------------------

    def _encode(self, messages: Sequence[Mapping[str, str]], max_tokens: int, temperature: float) -> Any:
        if not self._loaded:
            self.load()
        if max_tokens < 1:
            raise GeneratorError("transformers: max_tokens must be at least 1")
        if temperature < 0:
            raise GeneratorError("transformers: temperature must not be negative")
        if not messages:
            raise GeneratorError("transformers: no messages")
        try:
            encoded = self._tokenizer.apply_chat_template(
                [{"role": m["role"], "content": m["content"]} for m in messages],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
        except Exception as exc:
            raise GeneratorError(f"transformers: the chat template failed: {describe(exc)}") from exc
        return {k: v.to(self._torch_device) for k, v in encoded.items()}

    def _sampling(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        tok = self._tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if temperature == 0:
            return {"max_new_tokens": max_tokens, "do_sample": False, "pad_token_id": pad}
        return {
            "max_new_tokens": max_tokens,
            "do_sample": True,
            "temperature": temperature,
            "top_p": self.top_p,
            "top_k": 0,
            "pad_token_id": pad,
        }


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch's RNG for one generation without changing the caller's RNG state."""
    import torch

    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _stop_criteria(stop: threading.Event) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopWhenSet(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_StopWhenSet()])


@functools.cache
def _token_streamer_class() -> Any:
    from transformers import TextIteratorStreamer

    class TokenStreamer(TextIteratorStreamer):
        """A `TextIteratorStreamer` that puts one queue item per generated token.

        Each item is the printable text added since the last item: the answer so far is decoded
        and the part beyond what was already emitted is sent. A trailing replacement character (an
        incomplete multi-byte sequence) waits for the next token; if decoding more tokens ever
        changes text already emitted, nothing contradicting it is sent.
        """

        def __init__(self, tokenizer: Any, *, timeout: float) -> None:
            super().__init__(
                tokenizer,
                skip_prompt=True,
                timeout=timeout,
                skip_special_tokens=True,
                clean_up_tokenization_spaces=False,
            )
            self.tokens = 0
            self.saw_eos = False
            self.eos_ids: set[int] = set()
            self._emitted = ""
            self._done = False

        def put(self, value: Any) -> None:
            if len(value.shape) > 1:
                if value.shape[0] > 1:
                    raise ValueError("only batch size 1 can stream")
                value = value[0]
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            for token in value.tolist():
                self.tokens += 1
                if token in self.eos_ids:
                    self.saw_eos = True
                self.token_cache.append(token)
                text = str(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
                if text.endswith("\ufffd"):
                    text = text[:-1]
                piece = ""
                if text.startswith(self._emitted):
                    piece = text[len(self._emitted) :]
                    self._emitted = text
                self.text_queue.put(piece, timeout=self.timeout)

        def end(self) -> None:
            self.finish()

        def finish(self) -> None:
            if not self._done:
                self._done = True
                self.text_queue.put(self.stop_signal, timeout=self.timeout)

    return TokenStreamer
