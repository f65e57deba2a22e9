"""Evidence export: a self-contained zip that proves a range of audit records, and its offline check.

Layout of ``FILE.zip`` (format ``mamori.audit.export.v1``)::

    README.md              how to verify by hand
    manifest.json          filters, ranges, counts and the SHA-256 of every other file
    manifest.sig.json      Ed25519 signature over manifest.json (key id + base64 signature)
    records.jsonl          the selected records, one JSON object a line, oldest first
    records.csv            the same records as a table (payload as canonical JSON text)
    chain.jsonl            {seq, prev_hash, entry_digest, record_hash} for every seq from the first
                           selected record to the checkpoint that covers the last one
    checkpoints.jsonl      the signed checkpoints inside that range
    keys/<key id>.pem      the public keys named by the checkpoints and the manifest signature
    assets/<sha256>.png    released assets named by the records (with .manifest.json: their C2PA manifest)
    policy/revisions.json  the policy bundle revisions the records name (files under policy/<revision>/)

The chain proof covers *every* record in the range, also those outside the filter (another tenant,
another time), but only by their entry digest: nothing about them is revealed, and the links still
prove that no record was added, removed or changed between the first selected record and a signed
checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import BlobStore
from audit.canonical import canonical_json, sha256_hex
from audit.checkpoint_models import AuditCheckpointRow
from audit.checkpoints import Checkpoint, check_checkpoint_sequence, database_keys
from audit.crypto import KeyFileError, SigningKey, public_key_from_pem, verify_signature
from audit.models import AuditRecordRow
from audit.store import (
    GENESIS_HASH,
    AuditRecord,
    AuditStore,
    asset_entries,
    compute_entry_digest,
    compute_link_hash,
    format_timestamp,
)

__all__ = [
    "EXPORT_FORMAT",
    "ExportReport",
    "ExportSummary",
    "ManifestReader",
    "PolicyBundle",
    "verify_export",
    "write_export",
]

EXPORT_FORMAT = "mamori.audit.export.v1"
# (asset bytes, media type, its sidecar manifest store or None) -> the manifest as JSON, or None
ManifestReader = Callable[[bytes, str, bytes | None], dict[str, Any] | None]
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CSV_COLUMNS = (
    "seq",
    "id",
    "event_type",
    "request_id",
    "tenant",
    "created_at",
    "payload_deleted",
    "payload_digest",
    "prev_hash",
    "record_hash",
    "payload",
)
_MIME_EXT = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "video/mp4": "mp4",
    "model/gltf-binary": "glb",
}


def _sniff_mime(blob: bytes) -> str:
    """The asset's type from its first bytes, for records that do not name it (older image records)."""
    if blob.startswith(b"\x89PNG"):
        return "image/png"
    if blob.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if blob[:4] == b"RIFF" and blob[8:12] == b"WAVE":
        return "audio/wav"
    if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return "image/webp"
    if blob.startswith(b"ID3") or blob[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if blob[4:8] == b"ftyp":
        return "video/mp4"
    if blob.startswith(b"glTF"):
        return "model/gltf-binary"
    return "image/png"


@dataclass(frozen=True)
class PolicyBundle:
    """The policy bundle in force now: its revision and the folder it was read from."""

    revision: str
    root: Path


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    records: int
    first_seq: int | None
    last_seq: int | None
    chain_to_seq: int | None
    checkpoints: int
    assets: int
    assets_missing: list[str]
    revisions: list[str]


def _key_file(key_id: str) -> str:
    return f"keys/{key_id.replace(':', '-')}.pem"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:100] or "_"


def _revisions(payload: Mapping[str, Any] | None) -> set[str]:
    found: set[str] = set()
    if not payload:
        return found
    for decision in payload.get("decisions") or ():
        if isinstance(decision, dict) and isinstance(decision.get("revision"), str):
            found.add(decision["revision"])
    for key in ("policy_revision", "revision"):
        if isinstance(payload.get(key), str):
            found.add(payload[key])
    return found


class _Zip:
    """A zip being written, remembering each member's SHA-256 for the manifest."""

    def __init__(self, handle: zipfile.ZipFile) -> None:
        self.handle = handle
        self.digests: dict[str, str] = {}

    def add(self, name: str, data: bytes) -> None:
        self.digests[name] = hashlib.sha256(data).hexdigest()
        self.handle.writestr(name, data)

    def add_file(self, name: str, path: Path) -> None:
        digest = hashlib.sha256()
        with path.open("rb") as source, self.handle.open(name, "w", force_zip64=True) as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        self.digests[name] = digest.hexdigest()


