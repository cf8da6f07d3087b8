"""The one endless session: the compiled graph over SQLite, and a turn as a stream of events.

Owns: opening the data folder's checkpointer (`SqliteSaver`, fixed thread id), compiling
the graph, and running one turn as events the front ends render: ("notice", text),
("token", text), ("tool_call", call), ("tool_result", message), ("done", metrics).
Does not own: how those events are shown (repl.py) or what the nodes do.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

from langchain_core.messages import AIMessageChunk, HumanMessage

from graph import llm
from graph.builder import build_graph
from graph.context import THREAD_ID, Context
from graph.store import StoreError, explain, connect, store_for


class Session:
    def __init__(self, ctx: Context):
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.ctx = ctx
        ctx.settings  # validate config.yaml before anything else
        self.store = store_for(ctx.home)
        self.saver = SqliteSaver(connect(self.store.path))
        try:
            self.saver.setup()
        except sqlite3.DatabaseError as exc:
            raise StoreError(explain(self.store.path, exc)) from None
        self.graph = build_graph(self.saver)
        self.config = {"configurable": {"thread_id": THREAD_ID}}

    @property
    def backend(self) -> llm.Backend:
        return llm.active(self.ctx)

    def turn(self, text: str) -> Iterator[tuple[str, object]]:
        """Start one user turn: the message is saved at once, then the returned iterator runs
        the graph, yielding events as they happen. `llm.STOP` (Ctrl-C) keeps the partial answer."""
        llm.STOP.clear()
        message = HumanMessage(text, id=str(uuid.uuid4()))
        self.store.append(message)  # saved before anything else can fail
        return self._events(message)

    def _events(self, message: HumanMessage) -> Iterator[tuple[str, object]]:
        stream = self.graph.stream({"messages": [message]}, self.config, context=self.ctx,
                                   stream_mode=["messages", "custom", "updates"])
        for mode, data in stream:
            if mode == "custom" and "notice" in data:
                yield "notice", data["notice"]
            elif mode == "messages":
                chunk, meta = data
                if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "reason" and chunk.text:
                    yield "token", chunk.text
            elif mode == "updates":
                for node, update in (data or {}).items():
                    for message in (update or {}).get("messages", []):
                        if node == "reason":
                            for call in message.tool_calls:
                                yield "tool_call", call
                        elif node == "act":
                            yield "tool_result", message
        yield "done", self.store.last_answer_meta()

    def messages(self) -> list:
        state = self.graph.get_state(self.config)
        return state.values.get("messages", []) if state else []
