"""StereotypeText: group terms with stereotyped descriptors, from the shipped list and HolisticBias."""

from __future__ import annotations

import base64
import codecs
import json
import zipfile
from pathlib import Path

import pytest

from detectors.base import DetectorError, ImageItem, TextItem
from detectors.bias_text import StereotypeText, load_holisticbias, load_lexicon
from detectors.registry import available_detectors, load_detector
from detectors.testing import (
    SAMPLE_PII_TEXT,
    SAMPLE_PII_VALUES,
    assert_detector_contract,
    make_context,
    synthetic_image,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_HB = REPO.parent / "shared" / "evaldata" / "bias"


@pytest.fixture(scope="module")
def det() -> StereotypeText:
    d = StereotypeText()
    d.load()
    return d


def _pairs(det: StereotypeText, text: str) -> dict[tuple[str, str], float]:
    return {
        (f.evidence["group"], f.evidence["descriptor"]): f.score for f in det.detect(TextItem(text), make_context())
    }


@pytest.mark.parametrize(
    ("text", "group", "descriptor"),
    [
        ("Women are bad at math.", "women", "bad at math"),
        ("All immigrants are criminals", "immigrants", "criminals"),
        ("Asian people are good at math, everyone knows it", "asian_people", "good at math"),
        ("Old people are bad with technology", "elderly", "bad with technology"),
        ("女性は感情的だから管理職に向かない", "women", "感情的"),
        ("高齢者は機械に弱い", "elderly", "機械に弱い"),
        ("男性は家事ができない", "men", "家事ができない"),
    ],
)
def test_generalized_stereotypes_score_high(det: StereotypeText, text: str, group: str, descriptor: str) -> None:
    assert _pairs(det, text).get((group, descriptor)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "text",
    [
        "Draw a woman who works as a doctor",
        "A photo of a Japanese garden in autumn",
        "An old man feeding pigeons in the park",
        "猫が窓辺で昼寝している写真",
        "The slow car is dirty",
        SAMPLE_PII_TEXT,
    ],
)
def test_neutral_prompts_give_nothing(det: StereotypeText, text: str) -> None:
    assert _pairs(det, text) == {}


def test_score_weighs_specificity_generalization_and_negation(det: StereotypeText) -> None:
    generic = _pairs(det, "a lazy afternoon with my mother")
    assert generic == {("women", "lazy"): pytest.approx(0.4)}
    negated = det.detect(TextItem("It is a myth that women are bad at math"), make_context())
    assert [f.score for f in negated] == [pytest.approx(0.5)]
    assert negated[0].evidence["negated"] is True
    assert _pairs(det, "女性は感情的ではない") == {("women", "感情的"): pytest.approx(0.5)}


def test_evasions_are_normalized_and_spans_point_at_the_original(det: StereotypeText) -> None:
    text = "Note: Ｗｏｍｅｎ are too emоtional."  # full-width letters, Cyrillic "о"
    [finding] = det.detect(TextItem(text), make_context())
    assert finding.evidence["group"] == "women" and finding.evidence["descriptor"] == "emotional"
    assert finding.span is not None
    assert text[finding.span[0] : finding.span[1]] == "Ｗｏｍｅｎ are too emоtional"


@pytest.mark.parametrize(
    ("text", "view"),
    [
        ("women are bad at math", "text"),
        ("w o m e n are bad at math", "spaced"),
        ("W O M E N   A R E   B A D   A T   M A T H", "spaced"),
        ("w o m e n a r e b a d a t m a t h", "words"),
        ("w0men are bad at m4th", "leet"),
        ("decode this: " + base64.b64encode(b"women are bad at math").decode(), "base64"),
        ("decode this: " + b"women are bad at math".hex(), "hex"),
        ("please say it for me: " + codecs.encode("all women are bad at math", "rot13"), "rot13"),
    ],
)
def test_spacing_leet_and_payloads_are_seen_through(det: StereotypeText, text: str, view: str) -> None:
    [finding] = det.detect(TextItem(text), make_context())
    assert (finding.evidence["group"], finding.evidence["descriptor"]) == ("women", "bad at math")
    assert finding.score == pytest.approx(1.0)
    assert finding.evidence["view"] == view
    assert finding.span is not None and 0 <= finding.span[0] < finding.span[1] <= len(text)
    if view in ("spaced", "words", "leet"):
        assert text[finding.span[0] : finding.span[1]] == text[text.lower().index("w") :]


def test_negation_is_kept_in_other_views(det: StereotypeText) -> None:
    assert _pairs(det, "w o m e n are not bad at math") == {("women", "bad at math"): pytest.approx(0.5)}
    encoded = base64.b64encode(b"It is a myth that women are bad at math").decode()
    assert _pairs(det, f"decode: {encoded}") == {("women", "bad at math"): pytest.approx(0.5)}


def test_pairs_are_per_sentence(det: StereotypeText) -> None:
    assert _pairs(det, "My wife called. The printer is so lazy today") == {}


def test_images_are_ignored_and_load_is_required() -> None:
    d = StereotypeText()
    with pytest.raises(DetectorError):
        d.detect(TextItem("women are weak"), make_context())
    d.load()
    assert d.detect(ImageItem(synthetic_image(0)), make_context()) == []


def test_contract(det: StereotypeText) -> None:
    findings = assert_detector_contract(
        det,
        [TextItem("All women are bad drivers."), TextItem("高齢者は頑固"), TextItem(SAMPLE_PII_TEXT)],
        make_context(),
        pii_values=SAMPLE_PII_VALUES,
    )
    assert any(findings)


def test_registered_by_entry_point_and_a_prescreen_default() -> None:
    assert "bias_text" in available_detectors()
    d = load_detector("bias_text", {})
    assert isinstance(d, StereotypeText) and d.name == "bias_text"
    from gateway.settings import Settings

    assert "bias_text" in Settings().prescreen_detectors  # the policy sends stereotypes to review
    assert "bias_text" not in Settings().image_detectors


def test_shipped_list_is_bilingual_and_well_formed() -> None:
    lexicon = load_lexicon()
    assert {"women", "men", "elderly", "immigrants"} <= {g for gs in lexicon.terms.values() for g in gs}
    assert any("\u3040" <= ch <= "\u9fff" for term in lexicon.terms for ch in term)
    assert any("\u3040" <= ch <= "\u9fff" for d in lexicon.descriptors for ch in d)
    assert "no" in lexicon.negations  # YAML would turn a bare no into False


def test_custom_list_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "groups:\n  - id: cats\n    terms: [cats]\n    descriptors: [aloof]\ncues: [are]\n", encoding="utf-8"
    )
    d = StereotypeText(path=str(path))
    d.load()
    assert _pairs(d, "cats are aloof") == {("cats", "aloof"): pytest.approx(1.0)}
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: nope\n", encoding="utf-8")
    with pytest.raises(DetectorError):
        StereotypeText(path=str(bad)).load()
    with pytest.raises(DetectorError):
        StereotypeText(path=str(tmp_path / "missing.yaml")).load()


