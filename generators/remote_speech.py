"""Forward text to speech to any OpenAI-compatible upstream (`POST {base_url}/audio/speech`).

The request is OpenAI's: `model`, `input`, `voice`, `speed` and `response_format: "wav"`. The
gateway always asks for WAV, because it screens, transcodes (MP3) and signs the audio itself; the
answer must be a PCM WAV file, which is checked and measured here (sampling rate, frames). Every
failure (HTTP ≥ 400, timeout, connection error, an answer that is not a WAV file, an empty one) is a
`GeneratorError` without the API key, so the gateway fails closed. `seed` is not part of OpenAI's
speech API and is not sent.
"""

from __future__ import annotations

import io
import wave

from generators.openai_http import OpenAIHTTP
from generators.transformers_speech import SynthesizedSpeech

__all__ = ["RemoteSpeechGenerator"]


class RemoteSpeechGenerator:
    """`SpeechGenerator` that calls an OpenAI-compatible speech API over HTTP."""

    name = "remote_speech"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        if not model:
            raise ValueError("model names the upstream's model and must not be empty")
        self._api = OpenAIHTTP(base_url=base_url, api_key=api_key, timeout_s=timeout_s, label="remote_speech")
        self.base_url = self._api.base_url
        self.model = model
        self.version = f"openai-speech-api/{model}"

    def __repr__(self) -> str:  # never show the key
        return f"RemoteSpeechGenerator(base_url={self.base_url!r}, model={self.model!r})"

    def load(self) -> None:
        """Create the HTTP client (connection pool); no request is sent."""
        self._api.client()

    def close(self) -> None:
        self._api.close()

    def synthesize(self, text: str, *, voice: str, speed: float = 1.0, seed: int = 0) -> SynthesizedSpeech:
        body = {"model": self.model, "input": text, "voice": voice, "speed": speed, "response_format": "wav"}
        response = self._api.post("/audio/speech", json=body)
        data = response.content
        try:
            with wave.open(io.BytesIO(data), "rb") as wav:
                rate, frames = wav.getframerate(), wav.getnframes()
                frame_bytes = wav.getsampwidth() * wav.getnchannels()
        except (wave.Error, EOFError) as exc:
            raise self._api.error(f"the speech answer is not a WAV file ({len(data)} bytes)") from exc
        if frames == 0 or frames * frame_bytes > len(data):  # a streamed WAV's header may not know its length
            frames = max(len(data) - 44, 0) // max(frame_bytes, 1)
        if frames <= 0 or rate <= 0:
            raise self._api.error("the speech answer holds no audio")
        return SynthesizedSpeech(data, rate, frames)
