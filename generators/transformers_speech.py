"""Text to speech with a local transformers VITS model (the MMS-TTS architecture), as 16-bit PCM WAV.

The model and tokenizer load through `from_pretrained` from a local folder or a hub id (with
`local_files_only` on by default, so nothing is fetched at run time): `facebook/mms-tts-eng` and
the tiny random-weight default of `generators.tiny_speech` share one layout.

Explicit device ("auto": CUDA when present) and dtype ("auto": float32; VITS' flows are not made
for half precision). Reproducibility: VITS samples noise (duration predictor and prior); a
request's `seed` seeds torch's RNG inside `torch.random.fork_rng`, under a lock that serializes
syntheses of this backend, so the same seed, text and speed give the same samples and the
caller's RNG state is untouched.

Output: mono 16-bit PCM WAV written with the standard library's `wave` module. `speed` scales the
model's speaking rate (VITS' `length_scale = 1 / speaking_rate`). `voice` is OpenAI's voice name:
a single-speaker model ignores it; a multi-speaker model maps it through the `voices` option
({name: speaker id}).
"""

from __future__ import annotations

import contextlib
import io
import threading
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from generators.base import GeneratorError
from generators.devices import load_once, resolve_device, resolve_dtype_name

__all__ = ["SpeechGenerator", "SynthesizedSpeech", "TransformersSpeechGenerator", "wav_bytes"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class SynthesizedSpeech:
    wav: bytes  # a complete WAV file: mono, 16-bit PCM
    sampling_rate: int
    samples: int

    @property
    def seconds(self) -> float:
        return self.samples / self.sampling_rate


@runtime_checkable
class SpeechGenerator(Protocol):
    """A text-to-speech backend. `load()` once at startup; `synthesize` is blocking (run it off the loop)."""

    name: str
    version: str
    model: str

    def load(self) -> None: ...

    def synthesize(self, text: str, *, voice: str, speed: float = 1.0, seed: int = 0) -> SynthesizedSpeech: ...


def wav_bytes(samples: Any, sampling_rate: int) -> bytes:
    """Float samples in [-1, 1] (any array-like, mono) as a 16-bit PCM WAV file."""
    import numpy as np

    pcm = (np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sampling_rate)
        out.writeframes(pcm.tobytes())
    return buf.getvalue()


class TransformersSpeechGenerator:
    """`SpeechGenerator` backed by a local transformers `VitsModel` and its `VitsTokenizer`."""

    name = "transformers_speech"

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool = True,
        voices: Mapping[str, int] | None = None,
        noise_scale: float | None = None,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self.voices = dict(voices or {})
        self.noise_scale = noise_scale
        self.version: str = metadata.version("transformers")
        self.sampling_rate = 0
        self._load_lock = threading.Lock()
        self._synth_lock = threading.Lock()  # one synthesis at a time: seeded RNG, mutable speaking rate
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch_device = "cpu"

    def load(self) -> None:
        load_once(
            self._load_lock,
            lambda: self._model is not None,
            self._load,
            f"transformers_speech: cannot load {self.model!r}",
        )

    def _load(self) -> None:
        import torch
        import transformers

        t: Any = transformers  # loosely typed; keep mypy --strict quiet
        device = resolve_device(self.device)
        dtype_name = resolve_dtype_name(self.dtype, device, on_cuda="float32")
        tokenizer = t.VitsTokenizer.from_pretrained(self.model, local_files_only=self.local_files_only)
        model = t.VitsModel.from_pretrained(
            self.model, dtype=getattr(torch, dtype_name), local_files_only=self.local_files_only
        )
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer
        self._torch_device = device
        self.sampling_rate = int(model.config.sampling_rate)

    def synthesize(self, text: str, *, voice: str, speed: float = 1.0, seed: int = 0) -> SynthesizedSpeech:
        import torch

        self.load()
        if not 0.25 <= speed <= 4.0:
            raise GeneratorError(f"transformers_speech: speed must be within [0.25, 4.0], not {speed}")
        encoded = self._tokenizer(text, return_tensors="pt")
        if encoded["input_ids"].shape[-1] == 0 or not bool((encoded["input_ids"] != 0).any()):
            raise GeneratorError("transformers_speech: the text holds no character the model can speak")
        inputs = {k: v.to(self._torch_device) for k, v in encoded.items()}
        speaker = self.voices.get(voice)
        if speaker is not None:
            inputs["speaker_id"] = speaker
        model = self._model
        with self._synth_lock, _seeded(seed, self._torch_device), torch.inference_mode():
            base_rate, base_noise = model.speaking_rate, model.noise_scale
            model.speaking_rate = base_rate * speed
            if self.noise_scale is not None:
                model.noise_scale = self.noise_scale
            try:
                waveform = model(**inputs).waveform
            finally:
                model.speaking_rate, model.noise_scale = base_rate, base_noise
        samples = waveform[0].float().cpu().numpy()
        if samples.size == 0:
            raise GeneratorError("transformers_speech: the model produced no audio")
        return SynthesizedSpeech(wav_bytes(samples, self.sampling_rate), self.sampling_rate, int(samples.size))


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    import torch

    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
