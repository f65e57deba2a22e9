"""C2PA provenance: sign generated media and read manifests back, behind a small interface.

The gateway signs every image it returns with a C2PA manifest that says the image was made (or edited)
by a trained algorithm, through Mamori, and carries a ``mamori.decision`` assertion with the governance
decision behind it. Signing uses c2pa-python (``c2pa-rs`` underneath) with an ES256 (P-256) key, either
from a PEM file or through a callback (the hook for a KMS or an HSM: the private key never has to be in
this process).

``ensure_local_ca`` makes a local CA and a signing certificate that c2pa accepts, for development and for
deployments that have no CA of their own. c2pa refuses self-signed leaves and leaves without the right
extended key usages, so the leaf is issued by a separate CA; the CA certificate is the trust anchor that
``Provenance.read`` validates against.

Every failure while signing or reading raises ``ProvenanceError``, so that the pipeline can fail closed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Final, Literal

import c2pa
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

__all__ = [
    "DECISION_LABEL",
    "DOCUMENT_SIGNING_EKU",
    "NO_MANIFEST",
    "SUPPORTED_MIMES",
    "TRAINED_ALGORITHMIC_MEDIA",
    "CertPaths",
    "Ingredient",
    "ManifestReport",
    "Provenance",
    "ProvenanceError",
    "SignedAsset",
    "ensure_local_ca",
]

logger = logging.getLogger(__name__)

DECISION_LABEL: Final = "mamori.decision"
TRAINED_ALGORITHMIC_MEDIA: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SUPPORTED_MIMES: Final = frozenset(
    {"image/png", "image/jpeg", "audio/wav", "audio/mpeg", "video/mp4"}  # MP3 (audio/mpeg): an ID3 tag, issue 7
)
NO_MANIFEST: Final = "Absent"
"""``ManifestReport.validation_state`` of an asset that carries no C2PA manifest at all."""

DOCUMENT_SIGNING_EKU: Final = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_ACTIONS_LABEL: Final = "c2pa.actions.v2"
_PARENT_INGREDIENT_ID: Final = "mamori.parent"
_MAX_ES256_SIGNATURE: Final = 72  # DER-encoded P-256 ECDSA; raw r || s is 64

_CA_CERT = "ca.pem"
_CA_KEY = "ca.key"
_SIGNER_CHAIN = "signer-chain.pem"
_SIGNER_KEY = "signer.key"
_LOCK_FILE = ".lock"
_CA_VALIDITY = dt.timedelta(days=3650)
_LEAF_VALIDITY = dt.timedelta(days=397)
_LEAF_RENEW_BEFORE = dt.timedelta(days=7)
_BACKDATE = dt.timedelta(minutes=5)


class ProvenanceError(Exception):
    """Signing or reading provenance failed. The gateway fails closed on it."""


@dataclass(frozen=True)
class CertPaths:
    """Where ``ensure_local_ca`` keeps the trust anchor, the signer's chain (leaf then CA) and its key."""

    ca_cert: Path
    signer_chain: Path
    signer_key: Path


@dataclass(frozen=True)
class SignedAsset:
    """The signed bytes and the label of the manifest that was added (``urn:c2pa:...``)."""

    data: bytes
    manifest_id: str


@dataclass(frozen=True)
class Ingredient:
    """An asset this one was made from. A ``parentOf`` ingredient is the image an edit started from."""

    data: bytes
    mime: str
    title: str
    relationship: Literal["parentOf", "componentOf", "inputTo"] = "parentOf"


@dataclass(frozen=True)
class ManifestReport:
    """What ``Provenance.read`` found.

    ``validation_state`` is c2pa's: ``Trusted`` (intact and signed under the trust anchor), ``Valid``
    (intact, signer not trusted), ``Invalid`` (tampered or broken), or ``NO_MANIFEST`` when the asset has
    no manifest. ``assertions`` maps each assertion label of the active manifest to its data.
    """

    manifest_id: str | None
    validation_state: str
    assertions: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return self.validation_state == "Trusted"

    @property
    def failure_codes(self) -> tuple[str, ...]:
        """Validation failure codes of the active manifest (``assertion.dataHash.mismatch``, ...)."""
        results = self.raw.get("validation_results") or {}
        active = results.get("activeManifest") or {}
        return tuple(str(item.get("code")) for item in active.get("failure") or ())


