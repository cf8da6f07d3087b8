"""`reason`: the model's step. Records new input in the transcript, builds the prompt
(stable prefix first), streams the answer or tool call from the active backend, and
records the result with its metrics.

Does not own: backend choice and fallback (llm.py) or running tools (act.py).
"""

from datetime import date

from langchain_core.messages import SystemMessage
from langgraph.runtime import Runtime

from graph import llm, prompts
from graph.context import Context
from graph.state import AgentState
from graph.store import store_for
from graph.tools import TOOLS


def reason(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
    messages = state["messages"]
    last_ai = max((i for i, m in enumerate(messages) if m.type == "ai"), default=-1)
    for message in messages[last_ai + 1:]:  # the user's message is saved before the model runs
        store.append(message)
    last_human = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
    rounds = sum(1 for m in messages[last_human + 1:] if m.type == "ai")
    tools = TOOLS if rounds < ctx.settings.agent.max_tool_rounds else []
    system = prompts.SYSTEM.format(system_prompt=ctx.settings.agent.system_prompt, today=date.today().isoformat())
    answer, meta = llm.respond(ctx, [SystemMessage(system), *messages], tools,
                               notify=lambda text: runtime.stream_writer({"notice": text}))
    store.append(answer, meta)
    return {"messages": [answer]}
