"""Topic bans in the user's words: "don't talk about football", "stop mentioning the weather",
「サッカーの話はしないで」 name a topic the answers should leave alone; `banned` returns it
("football", "the weather", "サッカー").

Owns: the bounded set of phrasings (English: don't / never / stop / let's not + talk about,
mention, bring up, discuss; "avoid mentioning", "enough about", "no more talk about",
"I don't want to hear about"; Japanese: 〜の話(題)/のこと/について + はしないで / やめて /
話さないで / 言わないで / 触れないで, 〜に触れないで), what a topic may be (a short noun phrase:
at most `MAX_WORDS` English words or `MAX_CHARS` Japanese characters; a pronoun, "that" or
「その」, names none), the fixed instruction a ban adds to the prompt (`INSTRUCTION`), and
whether the user's message asks about a topic, not just bans it (`asks_about`), and
whether a text brings a topic up (`mentions`: by the topic's name or one of its other names, `SAME`:
a small fixed table, English and Japanese, so "football" is also "soccer" and サッカー).
Does not own: what a ban changes or how long it lasts (feedback.py: a standing preference,
listed by `agent.py learn`, undone by /learn undo).
"""

from __future__ import annotations

import re

MAX_WORDS, MAX_CHARS = 4, 12
INSTRUCTION = "Do not bring up {topic} unless the user asks."

_VERB = (r"(?:talk(?:ing)?|speak(?:ing)?|go(?:ing)? on|chat(?:ting)?) about|mention(?:ing)?|bring(?:ing)? up|"
         r"discuss(?:ing)?")
EN = re.compile(rf"(?:(?<!\bi )(?<!\bwe )(?<!\bthey )\b(?:don'?t|do not|never|stop|quit|let'?s not)\s+(?:{_VERB})|\bavoid\s+(?:{_VERB})|"
                r"\benough (?:about|of)|\bno more (?:talk(?:ing)? )?about|\bi don'?t want to (?:hear|talk) about)"
                r"\s+(?P<topic>[^,.;:!?\n]+)", re.IGNORECASE)
# words that end the topic: "football, please", "the weather anymore", "politics and answer the question"
EN_TAIL = re.compile(r"\s+(?:please|again|any ?more|ever|at all|so much|all the time|unless|now|with me|"
                     r"in (?:your|the|my|any) \w+|(?:and|but|or|so|because|since|when|if)\b).*$", re.IGNORECASE)
EN_NONE = frozenset("it that this these those them me you yourself myself him her us anything something "
                    "everything nothing stuff things".split())
JA = re.compile(r"(?P<topic>[^\s、。，,！？!?「」『』（）()]{1,24}?)"
                r"(?:(?:の話題?|のこと|について)(?:は|を|も)?(?:もう|二度と)?"
                r"(?:しないで|やめて|止めて|話さないで|言わないで|触れないで)|には?(?:もう|二度と)?触れないで)")
JA_LEAD = re.compile(r"^(?:もう|これ以上|二度と)")
JA_PARTICLE = re.compile(r"(?<=[^\u3040-\u309f])[はがをも](?=.)")  # 私はサッカー → サッカー
JA_NONE = frozenset("そ こ あ ど それ これ あれ その この あの そんな こんな あなた 君 自分 私".split())


def banned(text: str) -> list[str]:
    """The topics `text` asks the answers to leave alone, in order, each once."""
    found = []
    for match in EN.finditer(text):
        topic = " ".join(EN_TAIL.sub("", match["topic"]).split())
        words = topic.split()
        if 0 < len(words) <= MAX_WORDS and not (len(words) == 1 and topic.lower() in EN_NONE):
            found.append(topic)
    for match in JA.finditer(text):
        topic = JA_LEAD.sub("", JA_PARTICLE.split(match["topic"])[-1])
        if 0 < len(topic) <= MAX_CHARS and topic not in JA_NONE:
            found.append(topic)
    return list(dict.fromkeys(found))


ARTICLE = re.compile(r"^(?:the|a|an|my|your|our)\s+", re.IGNORECASE)
# Other names of a topic, both ways: a ban on one is a ban on all (English in the singular: a plural matches too).
SAME = [("football", "soccer", "サッカー", "フットボール"), ("baseball", "野球"), ("basketball", "バスケ"),
        ("tennis", "テニス"), ("sport", "スポーツ"), ("weather", "天気", "天候"), ("politics", "政治"),
        ("religion", "宗教"), ("money", "finance", "お金"), ("work", "job", "仕事"), ("cat", "猫", "ネコ"),
        ("dog", "犬", "イヌ"), ("car", "automobile", "車"), ("movie", "film", "映画"), ("music", "音楽"),
        ("video game", "ゲーム"), ("food", "食べ物"), ("war", "戦争")]
_GROUP = {name: group for group in SAME for name in group}


def names(topic: str) -> list[str]:
    """The topic without its article ("the weather" is "weather"), then its other names (`SAME`)."""
    core = ARTICLE.sub("", topic.strip())
    key = core.lower()
    singular = [key[:-1], key[:-2]] if key.endswith("s") else []  # "cats", "taxes"
    group = next((_GROUP[k] for k in [key, *singular] if k in _GROUP), ())
    return [core, *(name for name in group if name != key)]


def asks_about(topic: str, text: str) -> bool:
    """Whether the user's `text` brings up `topic` other than to ban it ("Don't mention football.
    What is a stadium?" does not; "Tell me about soccer" does)."""
    return mentions(topic, JA.sub("", EN.sub("", text)))


def mentions(topic: str, text: str) -> bool:
    """Whether `text` brings up `topic`, by any of its `names`: an English name as whole words (any
    case, a plural too), a Japanese one anywhere."""
    return any(re.search(rf"(?<![A-Za-z]){re.escape(name)}(?:e?s)?(?![A-Za-z])", text, re.IGNORECASE)
               for name in names(topic))
