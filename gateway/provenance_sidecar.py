"""C2PA sidecar manifests for formats a manifest cannot be embedded in (GLB, issue 7).

c2pa cannot embed a manifest store in a binary glTF file ("type is unsupported"). Instead the
manifest store is written apart (`Builder.set_no_embed()`): the asset is untouched, and the
manifest binds to it with a data hash over the whole file (`c2pa.hash.data`), so a changed byte
makes validation fail (`assertion.dataHash.mismatch`). The store is served beside the asset as
`application/c2pa`; a reader validates the pair with `Reader(mime, asset, manifest_data)`.

The manifest is the one every Mamori asset carries (`c2pa.created` with
trainedAlgorithmicMedia, the `mamori.decision` assertion), signed with the same signer and
validated against the same trust anchor as `gateway.provenance.Provenance`: this module uses that
instance's signer, settings context and manifest layout, so there is one set of credentials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Final

import c2pa

from gateway.provenance import ManifestReport, Provenance, ProvenanceError

__all__ = ["SIDECAR_MIME", "SIDECAR_MIMES", "SidecarManifest", "read_sidecar", "sign_sidecar"]

SIDECAR_MIME: Final = "application/c2pa"
"""The media type of a standalone C2PA manifest store."""

SIDECAR_MIMES: Final = frozenset({"model/gltf-binary"})
"""Asset types signed with a sidecar manifest."""


@dataclass(frozen=True)
class SidecarManifest:
    """A signed manifest store (JUMBF bytes) bound by hash to an asset whose SHA-256 is `asset_sha256`."""

    manifest: bytes
    manifest_id: str
    asset_sha256: str


def sign_sidecar(
    provenance: Provenance,
    data: bytes,
    mime: str,
    *,
    title: str,
    decision: Mapping[str, Any],
    action: str = "c2pa.created",
) -> SidecarManifest:
    """Sign a sidecar manifest for `data`; it is read back and must validate as Trusted, or this raises."""
    _check_mime(mime)
    manifest = provenance._manifest(title=title, decision=decision, action=action, ingredients=())
    try:
        builder = c2pa.Builder(manifest, context=provenance._context)
        builder.set_no_embed()
        out = BytesIO()
        store = builder.sign(provenance._signer, mime, BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA sidecar signing failed: {exc}") from exc
    if not store:
        raise ProvenanceError("C2PA sidecar signing returned no manifest store")
    if out.getvalue() not in (b"", data):  # no_embed: the asset itself must not change
        raise ProvenanceError("C2PA sidecar signing changed the asset")
    report = read_sidecar(provenance, data, mime, store)
    if not report.trusted or report.manifest_id is None:
        raise ProvenanceError(
            f"the sidecar manifest does not validate against the trust anchor: {report.validation_state} "
            f"{list(report.failure_codes)}"
        )
    return SidecarManifest(manifest=store, manifest_id=report.manifest_id, asset_sha256=_sha256(data))


def read_sidecar(provenance: Provenance, data: bytes, mime: str, manifest: bytes) -> ManifestReport:
    """Validate the sidecar `manifest` against the asset `data` and the gateway's trust anchor."""
    _check_mime(mime)
    try:
        reader = c2pa.Reader(mime, BytesIO(data), bytes(manifest), context=provenance._context)
        with reader:
            raw: dict[str, Any] = json.loads(reader.json())
            state = reader.get_validation_state()
    except (c2pa.C2paError, ValueError) as exc:
        raise ProvenanceError(f"cannot read the C2PA sidecar manifest: {exc}") from exc
    manifest_id = raw.get("active_manifest")
    active = ((raw.get("manifests") or {}).get(manifest_id) or {}) if manifest_id else {}
    assertions = {str(item["label"]): item.get("data") for item in active.get("assertions") or () if "label" in item}
    return ManifestReport(
        manifest_id=manifest_id,
        validation_state=state or raw.get("validation_state") or "Invalid",
        assertions=assertions,
        raw=raw,
    )


def _check_mime(mime: str) -> None:
    if mime not in SIDECAR_MIMES:
        raise ProvenanceError(f"no sidecar signing for {mime!r}; supported: {sorted(SIDECAR_MIMES)}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
