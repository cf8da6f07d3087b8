"""`compact`: keeps the live window bounded. After an answer, when the window (prompt +
answer, in the model's tokens) has passed `session.compact_at` of the context window,
the turns before the last `session.keep_turns` are folded into the running summary by
the model and removed from the checkpointed state. They stay in the transcript, and are
indexed in long-term memory so that they can be recalled by meaning (memory.py).

Rare by design: the summary (part of the prompt prefix) changes only here. A sub-agent's
throwaway context (tools/delegate.py) is never folded.
"""

from langchain_core.messages import RemoveMessage
from langgraph.runtime import Runtime

from graph import llm, window
from graph.context import Context
from graph.state import AgentState
from graph.store import store_for


def compact(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
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
        runtime.stream_writer({"notice": f"could not fold old turns into the summary now ({exc}); will retry"})
        return {}
    if not folded:
        return {}
    runtime.stream_writer({"status": f"folded {folded} older messages into the summary"})
    index_turns(ctx, old[:folded], runtime.stream_writer)
    return {"summary": summary, "messages": [RemoveMessage(id=m.id) for m in old[:folded]]}


def index_turns(ctx: Context, folded: list, write) -> None:
    """Make the turns leaving the window searchable in long-term memory (memory.py reads
    their user and assistant text from the transcript)."""
    if not ctx.settings.memory.enabled:
        return
    store = store_for(ctx.home)
    turns = sorted({store.turn_of(m.id) for m in folded if m.type == "human"} - {None})
    if not turns:
        return
    from graph.memory import MemoryUnavailable, memories_for

    try:
        memories = memories_for(ctx)
        for turn in turns:
            memories.index_turn(turn)
    except MemoryUnavailable as exc:
        write({"notice": f"memory is unavailable, old turns are not indexed: {exc}"})
