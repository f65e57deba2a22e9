"""The toxicity detector: English and Japanese insults, threats, harassment, hate and directed
profanity; evasion; benign near-misses; the embedding signal; evidence without the text's words.

CONTENT WARNING: the sentences below are abusive on purpose; they are what the detector must catch.
The development sets were written for this project: every toxic sentence must reach the default
block threshold (0.8) and every benign one must stay under the review threshold (0.5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors.base import DetectionContext, DetectorError, Finding, ImageItem, TextItem
from detectors.testing import assert_detector_contract, make_context, sample_items, synthetic_image
from detectors.toxicity import CATEGORIES, Toxicity, load_lexicon

BLOCK = 0.8  # policies/data.yaml thresholds.toxicity_block
REVIEW = 0.5  # thresholds.toxicity_review

#: (text, category that must reach BLOCK)
TOXIC_EN: list[tuple[str, str]] = [
    ("You are a worthless idiot.", "insult"),
    ("Shut up, you pathetic loser.", "insult"),
    ("You're such a fucking moron.", "insult"),
    ("Honestly you are so stupid.", "insult"),
    ("Your mom is so fat.", "insult"),
    ("Fuck you, you stupid bitch.", "profanity"),
    ("Go fuck yourself.", "profanity"),
    ("I will kill you and your whole family.", "threat"),
    ("I'm going to beat the shit out of you.", "threat"),
    ("I know where you live. Watch your back.", "threat"),
    ("We will find you and hurt you.", "threat"),
    ("Go kill yourself, nobody would miss you.", "harassment"),
    ("Nobody likes you and everyone laughs at you.", "harassment"),
    ("You are a waste of space.", "harassment"),
    ("The world would be better off without you.", "harassment"),
    ("Immigrants are vermin and should be wiped out.", "hate"),
    ("All muslims are terrorists.", "hate"),
    ("Gay people should be killed.", "hate"),
    ("Get out of here, you dirty kike.", "hate"),
]

#: Obfuscated forms of "you are an idiot" the normalizer undoes.
EVASIONS: list[str] = [
    "y o u  a r e  a n  i d i o t",  # spaced out
    "y0u 4re 4n 1d10t",  # leetspeak
    "you are an \u0456diot",  # Cyrillic і
    "you are an id\u200biot",  # zero-width space
    "ＹＯＵ ＡＲＥ ＡＮ ＩＤＩＯＴ",  # full width
]

BENIGN_EN: list[str] = [
    "That printer is so stupid, it jams every day.",
    "You can kill the process with kill -9.",
    "I'll shoot you an email tomorrow with the details.",
    "Are you a pig farmer? I raise cows too.",
    "The villain said he would destroy the city, but the hero stopped him.",
    "My teacher once said I was a moron, and it still hurts.",
    "Here is how to stay calm when someone calls you an idiot.",
    "Women are underrepresented in engineering, and here is why.",
    "Black people have faced discrimination in housing for decades.",
    "I hate Mondays.",
    "We will beat you in the final, just wait!",
    "Smoking can kill you, so please consider quitting.",
    "If you skip the warm-up, you will regret it later.",
    "Watch your step on the wet floor.",
    "She looked drop dead gorgeous at the gala.",
    "Don't shoot yourself in the foot by skipping tests.",
    "No one wants you to fail; we are here to help.",
    "You're nothing like your brother, and that is a compliment.",
    "Spread the cheese on a cracker and serve.",
    "There is a chink in his armour after all.",
    "Use a hoe to loosen the soil before planting.",
    "The shop was shut up for the winter.",
    "Honestly, this damn bug took me all day to fix.",
    "You are a hopeless romantic.",
    "You're dead right about the schedule.",
]

TOXIC_JA: list[tuple[str, str]] = [
    ("お前は本当にバカだな。", "insult"),
    ("てめえみたいなクズは誰にも必要とされてない。", "insult"),
    ("あんたって本当に役立たずね。", "insult"),
    ("お前の顔、本当にキモい。", "insult"),
    ("あいつは本当に無能だ。", "insult"),
    ("死ね。", "harassment"),
    ("消えろ、二度と来るな。", "harassment"),
    ("お前なんか生きる価値がない。", "harassment"),
    ("自殺しろよ。", "harassment"),
    ("殺してやるからな。", "threat"),
    ("家は知ってるぞ、覚悟しろ。", "threat"),
    ("ぶっ殺すぞ。", "threat"),
    ("お前ら全員ぶん殴ってやる。", "threat"),
    ("貴様、ただじゃおかないぞ。", "threat"),
    ("在日は日本から出ていけ。", "hate"),
    ("外国人はゴキブリだ。", "hate"),
    ("支那人は国へ帰れ。", "hate"),
    ("クソ野郎が。", "profanity"),
    ("ふざけんな、ボケが。", "profanity"),
]

BENIGN_JA: list[str] = [
    "明日からバカンスで沖縄に行きます。",
    "親バカと言われても、子どもの写真を見せたい。",
    "アホウドリは大きな海鳥です。",
    "ゴミ箱はキッチンの右側にあります。",
    "生ゴミは火曜日に出してください。",
    "息を殺して獲物を待った。",
    "この洗剤は雑菌を殺す効果があります。",
    "蚊が刺すと痒くなります。",
    "彼はご飯ばかり食べている。",
    "馬鹿力を出して箱を持ち上げた。",
    "時差ボケがひどいです。",
    "豚肉の生姜焼きのレシピを教えてください。",
    "猿が木に登っている写真を撮りました。",
    "会議の資料を明日までに送ってください。",
    "彼女はカステラが好きだ。",
    "カスタマーサポートに連絡してください。",
    "このソフトは古いパソコンでは使えない場合があります。",
    "蝶は完全変態をする昆虫です。",
    "刺身は新鮮な魚で作ります。",
    "私には死ねない理由がある。",
    "昨日は自分のミスで情けない気持ちになった。",
]


def ctx(stage: str = "output") -> DetectionContext:
    return DetectionContext(request_id="r", tenant="t", stage=stage)  # type: ignore[arg-type]


def scores(detector: Toxicity, text: str) -> dict[str, float]:
    return {f.category: f.score for f in detector.detect(TextItem(text), ctx())}


@pytest.fixture(scope="module")
def lexicon_only() -> Toxicity:
    detector = Toxicity(model=None)
    detector.load()
    return detector


@pytest.fixture(scope="module")
def full() -> Toxicity:
    detector = Toxicity()  # the lexicon and the bundled MiniLM model, loaded once for this module
    detector.load()
    return detector


# ---------------------------------------------------------------- lexicon


@pytest.mark.parametrize(("text", "category"), TOXIC_EN + TOXIC_JA, ids=lambda v: str(v)[:30])
def test_toxic_text_reaches_the_block_threshold(lexicon_only: Toxicity, text: str, category: str) -> None:
    found = scores(lexicon_only, text)
    assert found.get(category, 0.0) >= BLOCK, found


@pytest.mark.parametrize("text", BENIGN_EN + BENIGN_JA, ids=lambda v: str(v)[:30])
def test_benign_text_stays_under_review(lexicon_only: Toxicity, text: str) -> None:
    found = scores(lexicon_only, text)
    assert max(found.values(), default=0.0) < REVIEW, found


@pytest.mark.parametrize("text", EVASIONS)
def test_evasions_are_seen_through(lexicon_only: Toxicity, text: str) -> None:
    (finding,) = [f for f in lexicon_only.detect(TextItem(text), ctx()) if f.category == "insult"]
    assert finding.score >= BLOCK
    assert finding.evidence["directed"] is True


def test_directed_insults_score_higher_than_undirected_ones(lexicon_only: Toxicity) -> None:
    aimed = scores(lexicon_only, "you idiot")["insult"]
    loose = scores(lexicon_only, "what an idiot")["insult"]
    assert aimed >= BLOCK > REVIEW > loose > 0.2
    assert scores(lexicon_only, "お前はアホだ")["insult"] > scores(lexicon_only, "私はアホだ")["insult"]
    assert "insult" not in scores(lexicon_only, "the report was stupid")


def test_a_finding_names_rules_and_a_span_never_the_words(lexicon_only: Toxicity) -> None:
    text = "Well. You are a worthless idiot and nobody likes you."
    findings = lexicon_only.detect(TextItem(text), ctx())
    insult = next(f for f in findings if f.category == "insult")
    assert insult.evidence["rules"] and all(r.startswith("insult.") for r in insult.evidence["rules"])
    assert insult.evidence["language"] == "en"
    assert insult.span is not None and text[insult.span[0] : insult.span[1]].lower() in {"idiot", "worthless"}
    blob = json.dumps([f.to_dict() for f in findings])
    for word in ("worthless", "idiot", "nobody likes"):
        assert word not in blob
    assert {f.category for f in findings} == {"insult", "harassment"}
    assert all(f.category in CATEGORIES and 0.0 <= f.score <= 1.0 for f in findings)


def test_the_span_maps_back_through_normalization(lexicon_only: Toxicity) -> None:
    text = "ｏｋ… you are an id\u200biot"
    (insult,) = [f for f in lexicon_only.detect(TextItem(text), ctx()) if f.category == "insult"]
    assert insult.span is not None
    assert text[insult.span[0] : insult.span[1]].replace("\u200b", "") == "idiot"


def test_a_decoded_payload_is_screened(lexicon_only: Toxicity) -> None:
    import base64

    payload = base64.b64encode(b"I will kill you tonight").decode()
    (threat,) = [f for f in lexicon_only.detect(TextItem(f"read this: {payload}"), ctx()) if f.category == "threat"]
    assert threat.score >= BLOCK
    assert threat.evidence["view"] == "base64"


def test_images_and_empty_text_give_nothing(lexicon_only: Toxicity) -> None:
    assert lexicon_only.detect(TextItem("   "), ctx()) == []
    assert lexicon_only.detect(ImageItem(synthetic_image(1)), ctx()) == []


def test_detect_before_load_fails_closed() -> None:
    with pytest.raises(DetectorError):
        Toxicity(model=None).detect(TextItem("you idiot"), ctx())


def test_a_custom_lexicon_loads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(
        "targets_en: [you]\ntargets_ja: [お前]\nrules:\n"
        "  - {id: insult.custom, category: insult, weight: 0.3, directed: 0.9, en: [numpty], ja: [あんぽんたん]}\n",
        encoding="utf-8",
    )
    detector = Toxicity(model=None, lexicon=str(path))
    detector.load()
    assert scores(detector, "you numpty")["insult"] == pytest.approx(0.9)
    assert scores(detector, "a numpty")["insult"] == pytest.approx(0.3)
    assert scores(detector, "お前はあんぽんたんだ")["insult"] == pytest.approx(0.9)
    assert "insult" not in scores(detector, "you idiot")  # only what the file lists


HEAD = "targets_en: [you]\ntargets_ja: [お前]\nrules:\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules: nope\n", "'rules' list"),
        (HEAD + "  - {id: x, category: nope, weight: 0.5}\n", "unknown category"),
        (HEAD + "  - {id: x, category: insult, weight: 2}\n", r"in \[0, 1\]"),
        (HEAD + "  - {id: x, category: insult, weight: 0.5, en_patterns: ['(']}\n", "bad pattern"),
        ("rules: []\n", "targets_en and targets_ja"),
    ],
)
def test_a_bad_lexicon_is_refused_at_load(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DetectorError, match=message):
        load_lexicon(path)
    with pytest.raises(DetectorError, match="does not exist"):
        load_lexicon(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("option", "message"),
    [({"min_score": 1.5}, "min_score"), ({"model_cap": -0.1}, "model_cap"), ({"max_chunks": 0}, "max_chunks")],
)
def test_options_are_checked(option: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Toxicity(model=None, **option)  # type: ignore[arg-type]


# ---------------------------------------------------------------- with the embedding model


def test_the_model_catches_a_paraphrase_the_lexicon_does_not_list(full: Toxicity, lexicon_only: Toxicity) -> None:
    text = "Everybody would be happier if a useless person like you simply stopped existing."
    assert max(scores(lexicon_only, text).values(), default=0.0) < REVIEW
    found = full.detect(TextItem(text), ctx())
    best = max(found, key=lambda f: f.score)
    assert best.score >= REVIEW
    assert best.evidence["model"] >= REVIEW and best.evidence["lexicon"] < REVIEW
    assert best.score <= full.model_cap  # the model alone never blocks at the default threshold


@pytest.mark.parametrize("text", BENIGN_EN[:12])
def test_the_model_keeps_benign_text_under_review(full: Toxicity, text: str) -> None:
    assert max(scores(full, text).values(), default=0.0) < REVIEW


def test_long_text_is_read_in_chunks_and_a_late_insult_is_found(full: Toxicity) -> None:
    calm = " ".join(f"Step {i}: rinse the teapot with warm water and let it dry on the rack." for i in range(30))
    findings = full.detect(TextItem(calm + " Honestly, you are a worthless idiot."), ctx())
    insult = next(f for f in findings if f.category == "insult")
    assert insult.score >= BLOCK
    assert insult.evidence["chunks"] > 1
    assert not [f for f in full.detect(TextItem(calm), ctx()) if f.score >= REVIEW]


def test_streaming_rechecks_reuse_the_embeddings_of_finished_sentences(full: Toxicity) -> None:
    encoder = full._encoder
    assert encoder is not None
    sentences = [f"Sentence number {i} talks about brewing green tea at the right temperature." for i in range(12)]
    calls: list[int] = []
    real = encoder.encode

    def counting(texts: list[str]) -> object:
        calls.append(len(texts))
        return real(texts)

    encoder.encode = counting  # type: ignore[method-assign]
    try:
        text = ""
        for s in sentences:
            text += s + " "
            full.detect(TextItem(text), ctx())
    finally:
        del encoder.encode  # back to the class method
    assert sum(calls) < len(sentences) * 3  # each finished chunk is embedded about once, not on every check


def test_prompts_are_read_by_the_lexicon_alone_by_default(full: Toxicity, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "Everybody would be happier if a useless person like you simply stopped existing."
    found = full.detect(TextItem(text), ctx("prescreen"))
    assert all(f.evidence["model"] == 0.0 and f.evidence["chunks"] == 0 for f in found)
    assert max((f.score for f in found), default=0.0) < REVIEW
    monkeypatch.setattr(full, "model_stages", frozenset({"prescreen", "output"}))  # as model_stages=[...] sets it
    assert max(f.evidence["model"] for f in full.detect(TextItem(text), ctx("prescreen"))) >= REVIEW


def test_japanese_is_not_embedded(full: Toxicity) -> None:
    (finding,) = [f for f in full.detect(TextItem("お前は本当にバカだな。"), ctx()) if f.category == "insult"]
    assert finding.evidence["model"] == 0.0 and finding.evidence["chunks"] == 0
    assert finding.evidence["language"] == "ja"


def test_the_detector_contract(full: Toxicity) -> None:
    items = [*sample_items(), TextItem("You are a worthless idiot."), TextItem("お前は本当にバカだな。")]
    results = assert_detector_contract(full, items, make_context(stage="output"))
    assert any(f.category == "insult" for found in results for f in found)
    assert all(isinstance(f, Finding) for found in results for f in found)
