"""The agent graph: reason ⇄ act until the model answers, then reflect (keep long-term
memories), reward (settle the previous answer's reward, open this one's), self_rewrite
(learned rules, probation, the agent's own prompt rewrites) and compact the window.

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
from graph.nodes.rewrite import self_rewrite
from graph.nodes.reward import reward_node
from graph.state import AgentState, InputState

builder = StateGraph(AgentState, context_schema=Context, input_schema=InputState)
builder.add_node("reason", reason)
builder.add_node("act", act)
builder.add_node("reflect", reflect)
builder.add_node("reward", reward_node)
builder.add_node("self_rewrite", self_rewrite)
builder.add_node("compact", compact)
builder.add_edge(START, "reason")
builder.add_conditional_edges("reason", tools_condition, {"tools": "act", END: "reflect"})
builder.add_edge("act", "reason")
builder.add_edge("reflect", "reward")
builder.add_edge("reward", "self_rewrite")
builder.add_edge("self_rewrite", "compact")
builder.add_edge("compact", END)


def build_graph(checkpointer=None):
    return builder.compile(checkpointer=checkpointer)
