"""Explicit feedback that acts at once: a fixed table of preferences the user's words name
("too long", 「短く」, "use bullet points", 「表にして」, "answer in English", 「関係ない話はしないで」),
and topic bans ("don't talk about football", 「サッカーの話はしないで」: topics.py reads the topic),
each mapped to bounded changes that do not depend on the model writing text.

Owns: the table (`PREFERENCES`: the cues in English and Japanese, and what each changes: the
policy's arms, an answer length budget in tokens, one fixed instruction sent with the answer,
its words, which become a rule on probation once it stands; for bullets, plain text and topic
bans, the form made from the answer's text, formats.py, since a small model ignores the
instruction; a topic ban is `topic:<topic>`, with the fixed instruction topics.INSTRUCTION: `preference`),
reading a message for them (`asked`: anywhere in it, for this answer; `heard`: as feedback on
the last answer, not inside a new request; `complains`: any sign the last answer was not
wanted; `unwanted`: that, or a /bad rating, for an earlier exchange; `request`: the message
without the feedback before its new request), counting repetitions until a preference stands
(`STANDING_AFTER`, or at once with "from now on"), the standing preferences (meta key `preferences`), the policy evidence feedback
gives (`evidence`), what applies to one answer (`applied`), where the user's preferences stand
in the system prompt (`placed`: last, after the rules the agent wrote), and undo.
A preference that stands ends its rivals (short and long; bullets, plain and table; one
language); a rival named once shapes only the answer to that message.
Does not own: the reward (reward.py), the strategy bandit's updates (strategy.py), prompt versions and
probation (selfprompt.py), or when any of this runs (nodes/reward.py, nodes/reason.py).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from langchain_core.messages import BaseMessage

from graph.context import Context
from graph.learning import formats, guard, reward, selfprompt, strategy, topics
from graph.store import Store

# How many times the user must say it before a preference stands ("from now on": at once).
# Measured with tests/bench/bench_feedback.py's simulated users (scripted model, 30 turns, seeds
# 0-4, share of satisfied answers), after 1 / 2 / 3: short .96 / .91 / .90, bullets .89 / .83 / .83,
# plain .97 / .93 / .90, english .97 / .93 / .90; the mixed user (wants detail on a few questions)
# .69 / .71 / .69 (3: before rival rules left the prompt). Waiting costs a consistent user a turn
# per repetition; a wrong one is shown in the turn and undone with /learn undo.
STANDING_AFTER = 1
# The short preference's answer budget: SmolLM2-135M wrote 48-57 words in 60 tokens (bench_feedback,
# embedded), over the 50 words its short-answer user accepts; about 40 words fit in 48.
SHORT_TOKENS = 48
# A short bulleted list's budget: without one SmolLM2-135M's bulleted answers took 209 tokens, each turn
# 2.1-2.4x the CPU time of frozen's (67-297 tokens; bench_feedback, embedded, 10 turns). With 80: 86 tokens,
# 9/10 satisfied; with 64: 68 tokens, 7/10 (an answer cut to one sentence is one bullet).
LIST_TOKENS = 80


@dataclass(frozen=True)
class Preference:
    says: str  # for the notice: "shorter answers"
    cue: re.Pattern | None  # None: a topic ban (topics.py reads it)
    instruction: str  # added to the system prompt of each answer it applies to; once it stands, a rule on probation
    group: str  # preferences of one group exclude each other
    arms: dict = field(default_factory=dict)  # the policy's arms that carry it out
    against: dict = field(default_factory=dict)  # the arms that work against it
    max_tokens: int | None = None  # the answer's length budget
    form: Callable[[str], str] | None = None  # made from the answer's text, whatever the model wrote (formats.py)


def _cue(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


PREFERENCES: dict[str, Preference] = {
    "short": Preference(
        "shorter answers",
        _cue(r"\b(too (long|verbose|wordy|much)|shorter|briefer|(more |be )?(brief|concise)(ly)?|keep it short|"
             r"short answers?|get to the point|tl;?dr)\b|長すぎ|長いです|ちょっと長い|短く|簡潔|手短"),
        "Keep answers short: one or two sentences.",
        "length",
        {"style": "concise", "think": "off"}, {"style": "detailed", "think": "on"}, SHORT_TOKENS),
    "long": Preference(
        "more detailed answers",
        _cue(r"\b(too short|more details?|in (more )?detail|more thorough(ly)?|elaborate|explain more)\b|"
             r"詳しく|短すぎ|もっと説明"),
        "Explain in detail, with the reasoning and an example.",
        "length",
        {"style": "detailed"}, {"style": "concise"}),
    "bullets": Preference(
        "bullet points",
        _cue(r"\b(bullet(ed)?( points?| list)?|as a list|in a list|list form)\b|箇条書き"),
        "Format the answer as a short bulleted list: one point per line, each line starting with '- '.",
        "format", {"think": "off"}, max_tokens=LIST_TOKENS, form=formats.bulleted),  # no room to think
    "plain": Preference(
        "plain text without markdown",
        _cue(r"\b(no markdown|without markdown|plain text|no (bullets|lists|formatting|headings))\b|"
             r"マークダウン(は|を)?(使わ|なし|やめ)|普通の文章で"),
        "Write plain sentences only: no markdown, no lists, no headings, no tables, no bold.",
        "format", form=formats.plain),
    "table": Preference(
        "tables",
        _cue(r"\b((as|in|use|make it) an? table|tabular)\b|表にして|表で|表形式"),
        "Format the answer as a markdown table with a header row.",
        "format"),
    "english": Preference(
        "answers in English",
        _cue(r"\b(answer|reply|respond|write|speak|say it)( \w+)? in english\b|\bin english,? please\b|英語で"),
        "Answer in English only.", "language"),
    "japanese": Preference(
        "answers in Japanese",
        _cue(r"\b(answer|reply|respond|write|speak|say it)( \w+)? in japanese\b|\bin japanese,? please\b|日本語で"),
        "Answer in Japanese only.", "language"),
    "on_topic": Preference(
        "answers that stay on the question",
        _cue(r"\b(stay on (the )?topic|off[- ]topic|stick to the (question|point|topic)|only (answer|what i asked)|"
             r"irrelevant)\b|関係(ない|のない)話|余計な(話|こと)|脱線|話をそらさ"),
        "Answer only what was asked: no side topics, no examples from unrelated subjects.",
        "topic"),
}


BAN = "topic:"  # a topic ban's key: "topic:football"


def preference(key: str) -> Preference | None:
    """The preference a key names: one of the table's, or a topic ban ("topic:football")."""
    if key.startswith(BAN):
        topic = key[len(BAN):]
        return Preference(f"not bringing up {topic}", None, topics.INSTRUCTION.format(topic=topic), key,
                          form=formats.leaving_out([topic]))
    return PREFERENCES.get(key)


