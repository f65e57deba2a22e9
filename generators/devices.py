"""Where a backend runs: `auto` device and dtype resolved the same way for every backend."""

from __future__ import annotations


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
