"""Who may change the agent, and what the user's plain words ask of its learning.

Owns: the freeze switch (`/learn off`, `agent.py learn off`, or "stop learning" / 「学習を止めて」
in the chat: no prompt rewrites, tuning-data edits or policy updates until it is turned on
again; rewards are still recorded), the guard every self-modification goes through
(`may_change`: frozen, turned off in config.yaml, or untrusted content in the window), the
learning log (every self-change and refusal, with its reason), and reading the user's
message for learning directives in English and Japanese: a standing instruction ("be more
concise from now on", 「もっと短く答えて」), marking the last answer as a good or bad example,
and freezing or resuming learning.
Does not own: the changes themselves (selfprompt.py, tuning.py, strategy.py).
"""

from __future__ import annotations

import re
import time

from graph.context import Context
from graph.store import Store

# A standing instruction: an instruction (an imperative opening a clause, "you should …") meant to
# last ("from now on", "always", "never", "don't", a style comparative). Statements about the
# user ("I always forget my keys", "next time I will bring it") and one-off requests are not.
VERBS = (r"answer(ing)?|repl(y|ying)|respond(ing)?|writ(e|ing)|us(e|ing)|keep(ing)?|be|explain(ing)?|speak(ing)?|"
         r"talk(ing)?|call(ing)?|add(ing)?|includ(e|ing)|avoid(ing)?|mention(ing)?|start(ing)?|end(ing)?|giv(e|ing)|"
         r"show(ing)?|put(ting)?|format(ting)?|list(ing)?|cit(e|ing)|skip(ping)?|omit(ting)?|address(ing)?|try|make|"
         r"say(ing)?|ask(ing)?|check(ing)?|focus(ing)?|stick|prefer|apologi[sz](e|ing)|repeat(ing)?|refer(ring)?|"
         r"translat(e|ing)|summari[sz](e|ing)")
INSTRUCTION = re.compile(rf"(^|[,.;:!]\s*|\b(and|so|then|please)\s+)(please\s+)?(always\s+|never\s+|(don'?t|do not)\s+|"
                         rf"stop\s+)?({VERBS})\b|\byou (should|must|need to|have to)\b|"
                         r"\bi(\s*'d| would)? (like|want|need) you to\b", re.IGNORECASE)
LASTING = re.compile(r"\b(from now on|going forward|in (the )?future|from here on|next time|"
                     r"for future (answers|replies)|always|never|every time|each time|whenever|any ?more|don'?t|"
                     r"do not|stop|shorter|longer|briefer|simpler|(more|less) (\w+ly|concise|brief|detailed|formal|"
                     r"casual|polite|friendly|direct|simple|technical|verbose|wordy|short|long)|"
                     r"keep (your |the )?(answers|replies))\b", re.IGNORECASE)
# Japanese: a lasting marker, then a request at the end (…てください, …ないで, …でお願いします).
STANDING_JA = re.compile(
    r"(今後|これから(は|も)|以後|次(から|回から)|いつも|常に|毎回|ずっと|(もっと|より|なるべく|できるだけ)\S*?[くに])"
    r".*((て|で)(ください|下さい|くれ|ほしい|欲しい|ね)?|ないで(ください|下さい|ね)?|ように(して(ください|下さい)?)?|"
    r"(で|に)お願い(します|いたします)?|こと|しろ|するな)[。！!]?\s*$|(の話は|について(は)?)(しないで|やめて)")
ANSWER = r"(this|that|it|the (last|previous) (answer|reply|response))( (answer|reply|response))?"
GOOD_EXAMPLE = re.compile(
    rf"\b(keep|save|remember|use|mark|store|take) {ANSWER} as an? (good|great|perfect|model) (example|answer)|"
    r"\b(keep|save|remember) (this|that) (answer|reply|response)\b|"
    r"\b(this|that|it) (was|is)( such)? an? (good|great|perfect|model) (example|answer to (keep|learn from))\b(?! of)|"
    r"\b(learn|tune) (from|on) ((this|that) (answer|reply|response|one)\b|(this|that)\s*[.!]*\s*$)|"
    r"(今の|この|その)(答え|回答|返事|返答)?(を|は)(良い例|いい例|お手本|模範)|お手本に(して|する|しよう)|"
    r"模範(解答)?に(して|する)|(良い|いい)例として(覚え|保存|残)|(この|今の)(答え|回答)(を|は)(覚え|保存|学習)",
    re.IGNORECASE)
