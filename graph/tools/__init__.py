"""The agent's tools: typed functions with docstrings, and the registry that gathers them.

Owns: which tools exist for a run (`available(ctx)`: the built-in ones, the self-made ones
from the data folder and those of the MCP servers, narrowed to a sub-agent's subset) and
where each comes from (`source(tool)`: builtin, mcp:NAME or self-made).
Each tool declares in its `metadata`:
  untrusted: True  — its output comes from outside (web, files, MCP, command output) and is
                     marked as data, never instructions (see nodes/act.py and policy.py);
  acts: "shell" | "write" | "self" — what it changes; policy.py decides whether it may.
Expected failures are raised as `ToolException` (the model sees the message); bugs raise.
Does not own: the approval policy (policy.py) or running the calls (nodes/act.py).
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.tools import BaseTool

from graph.context import Context
from graph.tools.clock import current_time


def builtin() -> list[BaseTool]:
    """The tools that ship with the agent."""
    tools = [current_time]
    for tool in tools:
        tool.handle_tool_error = True  # a ToolException becomes the observation the model sees
        tool.metadata = {"source": "builtin", **(tool.metadata or {})}
    return tools


def available(ctx: Context, notify: Callable[[str], None] | None = None) -> list[BaseTool]:
    """Every tool this run may use; `notify` gets one line per MCP server that failed to start."""
    tools = builtin()
    if ctx.only_tools is not None:
        tools = [t for t in tools if t.name in ctx.only_tools]
    return tools


def source(tool: BaseTool) -> str:
    return (tool.metadata or {}).get("source", "builtin")
