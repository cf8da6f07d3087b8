"""`compact`: keeps the live window bounded. After an answer, when the window (prompt +
answer, in the model's tokens) has passed `session.compact_at` of the context window,
the turns before the last `session.keep_turns` are folded into the running summary by
the model and removed from the checkpointed state. They stay in the transcript, and are
queued for indexing in long-term memory (memory/backlog.py, whose thread indexes them while
the user reads and types) so that they can be recalled by meaning.

Rare by design: the summary (part of the prompt prefix) changes only here. A sub-agent's
throwaway context (tools/delegate.py) is never folded.
"""

from langchain_core.messages import RemoveMessage
from langgraph.runtime import Runtime

from graph.context import Context, of, writer
from graph.models import llm, window
from graph.state import AgentState


def compact(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    if ctx.parent_turn:
        return {}
    settings = ctx.settings.session
    backend = llm.active(ctx)
    last = state["messages"][-1].response_metadata
    used = last.get("window_tokens", last.get("context_tokens", 0))
    if used <= min(settings.compact_at * backend.context_window, last.get("budget", backend.context_window)):
        return {}
    old = window.foldable(state["messages"], settings.keep_turns)
    if not old:
        return {}
    try:
        summary, folded = llm.summarize(ctx, state.get("summary", ""), old)
    except llm.backend_errors() as exc:  # the answer is in; folding waits for the next turn
        writer(runtime)({"notice": f"could not fold old turns into the summary now ({exc}); will retry"})
        return {}
    if not folded:
        return {}
    writer(runtime)({"status": f"folded {folded} older messages into the summary"})
    queue_for_indexing(ctx, old[:folded])
    return {"summary": summary, "messages": [RemoveMessage(id=m.id) for m in old[:folded]]}


def queue_for_indexing(ctx: Context, folded: list) -> None:
    """Queue the turns leaving the window for indexing in long-term memory (backlog.py reads
    their user and assistant text from the transcript later)."""
    if not ctx.settings.memory.enabled:
        return
    store = ctx.store
    turns = sorted({store.turn_of(m.id) for m in folded if m.type == "human"} - {None})
    if turns:
        from graph.memory.memories import memories_of

        memories_of(ctx).backlog.add(turns)
