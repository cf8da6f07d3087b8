"""Who may change the agent, and what the user's plain words ask of its learning.

Owns: the freeze switch (`/learn off`, `agent.py learn off`, or "stop learning" / 「学習を止めて」
in the chat: no prompt rewrites, tuning-data edits or policy updates until it is turned on
again; rewards are still recorded), the guard every self-modification goes through
(`may_change`: frozen, turned off in config.yaml, or untrusted content in the window), the
learning log (every self-change and refusal, with its reason), and reading the user's
message for learning directives in English and Japanese: a standing instruction ("be more
concise from now on", 「もっと短く答えて」), marking the last answer as a good or bad example,
and freezing or resuming learning.
Does not own: the changes themselves (selfprompt.py, tuning.py, bandit.py).
"""

from __future__ import annotations

import re
import time

from graph.context import Context
from graph.store import Store, store_for

STANDING = re.compile(
    r"\b(from now on|going forward|in (the )?future|from here on|next time|for future (answers|replies)|"
    r"(always|never|please) (answer|reply|respond|write|use|keep|be|explain|speak|talk|call|add|include|avoid|"
    r"mention|start|end)|(be|answer|reply|respond|write) (more|less) \w+|keep (your |the )?(answers|replies) \w+|"
    r"(don'?t|do not|stop) (mention|talk(ing)? about|using|use|adding|add|writing|write|apologi[sz]|repeating)"
    r"(ing)?)\b|今後|これから(は|も)|以後|次から|いつも|常に|"
    r"(もっと|より|なるべく|できるだけ)\S*(て|で|に)(ください|下さい|ね|ほしい|欲しい)?[。！!]?\s*$|"
    r"(の話は|について(は)?)(しないで|やめて)|(しないで|やめて)(ください|下さい)?[。！!]?\s*$",
    re.IGNORECASE)
GOOD_EXAMPLE = re.compile(r"\b(good|great|perfect|model) (example|answer to (keep|learn))|"
                          r"(keep|save|remember) (this|that) (answer|reply|response)|(learn|tune) (from|on) (this|that)\b|"
                          r"良い例|いい例|お手本|模範|この答え(を|は)(覚え|保存|学習)|今の(答え|回答)(を|は)(覚え|保存|学習)",
                          re.IGNORECASE)
BAD_EXAMPLE = re.compile(r"\b(bad|wrong|poor) example\b|don'?t answer like (this|that)|never answer like (this|that)|"
                         r"悪い例|ダメな例|駄目な例|そういう答え方はしないで|こういう答え方はやめて", re.IGNORECASE)
FREEZE = re.compile(r"\b(stop|pause|freeze) (learning|self[- ]learning|changing yourself)\b|"
                    r"学習を(止め|とめ|やめ|停止|ストップ)|自己学習を(止め|とめ|やめ|停止)", re.IGNORECASE)
RESUME = re.compile(r"\b(resume|restart|unfreeze|start) (learning|self[- ]learning)\b|learn again|"
                    r"学習を(再開|始め|はじめ)|また学習して", re.IGNORECASE)


class Refused(Exception):
    """A self-modification that is not allowed now; the message says why."""


def frozen(store: Store) -> bool:
    return store.get_meta("learning") == "off"


def freeze(ctx: Context, off: bool, who: str = "user") -> str:
    store = store_for(ctx.home)
    store.set_meta("learning", "off" if off else "on")
    log(store, "freeze" if off else "resume", f"self-learning turned {'off' if off else 'on'} by the {who}")
    return ("self-learning is frozen: no prompt rewrites, tuning-data changes or policy updates until /learn on"
            if off else "self-learning is on again")


def may_change(ctx: Context, what: str, tainted: bool = False) -> None:
    """Raise Refused unless the agent may change itself now (`what`: for the message)."""
    store = store_for(ctx.home)
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
    if STANDING.search(text) and not text.rstrip().endswith(("?", "？")) and "freeze" not in found:
        found["rule"] = " ".join(text.split())
    return found
