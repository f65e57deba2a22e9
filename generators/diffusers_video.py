"""Text to video with a local diffusers Wan 2.1 pipeline, encoded as H.264 MP4 with PyAV.

The pipeline loads through `from_pretrained` from a local folder (`local_files_only`, nothing is
fetched at run time): a real Wan 2.1 T2V folder and the tiny random-weight pipeline of
`generators.tiny_video` share one layout. A request's `seed` seeds a `torch.Generator`, and
generations are serialized by a lock, so the same prompt, size, frames and seed give the same frames.

MP4 encoding uses PyAV (`av`), whose wheels ship their own FFmpeg libraries (libx264 included).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from generators.base import GeneratorError

__all__ = ["DiffusersVideoGenerator", "GeneratedVideo", "encode_mp4"]


@dataclass(frozen=True)
class GeneratedVideo:
    frames: Any  # numpy uint8 array (frames, height, width, 3)
    fps: int

    @property
    def seconds(self) -> float:
        return int(self.frames.shape[0]) / self.fps


def encode_mp4(frames: Any, fps: int) -> bytes:
    """RGB uint8 frames (n, h, w, 3), h and w even, as an H.264 (yuv420p) MP4 file."""
    import av

    n, height, width, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream: Any = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i], format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


class DiffusersVideoGenerator:
    """A Wan 2.1 text-to-video pipeline loaded from a local folder."""

    name = "diffusers_video"

    def __init__(self, model: str | Path, *, steps: int = 2, fps: int = 8, device: str = "cpu") -> None:
        self.model = str(model)
        self.steps = steps
        self.fps = fps
        self.device = device
        self.version = f"diffusers-{metadata.version('diffusers')}"
        self._pipe: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        import diffusers

        d: Any = diffusers
        with self._lock:
            if self._pipe is None:
                pipe: Any = d.WanPipeline.from_pretrained(self.model, local_files_only=True)
                pipe.set_progress_bar_config(disable=True)
                self._pipe = pipe.to(self.device)

    def generate(self, prompt: str, *, width: int, height: int, num_frames: int, seed: int) -> GeneratedVideo:
        import numpy as np
        import torch

        self.load()
        try:
            with self._lock:
                generator = torch.Generator(device="cpu").manual_seed(seed)
                out = self._pipe(
                    prompt=prompt,
                    num_frames=num_frames,
                    width=width,
                    height=height,
                    num_inference_steps=self.steps,
                    generator=generator,
                    output_type="np",
                )
        except Exception as exc:
            raise GeneratorError(f"video generation failed: {type(exc).__name__}") from exc
        frames = np.asarray(out.frames[0], dtype=np.float32)
        pixels = (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return GeneratedVideo(frames=pixels, fps=self.fps)
