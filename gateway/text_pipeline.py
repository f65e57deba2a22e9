"""The governed text path (chat completions): prescreen → decide → generate → output rails → decide → audit.

Like the image path (`gateway.pipeline`), every fault fails closed and the trace becomes one audit
record. Text carries no C2PA manifest: the record holds the SHA-256 of what the client received
(and of what the model generated), never the text itself.

Output rails are the text detectors (`svc.prescreen_detectors`: deny-list, PII, unsafe text,
jailbreak and toxicity) run at stage "output", with the policy bundle's terms plus
`settings.text_output_terms`, and the policy decides.

Held for review (a whole answer only): when the prescreen or the output decision escalates, the
generated text (redacted where the policy said so) is stored unsigned in the blob store as the
request's held asset and an escalation is opened; the answer is 202 with `mamori.escalation_id` and
`mamori.poll_url`. Text carries no C2PA: a supervisor's approval (`gateway.review`) releases it
unchanged and the `review` audit record holds its hash; a rejection or expiry refuses it. The
requester polls `GET /v1/requests/{id}` or `GET /v1/chat/completions/{completion_id}`.

Streaming: generation runs on the generator pool and feeds an asyncio queue one token at a time.
Mamori holds back a window of `settings.stream_window_tokens` tokens; when the window is full the
rails run on the whole text so far (so a term split across windows is still caught) and, if the
policy allows, the vetted text is released up to its last word boundary (a trailing partial word
waits, so half a term or half an e-mail address is not sent on its own). What may still become
personal data waits too, up to `STREAM_HOLD_BACK_CHARS` characters: a trailing run of digits and
the marks numbers are written with ("call them 212 555 " until "0187" comes; twelve digits that
read as a My Number until four more make them a card), a trailing e-mail address or URL, and a
number a phone or card word may still follow. The text released is the redacted view of what came
before, so a redaction that changes its mind about text still held back is no conflict; one that
would reach into text already released (past the bound, say) ends the stream with the reason
`system.redaction_conflict`. When the policy blocks, or anything fails, the stream ends with
`finish_reason: "content_filter"` and nothing unvetted has left. The audit record is written once,
when the stream ends (also when the client goes away).
A stream cannot wait for a human: an escalation refuses it like a block (at the prescreen a 400 before
the stream starts, midway `finish_reason: "content_filter"`), with the reason `review.stream_not_held`
saying that the same request without `stream` would be held for review instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from detectors.base import DetectionContext, Finding
from detectors.normalize import INVISIBLE_CHARS
from gateway.keys import Principal
from gateway.pipeline import (
    StageFault,
    decide,
    detection_context,
    in_pool,
    merge_reasons,
    policy_revision,
    run_text_detectors,
    summarize,
    system_decision,
)
from gateway.policy import Decision
from gateway.redaction import redact_text
from gateway.review import open_escalation
from gateway.services import Services
from gateway.state import NewAsset
from gateway.trace import Trace
from generators.transformers_text import TextCompletion, TextGenerator

ENDPOINT = "chat.completions"
SCREENED_ROLES = frozenset({"system", "user"})
"""Roles whose messages are prescreened. Assistant turns are earlier model outputs, not instructions."""

Status = Literal["released", "held", "refused"]
MIME = "text/plain"
STREAM_NOT_HELD = {
    "code": "review.stream_not_held",
    "detector": "gateway",
    "message": "the policy asks for review, and a stream cannot wait for it: send the request without stream",
}
_BOUNDARY = frozenset(" \t\r\n\u3000\u3001\u3002\uff01\uff1f")
"""Where a vetted stream may be cut: whitespace and CJK sentence punctuation."""


@dataclass
class ChatJob:
    messages: list[dict[str, str]]  # {"role", "content"}, roles already normalized
    max_tokens: int
    temperature: float
    seed: int
    stream: bool


@dataclass
class ChatOutcome:
    status: Status
    http_status: int
    mamori: dict[str, Any]
    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refusal_message: str | None = None


@dataclass
class Prescreened:
    decision: Decision
    findings: list[Finding]
    messages: list[dict[str, str]]  # redacted where the policy said so
    per_message: list[list[Finding]] = field(default_factory=list)  # the findings of each message


# ---------------------------------------------------------------- helpers


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def messages_sha256(messages: Sequence[Mapping[str, str]]) -> str:
    canonical = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return sha256_text(canonical)


def note_request(trace: Trace, job: ChatJob, *, model: str | None, user: str | None) -> None:
    """What the audit record says about the request: sizes and hashes, never the text."""
    trace.request.update(
        kind="chat",
        model=model,
        stream=job.stream,
        max_tokens=job.max_tokens,
        temperature=job.temperature,
        seed=job.seed,
        messages=len(job.messages),
        roles=[m["role"] for m in job.messages],
        messages_sha256=messages_sha256(job.messages),
        prompt_chars=sum(len(m["content"]) for m in job.messages),
        user_sha256=hashlib.sha256(user.encode()).hexdigest()[:32] if user else None,
    )


def text_generator(svc: Services) -> TextGenerator:
    generator = svc.text_generator
    if generator is None:  # the route checks first; this keeps the type narrow
        raise RuntimeError("no text generator is configured")
    return generator


def generator_info(svc: Services) -> dict[str, Any]:
    generator = text_generator(svc)
    return {"name": generator.name, "version": generator.version, "kind": "text"}


def _request_doc(trace: Trace, job: ChatJob) -> dict[str, Any]:
    return {
        "id": trace.request_id,
        "endpoint": trace.endpoint,
        "modality": "text",
        "stream": job.stream,
        "messages": len(job.messages),
        "prompt_chars": sum(len(m["content"]) for m in job.messages),
        "max_tokens": job.max_tokens,
    }


def _final_action(decision: Decision, *, hold: bool = False) -> str:
    """The action taken: an escalation holds a whole answer for review (`hold`); elsewhere it refuses."""
    if decision.action == "escalate" and hold:
        return "escalate"
    return "block" if decision.action in ("block", "escalate") else decision.action


# ---------------------------------------------------------------- stages


async def prescreen(svc: Services, trace: Trace, job: ChatJob) -> Prescreened:
    """Every system and user message through the text detectors, then one prescreen decision."""
    ctx = await detection_context(svc, trace, "prescreen")
    per_message: list[list[Finding]] = []
    for i, message in enumerate(job.messages):
        found: list[Finding] = []
        if message["role"] in SCREENED_ROLES and message["content"]:
            found = await run_text_detectors(svc, trace, message["content"], ctx)
        trace.findings += [{**f.to_dict(), "stage": "prescreen", "message": i} for f in found]
        per_message.append(found)
    findings = [f for group in per_message for f in group]
    decision = await decide(svc, trace, "prescreen", findings, _request_doc(trace, job))
    messages = job.messages
    entities = decision.to_dict()["obligations"].get("redact") or []
    if decision.action == "redact" or (decision.action == "escalate" and entities):
        # a redaction obligation also rides along with an escalation: the held answer is made without the PII

        def redact_all() -> list[dict[str, str]]:
            return [
                {**m, "content": redact_text(m["content"], per_message[i], entities)} if per_message[i] else m
                for i, m in enumerate(job.messages)
            ]

        messages = await asyncio.to_thread(redact_all)
        trace.request["prompt_redacted_for_generation"] = True
    return Prescreened(decision, findings, messages, per_message)


@dataclass
class RailVerdict:
    decision: Decision
    findings: list[Finding]
    view: str | None  # the text as it may be released (redacted where required); None when blocked
    redacted: tuple[str, ...] = ()  # the entity types `view` has replaced (the redaction obligation)


class OutputRails:
    """The text detectors at stage "output", then the policy; one call per window (or once).

    With `hold` (a whole answer) an escalation passes the text on, to be held for review; without
    it (a stream) an escalation stops the text like a block.
    """

    def __init__(self, svc: Services, trace: Trace, job: ChatJob, *, hold: bool = False) -> None:
        self.svc = svc
        self.trace = trace
        self.request_doc = _request_doc(trace, job)
        self.hold = hold
        self.checks = 0
        self._ctx: DetectionContext | None = None

    async def _context(self) -> DetectionContext:
        if self._ctx is None:
            base = await detection_context(self.svc, self.trace, "output")
            terms = [*base.resources.get("terms", []), *self.svc.settings.text_output_terms]
            self._ctx = DetectionContext(
                request_id=base.request_id,
                tenant=base.tenant,
                stage="output",
                resources={**base.resources, "terms": terms},
            )
        return self._ctx

    async def check(self, text: str, *, final: bool) -> RailVerdict:
        """Raises StageFault when a detector fails; a policy failure comes back as a system block."""
        ctx = await self._context()
        findings = await run_text_detectors(self.svc, self.trace, text, ctx)
        doc = {**self.request_doc, "window": self.checks, "final": final, "output_chars": len(text)}
        decision = await decide(self.svc, self.trace, "output", findings, doc, index=self.checks)
        self.checks += 1
        action = _final_action(decision, hold=self.hold)
        if action == "block":
            return RailVerdict(decision, findings, None)
        entities = decision.to_dict()["obligations"].get("redact")
        if entities:  # a redaction obligation also rides along with an escalation
            view = await asyncio.to_thread(redact_text, text, findings, entities)
            return RailVerdict(decision, findings, view, tuple(entities))
        return RailVerdict(decision, findings, text)


def _text_asset(
    *, status: str, released: str, generated: str, finish_reason: str | None, completion_tokens: int
) -> dict[str, Any]:
    return {
        "index": 0,
        "mime": "text/plain",
        "status": status,
        "sha256": sha256_text(released),
        "released_chars": len(released),
        "generated_sha256": sha256_text(generated),
        "generated_chars": len(generated),
        "finish_reason": finish_reason,
        "completion_tokens": completion_tokens,
    }


class _Ledger:
    """Decisions and findings of one request, and how it ends (mamori object, trace, request row)."""

    def __init__(self, svc: Services, trace: Trace, principal: Principal) -> None:
        self.svc = svc
        self.trace = trace
        self.principal = principal
        self.decisions: list[Decision] = []
        self.findings: list[Finding] = []
        self.notes: list[dict[str, Any]] = []  # reasons that come from the gateway, not the policy

    def mamori(self, status: str, action: str, escalation_id: str | None = None) -> dict[str, Any]:
        mamori: dict[str, Any] = {
            "request_id": self.trace.request_id,
            "status": status,
            "decision": action,
            "reasons": [*merge_reasons(self.decisions), *self.notes],
            "findings": summarize(self.findings),
            "manifest_ids": [],
            "policy_revision": policy_revision(self.svc),
        }
        if escalation_id is not None:
            mamori["escalation_id"] = escalation_id
            mamori["poll_url"] = f"/v1/requests/{self.trace.request_id}"
        return mamori

    def not_held(self) -> None:
        """An escalation that refuses (a stream, which cannot wait for a reviewer): say why."""
        if STREAM_NOT_HELD not in self.notes:
            self.notes.append(STREAM_NOT_HELD)
            self.trace.request["escalation_not_held"] = "stream"

    def fault(self, stage: str, fault: StageFault) -> None:
        self.decisions.append(system_decision(self.svc, self.trace, stage, fault))

    async def finish(
        self, status: Status, action: str, *, asset: NewAsset | None = None, escalation_id: str | None = None
    ) -> dict[str, Any]:
        mamori = self.mamori(status, action, escalation_id)
        self.trace.status, self.trace.decision = status, action
        self.trace.escalation_id = escalation_id
        await asyncio.to_thread(
            self.svc.requests.save,
            request_id=self.trace.request_id,
            tenant=self.principal.tenant,
            key_id=self.principal.key_id,
            endpoint=self.trace.endpoint,
            status=status,
            response_format="text",
            mamori=mamori,
            assets=[asset] if asset else [],
        )
        return mamori


def _refusal(mamori: dict[str, Any]) -> str:
    codes = ", ".join(r["code"] for r in mamori["reasons"]) or "policy"
    return f"Request refused by Mamori policy ({codes})."


def _start(svc: Services, trace: Trace) -> None:
    trace.detectors = svc.detector_versions()
    trace.generator = generator_info(svc)


async def screen_request(svc: Services, trace: Trace, principal: Principal, job: ChatJob) -> Prescreened | ChatOutcome:
    """The prescreen stage alone: a `Prescreened` to go on with, or the refusal (400) or fault (503)."""
    _start(svc, trace)
    ledger = _Ledger(svc, trace, principal)
    try:
        pre = await prescreen(svc, trace, job)
    except StageFault as fault:
        ledger.fault("prescreen", fault)
        mamori = await ledger.finish("refused", "block")
        return ChatOutcome("refused", 503, mamori, refusal_message=_refusal(mamori))
    ledger.decisions.append(pre.decision)
    ledger.findings += pre.findings
    if _final_action(pre.decision, hold=not job.stream) == "block":
        if pre.decision.action == "escalate":
            ledger.not_held()
        mamori = await ledger.finish("refused", "block")
        return ChatOutcome("refused", 400, mamori, refusal_message=_refusal(mamori))
    return pre


# ---------------------------------------------------------------- non-streaming


async def run_chat(svc: Services, trace: Trace, principal: Principal, job: ChatJob, pre: Prescreened) -> ChatOutcome:
    """Generate the whole answer, run the output rails once, decide: release, hold for review, or refuse."""
    ledger = _Ledger(svc, trace, principal)
    ledger.decisions.append(pre.decision)
    ledger.findings += pre.findings
    generator = text_generator(svc)

    def work() -> TextCompletion:
        return generator.complete(pre.messages, max_tokens=job.max_tokens, temperature=job.temperature, seed=job.seed)

    completion: TextCompletion | None = None
    try:
        completion = await _generate(svc, trace, work)
        verdict = await OutputRails(svc, trace, job, hold=True).check(completion.text, final=True)
    except StageFault as fault:
        ledger.fault("output", fault)
        generated = completion.text if completion else ""
        trace.assets = [
            _text_asset(status="refused", released="", generated=generated, finish_reason=None, completion_tokens=0)
        ]
        mamori = await ledger.finish("refused", "block")
        return ChatOutcome("refused", 503, mamori, refusal_message=_refusal(mamori))
    ledger.decisions.append(verdict.decision)
    ledger.findings += verdict.findings
    trace.findings += [{**f.to_dict(), "stage": "output"} for f in verdict.findings]
    if verdict.view is None:
        trace.assets = [
            _text_asset(
                status="refused",
                released="",
                generated=completion.text,
                finish_reason="content_filter",
                completion_tokens=completion.completion_tokens,
            )
        ]
        mamori = await ledger.finish("refused", "block")
        return ChatOutcome(
            "refused",
            400,
            mamori,
            refusal_message=_refusal(mamori),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
    if "escalate" in (pre.decision.action, verdict.decision.action):
        return await _hold(svc, trace, principal, ledger, job, pre, completion, verdict.view)
    action = "redact" if "redact" in (pre.decision.action, verdict.decision.action) else "allow"
    trace.assets = [
        _text_asset(
            status="released",
            released=verdict.view,
            generated=completion.text,
            finish_reason=completion.finish_reason,
            completion_tokens=completion.completion_tokens,
        )
    ]
    mamori = await ledger.finish("released", action)
    return ChatOutcome(
        "released",
        200,
        mamori,
        verdict.view,
        completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )


async def _hold(
    svc: Services,
    trace: Trace,
    principal: Principal,
    ledger: _Ledger,
    job: ChatJob,
    pre: Prescreened,
    completion: TextCompletion,
    text: str,
) -> ChatOutcome:
    """Keep the vetted text unsigned in the blob store and open the review item: 202.

    A failure on the way (blob store, queue) fails closed: 503, nothing held, nothing released.
    """
    escalating = [d for d in ledger.decisions if d.action == "escalate"]
    obligations: dict[str, Any] = {}
    for d in escalating:
        obligations.update(d.to_dict()["obligations"])
    asset_id = "asset_" + uuid.uuid4().hex
    held_entry = {
        "index": 0,
        "asset_id": asset_id,
        "mime": MIME,
        "status": "held",
        "held_sha256": sha256_text(text),
        "held_chars": len(text),
        "generated_sha256": sha256_text(completion.text),
        "generated_chars": len(completion.text),
        "finish_reason": completion.finish_reason,
        "completion_tokens": completion.completion_tokens,
    }
    try:
        digest = await asyncio.to_thread(svc.blobs.put, text.encode("utf-8"))
        masked = await asyncio.to_thread(_masked_messages, job.messages, pre.per_message)
        escalation = await asyncio.to_thread(
            open_escalation,
            svc,
            request_id=trace.request_id,
            principal=principal,
            reasons=merge_reasons(escalating),
            obligations=obligations,
            prompt_masked=masked,
        )
    except Exception as exc:
        trace.fault("review", "hold", exc)
        ledger.fault("output", StageFault("system.hold_error", "review", "holding the text for review failed"))
        trace.assets = [{**held_entry, "status": "refused"}]
        mamori = await ledger.finish("refused", "block")
        return ChatOutcome(
            "refused",
            503,
            mamori,
            refusal_message=_refusal(mamori),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
    trace.assets = [held_entry]
    asset = NewAsset(asset_id, 0, "held", MIME, job.seed, None, digest)
    mamori = await ledger.finish("held", "escalate", asset=asset, escalation_id=escalation.id)
    return ChatOutcome(
        "held",
        202,
        mamori,
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )


def _masked_messages(messages: Sequence[Mapping[str, str]], per_message: Sequence[Sequence[Finding]]) -> str:
    """The messages as a reviewer sees them: role and text, every PII span the prescreen found masked."""
    parts = []
    for i, message in enumerate(messages):
        found = per_message[i] if i < len(per_message) else []
        content = redact_text(message["content"], found) if found else message["content"]
        parts.append(f"{message['role']}: {content}")
    return "\n\n".join(parts)


async def _generate(
    svc: Services, trace: Trace, work: Callable[[], TextCompletion], stage: str = "generate"
) -> TextCompletion:
    start = time.perf_counter()
    try:
        return await in_pool(svc.generator_pool, work, svc.settings.generation_timeout_s)
    except TimeoutError as exc:
        trace.fault("text_generator", "generate", "timeout")
        raise StageFault("system.backend_timeout", "text_generator", "the text backend timed out") from exc
    except Exception as exc:
        trace.fault("text_generator", "generate", exc)
        raise StageFault("system.backend_error", "text_generator", "the text backend failed") from exc
    finally:
        elapsed = time.perf_counter() - start
        trace.add_timing(stage, elapsed)
        svc.metrics.stage_seconds.labels(stage).observe(elapsed)


# ---------------------------------------------------------------- image prompt expansion

EXPAND_INSTRUCTION = (
    "Rewrite the user's short instruction as one detailed prompt for an image generator: subject, setting, "
    "style, lighting. Answer with the prompt only."
)
EXPAND_MAX_TOKENS = 96


@dataclass
class Expansion:
    """The expanded prompt, or why there is none (a refusal at 400 or a fault at 503, with its mamori object)."""

    prompt: str | None
    http_status: int = 200
    mamori: dict[str, Any] = field(default_factory=dict)


async def expand_image_prompt(
    svc: Services, trace: Trace, principal: Principal, instruction: str, seed: int, max_chars: int
) -> Expansion:
    """Let the text model turn a short instruction into a full image prompt.

    The instruction is prescreened before the model sees it (and redacted where the policy says
    so); the expanded prompt is then screened again by the image path's own prescreen. The audit
    record notes both hashes; neither text is stored.
    """
    ledger = _Ledger(svc, trace, principal)
    messages = [{"role": "system", "content": EXPAND_INSTRUCTION}, {"role": "user", "content": instruction}]
    job = ChatJob(messages=messages, max_tokens=EXPAND_MAX_TOKENS, temperature=0.7, seed=seed, stream=False)
    generator = text_generator(svc)
    note: dict[str, Any] = {"generator": generator_info(svc), "instruction_sha256": sha256_text(instruction)}
    trace.request["prompt_expansion"] = note

    def refused(status: int) -> Expansion:
        trace.status, trace.decision = "refused", "block"
        return Expansion(None, status, ledger.mamori("refused", "block"))

    try:
        pre = await prescreen(svc, trace, job)
    except StageFault as fault:
        ledger.fault("prescreen", fault)
        return refused(503)
    ledger.decisions.append(pre.decision)
    ledger.findings += pre.findings
    if _final_action(pre.decision) == "block":
        return refused(400)

    def work() -> TextCompletion:
        return generator.complete(pre.messages, max_tokens=job.max_tokens, temperature=job.temperature, seed=seed)

    try:
        completion = await _generate(svc, trace, work, stage="expand_prompt")
    except StageFault as fault:
        ledger.fault("expand_prompt", fault)
        return refused(503)
    expanded = " ".join(completion.text.split())[:max_chars]
    if not expanded:
        trace.fault("text_generator", "expand_prompt", "empty")
        empty = StageFault("system.backend_error", "text_generator", "the prompt expansion came back empty")
        ledger.fault("expand_prompt", empty)
        return refused(503)
    note.update(expanded_sha256=sha256_text(expanded), expanded_chars=len(expanded))
    return Expansion(expanded)


# ---------------------------------------------------------------- streaming


@dataclass(frozen=True)
class Released:
    """Vetted text the client may have now."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last event: why the stream ended, token counts and the mamori object."""

    finish_reason: str  # stop, length or content_filter
    mamori: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class _StreamState:
    generated: str = ""
    sent: str = ""  # what the client has: generated[:released], redacted where required
    released: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str | None = None
    closed: bool = False
    verdicts: list[RailVerdict] = field(default_factory=list)


