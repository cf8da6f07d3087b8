"""The agent's own system prompt: versions in SQLite, validation of a rewrite, probation
and rollback.

Owns: the `prompts` table (text, parent, author config/user/agent/evolution, rationale,
status, when and why it was decided), the version answering now (`current`; the first is
config.yaml's `agent.system_prompt`, and editing that setting starts a new version that keeps
the learned rules), the prompt's shape (the configured text, then "Rules learned from the
user:" as a list), checking a proposed text (`problem`), proposing one on probation,
setting one directly (the user), rolling back, and the probation verdict: after
`learning.probation_turns` rewarded turns a candidate's mean reward is compared with its
parent's; worse by more than `learning.rollback_margin` means it is rolled back, with the
numbers as the reason.
Does not own: deciding when to rewrite or writing the proposal (nodes/self_rewrite.py), or the
freeze switch (guard.py), or the settings evolution attaches to a version (models/serving.py).
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass

from graph.context import Context
from graph.learning import reward
from graph.store import Store

RULES = "Rules learned from the user:"
SERVING = ("active", "probation")
AUTHORS = ("config", "user", "agent", "evolution")
MIN_CHARS = 20


@dataclass
class Version:
    id: int
    text: str
    parent: int | None
    author: str
    rationale: str
    status: str  # active | probation | retired | rolled_back
    created: float
    decided: float | None = None
    outcome: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


COLUMNS = "id, text, parent, author, rationale, status, created, decided, outcome"


def _versions(store: Store, where: str = "1", args: tuple = ()) -> list[Version]:
    return [Version(*row) for row in store.read(f"SELECT {COLUMNS} FROM prompts WHERE {where} ORDER BY id", args)]


def get(store: Store, version: int) -> Version | None:
    found = _versions(store, "id=?", (version,))
    return found[0] if found else None


def history(store: Store) -> list[Version]:
    return _versions(store)


def current(ctx: Context) -> Version:
    """The version answering now: the newest active or on probation. Created from config.yaml
    on first use, and again (keeping the learned rules) when that setting is edited."""
    store = ctx.store
    base = ctx.settings.agent.system_prompt.strip()
    serving = _versions(store, "status IN ('active', 'probation')")
    if serving and store.get_meta("config_prompt") == base:
        return serving[-1]
    rules = split(serving[-1].text)[1] if serving else []
    why = "config.yaml's agent.system_prompt changed" if serving else "the configured system prompt"
    version = _create(store, compose(base, rules), serving[-1].id if serving else None, "config", why, "active")
    store.set_meta("config_prompt", base)
    return version


def split(text: str) -> tuple[str, list[str]]:
    """(the prompt without its learned rules, the rules)."""
    head, _, tail = text.partition(RULES)
    rules = [line.strip()[1:].strip() for line in tail.splitlines() if line.strip().startswith("-")]
    return head.strip(), rules


def compose(base: str, rules: list[str]) -> str:
    return base.strip() + (f"\n\n{RULES}\n" + "\n".join(f"- {r}" for r in rules) if rules else "")


def problem(ctx: Context, parent: str, text: str) -> str | None:
    """Why a proposed prompt is unusable (a small model may write junk), or None."""
    limits = ctx.settings.learning
    text = text.strip()
    if not text:
        return "the prompt is empty"
    if len(text) < MIN_CHARS:
        return f"the prompt is too short ({len(text)} characters; at least {MIN_CHARS})"
    if len(text) > limits.prompt_max_chars:
        return f"the prompt is too long ({len(text)} characters; at most {limits.prompt_max_chars})"
    first = split(parent)[0].splitlines()[0].strip() if parent.strip() else ""
    if first and first not in text:
        return f"it drops the prompt's first line (who the agent is): {first!r}"
    if re.search(r"</?untrusted", text, re.IGNORECASE):
        return "it contains <untrusted> tags"
    base, rules = split(text)
    if len(rules) > limits.max_rules:
        return f"too many learned rules ({len(rules)}; at most {limits.max_rules})"
    old = set(split(parent)[1])
    for rule in rules:
        if rule not in old and (why := rule_problem(ctx, rule)):
            return why
    return None


def rule_problem(ctx: Context, rule: str) -> str | None:
    """Why one learned rule is unusable, or None."""
    rule = rule.strip()
    if len(rule) > ctx.settings.learning.rule_max_chars:
        return f"a rule is too long ({len(rule)} characters; at most {ctx.settings.learning.rule_max_chars})"
    words = re.findall(r"[A-Za-z]{2,}", rule)
    cjk = re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]", rule)
    if len(words) < 3 and len(cjk) < 4:
        return f"a rule is not a sentence: {rule!r}"
    if sum(c.isalpha() or c.isspace() for c in rule) < 0.7 * len(rule):
        return f"a rule is mostly symbols: {rule!r}"
    return None


def with_rule(text: str, rule: str) -> str:
    base, rules = split(text)
    rule = " ".join(rule.split())
    return compose(base, rules if rule in rules else [*rules, rule])


def propose(ctx: Context, text: str, author: str, rationale: str, probation: bool = True,
            same_text: bool = False) -> Version:
    """A new version from the one serving now. On probation (the default for the agent's own
    rewrites) it answers from now on and is judged by reward; otherwise it is simply active.
    Raises ValueError with the reason when the text is unusable or unchanged (`same_text`: an
    unchanged text is a new version too, for settings attached to it by evolution)."""
    store = ctx.store
    parent = current(ctx)
    text = text.strip()
    if text == parent.text and not same_text:
        raise ValueError("the prompt is unchanged")
    if why := problem(ctx, parent.text, text):
        raise ValueError(why)
    if parent.status == "probation":  # a new proposal replaces an undecided one
        _decide(store, parent.id, "retired", "replaced by a newer version before its probation ended")
        parent = get(store, parent.parent) if parent.parent else parent
    return _create(store, text, parent.id, author, rationale, "probation" if probation else "active")


def rollback(ctx: Context, why: str) -> tuple[Version, Version]:
    """Undo the version serving now: back to its parent. Returns (undone, now serving)."""
    store = ctx.store
    undone = current(ctx)
    back = get(store, undone.parent) if undone.parent else None
    if back is None:
        raise ValueError("there is no earlier prompt version to roll back to")
    with store.write() as db:
        db.execute("UPDATE prompts SET status='rolled_back', decided=?, outcome=? WHERE id=?",
                   (time.time(), why, undone.id))
        db.execute("UPDATE prompts SET status='active' WHERE id=?", (back.id,))
    return get(store, undone.id), get(store, back.id)


def failed_rules(store: Store, within: int) -> list[str]:
    """The rules that versions rolled back during the last `within` answered turns added to their
    parents: tried lately, and the user was less happy. The rewrite shows them so the model does
    not propose them again at once; later they may be tried again (a verdict on a few turns can
    be unlucky)."""
    found = []
    for version in reversed(_versions(store, "status='rolled_back'")):
        since = store.read("SELECT COUNT(*) FROM (SELECT 1 FROM rewards WHERE created > ? LIMIT ?)",
                           (version.decided or 0, within))[0][0]
        if since >= within:
            continue
        parent = get(store, version.parent) if version.parent else None
        old = set(split(parent.text)[1]) if parent else set()
        found += [r for r in split(version.text)[1] if r not in old and r not in found]
    return found


def set_version(ctx: Context, version: int, why: str) -> Version:
    """Make an earlier version (its text) serve again, as a new version authored by the user."""
    old = get(ctx.store, version)
    if old is None:
        raise ValueError(f"no prompt version {version} (see `prompt history`)")
    return propose(ctx, old.text, "user", why or f"back to version {version}", probation=False)


def verdict(ctx: Context) -> dict | None:
    """Judge the version on probation once it has answered `learning.probation_turns` rewarded
    turns: keep it, or roll it back when its mean reward is below its parent's by more than
    `learning.rollback_margin`. Returns what was decided, or None (nothing to decide yet)."""
    store, limits = ctx.store, ctx.settings.learning
    candidate = current(ctx)
    if candidate.status != "probation":
        return None
    mine = reward.of_prompt(store, candidate.id)
    if len(mine) < limits.probation_turns:
        return None
    theirs = reward.of_prompt(store, candidate.parent, last=limits.probation_turns * 2) if candidate.parent else []
    ours, baseline = reward.mean(mine), reward.mean(theirs) if theirs else 0.0
    numbers = (f"mean reward {ours:+.2f} over {len(mine)} turns vs {baseline:+.2f} for version {candidate.parent}"
               f" ({len(theirs)} turns); margin {limits.rollback_margin}")
    if ours < baseline - limits.rollback_margin:
        rollback(ctx, f"worse on probation: {numbers}")
        return {"version": candidate.id, "kept": False, "why": numbers}
    with store.write() as db:
        db.execute("UPDATE prompts SET status='active', decided=?, outcome=? WHERE id=?",
                   (time.time(), f"kept after probation: {numbers}", candidate.id))
        db.execute("UPDATE prompts SET status='retired', decided=COALESCE(decided, ?) WHERE id=? AND status='active'",
                   (time.time(), candidate.parent))
    return {"version": candidate.id, "kept": True, "why": numbers}


def stats(store: Store, version: int) -> dict:
    values = reward.of_prompt(store, version)
    return {"turns": len(values), "mean": round(reward.mean(values), 3) if values else None}


def diff(a: Version, b: Version) -> str:
    lines = lambda v: (v.text.rstrip("\n") + "\n").splitlines(keepends=True)  # noqa: E731 (the last line too)
    return "".join(difflib.unified_diff(lines(a), lines(b), fromfile=f"version {a.id}", tofile=f"version {b.id}"))


def _decide(store: Store, version: int, status: str, why: str) -> None:
    with store.write() as db:
        db.execute("UPDATE prompts SET status=?, decided=?, outcome=? WHERE id=?", (status, time.time(), why, version))


def _create(store: Store, text: str, parent: int | None, author: str, rationale: str, status: str) -> Version:
    now = time.time()
    with store.write() as db:
        if status == "active":  # one version is active at a time (a probation candidate stands beside its parent)
            db.execute("UPDATE prompts SET status='retired', decided=? WHERE status IN ('active', 'probation')",
                       (now,))
        cur = db.execute("INSERT INTO prompts (text, parent, author, rationale, status, created) VALUES (?,?,?,?,?,?)",
                         (text, parent, author, rationale, status, now))
    return get(store, cur.lastrowid)


def asks_model(ctx: Context, backend: str) -> bool:
    """Is the model on `backend` asked to write rules (learning.self_rewrite)? `auto`: not the
    embedded SmolLM2-135M, whose proposals were all rejected (no usable JSON, the prompt
    unchanged, "a rule is not a sentence: '1.5'"), each costing about an answer's time; the
    feedback table's fixed rules (feedback.py) and the user's own words still change its prompt."""
    mode = ctx.settings.learning.self_rewrite
    return mode == "on" or (mode == "auto" and backend != "embedded")
