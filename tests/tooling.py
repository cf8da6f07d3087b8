"""Calling one tool directly in a test, the way the act node calls it (with a ToolRuntime
that carries the Context). Expected failures come back as the error text the model sees."""

from __future__ import annotations

import uuid

from langchain_core.messages import ToolMessage
from langgraph.prebuilt import ToolRuntime


def runtime(ctx, state: dict | None = None) -> ToolRuntime:
    return ToolRuntime(state=state or {"messages": []}, context=ctx, config={}, stream_writer=lambda _: None,
                       tool_call_id=f"call_{uuid.uuid4().hex[:8]}", store=None)


def call(tool, ctx, **args) -> ToolMessage:
    """Run `tool` with `args` as a tool call; returns the ToolMessage (status "error" on a refusal)."""
    tool.handle_tool_error = True  # as the registry (graph/tools/__init__.py) sets it
    rt = runtime(ctx)
    names = tool.get_input_schema().model_fields if hasattr(tool.get_input_schema(), "model_fields") else {}
    if "runtime" in names:
        args = {**args, "runtime": rt}
    return tool.invoke({"type": "tool_call", "name": tool.name, "args": args, "id": rt.tool_call_id})
