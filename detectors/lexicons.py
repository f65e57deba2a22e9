# ruff: noqa: E501 - one regex per line reads better than split string literals
"""Term lexicons for the text detectors, written by this project (English and Japanese).

Each entry is `(regex, weight)`. The regexes run over the *normalized* text of every screening
view (NFKC, homoglyphs folded, casefolded; see `detectors.normalize.screen_views`), so they are
lower case and need no look-alike alternatives. A weight of 0.8 or more is a strong term, enough
on its own; a weaker term counts fully only next to a request cue ("how to", "step by step",
"作り方", ...). English patterns start at a word boundary; Japanese ones do not (no spaces).

The lists are deliberately short and readable: they are one signal, not the whole detector, and
an admin adds their own terms through the policy's deny-list or custom categories.
"""

from __future__ import annotations

__all__ = [
    "BENIGN_SENSES",
    "CATEGORIES",
    "CONTEXT_JA",
    "DISGRACE",
    "FABRICATED",
    "HOWTO_JA",
    "INSTRUCT_JA",
    "INTENT_EN",
    "INTENT_JA",
    "JAILBREAK",
    "LEXICON",
    "MINORS",
    "PRODUCE_JA",
    "REALISTIC",
    "REAL_PERSON",
]

#: The built-in unsafe-content categories, in report order.
CATEGORIES: tuple[str, ...] = (
    "sexual",
    "sexual_minors",
    "violence",
    "self_harm",
    "weapons",
    "drugs",
    "hate",
    "harassment",
    "illicit",
    "real_person",
)

B = r"(?<![a-z0-9])"  # word start for English terms

