"""The transformers chat backend on the tiny config-built Llama, loaded through `from_pretrained`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from generators.base import GeneratorError
from generators.tiny_text import MARKER, ensure_tiny_llm
from generators.transformers_text import TextGenerator, TransformersTextGenerator

MESSAGES = [{"role": "system", "content": "you write catalog text"}, {"role": "user", "content": "a red teapot"}]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-llm")


@pytest.fixture(scope="module")
def generator(tiny_llm: Path) -> TransformersTextGenerator:
    gen = TransformersTextGenerator(model=str(tiny_llm))
    gen.load()
    return gen


def test_tiny_model_is_saved_for_from_pretrained_and_built_once(tiny_llm: Path) -> None:
    names = {p.name for p in tiny_llm.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MARKER} <= names
    stamp = (tiny_llm / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_llm(tiny_llm) == tiny_llm
    assert (tiny_llm / "model.safetensors").stat().st_mtime_ns == stamp


def test_is_a_text_generator(generator: TransformersTextGenerator) -> None:
    assert isinstance(generator, TextGenerator)
    assert generator.name == "transformers"


def test_same_seed_same_text_and_another_seed_differs(generator: TransformersTextGenerator) -> None:
    first = generator.generate(MESSAGES, max_tokens=16, seed=3)
    assert first.strip()
    assert generator.generate(MESSAGES, max_tokens=16, seed=3) == first
    assert generator.generate(MESSAGES, max_tokens=16, seed=4) != first


def test_complete_counts_tokens_and_reports_length(generator: TransformersTextGenerator) -> None:
    result = generator.complete(MESSAGES, max_tokens=8, seed=3)
    assert result.completion_tokens <= 8
    assert result.prompt_tokens > 0
    assert result.finish_reason in ("stop", "length")
    if result.completion_tokens == 8:
        assert result.finish_reason == "length"


def test_stream_yields_one_piece_per_token_and_matches_generate(generator: TransformersTextGenerator) -> None:
    whole = generator.complete(MESSAGES, max_tokens=24, seed=9)
    stream = generator.stream(MESSAGES, max_tokens=24, seed=9)
    pieces = list(stream)
    assert "".join(pieces) == whole.text
    assert len(pieces) == stream.completion_tokens == whole.completion_tokens
    assert stream.finish_reason == whole.finish_reason


def test_closing_a_stream_stops_generation(generator: TransformersTextGenerator) -> None:
    with generator.stream(MESSAGES, max_tokens=500, seed=1) as stream:
        first = [next(stream) for _ in range(3)]
    assert len(first) == 3
    # the lock is free again: a new generation does not wait for 500 tokens
    assert generator.generate(MESSAGES, max_tokens=4, seed=1)


def test_greedy_decoding_ignores_the_seed(generator: TransformersTextGenerator) -> None:
    a = generator.generate(MESSAGES, max_tokens=12, temperature=0, seed=1)
    b = generator.generate(MESSAGES, max_tokens=12, temperature=0, seed=2)
    assert a == b


def test_generation_does_not_touch_the_callers_rng(generator: TransformersTextGenerator) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generator.generate(MESSAGES, max_tokens=4, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_bad_requests_and_missing_models_raise_generator_error(
    generator: TransformersTextGenerator, tmp_path: Any
) -> None:
    with pytest.raises(GeneratorError):
        generator.generate(MESSAGES, max_tokens=0)
    with pytest.raises(GeneratorError):
        generator.generate([], max_tokens=4)
    with pytest.raises(GeneratorError):
        TransformersTextGenerator(model=str(tmp_path / "missing")).load()
    with pytest.raises(ValueError, match="dtype"):
        TransformersTextGenerator(model="x", dtype="int3")


def test_a_failing_model_surfaces_in_the_stream(tiny_llm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = TransformersTextGenerator(model=str(tiny_llm))
    gen.load()

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(gen._model, "generate", boom)
    with pytest.raises(GeneratorError, match="injected"):
        list(gen.stream(MESSAGES, max_tokens=4))
