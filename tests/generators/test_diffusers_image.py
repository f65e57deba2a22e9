"""DiffusersImageGenerator on tiny random-weight pipelines loaded through `from_pretrained`."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from generators.base import EditRequest, GeneratedImage, GeneratorError, ImageGenerator, ImageRequest
from generators.diffusers_image import DiffusersImageGenerator
from generators.tiny import TinyModelPaths


@pytest.fixture(scope="session")
def tiny(tiny_models: TinyModelPaths) -> TinyModelPaths:
    # `tiny_models` (tests/conftest.py) builds the tiny pipelines once per session with ensure_tiny_models.
    return tiny_models


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core runner (xdist, other jobs)
    two spinning OpenMP threads per process make a 20 ms image take seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen(tiny: TinyModelPaths) -> DiffusersImageGenerator:
    generator = DiffusersImageGenerator(
        model=str(tiny.text2img), edit_model=str(tiny.edit), inpaint_model=str(tiny.inpaint), steps=2
    )
    generator.load()
    return generator


@pytest.fixture(scope="module")
def source_image() -> Image.Image:
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    image.paste((20, 160, 220), (0, 32, 64, 64))
    return image


@pytest.fixture(scope="module")
def right_half_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    return mask


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.tobytes() == b.tobytes()


def _one(gen: DiffusersImageGenerator, seed: int, prompt: str = "a red fox", size: int = 64) -> GeneratedImage:
    [result] = gen.generate(ImageRequest(prompt=prompt, width=size, height=size, seed=seed))
    return result


def test_satisfies_the_protocol(gen: DiffusersImageGenerator) -> None:
    import diffusers

    assert isinstance(gen, ImageGenerator)
    assert gen.name == "diffusers"
    assert gen.version == diffusers.__version__


def test_tiny_models_report_their_missing_safety_checker(gen: DiffusersImageGenerator) -> None:
    assert gen.safety_checker_disabled is True
    assert gen.pipelines_without_safety_checker == ("text2img", "edit", "inpaint")


def test_same_seed_same_pixels_and_rgb(gen: DiffusersImageGenerator) -> None:
    first, second = _one(gen, 7), _one(gen, 7)
    assert first.seed == second.seed == 7
    assert first.image.mode == "RGB"
    assert _same(first.image, second.image)


def test_different_seed_or_prompt_different_pixels(gen: DiffusersImageGenerator) -> None:
    base = _one(gen, 7).image
    assert not _same(base, _one(gen, 8).image)
    assert not _same(base, _one(gen, 7, prompt="a blue whale").image)


def test_n_images_use_consecutive_seeds(gen: DiffusersImageGenerator) -> None:
    results = gen.generate(ImageRequest(prompt="a red fox", width=64, height=64, n=2, seed=41))
    assert [r.seed for r in results] == [41, 42]
    assert not _same(results[0].image, results[1].image)
    assert _same(results[0].image, _one(gen, 41).image)
    assert _same(results[1].image, _one(gen, 42).image)


@pytest.mark.parametrize(("width", "height"), [(64, 64), (64, 128), (128, 64), (256, 256)])
def test_size_is_honoured(gen: DiffusersImageGenerator, width: int, height: int) -> None:
    [result] = gen.generate(ImageRequest(prompt="a red fox", width=width, height=height, seed=1))
    assert result.image.size == (width, height)


def test_request_overrides_steps_and_guidance(gen: DiffusersImageGenerator) -> None:
    base = _one(gen, 3).image
    [more_steps] = gen.generate(ImageRequest(prompt="a red fox", width=64, height=64, seed=3, steps=3))
    [no_cfg] = gen.generate(ImageRequest(prompt="a red fox", width=64, height=64, seed=3, guidance_scale=1.0))
    assert not _same(base, more_steps.image)
    assert not _same(base, no_cfg.image)


@pytest.mark.parametrize(("width", "height", "n"), [(60, 64, 1), (64, 0, 1), (64, 64, 0)])
def test_invalid_requests_raise(gen: DiffusersImageGenerator, width: int, height: int, n: int) -> None:
    with pytest.raises(GeneratorError):
        gen.generate(ImageRequest(prompt="x", width=width, height=height, n=n))


def test_instruction_edit_is_seeded_and_sized(gen: DiffusersImageGenerator, source_image: Image.Image) -> None:
    request = EditRequest(prompt="make it blue", image=source_image, width=64, height=64, n=2, seed=5)
    first, second = gen.edit(request), gen.edit(request)
    assert [r.seed for r in first] == [5, 6]
    assert all(_same(a.image, b.image) for a, b in zip(first, second, strict=True))
    assert not _same(first[0].image, first[1].image)
    assert first[0].image.size == (64, 64)
    [resized] = gen.edit(EditRequest(prompt="make it blue", image=source_image, width=128, height=64))
    assert resized.image.size == (128, 64)


def test_masked_edit_inpaints_only_the_white_area(
    gen: DiffusersImageGenerator, source_image: Image.Image, right_half_mask: Image.Image
) -> None:
    masked = EditRequest(prompt="make it blue", image=source_image, mask=right_half_mask, width=64, height=64, seed=5)
    [inpainted] = gen.edit(masked)
    [again] = gen.edit(masked)
    [unmasked] = gen.edit(EditRequest(prompt="make it blue", image=source_image, width=64, height=64, seed=5))
    assert _same(inpainted.image, again.image)
    assert not _same(inpainted.image, unmasked.image)  # the mask selects the inpaint pipeline
    keep, paint = (0, 0, 32, 64), (32, 0, 64, 64)
    assert _same(inpainted.image.crop(keep), source_image.crop(keep))  # outside the mask: untouched
    assert ImageChops.difference(inpainted.image.crop(paint), source_image.crop(paint)).getbbox() is not None


def test_mask_without_inpaint_model_raises(
    tiny: TinyModelPaths, source_image: Image.Image, right_half_mask: Image.Image
) -> None:
    generator = DiffusersImageGenerator(model=str(tiny.text2img), edit_model=str(tiny.edit))
    generator.load()
    request = EditRequest(prompt="x", image=source_image, mask=right_half_mask, width=64, height=64)
    with pytest.raises(GeneratorError, match="inpaint_model"):
        generator.edit(request)
    # Without a mask the instruction-edit model still serves.
    assert len(generator.edit(EditRequest(prompt="x", image=source_image, width=64, height=64))) == 1


def test_edit_without_edit_model_raises(tiny: TinyModelPaths, source_image: Image.Image) -> None:
    generator = DiffusersImageGenerator(model=str(tiny.text2img))
    with pytest.raises(GeneratorError, match="edit_model"):  # also loads lazily on first use
        generator.edit(EditRequest(prompt="x", image=source_image, width=64, height=64))


def test_missing_model_folder_raises_generator_error(tmp_path: Path) -> None:
    generator = DiffusersImageGenerator(model=str(tmp_path / "nothing-here"))
    with pytest.raises(GeneratorError, match="loading"):
        generator.load()


def test_wrong_unet_for_edit_model_is_refused(tiny: TinyModelPaths) -> None:
    generator = DiffusersImageGenerator(model=str(tiny.text2img), edit_model=str(tiny.text2img))
    with pytest.raises(GeneratorError, match="InstructPix2Pix"):
        generator.load()


def test_backend_exceptions_become_generator_errors(
    gen: DiffusersImageGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_pipeline(**_: object) -> None:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setitem(gen._pipes, "text2img", broken_pipeline)
    with pytest.raises(GeneratorError, match="simulated") as caught:
        gen.generate(ImageRequest(prompt="x", width=64, height=64))
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_concurrent_calls_match_sequential_results(gen: DiffusersImageGenerator) -> None:
    expected = {seed: _one(gen, seed).image.tobytes() for seed in (11, 12, 13, 14)}
    got: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            got[seed] = _one(gen, seed).image.tobytes()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert got == expected


def test_a_shipped_safety_checker_is_kept(tiny: TinyModelPaths, tmp_path: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    small = {"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **small,
            "vocab_size": 100,
            "max_position_embeddings": 8,
            "bos_token_id": 0,
            "eos_token_id": 1,
        },
        vision_config={**small, "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        checker = StableDiffusionSafetyChecker(config).eval()
    components = StableDiffusionPipeline.from_pretrained(tiny.text2img, local_files_only=True).components
    components.pop("image_encoder", None)
    components.update(
        safety_checker=checker,
        feature_extractor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        requires_safety_checker=True,
    )
    StableDiffusionPipeline(**components).save_pretrained(tmp_path / "with-checker")

    generator = DiffusersImageGenerator(model=str(tmp_path / "with-checker"))
    generator.load()
    assert generator.safety_checker_disabled is False
    assert generator.pipelines_without_safety_checker == ()
    [result] = generator.generate(ImageRequest(prompt="x", width=64, height=64))
    assert result.image.size == (64, 64)
