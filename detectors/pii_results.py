"""presidio results made by Mamori's own recognizers: the span, its score, and an explanation that
says which recognizer found it and why (presidio's `AnalysisExplanation`)."""

from __future__ import annotations

from presidio_analyzer import AnalysisExplanation, RecognizerResult

__all__ = ["explained_result"]


def explained_result(
    entity_type: str,
    start: int,
    end: int,
    score: float,
    why: str,
    *,
    recognizer: str,
    explainer: str | None = None,
    identifier: str | None = None,
    context_enhanced: bool = False,
) -> RecognizerResult:
    """A result named `recognizer` in its metadata (the name the findings report), explained by
    `explainer` (default: the same name) with `why`; `identifier` is the recognizer instance's id,
    and `context_enhanced` marks a score raised by a context word, as presidio's own results do."""
    metadata: dict[str, str | bool] = {RecognizerResult.RECOGNIZER_NAME_KEY: recognizer}
    if identifier is not None:
        metadata[RecognizerResult.RECOGNIZER_IDENTIFIER_KEY] = identifier
    if context_enhanced:
        metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
    explanation = AnalysisExplanation(recognizer=explainer or recognizer, original_score=score, textual_explanation=why)
    return RecognizerResult(
        entity_type=entity_type,
        start=start,
        end=end,
        score=score,
        analysis_explanation=explanation,
        recognition_metadata=metadata,
    )