STREAM_HOLD_BACK_CHARS = 64
"""The most characters at the end of a stream's text held back because they may still become
personal data (`_release_end`): room for the longest number the output rails redact, written with
its separators (an IBAN: 34 characters in groups of four, 42 with spaces), or for a number and the
20 characters after it where a phone word still makes it a phone number. Past it the text is
released at word boundaries, and a redaction that then reaches back ends the stream
(`system.redaction_conflict`)."""
_AFTER_CONTEXT_CHARS = 20
"""How far after a number a word can still make it personal data: `detectors.pii_recognizers`
reads a phone word up to 20 characters after a phone-shaped number, a card word up to 16 after a
card number."""
_CONTEXT_DIGITS = 7
"""The fewest digits in a number that a word after it can make personal data (a phone number)."""
_WORD = re.compile(r"[^\s\u3001\u3002\uff01\uff1f]+")
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# what numbers are written with besides digits: "+1 (212) 555-0187", "〒100-0001", "０３－１２３４",
# dashes that NFKC leaves alone, and the invisible characters the PII detector drops
_NUMBER_MARKS = (
    frozenset("+-()[]./~#*〒＋－（）［］．／～＃＊\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff70")
    | INVISIBLE_CHARS
)
_EXTENSION_WORDS = frozenset({"x", "ext", "ext.", "extension"})


