"""Speech recognition with a local transformers Whisper model: a WAV file in, its transcript out.

Used to screen generated audio (speech and sound) as text: the gateway transcribes the output and
runs the text detectors and the policy on the transcript. The model and processor load through
`from_pretrained` from a local folder (or a hub id with local files only, so nothing is fetched at
run time): `openai/whisper-small` and the tiny random-weight model of `generators.tiny_asr` share
one layout.

The audio is mixed down to mono, resampled to the feature extractor's rate (16 kHz for Whisper)
with a polyphase filter, and cut into the model's windows (30 s for real Whisper models); each
window is transcribed greedily (deterministic), in batches, and the texts are joined. Long audio is
therefore transcribed window by window rather than with Whisper's timestamp-driven long-form
algorithm: simpler, and a word cut at a window edge may be misheard, which the caller accepts (the
policy sees every window's text).

Explicit device ("auto": CUDA when present) and dtype ("auto": float16 on CUDA, float32 on the CPU).
"""

from __future__ import annotations

import io
import math
import threading
import wave
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from generators.base import GeneratorError
from generators.devices import load_once, resolve_device, resolve_dtype_name

__all__ = ["SpeechRecognizer", "Transcript", "TransformersASR", "read_wav"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float  # audio length
    windows: int  # model windows transcribed


@runtime_checkable
class SpeechRecognizer(Protocol):
    """An ASR backend. `load()` once at startup; `transcribe` is blocking (run it off the loop)."""

    name: str
    version: str
    model: str

    def load(self) -> None: ...

    def transcribe(self, wav: bytes) -> Transcript: ...


def read_wav(data: bytes) -> tuple[Any, int]:
    """A PCM WAV file (8, 16, 24 or 32 bit, any channel count) as mono float32 samples in [-1, 1], and its rate."""
    import numpy as np

    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise GeneratorError(f"not a PCM WAV file: {exc}") from exc
    if width == 1:
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        samples = np.frombuffer(frames, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise GeneratorError(f"unsupported WAV sample width {width}")
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels).mean(axis=1)
    return samples, rate


def _resample(samples: Any, rate: int, target: int) -> Any:
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype("float32")


class TransformersASR:
    """`SpeechRecognizer` backed by a local transformers Whisper model and its processor."""

    name = "transformers_asr"

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool = True,
        language: str | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 8,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self.language = language
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.version: str = metadata.version("transformers")
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None
        self._torch_device = "cpu"
        self._dtype: Any = None

    def load(self) -> None:
        load_once(
            self._load_lock,
            lambda: self._model is not None,
            self._load,
            f"transformers_asr: cannot load {self.model!r}",
        )

    def _load(self) -> None:
        import torch
        import transformers

        t: Any = transformers  # loosely typed; keep mypy --strict quiet
        device = resolve_device(self.device)
        dtype = getattr(torch, resolve_dtype_name(self.dtype, device, on_cuda="float16"))
        processor = t.WhisperProcessor.from_pretrained(self.model, local_files_only=self.local_files_only)
        model = t.WhisperForConditionalGeneration.from_pretrained(
            self.model, dtype=dtype, local_files_only=self.local_files_only
        )
        self._model = model.to(device).eval()
        self._processor = processor
        self._torch_device = device
        self._dtype = dtype

    def transcribe(self, wav: bytes) -> Transcript:
        import torch

        self.load()
        samples, rate = read_wav(wav)
        features = self._processor.feature_extractor
        target = int(features.sampling_rate)
        audio = _resample(samples, rate, target)
        seconds = len(samples) / rate if rate else 0.0
        window = int(features.n_samples)  # chunk_length seconds at the target rate
        chunks = [audio[i : i + window] for i in range(0, len(audio), window)]
        chunks = [c for c in chunks if len(c) >= target // 10]  # under 0.1 s: nothing to hear
        if not chunks:
            return Transcript("", seconds, 0)
        config = self._model.config
        limit = int(config.max_target_positions) - 4  # room for the decoder prompt
        options: dict[str, Any] = {"max_new_tokens": min(self.max_new_tokens or limit, limit), "do_sample": False}
        if self.language is not None:
            options.update(language=self.language, task="transcribe")
        texts: list[str] = []
        for start in range(0, len(chunks), self.batch_size):
            batch = chunks[start : start + self.batch_size]
            inputs = self._processor(batch, sampling_rate=target, return_tensors="pt")
            input_features = inputs.input_features.to(self._torch_device, self._dtype)
            with torch.inference_mode():
                ids = self._model.generate(input_features, **options)
            texts += [t.strip() for t in self._processor.batch_decode(ids, skip_special_tokens=True)]
        return Transcript(" ".join(t for t in texts if t), seconds, len(chunks))
