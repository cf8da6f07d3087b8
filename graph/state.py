"""The graph's state: the live window of messages and the running summary of older ones.

Owns: `AgentState` (what is checkpointed: bounded, see window.py and nodes/compact.py)
and `InputState` (what a caller sends: new messages). Does not own: persistence
(the checkpointer; every message also goes to the transcript, store.py).
"""

from langgraph.graph import MessagesState


class InputState(MessagesState):
    """A turn's input: the user's new message(s)."""


class AgentState(MessagesState):
    """The checkpointed state of the one endless session."""

    summary: str  # older turns, folded away by `compact`