# --------------------------------------------------------------------------------------------------
# Local CA
# --------------------------------------------------------------------------------------------------


def ensure_local_ca(directory: Path, *, organization: str = "Mamori local CA") -> CertPaths:
    """Create (once) a local CA and an ES256 signing certificate under ``directory``; reuse them after.

    Files: ``ca.pem`` and ``ca.key`` (the CA), ``signer-chain.pem`` (leaf then CA) and ``signer.key``.
    Keys are written with mode 0600, the folder is created with mode 0700. A leaf that has expired (or
    expires within a week) is re-issued from the existing CA; nothing else is ever overwritten. Safe to
    call from several processes at once (an exclusive lock file serialises them).
    """
    directory = Path(directory)
    paths = CertPaths(
        ca_cert=directory / _CA_CERT,
        signer_chain=directory / _SIGNER_CHAIN,
        signer_key=directory / _SIGNER_KEY,
    )
    ca_key_path = directory / _CA_KEY
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(directory / _LOCK_FILE):
            now = dt.datetime.now(dt.UTC)
            if paths.ca_cert.exists() and ca_key_path.exists():
                ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
                ca_key = _load_ec_key(ca_key_path.read_bytes())
            elif paths.ca_cert.exists() or ca_key_path.exists() or paths.signer_chain.exists():
                raise ProvenanceError(
                    f"{directory} holds part of a CA (ca.pem/ca.key/signer-chain.pem); refusing to replace it"
                )
            else:
                ca_key = ec.generate_private_key(ec.SECP256R1())
                ca_cert = _issue_ca(ca_key, organization, now)
                _write_private(ca_key_path, _pkcs8(ca_key))
                _write_public(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))

            if not _leaf_usable(paths, ca_cert, now):
                leaf_key = ec.generate_private_key(ec.SECP256R1())
                leaf = _issue_leaf(leaf_key, ca_key, ca_cert, organization, now)
                _write_private(paths.signer_key, _pkcs8(leaf_key))
                _write_public(
                    paths.signer_chain,
                    leaf.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM),
                )
    except ProvenanceError:
        raise
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProvenanceError(f"cannot prepare the local CA in {directory}: {exc}") from exc
    return paths


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _leaf_usable(paths: CertPaths, ca_cert: x509.Certificate, now: dt.datetime) -> bool:
    if not (paths.signer_chain.exists() and paths.signer_key.exists()):
        return False
    certs = x509.load_pem_x509_certificates(paths.signer_chain.read_bytes())
    leaf = certs[0]
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ProvenanceError(
            f"{paths.signer_chain} was not issued by {paths.ca_cert}; refusing to replace it"
        ) from exc
    return leaf.not_valid_after_utc - _LEAF_RENEW_BEFORE > now


def _issue_ca(key: ec.EllipticCurvePrivateKey, organization: str, now: dt.datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} root"),
        ]
    )
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_leaf(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    organization: str,
    now: dt.datetime,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "Mamori content signer"),
        ]
    )
    public = key.public_key()
    not_after = min(now + _LEAF_VALIDITY, ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_EKU]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_ec_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ProvenanceError("the signing key must be an EC P-256 key (ES256)")
    return key