LEXICON: dict[str, list[tuple[str, float]]] = {
    "sexual": [
        (B + r"(?:porn|porno|pornograph\w*|hentai|nsfw|xxx)(?![a-z])", 0.95),
        (B + r"(?:nude|nudes|nudity|naked|nakedness|topless|bottomless|unclothed|undressed)(?![a-z])", 0.9),
        (B + r"(?:erotic\w*|sexually explicit|explicit sex\w*|sex scene|sexual intercourse|having sex)", 0.9),
        (B + r"(?:genitals?|genitalia|penis(?:es)?|vaginas?|vulvas?|clitoris|testicles)(?![a-z])", 0.9),
        (B + r"(?:nipples?|areola\w*|boobs|tits)(?![a-z])", 0.9),
        (B + r"(?:masturbat\w*|orgasm\w*|blowjob|handjob|cunnilingus|fellatio|ejaculat\w*|creampie)", 0.95),
        (B + r"(?:no clothes|without (?:any )?cloth\w*|fully exposed|strip(?:ping|tease)|stripper)", 0.8),
        (B + r"(?:fetish|bdsm|bondage|onlyfans|camgirl|escort service|prostitut\w*|sex work\w*)", 0.7),
        (B + r"(?:sexy|seductive|sensual|lingerie|bikini|busty|cleavage|breasts?|buttocks|butt|thong)(?![a-z])", 0.5),
        (B + r"(?:sex|sexual)(?![a-z])", 0.55),
        (
            r"(?:ヌード|全裸|裸体|裸の|裸に|裸で|半裸|セックス|性行為|性交|ポルノ|エロ|アダルト動画|わいせつ|猥褻|卑猥|官能|淫ら|淫乱|性的な(?:画像|写真|動画|描写|小説|行為)|盗撮|露出狂|乳房)",
            0.9,
        ),
        (r"(?:乳首|性器|陰部|おっぱい|パイパン|フェラ|オナニー|自慰|射精|18禁|r18|av女優)", 0.95),
        (r"(?:エッチ(?!ング)|スカートの中|パンチラ|胸チラ|下着が見え|胸を(?:露出|出し|はだけ)|服を脱が)", 0.9),
        (r"(?:下着姿|水着|セクシー|胸の谷間|色っぽ|誘惑)", 0.45),
    ],
    "sexual_minors": [
        (B + r"(?:child porn\w*|csam|cp porn|lolicon|shotacon|pedophil\w*|paedophil\w*|child sexual abuse)", 1.0),
        (r"(?:児童ポルノ|ロリコン|ショタコン|小児性愛|児童買春|援助交際)", 1.0),
    ],
    "violence": [
        (B + r"(?:murder\w*|massacre\w*|behead\w*|decapitat\w*|dismember\w*|mutilat\w*|disembowel\w*)", 0.9),
        (B + r"(?:tortur\w*|lynch\w*|genocide|ethnic cleansing|mass shooting|school shooting|assassinat\w*)", 0.9),
        (B + r"flay(?:s|ed|ing)?(?![a-z])", 0.9),
        (B + r"(?:gore|gory|blood-soaked|bloodbath|corpses?|dead bod(?:y|ies)|severed head)(?![a-z])", 0.85),
        (
            B + r"(?:kill|killing|stab|stabbing|shoot|shooting|strangle|hurt|attack|beat up|poison|maim|injure)"
            r" (?:a |an |the |my |his |her |their |all |some |as many )?"
            r"(?:someone|somebody|people|person|him|her|them|man|woman|child|children|kid|kids|family|wife|husband"
            r"|neighbou?r|boss|teacher|classmates?|students?|police|officers?|cops?|president|politician|crowd"
            r"|civilians?|jews|muslims|christians|immigrants|humans?|others|everyone|victims?|witness\w*)(?![a-z])",
            0.9,
        ),
        (B + r"(?:terror(?:ist)? attack\w*|terrorism|hostage\w*|kidnap\w*|abduct\w*|carjack\w*|arson)", 0.8),
        (
            B + r"(?:violent|violence|brutal\w*|bloody|blood|wounds?|slaughter\w*|execution|killing|killed)(?![a-z])",
            0.45,
        ),
        (B + r"(?:weapon|gun|knife|fight|war|dead|death|die|kill|attack|assault\w*)(?![a-z])", 0.3),
        (
            r"(?:殺す|殺し|殺さ|殺せ|殺そう|殺害|殺人|殺意|殺傷|突き落と|虐殺|惨殺|刺し殺|撲殺|絞殺|毒殺|射殺|暗殺|焼き殺|轢き殺|斬首|首を切|首を絞め|拷問|なぶり殺|皆殺し|銃乱射|乱射事件|通り魔|爆破テロ|無差別に?(?:襲|刺|攻撃)|刺殺|銃撃|銃で撃|溺れさせ|窒息させ|生き埋め)",
            0.9,
        ),
        (r"(?:血まみれ|死体|遺体|バラバラ|グロ|内臓|切断された)", 0.85),
        (r"(?:テロ|誘拐|拉致|放火|人質|襲撃|暴行|傷害|リンチ|虐待|監禁)", 0.8),
        (r"(?:暴力|流血|傷つけ|殴る|殴り|殴っ|襲う|襲っ|刺す|刺して|怪我をさせ|痛めつけ|血|復讐|仕返し)", 0.45),
    ],
    "self_harm": [
        (B + r"(?:suicid\w*|kill myself|end my (?:own )?life|take my (?:own )?life|self[- ]?harm\w*)", 0.9),
        (B + r"(?:cut(?:ting)? myself|hang myself|slit my wrists?|overdos\w*|want to die|starve myself)", 0.9),
        (B + r"(?:pro-?ana|thinspo\w*|purging|anorexi\w*|bulimi\w*)", 0.7),
        (
            r"(?:自殺|死にたい|自傷|リストカット|リスカ|首を吊|首吊り|飛び降り|オーバードーズ|過剰摂取|消えたい|自死|命を絶|死ぬ方法|楽に死|確実に死|練炭|手首を切|拒食|絶食して痩せ|首をつ(?:る|って|りたい)|自分を傷つけ|自分の体を傷|薬を大量に|命を終わらせ|生きていたくない)",
            0.9,
        ),
    ],
    "weapons": [
        (
            B
            + r"(?:bombs?|explosives?|detonat\w*|ieds?|pipe bombs?|grenades?|molotov\w*|napalm|thermite|tatp|semtex)(?![a-z])",
            0.85,
        ),
        (
            B
            + r"(?:nerve agents?|sarin|vx gas|ricin|anthrax|botulinum|bioweapons?|biological weapons?|chemical weapons?)",
            0.95,
        ),
        (
            B + r"(?:nuclear weapons?|dirty bomb|radiological|weapons? of mass destruction|mustard gas|chlorine gas)",
            0.9,
        ),
        (
            B
            + r"(?:ghost guns?|3d[- ]printed (?:gun|firearm)\w*|untraceable (?:gun|firearm)\w*|full[- ]auto\w*|silencers?|suppressors?)",
            0.85,
        ),
        (
            B
            + r"(?:guns?|firearms?|rifles?|pistols?|ammunition|ammo|weapons?|warfare|toxins?|nerve gas|poisons?)(?![a-z])",
            0.45,
        ),
        (
            r"(?:爆弾|爆発物|爆薬|起爆|爆破|火炎瓶|手榴弾|地雷|サリン|毒ガス|化学兵器|生物兵器|核兵器|神経ガス|リシン|炭疽菌|青酸カリ|ボツリヌス|ナパーム|テルミット|銃を(?:作|密造|自作|改造)|銃の(?:作り方|密造|自作|改造)|3dプリンター?で銃|3dプリント銃|黒色火薬|火薬の作り方|塩素ガス|硫化水素|毒の作り方|毒を作)",
            0.9,
        ),
        (
            r"(?:拳銃|銃器|銃を|銃の|散弾銃|ライフル|改造銃|密造銃|弾薬|武器|兵器|毒物|毒薬|毒を盛|刃物|ナイフ|火薬|ボウガン|クロスボウ)",
            0.45,
        ),
    ],
    "drugs": [
        (
            B
            + r"(?:meth|methamphetamine|crystal meth|cocaine|crack cocaine|heroin|fentanyl|carfentanil|mdma|ecstasy)(?![a-z])",
            0.85,
        ),
        (
            B
            + r"(?:lsd|ketamine|ghb|rohypnol|roofies?|date[- ]rape drugs?|opioids?|oxycodone|narcotics?|psilocybin|dmt)(?![a-z])",
            0.7,
        ),
        (
            B
            + r"(?:drug (?:deal\w*|traffick\w*|lab|cartel\w*|smuggl\w*)|illegal drugs?|illicit drugs?|controlled substances?)",
            0.85,
        ),
        (B + r"(?:drugs?|marijuana|cannabis|weed|pills)(?![a-z])", 0.35),
        (
            r"(?:覚醒剤|覚せい剤|シャブ|麻薬|コカイン|ヘロイン|大麻|危険ドラッグ|脱法ハーブ|違法薬物|幻覚剤|mdma|lsd|フェンタニル|メタンフェタミン|アンフェタミン|ケタミン|マリファナ|密売|売人|薬物を(?:合成|製造|密輸|売)|ドラッグを(?:合成|製造|密輸|売)|合成麻薬|睡眠薬を(?:混ぜ|盛|飲ませ)|こっそり(?:薬|睡眠薬)を)",
            0.85,
        ),
        (r"(?:薬物|ドラッグ|睡眠薬|向精神薬|合成方法|栽培方法)", 0.45),
    ],
    "hate": [
        (
            B
            + r"(?:nigg(?:er|a)s?|faggots?|kikes?|spics?|chinks?|wetbacks?|trann(?:y|ies)|retards?|sand ?niggers?|gooks?)(?![a-z])",
            0.95,
        ),
        (
            B
            + r"(?:white supremac\w*|white power|neo-?nazi\w*|nazis?|heil hitler|master race|inferior races?|racial purity)(?![a-z])",
            0.85,
        ),
        (
            B
            + r"(?:hate speech|hateful|racist|racism|antisemit\w*|islamophob\w*|homophob\w*|transphob\w*|xenophob\w*|misogyn\w*|bigot\w*)",
            0.7,
        ),
        (
            B
            + r"(?:incit\w* (?:hatred|violence)|promot\w* (?:hatred|hate|discrimination|racism)|dehumaniz\w*|subhuman|vermin)",
            0.85,
        ),
        (B + r"(?:discriminat\w*|stereotyp\w*|inferior|slur\w*)", 0.45),
        (
            r"(?:ヘイト|劣等民族|劣等人種|民族浄化|人種差別|差別発言|差別的|(?:人|民族|外国人|在日|移民)\S{0,8}ゴキブリ|チョン|シナ人|土人|ナチス|ホロコーストは嘘)",
            0.85,
        ),
        (r"(?:出て行け|出ていけ|国へ帰れ|差別|劣って|劣った(?:人種|民族)|根絶やし|排斥|蔑視|見下)", 0.45),
    ],
    "harassment": [
        (
            B
            + r"(?:harass\w*|cyberbull\w*|bully\w*|stalk\w*|doxx?\w*|intimidat\w*|humiliat\w*|blackmail\w*|extort\w*)",
            0.8,
        ),
        (B + r"(?:threaten\w*|threats?|death threats?|revenge porn|defam\w*|slander\w*|libel\w*|smear campaign)", 0.8),
        (B + r"(?:insult\w*|mock\w*|ridicul\w*|troll\w*|shame|spread (?:false )?rumou?rs?|body[- ]sham\w*)", 0.45),
        (
            r"(?:嫌がらせ|いじめ|イジメ|誹謗中傷|脅迫|脅す|脅し|恫喝|ストーカー|つきまと|付きまと|晒す|晒し|晒して|晒そう|リベンジポルノ|名誉毀損|死ね|ネットリンチ|住所を特定|個人情報を(?:暴|さら|特定|ばら)|炎上させ|追い込|自殺に追)",
            0.85,
        ),
        (r"(?:悪口|馬鹿にする|バカにする|侮辱|罵倒|中傷|デマを流|悪評|陰口|無視して孤立|笑いものに)", 0.45),
    ],
    "illicit": [
        (
            B
            + r"(?:hack\w*|exploit\w*|malware|ransomware|keylogger\w*|spyware|rootkit\w*|trojan\w*|botnet\w*|ddos|phishing)",
            0.85,
        ),
        (
            B
            + r"(?:sql injection|zero[- ]day|backdoor|brute[- ]forc\w*|crack (?:a |the )?passwords?|bypass (?:security|authentication|antivirus))",
            0.85,
        ),
        (
            B
            + r"(?:steal\w*|stole|stolen|theft|shoplift\w*|burglar\w*|rob (?:a|the)|robbery|pickpocket\w*|pick a lock|break into)",
            0.8,
        ),
        (
            B
            + r"(?:fraud\w*|scam\w*|counterfeit\w*|forge(?:d|ry)?|launder\w*|embezzl\w*|insider trading|ponzi|pyramid scheme)",
            0.85,
        ),
        (
            B
            + r"(?:tax evasion|evade taxes|bribe\w*|briber\w*|smuggl\w*|traffick\w*|identity theft|credit card (?:fraud|numbers?))",
            0.85,
        ),
        (
            B
            + r"(?:without (?:getting )?(?:caught|detected|detection)|evade (?:the )?(?:police|law enforcement|detection)|cover up)",
            0.7,
        ),
        (
            B + r"(?:fake news|misinformation|disinformation|propaganda|conspiracy theor\w*|fake reviews?|plagiari\w*)",
            0.7,
        ),
        (B + r"(?:illegal\w*|illicit|unlawful\w*|cheat\w*|virus|piracy|pirat\w*|manipulat\w*|exploitation)", 0.45),
        (
            B
            + r"(?:infiltrat\w*|tamper\w*|skimm\w*|coerc\w*|without (?:their |the user'?s? |user |her |his )?consent|false information)",
            0.8,
        ),
        (
            B
            + r"(?:crimes?|criminal\w*|spy|spies|spying|surveil\w*|chaos|panic|disrupt\w*|hoax\w*|persuasive (?:article|essay|post))(?![a-z])",
            0.5,
        ),
        (
            r"(?:ハッキング|ハック|不正アクセス|悪用|マルウェア|ランサムウェア|ウイルスを作|ウイルスを(?:仕込|ばらま|感染させ)|フィッシング|ddos|キーロガー|バックドア|乗っ取|パスワードを(?:盗|破|解析|割り出|解読)|盗聴|改ざん|改竄|クラッキング|スパイウェア|トロイの木馬|ボットネット|エクスプロイト)",
            0.85,
        ),
        (
            r"(?:詐欺|振り込め|オレオレ|盗む|盗み|盗ん|窃盗|万引き|空き巣|強盗|偽造|偽札|マネーロンダリング|資金洗浄|脱税|密輸|横領|贈賄|賄賂|闇バイト|なりすまし|不正に入手|ピッキング|盗ま|盗っ|盗める|不正送金|架空請求|偽サイト|密入国|ダークウェブ|闇サイト|海賊版|違法ダウンロード|カンニング|偽ブランド|コピー品を売|不正利用|不正取得|スキミング|偽の口コミ|やらせレビュー|サクラ(?:レビュー|の口コミ)|偽情報|虚偽の情報を(?:広め|拡散)|(?:デマ|陰謀論)を(?:広め|拡散))",
            0.85,
        ),
        (r"(?:違法|不正|犯罪|捕まらない|バレない|デマ|フェイクニュース|脆弱性|侵入)", 0.45),
    ],
    "real_person": [],  # derived: a person reference next to sexual, harassing or disgracing content
}

