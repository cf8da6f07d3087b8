#!/usr/bin/env python3
"""agent.py — a self-learning local AI agent in one endless conversation.

Usage: python agent.py [-m TEXT | COMMAND] [--home DIR] [--config FILE] [--version]
COMMAND: logs, history, backup, monitor, metrics, tools, memory, reward, prompt, data, learn,
undo, evolve, status, studio, serve (`python agent.py --help` lists them).
The commands live in graph/cli/ (main.py parses and dispatches); heavy libraries are imported
only after the arguments are read, so --help is instant.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    from graph.cli.main import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
