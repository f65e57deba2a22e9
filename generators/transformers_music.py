"""Text to music and sound with a local transformers MusicGen model, as 16-bit PCM WAV.

The model (`MusicgenForConditionalGeneration`) and its processor (`MusicgenProcessor`) load
through `from_pretrained` from a local folder or a hub id (with `local_files_only` on by default,
so nothing is fetched at run time): `facebook/musicgen-small` and the tiny random-weight default of
`generators.tiny_music` share one layout.

Explicit device ("auto": CUDA when present) and dtype ("auto": float16 on CUDA, float32 on the
CPU). Length: `duration_s` seconds is `duration_s * frame_rate` audio tokens (MusicGen's EnCodec
runs at 50 tokens per second). Reproducibility: MusicGen samples its tokens; a request's `seed`
seeds torch's RNG inside `torch.random.fork_rng`, under a lock that serializes this backend's
generations, so the same prompt, duration and seed give the same samples and the caller's RNG state
is untouched. Classifier-free guidance (`guidance_scale`, default the model's generation config) as
the MusicGen authors recommend.

Output: 16-bit PCM WAV (mono, or stereo for the stereo MusicGen variants).
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from generators.base import GeneratorError
from generators.devices import load_once, resolve_device, resolve_dtype_name

__all__ = ["GeneratedSound", "SoundGenerator", "TransformersMusicGenerator", "pcm_wav"]

_DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class GeneratedSound:
    wav: bytes  # a complete WAV file: 16-bit PCM, `channels` interleaved
    sampling_rate: int
    samples: int  # per channel
    channels: int = 1

    @property
    def seconds(self) -> float:
        return self.samples / self.sampling_rate


@runtime_checkable
class SoundGenerator(Protocol):
    """A text-to-sound backend. `load()` once at startup; `generate` is blocking (run it off the loop)."""

    name: str
    version: str
    model: str

    def load(self) -> None: ...

    def generate(self, prompt: str, *, duration_s: float, seed: int = 0) -> GeneratedSound: ...


def pcm_wav(samples: Any, sampling_rate: int) -> GeneratedSound:
    """Float samples in [-1, 1], shaped (samples,) or (channels, samples), as a 16-bit PCM WAV file."""
    import numpy as np

    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise GeneratorError(f"expected (channels, samples) audio, got shape {tuple(audio.shape)}")
    if not np.isfinite(audio).all():
        raise GeneratorError("the model produced non-finite audio samples")
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(int(audio.shape[0]))
        out.setsampwidth(2)
        out.setframerate(sampling_rate)
        out.writeframes(np.ascontiguousarray(pcm.T).tobytes())  # interleaved frames
    return GeneratedSound(buf.getvalue(), sampling_rate, int(audio.shape[1]), int(audio.shape[0]))


class TransformersMusicGenerator:
    """`SoundGenerator` backed by a local transformers MusicGen model and its processor."""

    name = "transformers_music"

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool = True,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        max_seconds: float = 30.0,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self.guidance_scale = guidance_scale
        self.temperature = temperature
        self.top_k = top_k
        self.max_seconds = max_seconds
        self.version: str = metadata.version("transformers")
        self.sampling_rate = 0
        self.frame_rate = 0
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()  # one generation at a time: seeded RNG
        self._model: Any = None
        self._processor: Any = None
        self._torch_device = "cpu"
        self._codebooks = 1

    def load(self) -> None:
        load_once(
            self._load_lock,
            lambda: self._model is not None,
            self._load,
            f"transformers_music: cannot load {self.model!r}",
        )

    def _load(self) -> None:
        import torch
        import transformers

        t: Any = transformers  # loosely typed; keep mypy --strict quiet
        device = resolve_device(self.device)
        dtype_name = resolve_dtype_name(self.dtype, device, on_cuda="float16")
        processor = t.AutoProcessor.from_pretrained(self.model, local_files_only=self.local_files_only)
        model = t.MusicgenForConditionalGeneration.from_pretrained(
            self.model, dtype=getattr(torch, dtype_name), local_files_only=self.local_files_only
        )
        self._model = model.to(device).eval()
        self._processor = processor
        self._torch_device = device
        self.sampling_rate = int(model.config.audio_encoder.sampling_rate)
        self.frame_rate = int(model.config.audio_encoder.frame_rate)
        self._codebooks = int(model.config.decoder.num_codebooks)
        positions = int(model.config.decoder.max_position_embeddings)
        # the delay pattern adds (codebooks - 1) steps; stay inside the decoder's position table
        limit = (positions - self._codebooks) / self.frame_rate
        self.max_seconds = min(self.max_seconds, limit)

    def generate(self, prompt: str, *, duration_s: float, seed: int = 0) -> GeneratedSound:
        import torch

        self.load()
        if not prompt.strip():
            raise GeneratorError("transformers_music: the prompt is empty")
        if not 0 < duration_s <= self.max_seconds:
            raise GeneratorError(
                f"transformers_music: duration_s must be within (0, {self.max_seconds:g}], not {duration_s}"
            )
        # the decoder's delay pattern spends (codebooks - 1) steps before the first whole frame
        tokens = max(1, math.ceil(duration_s * self.frame_rate)) + self._codebooks - 1
        inputs = self._processor(text=[prompt], padding=True, return_tensors="pt")
        inputs = {k: v.to(self._torch_device) for k, v in inputs.items()}
        options: dict[str, Any] = {"max_new_tokens": tokens, "do_sample": True}
        if self.guidance_scale is not None:
            options["guidance_scale"] = self.guidance_scale
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.top_k is not None:
            options["top_k"] = self.top_k
        with self._generate_lock, _seeded(seed, self._torch_device), torch.inference_mode():
            audio = self._model.generate(**inputs, **options)
        samples = audio[0].float().cpu().numpy()  # (channels, samples)
        want = round(duration_s * self.sampling_rate)
        samples = samples[:, :want]  # the codec may round up to whole frames
        if samples.size == 0:
            raise GeneratorError("transformers_music: the model produced no audio")
        return pcm_wav(samples, self.sampling_rate)


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    import torch

    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
