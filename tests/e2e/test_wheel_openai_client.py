"""A built wheel, started as a real server, used by the official `openai` client.

The wheel is built from the checkout, unpacked into its own folder that comes first on the import
path, and `mamori serve` runs from it in a subprocess on a free loopback port.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    data_dir: Path
    site: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (built,) = out.glob("mamori-*.whl")
    return built


@pytest.fixture(scope="module")
def live(wheel: Path, tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Iterator[LiveServer]:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
    )
    data_dir = tmp_path_factory.mktemp("live-data")
    (data_dir / "mamori.yaml").write_text(
        json.dumps(
            {
                "extra_sizes": ["64x64"],
                "generator_options": {
                    "model": str(tiny_models.text2img),
                    "edit_model": str(tiny_models.edit),
                    "inpaint_model": str(tiny_models.inpaint),
                },
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(site), "MAMORI_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    port = _free_port()
    log = data_dir / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"server did not become ready:\n{log.read_text()[-4000:]}")
    try:
        yield LiveServer(url=url, env=env, data_dir=data_dir, site=site, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _cli(live: LiveServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=live.env,
        capture_output=True,
        text=True,
        cwd=live.data_dir,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_wheel_carries_the_policy_bundle_and_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "policies/.manifest" in names
    assert "policies/data.yaml" in names
    assert any(n.startswith("policies/mamori/") and n.endswith(".rego") for n in names)
    assert any(n.startswith("gateway/migrations/versions/") for n in names)
    assert "gateway/py.typed" in names


def test_server_runs_from_the_wheel(live: LiveServer) -> None:
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gateway, gateway.policy as p; print(gateway.__file__); print(p.default_bundle_dir())",
        ],
        env=live.env,
        capture_output=True,
        text=True,
        check=True,
        cwd=live.data_dir,
    ).stdout.splitlines()
    assert where[0].startswith(str(live.site))
    assert where[1].startswith(str(live.site))
    ready = httpx.get(f"{live.url}/readyz").json()
    assert ready["checks"]["policy"] is True


def test_openai_client_generates_and_edits(live: LiveServer) -> None:
    import c2pa
    import openai

    key = _cli(live, "keys", "create", "--role", "requester", "--tenant", "acme").strip().splitlines()[-1]
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=key)

    result = client.images.generate(prompt="a blue kettle on a white table", size="64x64", extra_body={"seed": 5})  # type: ignore[arg-type]
    png = base64.b64decode(result.data[0].b64_json or "")
    extra: dict[str, Any] = result.model_extra or {}
    assert extra["mamori"]["status"] == "released"

    anchor = httpx.get(f"{live.url}/v1/provenance/trust-anchor").text
    context = c2pa.Context(settings=c2pa.Settings.from_dict({"trust": {"trust_anchors": anchor}}))
    reader = c2pa.Reader("image/png", io.BytesIO(png), context=context)
    assert reader.get_validation_state() == "Trusted"
    manifest_store = json.loads(reader.json())
    active = manifest_store["manifests"][manifest_store["active_manifest"]]
    labels = {a["label"]: a.get("data") for a in active["assertions"]}
    assert labels["mamori.decision"]["request_id"] == extra["mamori"]["request_id"]
    assert labels["mamori.decision"]["decision"] == "allow"

    source = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(source, "PNG")
    edited = client.images.edit(
        image=("source.png", source.getvalue(), "image/png"),
        prompt="make it blue",
        size="64x64",  # type: ignore[arg-type]
    )
    edited_png = base64.b64decode(edited.data[0].b64_json or "")
    reader = c2pa.Reader("image/png", io.BytesIO(edited_png), context=context)
    assert reader.get_validation_state() == "Trusted"

    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(prompt="a forbidden-zebra", size="64x64")  # type: ignore[arg-type]
    assert refused.value.code == "content_policy_violation"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="mamori_bad").images.generate(prompt="x")


def test_cli_audit_verify_on_the_live_log(live: LiveServer) -> None:
    out = _cli(live, "audit", "verify")
    assert out.startswith("OK:")
