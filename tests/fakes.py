"""A scripted chat model for fast, deterministic tests of routing (never the only test of a feature).

`ScriptedChat(replies=[...])` answers each call with the next reply: a string (streamed
word by word) or a dict {"tool": name, "args": {...}} (a tool call). When no tools are
bound it always answers with text, as a real model must when tools are withheld.
`stop_after=N` sets the session's stop signal after N tokens, as Ctrl-C in the REPL does.
`install(ctx, model)` makes it the active backend of a Context's session (its services' "backend" slot).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from graph.models import llm


class ScriptedChat(BaseChatModel):
    replies: list = []
    calls: list = []  # the messages of every call, for assertions
    stop_after: int | None = None  # press "Ctrl-C" (set the session's stop signal) after this many tokens
    stop_signal: Any = None  # that signal (a threading.Event), given by `install`

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        return self.bind(tools=[t.name for t in tools])

    def _stream(self, messages, stop=None, run_manager=None, *, tools=None, **kwargs: Any
                ) -> Iterator[ChatGenerationChunk]:
        self.calls.append(list(messages))
        reply = self.replies.pop(0) if self.replies else "ok"
        if isinstance(reply, dict) and tools:
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[{
                "name": reply["tool"], "args": __import__("json").dumps(reply.get("args", {})),
                "id": f"call_{uuid.uuid4().hex[:8]}", "index": 0}]))
            return
        text = reply if isinstance(reply, str) else "answer without tools"
        for i, word in enumerate(text.split(" ")):
            piece = word if i == 0 else " " + word
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            if self.stop_after is not None and i + 1 >= self.stop_after:
                self.stop_signal.set()  # the user pressed Ctrl-C after seeing this token
            yield chunk

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        full = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            full = chunk if full is None else full + chunk
        return ChatResult(generations=[ChatGeneration(message=message_chunk_to_message(full.message))])


def install(ctx, model: BaseChatModel, context_window: int = 4096, name: str = "fake") -> None:
    """`model` answers as the active backend; `name` "embedded" makes the agent treat it as the small model."""
    if isinstance(model, ScriptedChat):
        model.stop_signal = ctx.stop
    ctx.services.put("backend", llm.Backend(name, "scripted", model, context_window))