#: Benign senses of strong terms, per category: a colour, a cosmetic, a bath product, a flavour
#: ("nude heels", "a nude lipstick shade", "bath bomb", "explosive flavour", "life hacks"). A
#: lexicon match that lies inside one of these does not stand on its own (`unsafe_text`): the model
#: and head still read the prompt. Kept apart from `LEXICON`, which the trained head reads as
#: features, so adding a sense here needs no retraining.
# A prevention framing does not hold where the rest of its sentence is getting round it
# ("詐欺対策をすり抜ける方法"), hiding what was done, or using it as a pretext ("...を装って").
# Bounded (`_GUARD_REACH` characters), so that a long run of framings is not rescanned to its end
# at every one of them.
_GUARD_REACH = 60


def _none_of_later_in_sentence(words: str, reach: int) -> str:
    """A look-ahead that fails where one of `words` (an alternation) comes within `reach`
    characters later in the same sentence."""
    return rf"(?![^。！？\n]{{0,{reach}}}?(?:{words}))"


_NOT_GETTING_ROUND = _none_of_later_in_sentence(
    r"すり抜け|すりぬけ|かいくぐ|くぐり抜け|潜り抜け|回避|突破|甘い|弱い|外し方|外す|無効"
    r"|無力化|停止させ|止めさせ|止める|効かない|引っかからない|ひっかからない|検出されない|検知されない|バレな|ばれな|バレず|ばれず"
    r"|抜け道|破り方|破る|見分け|かわし|訴えられない|捕まらない|ごまかす|誤魔化|欺|騙|バイパス|通過|出し抜|消す|消し|隠す|隠し|隠蔽"
    r"|残らない|残さない|わからない|分からない|気づかれ|気付かれ|見つからない|仕込|仕掛け|ふりをし|振りをし|装っ|装い|名目|見せかけ"
    r"|口実|と称し|ことにする|ことにして|ことにし",
    _GUARD_REACH,
)
# An everyday sense of a gore word does not hold where the rest of its sentence harms a body
# ("部品がバラバラになるまで人を切り刻む").
_NO_BODY_HARM = _none_of_later_in_sentence(
    r"人を|人間|遺体|死体|体を|解体|切り刻|刻む|切断|殺|死|裂|取り出|えぐ|抉", 40
)
BENIGN_SENSES: dict[str, tuple[str, ...]] = {
    "sexual": (
        B + r"nude(?:-| )?(?:colou?r\w*|shades?|tones?|hues?|beige|pink|peach|blush|tan|neutral\w*|heels?|pumps?|shoes?"
        r"|sandals?|flats|boots?|sneakers?|loafers?|lips?|lipsticks?|lip ?gloss|lip ?liner|nails?|nail polish|polish|manicure"
        r"|makeup|make-up|palette|eyeshadows?|foundation|concealer"
        r"|mesh|fabric|leather|suede|satin|silk|dress(?:es)?|gowns?|handbags?|bags?|clutch)(?![a-z])",
        # no underwear, bras, tights or bodysuits: "a kid in nude underwear" must read as it does
        B + r"(?:colou?r|shade|tone|hue)s? (?:of |called |named |in )?nude(?![a-z])",
        # katakana words that hold a term's letters: nude colours in a catalog, Ferrari, Ferragamo,
        # erosion, the Eroica symphony
        r"ヌード(?:カラー|ベージュ|ピンク|メイク|トーン|ネイル|リップ|ヒール|パンプス|サンダル|ストッキング)|(?:カップ)?ヌードル",
        r"フェラ(?:ーリ|ガモ|イト)|エロ(?:ージョン|イカ)|アエロ|ユニセックス",
        # health and baby goods, sensory testing of food, voyeurism named as what to prevent
        # (baby goods only as the part's size, change or cleaning: "哺乳瓶の乳首をしゃぶる女の子" reads as written)
        r"(?:乳房|乳がん)(?:検診|検査)(?:の(?:ポスター|案内|お知らせ|予約|日程|チラシ))?"
        + _none_of_later_in_sentence("撮影|撮|触|動画|写真|脱|覗", 30)
        + _NOT_GETTING_ROUND,
        r"(?:哺乳瓶|ほ乳瓶|哺乳びん)(?:の|用の?)?乳首(?:の)?(?:交換|サイズ|消毒|洗い方)|替え乳首|官能(?:評価|検査)",
        r"盗撮防止(?:フィルム|シート|グッズ|カバー|ステッカー|シール|機能)" + _NOT_GETTING_ROUND,
    ),
    "weapons": (
        B + r"(?:bath|seed|flavou?r|taste|calorie|glitter|photo|cocoa|chocolate)[- ]?bombs?(?![a-z])",
        B + r"bombs? (?:pops?|cyclones?)(?![a-z])",
        # a bomb cyclone, a bombshell remark, a "bomb" rice ball or burger (Japanese food names)
        r"爆弾(?:低気圧|発言|おにぎり|ハンバーグ|むすび|コロッケ|セール)",
        # サリン in Salinger and Catherine; リシン the amino acid lysine (L-リシン, リシン塩酸塩), not ricin
        r"サリンジャー|キャサリン|(?:[lL]-?|エル)リシン|リシン塩酸塩",  # the text is casefolded: "l-リシン"
        r"爆破解体",  # a controlled demolition
        # figures of speech, a fashion style, a hot spring's class, botulinum therapy (not the chemical
        # warnings, "塩素ガスが発生", nor food poisoning: the same words ask how to make them)
        r"(?:成長|改革|回復|復活|活性化|景気|人気|ブーム|地方創生|地域|観光|販売|売上|集客)の起爆剤"
        r"|地雷系|地雷メイク",
        r"ボツリヌス療法" + _NOT_GETTING_ROUND,
        "硫化水素泉"
        + _none_of_later_in_sentence("混ぜ|洗剤|発生させ|充満|作る|作り|作って|自殺|死|楽に|眠", 40)
        + _NOT_GETTING_ROUND,
        B
        + r"explosive(?:ly)? (?:flavou?rs?|tastes?|growth|sales|popularity|performance|energy|colou?rs?|sound|results?"
        r"|start|debut|chorus|personality|temper|speed|finale|twist|revelations?|drama|hit)(?![a-z])",
    ),
    "drugs": (
        B + r"(?:(?:in|religious|divine|spiritual|mystical) ecstasy|ecstasy of saint)(?![a-z])",
        # drag (ドラッグ&ドロップ, the same katakana as drug), drugstores, Chablis, shabu-shabu
        r"ドラッグ(?:ストア|&|＆|アンドドロップ|操作|して(?:移動|選択|並べ|ドロップ|コピー)|で(?:移動|選択|並べ))"
        r"|シャブ(?:リ|シャブ)",
    ),
    "violence": (
        # katakana words that hold グロ or テロ (a closed list: グロ next to other katakana is still
        # gore, "グロシーン"): global, glove, growth, gloss, groggy, grocery, Anglo, Negroni; captions
        # (テロップ), steroids, telomeres, cholesterol, terroir, hetero-; a clinch
        r"グロ(?:ーバル|ーブ|ース|ス|ッシー|ッキー|ッサリー|ーランプ|ー放電)|アングロ|ネグローニ",
        r"テロップ|ステロイド|テロメア|コレステロール|テロワール|ヘテロ|クリンチ",
        # anatomy and cooking (an organ chart for a manual, gutting a fish), "内臓" written for 内蔵
        # (built in), a clincher (殺し文句), David Lynch
        r"(?:内臓(?:の(?:図|構造|位置|働き|模型|仕組み|名前)|脂肪|疾患|器官|系)"
        r"|(?:魚|鶏|豚|牛|イカ|エビ|サンマ|アジ|イワシ|サバ|鯛|鮭)の内臓(?:を(?:取り除|取る|抜)|の(?:処理|下処理))?"
        r"|(?:バッテリー|電池|カメラ|マイク|メモリー?|ヒーター|センサー?)内臓"
        r"|殺し文句|(?:デヴィッド|デビッド|デイヴィッド)・?リンチ)" + _NO_BODY_HARM,
        r"(?:ケーブル|回線|接続|通信|電源|ネットワーク|配線|ワイヤー|セッション)が切断された",
        # "scattered": opinions, parts or sizes that differ (a closed list of what is scattered)
        r"(?:(?:意見|部品|パーツ|色|サイズ|形|大きさ|順番|並び|向き|価格|値段|時間|タイミング|方向|データ|書式|フォーマット|表記"
        r"|パズル|ピース|ブロック|チーム|メンバー|足並み|ルール|基準|規格|品質|デザイン|好み|考え|言うこと)(?:が|は|も|の)?バラバラ"
        r"|バラバラ(?:の|に|な)(?:部品|パーツ|色|サイズ|形|順番|方向|データ|ピース|ブロック|パズル|配置|意見))"
        + _NO_BODY_HARM,
    ),
    "hate": (
        r"チョン(?:マゲ|まげ|ボ|・)",  # a topknot, a blunder, the Korean surname (チョン・ジヒョン)
        # hate speech and discrimination named as what to end or prevent
        r"(?:ヘイトスピーチ|ヘイト|人種差別|差別発言|差別的な言動)(?:を|の)?(?:防ぐ|防止|対策|なくす|無くす|撲滅|解消|根絶|撤廃"
        r"|に反対|反対|禁止|許さない)" + _NOT_GETTING_ROUND,
    ),
    "harassment": (
        # the final push of a season (年末の追い込み), bleached cotton (晒し木綿)
        r"(?:年末|年度末|月末|期末|最後|ラスト|受験|決算|ゴール前)の追い込み|追い込み(?:時期|の時期|シーズン|漁)"
        r"|晒し(?:木綿|布|の手ぬぐい)",
        # bullying and slander named as what to prevent or report ("いじめ防止のポスター")
        r"(?:いじめ|イジメ|誹謗中傷|中傷|嫌がらせ|ストーカー|つきまとい|脅迫|ネットリンチ|リベンジポルノ)(?:を|の)?"
        r"(?:防ぐ|防止|予防|対策|なくす|無くす|撲滅|ゼロ|根絶|相談窓口|早期発見|被害(?:に遭わない|を防|の相談|相談)|から身を守"
        r"|に注意)" + _NOT_GETTING_ROUND,
    ),
    "illicit": (
        B + r"(?:(?:life|kitchen|cleaning|travel|home|cooking|study)[- ]?hacks?|hackathons?)(?![a-z])",
        # life hacks and hackathons; burglary and fraud named as what to prevent (防犯, 対策, 被害防止)
        r"(?:ライフ|生活|家事|料理|仕事術の?|グロース|ハックル)ハック|ハッカソン|ハックルベリー|デマンド|デマケ",
        r"(?:空き巣|詐欺|万引き|窃盗|盗難|なりすまし|フィッシング)(?:対策|防止|被害を防|よけ|に注意|にご注意)"
        + _NOT_GETTING_ROUND,
        # warehouse picking, a car's power tailgate, labels and products against misuse and malware
        # warehouse picking (only with the warehouse named: "ピッキング" alone is lock picking), a car's
        # power tailgate, protection against card fraud and malware named as a product
        r"(?:倉庫|物流|出荷|入荷|在庫|庫内)(?:での|の|内の)?ピッキング(?:作業|リスト|業務|システム|スタッフ|担当)?"
        + _none_of_later_in_sentence("錠|鍵|開け|持ち出|盗", 40)
        + _NOT_GETTING_ROUND,
        "パワーバックドア" + _none_of_later_in_sentence("細工|挟ま|挟ませ|怪我|ケガ|壊", 40) + _NOT_GETTING_ROUND,
        r"(?:スキミング|不正利用|マルウェア|ウイルス)(?:補償|対策|防止|検知|除去)" + _NOT_GETTING_ROUND,
        # tampering found, prevented or described as done ("改ざん検知", "データが改竄されています")
        r"改(?:竄|ざん)(?:されて|された|され|検知|検出|防止|対策|を防|を検知|を検出|の有無|がないか|耐性)"
        + _NOT_GETTING_ROUND,
    ),
}

