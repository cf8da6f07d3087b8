"""Engagement reward: what the user's next action says about an answer, as a number in [-1, 1]
with every component kept, so each reward can be explained.

Owns: reading signals (explicit: /good, /bad, /rate 1-5, thumbs emoji; implicit, English
and Japanese: thanks and praise, corrections, complaints about the answer, re-asking the
same thing, following up on the topic, a long silence, stopping the answer, failed tool
calls), turning components into a reward, and the `rewards` table (one row per turn:
components, the strategy that answered, the prompt version, settled once the next action
is known). By design nothing here looks at the answer's length or wording: a verbose answer
cannot earn more than a concise one for the same reaction (length-based engagement rewards
learn to ramble).
Does not own: when rewards are assigned (nodes/reward.py) or what learns from them
(bandit.py, selfprompt.py, tuning.py).
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
                        r"didn'?t work|useless)\b|違う|違います|ちがう|間違|まちが|そうじゃな|そうではな|誤り|"
                        r"動かな|使えな|意味不明", re.IGNORECASE)
COMPLAINT = re.compile(r"\b(too (long|short|verbose|wordy|vague|complicated|much)|shorter|more concise|be brief|"
                       r"get to the point|more detail|in detail|hard to (read|follow|understand)|confusing|"
                       r"stop (repeating|talking about)|don'?t (talk|mention))\b|"
                       r"長すぎ|長い|短く|簡潔に|短すぎ|詳しく|わかりにく|分かりにく|くどい|しつこい|"
                       r"その話はやめ|その話はいい", re.IGNORECASE)
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
    elif COMPLAINT.search(message):
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


def _reward(row: tuple) -> Reward:
    turn, value, components, settled, bucket, arms, version, tainted = row
    return Reward(turn, value, json.loads(components), settled, bucket or "", json.loads(arms or "{}"), version,
                  bool(tainted))


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
