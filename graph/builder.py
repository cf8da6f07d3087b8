"""The agent graph: reason ⇄ act until the model answers, then reflect (keep long-term
memories), reward (settle the previous answer's reward, open this one's), self_rewrite
(learned rules, probation, the agent's own prompt rewrites) and compact the window.

Owns: the nodes and routes. `builder` is the UNCOMPILED graph (LangGraph Studio gets it
from graph/studio.py, on the session's checkpoints); `build_graph(checkpointer)` compiles
it for the CLI with SQLite. The graph hands itself to the tools on the runtime context
(`Context.agent_graph`), so `delegate` runs a sub-agent on it without importing this module.
"""

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.nodes.act import act
from graph.nodes.compact import compact
from graph.nodes.reason import reason
from graph.nodes.reflect import reflect
from graph.nodes.reward import reward_node
from graph.nodes.self_rewrite import self_rewrite
from graph.state import AgentState, InputState


def act_here(state: AgentState, runtime: Runtime[Context], config: RunnableConfig) -> dict:
    """`act`, with this graph on the context for the tools that run sub-agents (`delegate`)."""
    if (ctx := of(runtime)).agent_graph is None:
        ctx.agent_graph = builder
    return act(state, runtime, config)


builder = StateGraph(AgentState, context_schema=Context, input_schema=InputState)
builder.add_node("reason", reason)
builder.add_node("act", act_here)
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
