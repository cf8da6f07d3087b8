"""Long-term memory: what the agent remembers across the endless session.

  memories   the memories (facts, preferences, summaries of folded turns): adding, recall by meaning
             and recency, importance and decay, consolidation, forgetting; `memories_of` per session
  vectors    their Chroma index and the sentence embedder
  backlog    folded turns waiting to be indexed, indexed off the turn's path by a thread

Does not own: the live window and its summary (graph/models/window.py, graph/nodes/compact.py) or
the transcript (graph/store.py).
"""
