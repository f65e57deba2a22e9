"""A tiny VITS (MMS-TTS architecture) text-to-speech model built from a config with random weights.

Like `generators.tiny_text` for chat: the model and its character tokenizer are saved with
`save_pretrained` and loaded back through the real `from_pretrained` path (STYLE point 7), so the
code that serves it is the code that serves a real local MMS-TTS folder (`facebook/mms-tts-eng`
has the same layout). It produces noise, not speech, in a few milliseconds per sentence on a CPU.

The tokenizer is `VitsTokenizer` over a small character vocabulary (lower-case letters, space and
a few punctuation marks; no phonemizer), written to `vocab.json` first and built from that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.build_once import build_once

__all__ = ["CHARACTERS", "INIT_SEED", "MARKER", "SAMPLING_RATE", "ensure_tiny_tts"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-tts-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

_FORMAT = "1"
"""Bump when the config or vocabulary below change, so old tiny models are rebuilt."""

SAMPLING_RATE = 16000
CHARACTERS: tuple[str, ...] = ("<pad>", " ", *"abcdefghijklmnopqrstuvwxyz", *"'.,!?-")
"""The tokenizer's vocabulary in id order; `<pad>` (id 0) is also the blank inserted between characters."""


def ensure_tiny_tts(root: Path) -> Path:
    """Build the tiny TTS model into `root` once; later calls only return `root`.

    Safe under concurrency like `generators.tiny_text.ensure_tiny_llm`: the build goes to a private
    temporary folder beside `root` and is moved into place with one `os.replace` after its marker
    is written; a `root` without a current marker (half-written, older format) is replaced.
    """
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def _build(dest: Path) -> None:
    import torch
    import transformers

    t: Any = transformers  # transformers' model classes are loosely typed; keep mypy --strict quiet
    vocab_file = dest / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(CHARACTERS)}), encoding="utf-8")
    tokenizer = t.VitsTokenizer(str(vocab_file), language=None, add_blank=True, normalize=True, phonemize=False)
    config = t.VitsConfig(
        vocab_size=len(CHARACTERS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=33,
        upsample_initial_channel=32,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=1,
        sampling_rate=SAMPLING_RATE,
        pad_token_id=0,
    )
    # fork_rng: seeding the build must not change the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = t.VitsModel(config).eval()
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