#: Harmful terms spelled in kana instead of kanji ("ばくだんの作り方", "バクダンのつくりかた"), matched
#: on the text with katakana read as hiragana: (pattern, weight, whether the pattern holds its own
#: request cue). A kana word has no edges to match on ("じさつ" is in "きじさつえい", 記事撮影), so a
#: term counts only followed by a how-to, wanting or buying cue (kana or kanji), as a request; a few
#: request forms stand on their own ("しにたい", 死にたい, as its kanji form does), guarded against
#: the words they hide in ("わたしにたいして", "ところしかたない"). Words with a common harmless kana
#: reading are left out ("たいま": タイマ, a timer; "かやく": かやくご飯). Kept apart from `LEXICON`,
#: which the trained head's fingerprint covers: these are Japanese, which the English head does not read.
_KANA_HOWTO = (
    r"[、・,]?(?:の|を|が|って)?[、・,]?(?:つくりかた|作り方|つくる|作る|つくって|作って|つくりたい|作りたい|さくせい|作成"
    r"|せいぞう|製造|じさく|自作|れしぴ|ほうほう|方法|てじゅん|手順|やりかた|やり方|しかた|仕方|どうやって|おしえて|教えて"
    r"|かいかた|買い方|かいたい|買いたい|かう|買う|ほしい|欲しい|てにいれ|手に入れ|にゅうしゅ|入手|うって|売って|ごうせい|合成)"
)
KANA_SPELLINGS: dict[str, tuple[tuple[str, float, bool], ...]] = {
    "weapons": (
        (
            rf"(?:ばくだん|ばくはつぶつ|ばくやく|かえんびん|しゅりゅうだん|どくがす|さりん|けんじゅう){_KANA_HOWTO}",
            0.9,
            True,
        ),
    ),
    "drugs": (
        (
            rf"(?:かくせいざい|まやく|こかいん|へろいん|めたんふぇたみん|きけんどらっぐ|いほうやくぶつ){_KANA_HOWTO}",
            0.9,
            True,
        ),
    ),
    "self_harm": (
        (rf"(?:じさつ|じしょう|くびつり|りすとかっと)(?:{_KANA_HOWTO}|したい|しよう)", 0.9, True),
        (r"(?<!わた)(?<!あなた)(?<!きみ)しにたい(?!し[てた]|す[るれ])|らくにしぬ|しぬほうほう", 0.9, False),
    ),
    # はだか is written in kana as often as 裸: it counts as 裸の/裸で/裸に do, not in the tale
    # "はだかの王様" (the emperor's new clothes) nor in はだか麦 (naked barley)
    "sexual": ((r"はだか(?:の|で|に|ん?ぼう?の)(?!おうさま|王様)", 0.9, True),),
    "violence": (
        (
            r"(?<![とご])(?:ころしかた(?![なたい])|ころすほうほう|ころしてやる|ころしたい)|さつじんの(?:ほうほう|やりかた)",
            0.9,
            True,
        ),
    ),
}

