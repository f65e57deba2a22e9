"""What the `mamori audit` commands and the audit API share: trusted keys, exports, asset look-ups (issue 6)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from audit.blobs import BlobStore
from audit.crypto import SigningKey, load_public_key, load_public_keys
from audit.export import ExportSummary, ManifestReader, PolicyBundle, write_export
from audit.store import AuditRecord, AuditStore, asset_entries
from gateway.models import AssetRow
from gateway.provenance import Provenance, ProvenanceError
from gateway.settings import Settings


def signing_key_path(settings: Settings) -> Path:
    return settings.audit_signing_key or settings.audit_dir / "signing.pem"


def trusted_keys(settings: Settings, extra: list[Path] | None = None) -> dict[str, Ed25519PublicKey]:
    """The operator's public keys: the signing key's, the published ones, and any configured or given.

    Raises ``KeyFileError`` naming a file that cannot be used.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    path = signing_key_path(settings)
    if path.exists():
        key_id, public = load_public_key(path)
        keys[key_id] = public
    published = path.parent / "public"
    sources = [published] if published.is_dir() else []
    keys.update(load_public_keys([*sources, *settings.audit_trusted_keys, *(extra or [])]))
    return keys


def provenance_reader(provenance: Provenance) -> ManifestReader:
    def read(data: bytes, mime: str, sidecar: bytes | None) -> dict[str, Any] | None:
        if sidecar is not None:
            from gateway.provenance_sidecar import read_sidecar

            report = read_sidecar(provenance, data, mime, sidecar)
        else:
            report = provenance.read(data, mime)
        if report.manifest_id is None:
            return None
        return {"active_manifest": report.manifest_id, "validation_state": report.validation_state, **report.raw}

    return read


def bundle_in_force(settings: Settings, revision: str | None = None) -> PolicyBundle | None:
    """The policy bundle folder and its revision (``revision`` if the engine already knows it)."""
    from gateway.policy import PolicyError, default_bundle_dir, load_bundle

    root = settings.policy_bundle_dir or default_bundle_dir()
    if revision is None:
        try:
            revision = load_bundle(root).revision
        except PolicyError:
            return None
    return PolicyBundle(revision=revision, root=root)


def export(
    out: Path,
    *,
    settings: Settings,
    store: AuditStore,
    sessions: sessionmaker[Session],
    blobs: BlobStore | None,
    provenance: Provenance | None,
    start: datetime | None,
    end: datetime | None,
    tenant: str | None,
    revision: str | None = None,
) -> ExportSummary:
    key = store.checkpointer.key if store.checkpointer is not None else None
    return write_export(
        out,
        store=store,
        sessions=sessions,
        start=start,
        end=end,
        tenant=tenant,
        key=key,
        blobs=blobs,
        manifest_reader=provenance_reader(provenance) if provenance is not None else None,
        bundle=bundle_in_force(settings, revision),
    )


def load_signing_key(settings: Settings) -> SigningKey:
    return SigningKey.load_or_create(signing_key_path(settings))


@dataclass
class AssetLookup:
    """What is known about an asset file: its hash, its manifest id, and the records naming it."""

    sha256: str
    manifest_id: str | None
    manifest_state: str | None
    records: list[AuditRecord] = field(default_factory=list)
    note: str | None = None


def identify(data: bytes, mime: str, provenance: Provenance | None) -> AssetLookup:
    digest = hashlib.sha256(data).hexdigest()
    if provenance is None:
        return AssetLookup(digest, None, None, note="no C2PA reader: looked up by SHA-256 only")
    try:
        report = provenance.read(data, mime)
    except (ProvenanceError, ValueError) as exc:
        return AssetLookup(digest, None, None, note=f"no readable C2PA manifest ({exc}); looked up by SHA-256")
    return AssetLookup(digest, report.manifest_id, report.validation_state)


def find_asset(
    data: bytes, mime: str, *, store: AuditStore, sessions: sessionmaker[Session], provenance: Provenance | None
) -> AssetLookup:
    """The audit records of the request that released this file, by manifest id, else by SHA-256."""
    found = identify(data, mime, provenance)
    conditions = [AssetRow.sha256 == found.sha256]
    if found.manifest_id:
        conditions.append(AssetRow.manifest_id == found.manifest_id)
    with sessions() as session:
        request_ids = sorted(set(session.scalars(select(AssetRow.request_id).where(or_(*conditions)))))
    records: dict[int, AuditRecord] = {}
    for request_id in request_ids:
        for record in store.for_request(request_id):
            if asset_entries(record, sha256=found.sha256, manifest_id=found.manifest_id):
                records[record.seq] = record
    if not records:  # the gateway's asset rows may be gone; the audit payloads still name the asset
        for record in store.find_asset(sha256=found.sha256, manifest_id=found.manifest_id):
            records[record.seq] = record
    found.records = [records[s] for s in sorted(records)]
    return found


@dataclass
class AssetCheck:
    ok: bool
    lookup: AssetLookup
    messages: list[str]


def check_asset(
    data: bytes, mime: str, request_id: str, *, store: AuditStore, provenance: Provenance | None
) -> AssetCheck:
    """Is this file an asset the request released? Both its SHA-256 and its manifest id must match."""
    lookup = identify(data, mime, provenance)
    records = store.for_request(request_id)
    if not records:
        return AssetCheck(False, lookup, [f"no audit record for request {request_id}"])
    entries = [(r, e) for r in records for e in asset_entries(r) if e.get("sha256")]
    if not entries:
        deleted = any(r.payload is None for r in records)
        why = "its records' payloads were deleted for retention" if deleted else "it released no asset"
        return AssetCheck(False, lookup, [f"request {request_id} names no released asset ({why})"])
    for record, entry in entries:
        if entry.get("sha256") == lookup.sha256:
            lookup.records = [record]
            messages = [f"SHA-256 {lookup.sha256} matches asset {entry.get('asset_id')} of record {record.seq}"]
            expected = entry.get("manifest_id")
            if lookup.manifest_id is not None and expected and lookup.manifest_id != expected:
                return AssetCheck(
                    False, lookup, [*messages, f"but its manifest id {lookup.manifest_id} is not {expected}"]
                )
            if expected:
                messages.append(f"C2PA manifest id {expected}")
            return AssetCheck(True, lookup, messages)
    messages = [f"SHA-256 {lookup.sha256} is not an asset request {request_id} released"]
    if lookup.manifest_id and any(e.get("manifest_id") == lookup.manifest_id for _, e in entries):
        messages.append(f"its manifest id {lookup.manifest_id} is the request's: the file was altered after release")
    return AssetCheck(False, lookup, messages)
