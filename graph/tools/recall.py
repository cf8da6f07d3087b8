"""The agent's own long-term memory as tools: `remember`, `recall`, `forget`.

They are offered only when the message is about memory (`wanted`: remember, recall, forget,
"what do you know about me", 「覚えて」「忘れて」「前に話した」): relevant memories are already
recalled into every answer and the reflect node keeps new ones, so on a plain question these
tools add nothing, and the small embedded model picked `remember` after any message with
"long" in it ("too long" shares a word with "long-term memory").
Writing or deleting a memory is self-modification (metadata acts="self"): while web or MCP
content is in the window it needs the user's yes (approval.py), so a page cannot plant or
erase memories. Expected failures (unknown id, memory unavailable) are ToolExceptions.
Does not own: the actions (actions/memory.py) or storing and ranking memories (memory/memories.py).
"""

from __future__ import annotations

import re
from typing import Literal

from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.actions import Problem
from graph.actions import memory as act
from graph.context import Context, of

WANTED = re.compile(r"\b(remember|recall|forget|forgot|memor(y|ies|ize|ise)|keep in mind|note that|"
                    r"what do you know about|do you know (my|what i)|(last|previous) (time|session|conversation)|"
                    r"earlier|before|we (talked|discussed|spoke)|i (told|said to) you|you said)\b|"
                    r"覚え|記憶|忘れ|思い出|メモ|前に|以前|この前|先日|話した", re.IGNORECASE)


def wanted(message: str) -> bool:
    """Whether the message is about remembering, recalling or forgetting (see the docstring)."""
    return bool(WANTED.search(message))


@tool
def remember(text: str, runtime: ToolRuntime[Context],
             kind: Literal["fact", "preference", "decision", "result", "note"] = "fact", importance: int = 4) -> str:
    """Keep something in long-term memory for future conversations: a fact about the user, a
    preference, a decision or a result worth keeping. importance: 1 (minor) to 5 (essential)."""
    try:
        memory, what = act.add(of(runtime), text, kind, max(1, min(5, importance)) / 5, source="agent")
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return {"merged": f"Already known; strengthened memory {memory['id']}: {memory['text']}",
            "superseded": f"Remembered as {memory['id']} (it replaces an older {kind}): {memory['text']}"}.get(
        what, f"Remembered as {memory['id']}: {memory['text']}")


@tool
def recall(query: str, runtime: ToolRuntime[Context]) -> str:
    """Search long-term memory, and parts of the conversation too old to be in view, for what
    you know about something. Returns memories with their ids, most relevant first."""
    try:
        found = act.search(of(runtime), query, k=8, touch=True)
    except Problem as exc:
        raise ToolException(str(exc)) from None
    lines = [f"[{m['id']}] ({m['type']}) {m['text']}" for m in found["memories"]]
    lines += [f"[turn {t['turn']}] {' '.join(t['text'].split())[:500]}" for t in found["turns"]]
    return "\n".join(lines) or f"Nothing remembered about {query!r}."


@tool
def forget(memory_id: str, runtime: ToolRuntime[Context]) -> str:
    """Forget one long-term memory by its id (as shown by recall), e.g. when the user says it is wrong."""
    try:
        memory = act.forget(of(runtime), memory_id)
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"Forgot {memory['id']}: {memory['text']}"


remember.metadata = {"acts": "self"}
forget.metadata = {"acts": "self"}
TOOLS = [remember, recall, forget]
