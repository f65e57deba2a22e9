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

from generators.openai_http import RemoteBackend
from generators.transformers_speech import SynthesizedSpeech

__all__ = ["RemoteSpeechGenerator"]


class RemoteSpeechGenerator(RemoteBackend):
    """`SpeechGenerator` that calls an OpenAI-compatible speech API over HTTP."""

    name = "remote_speech"
    api_name = "openai-speech-api"

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
