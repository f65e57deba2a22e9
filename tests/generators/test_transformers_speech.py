"""The transformers TTS backend: tiny VITS built from a config, loaded through from_pretrained, seeded WAV."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from generators.base import GeneratorError
from generators.tiny_speech import MARKER, SAMPLING_RATE, ensure_tiny_tts
from generators.transformers_speech import SpeechGenerator, TransformersSpeechGenerator, wav_bytes

TEXT = "Welcome to the catalog, this is the red teapot."


@pytest.fixture(scope="module")
def tts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_tts(tmp_path_factory.mktemp("models") / "tiny-tts")


@pytest.fixture(scope="module")
def tts(tts_dir: Path) -> TransformersSpeechGenerator:
    generator = TransformersSpeechGenerator(model=str(tts_dir), device="cpu")
    generator.load()
    return generator


def read_wav(data: bytes) -> tuple[wave._wave_params, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getparams(), w.readframes(w.getnframes())


def test_tiny_model_is_built_once_and_saved_as_a_pretrained_folder(tts_dir: Path) -> None:
    assert (tts_dir / MARKER).is_file()
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json"):
        assert (tts_dir / name).is_file(), name
    before = (tts_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_tts(tts_dir) == tts_dir  # idempotent: nothing rebuilt
    assert (tts_dir / "model.safetensors").stat().st_mtime_ns == before


def test_a_half_written_folder_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "tts"
    root.mkdir()
    (root / "config.json").write_text("{broken", encoding="utf-8")
    ensure_tiny_tts(root)
    assert (root / MARKER).is_file()
    TransformersSpeechGenerator(model=str(root), device="cpu").load()


def test_loads_through_from_pretrained_and_writes_a_16_bit_pcm_wav(tts: TransformersSpeechGenerator) -> None:
    assert isinstance(tts, SpeechGenerator)
    speech = tts.synthesize(TEXT, voice="alloy", seed=1)
    params, frames = read_wav(speech.wav)
    assert speech.wav[:4] == b"RIFF" and speech.wav[8:12] == b"WAVE"
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, SAMPLING_RATE)
    assert params.nframes == speech.samples > 0
    assert len(frames) == 2 * speech.samples
    assert speech.seconds == pytest.approx(speech.samples / SAMPLING_RATE)


def test_same_seed_same_samples_other_seed_other_samples(tts: TransformersSpeechGenerator) -> None:
    first = tts.synthesize(TEXT, voice="alloy", seed=7)
    again = tts.synthesize(TEXT, voice="alloy", seed=7)
    other = tts.synthesize(TEXT, voice="alloy", seed=8)
    assert first.wav == again.wav
    assert other.wav != first.wav


def test_seeding_leaves_the_callers_rng_alone(tts: TransformersSpeechGenerator) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tts.synthesize(TEXT, voice="alloy", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_speed_shortens_the_audio(tts: TransformersSpeechGenerator) -> None:
    normal = tts.synthesize(TEXT, voice="alloy", seed=3)
    fast = tts.synthesize(TEXT, voice="alloy", seed=3, speed=2.0)
    assert fast.samples < normal.samples
    with pytest.raises(GeneratorError, match="speed"):
        tts.synthesize(TEXT, voice="alloy", speed=10.0)


def test_text_without_speakable_characters_is_an_error(tts: TransformersSpeechGenerator) -> None:
    with pytest.raises(GeneratorError, match="no character"):
        tts.synthesize("1234 5678", voice="alloy")


def test_missing_model_folder_is_a_generator_error(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="cannot load"):
        TransformersSpeechGenerator(model=str(tmp_path / "nothing")).load()
    with pytest.raises(ValueError, match="dtype"):
        TransformersSpeechGenerator(model="x", dtype="int8")


def test_wav_bytes_clips_and_quantizes() -> None:
    _, frames = read_wav(wav_bytes([0.0, 0.5, 2.0, -2.0], 8000))
    assert frames == b"".join(v.to_bytes(2, "little", signed=True) for v in (0, 16384, 32767, -32767))