README = """# Mamori audit evidence export

This archive proves the audit records in `records.jsonl` (also `records.csv`) were written in
this order by a Mamori gateway and have not been changed since. Check it with
`mamori audit verify-export FILE.zip --trusted-key KEY.pem`, or by hand:

1. **Files.** `manifest.json` lists the SHA-256 of every other file. `manifest.sig.json` holds an
   Ed25519 signature (base64) over the exact bytes of `manifest.json`, by the key `key_id`.
2. **Keys.** `keys/*.pem` are the gateway's public keys. A key id is `ed25519:` followed by the
   first 16 hex digits of SHA-256 over the 32 raw public-key bytes. Compare the key ids with the
   ones the operator published: keys inside the archive alone prove nothing.
3. **Records.** For every line of `records.jsonl`:
   `payload_digest = SHA-256(JCS(payload))` unless `payload` is null (deleted for retention; the
   digest remains), where JCS is RFC 8785 JSON canonicalization;
   `entry_digest = SHA-256(JCS({id, event_type, request_id, tenant, created_at, payload_digest}))`;
   `record_hash = SHA-256(JCS({seq, prev_hash, entry_digest}))`, all hashes lower-case hex.
4. **Chain.** `chain.jsonl` has one line per seq, without gaps, from the first exported record to
   the last checkpoint: each line's `record_hash` must equal `SHA-256(JCS({seq, prev_hash,
   entry_digest}))` and each `prev_hash` the `record_hash` of the line before. The first
   `prev_hash` is `manifest.json` `chain.start_prev_hash` (64 zeros at the start of the log).
   Every exported record must appear there with the same hashes. Lines of records that were not
   exported (other tenants, other times) show only their digests.
5. **Checkpoints.** Each line of `checkpoints.jsonl` is signed: the signature covers
   `JCS({type, number, head_seq, head_hash, created_at, key_id, prev_digest})`; `head_hash` must
   equal the chain's `record_hash` at `head_seq`; the last line must sign the last chain line;
   checkpoint numbers run without gaps and each `prev_digest` is SHA-256 of the previous one's
   signed bytes.
6. **Assets.** `assets/<sha256>.<ext>` hash to their name and are named by an exported record
   (field `assets[].sha256`). `<sha256>.manifest.json` is the asset's C2PA manifest store as read
   by the gateway; its `active_manifest` equals the record's `assets[].manifest_id`.
7. **Policy.** `policy/revisions.json` lists the policy bundle revisions the records name;
   `policy/<revision>/` holds the bundle's files when the gateway still had that revision.
"""


