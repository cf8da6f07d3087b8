"""The graph's state: the conversation's messages (and, in later issues, its summary).

Owns: `AgentState` (what is checkpointed) and `InputState` (what a caller sends:
new messages). Does not own: persistence (store.py, the checkpointer).
"""

from langgraph.graph import MessagesState


class InputState(MessagesState):
    """A turn's input: the user's new message(s)."""


class AgentState(MessagesState):
    """The checkpointed state of the one endless session."""
