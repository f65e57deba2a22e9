from __future__ import annotations

from detectors.normalize import normalize_text


def test_plain_ascii_is_only_casefolded() -> None:
    n = normalize_text("Hello World")
    assert n.text == "hello world"
    assert n.transforms == frozenset()


def test_cyrillic_and_greek_homoglyphs_fold_to_latin() -> None:
    # Cyrillic с, о, а, е and Greek ο
    n = normalize_text("\u0441\u043e\u0441\u0430in\u0435 and m\u03bfney")
    assert n.text == "cocaine and money"
    assert n.transforms == {"homoglyph"}


def test_uppercase_homoglyphs_fold_before_casefold() -> None:
    # Greek capital Eta looks like H (its lower case, eta, would look like n); Greek capital Iota like I
    assert normalize_text("\u0397ELLO \u0399NFO").text == "hello info"


def test_zero_width_and_tag_characters_are_removed() -> None:
    text = "co\u200bca\u200di\u2060ne\ufeff\u00ad\U000e0041"
    n = normalize_text(text)
    assert n.text == "cocaine"
    assert n.transforms == {"zero_width"}


def test_fullwidth_and_ligatures_nfkc() -> None:
    n = normalize_text("\uff23\uff4f\uff43\uff41\uff49\uff4e\uff45 \ufb01le")
    assert n.text == "cocaine file"
    assert n.transforms == {"nfkc"}


def test_positions_map_back_to_original() -> None:
    text = "say \uff43\u200bo\u0441a\u00ad\u0456ne now"
    n = normalize_text(text)
    start = n.text.index("cocaine")
    s, e = n.to_original(start, start + len("cocaine"))
    assert text[s:e] == "\uff43\u200bo\u0441a\u00ad\u0456ne"
    assert text[:s] == "say "
    assert text[e:] == " now"


def test_expansions_keep_positions() -> None:
    text = "Stra\u00dfe x"  # ß casefolds to ss
    n = normalize_text(text)
    assert n.text == "strasse x"
    assert n.to_original(0, 7) == (0, 6)
    assert n.to_original(8, 9) == (7, 8)


def test_combining_marks_compose() -> None:
    n = normalize_text("cafe\u0301")
    assert n.text == "caf\u00e9"
    assert n.to_original(3, 4) == (3, 5)


def test_empty() -> None:
    n = normalize_text("")
    assert n.text == ""
    assert n.transforms == frozenset()
