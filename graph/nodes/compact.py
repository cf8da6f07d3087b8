"""`compact`: keeps the live window bounded. After an answer, when the window (prompt +
answer, in the model's tokens) has passed `session.compact_at` of the context window,
the turns before the last `session.keep_turns` are folded into the running summary by
the model and removed from the checkpointed state. They stay in the transcript.

Rare by design: the summary (part of the prompt prefix) changes only here.
"""

from langchain_core.messages import RemoveMessage
from langgraph.runtime import Runtime

from graph import llm, window
from graph.context import Context
from graph.state import AgentState


def compact(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    settings = ctx.settings.session
    backend = llm.active(ctx)
    used = state["messages"][-1].response_metadata.get("context_tokens", 0)
    if used <= settings.compact_at * backend.context_window:
        return {}
    old = window.foldable(state["messages"], settings.keep_turns)
    if not old:
        return {}
    summary, folded = llm.summarize(ctx, state.get("summary", ""), old)
    if not folded:
        return {}
    runtime.stream_writer({"status": f"folded {folded} older messages into the summary"})
    return {"summary": summary, "messages": [RemoveMessage(id=m.id) for m in old[:folded]]}
