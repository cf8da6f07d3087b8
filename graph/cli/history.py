"""`agent.py history` (and `logs`, the same), `backup`, and the transcript's layout, which
the REPL's /history and /search print too.

Owns: those commands' parsers and handlers, and laying out transcript rows for people.
Does not own: the actions (actions/history.py) or the transcript and the backup (store.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from graph.cli.args import count
from graph.cli.output import printable

if TYPE_CHECKING:
    from rich.console import Group

    from graph.context import Context


def add(sub, common: argparse.ArgumentParser) -> None:
    for name, more in (("logs", "; the same as history"), ("history", "")):
        h = sub.add_parser(name, parents=[common], help=f"the whole conversation since the first launch{more}")
        h.add_argument("--last", type=count, metavar="N", help="only the last N turns")
        h.add_argument("--search", metavar="TEXT", help="only messages containing TEXT (the latest 50)")
        h.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "logs":  # `logs --follow` followed the turn metrics before they became `metrics`
            h.add_argument("--follow", "-f", action="store_true", help=argparse.SUPPRESS)
        h.set_defaults(run=history)
    sub.add_parser("backup", parents=[common], help="write a consistent copy of the database to DATA/backups/"
                   ).set_defaults(run=backup)


def history(args: argparse.Namespace, ctx: Context, console) -> int:
    if getattr(args, "follow", False):
        print("error: `logs` is the conversation now; the turn metrics are `agent.py metrics --follow`",
              file=sys.stderr)
        return 2
    if not _has_data(ctx):
        return 1
    from graph.actions import history as act

    ctx.settings  # noqa: B018 - validate the config even for read-only commands
    store = ctx.store
    rows = act.search(store, args.search) if args.search else act.history(store, args.last)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        console.print(history_view(rows, empty="no matching messages" if args.search else "(no messages yet)"))
    return 0


def backup(args: argparse.Namespace, ctx: Context, console) -> int:
    if not _has_data(ctx):
        return 1
    from graph.actions import history as act

    made = act.backup(ctx.store)
    console.print(f"backup written: {made['path']} ({made['bytes'] / 2**20:.1f} MB)", highlight=False)
    return 0


def _has_data(ctx: Context) -> bool:
    """Whether the data folder exists (reading commands create nothing); says so when not."""
    if Path(ctx.home).is_dir():
        return True
    ctx.settings  # noqa: B018 - a bad config is still reported first
    print(f"error: {ctx.home}: no data folder here yet, so no session to show (a first message creates it;"
          " check --home / AGENT_HOME)", file=sys.stderr)
    return False


def history_view(rows: list[dict], empty: str = "(no messages yet)") -> Group:
    from rich.console import Group
    from rich.text import Text

    parts = []
    for row in rows:
        row = {**row, "content": printable(row["content"]), "reasoning": printable(row["reasoning"] or "") or None}
        head = Text(f"#{row['turn']} ", style="dim")
        if row["role"] == "user":
            parts.append(head + Text("you: ", style="bold cyan") + Text(row["content"]))
        elif row["role"] == "assistant":
            if row["reasoning"]:
                parts.append(head + Text("thought: " + row["reasoning"], style="dim italic"))
            for call in row["tool_calls"]:
                parts.append(head + Text(f"→ {call['name']}({json.dumps(call['args'], ensure_ascii=False)})",
                                         style="magenta"))
            if row["content"] or not row["tool_calls"]:
                mark = f"  [{row['meta']['interrupted']}]" if row["meta"].get("interrupted") else ""
                parts.append(head + Text("agent: ", style="bold green") + Text(row["content"])
                             + Text(mark, style="yellow"))
        else:
            parts.append(head + Text(f"← {row['name']}: ", style="magenta") + Text(row["content"], style="dim"))
    return Group(*parts) if parts else Group(Text(empty, style="dim"))
