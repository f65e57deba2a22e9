"""C2PA provenance: local CA, signing with a key or a callback, reading back, tampering, failures."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image

from gateway.provenance import (
    DECISION_LABEL,
    DOCUMENT_SIGNING_EKU,
    NO_MANIFEST,
    TRAINED_ALGORITHMIC_MEDIA,
    CertPaths,
    Ingredient,
    Provenance,
    ProvenanceError,
    ensure_local_ca,
)

DECISION = {
    "request_id": "req-0001",
    "decision": "allow",
    "policy_revision": "bundle-7",
    "findings": [{"detector": "image_safety", "category": "nsfw", "score": 0.02}],
}


def make_png(size: int = 64, color: tuple[int, int, int] = (20, 120, 220)) -> bytes:
    image = Image.new("RGB", (size, size), color)
    image.putpixel((1, 1), (255, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def make_jpeg(size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def tamper_idat(png: bytes) -> bytes:
    """Flip one byte of pixel data inside the first IDAT chunk and fix that chunk's CRC."""
    out = bytearray(png)
    pos = 8
    while pos < len(out):
        (length,) = struct.unpack(">I", out[pos : pos + 4])
        kind = bytes(out[pos + 4 : pos + 8])
        if kind == b"IDAT":
            start = pos + 8
            out[start + length // 2] ^= 0x01
            crc = zlib.crc32(bytes(out[pos + 4 : start + length])) & 0xFFFFFFFF
            out[start + length : start + length + 4] = struct.pack(">I", crc)
            return bytes(out)
        pos += 12 + length
    raise AssertionError("no IDAT chunk")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def provenance(ca: CertPaths) -> Provenance:
    return Provenance.from_files(ca.signer_chain, ca.signer_key, ca.ca_cert)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_local_ca(tmp_path_factory.mktemp("other-ca"), organization="Someone else")


# --- round trip --------------------------------------------------------------------------------------


def test_sign_and_read_back_is_trusted(provenance: Provenance) -> None:
    png = make_png()
    signed = provenance.sign(png, "image/png", title="cat.png", decision=DECISION)

    assert signed.manifest_id.startswith("urn:c2pa:")
    assert signed.data != png
    Image.open(io.BytesIO(signed.data)).verify()  # still a PNG

    report = provenance.read(signed.data, "image/png")
    assert report.validation_state == "Trusted"
    assert report.trusted
    assert report.failure_codes == ()
    assert report.manifest_id == signed.manifest_id
    assert report.assertions[DECISION_LABEL] == DECISION

    actions = report.assertions["c2pa.actions.v2"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.created"]
    assert actions[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert actions[0]["softwareAgent"]["name"] == "Mamori"

    active = report.raw["manifests"][report.manifest_id]
    assert active["title"] == "cat.png"
    assert active["claim_generator_info"][0]["name"] == "Mamori"
    assert "thumbnail" not in active  # the thumbnail is turned off (it costs ~70 ms per image)


def test_jpeg_round_trip(provenance: Provenance) -> None:
    signed = provenance.sign(make_jpeg(), "image/jpeg", title="x.jpg", decision=DECISION)
    report = provenance.read(signed.data, "image/jpeg")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == signed.manifest_id


def test_each_signature_gets_its_own_manifest_id(provenance: Provenance) -> None:
    png = make_png()
    first = provenance.sign(png, "image/png", title="a", decision=DECISION)
    second = provenance.sign(png, "image/png", title="a", decision=DECISION)
    assert first.manifest_id != second.manifest_id


def test_unsigned_asset_reports_no_manifest(provenance: Provenance) -> None:
    report = provenance.read(make_png(), "image/png")
    assert report.validation_state == NO_MANIFEST
    assert report.manifest_id is None
    assert not report.trusted


def test_garbage_bytes_raise_provenance_error(provenance: Provenance) -> None:
    with pytest.raises(ProvenanceError):
        provenance.read(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png")


# --- trust and tampering ---------------------------------------------------------------------------


def test_other_trust_anchor_is_not_trusted(provenance: Provenance, ca: CertPaths, other_ca: CertPaths) -> None:
    signed = provenance.sign(make_png(), "image/png", title="a", decision=DECISION)
    stranger = Provenance.from_files(other_ca.signer_chain, other_ca.signer_key, other_ca.ca_cert)

    report = stranger.read(signed.data, "image/png")
    assert report.validation_state != "Trusted"
    assert not report.trusted
    assert "signingCredential.untrusted" in report.failure_codes
    assert report.manifest_id == signed.manifest_id


def test_signing_under_an_anchor_that_does_not_cover_the_chain_fails(ca: CertPaths, other_ca: CertPaths) -> None:
    mismatched = Provenance(
        chain_pem=ca.signer_chain.read_bytes(),
        key_pem=ca.signer_key.read_bytes(),
        trust_anchor_pem=other_ca.ca_cert.read_bytes(),
    )
    with pytest.raises(ProvenanceError, match="trust anchor"):
        mismatched.sign(make_png(), "image/png", title="a", decision=DECISION)


def test_tampered_pixels_are_invalid(provenance: Provenance) -> None:
    signed = provenance.sign(make_png(), "image/png", title="a", decision=DECISION)
    tampered = tamper_idat(signed.data)
    assert tampered != signed.data

    report = provenance.read(tampered, "image/png")
    assert report.validation_state not in ("Trusted", "Valid")
    assert report.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in report.failure_codes


def test_reencoded_image_loses_the_manifest(provenance: Provenance) -> None:
    signed = provenance.sign(make_png(), "image/png", title="a", decision=DECISION)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(signed.data)).save(buffer, "PNG")
    assert provenance.read(buffer.getvalue(), "image/png").validation_state == NO_MANIFEST


# --- edits with a parent ingredient ----------------------------------------------------------------


def test_edit_with_parent_ingredient(provenance: Provenance) -> None:
    source = provenance.sign(make_png(), "image/png", title="source.png", decision=DECISION)
    edited_pixels = make_png(color=(0, 0, 0))
    signed = provenance.sign(
        edited_pixels,
        "image/png",
        title="edited.png",
        decision={**DECISION, "request_id": "req-0002"},
        action="c2pa.edited",
        ingredients=[Ingredient(data=source.data, mime="image/png", title="source.png")],
    )
    report = provenance.read(signed.data, "image/png")
    assert report.validation_state == "Trusted"
    actions = report.assertions["c2pa.actions.v2"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert report.assertions[DECISION_LABEL]["request_id"] == "req-0002"

    ingredients = report.raw["manifests"][report.manifest_id]["ingredients"]
    assert [(i["title"], i["relationship"]) for i in ingredients] == [("source.png", "parentOf")]
    # the source's own manifest travels with the edit
    assert ingredients[0]["active_manifest"] == source.manifest_id
    assert source.manifest_id in report.raw["manifests"]


def test_edit_without_parent_is_created_then_edited(provenance: Provenance) -> None:
    signed = provenance.sign(make_png(), "image/png", title="a", decision=DECISION, action="c2pa.edited")
    report = provenance.read(signed.data, "image/png")
    assert report.validation_state == "Trusted"
    actions = report.assertions["c2pa.actions.v2"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.created", "c2pa.edited"]
    assert {a["digitalSourceType"] for a in actions} == {TRAINED_ALGORITHMIC_MEDIA}
    assert not report.raw["manifests"][report.manifest_id].get("ingredients")


def test_component_ingredient_on_a_created_asset(provenance: Provenance) -> None:
    reference = make_png(color=(9, 9, 9))
    signed = provenance.sign(
        make_png(),
        "image/png",
        title="a",
        decision=DECISION,
        ingredients=[Ingredient(data=reference, mime="image/png", title="ref.png", relationship="inputTo")],
    )
    report = provenance.read(signed.data, "image/png")
    assert report.validation_state == "Trusted"
    ingredients = report.raw["manifests"][report.manifest_id]["ingredients"]
    assert [(i["title"], i["relationship"]) for i in ingredients] == [("ref.png", "inputTo")]


def test_created_with_a_parent_or_two_parents_is_refused(provenance: Provenance) -> None:
    parent = Ingredient(data=make_png(), mime="image/png", title="p.png")
    with pytest.raises(ProvenanceError, match="parentOf"):
        provenance.sign(make_png(), "image/png", title="a", decision=DECISION, ingredients=[parent])
    with pytest.raises(ProvenanceError, match="parentOf"):
        provenance.sign(
            make_png(),
            "image/png",
            title="a",
            decision=DECISION,
            action="c2pa.edited",
            ingredients=[parent, parent],
        )


def test_unknown_action_is_refused(provenance: Provenance) -> None:
    with pytest.raises(ProvenanceError, match="unsupported action"):
        provenance.sign(make_png(), "image/png", title="a", decision=DECISION, action="c2pa.cropped")


def test_unsupported_mime_and_unsafe_decision(provenance: Provenance) -> None:
    with pytest.raises(ProvenanceError, match="unsupported media type"):
        provenance.sign(b"hello", "text/plain", title="a", decision=DECISION)
    with pytest.raises(ProvenanceError, match="unsupported media type"):
        provenance.read(b"hello", "text/plain")
    with pytest.raises(ProvenanceError, match="JSON-safe"):
        provenance.sign(make_png(), "image/png", title="a", decision={"score": float("nan")})
    with pytest.raises(ProvenanceError, match="JSON-safe"):
        provenance.sign(make_png(), "image/png", title="a", decision={"when": object()})


# --- local CA -----------------------------------------------------------------------------------------


def test_ensure_local_ca_is_idempotent_and_well_formed(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    paths = ensure_local_ca(folder)
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert files == ["ca.key", "ca.pem", "signer-chain.pem", "signer.key"]
    before = {name: (folder / name).read_bytes() for name in files}

    again = ensure_local_ca(folder)
    assert again == paths
    assert {name: (folder / name).read_bytes() for name in files} == before

    for key_file in (paths.signer_key, folder / "ca.key"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    chain = x509.load_pem_x509_certificates(paths.signer_chain.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    assert len(chain) == 2
    leaf, issuer = chain
    assert issuer == ca_cert  # chain = leaf then CA
    leaf.verify_directly_issued_by(ca_cert)

    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_cert_sign
    ekus = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_EKU}
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    leaf_key = leaf.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    assert isinstance(leaf_key.curve, ec.SECP256R1)

    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ca_usage = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign
    assert ca_usage.crl_sign

    key = serialization.load_pem_private_key(paths.signer_key.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()


def test_ensure_local_ca_reissues_a_missing_leaf_from_the_same_ca(tmp_path: Path) -> None:
    paths = ensure_local_ca(tmp_path)
    ca_before = paths.ca_cert.read_bytes()
    paths.signer_chain.unlink()
    paths.signer_key.unlink()

    ensure_local_ca(tmp_path)
    assert paths.ca_cert.read_bytes() == ca_before
    leaf = x509.load_pem_x509_certificates(paths.signer_chain.read_bytes())[0]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))


def test_ensure_local_ca_refuses_a_partial_folder(tmp_path: Path) -> None:
    paths = ensure_local_ca(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(ProvenanceError, match="refusing"):
        ensure_local_ca(tmp_path)
    assert paths.ca_cert.exists()


# --- callback signer (KMS/HSM hook) ------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["der", "raw"])
def test_callback_signer(ca: CertPaths, encoding: str) -> None:
    key = serialization.load_pem_private_key(ca.signer_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    calls: list[int] = []

    def kms_sign(data: bytes) -> bytes:
        calls.append(len(data))
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))  # what a KMS returns: DER
        if encoding == "der":
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    provenance = Provenance(
        chain_pem=ca.signer_chain.read_bytes(),
        trust_anchor_pem=ca.ca_cert.read_bytes(),
        sign_callback=kms_sign,
    )
    signed = provenance.sign(make_png(), "image/png", title="a", decision=DECISION)
    assert calls, "the callback was never called"
    report = provenance.read(signed.data, "image/png")
    assert report.validation_state == "Trusted"
    assert report.assertions[DECISION_LABEL] == DECISION


def test_failing_callback_raises_provenance_error(ca: CertPaths) -> None:
    def broken(data: bytes) -> bytes:
        raise RuntimeError("KMS unavailable")

    provenance = Provenance(
        chain_pem=ca.signer_chain.read_bytes(),
        trust_anchor_pem=ca.ca_cert.read_bytes(),
        sign_callback=broken,
    )
    with pytest.raises(ProvenanceError):
        provenance.sign(make_png(), "image/png", title="a", decision=DECISION)


def test_callback_with_the_wrong_key_raises_provenance_error(ca: CertPaths) -> None:
    wrong = ec.generate_private_key(ec.SECP256R1())
    provenance = Provenance(
        chain_pem=ca.signer_chain.read_bytes(),
        trust_anchor_pem=ca.ca_cert.read_bytes(),
        sign_callback=lambda data: wrong.sign(data, ec.ECDSA(hashes.SHA256())),
    )
    with pytest.raises(ProvenanceError):
        provenance.sign(make_png(), "image/png", title="a", decision=DECISION)


# --- bad credentials ---------------------------------------------------------------------------------


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param(b"not a key", id="garbage"),
        pytest.param(_pem(ec.generate_private_key(ec.SECP256R1())), id="mismatched"),
        pytest.param(_pem(ec.generate_private_key(ec.SECP384R1())), id="wrong-curve"),
        pytest.param(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), id="rsa"),
    ],
)
def test_bad_key_raises_provenance_error(ca: CertPaths, bad_key: bytes) -> None:
    with pytest.raises(ProvenanceError):
        Provenance(
            chain_pem=ca.signer_chain.read_bytes(),
            trust_anchor_pem=ca.ca_cert.read_bytes(),
            key_pem=bad_key,
        )


def test_bad_chain_and_missing_files_raise_provenance_error(ca: CertPaths, tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError):
        Provenance(chain_pem=b"nope", trust_anchor_pem=ca.ca_cert.read_bytes(), key_pem=b"x")
    with pytest.raises(ProvenanceError):
        Provenance.from_files(tmp_path / "missing.pem", ca.signer_key, ca.ca_cert)


def test_key_and_callback_are_exclusive(ca: CertPaths) -> None:
    chain = ca.signer_chain.read_bytes()
    anchor = ca.ca_cert.read_bytes()
    with pytest.raises(ValueError, match="exactly one"):
        Provenance(chain_pem=chain, trust_anchor_pem=anchor)
    with pytest.raises(ValueError, match="exactly one"):
        Provenance(
            chain_pem=chain,
            trust_anchor_pem=anchor,
            key_pem=ca.signer_key.read_bytes(),
            sign_callback=lambda data: data,
        )


def test_trust_anchor_property(provenance: Provenance, ca: CertPaths) -> None:
    assert provenance.trust_anchor_pem == ca.ca_cert.read_bytes()


# --- concurrency and cost ----------------------------------------------------------------------------


def test_signing_from_several_threads(provenance: Provenance) -> None:
    images = [make_png(color=(i, 2 * i, 3 * i)) for i in range(32)]

    def work(index: int) -> tuple[str, str, str]:
        signed = provenance.sign(images[index], "image/png", title=f"{index}.png", decision={"request_id": str(index)})
        report = provenance.read(signed.data, "image/png")
        return signed.manifest_id, report.validation_state, report.assertions[DECISION_LABEL]["request_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(len(images))))

    assert [state for _, state, _ in results] == ["Trusted"] * len(images)
    assert [rid for _, _, rid in results] == [str(i) for i in range(len(images))]
    assert len({mid for mid, _, _ in results}) == len(images)


def test_manifest_carries_no_thumbnail(provenance: Provenance) -> None:
    """The thumbnail costs ~70 ms per image; Mamori turns it off (timings live in benchmarks, not tests)."""
    noise = Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    signed = provenance.sign(buffer.getvalue(), "image/png", title="no-thumb", decision=DECISION)
    report = provenance.read(signed.data, "image/png")
    active = report.raw["manifests"][report.raw["active_manifest"]]
    assert "thumbnail" not in active
    assert not any("thumbnail" in label for label in report.assertions)


# --- audio (issue 7: speech) ------------------------------------------------------------------------


def make_wav(seconds: float = 0.1, rate: int = 16000) -> bytes:
    import math
    import wave

    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buf.getvalue()


def test_wav_round_trip_is_trusted_and_still_a_wav(provenance: Provenance) -> None:
    import wave

    original = make_wav()
    signed = provenance.sign(original, "audio/wav", title="narration.wav", decision=DECISION)
    report = provenance.read(signed.data, "audio/wav")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == signed.manifest_id
    assert report.assertions[DECISION_LABEL] == DECISION
    with wave.open(io.BytesIO(signed.data)) as back, wave.open(io.BytesIO(original)) as before:
        assert back.getframerate() == 16000
        assert back.readframes(back.getnframes()) == before.readframes(before.getnframes())
    assert provenance.read(original, "audio/wav").validation_state == NO_MANIFEST


def test_tampered_wav_samples_are_invalid(provenance: Provenance) -> None:
    signed = bytearray(provenance.sign(make_wav(), "audio/wav", title="a.wav", decision=DECISION).data)
    at = signed.index(b"data") + 8 + 100  # a sample inside the data chunk
    signed[at] ^= 0xFF
    report = provenance.read(bytes(signed), "audio/wav")
    assert not report.trusted
    assert report.validation_state != "Trusted"


def test_mp4_round_trip(provenance: Provenance) -> None:
    import numpy as np

    from generators.diffusers_video import encode_mp4

    frames = np.random.default_rng(0).integers(0, 255, size=(5, 32, 32, 3), dtype=np.uint8)
    mp4 = encode_mp4(frames, 2)
    signed = provenance.sign(mp4, "video/mp4", title="clip.mp4", decision=DECISION)
    report = provenance.read(signed.data, "video/mp4")
    assert report.validation_state == "Trusted"
    assert report.manifest_id == signed.manifest_id
    assert report.assertions[DECISION_LABEL] == DECISION
