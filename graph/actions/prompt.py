"""The agent's system prompt versions as data, and changing them: the version serving now,
any version, their history, a diff, the user's own version, the agent's proposal on
probation, and rolling back; every change is written to the learning log here.

Exposes: current(ctx), version(ctx, number), version_dict(store, version, serving),
history(store), diff_pair(ctx, a, b), diff(pair), set_prompt(ctx, number, text, why),
propose(ctx, text, why), rollback(ctx, why, by).
Does not own: the versions (selfprompt.py) or the learning log (guard.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graph.actions import Problem

if TYPE_CHECKING:
    from graph.context import Context
    from graph.learning.selfprompt import Version
    from graph.store import Store


def current(ctx: Context) -> Version:
    """The version serving now (the first one is made from the configured prompt if none is)."""
    from graph.learning import selfprompt

    return selfprompt.current(ctx)


def version(ctx: Context, number: int | None = None) -> Version:
    """Version `number`, or the one serving now when None; Problem when there is none."""
    from graph.learning import selfprompt

    serving = selfprompt.current(ctx)
    if number is None:
        return serving
    found = selfprompt.get(ctx.store, number)
    if found is None:
        raise Problem(f"no prompt version {number} (`agent.py prompt history` lists them)")
    return found


def version_dict(store: Store, found: Version, serving: int) -> dict:
    """A version as JSON-ready data: its fields, whether it serves now, and its reward stats."""
    from graph.learning import selfprompt

    return {**found.as_dict(), "serving": found.id == serving, "stats": selfprompt.stats(store, found.id)}


def history(store: Store) -> list[Version]:
    """Every version, oldest first."""
    from graph.learning import selfprompt

    return selfprompt.history(store)


def diff_pair(ctx: Context, a: int | None = None, b: int | None = None) -> tuple[Version, Version] | None:
    """(from, to): the serving version against its parent by default, A against the serving
    one, or A against B. None when the serving version is the first."""
    serving = version(ctx)
    if a is None:
        return (version(ctx, serving.parent), serving) if serving.parent else None
    return version(ctx, a), version(ctx, b) if b is not None else serving


def diff(pair: tuple[Version, Version] | None) -> str:
    """A unified diff of the pair's texts ("" when None or the same)."""
    from graph.learning import selfprompt

    return selfprompt.diff(*pair) if pair else ""


def set_prompt(ctx: Context, number: int | None = None, text: str | None = None, why: str = "") -> Version:
    """The user's own prompt: an earlier version's text again, or a new text; active at once."""
    from graph.learning import guard, selfprompt

    try:
        if number is not None:
            made = selfprompt.set_version(ctx, number, why or f"the user went back to version {number}")
        else:
            made = selfprompt.propose(ctx, text or "", "user", why or "set by the user", probation=False)
    except ValueError as exc:
        raise Problem(f"prompt not changed: {exc}") from None
    guard.log(ctx.store, "prompt", f"version {made.id} set by the user: {made.rationale}")
    return made


def propose(ctx: Context, text: str, why: str) -> Version:
    """The agent's own new prompt, on probation (rolled back if the rewards fall); a refused
    text is logged as rejected and is a Problem."""
    from graph.learning import guard, selfprompt

    try:
        made = selfprompt.propose(ctx, text, "agent", why or "no reason given")
    except ValueError as exc:
        guard.log(ctx.store, "rejected", f"prompt change by the agent ({why}): {exc}")
        raise Problem(f"prompt not changed: {exc}") from None
    guard.log(ctx.store, "prompt", f"version {made.id} on probation (agent tool): {why}")
    return made


def rollback(ctx: Context, why: str, by: str = "by the user", evolved_only: bool = False) -> tuple[Version, Version]:
    """Undo the version serving now, back to its parent, and log who did it (`by`: "by the
    user", "(agent tool)" ...). evolved_only: only a version that evolution promoted (its
    evolved settings are detached too). Returns (undone, serving again)."""
    from graph.learning import guard, selfprompt
    from graph.models import serving

    store = ctx.store
    in_use = selfprompt.current(ctx)
    if evolved_only and in_use.author != "evolution":
        raise Problem(f"the prompt in use (version {in_use.id}) is not from evolution: nothing to roll back"
                      " (`agent.py prompt rollback` undoes any version)")
    try:
        undone, back = selfprompt.rollback(ctx, why)
    except ValueError as exc:
        raise Problem(str(exc)) from None
    if evolved_only:
        serving.attach(store, back.id, {})
    origin = " (from evolution)" if undone.author == "evolution" else ""
    guard.log(store, "rollback", f"version {undone.id}{origin} rolled back to {back.id} {by}: {why}")
    return undone, back
