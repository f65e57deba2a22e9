"""The remote chat and speech backends against OpenAI-style servers on loopback.

Two kinds of upstream: a small Starlette server in a thread that answers in OpenAI's shapes and can
misbehave on request (errors, garbage, cut streams, slowness, an echoed key), and the session's live
Mamori gateway, itself an OpenAI-compatible chat and speech server with a real (tiny) model.
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from generators.base import GeneratorError
from generators.remote_speech import RemoteSpeechGenerator
from generators.remote_text import RemoteTextGenerator
from generators.transformers_speech import SpeechGenerator, wav_bytes
from generators.transformers_text import TextGenerator

API_KEY = "sk-test-SECRET-remote-9876543210"
WORDS = ["Kettles ", "boil ", "water ", "quickly."]


def _chunk(content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    body = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
            "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


class FakeOpenAI:
    """`/{mode}/v1/chat/completions` and `/{mode}/v1/audio/speech`; `calls` records what arrived."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/{mode}/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/{mode}/v1/audio/speech", self.speech, methods=["POST"]),
            ]
        )

    async def chat(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        body = await request.json()
        self.calls.append({"body": body, "headers": dict(request.headers)})
        if mode == "e500":
            return JSONResponse({"error": {"message": "model crashed", "type": "server_error"}}, 500)
        if mode == "echo401":
            return JSONResponse({"error": {"message": f"bad key {request.headers.get('authorization')}"}}, 401)
        if mode == "garbage":
            return PlainTextResponse("<html>not json</html>")
        if mode == "slow":
            await asyncio.sleep(0.8)
        if not body.get("stream"):
            if mode == "nochoices":
                return JSONResponse({"choices": []})
            finish = "length" if mode == "length" else "stop"
            return JSONResponse({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)},
                             "finish_reason": finish}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 4},
            })  # fmt: skip

        async def events() -> AsyncIterator[str]:
            yield ": keep-alive\n\n"
            yield _chunk("")  # a role-only first chunk carries no text
            for word in WORDS:
                yield _chunk(word)
            if mode == "cut":
                return  # the upstream dies before [DONE]
            if mode == "badchunk":
                yield "data: {not json\n\n"
                return
            yield _chunk(None, "length" if mode == "length" else "stop")
            usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}}
            yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def speech(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        body = await request.json()
        self.calls.append({"body": body, "headers": dict(request.headers)})
        if mode == "mp3":
            return Response(b"ID3\x04\x00fake mp3 frames", media_type="audio/mpeg")
        if mode == "e500":
            return JSONResponse({"error": {"message": "tts crashed"}}, 500)
        samples = [0.1 * ((i % 20) - 10) / 10 for i in range(2400)]
        data = wav_bytes(samples, 24000)
        if mode == "streamed":  # a streamed WAV whose header claims an unknown (maximal) length
            data = data[:40] + b"\xff\xff\xff\xff" + data[44:]
        return Response(data, media_type="audio/wav")


@pytest.fixture(scope="module")
def upstream(loopback: Any) -> tuple[str, FakeOpenAI]:
    fake = FakeOpenAI()
    return loopback(fake.app), fake


def _chat(base: str, mode: str, **kw: Any) -> RemoteTextGenerator:
    generator = RemoteTextGenerator(base_url=f"{base}/{mode}/v1", model="up-1", api_key=API_KEY, **kw)
    generator.load()
    return generator


MESSAGES = [{"role": "user", "content": "Tell me about kettles."}]


def test_remote_chat_is_a_text_generator_and_sends_openai_requests(upstream: tuple[str, FakeOpenAI]) -> None:
    base, fake = upstream
    generator = _chat(base, "ok")
    assert isinstance(generator, TextGenerator)
    completion = generator.complete(MESSAGES, max_tokens=16, temperature=0.0, seed=7)
    assert completion.text == "".join(WORDS)
    assert (completion.finish_reason, completion.prompt_tokens, completion.completion_tokens) == ("stop", 11, 4)
    sent = fake.calls[-1]
    assert sent["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert sent["body"] == {"model": "up-1", "messages": MESSAGES, "max_tokens": 16, "temperature": 0.0,
                            "seed": 7, "stream": False}  # fmt: skip
    assert _chat(base, "length").complete(MESSAGES, max_tokens=4).finish_reason == "length"
    assert API_KEY not in repr(generator)


def test_remote_chat_streams_one_piece_per_chunk(upstream: tuple[str, FakeOpenAI]) -> None:
    base, fake = upstream
    with _chat(base, "ok").stream(MESSAGES, max_tokens=16, seed=3) as stream:
        pieces = list(stream)
    assert pieces == WORDS  # the empty role chunk and the keep-alive comment add nothing
    assert (stream.finish_reason, stream.prompt_tokens, stream.completion_tokens) == ("stop", 11, 4)
    assert fake.calls[-1]["body"]["stream"] is True
    assert fake.calls[-1]["body"]["stream_options"] == {"include_usage": True}
    with _chat(base, "length").stream(MESSAGES, max_tokens=4) as stream:
        list(stream)
    assert stream.finish_reason == "length"


def test_remote_chat_stream_closed_early_stops_reading(upstream: tuple[str, FakeOpenAI]) -> None:
    base, _ = upstream
    stream = _chat(base, "ok").stream(MESSAGES, max_tokens=16)
    assert next(stream) == WORDS[0]
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)


