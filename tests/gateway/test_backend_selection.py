"""Backends are chosen by entry-point name in settings; a remote backend never falls back to a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bootstrap import load_speech_generator, load_text_generator, load_video_generator
from gateway.settings import Settings
from gateway.video_pipeline import FPS
from generators.remote_speech import RemoteSpeechGenerator
from generators.remote_text import RemoteTextGenerator
from generators.remote_video import RemoteVideoGenerator


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path, **extra)  # type: ignore[arg-type]


def test_remote_backends_are_selected_by_name(tmp_path: Path) -> None:
    up = {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-up-SECRET"}
    settings = _settings(
        tmp_path,
        text_generator="remote_text", text_generator_options=up, text_model="gpt-up",
        speech_generator="remote_speech", speech_generator_options={**up, "model": "tts-up"},
        video_generator="remote_video", video_generator_options=up, video_model="video-up",
    )  # fmt: skip
    text = load_text_generator(settings)
    speech = load_speech_generator(settings)
    video = load_video_generator(settings)
    assert isinstance(text, RemoteTextGenerator) and text.model == "gpt-up"
    assert isinstance(speech, RemoteSpeechGenerator) and speech.model == "tts-up"
    assert isinstance(video, RemoteVideoGenerator) and (video.model, video.fps) == ("video-up", FPS)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # no tiny model was built
    assert "SECRET" not in repr(text) + repr(speech) + repr(video)


def test_a_remote_backend_without_a_model_is_refused_at_startup(tmp_path: Path) -> None:
    settings = _settings(tmp_path, text_generator="remote_text",
                         text_generator_options={"base_url": "http://127.0.0.1:9/v1"})  # fmt: skip
    with pytest.raises(TypeError, match="model"):
        load_text_generator(settings)


def test_an_unknown_backend_names_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown video generator 'nope'; available: .*remote_video"):
        load_video_generator(_settings(tmp_path, video_generator="nope"))
