"""The HTTP side of the remote backends: one client for an OpenAI-compatible API over httpx.

`OpenAIHTTP` owns the connection pool (created on first use), the bearer key and the timeout, and
turns every failure into a `GeneratorError` whose message never holds the API key: HTTP status
≥ 400 (with the body's OpenAI-style `error.message`), timeouts, connection errors and bodies that
are not what was asked for. The remote image, chat and speech backends build on it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from generators.base import GeneratorError

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIHTTP", "RemoteBackend"]

_BODY_EXCERPT = 300


class OpenAIHTTP:
    """A sync httpx client for `base_url` (for example `https://api.example.com/v1`)."""

    def __init__(self, *, base_url: str, api_key: str | None, timeout_s: float, label: str = "remote") -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.label = label
        self._api_key = api_key
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIHTTP(base_url={self.base_url!r})"

    def client(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                headers = {"Accept": "application/json"}
                if self._api_key:
                    headers["Authorization"] = f"Bearer {self._api_key}"
                self._client = httpx.Client(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout_s),
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def post_json(self, path: str, **kwargs: Any) -> Any:
        """POST and return the decoded JSON body."""
        return self._json(path, self.post(path, **kwargs))

    def get_json(self, path: str) -> Any:
        """GET and return the decoded JSON body."""
        return self._json(path, self.get(path))

    def get(self, path: str) -> httpx.Response:
        """GET and return the (successful) response."""
        with self._failures(path):
            response = self.client().get(path)
        self._check(path, response)
        return response

    def _json(self, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise self.error(
                f"{self.url(path)} answered with a body that is not JSON: {_excerpt(response.text)}"
            ) from exc

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST and return the (successful) response."""
        with self._failures(path):
            response = self.client().post(path, **kwargs)
        self._check(path, response)
        return response

    @contextmanager
    def stream_lines(self, path: str, **kwargs: Any) -> Iterator[Iterator[str]]:
        """POST and yield the response body's lines as they arrive (for server-sent events)."""
        with self._failures(path), self.client().stream("POST", path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                self._check(path, response)
            yield self._lines(path, response)

    def _lines(self, path: str, response: httpx.Response) -> Iterator[str]:
        with self._failures(path):
            yield from response.iter_lines()

    def url(self, path: str) -> str:
        return self.base_url + path

    def error(self, message: str) -> GeneratorError:
        return GeneratorError(self.scrub(f"{self.label}: {message}"))

    def scrub(self, message: str) -> str:
        """Remove the API key from a message (servers sometimes echo the request headers)."""
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return message

    @contextmanager
    def _failures(self, path: str) -> Iterator[None]:
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise self.error(f"{self.url(path)} timed out after {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise self.error(f"{self.url(path)} failed: {type(exc).__name__}: {exc}") from exc

    def _check(self, path: str, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise self.error(f"{self.url(path)} answered HTTP {response.status_code}: {_error_text(response)}")


def _error_text(response: httpx.Response) -> str:
    """The `error.message` of an OpenAI-style error body, else an excerpt of the body."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return _excerpt(response.text)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _excerpt(error["message"])
        if isinstance(error, str):
            return _excerpt(error)
        if isinstance(body.get("detail"), str):
            return _excerpt(body["detail"])
    return _excerpt(response.text)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "…"


class RemoteBackend:
    """What every remote backend shares: the upstream's model name, its client and a safe repr."""

    name = "remote"
    api_name = "openai-api"  # the version prefix, e.g. "openai-chat-api"

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        if not model:
            raise ValueError("model names the upstream's model and must not be empty")
        self._api = OpenAIHTTP(base_url=base_url, api_key=api_key, timeout_s=timeout_s, label=self.name)
        self.base_url = self._api.base_url
        self.model = model
        self.version = f"{self.api_name}/{model}"

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r})"

    def load(self) -> None:
        """Create the HTTP client (connection pool); no request is sent."""
        self._api.client()

    def close(self) -> None:
        self._api.close()
