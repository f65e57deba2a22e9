"""A tiny Llama chat model built from a config with random weights, for tests and demos.

Like `generators.tiny` for images: the model and its tokenizer are saved with `save_pretrained`
and loaded back through the real `from_pretrained` path (STYLE point 7), so the code that serves
it is the code that serves a real local model folder.

The tokenizer is word-level over a small English vocabulary (plus a few punctuation marks), so
the random model "speaks" in real words separated by spaces. That makes outputs readable in logs
and lets tests put a word pair the seeded model emits on the output deny-list (the denylist
detector matches on word boundaries). The chat template is a plain one with role markers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generators.build_once import build_once

__all__ = ["CHAT_TEMPLATE", "INIT_SEED", "MARKER", "WORDS", "build_tiny_chat_tokenizer", "ensure_tiny_llm"]

INIT_SEED = 0
"""Seed for the random weights, so every build writes the same tensors."""

MARKER = ".mamori-tiny-llm-complete"
"""Written last into a finished model folder; a folder without it is rebuilt."""

_FORMAT = "1"
"""Bump when the config, vocabulary or template below change, so old tiny models are rebuilt."""

SPECIAL: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

_WORD_TEXT = """
    a about above across after again air all along also always an and animal answer any apple are
    around as ask at away back ball bank be bear because bed been before began begin being below best
    better between big bird black blue board boat body book both box boy bread bring brown build but
    by call came can car care carry cat catalog center chair change child city class clean clear close
    cloud cold color come common could country course cover cross cup cut dark day deep did dog door
    down draw dream drive dry during each early earth east easy eat edge egg end even evening ever every
    eye face fall family far farm fast father feel few field find fine fire first fish five floor flower
    fly follow food foot for forest form four free friend from front full game garden gave get girl give
    glass go gold good grass great green ground group grow had hand happy hard has have he head hear
    heart heavy help her here high hill him his hold home horse hot hour house how idea if in inside
    into iron is island it its just keep kind king know lake land large last late laugh lead learn leave
    left less letter light like line list little live long look low machine made make man manual many
    map mark may me mean measure meet metal middle might mile milk mind minute money moon more morning
    most mother mountain move much music must my name near need never new next night no north not note
    now number of off often oil old on once one only open or order other our out over own page paint
    paper part party pass path people picture piece place plain plan plant play point poor power press
    pull put quick quiet rain ran read ready real red rest river road rock room round rule run said
    salt same sand saw say school sea second see seed sell send set shape she ship short should show
    side simple sing sit six size sky sleep slow small snow so soft some song soon sound south space
    speak spring square stand star start state stay step still stone stop story street strong study
    such summer sun sure table tail take talk tall teach teapot tell ten than that the their them then
    there these they thing think this three through time to today together told too took top toward
    town train tree true try turn two under until up us use very voice walk wall want warm was watch
    water wave way we week well went were west what wheel when where which while white who why wide
    will wind window winter with wood word work world would write year yellow yes yet you young your
"""

WORDS: tuple[str, ...] = (*_WORD_TEXT.split(), ".", ",", "!", "?")
"""The vocabulary of the tiny model, after the special tokens."""

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] + ' <|end|> ' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def ensure_tiny_llm(root: Path) -> Path:
    """Build the tiny chat model into `root` once; later calls only return `root`.

    Safe under concurrency like `generators.tiny.ensure_tiny_models`: the build goes to a private
    temporary folder beside `root` and is moved into place with one `os.replace` after its marker
    is written; a `root` without a current marker (half-written, older format) is replaced.
    """
    root = Path(root)
    build_once(root, _build, marker=MARKER, version=_FORMAT)
    return root


def build_tiny_chat_tokenizer() -> Any:
    """A word-level `PreTrainedTokenizerFast` over `WORDS`, with special tokens and a chat template."""
    import transformers
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace

    t: Any = transformers  # loosely typed; keep mypy --strict quiet
    unk, bos, eos, pad = SPECIAL[:4]
    vocab: dict[str, int] = {}
    for token in (*SPECIAL, *WORDS):
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=unk))
    core.normalizer = Lowercase()
    core.pre_tokenizer = Whitespace()
    tokenizer = t.PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=list(SPECIAL[4:]),
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 1024
    return tokenizer


def _build(dest: Path) -> None:
    import torch
    import transformers

    t: Any = transformers  # transformers' model classes are loosely typed; keep mypy --strict quiet
    tokenizer = build_tiny_chat_tokenizer()
    config = t.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    # fork_rng: seeding the build must not change the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = t.LlamaForCausalLM(config).eval()
    model.generation_config.do_sample = True
    model.generation_config.max_new_tokens = 64
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
