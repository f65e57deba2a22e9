"""RemoteImageGenerator against a real OpenAI-style images server on loopback (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import time
from typing import Any

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from generators.base import EditRequest, GeneratorError, ImageGenerator, ImageRequest
from generators.remote import RemoteImageGenerator

API_KEY = "sk-test-SECRET-0123456789"


class FakeImagesAPI:
    """Answers `/{mode}/v1/images/...`; `mode` picks a behaviour, `calls` records what arrived."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/{mode}/v1/images/generations", self.generations, methods=["POST"]),
                Route("/{mode}/v1/images/edits", self.edits, methods=["POST"]),
            ]
        )

    @staticmethod
    def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", size, colour).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    async def _failure(self, mode: str, request: Request) -> Response | None:
        if mode == "e500":
            return JSONResponse({"error": {"message": "model crashed", "type": "server_error"}}, 500)
        if mode == "echo401":  # a careless server that echoes the credentials back
            auth = request.headers.get("authorization", "")
            return JSONResponse({"error": {"message": f"invalid key {auth}"}}, 401)
        if mode == "slow":
            await asyncio.sleep(0.7)
        if mode == "garbage":
            return PlainTextResponse("<html>not json</html>")
        if mode == "badb64":
            return JSONResponse({"data": [{"b64_json": "!!!not base64!!!"}]})
        if mode == "notpng":
            return JSONResponse({"data": [{"b64_json": base64.b64encode(b"just bytes").decode()}]})
        if mode == "urls":
            return JSONResponse({"data": [{"url": "http://example.invalid/x.png"}]})
        if mode == "short":
            return JSONResponse({"data": []})
        return None

    def _images(self, n: int, size: str, seed: int) -> JSONResponse:
        width, height = (int(v) for v in size.split("x"))
        data = [{"b64_json": self._png((width, height), ((seed + i) % 256, 0, 0))} for i in range(n)]
        return JSONResponse({"created": int(time.time()), "data": data})

    async def generations(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        body = await request.json()
        self.calls.append({"kind": "generations", "body": body, "headers": dict(request.headers)})
        failure = await self._failure(mode, request)
        if failure is not None:
            return failure
        return self._images(body["n"], body["size"], body.get("seed", 0))

    async def edits(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        files = {k: Image.open(io.BytesIO(await v.read())) for k, v in form.items() if not isinstance(v, str)}
        self.calls.append({"kind": "edits", "fields": fields, "files": files, "headers": dict(request.headers)})
        failure = await self._failure(mode, request)
        if failure is not None:
            return failure
        return self._images(int(fields["n"]), fields["size"], int(fields.get("seed", "0")))


@pytest.fixture(scope="module")
def api(loopback: Any) -> tuple[FakeImagesAPI, str]:
    fake = FakeImagesAPI()
    return fake, loopback(fake.app)


def _gen(base: str, mode: str, **kwargs: Any) -> RemoteImageGenerator:
    kwargs.setdefault("api_key", API_KEY)
    generator = RemoteImageGenerator(base_url=f"{base}/{mode}/v1/", **kwargs)
    generator.load()
    return generator


def test_satisfies_the_protocol_and_hides_the_key(api: tuple[FakeImagesAPI, str]) -> None:
    generator = _gen(api[1], "ok", model="sdxl")
    assert isinstance(generator, ImageGenerator)
    assert generator.name == "remote"
    assert "sdxl" in generator.version
    assert API_KEY not in repr(generator)


def test_generate_posts_openai_json_and_decodes_pngs(api: tuple[FakeImagesAPI, str]) -> None:
    fake, base = api
    generator = _gen(base, "ok", model="tiny-sd")
    results = generator.generate(ImageRequest(prompt="a fox", width=64, height=128, n=2, seed=40))
    call = fake.calls[-1]
    assert call["kind"] == "generations"
    assert call["body"] == {
        "prompt": "a fox",
        "n": 2,
        "size": "64x128",
        "response_format": "b64_json",
        "seed": 40,
        "model": "tiny-sd",
    }
    assert call["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert [r.seed for r in results] == [40, 41]
    assert [r.image.mode for r in results] == ["RGB", "RGB"]
    assert [r.image.size for r in results] == [(64, 128), (64, 128)]
    assert [r.image.getpixel((0, 0)) for r in results] == [(40, 0, 0), (41, 0, 0)]


def test_no_key_no_model_sends_neither(api: tuple[FakeImagesAPI, str]) -> None:
    fake, base = api
    generator = RemoteImageGenerator(base_url=f"{base}/ok/v1")
    generator.generate(ImageRequest(prompt="a fox", width=32, height=32))
    call = fake.calls[-1]
    assert "authorization" not in call["headers"]
    assert "model" not in call["body"]


def test_edit_sends_multipart_with_an_openai_mask(api: tuple[FakeImagesAPI, str]) -> None:
    fake, base = api
    image = Image.new("RGB", (64, 64), (10, 200, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))  # Mamori: repaint the white right half
    generator = _gen(base, "ok", model="tiny-sd")
    results = generator.edit(
        EditRequest(prompt="make it blue", image=image, mask=mask, width=64, height=64, n=2, seed=9)
    )
    call = fake.calls[-1]
    assert call["kind"] == "edits"
    assert call["headers"]["content-type"].startswith("multipart/form-data")
    assert call["fields"] == {
        "prompt": "make it blue",
        "n": "2",
        "size": "64x64",
        "response_format": "b64_json",
        "seed": "9",
        "model": "tiny-sd",
    }
    sent_image, sent_mask = call["files"]["image"], call["files"]["mask"]
    assert sent_image.format == sent_mask.format == "PNG"
    assert sent_image.convert("RGB").getpixel((5, 5)) == (10, 200, 30)
    assert sent_mask.mode == "RGBA"
    assert sent_mask.getpixel((48, 10))[3] == 0  # OpenAI: transparent = edit here
    assert sent_mask.getpixel((10, 10))[3] == 255  # opaque = keep
    assert [r.seed for r in results] == [9, 10]
    assert results[0].image.size == (64, 64)


def test_edit_without_mask_sends_no_mask(api: tuple[FakeImagesAPI, str]) -> None:
    fake, base = api
    image = Image.new("RGB", (50, 40), (1, 2, 3))
    _gen(base, "ok").edit(EditRequest(prompt="x", image=image, width=64, height=64))
    call = fake.calls[-1]
    assert set(call["files"]) == {"image"}
    assert call["files"]["image"].size == (64, 64)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("e500", "HTTP 500: model crashed"),
        ("echo401", "HTTP 401"),
        ("garbage", "not JSON"),
        ("badb64", "does not decode"),
        ("notpng", "does not decode"),
        ("urls", "no `b64_json`"),
        ("short", "asked for 1 image"),
    ],
)
def test_bad_answers_become_generator_errors(api: tuple[FakeImagesAPI, str], mode: str, message: str) -> None:
    generator = _gen(api[1], mode)
    image = Image.new("RGB", (32, 32))
    for call in (
        lambda: generator.generate(ImageRequest(prompt="x", width=32, height=32)),
        lambda: generator.edit(EditRequest(prompt="x", image=image, width=32, height=32)),
    ):
        with pytest.raises(GeneratorError, match=message) as caught:
            call()
        assert API_KEY not in str(caught.value)
        assert API_KEY not in json.dumps(str(caught.value.__cause__))
        if mode == "echo401":  # the server did echo the key; the message shows it masked
            assert "invalid key Bearer ***" in str(caught.value)


def test_timeout_becomes_generator_error(api: tuple[FakeImagesAPI, str]) -> None:
    generator = _gen(api[1], "slow", timeout_s=0.2)
    with pytest.raises(GeneratorError, match=r"timed out after 0\.2 s"):  # the server answers after 0.7 s
        generator.generate(ImageRequest(prompt="x", width=32, height=32))


def test_unreachable_server_becomes_generator_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        generator = RemoteImageGenerator(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, timeout_s=2)
        with pytest.raises(GeneratorError, match="failed") as caught:
            generator.generate(ImageRequest(prompt="x", width=32, height=32))
    assert API_KEY not in str(caught.value)


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="http"):
        RemoteImageGenerator(base_url="ftp://example.invalid")
    with pytest.raises(ValueError, match="timeout_s"):
        RemoteImageGenerator(base_url="http://127.0.0.1:1", timeout_s=0)
