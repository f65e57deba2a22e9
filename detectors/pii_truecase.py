"""Names written in lowercase: the English NER model also reads a truecased copy of the text.

spaCy's English NER is trained on cased text and leans on capital letters, so in chat written all
in lowercase ("my name is john smith", "they had 6: leonti, terrence, pamela, ...") it misses
most names. For a text without any uppercase letter, `TruecasingNlpEngine` runs the NER a second
time on a copy in which some words are capitalised, and adds the PERSON entities found there
(with `sentence_case=True` also for a text whose only capitals start a sentence or a line, or are
the pronoun I, as phone keyboards write "My name is john smith"). Only the first letter of a word
changes, so the copy has the same tokens and character offsets as the text and its spans map back
one to one. The copy is also handed to the recognizers (`TruecasedNlpArtifacts`), so that the
naming cues of `detectors.pii_recognizers` read "her maiden name is Nyberg".

Which words: those whose capitalised form is much more frequent in English than their lowercase
form (`Truecaser`). The frequencies are the ones that ship with the pipeline: the keys of
en_core_web_md's vector table (Explosion's fastText vectors, trained on OSCAR, Wikipedia,
OpenSubtitles and news; 514,157 cased keys) are stored in the order of the training vocabulary,
most frequent first ('</s>', '.', ',', 'the', 'of', ...), so a key's position is its frequency
rank, and by Zipf's law the ratio of two ranks approximates the inverse ratio of the two
frequencies. Common nouns are also written capitalised at the start of sentences, in titles and in
names of things, so their capitalised form can be as frequent as the lowercase one ("Beach" ranks
before "beach") or a few times more ("Zeppelin" 4.5x, "Ferris" 4.7x, "Grinch" 4.1x), while first
names and surnames are capitalised 6 to 60 times more often ("donna" 6.1x, "frank" 10x, "brian"
20x, "john" 59x). A word is capitalised when its capitalised form ranks `ratio` times higher
(`DEFAULT_RATIO`, 6: the best PERSON F1 on the even rows of presidio's synthetic set written in
lowercase among 4, 6 and 8; 2 turns more ordinary nouns into names), or when only the capitalised
form is known ("nyberg" -> "Nyberg"). A word known in neither form stays lowercase: unknown words
are more often typos than names. A text in which no word changes is not parsed again, so most
lowercase prompts cost nothing more (0.01-0.03 ms CPU at p50 on lowercase COCO captions).

Measured with bench/eval_pii.py on presidio's synthetic set: PERSON F1 0.854 -> 0.867 on even
rows (0.830 -> 0.835 on odd rows); on the even rows written all in lowercase 0.688 -> 0.817.
Benign prompts written in lowercase get about as many PERSON findings as written with capitals
(3,550 COCO captions and XSTest/JBB prompts: 54 -> 82 lowercased, 77 as written); most of the
added ones are famous people and characters ("hitler", "kurt cobain", "shrek"), the rest typos
or things that are also names ("helmut" for helmet, "a scissor jack", "a bloody mary").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
from presidio_analyzer.nlp_engine import NlpArtifacts

from detectors.pii_ginza import ScriptRoutingNlpEngine, has_japanese
from detectors.pii_spacy import GREEDY_NER_FACTORY, pipeline_lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from presidio_analyzer.nlp_engine import NerModelConfiguration
    from spacy.language import Language
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

__all__ = ["DEFAULT_RATIO", "TruecasedNlpArtifacts", "Truecaser", "TruecasingNlpEngine", "is_uncased"]

#: how many times more frequent the capitalised form of a word must be for it to be capitalised
#: (2: more ordinary nouns become names; 8: fewer names are found; see the module docstring)
DEFAULT_RATIO = 6.0

_SENTENCE_START = re.compile(r"(^|[.!?…]\s+|\n)([\s\"'“‘(\[]*)(\w)")
_PRONOUN_I = re.compile(r"\bI\b")
_NER_FACTORIES = frozenset({"ner", GREEDY_NER_FACTORY})
_PERSON = "PERSON"
# one truecaser per vocabulary and ratio (the pipelines are shared by every detector in the process);
# the vocabulary is kept with it so that its id stays its own
_CACHE: dict[tuple[int, float], tuple[Vocab, Truecaser | None]] = {}


def is_uncased(text: str) -> bool:
    """Whether the text has lowercase letters and no uppercase (nor titlecase) letter."""
    return text.lower() == text and text.upper() != text


def is_sentence_cased(text: str) -> bool:
    """Whether the text has lowercase letters and no capital but those starting a sentence or a
    line, and the pronoun I ("Hi, my name is john smith. I live in leeds")."""
    return is_uncased(_SENTENCE_START.sub(_lower_third, _PRONOUN_I.sub("i", text)))


def _lower_third(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + match.group(3).lower()


def _capitalise(word: str) -> str:
    """The word with its first letter uppercased, or the word itself where that changes its length."""
    first = word[0].upper()
    return first + word[1:] if len(first) == 1 else word


class Truecaser:
    """Chooses which lowercase words of a text to capitalise, from frequency ranks of cased words.

    `keys` are spaCy string ids (hashes) and `ranks` their frequency ranks (0 = most frequent).
    """

    def __init__(self, keys: np.ndarray[Any, Any], ranks: np.ndarray[Any, Any], ratio: float = DEFAULT_RATIO) -> None:
        if ratio < 1.0:
            raise ValueError("ratio must be at least 1")
        order = np.argsort(keys, kind="stable")
        self._keys = np.ascontiguousarray(keys[order], dtype=np.uint64)
        self._ranks = np.ascontiguousarray(ranks[order], dtype=np.int64)
        self.ratio = float(ratio)

    @classmethod
    def from_vectors(cls, vocab: Vocab, ratio: float = DEFAULT_RATIO) -> Truecaser | None:
        """A truecaser from the order of a pipeline's vector keys, or None when the pipeline has no
        vectors or their keys are not in order of frequency (the first keys must hold "the")."""
        cache_key = (id(vocab), float(ratio))
        if cache_key not in _CACHE:
            key2row = getattr(vocab.vectors, "key2row", None) or {}
            keys = np.fromiter(key2row.keys(), dtype=np.uint64, count=len(key2row))
            ordered = len(keys) >= 1000 and vocab.strings["the"] in keys[:10].tolist()
            _CACHE[cache_key] = (vocab, cls(keys, np.arange(len(keys)), ratio) if ordered else None)
        return _CACHE[cache_key][1]

    def ranks(self, words: list[str]) -> list[int | None]:
        """The frequency rank of each word, None for a word the table does not hold."""
        from spacy.strings import get_string_id

        if not words:
            return []
        ids = np.array([get_string_id(w) for w in words], dtype=np.uint64)
        at = np.minimum(np.searchsorted(self._keys, ids), len(self._keys) - 1)
        found = self._keys[at] == ids
        return [r if ok else None for r, ok in zip(self._ranks[at].tolist(), found.tolist(), strict=True)]

    def ordinary(self, words: list[str], ratio: float = 1.0) -> list[bool]:
        """Whether each word is an ordinary word rather than a name: its lowercase form is `ratio`
        times more frequent than its capitalised form, or the only one known ("Guilty", "Letter",
        "Data"; not "Fletcher", "Zoolander"; at ratio 2 not "Mark" nor "Grace" either)."""
        if not words:
            return []
        ranks = self.ranks([w.lower() for w in words] + [_capitalise(w.lower()) for w in words])
        lower, cased = ranks[: len(words)], ranks[len(words) :]
        return [low is not None and (cap is None or low * ratio < cap) for low, cap in zip(lower, cased, strict=True)]

    def truecase(self, words: list[str]) -> list[str]:
        """The words, each lowercase word capitalised where its capitalised form is `ratio` times
        more frequent, or the only one known."""
        candidates = [i for i, w in enumerate(words) if w.isalpha() and w.islower()]
        capitalised = [_capitalise(words[i]) for i in candidates]
        ranks = self.ranks([words[i] for i in candidates] + capitalised)
        lower, upper = ranks[: len(candidates)], ranks[len(candidates) :]
        cased = list(words)
        for i, word, low, cap in zip(candidates, capitalised, lower, upper, strict=True):
            if cap is not None and (low is None or cap * self.ratio < low):
                cased[i] = word
        return cased


class TruecasedNlpArtifacts(NlpArtifacts):
    """presidio's NLP artifacts of a text written in lowercase, with its truecased copy (same length)
    for recognizers that read capital letters (`detectors.pii_recognizers.person_cue_recognizer`)."""

    def __init__(self, base: NlpArtifacts, language: str, truecased_text: str) -> None:
        super().__init__(
            entities=list(base.entities),
            tokens=base.tokens,
            tokens_indices=base.tokens_indices,
            lemmas=base.lemmas,
            nlp_engine=base.nlp_engine,
            language=language,
            scores=list(base.scores),
        )
        self.truecased_text = truecased_text


class TruecasingNlpEngine(ScriptRoutingNlpEngine):
    """`ScriptRoutingNlpEngine` that adds the PERSON entities which the English NER finds in a
    truecased copy of an all-lowercase text (with `sentence_case`, also of a text whose only
    capitals start sentences; see the module docstring). Without a `truecaser` it is the plain
    `ScriptRoutingNlpEngine`."""

    def __init__(
        self,
        english: Language,
        japanese: Language | None,
        ner_model_configuration: NerModelConfiguration,
        language: str = "en",
        truecaser: Truecaser | None = None,
        sentence_case: bool = False,
    ) -> None:
        super().__init__(english, japanese, ner_model_configuration, language)
        self.truecaser = truecaser
        self._applies = is_sentence_cased if sentence_case else is_uncased
        self._ner_steps = _ner_steps(english)

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        artifacts = super().process_text(text, language)
        if self.truecaser is None or not self._ner_steps or not self._applies(text) or has_japanese(text):
            return artifacts
        with pipeline_lock(self.english):  # its NER steps, and presidio's stop words (its vocabulary)
            return self._truecased(artifacts, language, self.truecaser)

    def _truecased(self, artifacts: NlpArtifacts, language: str, truecaser: Truecaser) -> NlpArtifacts:
        """`artifacts` with the PERSON entities found in the truecased copy of its text (the caller
        holds the English pipeline's lock)."""
        doc: Doc = artifacts.tokens
        words = [token.text for token in doc]
        cased = truecaser.truecase(words)
        if cased == words:
            return artifacts
        truecased = TruecasedNlpArtifacts(artifacts, language, _text(doc, cased))
        persons, scores = self._persons(doc, cased)
        truecased.entities += persons
        truecased.scores += scores
        return truecased

    def _persons(self, doc: Doc, words: list[str]) -> tuple[list[Any], list[float]]:
        """The PERSON entities of the NER on `doc` with its words replaced by `words`."""
        from spacy.tokens import Doc

        cased = Doc(doc.vocab, words=words, spaces=[bool(token.whitespace_) for token in doc])
        for step in self._ner_steps:
            cased = step(cased)
        entities, scores = self._get_updated_entities(list(cased.ents), self._get_scores_for_entities(cased))
        kept = [(e, s) for e, s in zip(entities, scores, strict=True) if e.label_ == _PERSON]
        return [e for e, _ in kept], [s for _, s in kept]


def _text(doc: Doc, words: list[str]) -> str:
    """The text of `doc` with its tokens replaced by `words` of the same lengths."""
    return "".join(word + token.whitespace_ for word, token in zip(words, doc, strict=True))


def _ner_steps(nlp: Language) -> list[Callable[[Doc], Doc]]:
    """The enabled NER components of a pipeline, after the shared embedding components they listen
    to (none for the English core models, whose NER embeds the tokens itself)."""
    from spacy.pipeline.tok2vec import Tok2VecListener

    steps: list[Callable[[Doc], Doc]] = []
    for name, component in nlp.pipeline:
        if nlp.get_pipe_meta(name).factory not in _NER_FACTORIES:
            continue
        model = getattr(getattr(component, "ner", component), "model", None)
        if model is not None and any(isinstance(node, Tok2VecListener) for node in model.walk()):
            steps += [c for n, c in nlp.pipeline if nlp.get_pipe_meta(n).factory == "tok2vec"]
        steps.append(component)
    return steps
