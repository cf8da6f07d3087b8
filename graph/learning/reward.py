"""Engagement reward: what the user's next action says about an answer, as a number in [-1, 1]
with every component kept, so each reward can be explained.

Owns: reading signals (explicit: /good, /bad, /rate 1-5, thumbs emoji; implicit, English
and Japanese: thanks and praise, corrections, complaints about the answer (not a new request
that asks for a style: "Explain in detail how TCP works"), re-asking the same thing,
following up on the topic, a long silence, stopping the answer, failed tool calls), turning
components into a reward, and the `rewards` table (one row per turn: components, the
strategy that answered, the prompt version, settled once the next action is known). By
design nothing here looks at the answer's length or wording: a verbose answer cannot earn
more than a concise one for the same reaction (length-based engagement rewards learn to
ramble).
Does not own: when rewards are assigned (nodes/reward.py) or what learns from them
(strategy.py, selfprompt.py, tuning.py).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from graph.store import Store

# Implicit signals found in the user's next message, with their weights.
PRAISE = re.compile(r"\b(thanks?|thank you|thx|great|perfect|excellent|awesome|helpful|nice|exactly|well done|"
                    r"good (answer|job|point)|that works|it works|makes sense|love it)\b|"
                    r"ありがと|有難う|助か|完璧|素晴らし|すばらし|いいね|さすが|なるほど|分かりやす|わかりやす|最高|ナイス|"
                    r"できました|動きました", re.IGNORECASE)
CORRECTION = re.compile(r"^\s*(no|nope)\b|\b(wrong|incorrect|not correct|not right|not true|that'?s not|that is not|you'?re mistaken|"
                        r"mistake|not what i (asked|meant|wanted)|didn'?t ask|doesn'?t work|does not work|"
                        r"didn'?t work|useless|(doesn'?t|does not|didn'?t|did not) answer (my|the) question|"
                        r"not an answer)\b|違う|違います|ちがう|間違|まちが|そうじゃな|そうではな|誤り|"
                        r"動かな|使えな|意味不明|答えになって(い)?(な|ません)|質問に答えて", re.IGNORECASE)
# Complaints about the previous answer (see `complaint`). TOPIC cues ask it to drop a subject ("stop
# talking about football", 「サッカーの話はやめて」) and always count. STYLE cues ("too long", "in detail",
# 「短く」) count unless their sentence is a new request of its own (REQUEST-shaped: a question,
# "explain", 「教えて」, a colon; with a subject besides the cues and the ABOUT_IT words):
# "Explain in detail how TCP works" and 「短く教えて：日本の首都は？」 ask anew; "Too long.",
# "Can you make it shorter?" and 「その回答は長すぎます」 complain.
TOPIC = re.compile(r"\b(stop (talking|going on) about|stop (repeating|mentioning)|(don'?t|do not) (talk about|mention|"
                   r"bring up|want to hear)|enough about)\b|話は(もう)?(やめ|いい|結構|いらな)|話をやめ|話は?しないで|"
                   r"聞きたくない", re.IGNORECASE)
STYLE = re.compile(r"\b(too (long|short|verbose|wordy|vague|complicated|much)|short(er)?|brief(er)?|concise|"
                   r"simpler|get to the point|(more )?details?|detailed|hard to (read|follow|understand)|confusing)\b|"
                   r"長すぎ|長い|短く|簡潔|短すぎ|詳しく|わかりにく|分かりにく|(もっと|より)(わ|分)かりやすく|くどい|しつこい",
                   re.IGNORECASE)
REQUEST = re.compile(r"[?？:：]|\b(explain|describe|tell|give|show|list|write|summari[sz]e|what|how|why|who|when|"
                     r"where|which)\b|教えて|説明して|とは|について|って何|なぜ|どう", re.IGNORECASE)
ABOUT_IT = frozenset("""answer answers response reply explanation version text output summary gist point points word
words sentence sentences paragraph bit little lot way make keep go write say put try yourself sure ok okay
回答 答 説明 返事 返答 文章 文 内容 全体 要点 要約 教 書 言 読 少 願 話 一言""".split())  # name the answer, not a subject
THUMBS_UP = re.compile("[\U0001F44D\U0001F64F\u2764\U0001F389]|\U0001F600|\U0001F60A")  # 👍 🙏 ❤ 🎉 😀 😊
THUMBS_DOWN = re.compile("[\U0001F44E\U0001F621\U0001F620]")  # 👎 😡 😠

WEIGHTS = {"praise": 0.6, "correction": -0.6, "complaint": -0.4, "reasked": -0.5, "followed_up": 0.2,
           "silence": -0.2, "stopped": -0.5, "tool_errors": -0.2}  # tool_errors: per failed call, at most 3
EXPLICIT = {"good": 1.0, "bad": -1.0, "thumbs_up": 1.0, "thumbs_down": -1.0}
REASKED_AT, FOLLOWED_AT = 0.55, 0.12  # similarity of the next message to the last one


@dataclass
class Reward:
    turn: int
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    settled: float | None = None  # when the next action was known (None: still waiting)
    bucket: str = ""
    arms: dict[str, str] = field(default_factory=dict)
    prompt_version: int | None = None
    tainted: bool = False  # content from outside (web, MCP) was in the turn: never a tuning candidate

    def as_dict(self) -> dict:
        return {"turn": self.turn, "reward": round(self.reward, 3), "components": self.components,
                "settled": self.settled, "bucket": self.bucket, "arms": self.arms,
                "prompt_version": self.prompt_version, "tainted": self.tainted}


def combine(components: dict[str, float]) -> float:
    """The reward from its components: an explicit rating (the latest one wins) decides alone;
    otherwise the implicit components add up, clipped to [-1, 1]."""
    explicit = [v for k, v in components.items() if k in EXPLICIT or k == "rating"]
    total = explicit[-1] if explicit else sum(components.values())
    return max(-1.0, min(1.0, total))


def rating(stars: int) -> float:
    """/rate 1-5 as a reward: 1 → -1, 3 → 0, 5 → +1."""
    if not 1 <= stars <= 5:
        raise ValueError("a rating is from 1 to 5")
    return (stars - 3) / 2


def next_action(previous: str, message: str, gap_s: float | None, silence_s: float) -> dict[str, float]:
    """Components of the reward of an answer, read from the user's next message (`message`),
    the message that asked (`previous`) and the time between the answer and the next message."""
    found: dict[str, float] = {}
    if THUMBS_UP.search(message) and not THUMBS_DOWN.search(message):
        found["thumbs_up"] = EXPLICIT["thumbs_up"]
    elif THUMBS_DOWN.search(message):
        found["thumbs_down"] = EXPLICIT["thumbs_down"]
    negative = False
    if CORRECTION.search(message):
        found["correction"] = WEIGHTS["correction"]
        negative = True
    elif complaint(message):
        found["complaint"] = WEIGHTS["complaint"]
        negative = True
    if PRAISE.search(message) and not negative:
        found["praise"] = WEIGHTS["praise"]
    alike = similarity(previous, message)
    if alike >= REASKED_AT:
        found["reasked"] = WEIGHTS["reasked"]
    elif alike >= FOLLOWED_AT and not negative:
        found["followed_up"] = WEIGHTS["followed_up"]
    if gap_s is not None and silence_s and gap_s > silence_s:
        found["silence"] = WEIGHTS["silence"]
    return found


def disliked(message: str) -> bool:
    """Whether the message says the answer before it was not wanted: thumbs down, a correction or
    a complaint (the negative cues of `next_action`)."""
    return bool(THUMBS_DOWN.search(message) or CORRECTION.search(message) or complaint(message))


def complaint(message: str) -> bool:
    """Whether the message complains about the previous answer (see TOPIC and STYLE). Read sentence
    by sentence: "Too long. What is DNS?" complains, then asks; once a new request is made, what
    follows is about it ("Explain TCP. Keep it short.")."""
    if TOPIC.search(message):
        return True
    for sentence in re.split(r"(?<=[.!?。！？\n])", message):
        if asks_anew(sentence):
            return False
        if STYLE.search(sentence):
            return True
    return False


def asks_anew(sentence: str) -> bool:
    """A request with a subject of its own, once the style cues, praise and the words naming the
    answer are taken out: "Explain in detail how TCP works", not "Can you make it shorter?"."""
    rest = STYLE.sub(" ", PRAISE.sub(" ", sentence))
    subject = {w for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", rest.lower()) if w not in STOPWORDS | ABOUT_IT}
    subject |= set(re.findall(r"[\u4e00-\u9fff\u3005]+|[\u30a0-\u30ff]+", rest)) - ABOUT_IT
    return bool(subject and REQUEST.search(sentence))


def of_turn(tool_errors: int, stopped: bool) -> dict[str, float]:
    """Components known when the answer is given: failed tool calls, and the user stopping it."""
    found = {}
    if tool_errors:
        found["tool_errors"] = round(WEIGHTS["tool_errors"] * min(3, tool_errors), 3)
    if stopped:
        found["stopped"] = WEIGHTS["stopped"]
    return found


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two messages' content terms: English words without function words
    (a trailing plural s cut), and character bigrams of kanji and katakana runs (Japanese has
    no spaces; its particles and endings are left out). Whole-text character bigrams would make
    any two English sentences look alike ("the", "is", "th", "e ")."""
    x, y = terms(a), terms(b)
    return len(x & y) / len(x | y) if x and y else 0.0