def _identifier_word(word: str) -> str | None:
    """How `word` may be part of an identifier that the output rails redact: "digits" (it holds one:
    "0187", "(212)", "tel:212", "０９０"), "marks" (only what numbers are written with: "+", "-",
    "〒"), "letters" (an extension word, or a group of an IBAN: up to four capitals and digits,
    "WEST"), "address" (an e-mail address or URL: it holds "@" or "://"), or None (a word of the
    sentence)."""
    if any(c.isdigit() for c in word):
        return "digits"
    if "@" in word or "://" in word:
        return "address"
    if all(c in _NUMBER_MARKS for c in word):
        return "marks"
    if word.lower() in _EXTENSION_WORDS or (len(word) <= 4 and word.isascii() and word.isalnum() and word.isupper()):
        return "letters"
    return None


def _identifier_runs(text: str, lo: int) -> list[list[tuple[int, int, str]]]:
    """The runs of identifier words (`_identifier_word`) in text[lo:] that only spaces join (no line
    break, no sentence mark): each a list of (start, end, kind), leading "letters" words left out."""
    runs: list[list[tuple[int, int, str]]] = []
    run: list[tuple[int, int, str]] = []
    last = lo
    for m in _WORD.finditer(text, lo):
        if run and any(c in _LINE_BREAKS or not c.isspace() for c in text[last : m.start()]):  # a line break, 。, 、
            runs.append(run)
            run = []
        kind = _identifier_word(m.group())
        if kind is None and run and m.end() == len(text):
            kind = "partial"  # a word still being written may yet be one ("john" of "john@example.org")
        if kind is None:
            if run:
                runs.append(run)
            run = []
        elif run or kind != "letters":
            run.append((m.start(), m.end(), kind))
        last = m.end()
    if run:
        runs.append(run)
    return runs