@pytest.mark.parametrize(
    ("mode", "stream", "message"),
    [
        ("e500", False, "HTTP 500: model crashed"),
        ("e500", True, "HTTP 500: model crashed"),
        ("garbage", False, "not JSON"),
        ("nochoices", False, "no choices[0].message.content"),
        ("cut", True, "ended without [DONE]"),
        ("badchunk", True, "chunk is not JSON"),
        ("slow", False, "timed out"),
    ],
)
def test_remote_chat_failures_are_generator_errors(
    upstream: tuple[str, FakeOpenAI], mode: str, stream: bool, message: str
) -> None:
    base, _ = upstream
    generator = _chat(base, mode, timeout_s=0.3)

    def call() -> str:
        if not stream:
            return generator.complete(MESSAGES, max_tokens=8).text
        with generator.stream(MESSAGES, max_tokens=8) as pieces:
            return "".join(pieces)

    with pytest.raises(GeneratorError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_remote_chat_never_repeats_the_key(upstream: tuple[str, FakeOpenAI]) -> None:
    base, _ = upstream
    with pytest.raises(GeneratorError) as caught:
        _chat(base, "echo401").complete(MESSAGES, max_tokens=8)
    assert "HTTP 401" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert "***" in str(caught.value)


def test_remote_speech_returns_the_upstreams_wav(upstream: tuple[str, FakeOpenAI]) -> None:
    base, fake = upstream
    generator = RemoteSpeechGenerator(base_url=f"{base}/ok/v1", model="tts-up", api_key=API_KEY)
    generator.load()
    assert isinstance(generator, SpeechGenerator)
    speech = generator.synthesize("Hello there.", voice="alloy", speed=1.25, seed=1)
    assert (speech.sampling_rate, speech.samples) == (24000, 2400)
    assert speech.seconds == pytest.approx(0.1)
    assert fake.calls[-1]["body"] == {"model": "tts-up", "input": "Hello there.", "voice": "alloy", "speed": 1.25,
                                      "response_format": "wav"}  # fmt: skip
    streamed = RemoteSpeechGenerator(base_url=f"{base}/streamed/v1", model="tts-up").synthesize("Hi", voice="a")
    assert streamed.samples == 2400  # measured from the bytes, not the header's unknown length


@pytest.mark.parametrize(("mode", "message"), [("mp3", "not a WAV file"), ("e500", "HTTP 500: tts crashed")])
def test_remote_speech_failures_are_generator_errors(upstream: tuple[str, FakeOpenAI], mode: str, message: str) -> None:
    base, _ = upstream
    with pytest.raises(GeneratorError, match=message):
        RemoteSpeechGenerator(base_url=f"{base}/{mode}/v1", model="tts-up").synthesize("Hi", voice="alloy")


def test_remote_backends_against_a_live_mamori_gateway(live_server: Any) -> None:
    """Mamori is itself an OpenAI-compatible upstream: a governed tiny model answers both protocols."""
    key = live_server.keys["requester"]
    chat = RemoteTextGenerator(base_url=live_server.url, model="mamori-tiny", api_key=key, timeout_s=60)
    chat.load()
    whole = chat.complete(MESSAGES, max_tokens=12, temperature=0.0, seed=5)
    assert whole.completion_tokens > 0
    with chat.stream(MESSAGES, max_tokens=12, temperature=0.0, seed=5) as stream:
        streamed = "".join(stream)
    assert stream.finish_reason in ("stop", "length")
    assert streamed == whole.text  # the same seed and greedy decoding: the same governed text
    speech = RemoteSpeechGenerator(base_url=live_server.url, model="mamori-tts", api_key=key, timeout_s=60)
    audio = speech.synthesize("A short product narration.", voice="alloy", seed=2)
    with wave.open(io.BytesIO(audio.wav)) as wav:
        assert wav.getnframes() == audio.samples > 0
