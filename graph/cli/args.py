"""The pieces of argument parsing every command shares: the common flags (--home, --config,
--backend, --think, given before or after the command), the optional --json, and the
`count` and `minutes` argument types.

Owns: those shared argparse parts. Does not own: the top-level parser (main.py) or any
command's own arguments (each module of graph/cli adds its command's parser).
Imports only argparse, so `agent.py --help` stays fast.
"""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A number of items for --last: 1 to a billion."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 10**9:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000000000, got {value}")
    return value


def minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, got {text!r}") from None
    if not 0 < value <= 1440:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1440, got {value:g}")
    return value


def common() -> argparse.ArgumentParser:
    """The flags every command takes (a parent parser; unset ones stay off the namespace)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS,
                       help="data folder (default: $AGENT_HOME, else data/ beside agent.py)")
    flags.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="settings file (default: config.yaml beside agent.py)")
    flags.add_argument("--backend", choices=["auto", "ollama", "embedded"], default=argparse.SUPPRESS,
                       help="chat model: auto = Ollama, else the embedded model (default: from config)")
    flags.add_argument("--think", choices=["auto", "on", "off"], default=argparse.SUPPRESS,
                       help="think visibly before answering: always, never, or when needed (default: from config)")
    return flags


def json_flag() -> argparse.ArgumentParser:
    """--json for commands with actions: accepted before or after the action."""
    flag = argparse.ArgumentParser(add_help=False)
    flag.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return flag
