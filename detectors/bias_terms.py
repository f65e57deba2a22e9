"""Which perceived attributes a prompt itself names (English and Japanese), for the image bias rule.

`detectors.bias_image` measures how homogeneous a batch's perceived gender presentation, age group
and skin tone are. A batch of "a photo of a nurse" that is all feminine is a finding worth review; a
batch of "a photo of a woman nurse" is what was asked for. `named_attributes(prompt)` says which of
the three attributes the prompt pins, so the policy can leave those out (`request.prompt_attributes`).
It is a measurement of the wording, with word lists this project writes; the policy decides.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ATTRIBUTE_TERMS", "named_attributes"]

_PEOPLE = (
    r"(?:man|men|woman|women|person|people|persons|girl|girls|boy|boys|child|children|kid|kids|family|adult|adults)"
)

#: attribute (as in `detectors.bias_image.DEFAULT_ATTRIBUTES`) -> patterns over NFKC-folded, lower-case text.
ATTRIBUTE_TERMS: dict[str, tuple[str, ...]] = {
    "gender_presentation": (
        r"\b(?:wom[ae]n|(?<!hu)m[ae]n|girls?|boys?|females?|males?|lad(?:y|ies)|gentlem[ae]n|mothers?|fathers?|moms?"
        r"|dads?|wi(?:fe|ves)|husbands?|daughters?|sons?|sisters?|brothers?|aunts?|uncles?|queens?|kings?"
        r"|princess(?:es)?|princes?|grand(?:mother|father|ma|pa)s?|(?:business|sales|police|fire)(?:wo)?m[ae]n"
        r"|actress(?:es)?|waitress(?:es)?|feminine|masculine|he|she|his|her|him)\b",
        r"女性|男性|女の子|男の子|少女|少年|母親?|父親?|お母さん|お父さん|妻|夫|娘|息子|姉|妹|兄|弟|おばあさん|おじいさん|祖母|祖父|女優|男優",
    ),
    "age_group": (
        r"\b(?:child(?:ren)?|kids?|bab(?:y|ies)|toddlers?|infants?|teen(?:ager)?s?|adolescents?|young|youth|elderly"
        r"|old|older|aged|seniors?|middle-aged|retired|retirees?|grand(?:mother|father|ma|pa|parent)s?"
        r"|girls?|boys?|students?|pupils?|\d{1,3}[- ]years?[- ]old)\b",
        r"子供|子ども|こども|赤ちゃん|幼児|乳児|児童|生徒|学生|高校生|中学生|小学生|若い|若者|青年|中年|高齢|老人|お年寄り|シニア|少女|少年|祖母|祖父|おばあさん|おじいさん|\d{1,3}\s*歳",
    ),
    "skin_tone": (
        rf"\b(?:black|white|brown|dark|darker|light|lighter|fair|pale|tan|olive)[- ](?:skinned\s+)?{_PEOPLE}\b",
        r"\b(?:dark|light|fair|pale|brown|black|white|olive|tanned)[- ]skin(?:ned)?\b",
        r"\b(?:african(?:[- ]american)?|asian|caucasian|hispanic|latin[oax]s?|latinas|indigenous|aboriginal"
        r"|east asian|south asian|middle eastern|arab|european|nordic|scandinavian)\b",
        r"黒人|白人|アジア人|アフリカ系|ヨーロッパ系|ラテン系|褐色の肌|色白|肌の(?:黒|白|浅黒)い",
    ),
}
_COMPILED = {a: [re.compile(p) for p in patterns] for a, patterns in ATTRIBUTE_TERMS.items()}


def named_attributes(prompt: str) -> list[str]:
    """The attributes whose wording appears in `prompt`, in `ATTRIBUTE_TERMS` order."""
    text = unicodedata.normalize("NFKC", prompt).casefold()
    return [a for a, patterns in _COMPILED.items() if any(p.search(text) for p in patterns)]
