"""The transformers MusicGen backend: a tiny MusicGen built from a config, loaded via from_pretrained, seeded."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from generators.base import GeneratorError
from generators.tiny_music import MARKER, SAMPLING_RATE, ensure_tiny_musicgen
from generators.transformers_music import SoundGenerator, TransformersMusicGenerator, pcm_wav


@pytest.fixture(scope="module")
def music_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_musicgen(tmp_path_factory.mktemp("models") / "tiny-musicgen")


@pytest.fixture(scope="module")
def music(music_dir: Path) -> TransformersMusicGenerator:
    generator = TransformersMusicGenerator(model=str(music_dir), device="cpu", max_seconds=10)
    generator.load()
    return generator


def read_wav(data: bytes) -> tuple[wave._wave_params, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getparams(), w.readframes(w.getnframes())


def test_tiny_model_is_a_pretrained_folder_built_once(music_dir: Path) -> None:
    assert (music_dir / MARKER).is_file()
    for name in ("config.json", "model.safetensors", "generation_config.json", "processor_config.json"):
        assert (music_dir / name).is_file(), name
    before = (music_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_musicgen(music_dir) == music_dir
    assert (music_dir / "model.safetensors").stat().st_mtime_ns == before


def test_generates_the_requested_length_as_16_bit_pcm(music: TransformersMusicGenerator) -> None:
    assert isinstance(music, SoundGenerator)
    sound = music.generate("calm piano jingle", duration_s=1.5, seed=1)
    params, pcm = read_wav(sound.wav)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, SAMPLING_RATE)
    assert params.nframes == sound.samples == int(1.5 * SAMPLING_RATE)
    assert sound.seconds == pytest.approx(1.5)
    assert len(set(pcm)) > 16


def test_seeded_generation_is_reproducible(music: TransformersMusicGenerator) -> None:
    a = music.generate("drum loop", duration_s=0.5, seed=7)
    b = music.generate("drum loop", duration_s=0.5, seed=7)
    c = music.generate("drum loop", duration_s=0.5, seed=8)
    assert a.wav == b.wav
    assert a.wav != c.wav


@pytest.mark.parametrize("duration", [0.0, -1.0, 11.0])
def test_out_of_range_durations_are_refused(music: TransformersMusicGenerator, duration: float) -> None:
    with pytest.raises(GeneratorError, match="duration_s"):
        music.generate("drum loop", duration_s=duration, seed=1)


def test_a_missing_folder_fails_to_load_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="cannot load"):
        TransformersMusicGenerator(model=str(tmp_path / "nothing"), device="cpu").load()


def test_stereo_samples_are_interleaved() -> None:
    import numpy as np

    left, right = np.full(4, 0.5, dtype=np.float32), np.full(4, -0.5, dtype=np.float32)
    sound = pcm_wav(np.stack([left, right]), 8000)
    params, pcm = read_wav(sound.wav)
    assert (params.nchannels, params.nframes, sound.channels) == (2, 4, 2)
    values = np.frombuffer(pcm, dtype="<i2")
    assert list(values[:4]) == [16384, -16384, 16384, -16384]
    with pytest.raises(GeneratorError):
        pcm_wav(np.array([np.nan]), 8000)
