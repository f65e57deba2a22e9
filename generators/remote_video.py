"""Forward text to video to any upstream that speaks OpenAI's videos API.

One generation is three calls: `POST {base_url}/videos` (form fields `model`, `prompt`, `seconds`,
`size`, as the official client sends them) creates a job; `GET {base_url}/videos/{id}` is polled
every `poll_interval_s` until the status is `completed` (or `failed`, or `max_wait_s` passes);
`GET {base_url}/videos/{id}/content` downloads the MP4. The MP4 is decoded into RGB frames with
PyAV: the gateway runs its frame detectors on them, then encodes and signs its own MP4, so what is
released is always what was screened. An upstream's own C2PA manifest is not carried over.

The gateway asks for `num_frames = fps × seconds + 1` frames; `seconds` is recovered from that with
this backend's `fps` (the gateway's frame rate), and the decoded frames keep the upstream's rate.
Every failure (HTTP ≥ 400, timeouts, a failed or expired job, a body that is not an MP4) is a
`GeneratorError` without the API key, so the gateway fails closed.
"""

from __future__ import annotations

import io
import time
from typing import Any

from generators.diffusers_video import GeneratedVideo
from generators.openai_http import RemoteBackend

__all__ = ["RemoteVideoGenerator"]


class RemoteVideoGenerator(RemoteBackend):
    """A text-to-video backend that calls an OpenAI-compatible videos API over HTTP."""

    name = "remote_video"
    api_name = "openai-videos-api"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        fps: int = 2,
        timeout_s: float = 60.0,
        poll_interval_s: float = 2.0,
        max_wait_s: float = 1800.0,
        max_frames: int = 2000,
    ) -> None:
        if fps < 1 or poll_interval_s <= 0 or max_wait_s <= 0 or max_frames < 1:
            raise ValueError("fps, poll_interval_s, max_wait_s and max_frames must be positive")
        super().__init__(base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s)
        self.fps = fps
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.max_frames = max_frames

    def generate(self, prompt: str, *, width: int, height: int, num_frames: int, seed: int) -> GeneratedVideo:
        seconds = max(1, round((num_frames - 1) / self.fps))
        form = {"model": self.model, "prompt": prompt, "seconds": str(seconds), "size": f"{width}x{height}",
                "seed": str(seed)}  # fmt: skip
        created = self._api.post_json("/videos", data=form)
        video_id = created.get("id") if isinstance(created, dict) else None
        if not isinstance(video_id, str) or not video_id or "/" in video_id:
            raise self._api.error("the create answer has no usable video `id`")
        self._wait(video_id, created)
        return self._decode(self._api.get(f"/videos/{video_id}/content").content)

    def _wait(self, video_id: str, video: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.max_wait_s
        path = f"/videos/{video_id}"
        while True:
            status = video.get("status")
            if status == "completed":
                return
            if status == "failed":
                error: dict[str, Any] = video["error"] if isinstance(video.get("error"), dict) else {}
                why = f"{error.get('code', '')} {error.get('message', '')}".strip()
                raise self._api.error(f"the upstream video job failed: {why}")
            if status not in ("queued", "in_progress"):
                raise self._api.error(f"the upstream video job has an unknown status {str(status)[:40]!r}")
            if time.monotonic() >= deadline:
                raise self._api.error(f"the upstream video job did not complete within {self.max_wait_s:g} s")
            time.sleep(self.poll_interval_s)
            video = self._api.get_json(path)
            if not isinstance(video, dict):
                raise self._api.error(f"{self._api.url(path)} answered with a body that is not an object")

    def _decode(self, data: bytes) -> GeneratedVideo:
        import av
        import numpy as np

        try:
            with av.open(io.BytesIO(data), mode="r") as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or self.fps
                frames = []
                for frame in container.decode(stream):
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) > self.max_frames:
                        raise self._api.error(f"the upstream video has more than {self.max_frames} frames")
        except (av.error.FFmpegError, IndexError, ValueError) as exc:
            raise self._api.error(f"the upstream video does not decode as a video ({len(data)} bytes)") from exc
        if not frames:
            raise self._api.error("the upstream video holds no frames")
        return GeneratedVideo(frames=np.stack(frames).astype(np.uint8), fps=max(1, round(float(rate))))
