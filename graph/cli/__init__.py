"""The front ends a person uses: `agent.py`'s commands, the REPL and its slash commands.

Owns: parsing arguments and slash lines, calling the session and the domain modules, and
laying out what they return for a terminal (rich) or as JSON. Nothing else in `graph`
imports this package (tests/importlinter.ini checks it).
Does not own: running turns (session.py), the graph (builder.py) or any stored data.
"""
