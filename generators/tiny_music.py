"""A tiny MusicGen (text to music) model built from a config with random weights.

Like `generators.tiny_speech` for speech: the model (`MusicgenForConditionalGeneration`: a T5 text
encoder, an EnCodec audio codec and the MusicGen decoder) and its processor (`MusicgenProcessor`:
an `EncodecFeatureExtractor` and a `T5Tokenizer` built in memory from a small word-piece
vocabulary) are saved with `save_pretrained` and loaded back through the real `from_pretrained`
path (STYLE point 7). `facebook/musicgen-small` has the same layout, so the code that serves this
folder is the code that serves real weights. It produces noise, not music: about 0.06 s per second
of audio on a CPU.

The decoder keeps MusicGen's own token layout: the codebook vocabulary is `CODEBOOK_SIZE` and the
pad/BOS id is one past it (as in the real models, whose pad id 2048 equals their vocabulary size).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from generators.build_once import build_once

__all__ = ["CODEBOOK_SIZE", "FRAME_RATE", "INIT_SEED", "MARKER", "SAMPLING_RATE", "WORDS", "ensure_tiny_musicgen"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-musicgen-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

_FORMAT = "2"
"""Bump when the configs or the vocabulary below change, so old tiny models are rebuilt."""

SAMPLING_RATE = 16000
FRAME_RATE = 50  # SAMPLING_RATE / prod(upsampling ratios 8*5*4*2): 50 audio tokens per second
CODEBOOK_SIZE = 64
_WORD_LIST = (
    "a an the of and with for in on at to music sound song jingle melody loop beat rhythm calm soft gentle "
    "bright upbeat slow fast happy sad warm piano guitar drum drums bass strings violin flute synth bell "
    "bells rain wind sea waves birds kettle kitchen catalog video intro outro background ambient"
)
WORDS: tuple[str, ...] = tuple(_WORD_LIST.split())
"""Whole-word pieces of the tokenizer; any other word is spelled letter by letter."""


def ensure_tiny_musicgen(root: Path) -> Path:
    """Build the tiny MusicGen folder into `root` once; later calls only return `root` (see `build_once`)."""
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def _vocabulary() -> list[tuple[str, float]]:
    """SentencePiece-style (piece, log-probability) pairs: special tokens, words, then single letters."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + w, -1.0) for w in WORDS]
    pieces += [("\u2581", -2.0)]
    pieces += [(c, -5.0) for c in string.ascii_lowercase + string.digits + ".,!?'-"]
    return pieces


def _build(dest: Path) -> None:
    import torch
    import transformers

    t: Any = transformers  # transformers' model classes are loosely typed; keep mypy --strict quiet
    vocab = _vocabulary()
    tokenizer = t.T5Tokenizer(vocab=vocab, extra_ids=0)
    features = t.EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE)
    processor = t.MusicgenProcessor(feature_extractor=features, tokenizer=tokenizer)
    text_encoder = t.T5Config(
        vocab_size=len(vocab),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    audio_encoder = t.EncodecConfig(
        sampling_rate=SAMPLING_RATE,
        hidden_size=16,
        num_filters=4,
        upsampling_ratios=[8, 5, 4, 2],
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=16,
        num_lstm_layers=1,
        target_bandwidths=[1.5],
    )
    decoder = t.MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE,
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        num_codebooks=2,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        max_position_embeddings=2048,
    )
    config = t.MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    # fork_rng: seeding the build must not change the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = t.MusicgenForConditionalGeneration(config).eval()
        # EnCodec's codebooks start as zeros (they are learned by k-means): every code would decode
        # to the same sound, and a seed would change nothing. Random codebooks make codes audible.
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_(0.0, 1.0)
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    model.generation_config.do_sample = True
    model.generation_config.guidance_scale = 3.0
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
