"""The self-learning local agent, as a LangGraph graph.

            user turn (REPL / -m / Studio)
                     │
   ┌──────────► reason ──(tool calls)──► act ──┐
   │               │  ▲                        │
   │               │  └────────────────────────┘
   │               ▼ (final answer)
   │              END (checkpoint; reflect → reward → self_rewrite come in later issues)

One session forever: checkpointed to SQLite in the data folder under one thread id.
"""
