"""How much of a stream's text may leave at a check (`gateway.text_pipeline._release_end`): not a
trailing partial word, and not a trailing stretch that may still become personal data, within
`STREAM_HOLD_BACK_CHARS`. The streams themselves, with the real rails, are tested in
`tests/gateway/test_text_output_rails.py`.
"""

from __future__ import annotations

import pytest

from gateway.text_pipeline import STREAM_HOLD_BACK_CHARS, _release_end


@pytest.mark.parametrize(
    ("text", "released"),
    [
        ("call them 212 555 ", "call them "),  # more groups may follow
        ("call them 212 555 0187 ext. ", "call them "),  # an extension may follow
        ("call them 212 555 0187 any time ", "call them "),  # a phone word may still follow it
        ("call them 212 555 0187 any time after nine. ", "call them 212 555 0187 any time after nine. "),
        ("the card 4111 1111 1111 ", "the card "),  # a card with four more digits
        ("pay to IBAN GB82 WEST 1234 5698 ", "pay to IBAN "),  # groups of capitals belong to it
        ("番号は、１２３４\u3000５６７８\u3000", "番号は、"),  # full-width digits and spaces
        ("送付先、〒 ", "送付先、"),  # the postal mark waits for its code
        ("It costs 300 ", "It costs "),
        ("It costs 300 dollars. ", "It costs 300 dollars. "),  # a short number waits for one word only
        ("In 2024\nthe firm grew. ", "In 2024\nthe firm grew. "),  # no number runs over a line break
        ("write to jane", "write to "),  # a partial word waits, as ever
        ("write to jane.doe@example.com ", "write to "),  # another address may follow (and merge)
        ("write to jane.doe@example.com jo", "write to "),  # ... and may be this word
        ("write to jane.doe@example.com for ", "write to jane.doe@example.com for "),
    ],
)
def test_what_may_still_become_personal_data_is_held_back(text: str, released: str) -> None:
    assert text[: _release_end(text, 0)] == released


def test_what_was_released_stays_released() -> None:
    assert _release_end("call them 212 555 ", len("call them 212 ")) == len("call them 212 ")


def test_the_hold_back_is_bounded() -> None:
    """Past `STREAM_HOLD_BACK_CHARS` a run of digits is released at its word boundaries."""
    text = "Digits: " + "1 " * 50
    assert len(text[_release_end(text, 0) :]) == STREAM_HOLD_BACK_CHARS
    assert text[: _release_end(text, 0)] == "Digits: " + "1 " * (50 - STREAM_HOLD_BACK_CHARS // 2)
    # a number written as one word longer than the bound goes out whole once it ends, as before
    long_word = "x " + "1234567890" * 7 + " "
    assert _release_end(long_word, 0) == len(long_word)
