"""The self-learning local agent, as a LangGraph graph.

            user turn (REPL / -m / Studio)
                     │
   ┌──────────► reason ──(tool calls)──► act ──┐
   │               │  ▲                        │
   │               │  └────────────────────────┘
   │               ▼ (final answer)
   │            reflect (long-term memories) ──► compact (fold old turns) ──► END (checkpoint)
   │            (reward → self_rewrite come in a later issue)

One session forever: checkpointed to SQLite in the data folder under one thread id.
"""
