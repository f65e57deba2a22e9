"""Where a backend runs: `auto` device and dtype resolved the same way for every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable

from generators.base import GeneratorError


def resolve_device(device: str) -> str:
    """`auto` means CUDA when present, else the CPU; anything else is taken as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype_name(dtype: str, device: str, *, on_cuda: str) -> str:
    """`auto` means `on_cuda` on a CUDA device and float32 elsewhere."""
    if dtype != "auto":
        return dtype
    return on_cuda if device.startswith("cuda") else "float32"


def describe(exc: BaseException) -> str:
    """An exception as `Type: message` for a GeneratorError, without a traceback."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_once(lock: threading.Lock, loaded: Callable[[], bool], load: Callable[[], None], what: str) -> None:
    """Run `load` once, under `lock` (checked before and after taking it), for a backend's `load()`.

    A GeneratorError passes through; any other error becomes one that names `what` (the backend
    and its model) and describes the cause without a traceback.
    """
    if loaded():
        return
    with lock:
        if loaded():
            return
        try:
            load()
        except GeneratorError:
            raise
        except Exception as exc:
            raise GeneratorError(f"{what}: {describe(exc)}") from exc
