"""Shared fixtures: tiny config-built models, and a whole gateway on a temporary data folder."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEST_SIZES = ["64x64", "64x128"]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from generators.tiny import ensure_tiny_models

    return ensure_tiny_models(tmp_path_factory.mktemp("models"))


def gateway_settings(data_dir: Path, tiny_models: Any, **overrides: Any) -> Any:
    from gateway.settings import Settings

    options = {
        "model": str(tiny_models.text2img),
        "edit_model": str(tiny_models.edit),
        "inpaint_model": str(tiny_models.inpaint),
    }
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "extra_sizes": TEST_SIZES,
        "generator_options": options,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Gateway:
    client: Any
    services: Any
    settings: Any
    keys: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Iterator[Gateway]:
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.bootstrap import build_services

    settings = gateway_settings(tmp_path_factory.mktemp("gateway-data"), tiny_models)
    services = build_services(settings)
    keys = {}
    for who, role, tenant in [
        ("requester", "requester", "acme"),
        ("requester2", "requester", "acme"),
        ("other_tenant", "requester", "globex"),
        ("supervisor", "supervisor", "acme"),
        ("supervisor_globex", "supervisor", "globex"),
        ("auditor", "auditor", "acme"),
        ("admin", "admin", "acme"),
    ]:
        _, keys[who] = services.keys.create(role=role, tenant=tenant, name=who)
    app = create_app(settings, services)
    with TestClient(app) as client:
        yield Gateway(client=client, services=services, settings=settings, keys=keys)
    services.close()


def png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
