"""The generator contract: requests, results and the `ImageGenerator` protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image


class GeneratorError(Exception):
    """A backend failed to produce output; the gateway fails closed on it."""


@dataclass(frozen=True)
class ImageRequest:
    """Text to image. Image `i` of `n` is generated with `seed + i`."""

    prompt: str
    width: int
    height: int
    n: int = 1
    seed: int = 0
    steps: int | None = None
    guidance_scale: float | None = None


@dataclass(frozen=True, eq=False)
class EditRequest:
    """Instruction edit of `image`; with a `mask`, only the white area of the mask is repainted (inpainting)."""

    prompt: str
    image: Image
    width: int
    height: int
    mask: Image | None = None
    n: int = 1
    seed: int = 0
    steps: int | None = None
    guidance_scale: float | None = None


@dataclass(frozen=True, eq=False)
class GeneratedImage:
    image: Image
    seed: int


@runtime_checkable
class ImageGenerator(Protocol):
    """A backend. `load()` once at startup; `generate`/`edit` are blocking and called off the event loop."""

    name: str
    version: str

    def load(self) -> None: ...

    def generate(self, request: ImageRequest) -> list[GeneratedImage]: ...

    def edit(self, request: EditRequest) -> list[GeneratedImage]: ...
