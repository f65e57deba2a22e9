"""A tiny Wan 2.1 text-to-video pipeline built from configs with random weights, for tests and demos.

Like `generators.tiny`: the pipeline is saved with `save_pretrained` and loaded back through the
real `from_pretrained` path (`generators.diffusers_video`), so the serving code is the code that
serves a real local Wan 2.1 folder. It produces noise, not film: 9 frames of 32×32 in about 0.1 s
on a CPU. The VAE compresses time by 4 and space by 8, so frame counts are 4k + 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generators.build_once import build_once

__all__ = ["INIT_SEED", "MARKER", "ensure_tiny_wan"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-wan-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

_FORMAT = "1"
"""Bump when the configs below change, so old tiny models are rebuilt."""

_VOCAB = 64


def ensure_tiny_wan(root: Path) -> Path:
    """Build the tiny Wan pipeline into `root` once (see `generators.build_once`); return `root`."""
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def _build(dest: Path) -> None:
    import diffusers
    import torch
    import transformers

    d: Any = diffusers  # loosely typed libraries: keep mypy --strict quiet
    t: Any = transformers
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(f"▁{chr(ord('a') + i % 26)}{i}", -float(i)) for i in range(_VOCAB - len(pieces))]
    tokenizer = t.T5TokenizerFast(vocab=pieces, extra_ids=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        text_encoder = t.UMT5EncoderModel(
            t.UMT5Config(
                vocab_size=_VOCAB,
                d_model=16,
                d_kv=4,
                d_ff=32,
                num_layers=1,
                num_heads=2,
                relative_attention_num_buckets=8,
            )
        ).eval()
        transformer = d.WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=16,
            out_channels=16,
            text_dim=16,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        ).eval()
        vae = d.AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ).eval()
    scheduler = d.FlowMatchEulerDiscreteScheduler(shift=7.0)
    pipe = d.WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer
    )
    pipe.save_pretrained(str(dest))
