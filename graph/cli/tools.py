"""`agent.py tools` (list the tools, run one directly, remove a self-made one) and `agent.py
undo` (restore the file the agent edited last).

Owns: those commands' parsers and handlers, and the listing's layout.
Does not own: the tools, their registry and approval policy (graph/tools/, approval.py), or
asking the user (repl.ask).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graph.context import Context


def add(sub, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser("tools", parents=[common], help="list the tools (built-in, MCP, self-made); run or remove one",
                       description="With no action: every tool the agent can use, with its source.")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(run=tools)
    actions = t.add_subparsers(dest="action", metavar="ACTION")
    tr = actions.add_parser("run", parents=[common], help="run one tool directly, under the same approval rules")
    tr.add_argument("name", help="the tool's name (see `agent.py tools`)")
    tr.add_argument("args", nargs="?", default="{}", help="its arguments as a JSON object (default: {})")
    trm = actions.add_parser("remove", parents=[common], help="delete a self-made tool")
    trm.add_argument("name", help="the self-made tool's name")


def add_undo(sub, common: argparse.ArgumentParser) -> None:
    u = sub.add_parser("undo", parents=[common], help="restore the file the agent edited last (its previous version)")
    u.add_argument("--force", action="store_true", help="restore even if the file was changed since the edit")
    u.set_defaults(run=undo)


def tools(args: argparse.Namespace, ctx: Context, console) -> int:
    ctx.settings  # noqa: B018 - validate the config
    if args.action == "remove":
        return remove(args, ctx, console)
    if args.action == "run":
        return run_one(args, ctx, console)
    from rich.table import Table

    from graph import tools as registry
    from graph.tools import mcp

    rows = registry.listing(ctx, lambda text: print(f"warning: {text}", file=sys.stderr))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    table = Table("tool", "source", "what it does", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], row["source"], row["description"])
    console.print(table)
    for server in mcp.servers(ctx):
        detail = f"{server['tools']} tools" if server["status"] == "running" else server.get("error") or ""
        console.print(f"MCP server {server['name']} ({server['kind']}): {server['status']}"
                      + (f" · {detail}" if detail else ""), highlight=False, markup=False)
    return 0


def remove(args: argparse.Namespace, ctx: Context, console) -> int:
    from langchain_core.tools import ToolException

    from graph.tools import made

    try:
        console.print(made.remove(ctx, args.name), highlight=False, markup=False)
    except ToolException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_one(args: argparse.Namespace, ctx: Context, console) -> int:
    try:
        call_args = json.loads(args.args)
    except json.JSONDecodeError as exc:
        print(f"error: the arguments are not valid JSON ({exc.msg} at character {exc.pos})", file=sys.stderr)
        return 2
    if not isinstance(call_args, dict):
        print("error: the arguments must be a JSON object, like '{\"path\": \"README.md\"}'", file=sys.stderr)
        return 2
    from graph import tools as registry
    from graph.builder import builder
    from graph.cli import repl

    ask = (lambda request: repl.ask(request, console)) if ctx.interactive else None
    ctx.agent_graph = builder  # what `delegate` runs a sub-agent on
    ok, text = registry.run_one(ctx, args.name, call_args, ask)
    print(text if ok else f"error: {text}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def undo(args: argparse.Namespace, ctx: Context, console) -> int:
    from graph.tools import files

    ctx.settings  # noqa: B018 - validate the config
    try:
        console.print(files.undo(ctx, force=args.force), highlight=False, markup=False)
    except files.UndoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
