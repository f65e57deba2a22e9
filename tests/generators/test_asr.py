"""The transformers Whisper backend: a tiny Whisper built from a config, WAV in, deterministic transcript out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generators.base import GeneratorError
from generators.tiny_asr import MARKER, WORDS, ensure_tiny_whisper
from generators.transformers_asr import SpeechRecognizer, TransformersASR, read_wav
from generators.transformers_music import pcm_wav


@pytest.fixture(scope="module")
def asr(tmp_path_factory: pytest.TempPathFactory) -> TransformersASR:
    root = ensure_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-whisper")
    assert (root / MARKER).is_file()
    recognizer = TransformersASR(model=str(root), device="cpu")
    recognizer.load()
    return recognizer


def tone(seconds: float, rate: int, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) * np.linspace(0.2, 1.0, t.size)
    return pcm_wav(np.stack([wave] * channels), rate).wav


def test_transcribes_any_rate_and_channel_count_deterministically(asr: TransformersASR) -> None:
    assert isinstance(asr, SpeechRecognizer)
    mono = asr.transcribe(tone(1.0, 16000))
    assert mono.text.strip()
    assert set(mono.text.split()) <= set(WORDS)  # whole words, special tokens skipped
    assert asr.transcribe(tone(1.0, 16000)).text == mono.text
    stereo_32k = asr.transcribe(tone(1.0, 32000, channels=2))  # mixed down and resampled
    assert stereo_32k.seconds == pytest.approx(1.0)
    assert stereo_32k.windows == 1


def test_long_audio_is_transcribed_window_by_window(asr: TransformersASR) -> None:
    long = asr.transcribe(tone(5.0, 16000))  # the tiny model hears 2-second windows
    assert long.windows == 3
    assert long.seconds == pytest.approx(5.0)


def test_silence_too_short_to_hear_gives_an_empty_transcript(asr: TransformersASR) -> None:
    assert asr.transcribe(tone(0.01, 16000)).text == ""


def test_not_a_wav_is_an_error(asr: TransformersASR) -> None:
    with pytest.raises(GeneratorError, match="WAV"):
        asr.transcribe(b"ID3 not a wav at all")


def test_read_wav_scales_16_bit_pcm() -> None:
    samples, rate = read_wav(pcm_wav(np.array([0.5, -0.5, 1.0]), 8000).wav)
    assert rate == 8000
    assert samples.tolist() == pytest.approx([0.5, -0.5, 32767 / 32768], abs=1e-4)


def test_a_missing_folder_fails_to_load(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="cannot load"):
        TransformersASR(model=str(tmp_path / "none"), device="cpu").load()
