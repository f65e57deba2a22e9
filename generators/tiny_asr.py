"""A tiny Whisper (speech recognition) model built from a config with random weights.

Like the other tiny models: `WhisperForConditionalGeneration` and its `WhisperProcessor` (a
`WhisperFeatureExtractor` and a `WhisperTokenizer` over a small byte-level vocabulary written to
`vocab.json` / `merges.txt` first) are saved with `save_pretrained` and loaded back through the
real `from_pretrained` path (STYLE point 7); `openai/whisper-tiny.en` has the same layout. Its
"transcripts" are random sequences of the whole words in `WORDS`, chosen by the audio it hears,
so the same audio gives the same transcript: enough to exercise screening a transcript in tests.

Differences from a real Whisper, for speed: 8 mel bins and 2-second windows (a real model uses 80
or 128 bins and 30-second windows); `generators.transformers_asr` reads both from the processor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generators.build_once import build_once

__all__ = ["CHUNK_SECONDS", "INIT_SEED", "MARKER", "SPECIAL_TOKENS", "WORDS", "ensure_tiny_whisper"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-whisper-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

_FORMAT = "1"
"""Bump when the config or the vocabulary below change, so old tiny models are rebuilt."""

CHUNK_SECONDS = 2
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|notimestamps|>",
)
_WORD_LIST = (
    "the a and blue red green kettle teapot piano music calm bright soft drum morning train station sea wind "
    "rain welcome catalog video sound voice quiet loud river garden window lamp paper clock bridge"
)
WORDS: tuple[str, ...] = tuple(_WORD_LIST.split())
"""The tokens the tiny model can emit, each a whole word with a leading space (byte-level `Ġ`)."""


def ensure_tiny_whisper(root: Path) -> Path:
    """Build the tiny Whisper folder into `root` once; later calls only return `root` (see `build_once`)."""
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def _build(dest: Path) -> None:
    import torch
    import transformers

    t: Any = transformers  # transformers' model classes are loosely typed; keep mypy --strict quiet
    vocab = {"\u0120" + w: i for i, w in enumerate(WORDS)}
    for special in SPECIAL_TOKENS:
        vocab[special] = len(vocab)
    (dest / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    eot = "<|endoftext|>"
    tokenizer = t.WhisperTokenizer(
        str(dest / "vocab.json"),
        str(dest / "merges.txt"),
        unk_token=eot,
        bos_token=eot,
        eos_token=eot,
        pad_token=eot,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    features = t.WhisperFeatureExtractor(
        feature_size=8, sampling_rate=16000, chunk_length=CHUNK_SECONDS, hop_length=160, n_fft=400
    )
    processor = t.WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)
    sot, end, no_timestamps = vocab["<|startoftranscript|>"], vocab[eot], vocab["<|notimestamps|>"]
    config = t.WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=8,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        d_model=16,
        max_source_positions=CHUNK_SECONDS * 50,  # 100 mel frames per second, halved by the second conv
        max_target_positions=64,
        decoder_start_token_id=sot,
        eos_token_id=end,
        pad_token_id=end,
        bos_token_id=end,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    # fork_rng: seeding the build must not change the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = t.WhisperForConditionalGeneration(config).eval()
    generation = model.generation_config
    generation.decoder_start_token_id = sot
    generation.eos_token_id = end
    generation.pad_token_id = end
    generation.no_timestamps_token_id = no_timestamps
    generation.is_multilingual = False
    generation.forced_decoder_ids = None
    generation.max_length = 64
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