def asked(text: str) -> list[str]:
    """Every preference the message names, anywhere (it shapes the answer to this message)."""
    return _resolve([key for key, pref in PREFERENCES.items() if pref.cue.search(text)] +
                    [BAN + topic for topic in topics.banned(text)])


def heard(text: str) -> list[str]:
    """The preferences the message states as feedback, read sentence by sentence until a new
    request starts ("Too long. What is DNS?" says short; "Explain TCP in detail" asks anew);
    a question is not a statement ("Can you make it shorter?" shapes its own answer only); a topic
    ban is heard even beside a request ("Tell me about sports, but don't mention football")."""
    found = []
    for sentence in re.split(r"(?<=[.!?。！？\n])", text):
        if sentence.rstrip().endswith(("?", "？")):  # "Can you be more concise?" asks; it shapes that answer only
            if reward.asks_anew(sentence):
                break
            continue
        found += [BAN + topic for topic in topics.banned(sentence)]  # "tell me about sports, but don't mention football"
        if reward.asks_anew(sentence):
            break
        found += [key for key, pref in PREFERENCES.items() if pref.cue.search(sentence)]
    return _resolve(found)


def complains(text: str) -> bool:
    """Whether the message says the answer before it was not wanted: a complaint, correction or
    thumbs down the reward reads, or named feedback ("use bullet points", 「英語で」)."""
    return reward.disliked(text) or bool(heard(text))


