"""Self-learning as data, and switching it: its state, the learning at a glance, the user's
standing preferences, the learning loop's own model calls, the learning log, freezing and
resuming it, and ending the newest preference.

Exposes: state(ctx, store), summary(ctx, store), preferences(store), extra_calls(ctx, store),
overview(ctx, store, last), switch(ctx, off), undo_preference(ctx).
Does not own: the freeze switch and the log (learning/guard.py), preferences (feedback.py), or
rewrites (nodes/self_rewrite.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graph.actions import Problem

if TYPE_CHECKING:
    from graph.context import Context
    from graph.store import Store


def state(ctx: Context, store: Store) -> str:
    """on, frozen (by the user) or off (learning.enabled in config.yaml)."""
    from graph.learning import guard

    if not ctx.settings.learning.enabled:
        return "off"
    return "frozen" if guard.frozen(store) else "on"


def summary(ctx: Context, store: Store) -> dict:
    """The learning at a glance: state, prompt version serving, mean of the last 20 settled
    rewards, tuning examples. Reads only (no prompt version is created)."""
    from graph import monitor
    from graph.learning import reward, tuning

    values = monitor.recent_rewards(store)
    mean = reward.mean(values)
    return {"state": state(ctx, store), "prompt_version": monitor.prompt_version(store),
            "reward_avg": None if mean is None else round(mean, 3), "rewards": len(values),
            "examples": sum(tuning.counts(store).values()), "preferences": preferences(store),
            "extra_calls": extra_calls(ctx, store)}


def preferences(store: Store) -> list[dict]:
    """The standing preferences from the user's feedback, oldest first."""
    from graph.learning import feedback

    return [{"key": key, "says": feedback.preference(key).says, "turn": p["turn"], "how": p["how"], "rule": p["rule"]}
            for key, p in feedback.standing(store).items() if feedback.preference(key)]


def extra_calls(ctx: Context, store: Store, last: int = 100) -> dict:
    """The learning loop's own model calls (prompt rewrites) over the last `last` answered turns,
    and their bound for the model that answered last: one per `learning.rewrite_every` turns at
    most, none while a version is on probation or learning is frozen, none from a model that is
    not asked to write rules (selfprompt.asks_model: the embedded one by default)."""
    from graph.learning import selfprompt

    rows = store.read("SELECT MIN(turn), COUNT(*) FROM (SELECT turn FROM rewards ORDER BY turn DESC LIMIT ?)", (last,))
    first, turns = rows[0] if rows else (None, 0)
    calls = store.read("SELECT COUNT(*) FROM learning_log WHERE kind='rewrite' AND turn >= ?", (first or 0,))[0][0]
    every = ctx.settings.learning.rewrite_every
    asked = selfprompt.asks_model(ctx, store.last_answer_meta().get("backend", ""))
    return {"calls": calls, "turns": turns, "per_turn": round(calls / turns, 3) if turns else 0.0,
            "bound": round(1 / every, 3) if every and asked else 0.0, "model_rewrites": asked}


def overview(ctx: Context, store: Store, last: int = 10) -> dict:
    """summary() with the newest `last` entries of the learning log (`log`, newest last)."""
    from graph.learning import guard

    return {**summary(ctx, store), "log": guard.entries(store, last)}


def switch(ctx: Context, off: bool) -> str:
    """Freeze (off) or resume self-learning; the line says what happened."""
    from graph.learning import guard

    line = guard.freeze(ctx, off)
    if not off and not ctx.settings.learning.enabled:
        line += " (but learning.enabled is false in config.yaml, which keeps it off)"
    return line


def undo_preference(ctx: Context) -> str:
    """End the newest standing preference; the line says which."""
    from graph.learning import feedback

    try:
        return feedback.undo(ctx)
    except ValueError as exc:
        raise Problem(str(exc)) from None
