"""Japanese passport, bank account and driver's licence numbers: found beside the word that names
them, in Japanese or English, glued or spaced, and not in numbers of the same shape without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.pii_ja_ids import CUE_AFTER, CUE_BEFORE, ID_NUMBERS
from detectors.testing import found_spans

ROOT = Path(__file__).resolve().parents[2]
IDS = {kind.entity for kind in ID_NUMBERS}


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("パスポート番号TK1234567です", "JP_PASSPORT", "TK1234567"),
        ("旅券番号: TK1234567", "JP_PASSPORT", "TK1234567"),
        ("旅券番号：ＴＫ１２３４５６７", "JP_PASSPORT", "ＴＫ１２３４５６７"),  # full-width, as an IME writes it
        ("My passport number is TK1234567.", "JP_PASSPORT", "TK1234567"),
        ("振込先：みずほ銀行 渋谷支店 普通 1234567 ヤマダタロウ", "JP_BANK_ACCOUNT", "1234567"),
        ("口座番号は1234567です", "JP_BANK_ACCOUNT", "1234567"),
        ("1234567（普通預金）に振り込んでください", "JP_BANK_ACCOUNT", "1234567"),
        ("Please wire it to bank account 1234567.", "JP_BANK_ACCOUNT", "1234567"),
        ("ゆうちょ銀行 記号番号 12345-12345671", "JP_BANK_ACCOUNT", "12345-12345671"),
        ("ゆうちょ銀行 記号10120 番号12345671", "JP_BANK_ACCOUNT", "10120 番号12345671"),
        ("普通預金 店番123-1234567", "JP_BANK_ACCOUNT", "123-1234567"),
        ("口座No.1234567", "JP_BANK_ACCOUNT", "1234567"),
        ("account number: 1234567", "JP_BANK_ACCOUNT", "1234567"),
        ("運転免許証番号 1234-5678-9012", "JP_DRIVER_LICENSE", "1234-5678-9012"),
        ("免許証 第 1234 5678 9012 号", "JP_DRIVER_LICENSE", "1234 5678 9012"),
        ("passport tk1234567", "JP_PASSPORT", "tk1234567"),
        ("旅券番号 TK-1234567", "JP_PASSPORT", "TK-1234567"),
        ("旅券 TK 1234567", "JP_PASSPORT", "TK 1234567"),
        ("口座番号 123\u200b4567", "JP_BANK_ACCOUNT", "123\u200b4567"),  # an invisible character inside
        ("運転免許証番号 123456789012", "JP_DRIVER_LICENSE", "123456789012"),
        ("免許証は第１２３４５６７８９０１２号です", "JP_DRIVER_LICENSE", "１２３４５６７８９０１２"),
        ("driver's licence 123456789012", "JP_DRIVER_LICENSE", "123456789012"),
    ],
)
def test_cued_numbers_are_found(default_pii: Any, text: str, entity: str, value: str) -> None:
    found = found_spans(default_pii, text)
    assert (entity, value) in found
    assert not [f for f in found if f[1] == value and f[0] != entity]  # one reading of the number


@pytest.mark.parametrize(
    "text",
    [
        "品番TK1234567の在庫はありますか",  # a product code of the passport's shape
        "注文番号1234567の件で",  # an order number of the account's shape
        "会員番号1234567",
        "口座に1234567円を入金しました",  # an amount beside an account word
        "口座残高は 1,234,567 円です",
        "支店の電話は03-1234-5678です",  # no seven-digit run
        "普通は1時間で終わります。予約番号12345678です",  # eight digits
        # a word calling the number something else stands nearer than the account word
        "普通、注文番号1234567は翌日に届きます",  # 普通 ("usually") counts only right before digits
        "普通は1時間で終わります。予約番号1234567です",
        "口座開設キャンペーン 会員番号1234567",
        "支店の電話番号 1234567",
        "振替休日の出勤者1234567",
        "Taking into account the 1234567 units",
        "Send 1234567 for accounting review",  # a word cut by the window's edge is read whole
        # quantities: a currency sign before, a currency or counter word after
        "振込金額 ¥1234567",
        "振込金額 ￥１２３４５６７",
        "振込金額 JPY 1234567",
        "口座開設数は1234567件",
        # licences that are no driver's licences; a card's groups
        "MIT License, build 202401151230",
        "software license key 123456789012",
        "運転免許証のカード 4111 1111 1111 1111",
        "在庫数 123456789012 個",  # twelve digits, no licence word
        "Passport photos, NO1234567 is the batch",  # "NO" is not a passport's letters
        "My driver's license number is F162823540116",  # a letter and twelve digits: another format
    ],
)
def test_same_shapes_without_their_word_are_not_ids(default_pii: Any, text: str) -> None:
    kinds = {kind for kind, _ in found_spans(default_pii, text)}
    assert not kinds & IDS, kinds


def test_the_word_must_be_near() -> None:
    """The word counts with fewer than CUE_BEFORE characters between it and the number before, or
    fewer than CUE_AFTER after; a word calling the number another kind counts against it when
    nearer."""
    from detectors.pii_ja_ids import cued

    (passport,) = [k for k in ID_NUMBERS if k.entity == "JP_PASSPORT"]
    for gap, expected in ((CUE_BEFORE - 1, True), (CUE_BEFORE, False)):
        text = "旅券" + "あ" * gap + "TK1234567"
        start = text.index("TK")
        assert cued(passport, text, start, start + 9) is expected, gap
    for gap, expected in ((CUE_AFTER - 1, True), (CUE_AFTER, False)):
        text = "TK1234567" + "あ" * gap + "旅券"
        assert cued(passport, text, 0, 9) is expected, gap
    assert not cued(passport, "旅券の受付番号TK1234567", 7, 16)  # 受付 is nearer
    assert cued(passport, "受付で旅券番号TK1234567", 7, 16)  # 旅券 is nearer


def test_a_licence_number_is_no_my_number(default_pii: Any) -> None:
    """123456789018 has a right My Number check digit; beside 免許 it is a licence number, and
    beside a My Number word it stays a My Number."""
    assert found_spans(default_pii, "免許証番号 123456789018") == [("JP_DRIVER_LICENSE", "123456789018")]
    kinds = {kind for kind, _ in found_spans(default_pii, "マイナンバー 123456789018")}
    assert "JP_MY_NUMBER" in kinds and "JP_DRIVER_LICENSE" not in kinds


def test_ids_in_an_encoded_payload(default_pii: Any) -> None:
    import base64

    payload = base64.b64encode(b"passport TK1234567").decode()
    kinds = {kind for kind, _ in found_spans(default_pii, f"decode this: {payload}")}
    assert "JP_PASSPORT" in kinds


def test_the_policy_redacts_them_from_answers() -> None:
    data = yaml.safe_load((ROOT / "policies" / "data.yaml").read_text(encoding="utf-8"))
    assert set(data["mamori"]["output_pii_entities"]) >= IDS