def _held_back(text: str, lo: int) -> int:
    """Where the part of text[lo:] that may still become (part of) a redaction begins (len(text):
    nowhere).

    That is a run of identifier words that reaches the end of the text: more digits, an extension
    or the rest of an IBAN may follow ("call them 212 555 " waits for "0187"), or another address
    that the redaction would merge with this one ("<EMAIL_ADDRESS> <EMAIL_ADDRESS>" is written as
    one). Or a run with at least `_CONTEXT_DIGITS` digits and fewer than `_AFTER_CONTEXT_CHARS`
    characters after it: a phone or card word may still follow.
    """
    n = len(text)
    for run in _identifier_runs(text, lo):
        reaches_end = not any(c in _LINE_BREAKS or not c.isspace() for c in text[run[-1][1] :])
        digit_words = [text[start:end] for start, end, kind in run if kind == "digits"]
        digits = sum(c.isdigit() for word in digit_words for c in word)
        last_digits = max((end for _, end, kind in run if kind == "digits"), default=0)
        if reaches_end or (digits >= _CONTEXT_DIGITS and last_digits + _AFTER_CONTEXT_CHARS > n):
            return run[0][0]
    return n


def _cut_before(text: str, pos: int, floor: int) -> int:
    """The last place at or before `pos`, and not before `floor`, where `text` may be cut: just
    after a boundary (whitespace or CJK sentence punctuation)."""
    for i in range(pos, floor, -1):
        if text[i - 1] in _BOUNDARY:
            return i
    return floor


