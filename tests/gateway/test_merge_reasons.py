"""Reasons merged over several decisions (images, frames, text windows): each reason once, none lost."""

from __future__ import annotations

from gateway.pipeline import merge_reasons
from gateway.policy import Decision, Reason


def _decision(*reasons: Reason) -> Decision:
    return Decision(action="redact", reasons=reasons, obligations={}, decision_id="d", revision="r")


def test_a_later_window_with_other_personal_data_keeps_its_own_message() -> None:
    email = Reason("prescreen.pii", "pii", "the prompt contains personal data (EMAIL_ADDRESS)")
    phone = Reason("prescreen.pii", "pii", "the prompt contains personal data (PHONE_NUMBER)")
    merged = merge_reasons([_decision(email), _decision(phone), _decision(email)])
    assert [r["message"] for r in merged] == [email.message, phone.message]


def test_the_same_reason_from_every_image_is_given_once_in_first_seen_order() -> None:
    nsfw = Reason("output.nsfw", "image_safety", "a generated image is sexual content")
    copy = Reason("output.copyright", "copyright", "a generated image is similar to a protected work")
    merged = merge_reasons([_decision(copy, nsfw), _decision(nsfw), _decision(copy)])
    expected = [("output.copyright", "copyright"), ("output.nsfw", "image_safety")]
    assert [(r["code"], r["detector"]) for r in merged] == expected
