"""The tuning data as data, and changing it: the examples listed, counted, shown, added (from
a turn of the transcript or written by hand), edited, removed and exported for TRL; every
change is written to the learning log here, with who made it.

Exposes: listing(store, label, split, source, last), counts(store), get(store, example_id),
add(ctx, label, turn, user, answer, why, source), edit(ctx, example_id, label, answer, split,
why, by), remove(ctx, example_id, why, by), export(store, fmt, split), latest_turn(store).
`by` says who in the log: "by the user" or "(agent tool)".
Does not own: the examples (tuning.py) or the learning log (guard.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from graph.actions import Problem

if TYPE_CHECKING:
    from graph.context import Context
    from graph.learning.tuning import Example
    from graph.store import Store

WHO = {"user": "by the user", "agent": "(agent tool)"}


def listing(store: Store, label: str | None = None, split: str | None = None, source: str | None = None,
            last: int | None = None) -> list[Example]:
    """The examples, newest first, filtered by label, split and source; the newest `last`."""
    from graph.learning import tuning

    return tuning.listing(store, label, split, source, last)


def counts(store: Store) -> dict[str, int]:
    """How many examples per label and split ("desirable/train" ...)."""
    from graph.learning import tuning

    return tuning.counts(store)


def get(store: Store, example_id: int) -> Example:
    from graph.learning import tuning

    found = tuning.get(store, example_id)
    if found is None:
        raise Problem(f"no example {example_id} (`agent.py data list` lists them)")
    return found


def latest_turn(store: Store) -> int:
    """The latest answered turn (the one a rating or an example is about by default)."""
    rows = store.read("SELECT MAX(turn) FROM rewards")
    if not rows or rows[0][0] is None:
        raise Problem("there is no earlier answer yet")
    return rows[0][0]


def add(ctx: Context, label: str, turn: int | None = None, user: str = "", answer: str = "", why: str = "",
        source: str = "user") -> Example:
    """A new example: turn `turn` of the transcript with the system prompt that answered it
    (and `answer` instead of its answer, when given), or `user` and `answer` written by hand.
    source: "user" or "agent" (who made it)."""
    from graph.learning import guard, reward, selfprompt, tuning

    store = ctx.store
    row = reward.get(store, turn) if turn is not None else None
    try:
        if turn is not None:
            version = selfprompt.get(store, row.prompt_version) if row and row.prompt_version else None
            messages = tuning.from_turn(store, turn, version.text if version else "")
            if answer.strip():
                messages = [*messages[:-1], {"role": "assistant", "content": answer.strip()}]
        else:
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        example = tuning.add(store, messages, label, source, why or f"added {WHO[source]}",
                             value=row.reward if row else None, turn=turn,
                             eval_share=ctx.settings.learning.eval_share)
    except ValueError as exc:
        raise Problem(str(exc)) from None
    guard.log(store, "example", f"#{example.id} {label} added {WHO[source]}"
                 + (f" from turn {turn}" if turn is not None else "") + f": {example.why}", turn)
    return example


def edit(ctx: Context, example_id: int, label: str | None = None, answer: str | None = None,
         split: str | None = None, why: str | None = None, by: str = "by the user") -> Example:
    """Change an example's label, answer or split (None: left as it is)."""
    from graph.learning import guard, tuning

    store = ctx.store
    try:
        example = tuning.edit(store, example_id, label, answer, split, why)
    except ValueError as exc:
        raise Problem(str(exc)) from None
    guard.log(store, "example", f"#{example_id} edited {by}" + (f": {why}" if why else ""), example.turn)
    return example


def remove(ctx: Context, example_id: int, why: str = "", by: str = "by the user") -> Example:
    """Delete an example; returns it."""
    from graph.learning import guard, tuning

    store = ctx.store
    try:
        found = tuning.remove(store, example_id)
    except ValueError as exc:
        raise Problem(str(exc)) from None
    guard.log(store, "example", f"#{found.id} deleted {by}" + (f": {why}" if why else ""), found.turn)
    return found


def export(store: Store, fmt: str, split: str | None = None) -> Iterator[dict]:
    """The examples as records in a TRL trainer's format: sft (messages), kto, dpo (pairs)."""
    from graph.learning import tuning

    return tuning.export(store, fmt, split)