STOPWORDS = frozenset("""a an the is are was were be been being am do does did done i you he she it we they me him her
us them my your his its our their this that these those what which who whom whose when where why how of to in on at
for with about from by as and or but if then so not no yes can could would should will shall may might must please
tell give show explain let there here just also some any again more most very really much many one thing things
know want need like get got make into out up down over than too there's it's what's that's i'm ask asking
asked question next another now once""".split()) | {"何", "一度", "聞", "質問", "改"}  # what, once more, ask


def terms(text: str) -> set[str]:
    """The content terms of a message (see `similarity`); its character bigrams when it has none."""
    text = text.lower()
    found = {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
             for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text) if w not in STOPWORDS}
    for run in re.findall(r"[\u4e00-\u9fff\u3005]+|[\u30a0-\u30ff]+", text):
        found |= ({run[i:i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}) - STOPWORDS
    if not found:  # only function words or kana: compare the characters themselves
        plain = re.sub(r"[\W_]+", " ", text).strip()
        found = {plain[i:i + 2] for i in range(len(plain) - 1)}
    return found


# --- the rewards table ----------------------------------------------------------------------

def get(store: Store, turn: int) -> Reward | None:
    rows = store.read("SELECT turn, reward, components, settled, bucket, arms, prompt_version, tainted FROM rewards"
                      " WHERE turn=?", (turn,))
    return _reward(rows[0]) if rows else None


def save(store: Store, item: Reward) -> Reward:
    item.reward = combine(item.components)
    now = time.time()
    with store.write() as db:
        db.execute("INSERT INTO rewards (turn, reward, components, settled, bucket, arms, prompt_version, tainted,"
                   " created, updated) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(turn) DO UPDATE SET"
                   " reward=excluded.reward, components=excluded.components, settled=excluded.settled,"
                   " bucket=excluded.bucket, arms=excluded.arms, prompt_version=excluded.prompt_version,"
                   " tainted=excluded.tainted, updated=excluded.updated",
                   (item.turn, item.reward, json.dumps(item.components), item.settled, item.bucket,
                    json.dumps(item.arms), item.prompt_version, int(item.tainted), now, now))
    return item


def recent(store: Store, n: int, settled_only: bool = True) -> list[Reward]:
    """The last `n` rewards, oldest first."""
    where = "WHERE settled IS NOT NULL" if settled_only else ""
    rows = store.read(f"SELECT turn, reward, components, settled, bucket, arms, prompt_version, tainted FROM rewards {where}"
                      " ORDER BY turn DESC LIMIT ?", (n,))
    return [_reward(r) for r in reversed(rows)]


def of_prompt(store: Store, version: int, last: int | None = None) -> list[float]:
    """Settled rewards of the turns a prompt version answered (the last `last`), oldest first."""
    rows = store.read("SELECT reward FROM rewards WHERE prompt_version=? AND settled IS NOT NULL"
                      " ORDER BY turn DESC LIMIT ?", (version, last or -1))
    return [r[0] for r in reversed(rows)]


def rated_down(item: Reward) -> bool:
    """Whether the user rated the answer bad (/bad, /rate 1-2, a thumbs down): an explicit rating
    decides the reward alone (`combine`), so a negative reward with one is that rating."""
    return item.reward < 0 and bool({*EXPLICIT, "rating"} & item.components.keys())


def served(store: Store, version: int) -> int:
    """How many settled rewards a prompt version has (of_prompt's length, counted by SQLite)."""
    return store.read("SELECT COUNT(*) FROM rewards WHERE prompt_version=? AND settled IS NOT NULL", (version,))[0][0]


def _reward(row: tuple) -> Reward:
    turn, value, components, settled, bucket, arms, version, tainted = row
    return Reward(turn, value, json.loads(components), settled, bucket or "", json.loads(arms or "{}"), version,
                  bool(tainted))


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
