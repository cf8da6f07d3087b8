"""`agent.py`'s argument tree and what runs for it: a command's handler, or with no command
the REPL (or one message per line from piped stdin), or one message with -m.

Owns: the top-level parser (each command's module of graph/cli adds its own sub-parser),
the checks across arguments, building the Context from the common flags, the exit codes of
expected errors (2: config, 1: others, each one line on stderr), and attaching piped stdin
to -m. Does not own: any command (the modules beside this one) or the REPL (repl.py).
Only argparse is imported before the arguments are read, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from graph.cli import args as shared, data, evolve, history, learning, memory, monitor, prompt, reward, serve, status, studio, tools, ui

DESCRIPTION = """A local AI agent in one endless conversation. With no command it opens the
REPL (or reads one message per line from piped stdin); the same session continues
from any directory, kept in the data folder (default: data/ beside agent.py).
With -m, text piped to stdin is attached to the message: git diff | agent.py -m "review this"."""


def parse(argv: list[str]) -> argparse.Namespace:
    from graph import __version__

    common, js = shared.common(), shared.json_flag()
    parser = argparse.ArgumentParser(prog="agent.py", description=DESCRIPTION, parents=[common])
    parser.add_argument("--version", action="version", version=f"agent.py {__version__}")
    parser.add_argument("-m", "--message", metavar="TEXT",
                        help="send one message (with piped stdin attached), print the answer, exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    history.add(sub, common)  # logs, history, backup
    monitor.add(sub, common)  # monitor, metrics
    tools.add(sub, common)
    for group in (memory, reward, prompt, data, learning):
        group.add(sub, common, js)
    tools.add_undo(sub, common)
    evolve.add(sub, common, js)
    status.add(sub, common)
    studio.add(sub, common)
    serve.add(sub, common)
    ui.add(sub, common)
    args = parser.parse_args(argv)
    if check := getattr(args, "check", None):
        check(args)
    if args.command and args.message:
        parser.error("-m cannot be combined with a command")
    if args.message is not None and not args.message.strip():
        parser.error("-m needs a message (it was empty)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from rich.console import Console

    console, errors = Console(), Console(stderr=True)
    from graph.config import ConfigError
    from graph.context import Context
    from graph.models.embedded import EmbeddedModelMissing
    from graph.models.llama_process import ModelCrashed
    from graph.models.llm import BackendError
    from graph.store import StoreError

    ctx = Context(home=getattr(args, "home", ""), config=getattr(args, "config", ""),
                  backend=getattr(args, "backend", ""), think=getattr(args, "think", ""))
    ctx.interactive = args.message is None and sys.stdin.isatty()  # else approvals are refused, not asked
    try:
        return getattr(args, "run", chat)(args, ctx, console)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            errors.print(f"[red]error:[/] {line}", highlight=False, soft_wrap=True)
        return 2
    except (BackendError, EmbeddedModelMissing, ModelCrashed, StoreError) as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1


def chat(args: argparse.Namespace, ctx, console) -> int:
    """No command: one message (-m), or the REPL."""
    from graph.cli import repl
    from graph.session import Session

    session = Session(ctx)
    if args.message is None:
        repl.run(session, console)
        return 0
    meta = repl.show_turn(session, attached(args.message), console)
    repl.show_upkeep(session, console)
    if meta.get("error"):
        return 1
    if not meta.get("interrupted"):
        return 0
    return 130 if meta["interrupted"] == "stopped by the user" else 1  # partial answer: kept, but say so


def attached(message: str) -> str:
    """The -m message with piped stdin attached below it, fenced (`git diff | agent.py -m "review this"`)."""
    if sys.stdin is None or sys.stdin.isatty():
        return message
    text = sys.stdin.read().strip("\n")
    if not text.strip():
        return message
    fence = "`" * max(3, 1 + max((len(run) for run in text.split("\n") if set(run) == {"`"}), default=0))
    return f"{message}\n\n{fence}\n{text}\n{fence}"
