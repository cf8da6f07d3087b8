"""`self_rewrite`: the agent changes its own system prompt, and judges its changes by reward.

After each answer: a standing instruction in the user's words ("be more concise from now on",
「もっと短く答えて」) becomes a learned rule at once (the user asked; no probation); a version
on probation that has answered enough rewarded turns is kept or rolled back
(selfprompt.verdict); and every `learning.rewrite_every` rewarded turns of one version, or
when the mean reward falls by `learning.reward_drop` while one version answered, the model reads the recent turns with
their rewards and proposes rules to add or remove (a model that can: selfprompt.asks_model) (a metaprompt step, JSON-constrained; it is shown the rules
rolled back lately, and one proposed again before its cooldown is dropped). The proposal is validated (a small model writes junk) and goes on probation. Nothing changes
while learning is frozen or turned off, or while content from outside (web, tool servers) is
in the window: the rewrite never reads tool output, and outside text never becomes a rule.
Does not own: the versions and the verdict (selfprompt.py), or the rewards (reward.py).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph import approval
from graph.context import Context, of, writer
from graph.learning import guard, reward, selfprompt
from graph.models import llm, prompts
from graph.state import AgentState

SCHEMA = {"type": "object", "required": ["add", "remove", "why"], "properties": {
    "add": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 200}},
    "remove": {"type": "array", "maxItems": 3, "items": {"type": "integer", "minimum": 1, "maximum": 50}},
    "why": {"type": "string", "maxLength": 300}}}
DIGEST_TURNS = 8
COOLDOWN = 3  # a rolled-back rule is not proposed again for this many probations' worth of turns
REPLY_TOKENS = 400  # room for two rules and the reason (SCHEMA's lengths)


def self_rewrite(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    if ctx.parent_turn:
        return {}
    messages = state["messages"]
    last_human = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
    if last_human < 0 or messages[-1].type != "ai":
        return {}
    store = ctx.store
    if not ctx.settings.learning.enabled or guard.frozen(store):
        return {}
    say = lambda text: writer(runtime)({"status": text})  # noqa: E731
    turn = store.turn_of(messages[last_human].id)
    rule = guard.directives(messages[last_human].text).get("rule")
    if rule and not changed_during(store, turn):
        try:
            version = selfprompt.propose(ctx, selfprompt.with_rule(selfprompt.current(ctx).text, rule), "user",
                                         f"the user said: {rule}", probation=False)
            guard.log(store, "prompt", f"version {version.id}: rule from the user's words: {rule}", turn)
            say(f"prompt version {version.id}: I will follow this from now on (`agent.py prompt diff` shows the change)")
        except ValueError as exc:
            guard.log(store, "rejected", f"rule from the user's words ({rule[:80]}): {exc}", turn)
    decided = selfprompt.verdict(ctx)
    if decided:
        kind = "kept" if decided["kept"] else "rolled back"
        guard.log(store, "probation", f"version {decided['version']} {kind}: {decided['why']}", turn)
        say(f"prompt version {decided['version']} {kind} after probation ({decided['why']})")
        return {}
    why = due(ctx)
    if why and not approval.tainted(messages) and selfprompt.asks_model(ctx, llm.active(ctx).name):
        propose(ctx, why, turn, say)
    return {}


def changed_during(store, turn: int | None) -> bool:
    """Did a tool already change the prompt in this turn (so the user's words are not applied twice)?"""
    started, _ = store.turn_times(turn) if turn else (None, None)
    return bool(started and store.read("SELECT 1 FROM prompts WHERE created >= ? AND author IN ('agent', 'user')",
                                       (started,)))


def due(ctx: Context) -> str:
    """Why a rewrite should be proposed now ('' when not): enough turns, or a falling reward."""
    store, limits = ctx.store, ctx.settings.learning
    version = selfprompt.current(ctx)
    if version.status == "probation":
        return ""
    served = reward.served(store, version.id)
    if limits.rewrite_every and served and served % limits.rewrite_every == 0:
        return f"{served} rewarded turns since version {version.id}"
    # a fall while this version answered both windows (after a rollback the recent turns are the
    # failed candidate's: they say nothing about the version serving now)
    recent = reward.recent(store, 2 * limits.reward_window)
    if len(recent) == 2 * limits.reward_window and all(r.prompt_version == version.id for r in recent):
        values = [r.reward for r in recent]
        before, now = reward.mean(values[:limits.reward_window]), reward.mean(values[limits.reward_window:])
        if now < before - limits.reward_drop:
            return f"the mean reward fell from {before:+.2f} to {now:+.2f}"
    return ""


def digest(ctx: Context) -> str:
    """The recent rewarded turns as the metaprompt shows them (no tool output: it may be untrusted)."""
    store = ctx.store
    lines = []
    for item in reward.recent(store, DIGEST_TURNS):
        if item.tainted:
            continue
        rows = store.history_of(item.turn)
        user = next((r["content"] for r in rows if r["role"] == "user"), "")
        answer = next((r["content"] for r in reversed(rows) if r["role"] == "assistant" and not r["tool_calls"]), "")
        after = store.history_of(item.turn + 1)
        reaction = next((r["content"] for r in after if r["role"] == "user"), "(none)")
        signals = ", ".join(item.components) or "no signal"
        lines.append(prompts.REWRITE_TURN.format(turn=item.turn, reward=item.reward, signals=signals,
                                                 user=_short(user), answer=_short(answer), reaction=_short(reaction)))
    return "\n\n".join(lines)


def propose(ctx: Context, why: str, turn: int | None, say) -> None:
    """Ask the model for rules to add/remove, validate, and put the result on probation."""
    store = ctx.store
    version = selfprompt.current(ctx)
    turns = digest(ctx)
    if not turns:
        return
    base, rules = selfprompt.split(version.text)
    shown = base + ("\n\nLearned rules:\n" + "\n".join(f"{i}. {r}" for i, r in enumerate(rules, 1)) if rules else "")
    failed = selfprompt.failed_rules(store, within=COOLDOWN * ctx.settings.learning.probation_turns)
    tried = prompts.REWRITE_FAILED.format(rules="\n".join(f"- {r}" for r in failed)) if failed else ""
    guard.log(store, "rewrite", f"asked the model to rewrite version {version.id}: {why}", turn)  # counted by `learn`
    try:
        reply = llm.structured(ctx, prompts.REWRITE.format(prompt=shown, turns=turns, failed=tried), SCHEMA,
                               max_tokens=REPLY_TOKENS)
    except llm.BackendError:
        return
    if reply is None:
        guard.log(store, "rejected", f"rewrite of version {version.id} ({why}): the model gave no usable JSON", turn)
        return
    drop = {n for n in _listed(reply.get("remove")) if isinstance(n, int) and 1 <= n <= len(rules)}
    kept = [r for i, r in enumerate(rules, 1) if i not in drop]
    again = {_norm(r) for r in failed}
    for rule in _listed(reply.get("add"))[:2]:
        rule = " ".join(str(rule).split())
        if _norm(rule) in again:
            guard.log(store, "rejected", f"rewrite of version {version.id} re-proposed a rolled-back rule: {rule}", turn)
        elif rule and rule not in kept:
            kept.append(rule)
    rationale = f"{why}; {' '.join(str(reply.get('why', '')).split())[:200] or 'no reason given'}"
    try:
        candidate = selfprompt.propose(ctx, selfprompt.compose(base, kept), "agent", rationale)
    except ValueError as exc:
        guard.log(store, "rejected", f"rewrite of version {version.id} ({why}): {exc}", turn)
        return
    guard.log(store, "prompt", f"version {candidate.id} on probation: {rationale}", turn)
    say(f"I rewrote my prompt (version {candidate.id}, on probation for {ctx.settings.learning.probation_turns}"
        " turns; `agent.py prompt diff` shows it)")


def _listed(value) -> list:
    """A reply's list field; a model without constrained output may send one string or number instead."""
    return value if isinstance(value, list) else [value] if isinstance(value, (str, int)) and value != "" else []


def _norm(rule: str) -> str:
    return " ".join(rule.casefold().strip(" .。!").split())


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