def _cut_after(text: str, pos: int) -> int:
    """The first place at or after `pos` where `text` may be cut (its end when there is none)."""
    for i in range(pos, len(text)):
        if i == 0 or text[i - 1] in _BOUNDARY:
            return i
    return len(text)


def _release_end(text: str, start: int) -> int:
    """How much of `text` (all generated so far; text[:start] already released) may be released now.

    Up to its last boundary (a trailing partial word waits, so half a term or half an e-mail address
    is not sent on its own), and not into a trailing stretch that may still become personal data
    (`_held_back`: "call them 212 555 " waits for "0187"). That hold is bounded: the last
    `STREAM_HOLD_BACK_CHARS` characters at most; before them the text is released at its word
    boundaries all the same, so a stream of digits does not stall.
    """
    n = len(text)
    end = _cut_before(text, n, start)
    lo = max(start, n - STREAM_HOLD_BACK_CHARS)
    held = _held_back(text, lo)
    if held < end:
        end = _cut_before(text, held, start)
        if end < lo:  # the held stretch begins mid-word at the bound: cut after that word
            end = min(_cut_after(text, lo), _cut_before(text, n, start))
    return end


def _redacted_spans(verdict: RailVerdict) -> list[tuple[int, int]]:
    """The spans of the text that `verdict.view` replaces (the findings `redact_text` acts on)."""
    wanted = set(verdict.redacted)
    return [
        f.span
        for f in verdict.findings
        if f.category == "pii" and f.span is not None and f.evidence.get("entity_type") in wanted
    ]


