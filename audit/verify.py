"""Verification of the audit chain.

:func:`verify_chain` streams ``audit_records`` in ``seq`` order in one read transaction and
checks, for every record, that the stored payload matches its digest, that the record's hash
matches its fields, and that it links to the record before it. Memory stays bounded (a window of
recent hashes is kept to tell an insertion or a reordering from a deletion), so it scales to
millions of rows.

A valid chain proves that nothing *before the newest record* was changed. Someone with write
access could still drop or rewrite the newest records. Signed checkpoints (:mod:`audit.checkpoints`)
close most of that gap: every checkpoint must verify with a trusted key, follow the one before,
and match the record at its ``head_seq``; a log that ends before the newest checkpoint's head is
reported as ``truncated``. Records after the newest checkpoint are counted as ``unsealed``: for
those, publish ``VerifyReport.head_hash`` (or an older ``(seq, record_hash)``) somewhere else and
pass it back as ``anchor``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, type_coerce
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import NullType

from audit.checkpoints import Checkpoint, check_checkpoint_sequence, database_keys, load_checkpoints
from audit.crypto import KeyFileError
from audit.models import AuditRecordRow
from audit.store import GENESIS_HASH, compute_record_hash

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify_chain"]

ProblemKind = Literal[
    "payload_changed",
    "record_changed",
    "deleted",
    "inserted",
    "reordered",
    "unreadable",
    "truncated",
    "checkpoint_invalid",
    "checkpoint_missing",
    "checkpoint_mismatch",
]

_BATCH = 5_000
_WINDOW = 4_096  # recent record hashes remembered to classify broken links


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    """``ok`` is True only if every record was read and checked and no problem was found.

    ``head_hash`` is the stored hash of the last record read (``GENESIS_HASH`` for an empty chain).
    ``problems`` is capped at ``max_problems``; ``problems_total`` counts them all.
    ``checkpoints``: how many signed checkpoints were checked; ``sealed_seq``: the head of the
    newest one (0 if none); ``unsealed``: records after it, which no signature covers yet.
    ``keys_source``: where the public keys came from ("given" or "database").
    """

    ok: bool
    checked: int
    head_hash: str
    problems: list[Problem]
    problems_total: int = field(default=0)
    checkpoints: int = 0
    sealed_seq: int = 0
    unsealed: int = 0
    keys_source: str = "given"


class _Collector:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: list[Problem] = []
        self.total = 0

    def add(self, seq: int | None, kind: ProblemKind, message: str) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(Problem(seq, kind, message))


class _RawValue(NullType):
    """No result processing: hand over what the driver returned."""

    cache_ok = True


_COLUMNS = (
    AuditRecordRow.seq,
    AuditRecordRow.id,
    AuditRecordRow.event_type,
    AuditRecordRow.request_id,
    AuditRecordRow.tenant,
    # raw driver value, decoded per row by _timestamp() so one bad value is reported with its seq
    type_coerce(AuditRecordRow.created_at, _RawValue()).label("created_at"),
    AuditRecordRow.payload_json,
    AuditRecordRow.payload_digest,
    AuditRecordRow.prev_hash,
    AuditRecordRow.record_hash,
)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite stores naive UTC text
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"created_at is {type(value).__name__}, not a timestamp")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _recomputed_hash(row: Any) -> str:
    return compute_record_hash(
        seq=row.seq,
        id=row.id,
        event_type=row.event_type,
        request_id=row.request_id,
        tenant=row.tenant,
        created_at=_timestamp(row.created_at),
        payload_digest=row.payload_digest,
        prev_hash=row.prev_hash,
    )


def _missing_predecessor(seq: int, prev_hash: str) -> str:
    return f"the predecessor of record {seq} (hash {prev_hash[:12]}…) is not in the chain"


def _load_checkpoints(
    sessions: sessionmaker[Session],
    keys: Mapping[str, Ed25519PublicKey] | None,
    problems: _Collector,
) -> tuple[list[Checkpoint], str] | str:
    """The checkpoints (checked for signatures and links) and the keys' source, or why they are unreadable."""
    try:
        with sessions() as session:
            checkpoints = load_checkpoints(session)
            source = "given"
            if keys is None:
                keys, source = database_keys(session), "database"
    except (SQLAlchemyError, ValueError, TypeError, KeyFileError, OSError) as exc:
        return f"audit checkpoints could not be read: {exc!s:.500}"
    for issue in check_checkpoint_sequence(checkpoints, keys):
        kind: ProblemKind = "checkpoint_missing" if issue.kind == "checkpoint_missing" else "checkpoint_invalid"
        cp = next((c for c in checkpoints if c.number == issue.number), None)
        problems.add(cp.head_seq if cp else None, kind, issue.message)
    return checkpoints, source