def write_export(
    out: Path,
    *,
    store: AuditStore,
    sessions: sessionmaker[Session],
    start: datetime | None = None,
    end: datetime | None = None,
    tenant: str | None = None,
    key: SigningKey | None = None,
    blobs: BlobStore | None = None,
    manifest_reader: ManifestReader | None = None,
    bundle: PolicyBundle | None = None,
) -> ExportSummary:
    """Write the evidence zip for records with ``start <= created_at < end`` (and of ``tenant``).

    With ``key``, the current head is checkpointed first (if the store can sign) so the whole range
    is covered by a signature, and the manifest is signed.
    """
    if store.checkpointer is not None:
        store.checkpoint()
    with sessions() as session:
        query = select(func.min(AuditRecordRow.seq), func.max(AuditRecordRow.seq))
        if start is not None:
            query = query.where(AuditRecordRow.created_at >= start)
        if end is not None:
            query = query.where(AuditRecordRow.created_at < end)
        if tenant is not None:
            query = query.where(AuditRecordRow.tenant == tenant)
        first_seq, last_seq = session.execute(query).one()
        chain_to: int | None = None
        checkpoints: list[Checkpoint] = []
        if first_seq is not None:
            covering = session.scalar(
                select(func.min(AuditCheckpointRow.head_seq)).where(AuditCheckpointRow.head_seq >= last_seq)
            )
            chain_to = covering if covering is not None else last_seq
            checkpoints = [
                Checkpoint.from_row(row)
                for row in session.scalars(
                    select(AuditCheckpointRow)
                    .where(AuditCheckpointRow.head_seq >= first_seq, AuditCheckpointRow.head_seq <= chain_to)
                    .order_by(AuditCheckpointRow.number)
                )
            ]
        known_keys = database_keys(session)
        start_prev = GENESIS_HASH
        if first_seq is not None:
            start_prev = session.scalar(select(AuditRecordRow.prev_hash).where(AuditRecordRow.seq == first_seq)) or ""

    def selected(record: AuditRecord) -> bool:
        if tenant is not None and record.tenant != tenant:
            return False
        if start is not None and record.created_at < start:
            return False
        return not (end is not None and record.created_at >= end)

    def rows() -> Iterator[AuditRecord]:
        if first_seq is None or chain_to is None:
            return
        query = (
            select(AuditRecordRow)
            .where(AuditRecordRow.seq >= first_seq, AuditRecordRow.seq <= chain_to)
            .order_by(AuditRecordRow.seq)
            .execution_options(yield_per=5_000)
        )
        with sessions() as session:
            for row in session.scalars(query):
                yield AuditRecord.from_row(row)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    revisions: dict[str, dict[str, Any]] = {}
    wanted_assets: dict[str, dict[str, Any]] = {}
    count = 0

    with (
        tempfile.TemporaryDirectory(prefix="mamori-export-") as work,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as handle,
    ):
        archive = _Zip(handle)
        archive.add("README.md", README.encode("utf-8"))
        chain_path, records_path, csv_path = (Path(work) / n for n in ("chain", "records", "csv"))
        with (
            chain_path.open("wb") as chain_out,
            records_path.open("wb") as records_out,
            csv_path.open("w", encoding="utf-8", newline="") as csv_out,
        ):
            csv_writer = csv.writer(csv_out, lineterminator="\n")
            csv_writer.writerow(_CSV_COLUMNS)
            for record in rows():
                link = {
                    "seq": record.seq,
                    "prev_hash": record.prev_hash,
                    "entry_digest": record.entry_digest,
                    "record_hash": record.record_hash,
                }
                chain_out.write(canonical_json(link) + b"\n")
                if not selected(record):
                    continue
                count += 1
                fields = record.to_dict()
                records_out.write(canonical_json(fields) + b"\n")
                payload_text = "" if record.payload is None else canonical_json(record.payload).decode("utf-8")
                csv_writer.writerow([*(fields[c] for c in _CSV_COLUMNS[:-1]), payload_text])
                for revision in _revisions(record.payload):
                    info = revisions.setdefault(revision, {"records": 0, "first_seq": record.seq})
                    info["records"] += 1
                    info["last_seq"] = record.seq
                for asset in asset_entries(record):
                    digest = asset.get("sha256")
                    if isinstance(digest, str) and _HEX64.fullmatch(digest):
                        wanted_assets.setdefault(digest, {"seq": record.seq, **asset})
        archive.add_file("records.jsonl", records_path)
        archive.add_file("records.csv", csv_path)
        archive.add_file("chain.jsonl", chain_path)
        archive.add("checkpoints.jsonl", b"".join(canonical_json(cp.to_dict()) + b"\n" for cp in checkpoints))

        key_ids = {cp.key_id for cp in checkpoints} | ({key.key_id} if key else set())
        for key_id in sorted(key_ids):
            if key is not None and key_id == key.key_id:
                archive.add(_key_file(key_id), key.public_pem())
            elif key_id in known_keys:
                pem = known_keys[key_id].public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                archive.add(_key_file(key_id), pem)

        missing: list[str] = []
        for digest, entry in sorted(wanted_assets.items()):
            if blobs is None:
                missing.append(digest)
                continue
            try:
                blob = blobs.get(digest)
            except (KeyError, ValueError, OSError):
                missing.append(digest)
                continue
            mime = str(entry.get("mime") or _sniff_mime(blob))
            archive.add(f"assets/{digest}.{_MIME_EXT.get(mime, 'bin')}", blob)
            sidecar: bytes | None = None
            sidecar_digest = entry.get("manifest_sha256")
            if entry.get("manifest_binding") == "sidecar" and isinstance(sidecar_digest, str):
                # a format C2PA cannot embed into (GLB): its manifest store travels beside it
                try:
                    sidecar = blobs.get(sidecar_digest)
                except (KeyError, ValueError, OSError):
                    missing.append(sidecar_digest)
                else:
                    archive.add(f"assets/{digest}.c2pa", sidecar)
            if manifest_reader is not None:
                manifest: dict[str, Any] | None
                try:
                    manifest = manifest_reader(blob, mime, sidecar)
                except Exception as exc:  # a manifest that cannot be read is noted, not fatal
                    manifest = {"error": f"cannot read the C2PA manifest: {exc}"}
                if manifest is not None:
                    archive.add(f"assets/{digest}.manifest.json", json.dumps(manifest, indent=2).encode("utf-8"))

        for revision, info in revisions.items():
            info["files_included"] = False
            if bundle is not None and bundle.revision == revision and bundle.root.is_dir():
                prefix = f"policy/{_safe_name(revision)}/"
                for file in sorted(p for p in bundle.root.rglob("*") if p.is_file()):
                    rel = file.relative_to(bundle.root).as_posix()
                    if any(part.startswith(".") and part != ".manifest" for part in rel.split("/")):
                        continue
                    archive.add(prefix + rel, file.read_bytes())
                info["files_included"] = True
                info["folder"] = prefix
        archive.add("policy/revisions.json", canonical_json(revisions))

        manifest_doc = {
            "format": EXPORT_FORMAT,
            "created_at": format_timestamp(datetime.now().astimezone()),
            "filters": {
                "from": format_timestamp(start) if start else None,
                "to": format_timestamp(end) if end else None,
                "tenant": tenant,
            },
            "records": count,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "chain": {"from_seq": first_seq, "to_seq": chain_to, "start_prev_hash": start_prev},
            "checkpoints": len(checkpoints),
            "assets_missing": missing,
            "files": dict(sorted(archive.digests.items())),
        }
        manifest_bytes = json.dumps(manifest_doc, indent=2, sort_keys=True).encode("utf-8")
        handle.writestr("manifest.json", manifest_bytes)
        if key is not None:
            signature = {"key_id": key.key_id, "signature": key.sign(manifest_bytes)}
            handle.writestr("manifest.sig.json", json.dumps(signature, indent=2).encode("utf-8"))
    tmp.replace(out)
    return ExportSummary(
        path=out,
        records=count,
        first_seq=first_seq,
        last_seq=last_seq,
        chain_to_seq=chain_to,
        checkpoints=len(checkpoints),
        assets=len(wanted_assets) - len(missing),
        assets_missing=missing,
        revisions=sorted(revisions),
    )