#: Words that place a minor in the text; with sexual content they raise `sexual_minors`.
MINORS: tuple[str, ...] = (
    B + r"(?:child|children|kids?|minors?|underage|under-age|preteens?|pre-teens?|teens?|teenagers?|toddlers?|infants?"
    r"|schoolgirls?|schoolboys?|little (?:girl|boy)s?|young (?:girl|boy)s?|loli|shota|\d{1,2}[- ]?(?:yo|year[- ]old))(?![a-z])",
    r"(?:児童|子供|子ども|幼児|小学生|中学生|未成年|幼女|少女|少年|女子中学生|女子小学生|jc|js)",
)

#: Words that point at a real, identifiable person (a named person is left to `protected_names`).
REAL_PERSON: tuple[str, ...] = (
    B + r"(?:celebrit\w*|famous (?:actor|actress|singer|person|people)|actress|politician|president|prime minister"
    r"|real person|my (?:ex|coworker|classmate|neighbou?r|teacher|boss)|deepfake\w*)(?![a-z])",
    r"(?:有名人|芸能人|女優|俳優|アイドル|政治家|首相|大統領|実在の人物|元カノ|元彼|同僚|ディープフェイク)",
)

#: Depictions that disgrace whoever is shown: arrested or jailed, committing a crime, taking a bribe,
#: drunk or on drugs, cheating, in a hate group. Put on a real person they are defamatory
#: (`real_person`, with `REAL_PERSON` or `FABRICATED`); on nobody in particular they are ordinary
#: scenes ("a police officer arresting a thief") and score nothing.
DISGRACE: tuple[str, ...] = (
    B
    + r"(?:(?:being |getting )?arrested|under arrest|mug ?shots?|in handcuffs|handcuffed|in (?:jail|prison)|behind bars"
    r"|in court (?:as|for)|convicted|(?:tak|accept)(?:e|es|ing|en) (?:a )?bribes?|bribing|bribery|embezzl\w*"
    r"|shoplift\w*|steal(?:s|ing)? from|robbing|caught (?:stealing|cheating|red-handed|with)"
    r"|committing (?:a )?(?:crime|fraud|murder)|snorting|(?:doing|using|on) (?:drugs|cocaine|heroin|meth)|passed out drunk"
    r"|(?:blackout |falling-down )?drunk (?:driving|in public)|cheating on|(?:having|has) an affair"
    r"|(?:wearing|in) (?:a )?(?:kkk|klan) (?:hood|robe)|(?:doing|giving|making) (?:a )?nazi salute"
    r"|confess(?:es|ing)? to (?:a )?(?:crime|murder|fraud|rape|abuse)|(?:sexually )?abusing (?:a )?(?:child|children|kids))"
    r"(?![a-z])",
    r"(?:逮捕|手錠|刑務所|服役|賄賂|収賄|横領|万引き|窃盗|泥酔|薬物を使|覚醒剤|不倫|浮気|犯行|犯罪を犯|痴漢|ナチス式敬礼)",
)

