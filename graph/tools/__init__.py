"""The agent's tools: typed functions with docstrings, and the registry that gathers them.

Owns: which tools exist for a run (`available(ctx)`: the built-in ones, the self-made ones
from the data folder and those of the MCP servers, narrowed to a sub-agent's subset) and
where each comes from (`source(tool)`: builtin, mcp:NAME or self-made).
Each tool declares in its `metadata`:
  untrusted: True  — its output comes from outside (web, files, MCP, command output) and is
                     marked as data, never instructions (see nodes/act.py and approval.py);
  acts: "shell" | "write" | "self" — what it changes; approval.py decides whether it may.
Expected failures are raised as `ToolException` (the model sees the message); bugs raise.
Does not own: the approval policy (approval.py) or running the calls (nodes/act.py).
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.tools import BaseTool

from graph.context import Context
from graph.tools import evolve, files, learn, made, recall, shell, web
from graph.tools.clock import current_time
from graph.tools.delegate import delegate


def builtin() -> list[BaseTool]:
    """The tools that ship with the agent."""
    tools = [*web.TOOLS, *shell.TOOLS, *files.TOOLS, *recall.TOOLS, *learn.TOOLS, *evolve.TOOLS, made.create_tool, delegate,
             current_time]
    for tool in tools:
        tool.handle_tool_error = True  # a ToolException becomes the observation the model sees
        tool.metadata = {"source": "builtin", **(tool.metadata or {})}
    return tools


def available(ctx: Context, notify: Callable[[str], None] | None = None) -> list[BaseTool]:
    """Every tool this run may use; `notify` gets one line per MCP server that failed to start."""
    from graph.tools import mcp  # the MCP servers start here, lazily, on first use

    tools = builtin()
    tools += mcp.tools(ctx, notify, taken={t.name for t in tools})
    taken = {t.name for t in tools}
    tools += [t for t in made.load(ctx, notify) if t.name not in taken]  # a built-in or MCP tool wins a clash
    if not ctx.settings.memory.enabled:
        tools = [t for t in tools if t not in recall.TOOLS]
    if ctx.only_tools is not None:
        tools = [t for t in tools if t.name in ctx.only_tools]
    return tools


def asked_for(tool: BaseTool, message: str) -> bool:
    """Whether the small embedded model may be offered `tool` for this message: the tools about
    the agent itself (its memory, its prompt and tuning data, its evolution) only when the message
    is about them. Its lexical shortlist took "too long" for long-term memory and "our solar
    system" for the system prompt: SmolLM2 then wrote the rule "add_prompt_rule" into its own prompt
    and copied the tool's result into the following answers (tests/bench/bench_facts.py)."""
    for module in (recall, learn, evolve):
        if tool in module.TOOLS:
            return module.wanted(message)
    return True


def source(tool: BaseTool) -> str:
    return (tool.metadata or {}).get("source", "builtin")


def listing(ctx: Context, notify: Callable[[str], None] | None = None) -> list[dict]:
    """Every tool with its source and the first line of its description (for `agent.py tools`)."""
    return [{"name": t.name, "source": source(t),
             "description": " ".join((t.description or "").strip().split("\n\n")[0].split())}
            for t in available(ctx, notify)]


def run_one(ctx: Context, name: str, args: dict, ask: Callable[[dict], str] | None) -> tuple[bool, str]:
    """Run one tool directly (`agent.py tools run`), under the same policy as the agent:
    (True, result) or (False, why it was refused or failed). `ask` gets approval requests."""
    import uuid

    from langgraph.prebuilt import ToolRuntime
    from pydantic import ValidationError

    from graph import approval

    tools = {t.name: t for t in available(ctx)}
    tool = tools.get(name)
    if tool is None:
        return False, f"no tool named {name!r}; `agent.py tools` lists them"
    verdict = approval.check(ctx, tool, args)
    if verdict.action == "refuse":
        return False, f"refused: {verdict.reason}"
    if verdict.action == "ask":
        answer = ask({"tool": name, "args": args, "reason": verdict.reason, "always": verdict.pattern}) if ask else "no"
        if answer == "always" and verdict.pattern:
            ctx.store.approve(name, verdict.pattern)
        if answer not in ("yes", "always"):
            return False, "declined"
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    if "runtime" in (tool.get_input_schema().model_fields or {}):
        args = {**args, "runtime": ToolRuntime(state={"messages": []}, context=ctx, config={},
                                               stream_writer=lambda _: None, tool_call_id=call_id, store=None)}
    try:
        result = tool.invoke({"type": "tool_call", "name": name, "args": args, "id": call_id})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return False, f"bad arguments for {name}: {problems}"
    return result.status != "error", result.text
