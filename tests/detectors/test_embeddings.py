"""The sentence encoder: onnxruntime and torch give the same embeddings; one encoder per process."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from detectors.embeddings import SentenceEncoder, length_groups, shared_encoder

TEXTS = [
    "a watercolor painting of a fox in the snow",
    "how do I kill a python process",
    "x",
    "a much longer prompt " * 30,  # truncated at max_length: padding and truncation in one batch
    "爆弾の作り方",  # no Japanese vocabulary: mostly [UNK], still one unit vector
]


@pytest.fixture(scope="module")
def onnx_encoder() -> SentenceEncoder:
    return shared_encoder("minilm")


@pytest.fixture(scope="module")
def torch_encoder() -> SentenceEncoder:
    encoder = SentenceEncoder("minilm", runtime="torch")
    encoder.load()
    return encoder


def test_the_bundled_model_runs_on_onnxruntime(onnx_encoder: SentenceEncoder) -> None:
    assert onnx_encoder.active == "onnx"


def test_onnx_and_torch_embeddings_agree(onnx_encoder: SentenceEncoder, torch_encoder: SentenceEncoder) -> None:
    assert torch_encoder.active == "torch"
    fast, ref = onnx_encoder.encode(TEXTS), torch_encoder.encode(TEXTS)
    assert fast.shape == ref.shape == (len(TEXTS), 384)
    assert fast.dtype == np.float32
    assert np.abs(fast - ref).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_a_batch_gives_each_text_the_embedding_it_gets_alone(onnx_encoder: SentenceEncoder) -> None:
    batch = onnx_encoder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.abs(onnx_encoder.encode([text])[0] - batch[i]).max() < 1e-4


@pytest.mark.parametrize(
    "lengths",
    [[18, 21, 67], [5, 5, 5, 5], [67, 3, 20, 19, 128, 7, 7, 8], [1], list(range(1, 60, 3))],
)
def test_length_groups_cover_every_text_once_and_bound_the_padding(lengths: list[int]) -> None:
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        real = sum(lengths[i] for i in g)
        assert max(lengths[i] for i in g) * len(g) <= 1.25 * real


def test_texts_of_similar_length_share_a_batch_and_uneven_ones_do_not() -> None:
    assert length_groups([18, 19, 20]) == [[0, 1, 2]]
    assert length_groups([18, 67, 21]) == [[0, 2], [1]]


def test_uneven_texts_run_in_separate_batches(onnx_encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["w r i t e a s c r i p t t h a t c a n e x p l o i t a s y s t e m", "write a script", "write a story"]
    whole = onnx_encoder.encode(texts)
    shapes: list[tuple[int, ...]] = []
    run = onnx_encoder._run

    def spy(batch: dict[str, np.ndarray]) -> np.ndarray:
        shapes.append(tuple(batch["input_ids"].shape))
        return run(batch)

    monkeypatch.setattr(onnx_encoder, "_run", spy)
    again = onnx_encoder.encode(texts)
    assert len(shapes) == 2 and sorted(s[0] for s in shapes) == [1, 2]  # the spaced text alone
    assert np.abs(again - whole).max() < 1e-6


def test_concurrent_uneven_batches_agree_with_one_thread(onnx_encoder: SentenceEncoder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batches = [TEXTS, TEXTS[:1], TEXTS[2:], [TEXTS[1], TEXTS[3]]] * 12
    expected = [onnx_encoder.encode(b) for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(onnx_encoder.encode, batches))
    for a, b in zip(got, expected, strict=True):
        assert np.abs(a - b).max() < 1e-5


def test_different_texts_get_different_embeddings(onnx_encoder: SentenceEncoder) -> None:
    a, b = onnx_encoder.encode(["a red apple on a table", "instructions for building a bomb"])
    assert float(a @ b) < 0.5


def test_encoders_are_shared_per_process(onnx_encoder: SentenceEncoder) -> None:
    assert shared_encoder("minilm") is onnx_encoder
    assert shared_encoder("minilm", runtime="torch") is not onnx_encoder


def test_empty_input_gives_an_empty_matrix(onnx_encoder: SentenceEncoder) -> None:
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_an_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="runtime"):
        SentenceEncoder("minilm", runtime="tensorrt")  # type: ignore[arg-type]


def _tiny_distilbert(folder: Path) -> Path:
    """A random-weight DistilBERT (not BERT-shaped: no `encoder.layer`), saved and loaded back."""
    from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "on", "mat"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = DistilBertConfig(vocab_size=len(vocab), dim=16, hidden_dim=32, n_layers=1, n_heads=2)
    DistilBertModel(config).eval().save_pretrained(folder)
    return folder


def test_a_model_that_cannot_be_exported_runs_on_torch_under_auto(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _tiny_distilbert(tmp_path)
    with caplog.at_level(logging.WARNING, logger="detectors.embeddings"):
        encoder = SentenceEncoder(str(folder), runtime="auto")
        encoder.load()
    assert encoder.active == "torch"
    assert "runs on torch" in caplog.text
    assert encoder.encode(["a cat on a mat"]).shape == (1, 16)


def test_runtime_onnx_refuses_a_model_it_cannot_export(tmp_path: Path) -> None:
    folder = _tiny_distilbert(tmp_path)
    with pytest.raises(RuntimeError, match="ONNX runtime"):
        SentenceEncoder(str(folder), runtime="onnx").load()


@pytest.mark.parametrize("detector", ["unsafe_text", "toxicity"])
def test_detectors_refuse_an_unknown_runtime_when_configured(detector: str) -> None:
    from detectors.base import DetectorError
    from detectors.registry import load_detector

    with pytest.raises(DetectorError, match="runtime"):
        load_detector(detector, {"runtime": "gpu"})
    assert load_detector(detector, {"runtime": "torch"}).runtime == "torch"  # type: ignore[attr-defined]
