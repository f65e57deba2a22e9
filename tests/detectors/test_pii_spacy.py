"""The spaCy pipelines behind PresidioPII: numpy matrix products, greedy NER under the GIL, pipes kept."""

from __future__ import annotations

import pytest

from detectors.pii import DEFAULT_MODELS, ENGLISH_EXCLUDE
from detectors.pii_ginza import GINZA_EXCLUDE
from detectors.pii_spacy import GreedyEntityRecognizer, load_pipeline, pipeline_lock, single_blas_thread

ENGLISH = [
    "Hi, I am John Smith and I work for Acme Corp in Berlin since March 2021.",
    "Maria Garcia flew from Madrid to New York with Peter O'Neill on Monday.",
    "Please send the cards to Mr. Tanaka, 14 Baker Street, London.",
]
JAPANESE = [
    "佐藤花子と鈴木一郎は大阪に住んでいる",
    "株式会社トヨタの豊田章男社長が名古屋市で講演した",
    "山田太郎さんに東京駅で会いました。",
]


def _ents(doc: object) -> list[tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("model", "exclude", "texts"),
    [(DEFAULT_MODELS["en"], ENGLISH_EXCLUDE, ENGLISH), ("ja_ginza", GINZA_EXCLUDE, JAPANESE)],
)
def test_greedy_ner_finds_what_spacy_finds(model: str, exclude: tuple[str, ...], texts: list[str]) -> None:
    nlp = load_pipeline(model, exclude)
    assert "ner" not in nlp.pipe_names and "ner" in nlp.component_names  # loaded, run by the greedy step
    greedy = nlp.get_pipe("ner_greedy")
    assert isinstance(greedy, GreedyEntityRecognizer)
    ner = nlp.get_pipe("ner")
    found = 0
    for text in texts:
        ours = nlp(text)
        with nlp.select_pipes(disable=["ner_greedy"]):
            theirs = ner(nlp(text))  # spaCy's own decoding, on a fresh doc
        assert _ents(ours) == _ents(theirs)
        found += len(ours.ents)
    assert found >= len(texts)  # the comparison is about real entities


def test_thinc_layers_multiply_through_numpy() -> None:
    nlp = load_pipeline("ja_ginza", GINZA_EXCLUDE)
    nodes = [node for _, pipe in nlp.components for node in getattr(getattr(pipe, "model", None), "walk", list)()]
    assert nodes
    assert all(getattr(node.ops, "use_blis", False) is False for node in nodes)


def test_english_pipeline_has_no_parser_and_keeps_lemmas() -> None:
    nlp = load_pipeline(DEFAULT_MODELS["en"], ENGLISH_EXCLUDE)
    assert "parser" not in nlp.component_names
    doc = nlp("She called about the stolen cards.")
    assert [t.lemma_ for t in doc][1:6:2] == ["call", "the", "card"]  # presidio's context words use lemmas


def test_pipelines_are_loaded_once() -> None:
    assert load_pipeline("ja_ginza", GINZA_EXCLUDE) is load_pipeline("ja_ginza", GINZA_EXCLUDE)


def test_single_blas_thread() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  # loads numpy's BLAS

    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library found by threadpoolctl")
    with single_blas_thread():
        assert {info["num_threads"] for info in blas.info()} == {1}


def test_single_blas_thread_is_held_until_the_last_caller_leaves() -> None:
    """Two callers whose contexts overlap: the limit stays until the second one leaves, and the
    original limits come back after it (a limit per caller restored 1 thread for good)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  # loads numpy's BLAS

    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library found by threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if {info["num_threads"] for info in blas.info()} != {2}:
            pytest.skip("this BLAS cannot be set to 2 threads")
        first, second = single_blas_thread(), single_blas_thread()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert {info["num_threads"] for info in blas.info()} == {1}  # the second caller still runs
        second.__exit__(None, None, None)
        assert {info["num_threads"] for info in blas.info()} == {2}


def test_each_pipeline_has_its_own_reentrant_lock() -> None:
    import spacy

    english, japanese = spacy.blank("en"), spacy.blank("en")
    assert pipeline_lock(english) is pipeline_lock(english)
    assert pipeline_lock(english) is not pipeline_lock(japanese)
    with pipeline_lock(english), pipeline_lock(english):  # re-entrant
        assert pipeline_lock(japanese).acquire(blocking=False)
        pipeline_lock(japanese).release()


def test_single_blas_thread_limits_a_worker_thread_after_the_main_thread() -> None:
    """threadpoolctl lets one thread set OpenBLAS's thread count: after the main thread used the
    limit (the detector's warm-up at load), a detector thread of the gateway's pool is limited too,
    and when the first caller in is not the last one out, the original count still comes back."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading

    import numpy  # noqa: F401  # loads numpy's BLAS

    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("no BLAS library found by threadpoolctl")

    def counts() -> set[int]:
        return {info["num_threads"] for info in blas.info()}

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if counts() != {2}:
            pytest.skip("this BLAS cannot be set to 2 threads")
    seen: list[set[int]] = []
    with single_blas_thread():  # the main thread first
        pass

    def worker() -> None:
        with single_blas_thread():
            seen.append(counts())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [{1}]
    original = counts()
    a_in, b_in, a_out, done = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def first_in() -> None:
        with single_blas_thread():
            a_in.set()
            b_in.wait(10)
        a_out.set()
        done.wait(10)  # stays alive, as a pool thread does

    def last_out() -> None:
        a_in.wait(10)
        with single_blas_thread():
            b_in.set()
            a_out.wait(10)

    threads = [threading.Thread(target=first_in), threading.Thread(target=last_out)]
    for t in threads:
        t.start()
    threads[1].join()
    try:
        assert counts() == original
    finally:
        done.set()
        threads[0].join()
