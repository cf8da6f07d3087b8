"""`reward`: after each answer, settle the reward of the previous one and open this one's.

The user's new message is the next action after the previous answer: its cues (thanks,
corrections, re-asking, follow-up, thumbs), the silence before it, and the previous turn's
own failed tools or stop decide that answer's reward (reward.py). Settling a reward updates
the strategy bandit (strategy.py) and makes a clearly good or bad answer a tuning-data
candidate (tuning.py), unless learning is frozen or outside content was in that turn. This
turn's row is opened with the strategy and prompt version that answered; explicit feedback
(rating.py's `rate`: /good, /bad, /rate N, `agent.py reward --good`) settles it at once. The user's
words can also mark the last answer as a good or bad example, or freeze learning; feedback
with a clear meaning ("too long", 「表にして」) is a complaint about the answer's form (the
reward's own cues know length, not format or language), gives the policy evidence for the arms that
address it and counts toward a standing preference (feedback.py), announced in one line.
A call the user declined or the policy refused is not a failed tool.
Does not own: the scoring itself (reward.py), settling a reward (rating.py) or the prompt rewrite
(nodes/self_rewrite.py).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph import approval
from graph.context import Context, of, writer
from graph.learning import feedback, guard, rating, reward
from graph.state import AgentState


def reward_node(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    if ctx.parent_turn:
        return {}
    messages = state["messages"]
    last_human = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
    answer = messages[-1]
    if last_human < 0 or answer.type != "ai":
        return {}
    store = ctx.store
    turn = store.turn_of(messages[last_human].id)
    if turn is None:
        return {}
    said = messages[last_human].text
    wants = guard.directives(said)
    notes = []
    if "freeze" in wants:
        notes.append(guard.freeze(ctx, wants["freeze"]))
    before = previous(store, turn)
    if before is not None and before.settled is None:
        started, _ = store.turn_times(turn)
        _, ended = store.turn_times(before.turn)
        gap = started - ended if started and ended else None
        asked = next((r["content"] for r in store.history_of(before.turn) if r["role"] == "user"), "")
        before.components.update(reward.next_action(asked, said, gap, ctx.settings.learning.silence_minutes * 60))
        named = feedback.heard(said)  # "use bullet points", 「英語で」: the answer's form was not what the user wanted
        if named and not {"complaint", "correction"} & before.components.keys():
            before.components.pop("followed_up", None)
            before.components["complaint"] = reward.WEIGHTS["complaint"]
        if "example" in wants:  # "that was a good example" is an explicit rating too
            before.components["good" if wants["example"] == "desirable" else "bad"] = \
                reward.EXPLICIT["good" if wants["example"] == "desirable" else "bad"]
        notes += rating.settle(ctx, before)
        if learns(ctx, store) and ctx.settings.learning.policy and ctx.settings.learning.feedback and before.bucket:
            feedback.evidence(store, before.bucket, named)
    if learns(ctx, store) and ctx.settings.learning.feedback:
        notes += feedback.note(ctx, said, turn, lasting="rule" in wants)
    if "example" in wants and before is not None:
        notes.append(rating.keep_example(ctx, before.turn, wants["example"], "user", f"the user said: {said[:120]}"))
    steps = messages[last_human + 1:]
    meta = answer.response_metadata
    reward.save(store, reward.Reward(
        turn, components=reward.of_turn(sum(1 for m in steps if m.type == "tool" and m.status == "error"
                                            and not m.additional_kwargs.get("blocked")),
                                        meta.get("interrupted") == "stopped by the user"),
        bucket=meta.get("bucket", ""), arms=meta.get("strategy", {}), prompt_version=meta.get("prompt_version"),
        tainted=bool(approval.tainted(steps))))
    for note in notes:
        writer(runtime)({"status": note})
    return {}


def learns(ctx: Context, store) -> bool:
    return ctx.settings.learning.enabled and not guard.frozen(store)


def previous(store, turn: int) -> reward.Reward | None:
    rows = store.read("SELECT MAX(turn) FROM rewards WHERE turn < ?", (turn,))
    return reward.get(store, rows[0][0]) if rows and rows[0][0] is not None else None
