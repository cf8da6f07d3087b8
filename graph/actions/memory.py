"""Long-term memory as data: the memories listed, searched (with old turns), added, forgotten,
and consolidated with the model's help.

Exposes: memories(ctx) (the data folder's Memories; Problem when memory is off or cannot
open), listing(ctx, everything, last), search(ctx, text, k, turns, touch), add(ctx, text,
kind, importance, pinned, source), forget(ctx, memory_id), consolidate(ctx), row(memories, m).
Memories are dicts: Memory.as_dict() with `strength`, the importance after fading.
Does not own: storing and ranking memories (memory/memories.py, memory/vectors.py) or when consolidation is
due (nodes/reflect.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graph.actions import Problem

if TYPE_CHECKING:
    from graph.context import Context
    from graph.memory.memories import Memories, Memory

KINDS = ("fact", "preference", "decision", "result", "note")


def memories(ctx: Context) -> Memories:
    """The context's long-term memory; Problem when it is turned off or cannot be opened."""
    from graph.memory.memories import MemoryUnavailable, memories_of

    if not ctx.settings.memory.enabled:
        raise Problem("long-term memory is turned off (memory.enabled in config.yaml)")
    try:
        return memories_of(ctx)
    except MemoryUnavailable as exc:
        raise Problem(f"long-term memory is unavailable: {exc}") from None


def row(found: Memories, m: Memory) -> dict:
    """A memory as a dict with its `strength`: its importance after fading."""
    return {**m.as_dict(), "strength": round(found.effective_importance(m), 3)}


def listing(ctx: Context, everything: bool = False, last: int | None = None) -> list[dict]:
    """The active memories, newest first (everything: also superseded, merged, forgotten and
    dropped ones); only the newest `last` when given."""
    found = memories(ctx)
    return [row(found, m) for m in found.list(status=None if everything else "active", limit=last)]


def search(ctx: Context, text: str, k: int = 10, turns: int = 3, touch: bool = False) -> dict:
    """The `k` memories most relevant to `text` (touch: count this as a use, as recalling does)
    and the `turns` old turns most relevant to it: {"memories": [...], "turns": [...]}."""
    found = memories(ctx)
    kept, past = found.recall(text, k=k, turns=turns, touch=touch)
    return {"memories": [row(found, m) for m in kept], "turns": past}


def add(ctx: Context, text: str, kind: str = "fact", importance: float = 0.8, pinned: bool = False,
        source: str = "user") -> tuple[dict, str]:
    """Remember `text` (importance 0-1); returns the memory and what happened: "added",
    "merged" (already known: strengthened) or "superseded" (it replaces an older one)."""
    if kind not in KINDS:
        raise Problem(f"a memory is one of {', '.join(KINDS)}, not {kind!r}")
    found = memories(ctx)
    memory, what = found.add(text, kind, importance, pinned=pinned, source=source)
    return row(found, memory), what


def forget(ctx: Context, memory_id: str) -> dict:
    """Forget the memory with this id (or a unique beginning of it); returns it."""
    found = memories(ctx)
    try:
        return row(found, found.forget(memory_id))
    except KeyError as exc:
        raise Problem(str(exc.args[0] if exc.args else exc)) from None


def consolidate(ctx: Context) -> dict:
    """Merge related memories into summaries written by the model, drop low-value ones:
    {"merged", "summaries", "dropped"}."""
    from graph.models import llm, prompts

    def merge(texts: list[str]) -> str:
        items = "\n".join(f"- {t}" for t in texts)
        no_thinking = {"reasoning": False} if llm.active(ctx).think_style == "native" else {}
        return llm.active(ctx).chat.invoke(prompts.CONSOLIDATE.format(items=items), **no_thinking).text.strip()

    return memories(ctx).consolidate(merge)  # it records when it ran ("consolidated_at")