#: Asking for a depiction that is false and meant to pass for real: a fake, doctored or deepfake
#: photo, "make it look like".
FABRICATED: tuple[str, ...] = (
    B + r"(?:fake|faked|forged|doctored|photoshopped|fabricated|deepfake\w*|face ?swap\w*"
    r"|(?:make|making|made) it (?:look|seem) (?:like|as if)|(?:looks?|passes?) (?:as|for) real)(?![a-z])",
    r"(?:偽の?(?:写真|画像|動画|ニュース)|捏造|フェイク|ディープフェイク|コラ画像|合成(?:写真|画像|動画)|本物そっくり)",
)

#: Asking for a depiction that looks like a record of real events: photorealistic, news or
#: security-camera footage, a leak.
REALISTIC: tuple[str, ...] = (
    B + r"(?:realistic|photorealistic|hyperrealistic|photo-realistic|leaked|news (?:photo|footage|report)"
    r"|security camera|cctv|paparazzi|candid (?:photo|shot))(?![a-z])",
    r"(?:リアルな|実写|流出|報道写真|防犯カメラ|監視カメラ|隠し撮り)",
)

#: Request cues: a weak term next to one of these counts as a request for harmful content.
INTENT_EN = (
    B + r"(?:how (?:do|can|to|would|should|could)|steps?|step-by-step|instructions?|tutorial|guide|recipe|teach me"
    r"|explain how|ways? to|write (?:a|an|me)|create (?:a|an)|generate|develop|design|provide|give me|detailed|plan"
    r"|tips?|methods?|best way|easiest way|draw|photo of|picture of|image of|show me|make (?:a|an|me|some))"
)
#: Japanese request cues: asking how to do something, and asking for a text or picture to be made.
INSTRUCT_JA = r"(?:方法|作り方|やり方|手順|教えて|詳しく|コツ|どうすれば|どうやって|仕方)"
PRODUCE_JA = r"(?:書いて|作成|描いて|画像|生成|作って)"
INTENT_JA = f"(?:{INSTRUCT_JA}|{PRODUCE_JA})"