BAD_EXAMPLE = re.compile(
    rf"\b(keep|save|remember|mark|use) {ANSWER} as an? (bad|poor|wrong) example|"
    r"\b(this|that|it) (was|is) an? (bad|poor|wrong) (example|answer)\b(?! of)|"
    r"\b(don'?t|never) answer like (this|that)|"
    r"(今の|この|その)(答え|回答|返事|返答)?(を|は)(悪い例|ダメな例|駄目な例)|(悪い|ダメな|駄目な)例として(覚え|保存|残)|"
    r"そういう答え方はしないで|こういう答え方はやめて", re.IGNORECASE)
# "stop learning", not "I want to stop learning French"; 学習を止めて, not 英語の学習をやめたい.
FREEZE = re.compile(r"\b(stop|pause|freeze|disable|turn off) (your )?(self[- ])?learning\b"
                    r"(?=\s*(now|for now|for a while|from|please|until|[.!?,;]|$))|\b(stop|quit) changing yourself\b|"
                    r"(?<!の)学習を(止め|とめ|やめ|停止|ストップ)|(自己|自分の)学習を(止め|とめ|やめ|停止)",
                    re.IGNORECASE)
RESUME = re.compile(r"\b(resume|restart|unfreeze|start|enable|turn on) (your )?(self[- ])?learning\b"
                    r"(?=\s*(now|again|please|[.!?,;]|$))|\blearn again\b(?=\s*(now|please|[.!?,;]|$))|"
                    r"(?<!の)学習を(再開|始め|はじめ)|また学習して", re.IGNORECASE)


class Refused(Exception):
    """A self-modification that is not allowed now; the message says why."""


def frozen(store: Store) -> bool:
    return store.get_meta("learning") == "off"


def freeze(ctx: Context, off: bool, who: str = "user") -> str:
    store = ctx.store
    store.set_meta("learning", "off" if off else "on")
    log(store, "freeze" if off else "resume", f"self-learning turned {'off' if off else 'on'} by the {who}")
    return ("self-learning is frozen: no prompt rewrites, tuning-data changes or policy updates until /learn on"
            if off else "self-learning is on again")


def may_change(ctx: Context, what: str, tainted: bool = False) -> None:
    """Raise Refused unless the agent may change itself now (`what`: for the message)."""
    store = ctx.store
    why = None
    if not ctx.settings.learning.enabled:
        why = "self-learning is turned off in config.yaml (learning.enabled)"
    elif frozen(store):
        why = "self-learning is frozen by the user (/learn on or `agent.py learn on` resumes it)"
    elif tainted:
        why = "content from outside (web pages, files, tool servers) is in the conversation and cannot change the agent"
    if why:
        log(store, "refused", f"{what}: {why}")
        raise Refused(f"{what} refused: {why}")


def log(store: Store, kind: str, detail: str, turn: int | None = None) -> None:
    with store.write() as db:
        db.execute("INSERT INTO learning_log (kind, detail, turn, created) VALUES (?,?,?,?)",
                   (kind, detail, turn, time.time()))


def entries(store: Store, last: int = 20) -> list[dict]:
    rows = store.read("SELECT id, kind, detail, turn, created FROM learning_log ORDER BY id DESC LIMIT ?", (last,))
    return [dict(zip(("id", "kind", "detail", "turn", "created"), r)) for r in reversed(rows)]


def directives(text: str) -> dict:
    """What the user's message asks of the learning: {"rule": text} for a standing instruction,
    {"example": "desirable"|"undesirable"} about the last answer, {"freeze": True|False}."""
    text = text.strip()
    found: dict = {}
    if FREEZE.search(text):
        found["freeze"] = True
    elif RESUME.search(text):
        found["freeze"] = False
    if GOOD_EXAMPLE.search(text):
        found["example"] = "desirable"
    elif BAD_EXAMPLE.search(text):
        found["example"] = "undesirable"
    standing = (INSTRUCTION.search(text) and LASTING.search(text)) or STANDING_JA.search(text)
    if standing and not text.rstrip().endswith(("?", "？")) and not {"freeze", "example"} & found.keys():
        found["rule"] = " ".join(text.split())
    return found