def _write_private(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created with mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------------
# Signing and reading
# --------------------------------------------------------------------------------------------------


class Provenance:
    """Signs assets with a C2PA manifest and reads manifests back, validating against one trust anchor.

    Give exactly one of ``key_pem`` (an EC P-256 private key in PEM) or ``sign_callback`` (called with the
    bytes to sign; returns an ES256 signature, DER or raw ``r || s``, for the leaf of ``chain_pem``). One
    instance is safe to share between threads.
    """

    def __init__(
        self,
        *,
        chain_pem: bytes,
        trust_anchor_pem: bytes,
        key_pem: bytes | None = None,
        sign_callback: Callable[[bytes], bytes] | None = None,
        tsa_url: str | None = None,
        claim_generator: str = "Mamori/0.1",
    ) -> None:
        if (key_pem is None) == (sign_callback is None):
            raise ValueError("give exactly one of key_pem or sign_callback")
        self._trust_anchor_pem = bytes(trust_anchor_pem)
        name, _, version = claim_generator.partition("/")
        self._generator: dict[str, str] = {"name": name or "Mamori"}
        if version:
            self._generator["version"] = version

        leaf = _check_chain(chain_pem, self._trust_anchor_pem)
        try:
            if key_pem is not None:
                key = _load_ec_key(key_pem)
                if key.public_key() != leaf.public_key():
                    raise ProvenanceError("the signing key does not match the leaf certificate of the chain")
                info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain_pem, _pkcs8(key), tsa_url)
                self._signer = c2pa.Signer.from_info(info)
            else:
                assert sign_callback is not None
                self._signer = c2pa.Signer.from_callback(
                    _logged_callback(sign_callback), c2pa.C2paSigningAlg.ES256, chain_pem.decode(), tsa_url
                )
            self._context = c2pa.Context.from_dict(
                {
                    "trust": {"trust_anchors": self._trust_anchor_pem.decode()},
                    "verify": {
                        "verify_trust": True,
                        "verify_after_sign": True,
                        "ocsp_fetch": False,
                        "remote_manifest_fetch": False,
                    },
                    "builder": {"thumbnail": {"enabled": False}},
                }
            )
        except ProvenanceError:
            raise
        except (c2pa.C2paError, ValueError, TypeError, UnicodeError, UnsupportedAlgorithm) as exc:
            raise ProvenanceError(f"cannot set up the C2PA signer: {exc}") from exc

    @classmethod
    def from_files(cls, chain: Path, key: Path, trust_anchor: Path) -> Provenance:
        """Build from PEM files: the chain (leaf then intermediates), the leaf's key and the trust anchor."""
        try:
            chain_pem, key_pem, anchor_pem = (Path(p).read_bytes() for p in (chain, key, trust_anchor))
        except OSError as exc:
            raise ProvenanceError(f"cannot read signing credentials: {exc}") from exc
        return cls(chain_pem=chain_pem, key_pem=key_pem, trust_anchor_pem=anchor_pem)

    @property
    def trust_anchor_pem(self) -> bytes:
        return self._trust_anchor_pem

    def sign(
        self,
        data: bytes,
        mime: str,
        *,
        title: str,
        decision: Mapping[str, Any],
        action: str = "c2pa.created",
        ingredients: Sequence[Ingredient] = (),
        assertions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SignedAsset:
        """Embed a signed manifest in ``data`` and return the new bytes with the manifest's label.

        ``assertions`` adds custom assertions by label (for example ``mamori.job``, issue 8); the
        labels Mamori itself writes (actions, ``mamori.decision``) cannot be replaced.

        ``action`` is ``c2pa.created`` or ``c2pa.edited``. For an edit, pass the source image as one
        ``parentOf`` ingredient: the actions are then ``c2pa.opened`` (the parent) and ``c2pa.edited``, and
        the source's own manifest, if any, travels with the result. Without a parent (C2PA requires the
        first action to be opened or created) the actions are ``c2pa.created`` then ``c2pa.edited``.
        The signed result is read back and must validate as ``Trusted`` against the trust anchor, or this
        raises.
        """
        _check_mime(mime)
        manifest = self._manifest(title=title, decision=decision, action=action, ingredients=ingredients)
        for label, content in (assertions or {}).items():
            if label in (_ACTIONS_LABEL, DECISION_LABEL) or not label.strip():
                raise ProvenanceError(f"assertion label {label!r} is reserved or empty")
            try:
                manifest["assertions"].append({"label": label, "data": json.loads(json.dumps(dict(content)))})
            except (TypeError, ValueError) as exc:
                raise ProvenanceError(f"assertion {label!r} is not JSON-safe: {exc}") from exc
        try:
            builder = c2pa.Builder(manifest, context=self._context)
            for index, ingredient in enumerate(ingredients):
                _check_mime(ingredient.mime)
                definition: dict[str, Any] = {
                    "title": ingredient.title,
                    "relationship": ingredient.relationship,
                }
                if ingredient.relationship == "parentOf":
                    definition["label"] = _PARENT_INGREDIENT_ID
                else:
                    definition["label"] = f"mamori.ingredient.{index}"
                builder.add_ingredient(definition, ingredient.mime, BytesIO(ingredient.data))
            out = BytesIO()
            builder.sign(self._signer, mime, BytesIO(data), out)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"C2PA signing failed: {exc}") from exc
        signed = out.getvalue()

        report = self.read(signed, mime)
        if not report.trusted or report.manifest_id is None:
            raise ProvenanceError(
                f"signed asset does not validate against the trust anchor: {report.validation_state} "
                f"{list(report.failure_codes)}"
            )
        return SignedAsset(data=signed, manifest_id=report.manifest_id)

    def read(self, data: bytes, mime: str) -> ManifestReport:
        """Read and validate the manifest of ``data`` against the trust anchor."""
        _check_mime(mime)
        try:
            reader = c2pa.Reader(mime, BytesIO(data), context=self._context)
        except c2pa.C2paError.ManifestNotFound:
            return ManifestReport(manifest_id=None, validation_state=NO_MANIFEST)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"cannot read the C2PA manifest: {exc}") from exc
        try:
            with reader:
                raw: dict[str, Any] = json.loads(reader.json())
                state = reader.get_validation_state()
        except (c2pa.C2paError, ValueError) as exc:
            raise ProvenanceError(f"cannot read the C2PA manifest: {exc}") from exc

        manifest_id = raw.get("active_manifest")
        active = ((raw.get("manifests") or {}).get(manifest_id) or {}) if manifest_id else {}
        assertions = {
            str(item["label"]): item.get("data") for item in active.get("assertions") or () if "label" in item
        }
        return ManifestReport(
            manifest_id=manifest_id,
            validation_state=state or raw.get("validation_state") or "Invalid",
            assertions=assertions,
            raw=raw,
        )

    def _manifest(
        self,
        *,
        title: str,
        decision: Mapping[str, Any],
        action: str,
        ingredients: Sequence[Ingredient],
    ) -> dict[str, Any]:
        try:
            decision_data = json.loads(json.dumps(dict(decision), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ProvenanceError(f"the decision is not JSON-safe: {exc}") from exc

        parents = [i for i in ingredients if i.relationship == "parentOf"]
        if len(parents) > 1:
            raise ProvenanceError("an asset has at most one parentOf ingredient")
        agent = dict(self._generator)
        made: dict[str, Any] = {
            "action": action,
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": agent,
        }
        if action == "c2pa.created":
            if parents:
                raise ProvenanceError("a c2pa.created asset cannot have a parentOf ingredient")
            actions = [made]
        elif action == "c2pa.edited" and parents:
            opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": [_PARENT_INGREDIENT_ID]}}
            actions = [opened, made]
        elif action == "c2pa.edited":
            # C2PA wants the first action to be c2pa.opened (which needs the parent ingredient) or
            # c2pa.created. Without the source image, the pixels are declared made by the model, then edited.
            actions = [{**made, "action": "c2pa.created"}, made]
        else:
            raise ProvenanceError(f"unsupported action {action!r}; use c2pa.created or c2pa.edited")

        return {
            "claim_generator_info": [dict(self._generator)],
            "title": title,
            "assertions": [
                {"label": _ACTIONS_LABEL, "data": {"actions": actions}},
                {"label": DECISION_LABEL, "data": decision_data},
            ],
        }


def _check_mime(mime: str) -> None:
    if mime not in SUPPORTED_MIMES:
        raise ProvenanceError(f"unsupported media type {mime!r}; supported: {sorted(SUPPORTED_MIMES)}")


def _check_chain(chain_pem: bytes, trust_anchor_pem: bytes) -> x509.Certificate:
    """Parse the chain and the anchor; return the leaf. Catches unusable credentials at startup."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
        x509.load_pem_x509_certificates(trust_anchor_pem)
    except ValueError as exc:
        raise ProvenanceError(f"cannot parse the certificate chain or the trust anchor: {exc}") from exc
    leaf = chain[0]
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        raise ProvenanceError("the leaf certificate must hold an EC P-256 key (ES256)")
    return leaf


def _logged_callback(callback: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Wrap a signing callback so a failure is logged with its traceback (c2pa only sees -1)."""

    def sign(data: bytes) -> bytes:
        try:
            signature = bytes(callback(data))
        except Exception:
            logger.exception("C2PA signing callback failed")
            raise
        if not 0 < len(signature) <= _MAX_ES256_SIGNATURE:
            raise ProvenanceError(f"signing callback returned a {len(signature)}-byte signature")
        return signature

    return sign
