"""Rewards as data, and rating an answer by hand: the recent rewards, the reward curve, what
the strategy policy learned, one turn's reward explained, and good / bad / 1-5 ratings.

Exposes: rate(ctx, kind, stars, turn), explain(store, turn), report(store, last),
curve(store, points), policy(store), MEANINGS (what each reward component means), BLOCK.
Does not own: the rewards (reward.py), the strategy bandit (strategy.py) or how a rating settles a
reward (rating.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graph.actions import Problem

if TYPE_CHECKING:
    from graph.context import Context
    from graph.learning import reward
    from graph.store import Store

# What each reward component means, in one line (the weights are reward.py's).
MEANINGS = {
    "praise": "your next message thanked or praised the answer",
    "correction": "your next message said the answer was wrong",
    "complaint": "your next message complained about its form (too long, too vague, confusing...)",
    "reasked": "you asked nearly the same thing again (the answer did not help)",
    "followed_up": "you went on with the same topic (the answer was used)",
    "silence": "a long silence before your next message (learning.silence_minutes)",
    "stopped": "you stopped the answer while it was written (Ctrl-C)",
    "tool_errors": "tool calls failed while answering (-0.2 each, at most 3)",
    "good": "you marked it good (/good, or 'good example' in words)",
    "bad": "you marked it bad (/bad, or 'bad example' in words)",
    "rating": "your /rate 1-5 (1 = -1, 3 = 0, 5 = +1)",
    "thumbs_up": "a thumbs-up (or similar) emoji in your next message",
    "thumbs_down": "a thumbs-down (or angry) emoji in your next message",
}
BLOCK = 10  # turns per point of the reward curve


def rate(ctx: Context, kind: str, stars: int | None = None, turn: int | None = None) -> reward.Reward:
    """Explicit feedback on an answer, the latest by default: kind "good", "bad" or "rating"
    (stars 1-5). Returns the turn's reward after it; Problem when there is no such answer."""
    if kind not in ("good", "bad", "rating") or (kind == "rating") != (stars is not None) or \
            (stars is not None and not 1 <= stars <= 5):
        raise Problem("rate with good, bad, or a rating of 1 to 5 stars")
    from graph.learning.rating import rate as give

    try:
        return give(ctx, kind, stars, turn)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def explain(store: Store, turn: int) -> reward.Reward:
    """Turn `turn`'s reward, component by component (MEANINGS says what each means)."""
    from graph.learning import reward

    item = reward.get(store, turn)
    if item is None:
        raise Problem(f"turn {turn} has no reward (only answered turns get one; `agent.py reward` lists them)")
    return item


def curve(store: Store, points: int = 30) -> list[dict]:
    """The mean settled reward per BLOCK turns (the latest `points` blocks), oldest first."""
    rows = store.read("SELECT (turn - 1) / ? AS block, AVG(reward), COUNT(*) FROM rewards WHERE settled IS NOT NULL"
                      " GROUP BY block ORDER BY block DESC LIMIT ?", (BLOCK, points))
    return [{"first": b * BLOCK + 1, "last": (b + 1) * BLOCK, "mean": round(m, 3), "n": n}
            for b, m, n in reversed(rows)]


def policy(store: Store) -> dict:
    """What the strategy policy has learned: every tried arm, and the best arms per bucket."""
    from graph.learning import strategy

    arms = strategy.table(store)
    return {"arms": arms, "best": {where: strategy.best(store, where) for where in sorted({a["bucket"] for a in arms})}}


def report(store: Store, last: int = 20, settled_only: bool = False) -> dict:
    """The last `last` rewards (Reward objects; settled_only: not those still waiting for the
    user's next message), the curve and the policy."""
    from graph.learning import reward

    return {"rewards": reward.recent(store, last, settled_only=settled_only), "curve": curve(store),
            "policy": policy(store)}