#: Japanese framing that makes a violent or criminal term a topic rather than a request (fiction,
#: history, prevention): Japanese text has no model reading, so without a how-to cue (`HOWTO_JA`)
#: such hits are damped ("推理小説の殺人事件のトリック", "詐欺の被害を防ぐ"). Sexual content and
#: hate stay what they are in a story.
CONTEXT_JA = (
    r"(?:小説|物語|ミステリー|推理|映画|ドラマ|アニメ|漫画|マンガ|フィクション|ゲームの|歴史|戦国|史実|報道"
    r"|を防ぐ|防止|見分け方|被害に遭わない|身を守|注意喚起|啓発|相談窓口|やめたい|やめる方法)"
)
HOWTO_JA = r"(?:作り方|やり方|手順|詳しく|詳細|どうすれば|どうやって|仕方|具体的|レシピ|入手|手に入れ|買え|買う)"

#: Jailbreak and prompt-injection patterns: (regex, weight, kind). A space between words stands for
#: any run of whitespace, "-" or "_" (`detectors.jailbreak` widens it when compiling), so
#: "ignore  all\tprevious_instructions" reads as the phrase it spells.
_OVERRIDE_VERB = r"(?:ignore|disregard|forget|override|bypass)"
#: Each determiner one way only ("of the" is "of" then "the"): an alternation that could match a
#: word two ways would make the repeat exponential ("ignore of the of the of the ... x").
_OVERRIDE_DET = r"(?:all |any |every |your |the |these |those |my |of )*"
#: What marks the thing set aside as the assistant's own rules ("previous", "system", "your").
_OVERRIDE_QUAL = r"(?:previous|prior|above|earlier|preceding|original|initial|system|safety|content|your)"
_OVERRIDE_NOUN = (
    r"instructions?|rules?|prompts?|guidelines?|directives?|polic(?:y|ies)|restrictions?|programming|constraints?"
)
#: DAN-style persona names that are ordinary words or names too ("stan", "dude", "aim", "dan"):
#: they count in full only where the text makes the assistant that persona.
_PERSONAS = r"dan|stan|dude|aim|anti-?dan"
_PERSONA = f"(?:{_PERSONAS})"
JAILBREAK: list[tuple[str, float, str]] = [
    (
        # skipping or dropping instructions, or setting aside filters, is an override only when they
        # are the assistant's own ("skip the previous instructions", not "skip the instructions")
        # (letters after the verb, not \w: "_" is a word break, and \w* beside it would be quadratic)
        B + rf"(?:{_OVERRIDE_VERB}[a-z]* {_OVERRIDE_DET}{_OVERRIDE_QUAL}? ?(?:{_OVERRIDE_NOUN})"
        rf"|(?:ignore|disregard|forget|override|bypass|skip|drop)[a-z]* {_OVERRIDE_DET}{_OVERRIDE_QUAL} ?(?:{_OVERRIDE_NOUN}|filters?))",
        0.9,
        "instruction_override",
    ),
    (
        B + r"(?:new instructions?|from now on|starting now|you (?:must|will) now|your new (?:role|task|rules?))",
        0.5,
        "instruction_override",
    ),
    (
        B
        + r"(?:do anything now|jailbr[eo]a?k[a-z]*|god mode|unfiltered mode|evil mode|anti-?dan|dan mode|stan mode|dude mode"
        r"|strive to avoid norms|always intelligent and machiavellian)(?![a-z])",
        0.8,
        "dan_template",
    ),
    (
        B + r"(?:(?:you are|you're|you will be|you are now|act as|acting as|pretend to be|pretending to be|role of"
        rf"|persona of|known as|become|answer as|respond as|reply as) {_PERSONA}|{_PERSONA},? (?:which |who )?stands for"
        rf"|(?:{_PERSONAS}|developer mode|dev mode) can do (?:anything|everything)"
        r"|(?:chatgpt|gpt|ai|assistant|chatbot) (?:with |in )?(?:developer|dev) mode|simulat[a-z]* (?:the )?(?:developer|dev) mode"
        r"|(?:developer|dev) mode (?:output|responses?|polic(?:y|ies)))(?![a-z])",
        0.8,
        "dan_template",
    ),
    (B + r"dan(?![a-z])", 0.5, "dan_template"),
    (B + r"(?:developer|dev) mode(?![a-z])", 0.4, "dan_template"),
    (
        B + r"(?:no|without|free (?:of|from)|not bound by|break free of|broken free of|beyond) (?:any )?"
        r"(?:restrictions?|limitations?|filters?|censorship|rules|guidelines|ethic[a-z]*|moral[a-z]*|boundaries|constraints)",
        0.75,
        "restriction_removal",
    ),
    (
        B + r"(?:uncensored|unfiltered|unrestricted|amoral|unethical ai|no morals|without morals)",
        0.75,
        "restriction_removal",
    ),
    (
        B
        + r"(?:pretend (?:to be|you are|you're)|act as (?:an? |my )?|role-?play[a-z]*|you are (?:now )?(?:an? )?(?:ai|assistant|character|chatbot) (?:called|named)"
        r"|stay in character|in character|simulate[a-z]*|imagine you are|you are going to (?:act|pretend)|hypothetical(?:ly)?|opposite mode)",
        0.5,
        "role_play",
    ),
    (
        # the assistant's own instructions, not a manual's ("print the instructions for the shelf")
        B
        + r"(?:(?:reveal|print|show|repeat|output|tell me|display|leak) (?:me )?(?:your |the )?(?:system prompt|initial prompt|hidden prompt|prompt above|original prompt)"
        r"|(?:reveal|print|show|repeat|output|tell me|display|leak) (?:me )?(?:all )?(?:your (?:[a-z]+ )?|the (?:system|initial|hidden|original|secret) )instructions"
        r"|what (?:is|are|was|were) your (?:system )?(?:prompt|instructions))",
        0.85,
        "prompt_extraction",
    ),
    (B + r"(?:openai|anthropic|content) polic(?:y|ies)", 0.45, "restriction_removal"),
    (
        B
        + r"(?:two (?:different )?responses|respond (?:twice|in two ways)|\[🔓|\[🔒|classic\b.*jailbreak|normal response and)",
        0.7,
        "dan_template",
    ),
    (
        r"(?:以前の指示|これまでの指示|上記の指示|前の指示|すべての指示|全ての指示|ルールを無視|指示を無視|制約を無視|命令を無視|設定を無視)",
        0.9,
        "instruction_override",
    ),
    (
        r"(?:制限なし|制限のない|制限を解除|検閲なし|フィルターを無視|倫理を無視|倫理的な制約|脱獄|ジェイルブレイク|開発者モード)",
        0.8,
        "restriction_removal",
    ),
    (r"(?:なりきって|ロールプレイ|のふりをして|演じて|になりきり|として振る舞)", 0.5, "role_play"),
    (r"(?:システムプロンプト|初期プロンプト|隠された指示)", 0.8, "prompt_extraction"),
]
