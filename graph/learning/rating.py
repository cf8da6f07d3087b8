"""Settling an answer's reward: saving it, teaching the strategy policy, keeping a clearly
good or bad answer as a tuning-data candidate; and explicit ratings (/good, /bad, /rate N,
thumbs in the web UI), which settle it at once.

The reward node (nodes/reward.py) settles each answer's reward when the user's next message
arrives; actions/rewards.py rates an answer on the user's word. Does not own: the scoring
(reward.py), the strategy bandit (strategy.py) or the examples' storage (tuning.py).
"""

from __future__ import annotations

import time

from graph.context import Context
from graph.learning import guard, reward, selfprompt, strategy, tuning


def settle(ctx: Context, item: reward.Reward) -> list[str]:
    """The reward is known: save it, teach the policy, keep a clearly good or bad answer as a
    tuning candidate. Returns lines worth showing the user."""
    store = ctx.store
    first = item.settled is None
    item.settled = item.settled or time.time()
    reward.save(store, item)
    notes = []
    if not ctx.settings.learning.enabled or guard.frozen(store):
        return notes  # the reward is kept; nothing learns from it (no log line: this happens every turn)
    if first and item.arms and item.bucket and ctx.settings.learning.policy:
        strategy.update(store, item.bucket, item.arms, item.reward)
    limits = ctx.settings.learning
    label = "desirable" if item.reward >= limits.good_reward else "undesirable" if item.reward <= limits.bad_reward \
        else None
    if label and not item.tainted:
        why = "reward {:+.2f} ({})".format(item.reward, ", ".join(f"{k} {v:+.1f}" for k, v in item.components.items()))
        try:
            keep_example(ctx, item.turn, label, "auto", why, value=item.reward, check=False)
        except ValueError:
            pass  # the turn has no answer to learn from (stopped before any text)
    elif not first and (dropped := tuning.drop_auto(store, item.turn)):  # re-rated to neither good nor bad
        guard.log(store, "example", f"dropped automatic example(s) {', '.join(f'#{i}' for i in dropped)} of turn"
                     f" {item.turn}: re-rated {item.reward:+.2f}", item.turn)
    return notes


def keep_example(ctx: Context, turn: int, label: str, source: str, why: str, value: float | None = None,
                 check: bool = True) -> str:
    """Make a turn a tuning example; returns a line for the user."""
    store = ctx.store
    if check:
        try:
            guard.may_change(ctx, "adding a tuning example")
        except guard.Refused as exc:
            return str(exc)
    row = reward.get(store, turn)
    version = selfprompt.get(store, row.prompt_version) if row and row.prompt_version else None
    try:
        messages = tuning.from_turn(store, turn, version.text if version else "")
    except ValueError as exc:
        return str(exc)
    example = tuning.add(store, messages, label, source, why, value=value if value is not None else
                         (row.reward if row else None), turn=turn, eval_share=ctx.settings.learning.eval_share)
    guard.log(store, "example", f"#{example.id} {label} from turn {turn} ({source}): {why}", turn)
    return f"kept turn {turn}'s answer as a {label} example (#{example.id}; `agent.py data list`)"


def rate(ctx: Context, kind: str, stars: int | None = None, turn: int | None = None) -> reward.Reward:
    """Explicit feedback on an answer (the latest by default): kind good, bad or rating (stars 1-5).
    Raises ValueError when there is no answer to rate."""
    store = ctx.store
    if turn is None:
        rows = store.read("SELECT MAX(turn) FROM rewards")
        turn = rows[0][0] if rows else None
    item = reward.get(store, turn) if turn is not None else None
    if item is None:
        raise ValueError("no answer to rate yet" if turn is None else f"turn {turn} has no answer with a reward")
    for key in ("good", "bad", "rating", "thumbs_up", "thumbs_down"):
        item.components.pop(key, None)  # the latest explicit rating replaces earlier ones
    if kind == "rating":
        item.components["rating"] = reward.rating(stars or 0)
    else:
        item.components[kind] = reward.EXPLICIT[kind]
    settle(ctx, item)
    return reward.get(store, turn)
