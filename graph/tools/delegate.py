"""`delegate`: the agent sets a sub-agent to work on a subtask (the spec: it "runs agents by itself").

A sub-agent is the same graph with a fresh context: only its task as the first message,
a chosen subset of tools, a turn budget (`tools.delegate.max_rounds` tool rounds), no
checkpoint (it is thrown away after), and nobody to ask: a tool that needs the user's
approval is refused for it. Its messages are recorded in the transcript under the
parent's turn. Sub-agents cannot delegate further.
Does not own: the graph (builder.py puts it on the context as `agent_graph`) or the policy (approval.py).
"""

from __future__ import annotations

import dataclasses
import uuid

from langchain_core.messages import HumanMessage
from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.context import Context, of
from graph.models import prompts


@tool
def delegate(task: str, runtime: ToolRuntime[Context], tools: list[str] | None = None) -> str:
    """Hand a self-contained subtask to a sub-agent and get its result back. Give the task
    with everything it needs to know, and optionally the names of the tools it may use
    (default: all but delegate). Use it to split big jobs into independent parts."""
    ctx = of(runtime)
    if ctx.parent_turn:
        raise ToolException("a sub-agent cannot delegate further; do the task yourself")
    if ctx.agent_graph is None:
        raise ToolException("no sub-agents here: the agent graph is not on this run's context; do the task yourself")
    from graph import tools as registry

    names = {t.name for t in registry.available(ctx)} - {"delegate"}
    unknown = sorted(set(tools or []) - names)
    if unknown:
        raise ToolException(f"no such tool: {', '.join(unknown)}; choose from {', '.join(sorted(names))}")
    messages = (runtime.state or {}).get("messages", [])
    parent = next((m.id for m in reversed(messages) if m.type == "human"), None) or "delegated"
    sub = dataclasses.replace(ctx, interactive=False, only_tools=tuple(sorted(set(tools or names))),
                              parent_turn=parent, max_rounds=ctx.settings.tools.delegate.max_rounds)
    graph = ctx.agent_graph.compile(checkpointer=False)  # its own throwaway state, never the parent's thread
    rounds = ctx.settings.tools.delegate.max_rounds
    # durability "exit": nothing to save; the parent's, which it would inherit, may be "sync", which
    # waits for checkpoints that a graph without a checkpointer never writes (LangGraph 1.2 raises)
    state = graph.invoke({"messages": [HumanMessage(prompts.DELEGATED.format(task=task), id=str(uuid.uuid4()))]},
                         {"recursion_limit": 4 * rounds + 8}, context=sub, durability="exit")
    answer = state["messages"][-1]
    return answer.text or "(the sub-agent gave no answer)"
