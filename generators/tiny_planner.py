"""A tiny Llama that can write JSON, built from a config with random weights, for the job planner.

`generators.tiny_text`'s chat model speaks in whole words only, so it cannot write `{`, `"` or
`:`. The planner decodes under a JSON schema (`generators.transformers_planner`, with `outlines`),
so its tiny default needs a vocabulary that can spell JSON: every printable ASCII character, plus
the English words of `tiny_text.WORDS` as single "▁word" pieces (SentencePiece style, like Llama's
own tokenizer), so a random plan's prompts read as words rather than letter soup. The vocabulary
stays small (about 560 pieces), which keeps the constrained-decoding index quick to build.

Saved with `save_pretrained` and loaded back through `from_pretrained` (STYLE point 7), like
every tiny model here.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from generators.build_once import build_once
from generators.tiny_text import WORDS

__all__ = ["INIT_SEED", "MARKER", "build_tiny_planner_tokenizer", "ensure_tiny_planner"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-planner-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

_FORMAT = "1"
"""Bump when the config, vocabulary or template below change, so old tiny models are rebuilt."""

SPECIAL: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>")
_SPACE = "\u2581"  # SentencePiece's word boundary, as in Llama's tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] + ' ' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def ensure_tiny_planner(root: Path) -> Path:
    """Build the tiny planner model into `root` once (see `generators.build_once`); return `root`."""
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def _pieces() -> list[tuple[str, float]]:
    """Unigram pieces: specials, the word boundary, printable characters, then whole words."""
    pieces: list[tuple[str, float]] = [(s, 0.0) for s in SPECIAL]
    seen = {p for p, _ in pieces}
    chars = [c for c in string.printable if c not in string.whitespace or c == " "]
    for piece, score in [(_SPACE, -2.0), *((c, -5.0) for c in chars if c != " ")]:
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, score))
    for word in WORDS:
        piece = _SPACE + word
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, -1.0))
    return pieces


def build_tiny_planner_tokenizer() -> Any:
    """A Unigram `PreTrainedTokenizerFast` over characters and words, with a plain chat template."""
    import transformers
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import Unigram

    t: Any = transformers  # loosely typed; keep mypy --strict quiet
    unk, bos, eos, pad = SPECIAL
    core = Tokenizer(Unigram(_pieces(), unk_id=0))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="always")
    core.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme="always")
    tokenizer = t.PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 2048
    return tokenizer


def _build(dest: Path) -> None:
    import torch
    import transformers

    t: Any = transformers  # transformers' model classes are loosely typed; keep mypy --strict quiet
    tokenizer = build_tiny_planner_tokenizer()
    config = t.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    # fork_rng: seeding the build must not change the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = t.LlamaForCausalLM(config).eval()
    model.generation_config.do_sample = False
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
