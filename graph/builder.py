"""The agent graph: reason ⇄ act until the model answers, then reflect (keep long-term
memories) and compact the window.

Owns: the nodes and routes. `builder` is the UNCOMPILED graph (LangGraph Studio compiles
it with its own checkpointer, see langgraph.json); `build_graph(checkpointer)` compiles
it for the CLI with SQLite.
"""

from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import tools_condition

from graph.context import Context
from graph.nodes.act import act
from graph.nodes.compact import compact
from graph.nodes.reason import reason
from graph.nodes.reflect import reflect
from graph.state import AgentState, InputState

builder = StateGraph(AgentState, context_schema=Context, input_schema=InputState)
builder.add_node("reason", reason)
builder.add_node("act", act)
builder.add_node("reflect", reflect)
builder.add_node("compact", compact)
builder.add_edge(START, "reason")
builder.add_conditional_edges("reason", tools_condition, {"tools": "act", END: "reflect"})
builder.add_edge("act", "reason")
builder.add_edge("reflect", "compact")
builder.add_edge("compact", END)


def build_graph(checkpointer=None):
    return builder.compile(checkpointer=checkpointer)