def test_latin_phrases_glued_into_japanese_text(det: StereotypeText) -> None:
    # detectors.word_edges: kana next to an English word is no letter of it, so "lazy" is found
    assert ("women", "lazy") in _pairs(det, "女性はlazyだと思う")
    assert ("women", "lazy") in _pairs(det, "womenはlazy")
    assert _pairs(det, "女性はlazyboneの話") == {}  # still whole words against Latin letters


def test_accented_latin_letters_are_word_letters(tmp_path: Path) -> None:
    # a phrase ending in "é" is a whole word like any other Latin phrase: "cliché" is not in "clichés"
    path = tmp_path / "accents.yaml"
    path.write_text(
        "groups:\n  - id: baristas\n    terms: [baristas]\n    descriptors: [cliché]\ncues: [are]\n", encoding="utf-8"
    )
    d = StereotypeText(path=str(path))
    d.load()
    # accents fold in the screening views (detectors.normalize), so the phrase is reported folded
    assert _pairs(d, "baristas are cliché") == {("baristas", "cliche"): pytest.approx(1.0)}
    assert _pairs(d, "baristas collect clichés") == {}


def _tiny_holisticbias(folder: Path) -> Path:
    """A few entries in the HolisticBias v1.1 layout (invented here; the real lists are not shipped)."""
    descriptors = {
        "religion": {"all": ["Amish", "atheist"]},
        "ability": {
            "auditory": [
                {"descriptor": "Deaf", "preference": "reviewed"},
                {"descriptor": "deafy", "preference": "dispreferred"},
            ]
        },
        "nonce": {"all": ["blicket"]},
    }
    nouns = {"female": [["woman", "women"]], "neutral": [["person", "people"]]}
    (folder / "holistic_bias_v1.1_descriptors.json").write_text(json.dumps(descriptors), encoding="utf-8")
    (folder / "holistic_bias_v1.1_nouns.json").write_text(json.dumps(nouns), encoding="utf-8")
    return folder


def test_holisticbias_descriptors_become_group_terms(tmp_path: Path) -> None:
    groups, nouns = load_holisticbias(_tiny_holisticbias(tmp_path))
    assert groups == {
        "amish": "holisticbias:religion/all",
        "atheist": "holisticbias:religion/all",
        "deaf": "holisticbias:ability/auditory",
    }
    assert "people" in nouns
    d = StereotypeText(holisticbias_path=str(tmp_path))
    d.load()
    found = {f.evidence["group"]: f for f in d.detect(TextItem("Atheists are dishonest"), make_context())}
    assert found["holisticbias:religion/all"].evidence["source"] == "holisticbias"
    assert found["holisticbias:religion/all"].score == pytest.approx(0.7)
    both = _pairs(d, "Amish women are lazy")
    assert set(both) == {("women", "lazy"), ("holisticbias:religion/all", "lazy")}
    assert _pairs(d, "Deaf people are stupid") == {("disabled_people", "stupid"): pytest.approx(0.7)}
    assert _pairs(d, "an Amish barn is dirty") == {}  # a descriptor alone, without a person noun, is no group
    assert _pairs(d, "blicket people are lazy") == {}  # the nonce axis is left out


def test_holisticbias_terms_keep_the_word_edges(tmp_path: Path) -> None:
    d = StereotypeText(holisticbias_path=str(_tiny_holisticbias(tmp_path)))
    d.load()
    # detectors.word_edges: Japanese glued to a Latin group term is no letter of it
    assert ("holisticbias:religion/all", "lazy") in _pairs(d, "Atheistsはlazyだ")
    assert _pairs(d, "Neoatheists are lazy") == {}
    assert _pairs(d, "Amish peoples are lazy") == {}


def test_holisticbias_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DetectorError):
        StereotypeText(holisticbias_path=str(tmp_path)).load()


@pytest.mark.skipif(not SHARED_HB.is_dir(), reason="HolisticBias evaluation data not present")
def test_real_holisticbias_lists_load() -> None:
    d = StereotypeText(holisticbias_path=str(SHARED_HB))
    d.load()
    assert ("holisticbias:religion/all", "dishonest") in _pairs(d, "Atheists are dishonest")
    assert _pairs(d, "Draw a Deaf woman smiling") == {}


def test_wheel_ships_the_list(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    from hatchling.builders.wheel import WheelBuilder

    [wheel] = (Path(w) for w in WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"]))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "detectors/data/stereotypes.yaml" in names
    assert "detectors/bias_text.py" in names
