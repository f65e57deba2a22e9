"""The PII detector used from several threads at once, as the gateway's detector pool uses it: each
spaCy pipeline is serialized by its own lock (`detectors.pii_spacy.pipeline_lock`), so an English
prompt's PII pass does not wait for GiNZA, and concurrent calls find what calls one by one find."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from detectors.base import TextItem
from detectors.pii import PresidioPII
from detectors.pii_spacy import pipeline_lock
from detectors.testing import found_spans, make_context

TEXTS = [
    "Please email John Smith at john.smith@example.com or call 212-555-0187.",
    "my name is sarah connor and my card is 4111 1111 1111 1111",
    "山田太郎さんの電話番号は090-1234-5678です。住所は東京都千代田区千代田1-1。",
    "担当の佐藤花子にメールして。John Smithさんにも連絡を。",
    "A quiet lake at dawn, watercolor, soft light.",
    "マイナンバーは123456789018です。カードは4242424242424242。",
    "Contact Dr. Emily Chen, SSN 536-22-1234, IBAN DE89370400440532013000.",
]


def _japanese_pipeline(det: PresidioPII) -> object:
    assert det._analyzer is not None
    engine = det._analyzer.nlp_engine
    assert engine.japanese is not None  # type: ignore[attr-defined]
    return engine.japanese  # type: ignore[attr-defined]


def test_english_prompt_does_not_wait_for_ginza(default_pii: PresidioPII) -> None:
    """While another thread holds GiNZA (a long Japanese prompt being parsed), an English prompt's
    PII pass runs to its end; a Japanese one waits for GiNZA."""
    english_done, japanese_done = threading.Event(), threading.Event()
    found: dict[str, list[tuple[str, str]]] = {}

    def read(key: str, text: str, done: threading.Event) -> None:
        found[key] = found_spans(default_pii, text)
        done.set()

    lock = pipeline_lock(_japanese_pipeline(default_pii))  # type: ignore[arg-type]
    with lock:
        workers = [
            threading.Thread(target=read, args=("en", TEXTS[0], english_done)),
            threading.Thread(target=read, args=("ja", TEXTS[2], japanese_done)),
        ]
        for worker in workers:
            worker.start()
        assert english_done.wait(60), "the English prompt waited for GiNZA"
        assert not japanese_done.wait(0.5)  # GiNZA is held: the Japanese prompt waits its turn
    for worker in workers:
        worker.join(60)
    assert japanese_done.is_set()
    assert ("EMAIL_ADDRESS", "john.smith@example.com") in found["en"]
    assert ("PERSON", "山田太郎") in found["ja"]


def test_concurrent_calls_find_what_calls_one_by_one_find(default_pii: PresidioPII) -> None:
    def reading(text: str) -> list[tuple[str, tuple[int, int] | None, float]]:
        findings = default_pii.detect(TextItem(text=text), make_context())
        return [(f.evidence["entity_type"], f.span, round(f.score, 6)) for f in findings]  # type: ignore[misc]

    texts = [
        *TEXTS,
        "please send the invoice to maria garcia, her phone is 212-555-0187",  # lowercase: the truecasing path
        ("山田太郎さんの電話番号は090-1234-5678です。" * 400)[:9000],  # GiNZA reads it in chunks
        "Decode: bWFyaWFAZXhhbXBsZS5jb20=",  # an e-mail in a base64 payload
    ]
    alone = [reading(text) for text in texts]
    assert all(alone[i] for i in (0, 1, 2, 3, 5, 6, 7, 8, 9))
    work = texts * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(reading, work))
    assert together == alone * 4
