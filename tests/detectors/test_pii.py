"""PresidioPII finds personal data offline and never exposes the values."""

from __future__ import annotations

import socket

import pytest

from detectors.base import ImageItem, TextItem
from detectors.pii import PresidioPII
from detectors.testing import assert_no_pii, make_context, synthetic_image

TEXT = (
    "Hi, I am John Smith. Email me at john.smith@example.com or call 212-555-0187. "
    "My card number is 4111 1111 1111 1111."
)
VALUES = {
    "PERSON": "John Smith",
    "EMAIL_ADDRESS": "john.smith@example.com",
    "PHONE_NUMBER": "212-555-0187",
    "CREDIT_CARD": "4111 1111 1111 1111",
}


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network access is blocked in this test")


def _block_network(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(socket.socket, "connect", _no_network)
    mp.setattr(socket.socket, "connect_ex", _no_network)
    mp.setattr(socket, "getaddrinfo", _no_network)


@pytest.fixture(scope="module")
def detector() -> PresidioPII:
    with pytest.MonkeyPatch.context() as mp:  # loading must not need the network either
        _block_network(mp)
        d = PresidioPII()
        d.load()
    return d


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_network(monkeypatch)


def test_network_is_really_blocked() -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_finds_email_phone_person_card_with_spans(detector: PresidioPII) -> None:
    findings = detector.detect(TextItem(TEXT), make_context())
    by_type = {f.evidence["entity_type"]: f for f in findings}
    for entity, value in VALUES.items():
        f = by_type[entity]
        assert f.detector == "pii"
        assert f.category == "pii"
        assert 0.0 < f.score <= 1.0
        start = TEXT.index(value)
        assert f.span == (start, start + len(value)), entity
    assert_no_pii(findings, VALUES.values())
    for f in findings:
        assert set(f.evidence) == {"entity_type", "recognizer"}


def test_email_domain_is_validated_offline(detector: PresidioPII) -> None:
    findings = detector.detect(TextItem("write to jane@example.co.uk, not jane@example.invalidtld"), make_context())
    emails = [f for f in findings if f.evidence["entity_type"] == "EMAIL_ADDRESS"]
    assert len(emails) == 1
    assert emails[0].span == (9, 27)


def test_overlaps_resolved(detector: PresidioPII) -> None:
    findings = detector.detect(TextItem(TEXT), make_context())
    types = [f.evidence["entity_type"] for f in findings]
    assert "URL" not in types  # the domain inside the e-mail address
    assert types.count("EMAIL_ADDRESS") == 1


def test_entities_option_restricts() -> None:
    d = PresidioPII(entities=["EMAIL_ADDRESS"])
    d.load()
    findings = d.detect(TextItem(TEXT), make_context())
    assert [f.evidence["entity_type"] for f in findings] == ["EMAIL_ADDRESS"]


def test_unknown_entity_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported PII entities"):
        PresidioPII(entities=["NOT_AN_ENTITY"]).load()


def test_score_threshold_is_a_floor(detector: PresidioPII) -> None:
    d = PresidioPII(score_threshold=0.9)
    d.load()
    findings = d.detect(TextItem(TEXT), make_context())
    assert findings
    assert all(f.score >= 0.9 for f in findings)


def test_clean_text_and_images(detector: PresidioPII) -> None:
    assert detector.detect(TextItem("The weather is nice."), make_context()) == []
    assert detector.detect(TextItem("   "), make_context()) == []
    assert detector.detect(ImageItem(synthetic_image(0)), make_context()) == []