def unwanted(store: Store) -> Callable[[BaseMessage, BaseMessage], bool]:
    """Whether the user disowned an exchange: `unwanted(question, next message)` is true when the
    next message `complains`, or the answer was rated bad by hand (/bad, /rate 1-2: reward.rated_down)."""
    def judged(question: BaseMessage, reaction: BaseMessage) -> bool:
        if complains(reaction.text):
            return True
        turn = store.turn_of(question.id)
        rated = reward.get(store, turn) if turn is not None else None
        return rated is not None and reward.rated_down(rated)

    return judged


def request(text: str) -> str:
    """The message without the feedback before its new request ("Too long, shorter please. What is
    DNS?" is "What is DNS?"): the embedded model answered the feedback instead ("You're right, I'll
    avoid any discussion about football.") and took up the banned topic from it; the agent acts on
    it (this module). A message that is all feedback, or asks nothing new, stays as it is."""
    parts = re.split(r"(?<=[.!?。！？\n])", text)
    start = next((i for i, part in enumerate(parts) if part.strip() and reward.asks_anew(part)), 0)
    told = "".join(parts[:start])
    return "".join(parts[start:]).strip() if start and (heard(told) or reward.disliked(told)) else text


def _resolve(keys: list[str]) -> list[str]:
    """One preference per group: the last named wins."""
    chosen: dict[str, str] = {}
    for key in keys:
        chosen[preference(key).group] = key
    return list(dict.fromkeys(k for k in keys if chosen[preference(k).group] == k))


def _state(store: Store) -> dict:
    return json.loads(store.get_meta("preferences") or '{"counts": {}, "standing": {}}')


def _save(store: Store, state: dict) -> None:
    store.set_meta("preferences", json.dumps(state))


def standing(store: Store) -> dict[str, dict]:
    """{key: {"turn", "since", "how", "rule"}}: the preferences in force, oldest first."""
    return _state(store)["standing"]


def note(ctx: Context, text: str, turn: int, lasting: bool) -> list[str]:
    """Count the preferences the message states as feedback; one said `STANDING_AFTER` times
    (or with "from now on": `lasting`) stands from now on, with its rule on probation (not when
    `lasting`: the user's own words become the rule, nodes/self_rewrite.py; they are recorded as its
    rule, so that undo takes them out of the prompt too). Returns notices."""
    store = ctx.store
    state, notices = _state(store), []
    for key in heard(text):
        pref = preference(key)
        rivals = [k for k, p in PREFERENCES.items() if p.group == pref.group and k != key]
        for rival in rivals:
            state["counts"].pop(rival, None)
        count = state["counts"][key] = state["counts"].get(key, 0) + 1
        if key in state["standing"] or not (lasting or count >= STANDING_AFTER):
            continue
        ended = [(rival, state["standing"].pop(rival)) for rival in rivals if rival in state["standing"]]
        for rival, _ in ended:
            guard.log(store, "preference", f"{PREFERENCES[rival].says}: replaced by {pref.says}", turn)
        how = "said to last" if lasting else "said once" if count == 1 else f"said {count} times"
        rule = _rules(ctx, None if lasting else pref.instruction, [e["rule"] for _, e in ended],
                      f"the user {how}: {pref.says}", turn)
        rule = " ".join(text.split()) if lasting else rule  # as guard.directives reads the user's rule
        state["standing"][key] = {"turn": turn, "since": time.time(), "how": how, "rule": rule}
        guard.log(store, "preference", f"{pref.says} from now on ({how})", turn)
        notices.append(f"noted: {pref.says} from now on (undo: /learn undo)")
    _save(store, state)
    return notices