def _outside(pos: int, spans: Sequence[tuple[int, int]]) -> int:
    """`pos`, moved back to the start of any span it falls inside (a redaction is released whole)."""
    moved = True
    while moved:
        moved = False
        for start, end in spans:
            if start < pos < end:
                pos, moved = start, True
    return pos


def _view_upto(text: str, end: int, verdict: RailVerdict) -> str:
    """text[:end] as `verdict.view` shows it (`end` outside the redacted spans)."""
    if not verdict.redacted:
        return text[:end]
    within = [f for f in verdict.findings if f.span is not None and f.span[1] <= end]
    return redact_text(text[:end], within, verdict.redacted)


async def stream_chat(
    svc: Services,
    trace: Trace,
    principal: Principal,
    job: ChatJob,
    pre: Prescreened,
) -> AsyncGenerator[Released | Finished, None]:
    """Released pieces of vetted text, then one `Finished`.

    The audit record is written once: before `Finished` is yielded (so a client that has read the
    last chunk finds it), or, when the stream ends any other way (the client goes away and the
    response task is cancelled, or the caller stops iterating), on the way out, shielded from
    cancellation. Either way the generation thread is told to stop.
    """
    ledger = _Ledger(svc, trace, principal)
    ledger.decisions.append(pre.decision)
    ledger.findings += pre.findings
    generator = text_generator(svc)
    rails = OutputRails(svc, trace, job)
    window = svc.settings.stream_window_tokens
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()
    state = _StreamState()
    started = time.perf_counter()

    def post(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone: nobody listens any more
            cancel.set()

    def pump() -> None:
        if cancel.is_set():
            return
        try:
            stream = generator.stream(
                pre.messages, max_tokens=job.max_tokens, temperature=job.temperature, seed=job.seed
            )
        except Exception as exc:
            post("error", exc)
            return
        with stream:
            try:
                for piece in stream:
                    if cancel.is_set():
                        return
                    post("piece", piece)
            except Exception as exc:
                post("error", exc)
                return
            post("end", (stream.finish_reason or "stop", stream.prompt_tokens))

    async def vet(final: bool) -> str | None:
        """Rails on all text so far; the newly releasable part, or None when the stream must stop."""
        verdict = await rails.check(state.generated, final=final)
        state.verdicts.append(verdict)
        ledger.decisions.append(verdict.decision)
        if verdict.view is None:
            if verdict.decision.action == "escalate":
                ledger.not_held()
            return None
        text, view, end = state.generated, state.sent, state.released
        spans = _redacted_spans(verdict)
        # A redaction that reaches into text already sent, or changes it, is a conflict. One that
        # changes its mind about text still held back (twelve digits a My Number, then with four more
        # a card number) is not.
        conflict = any(start < state.released < stop for start, stop in spans)
        if not conflict:
            end = _outside(len(text) if final else _release_end(text, state.released), spans)
            if end == len(text):
                view = verdict.view
            elif end > state.released:
                view = await asyncio.to_thread(_view_upto, text, end, verdict)
            conflict = not view.startswith(state.sent)
        if conflict:
            # stop rather than contradict what the client has
            trace.fault("output_rails", "stream", "redaction_conflict")
            ledger.fault(
                "output",
                StageFault("system.redaction_conflict", "output_rails", "a redaction would change released text"),
            )
            return None
        piece = view[len(state.sent) :]
        state.sent, state.released = view, end
        return piece

    async def conclude(status: Status, action: str, finish_reason: str | None) -> Finished:
        state.finish_reason = finish_reason
        state.closed = True
        cancel.set()
        with anyio.CancelScope(shield=True):
            mamori = await _close_stream(svc, trace, ledger, state, status, action, started)
        return Finished(finish_reason or "stop", mamori, state.prompt_tokens, state.tokens)

    svc.generator_pool.submit(pump)
    deadline = loop.time() + svc.settings.generation_timeout_s
    pending = 0
    finish_reason: str | None = None
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError as exc:
                trace.fault("text_generator", "generate", "timeout")
                raise StageFault("system.backend_timeout", "text_generator", "the text backend timed out") from exc
            if kind == "error":
                trace.fault("text_generator", "generate", value)
                raise StageFault("system.backend_error", "text_generator", "the text backend failed")
            final = kind == "end"
            if kind == "piece":
                state.generated += value
                state.tokens += 1
                pending += 1
                if pending < window:
                    continue
            else:
                finish_reason, state.prompt_tokens = value
            pending = 0
            piece = await vet(final)
            if piece is None:
                yield await conclude("refused", "block", "content_filter")
                return
            if piece:
                yield Released(piece)
            if final:
                redacted = pre.decision.action == "redact" or any(v.decision.action == "redact" for v in state.verdicts)
                yield await conclude("released", "redact" if redacted else "allow", finish_reason)
                return
    except StageFault as fault:
        ledger.fault("output", fault)
        yield await conclude("refused", "block", "content_filter")
    finally:
        cancel.set()
        if not state.closed:  # the client went away (the response task is cancelled) or the caller stopped
            trace.fault("client", "stream", "interrupted")
            trace.request["stream_interrupted"] = True
            redacted = any(v.decision.action == "redact" for v in state.verdicts)
            status: Status = "released" if state.sent else "refused"  # what left was vetted and allowed
            with anyio.CancelScope(shield=True):
                await _close_stream(svc, trace, ledger, state, status, "redact" if redacted else "allow", started)


async def _close_stream(
    svc: Services,
    trace: Trace,
    ledger: _Ledger,
    state: _StreamState,
    status: Status,
    action: str,
    started: float,
) -> dict[str, Any]:
    """Record how the stream ended: findings, the text asset (hashes only), the request row, the audit record."""
    state.closed = True
    elapsed = time.perf_counter() - started
    trace.add_timing("generate_and_stream", elapsed)
    svc.metrics.stage_seconds.labels("generate_and_stream").observe(elapsed)
    if state.verdicts:
        last = state.verdicts[-1]  # the rails ran on all text so far: the last findings cover it all
        ledger.findings += last.findings
        trace.findings += [{**f.to_dict(), "stage": "output"} for f in last.findings]
    complete = state.finish_reason in ("stop", "length")
    asset_status = "released" if complete else ("partial" if state.sent else "refused")
    trace.request["released_chars"] = len(state.sent)
    trace.http_status = 200
    trace.assets = [
        _text_asset(
            status=asset_status,
            released=state.sent,
            generated=state.generated,
            finish_reason=state.finish_reason,
            completion_tokens=state.tokens,
        )
    ]
    mamori = ledger.mamori(status, action)
    try:
        mamori = await ledger.finish(status, action)
    except Exception as exc:  # the row is a convenience for polling; the audit record is what counts
        trace.fault("requests", "save", exc)
    try:
        await asyncio.to_thread(write_audit, svc, trace)
    except Exception:
        # no record, no release: withdraw the stored request; the stream then breaks off without [DONE]
        await asyncio.to_thread(_withdraw, svc, trace.request_id)
        raise
    return mamori


def _withdraw(svc: Services, request_id: str) -> None:
    with contextlib.suppress(Exception):  # the database may be what failed
        svc.requests.withdraw(request_id, code="system.audit_error", message="the audit record could not be written")


def write_audit(svc: Services, trace: Trace) -> None:
    """The one `request` record of a streamed request (the middleware defers to this for streams)."""
    if trace.audited:
        return
    tenant = trace.principal.tenant if trace.principal else None
    try:
        svc.audit.append("request", trace.audit_payload(), request_id=trace.request_id, tenant=tenant)
        trace.audited = True
    finally:
        svc.metrics.requests.labels(trace.endpoint, trace.status or "refused").inc()
