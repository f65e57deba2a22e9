"""Forward chat completions to any OpenAI-compatible upstream (`POST {base_url}/chat/completions`).

The gateway governs the exchange exactly as for a local model: it screens the messages before they
leave, and runs its output rails on what comes back, window by window when streaming. This backend
only speaks the protocol:

- `complete(...)`: one JSON request (`stream: false`); the answer's first choice, its
  `finish_reason` (anything other than `length` counts as `stop`) and the `usage` token counts;
- `stream(...)`: `stream: true` with `stream_options.include_usage`, read as server-sent events;
  every `data:` chunk's content delta is one piece (an upstream sends about a token per chunk), up
  to `data: [DONE]`. Closing the stream early closes the HTTP response.

`seed` is sent as OpenAI's `seed` field (an upstream may or may not honour it); temperature as
given. Every failure (HTTP ≥ 400, timeout, connection error, an answer or chunk that is not the
expected JSON, a stream that ends without `[DONE]`) is a `GeneratorError` without the API key, so
the gateway fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from generators.base import GeneratorError
from generators.openai_http import OpenAIHTTP, RemoteBackend
from generators.transformers_text import FinishReason, TextCompletion

__all__ = ["RemoteTextGenerator", "RemoteTextStream"]


class RemoteTextStream(Iterator[str]):
    """Content pieces of an upstream's SSE stream; `finish_reason` and token counts once it ends."""

    def __init__(self, api: OpenAIHTTP, body: dict[str, Any]) -> None:
        self._api = api
        self._context: AbstractContextManager[Iterator[str]] = api.stream_lines("/chat/completions", json=body)
        self._lines = self._context.__enter__()
        self._closed = False
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None
        self._upstream_tokens: int | None = None
        self._pending: list[str] = []

    def __next__(self) -> str:
        while not self._pending:
            if self._closed:
                raise StopIteration
            try:
                line = next(self._lines)
            except StopIteration:
                self.close()
                raise self._api.error("the chat stream ended without [DONE]") from None
            self._read(line)
        self.completion_tokens += 1
        return self._pending.pop(0)

    def _read(self, line: str) -> None:
        if not line.startswith("data:"):
            return  # blank separators, comments (": keep-alive"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            if self._upstream_tokens is not None:
                self.completion_tokens = max(self.completion_tokens, self._upstream_tokens)
            self.finish_reason = self.finish_reason or "stop"
            self.close()
            return
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            self.close()
            raise self._api.error(f"a chat stream chunk is not JSON: {data[:80]!r}") from exc
        if not isinstance(chunk, dict):
            self.close()
            raise self._api.error("a chat stream chunk is not an object")
        if isinstance(chunk.get("error"), dict):
            self.close()
            raise self._api.error(f"the upstream reported an error mid-stream: {chunk['error'].get('message', '')}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self._upstream_tokens = int(usage.get("completion_tokens") or 0)
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                self._pending.append(content)
            if choice.get("finish_reason"):
                self.finish_reason = "length" if choice["finish_reason"] == "length" else "stop"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._context.__exit__(None, None, None)

    def __enter__(self) -> RemoteTextStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class RemoteTextGenerator(RemoteBackend):
    """`TextGenerator` that calls an OpenAI-compatible chat completions API over HTTP."""

    name = "remote_text"
    api_name = "openai-chat-api"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        top_p: float | None = None,
    ) -> None:
        super().__init__(base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s)
        self.top_p = top_p

    def _body(
        self, messages: Sequence[Mapping[str, str]], max_tokens: int, temperature: float, seed: int, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": str(m["role"]), "content": str(m["content"])} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "stream": stream,
        }
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def generate(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> str:
        return self.complete(messages, max_tokens=max_tokens, temperature=temperature, seed=seed).text

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> TextCompletion:
        payload = self._api.post_json(
            "/chat/completions", json=self._body(messages, max_tokens, temperature, seed, False)
        )
        try:
            choice = payload["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise self._api.error("the chat answer has no choices[0].message.content") from exc
        if not isinstance(text, str):
            raise GeneratorError("remote_text: the chat answer's content is not text")
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
        return TextCompletion(
            text, finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 1.0, seed: int = 0
    ) -> RemoteTextStream:
        return RemoteTextStream(self._api, self._body(messages, max_tokens, temperature, seed, True))