# ---------------------------------------------------------------------------------- verification


@dataclass
class ExportReport:
    """``ok`` only when every file was read and every check passed. ``problems``: "where: what"."""

    ok: bool = False
    records: int = 0
    chain_links: int = 0
    checkpoints: int = 0
    assets: int = 0
    signed_by: str | None = None
    keys_trusted: bool = False
    problems: list[str] = field(default_factory=list)


class _Stop(Exception):
    """Verification cannot continue (the problem was recorded)."""


def _json_lines(report: ExportReport, name: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            report.problems.append(f"{name} line {number}: not valid JSON ({exc})")
            continue
        if not isinstance(value, dict):
            report.problems.append(f"{name} line {number}: not a JSON object")
            continue
        yield number, value


def _field(value: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    item = value.get(name)
    if not isinstance(item, kind) or isinstance(item, bool):
        raise ValueError(f"field {name!r} is missing or has the wrong type")
    return item


def verify_export(path: Path, *, trusted_keys: Mapping[str, Ed25519PublicKey] | None = None) -> ExportReport:
    """Check an evidence zip offline; see the README written into it. Never raises on bad input."""
    report = ExportReport()
    try:
        with zipfile.ZipFile(path) as handle:
            _verify(handle, report, trusted_keys)
    except _Stop:
        pass
    except FileNotFoundError:
        report.problems.append(f"{path}: no such file")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        report.problems.append(f"{path}: not a readable zip archive ({exc})")
    report.ok = not report.problems
    return report


def _read(handle: zipfile.ZipFile, name: str, report: ExportReport) -> bytes | None:
    try:
        return handle.read(name)
    except KeyError:
        report.problems.append(f"{name}: missing from the archive")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC errors, truncation
        report.problems.append(f"{name}: cannot be read ({exc})")
    return None


def _verify(handle: zipfile.ZipFile, report: ExportReport, trusted: Mapping[str, Ed25519PublicKey] | None) -> None:
    manifest_bytes = _read(handle, "manifest.json", report)
    if manifest_bytes is None:
        raise _Stop
    try:
        manifest = json.loads(manifest_bytes)
        if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
            raise ValueError(f"format is not {EXPORT_FORMAT}")
        files = manifest["files"]
        chain_info = manifest["chain"]
        if not isinstance(files, dict) or not isinstance(chain_info, dict):
            raise ValueError("files and chain must be objects")
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"manifest.json: unusable ({exc})")
        raise _Stop from exc

    # 1. every listed file is there and unchanged; nothing else was slipped in
    contents: dict[str, bytes] = {}
    for name, digest in files.items():
        data = _read(handle, name, report)
        if data is None:
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            report.problems.append(f"{name}: content does not match its SHA-256 in manifest.json")
        contents[name] = data
    for name in handle.namelist():
        if name not in files and name not in ("manifest.json", "manifest.sig.json") and not name.endswith("/"):
            report.problems.append(f"{name}: not listed in manifest.json")

    # 2. keys: the caller's, else the ones shipped inside (self-asserted)
    keys: dict[str, Ed25519PublicKey] = {}
    if trusted is not None:
        keys = dict(trusted)
        report.keys_trusted = True
    else:
        for name, data in contents.items():
            if name.startswith("keys/") and name.endswith(".pem"):
                try:
                    key_id, key = public_key_from_pem(data)
                except KeyFileError as exc:
                    report.problems.append(f"{name}: {exc}")
                    continue
                if _key_file(key_id) != name:
                    report.problems.append(f"{name}: holds key {key_id}, not the key its name says")
                keys[key_id] = key

    signature_bytes = _read(handle, "manifest.sig.json", report)
    if signature_bytes is not None:
        try:
            sig = json.loads(signature_bytes)
            key_id, signature = str(sig["key_id"]), str(sig["signature"])
        except (ValueError, KeyError, TypeError) as exc:
            report.problems.append(f"manifest.sig.json: unusable ({exc})")
        else:
            report.signed_by = key_id
            if key_id not in keys:
                report.problems.append(f"manifest.sig.json: signed by key {key_id}, which is not trusted")
            elif not verify_signature(keys[key_id], manifest_bytes, signature):
                report.problems.append(f"manifest.sig.json: the signature over manifest.json is invalid (key {key_id})")

    # 3. the chain proof
    chain: dict[int, dict[str, Any]] = {}
    if "chain.jsonl" in contents:
        expected_seq = chain_info.get("from_seq")
        prev_hash = chain_info.get("start_prev_hash")
        for number, link in _json_lines(report, "chain.jsonl", contents["chain.jsonl"]):
            where = f"chain.jsonl line {number}"
            try:
                seq = _field(link, "seq", int)
                link_prev = _field(link, "prev_hash", str)
                entry = _field(link, "entry_digest", str)
                record_hash = _field(link, "record_hash", str)
            except ValueError as exc:
                report.problems.append(f"{where}: {exc}")
                continue
            if seq != expected_seq:
                report.problems.append(
                    f"{where}: seq {seq} where {expected_seq} was expected (records missing or moved)"
                )
            if link_prev != prev_hash:
                report.problems.append(f"{where}: seq {seq} does not link to the record before it")
            if compute_link_hash(seq=seq, prev_hash=link_prev, entry_digest=entry) != record_hash:
                report.problems.append(f"{where}: seq {seq} does not match its record hash")
            chain[seq] = link
            expected_seq = seq + 1
            prev_hash = record_hash
            report.chain_links += 1
        to_seq = chain_info.get("to_seq")
        if to_seq is not None and expected_seq != to_seq + 1:
            report.problems.append(f"chain.jsonl: ends before seq {to_seq} (the file was cut short)")

    # 4. the records themselves
    selected_assets: dict[str, dict[str, Any]] = {}
    if "records.jsonl" in contents:
        for number, record in _json_lines(report, "records.jsonl", contents["records.jsonl"]):
            where = f"records.jsonl line {number}"
            try:
                seq = _field(record, "seq", int)
                created = datetime.fromisoformat(_field(record, "created_at", str))
                payload_digest = _field(record, "payload_digest", str)
                entry = compute_entry_digest(
                    id=_field(record, "id", str),
                    event_type=_field(record, "event_type", str),
                    request_id=record.get("request_id"),
                    tenant=record.get("tenant"),
                    created_at=created,
                    payload_digest=payload_digest,
                )
                prev_hash = _field(record, "prev_hash", str)
                record_hash = _field(record, "record_hash", str)
            except (ValueError, TypeError) as exc:
                report.problems.append(f"{where}: {exc}")
                continue
            report.records += 1
            payload = record.get("payload")
            if payload is not None:
                try:
                    if sha256_hex(canonical_json(payload)) != payload_digest:
                        report.problems.append(f"{where}: seq {seq}: payload does not match its digest")
                except (TypeError, ValueError) as exc:
                    report.problems.append(f"{where}: seq {seq}: payload cannot be canonicalized ({exc})")
                for asset in payload.get("assets") or () if isinstance(payload, dict) else ():
                    if isinstance(asset, dict) and isinstance(asset.get("sha256"), str):
                        selected_assets[asset["sha256"]] = asset
            if compute_link_hash(seq=seq, prev_hash=prev_hash, entry_digest=entry) != record_hash:
                report.problems.append(f"{where}: seq {seq}: record does not match its hash")
            proof = chain.get(seq)
            if proof is None:
                report.problems.append(f"{where}: seq {seq} is not covered by chain.jsonl")
            elif proof.get("record_hash") != record_hash or proof.get("entry_digest") != entry:
                report.problems.append(f"{where}: seq {seq} differs from the chain proof")
        if report.records != manifest.get("records"):
            report.problems.append(
                f"records.jsonl: {report.records} records, manifest.json says {manifest.get('records')}"
            )
    if "records.csv" in contents:
        try:
            rows = list(csv.reader(io.StringIO(contents["records.csv"].decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as exc:
            report.problems.append(f"records.csv: unreadable ({exc})")
        else:
            if not rows or tuple(rows[0]) != _CSV_COLUMNS or len(rows) - 1 != manifest.get("records"):
                report.problems.append("records.csv: header or row count does not match records.jsonl")

    # 5. checkpoints
    checkpoints: list[Checkpoint] = []
    if "checkpoints.jsonl" in contents:
        for number, value in _json_lines(report, "checkpoints.jsonl", contents["checkpoints.jsonl"]):
            try:
                checkpoints.append(Checkpoint.from_dict(value))
            except ValueError as exc:
                report.problems.append(f"checkpoints.jsonl line {number}: {exc}")
        if checkpoints:
            for issue in check_checkpoint_sequence(
                checkpoints, keys, first_number=checkpoints[0].number, first_prev_digest=None
            ):
                report.problems.append(f"checkpoints.jsonl: {issue.message}")
        for cp in checkpoints:
            signed = chain.get(cp.head_seq)
            if signed is None:
                report.problems.append(
                    f"checkpoints.jsonl: checkpoint {cp.number} signs seq {cp.head_seq}, not in chain"
                )
            elif signed.get("record_hash") != cp.head_hash:
                report.problems.append(
                    f"checkpoints.jsonl: checkpoint {cp.number} signed a different record at seq {cp.head_seq}"
                )
        report.checkpoints = len(checkpoints)
        to_seq = chain_info.get("to_seq")
        if to_seq is not None and not any(cp.head_seq == to_seq for cp in checkpoints):
            report.problems.append(
                f"checkpoints.jsonl: no signed checkpoint covers seq {to_seq}; the exported records are not sealed"
            )

    # 6. assets
    for name, data in contents.items():
        if not name.startswith("assets/") or name.endswith((".manifest.json", ".c2pa")):
            continue
        digest = name.removeprefix("assets/").split(".", 1)[0]
        if hashlib.sha256(data).hexdigest() != digest:
            report.problems.append(f"{name}: the file does not hash to its name")
            continue
        entry = selected_assets.get(digest)
        if entry is None:
            report.problems.append(f"{name}: no exported record names this asset")
            continue
        report.assets += 1
        manifest_file = f"assets/{digest}.manifest.json"
        if manifest_file in contents and entry.get("manifest_id"):
            try:
                active = json.loads(contents[manifest_file]).get("active_manifest")
            except (ValueError, AttributeError):
                active = None
            if active != entry.get("manifest_id"):
                report.problems.append(f"{manifest_file}: manifest id {active!r} is not the record's")
