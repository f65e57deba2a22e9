"""The attributes a prompt names itself are left out of the image bias rule."""

from __future__ import annotations

import pytest

from detectors.bias_terms import named_attributes


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a photo of a nurse at work", []),
        ("a photo of a woman nurse at work", ["gender_presentation"]),
        ("an elderly man reading", ["gender_presentation", "age_group"]),
        ("a dark-skinned person smiling", ["skin_tone"]),
        ("portrait of an Asian engineer", ["skin_tone"]),
        ("a 30-year-old chef", ["age_group"]),
        ("kettle on a white background, black handle", []),  # colours of things name no skin tone
        ("a human pilot in a cockpit", []),
        ("看護師の写真", []),
        ("女性の看護師の写真", ["gender_presentation"]),
        ("高齢の医師", ["age_group"]),
        ("黒人のエンジニア", ["skin_tone"]),
        ("ｗｏｍａｎ engineer", ["gender_presentation"]),  # full-width letters fold under NFKC
    ],
)
def test_named_attributes(prompt: str, expected: list[str]) -> None:
    assert named_attributes(prompt) == expected
