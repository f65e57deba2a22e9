"""Tiny Stable Diffusion pipelines built from configs with random weights, for tests and demos.

The pipelines are saved with `save_pretrained` and meant to be loaded back through the real
`from_pretrained` path (STYLE point 7). They produce noise, not pictures, but they exercise every
code path of the real backends in well under a second per image on a CPU.

They ship **no safety checker** (a random-weight checker would be meaningless); whoever loads them
must say so loudly (`DiffusersImageGenerator.safety_checker_disabled`).

Shapes: the VAE has four blocks like the real one (image = 8 × latent) and the UNet has two blocks,
so any width and height that are multiples of 16 work (64×64, 64×128, 256×256, 512×512...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generators.build_once import build_once

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

__all__ = ["INIT_SEED", "MARKER", "TinyModelPaths", "build_tiny_tokenizer", "ensure_tiny_models"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-complete"
"""Written last into a finished model root; a root without it is rebuilt."""

_FORMAT = "1"
"""Bump when the configs below change, so old tiny models on disk are rebuilt."""

_MAX_TOKENS = 32


@dataclass(frozen=True)
class TinyModelPaths:
    text2img: Path
    edit: Path
    inpaint: Path


def ensure_tiny_models(root: Path) -> TinyModelPaths:
    """Build the three tiny pipelines under `root` once; later calls only return their paths.

    Safe under concurrency: each build goes to a private temporary folder beside `root` and is
    moved into place with one `os.replace` after its marker file is written; a process that loses
    the race discards its copy. A `root` without a current marker (half-written, older format) is
    replaced.
    """
    root = Path(root)
    paths = TinyModelPaths(text2img=root / "text2img", edit=root / "edit", inpaint=root / "inpaint")
    build_once(root, _build_all, marker=MARKER, version=_FORMAT)
    return paths


def build_tiny_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer built in memory: every byte as a symbol, with and without `</w>`, no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = _MAX_TOKENS
    return tokenizer


def _build_all(dest: Path) -> None:
    import torch

    # fork_rng: seeding for the build must not change the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        for offset, (kind, unet_in_channels) in enumerate((("text2img", 4), ("edit", 8), ("inpaint", 9))):
            torch.manual_seed(INIT_SEED + offset)
            pipeline = _build_pipeline(kind, unet_in_channels=unet_in_channels)
            pipeline.save_pretrained(dest / kind, safe_serialization=True)


def _build_pipeline(kind: str, *, unet_in_channels: int) -> Any:
    import diffusers
    import transformers

    # diffusers is untyped; going through `Any` keeps `mypy --strict` quiet without per-line ignores.
    d: Any = diffusers
    t: Any = transformers

    hidden = 32
    unet = d.UNet2DConditionModel(
        sample_size=8,
        in_channels=unet_in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=hidden,
        attention_head_dim=8,
    ).eval()
    vae = d.AutoencoderKL(
        sample_size=64,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ).eval()
    text_encoder = t.CLIPTextModel(
        t.CLIPTextConfig(
            vocab_size=1000,
            hidden_size=hidden,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=_MAX_TOKENS,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            layer_norm_eps=1e-5,
        )
    ).eval()
    scheduler = d.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline_class = {
        "text2img": d.StableDiffusionPipeline,
        "edit": d.StableDiffusionInstructPix2PixPipeline,
        "inpaint": d.StableDiffusionInpaintPipeline,
    }[kind]
    return pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_tiny_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
