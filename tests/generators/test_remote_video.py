"""The remote video backend against OpenAI-videos-style servers on loopback.

A Starlette upstream in a thread plays the job lifecycle (queued → in_progress → completed, or
failed, or never done, or a body that is no MP4); the session's live Mamori gateway is a real one.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from generators.base import GeneratorError
from generators.diffusers_video import encode_mp4
from generators.remote_video import RemoteVideoGenerator

API_KEY = "sk-test-SECRET-video-5555"


class FakeVideos:
    def __init__(self) -> None:
        self.created: list[dict[str, str]] = []
        self.polls: dict[str, int] = {}
        self.app = Starlette(
            routes=[
                Route("/{mode}/v1/videos", self.create, methods=["POST"]),
                Route("/{mode}/v1/videos/{vid}", self.retrieve, methods=["GET"]),
                Route("/{mode}/v1/videos/{vid}/content", self.content, methods=["GET"]),
            ]
        )

    async def create(self, request: Request) -> Response:
        form = await request.form()
        self.created.append({k: str(v) for k, v in form.items()} | {"auth": request.headers.get("authorization", "")})
        vid = f"video_{len(self.created)}"
        self.polls[vid] = 0
        return JSONResponse({"id": vid, "object": "video", "status": "queued"})

    async def retrieve(self, request: Request) -> Response:
        mode, vid = request.path_params["mode"], request.path_params["vid"]
        self.polls[vid] += 1
        if mode == "failed":
            return JSONResponse({"id": vid, "status": "failed", "error": {"code": "moderation", "message": "no"}})
        if mode == "never" or self.polls[vid] < 2:
            return JSONResponse({"id": vid, "status": "in_progress", "progress": 50})
        return JSONResponse({"id": vid, "status": "completed", "progress": 100})

    async def content(self, request: Request) -> Response:
        if request.path_params["mode"] == "notmp4":
            return Response(b"<html>nope</html>", media_type="text/html")
        frames = np.zeros((6, 32, 48, 3), dtype=np.uint8)
        frames[:, :, :, 0] = np.arange(6, dtype=np.uint8)[:, None, None] * 40  # a red ramp over time
        return Response(encode_mp4(frames, 3), media_type="video/mp4")


@pytest.fixture(scope="module")
def upstream(loopback: Any) -> tuple[str, FakeVideos]:
    fake = FakeVideos()
    return loopback(fake.app), fake


def _video(base: str, mode: str, **kw: Any) -> RemoteVideoGenerator:
    return RemoteVideoGenerator(
        base_url=f"{base}/{mode}/v1", model="vid-up", api_key=API_KEY, poll_interval_s=0.05, **kw
    )


def test_remote_video_polls_downloads_and_decodes(upstream: tuple[str, FakeVideos]) -> None:
    base, fake = upstream
    video = _video(base, "ok", fps=2).generate("a kettle on oak", width=48, height=32, num_frames=9, seed=4)
    sent = fake.created[-1]
    assert sent == {"model": "vid-up", "prompt": "a kettle on oak", "seconds": "4", "size": "48x32", "seed": "4",
                    "auth": f"Bearer {API_KEY}"}  # fmt: skip
    assert fake.polls[f"video_{len(fake.created)}"] == 2  # queued at create, in_progress, then completed
    assert video.frames.shape == (6, 32, 48, 3) and video.frames.dtype == np.uint8
    assert video.fps == 3  # the upstream's own frame rate is kept
    reds = video.frames[:, 16, 24, 0].astype(int)
    assert all(b > a for a, b in itertools.pairwise(reds))  # the frames arrive in order


@pytest.mark.parametrize(
    ("mode", "message"),
    [("failed", "job failed: moderation no"), ("never", "did not complete within"), ("notmp4", "does not decode")],
)
def test_remote_video_failures_are_generator_errors(upstream: tuple[str, FakeVideos], mode: str, message: str) -> None:
    base, _ = upstream
    with pytest.raises(GeneratorError, match=message) as caught:
        _video(base, mode, max_wait_s=0.3).generate("x", width=48, height=32, num_frames=9, seed=1)
    assert API_KEY not in str(caught.value)


def test_remote_video_against_a_live_mamori_gateway(live_server: Any) -> None:
    """A governed Mamori video (tiny Wan 2.1 on the session's queue) is a real upstream."""
    key = live_server.keys["requester"]
    generator = RemoteVideoGenerator(base_url=live_server.url, model="mamori-wan", api_key=key, fps=2,
                                     poll_interval_s=0.2, max_wait_s=120)  # fmt: skip
    video = generator.generate("a blue kettle turning slowly", width=32, height=32, num_frames=9, seed=3)
    assert video.frames.ndim == 4 and video.frames.shape[1:] == (32, 32, 3)
    assert video.frames.shape[0] >= 2
