"""Route each text to the NER model of its script: English spaCy for Latin text, GiNZA for Japanese.

An English model run on Japanese text (no spaces, so whole clauses become single tokens) tags
whole prompts as PERSON or LOCATION; GiNZA (`ja_ginza`, a spaCy pipeline with Sudachi and an
Extended Named Entity tagger) is trained for Japanese. `ScriptRoutingNlpEngine` is a presidio
`SpacyNlpEngine` that:

- on text without Japanese script runs the English pipeline only (English prompts never pay for
  GiNZA: the check is one regular-expression search);
- on text with Japanese script runs GiNZA on the whole text (its tokens and lemmas feed presidio's
  context words, e.g. 電話 next to a phone number), keeps its Person and place entities, and, when
  the text also has Latin words, runs the English pipeline on a copy whose Japanese characters are
  blanked (same length, so offsets agree) for the names written in Latin script.

Pipelines are loaded once per process and shared by every detector instance (spaCy loads are slow
and the test suite builds many gateways), by `detectors.pii_spacy.load_pipeline`, which also sets
them up for fast CPU inference. Parsing mutates a pipeline's string store, so each use of a
pipeline holds that pipeline's lock (`detectors.pii_spacy.pipeline_lock`), GiNZA's and the English
one's apart.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

from detectors.pii_spacy import load_pipeline, pipeline_lock

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span

__all__ = [
    "GINZA_ENTITY_MAPPING",
    "ScriptRoutingNlpEngine",
    "has_japanese",
    "load_pipeline",
]

#: GiNZA pipes NER does not need (its NER listens to tok2vec only); excluding them halves the cost.
GINZA_EXCLUDE: tuple[str, ...] = ("parser", "morphologizer", "compound_splitter", "bunsetu_recognizer")

#: GiNZA's Extended Named Entity labels kept, and the presidio entity each becomes.
GINZA_ENTITY_MAPPING: dict[str, str] = {
    "Person": "PERSON",
    "Province": "LOCATION",
    "City": "LOCATION",
    "County": "LOCATION",
    "Country": "LOCATION",
    "GPE_Other": "LOCATION",
    "Domestic_Region": "LOCATION",
    "Location_Other": "LOCATION",
    "Postal_Address": "LOCATION",
}

# Hiragana, katakana (full and half width), CJK ideographs (and extension A), the 々 iteration mark.
_JAPANESE_SCRIPT = r"\u3041-\u3096\u30a1-\u30fa\u30fc\u3400-\u4dbf\u4e00-\u9fff\u3005\uff66-\uff9f"
_JAPANESE = re.compile(f"[{_JAPANESE_SCRIPT}]")
# What the English pipeline reads as blank in mixed text: Japanese script, and the punctuation and
# full-width signs written with it (、。「」・：...), which it otherwise joins to a name or tags alone.
_BLANKED = re.compile(
    f"[{_JAPANESE_SCRIPT}"
    r"\u3000-\u3004\u3007-\u303f\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]{2,}")
# Sudachi refuses inputs over 49,149 bytes; GiNZA gets chunks well under that, cut after 。 or a newline.
_CHUNK_CHARS = 8000


def has_japanese(text: str) -> bool:
    """Whether the text holds any kana or kanji."""
    return _JAPANESE.search(text) is not None


def _blank_japanese(text: str) -> str:
    """The text with every Japanese character, and the punctuation written with Japanese, replaced
    by a space (offsets unchanged)."""
    return _BLANKED.sub(" ", text)


def _named_part(span: Span) -> Span | None:
    """The span without the white-space tokens at its edges (the blanked Japanese), or None when no
    letter or digit is left in it (a time such as "10:30" stays)."""
    start, end = span.start, span.end
    doc = span.doc
    while start < end and doc[start].is_space:
        start += 1
    while end > start and doc[end - 1].is_space:
        end -= 1
    if start == end or not any(ch.isalnum() for ch in doc[start:end].text):
        return None
    if (start, end) == (span.start, span.end):
        return span
    from spacy.tokens import Span

    return Span(doc, start, end, label=span.label_)


def _chunks(text: str, size: int | None = None) -> list[str]:
    """Consecutive pieces of at most `size` characters (default `_CHUNK_CHARS`) that concatenate
    back to `text`, cut after a 。 or a newline where there is one."""
    size = size or _CHUNK_CHARS
    if len(text) <= size:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind("。", start, end), text.rfind("\n", start, end))
            if cut > start:
                end = cut + 1
        pieces.append(text[start:end])
        start = end
    return pieces


class ScriptRoutingNlpEngine(SpacyNlpEngine):
    """presidio's spaCy engine with a Japanese pipeline used for text in Japanese script.

    `english` is the English pipeline (a NER model, or `spacy.blank("en")` for patterns only);
    `japanese` is GiNZA, or None to treat every text with the English pipeline.
    """

    def __init__(
        self,
        english: Language,
        japanese: Language | None,
        ner_model_configuration: NerModelConfiguration,
        language: str = "en",
    ) -> None:
        super().__init__(
            models=[{"lang_code": language, "model_name": english.meta.get("name", "blank")}],
            ner_model_configuration=ner_model_configuration,
        )
        self.nlp = {language: english}  # type: ignore[assignment]
        self.english = english
        self.japanese = japanese
        self.language = language
        self._english_has_ner = "ner" in english.component_names  # disabled when run greedily

    def load(self) -> None:  # the pipelines are given, loaded once per process by `load_pipeline`
        return None

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        if self.japanese is None or not has_japanese(text):
            with pipeline_lock(self.english):
                return super().process_text(text, language)
        with pipeline_lock(self.japanese):  # GiNZA's parse, and its string store read for the lemmas
            doc = self._japanese_doc(text)
            entities, scores = self._japanese_entities(doc)
            lemmas = [token.lemma_ for token in doc]
        with pipeline_lock(self.english):  # the English pass, and presidio's stop words (its vocabulary)
            return self._mixed_artifacts(text, language, doc, lemmas, entities, scores)

    def _mixed_artifacts(
        self, text: str, language: str, doc: Doc, lemmas: list[str], entities: list[Span], scores: list[float]
    ) -> NlpArtifacts:
        """The artifacts of a text in Japanese script: GiNZA's `doc`, `lemmas` and `entities`, and the
        names the English pipeline finds in Latin script (the caller holds the English pipeline's lock)."""
        if self._english_has_ner and _LATIN_WORD.search(text):
            english = self.english(_blank_japanese(text))
            en_entities, en_scores = [], []
            found = self._get_updated_entities(
                list(self._get_entities(english)), self._get_scores_for_entities(english)
            )
            for span, score in zip(*found, strict=True):
                named = _named_part(span)
                if named is not None:
                    en_entities.append(named)
                    en_scores.append(score)
            entities += en_entities
            scores += en_scores
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=lemmas,
            nlp_engine=self,
            language=language,
            scores=scores,
        )

    def process_batch(  # type: ignore[override]  # SpacyNlpEngine's own signature, as presidio types it
        self,
        texts: list[str] | list[tuple[str, object]],
        language: str,
        batch_size: int = 1,
        n_process: int = 1,
        as_tuples: bool = False,
    ) -> Generator[tuple[Any, NlpArtifacts, Any] | tuple[Any, NlpArtifacts], Any, None]:
        """One text at a time, so that each takes its own route."""
        for item in texts:
            if as_tuples:
                text, context = item  # type: ignore[str-unpack]
                yield str(text), self.process_text(str(text), language), context
            else:
                yield str(item), self.process_text(str(item), language)

    def _japanese_doc(self, text: str) -> Doc:
        from spacy.tokens import Doc

        assert self.japanese is not None
        pieces = _chunks(text)
        if len(pieces) == 1:
            return self.japanese(text)
        with warnings.catch_warnings():
            # W102: GiNZA's per-token user data (sub_tokens) is not merged; nothing here reads it.
            warnings.filterwarnings("ignore", message=r".*\[W102\].*")
            return Doc.from_docs(list(self.japanese.pipe(pieces)), ensure_whitespace=False)

    def _japanese_entities(self, doc: Doc) -> tuple[list[Span], list[float]]:
        from spacy.tokens import Span

        entities: list[Span] = []
        for ent in doc.ents:
            label = GINZA_ENTITY_MAPPING.get(ent.label_)
            if label is not None and label not in (self.ner_model_configuration.labels_to_ignore or ()):
                entities.append(Span(doc, ent.start, ent.end, label=label))
        score = self.ner_model_configuration.default_score
        return entities, [0.85 if score is None else float(score)] * len(entities)
