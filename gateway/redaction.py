"""Replace PII in a prompt with its entity type (presidio-anonymizer), from the PII detector's spans."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from detectors.base import Finding


def redact_text(text: str, findings: Sequence[Finding], entity_types: Iterable[str] | None = None) -> str:
    """Replace every PII span whose entity type is in `entity_types` (all, when None) by `<ENTITY_TYPE>`."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import RecognizerResult

    wanted = None if entity_types is None else set(entity_types)
    results = []
    for f in findings:
        entity = f.evidence.get("entity_type")
        if f.category != "pii" or f.span is None or not isinstance(entity, str):
            continue
        if wanted is not None and entity not in wanted:
            continue
        results.append(RecognizerResult(entity_type=entity, start=f.span[0], end=f.span[1], score=f.score))
    if not results:
        return text
    engine = AnonymizerEngine()  # type: ignore[no-untyped-call]
    return str(engine.anonymize(text=text, analyzer_results=results).text)
