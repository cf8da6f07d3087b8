"""`act`: runs the tool calls of the model's last message, under the approval policy.

Each call is first judged by approval.py: refused calls and calls the user declines become
observations the model sees ("Not run: …"); a call that needs approval pauses the graph
with `interrupt()` (the REPL or LangGraph Studio asks the user and resumes with "yes",
"no" or "always"). Nothing runs until every question of the step is answered, so a resumed
step never repeats a side effect. The approved calls run in LangGraph's ToolNode; results
from outside are wrapped as untrusted data; every result is recorded in the transcript.
A bad call from the model (unknown tool, wrong arguments) becomes an observation the model
sees; a bug inside a tool raises.
"""

import uuid

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph import approval, tools as registry
from graph.context import Context, of, writer
from graph.models import prompts
from graph.state import AgentState

YES = ("yes", "always")
LABELS = {"web_search": "web", "fetch_url": "web", "read_file": "files", "list_dir": "files",
          "run_command": "command output"}  # MCP tools are labelled mcp:SERVER


def act(state: AgentState, runtime: Runtime[Context], config: RunnableConfig) -> dict:
    ctx = of(runtime)
    store = ctx.store
    messages = state["messages"]
    tools = {t.name: t for t in registry.available(ctx, notify=lambda text: writer(runtime)({"notice": text}))}
    taint = approval.tainted(messages)
    last = messages[-1]
    approved, results = [], []
    for call in last.tool_calls:
        tool = tools.get(call["name"])
        verdict = approval.check(ctx, tool, call["args"], taint) if tool else approval.Verdict("run")
        if verdict.action == "ask":
            answer = interrupt({"tool": call["name"], "args": call["args"], "reason": verdict.reason,
                                "always": verdict.pattern})
            if answer == "always" and verdict.pattern:
                store.approve(call["name"], verdict.pattern)
            if answer not in YES:
                results.append(_note(call, prompts.DECLINED, "declined"))
                continue
        elif verdict.action == "refuse":
            results.append(_note(call, prompts.REFUSED.format(reason=verdict.reason), "refused"))
            continue
        approved.append(call)
    if approved:
        node = ToolNode(list(tools.values()))
        ran = node.invoke({**state, "messages": [*messages[:-1], last.model_copy(update={"tool_calls": approved})]},
                          config)["messages"]
        for message in ran:
            tool = tools.get(message.name)
            if tool is not None and (tool.metadata or {}).get("untrusted"):
                label = LABELS.get(tool.name, registry.source(tool))
                message.content = prompts.UNTRUSTED.format(source=label, text=message.text)
                message.additional_kwargs["untrusted"] = label
        results.extend(ran)
    order = {c["id"]: i for i, c in enumerate(last.tool_calls)}
    results.sort(key=lambda m: order.get(m.tool_call_id, 0))
    turn_of = ctx.parent_turn or next((m.id for m in reversed(messages) if m.type == "human"), None)
    for message in results:
        message.id = message.id or str(uuid.uuid4())  # the transcript keys messages by id
        store.append(message, turn_of=turn_of)
    return {"messages": results}


def _note(call: dict, text: str, blocked: str) -> ToolMessage:
    """The result of a call that did not run (`blocked`: declined by the user or refused by policy):
    an error for the model, but not a failed tool (the reward does not count it)."""
    return ToolMessage(text, tool_call_id=call["id"], name=call["name"], status="error",
                       additional_kwargs={"blocked": blocked})


def unwrapped(message: ToolMessage) -> str:
    """A tool result as the user should see it: without the untrusted-data wrapper."""
    source = message.additional_kwargs.get("untrusted")
    head = prompts.UNTRUSTED.format(source=source, text="").split("\n")[0] + "\n"
    text = message.text
    if source and text.startswith(head) and text.endswith("\n</untrusted>"):
        return f"[{source}] " + text[len(head):-len("\n</untrusted>")]
    return text
