"""`act`: runs the tool calls of the model's last message (LangGraph's ToolNode) and
records each result in the transcript. A bad call from the model (unknown tool, wrong
arguments) becomes an observation the model sees; a bug inside a tool raises.
"""

import uuid

from langchain_core.runnables import RunnableConfig
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import AgentState
from graph.store import store_for
from graph.tools import TOOLS

_tool_node = ToolNode(TOOLS)


def act(state: AgentState, runtime: Runtime[Context], config: RunnableConfig) -> dict:
    ctx = runtime.context or Context()
    result = _tool_node.invoke(state, config)
    turn_of = next((m.id for m in reversed(state["messages"]) if m.type == "human"), None)
    for message in result["messages"]:
        message.id = message.id or str(uuid.uuid4())  # the transcript keys messages by id
        store_for(ctx.home).append(message, turn_of=turn_of)
    return result