def _rules(ctx: Context, add: str | None, drop: list, why: str, turn: int | None, probation: bool = True
           ) -> str | None:
    """A prompt version with rule `add` and without the rules in `drop` (the agent's, on
    probation; the user's undo is not). Returns `add` when the prompt has it."""
    store = ctx.store
    base, rules = selfprompt.split(selfprompt.current(ctx).text)
    kept = [r for r in rules if r not in drop] + ([add] if add and add not in rules else [])
    if kept != rules:
        try:
            version = selfprompt.propose(ctx, selfprompt.compose(base, kept), "agent" if probation else "user", why,
                                         probation=probation)
        except ValueError as exc:
            guard.log(store, "rejected", f"{why}: {exc}", turn)
            return None
        guard.log(store, "prompt", f"version {version.id}{' on probation' if probation else ''}: {why}", turn)
    return add


def evidence(store: Store, where: str, keys: list[str]) -> None:
    """Feedback says why an answer was bad: the arms that address the reason get a success, the
    arms that work against it a failure (counted as plays), instead of waiting for exploration."""
    for key in keys:
        pref = preference(key)
        if pref.arms:
            strategy.update(store, where, pref.arms, 1.0)
        if pref.against:
            strategy.update(store, where, pref.against, -1.0)


@dataclass
class Applied:
    keys: list[str] = field(default_factory=list)
    arms: dict[str, str] = field(default_factory=dict)  # override the policy's choice
    max_tokens: int | None = None
    instructions: list[str] = field(default_factory=list)
    forms: list[Callable[[str], str]] = field(default_factory=list)  # formats.py's, in this order

    def form(self, text: str) -> str:
        """The answer's text in every form that applies (given to llm.respond when there are any)."""
        return functools.reduce(lambda shaped, form: form(shaped), self.forms, text)


def applied(store: Store, text: str, learning_on: bool) -> Applied:
    """What shapes the answer to `text`: the standing preferences, and (while learning is on)
    the ones the message names; the message wins over a standing rival. A topic ban leaves the
    topic's sentences out unless the message brings it up ("unless the user asks")."""
    now = asked(text) if learning_on else []
    groups = {preference(k).group for k in now}
    keys = [k for k in standing(store) if preference(k) and preference(k).group not in groups] + now
    out = Applied(keys)
    for key in keys:
        pref = preference(key)
        out.arms.update(pref.arms)
        out.instructions.append(pref.instruction)
        out.max_tokens = min(filter(None, (out.max_tokens, pref.max_tokens)), default=None)
        if pref.form and not (key.startswith(BAN) and topics.asks_about(key[len(BAN):], text)):
            out.forms.insert(0 if key.startswith(BAN) else len(out.forms), pref.form)  # out before bullets
    return out


def placed(store: Store, prompt: str, shaped: Applied) -> str:
    """The system prompt's text with the user's preferences last: the standing ones' rules moved
    after the rules the agent wrote itself (a later self-rewrite cannot override them by coming
    after), then the instructions applied to this answer that the prompt lacks."""
    base, rules = selfprompt.split(prompt)
    theirs = {entry["rule"] for entry in standing(store).values()} | set(shaped.instructions)
    ordered = [r for r in rules if r not in theirs] + [r for r in rules if r in theirs]
    told = [text for text in shaped.instructions if text not in rules]
    kept = prompt if ordered == rules else selfprompt.compose(base, ordered)  # unchanged: the cached prefix stays
    return "\n\n".join([kept, *told])


def undo(ctx: Context, key: str | None = None) -> str:
    """End a standing preference (the newest by default) and take its rule out of the prompt."""
    store = ctx.store
    state = _state(store)
    if not state["standing"]:
        raise ValueError("no standing preference to undo (they come from repeated feedback, e.g. 'too long')")
    key = key or max(state["standing"], key=lambda k: state["standing"][k]["since"])
    if key not in state["standing"]:
        raise ValueError(f"no standing preference {key!r} (standing: {', '.join(state['standing'])})")
    gone = state["standing"].pop(key)
    state["counts"].pop(key, None)
    _save(store, state)
    says = preference(key).says
    _rules(ctx, None, [gone.get("rule")], f"the user undid: {says}", None, probation=False)
    guard.log(store, "preference", f"{says}: undone by the user")
    return f"undone: {says} (no longer applied)"
