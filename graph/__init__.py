"""The self-learning local agent, as a LangGraph graph.

            user turn (REPL / -m / Studio)
                     │
   ┌──────────► reason ──(tool calls)──► act ──┐
   │               │  ▲                        │
   │               │  └────────────────────────┘
   │               ▼ (final answer)
   │            reflect (long-term memories) ──► reward (engagement) ──► self_rewrite
   │              (learned rules, probation, own prompt rewrites) ──► compact (fold old turns) ──► END

One session forever: checkpointed to SQLite in the data folder under one thread id.
"""

__version__ = "0.1.0"  # the one place the version is written (`agent.py --version` shows it)
