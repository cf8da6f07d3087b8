"""The conversation as data: its last turns, a page of it, messages found by text, the latest
reasoning, and a backup of the database.

Exposes: history(store, last), page(store, before, turns), search(store, text, limit),
why(store), backup(store). Messages are Store rows: id, turn, role, content, reasoning,
tool_calls, tool_call_id, name, meta, created. Does not own: the transcript (store.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graph.store import Store


def history(store: Store, last: int | None = None) -> list[dict]:
    """The messages of the last `last` turns (all when None), oldest first."""
    return store.history(last)


def page(store: Store, before: int | None = None, turns: int = 20) -> dict:
    """One page of the conversation for scrolling back: the messages of the `turns` turns
    before turn `before` (the newest turns when None), oldest first, and `before` for the
    next (older) page (None when this page reaches the first turn)."""
    if turns < 1:
        raise ValueError("turns must be at least 1")
    newest = 2**62 if before is None else before
    numbers = [r[0] for r in store.read("SELECT DISTINCT turn FROM transcript WHERE turn < ? ORDER BY turn DESC"
                                        " LIMIT ?", (newest, turns))]
    messages = [m for turn in sorted(numbers) for m in store.history_of(turn)]
    older = bool(numbers) and bool(store.read("SELECT 1 FROM transcript WHERE turn < ? LIMIT 1", (min(numbers),)))
    return {"messages": messages, "before": min(numbers) if older else None}


def search(store: Store, text: str, limit: int = 50) -> list[dict]:
    """The latest `limit` messages containing `text`, oldest first."""
    return store.search(text, limit)


def why(store: Store) -> dict | None:
    """The latest answer that was reasoned about (its message, reasoning included), or None."""
    return store.last_reasoning()


def backup(store: Store) -> dict:
    """A consistent copy of the database in the data folder's backups/: its path and size."""
    path = store.backup()
    return {"path": str(path), "bytes": path.stat().st_size}
