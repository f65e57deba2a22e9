"""Tiny pipelines: built once from configs, deterministic, loadable through `from_pretrained`."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import threading
from pathlib import Path

import pytest

from generators.tiny import MARKER, TinyModelPaths, build_tiny_tokenizer, ensure_tiny_models


@pytest.fixture(scope="session")
def tiny_root(tiny_models: TinyModelPaths) -> Path:
    # `tiny_models` (tests/conftest.py) is ensure_tiny_models() on a session temp folder.
    return tiny_models.text2img.parent


def _weights(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.safetensors"))}


def test_layout_and_pipeline_classes(tiny_root: Path) -> None:
    paths = ensure_tiny_models(tiny_root)
    assert paths == TinyModelPaths(
        text2img=tiny_root / "text2img", edit=tiny_root / "edit", inpaint=tiny_root / "inpaint"
    )
    expected = {
        paths.text2img: ("StableDiffusionPipeline", 4),
        paths.edit: ("StableDiffusionInstructPix2PixPipeline", 8),
        paths.inpaint: ("StableDiffusionInpaintPipeline", 9),
    }
    for folder, (class_name, in_channels) in expected.items():
        index = json.loads((folder / "model_index.json").read_text())
        assert index["_class_name"] == class_name
        assert index["safety_checker"] == [None, None]
        assert index["requires_safety_checker"] is False
        unet = json.loads((folder / "unet" / "config.json").read_text())
        assert unet["in_channels"] == in_channels
    assert (tiny_root / MARKER).is_file()


def test_second_call_does_not_rebuild(tiny_root: Path) -> None:
    marker = tiny_root / MARKER
    weights = tiny_root / "text2img" / "unet" / "diffusion_pytorch_model.safetensors"
    before = (marker.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    ensure_tiny_models(tiny_root)
    assert (marker.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before


def test_half_written_root_is_rebuilt_with_the_same_weights(tiny_root: Path, tmp_path: Path) -> None:
    import torch

    root = tmp_path / "models"
    (root / "text2img").mkdir(parents=True)
    (root / "text2img" / "model_index.json").write_text("{ half written")
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    paths = ensure_tiny_models(root)
    assert torch.equal(torch.rand(3), expected)  # building does not disturb the caller's RNG
    assert (root / MARKER).is_file()
    assert json.loads((paths.text2img / "model_index.json").read_text())["_class_name"]
    for kind in ("text2img", "edit", "inpaint"):
        assert _weights(root / kind) == _weights(tiny_root / kind)  # fixed init seed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no staging or stale folders left


def test_concurrent_builds_leave_one_complete_root(tiny_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            ensure_tiny_models(root)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (root / MARKER).is_file()
    assert _weights(root / "edit") == _weights(tiny_root / "edit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_tokenizer_round_trips_any_text(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = CLIPTokenizer.from_pretrained(tmp_path / "tok", local_files_only=True)
    ids = loaded("A cat, 猫!").input_ids
    assert ids[0] == loaded.bos_token_id
    assert ids[-1] == loaded.eos_token_id
    assert loaded.unk_token_id not in ids[1:-1]  # every byte is in the vocabulary
    assert loaded.model_max_length == 32
    assert len(loaded) <= 1000  # fits the tiny text encoder