def verify_chain(
    sessions: sessionmaker[Session],
    *,
    anchor: tuple[int, str] | None = None,
    max_problems: int = 1_000,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> VerifyReport:
    """Check the whole chain and its signed checkpoints; see the module docstring.

    ``anchor``: a ``(seq, record_hash)`` published earlier; the chain must still contain it.
    ``keys``: trusted checkpoint public keys by key id. None: the keys recorded in the database
    are used (which proves less: someone who can write the database can add a key there).
    Database errors never raise: they end the check with an ``unreadable`` problem and ok=False.
    """
    problems = _Collector(max_problems)
    loaded = _load_checkpoints(sessions, keys, problems)
    checkpoints, keys_source = loaded if not isinstance(loaded, str) else ([], "given")
    by_head: dict[int, Checkpoint] = {cp.head_seq: cp for cp in checkpoints}
    last_seq_read = 0
    checked = 0
    expected_seq = 1
    prev_hash = GENESIS_HASH  # stored hash of the previous record read
    prev_seq: int | None = None
    before_prev_seq: int | None = None
    recent: OrderedDict[str, int] = OrderedDict()  # stored record_hash -> seq, newest last
    dangling: dict[str, int] = {}  # prev_hash pointing at no record seen yet -> referring seq
    anchor_seen = False
    read_all = False

    try:
        with sessions() as session:
            stream = session.execute(select(*_COLUMNS).order_by(AuditRecordRow.seq).execution_options(yield_per=_BATCH))
            for row in stream:
                checked += 1
                seq = row.seq
                record_hash = row.record_hash

                # 1. the payload still matches its digest (a NULL payload was deleted for retention)
                if row.payload_json is not None:
                    try:
                        digest = hashlib.sha256(row.payload_json.encode("utf-8")).hexdigest()
                    except (AttributeError, UnicodeError) as exc:
                        problems.add(seq, "unreadable", f"payload cannot be read: {exc}")
                    else:
                        if digest != row.payload_digest:
                            problems.add(seq, "payload_changed", "payload does not match its digest")

                # 2. the record's own hash matches its fields
                try:
                    recomputed = _recomputed_hash(row)
                except (TypeError, ValueError, AttributeError) as exc:
                    problems.add(seq, "unreadable", f"record fields cannot be hashed: {exc}")
                else:
                    if recomputed != record_hash:
                        problems.add(seq, "record_changed", "record does not match its hash")

                # 3. it links to the record before it
                if seq > expected_seq:
                    first, last = expected_seq, seq - 1
                    span = f"record {first}" if first == last else f"records {first}-{last}"
                    problems.add(first, "deleted", f"{span} missing before record {seq}")
                elif row.prev_hash != prev_hash:
                    where = recent.get(row.prev_hash)
                    if where is not None and where == before_prev_seq:
                        problems.add(
                            prev_seq,
                            "inserted",
                            f"record {prev_seq} does not belong between records {where} and {seq}",
                        )
                    elif where is not None:
                        problems.add(seq, "reordered", f"record {seq} follows record {where}, not {prev_seq}")
                    else:
                        dangling[row.prev_hash] = seq
                        if len(dangling) > _WINDOW:  # too old to be resolved by a reordering
                            lost, referrer = next(iter(dangling.items()))
                            del dangling[lost]
                            problems.add(referrer, "deleted", _missing_predecessor(referrer, lost))
                if record_hash in dangling:
                    referrer = dangling.pop(record_hash)
                    problems.add(seq, "reordered", f"record {seq} is the predecessor of record {referrer}")

                checkpoint = by_head.get(seq)
                if checkpoint is not None and checkpoint.head_hash != record_hash:
                    problems.add(
                        seq,
                        "checkpoint_mismatch",
                        f"record {seq} differs from the head signed by checkpoint {checkpoint.number}",
                    )
                last_seq_read = max(last_seq_read, seq)

                if anchor is not None and seq == anchor[0]:
                    anchor_seen = True
                    if record_hash != anchor[1]:
                        problems.add(seq, "record_changed", "record differs from the anchored hash")

                recent[record_hash] = seq
                if len(recent) > _WINDOW:
                    recent.popitem(last=False)
                before_prev_seq, prev_seq = prev_seq, seq
                prev_hash = record_hash
                expected_seq = seq + 1
            read_all = True
    except (SQLAlchemyError, ValueError, TypeError, UnicodeError, OSError) as exc:
        after = f" after record {prev_seq}" if prev_seq is not None else ""
        problems.add(None, "unreadable", f"audit chain could not be read{after}: {exc!s:.500}")

    if read_all and isinstance(loaded, str):  # reported once: an unreadable database says so below
        problems.add(None, "unreadable", loaded)
    if read_all:
        for missing, referrer in sorted(dangling.items(), key=lambda item: item[1]):
            problems.add(referrer, "deleted", _missing_predecessor(referrer, missing))
        if anchor is not None and not anchor_seen:
            problems.add(anchor[0], "deleted", f"anchored record {anchor[0]} is missing")
        if checkpoints and checkpoints[-1].head_seq > last_seq_read:
            newest = checkpoints[-1]
            problems.add(
                last_seq_read + 1,
                "truncated",
                f"the log ends at record {last_seq_read} but checkpoint {newest.number} signed records up to "
                f"{newest.head_seq}: records {last_seq_read + 1}-{newest.head_seq} are missing",
            )

    sealed_seq = max((cp.head_seq for cp in checkpoints), default=0)

    ordered = sorted(problems.items, key=lambda p: (p.seq is None, p.seq or 0))
    return VerifyReport(
        ok=read_all and problems.total == 0,
        checked=checked,
        head_hash=prev_hash,
        problems=ordered,
        problems_total=problems.total,
        checkpoints=len(checkpoints),
        sealed_seq=sealed_seq,
        unsealed=max(0, last_seq_read - sealed_seq),
        keys_source=keys_source,
    )
